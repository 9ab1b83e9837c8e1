//! The recording index: each recording's metadata, its wrapped data key, its tier and the
//! SHA-256 of its ciphertext, in SQLite (embedded, the default) or PostgreSQL, through one
//! sqlx `Any` pool. Only plain column types are used (text, 64-bit integers, bytes), which
//! the `Any` driver carries for both; one schema file (`schema/recording.sql`), whose one
//! binary column PostgreSQL spells `BYTEA`.

use std::fmt;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::RecordingId;
use crate::recorder::Mark;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// The database refused or is unreachable.
    #[error("recording index: {0}")]
    Db(#[from] sqlx::Error),
    /// The URL names no supported database.
    #[error("recording index: {0:?} is neither sqlite: nor postgres:")]
    Url(String),
    /// A row holds a value this build does not know.
    #[error("recording index: recording {id}: bad {column} {value:?}")]
    Corrupt {
        /// The recording.
        id: String,
        /// The column.
        column: &'static str,
        /// The value.
        value: String,
    },
}

/// Where a recording's ciphertext lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Local disk.
    Hot,
    /// Object storage.
    Cold,
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Being written (or left open by a crash, until recovery).
    Recording,
    /// Closed normally.
    Complete,
    /// Closed by recovery after a crash.
    Recovered,
    /// Its data key was deleted: the ciphertext can never be opened again.
    Shredded,
}

macro_rules! names {
    ($t:ty { $($v:ident = $s:literal),* }) => {
        impl $t {
            /// The name stored in the index.
            pub fn name(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
names!(Tier { Hot = "hot", Cold = "cold" });
names!(State {
    Recording = "recording",
    Complete = "complete",
    Recovered = "recovered",
    Shredded = "shredded"
});

/// One recording's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRow {
    /// The recording.
    pub id: RecordingId,
    /// The call's Call-ID (leg A's).
    pub call_id: String,
    /// What the channels hold, e.g. `left=caller right=agent`.
    pub legs: String,
    /// The agent, when the ACD connected one.
    pub agent: Option<String>,
    /// The queue, when the call came through one.
    pub queue: Option<String>,
    /// Start, Unix milliseconds.
    pub started_ms: i64,
    /// Length of the audio, once closed.
    pub duration_ms: Option<i64>,
    /// Format name (`wav`, `wav-pcmu`, `wav-pcma`, `opus`).
    pub format: String,
    /// `stereo` or `mono`.
    pub layout: String,
    /// Life state.
    pub state: State,
    /// Tier.
    pub tier: Tier,
    /// The KEK that wraps the data key (none once shredded).
    pub key_id: Option<String>,
    /// The wrapped data key (none once shredded).
    pub wrapped_key: Option<Vec<u8>>,
    /// SHA-256 of the complete ciphertext, hex.
    pub sha256: Option<String>,
    /// Bytes of ciphertext.
    pub size: Option<i64>,
}

/// An API token of the admin API (its secret is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who or what it is for (unique).
    pub name: String,
    /// `admin`, `supervisor` or `agent`.
    pub role: String,
    /// When it was made.
    pub created_ms: i64,
}

/// A caller's satisfaction score from the survey after an agent's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsatResponse {
    /// The caller's SIP Call-ID.
    pub call_id: String,
    /// When the call ended.
    pub ended_ms: i64,
    /// The queue.
    pub queue: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// 1 to 5.
    pub score: i64,
}

/// An agent added, edited or removed through the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEdit {
    /// The agent's name.
    pub name: String,
    /// The agent's entry as JSON (`acd.yaml`'s fields); `None`: removed.
    pub spec: Option<String>,
    /// When.
    pub updated_ms: i64,
    /// Who (the token's name).
    pub updated_by: String,
}

/// Which journeys a search wants (every field optional but `limit`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JourneyFilter {
    /// The route's number.
    pub number: Option<String>,
    /// The agent who answered.
    pub agent: Option<String>,
    /// The queue joined.
    pub queue: Option<String>,
    /// Ended at or after (ms since the Unix epoch).
    pub from_ms: Option<i64>,
    /// Ended before.
    pub to_ms: Option<i64>,
    /// At most this many (1–10,000).
    pub limit: i64,
}

fn journey_row(r: &AnyRow) -> Result<CallJourney, sqlx::Error> {
    Ok(CallJourney {
        call_id: r.try_get("call_id")?,
        number: r.try_get("number")?,
        ended_ms: r.try_get("ended_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        flow: r.try_get("flow")?,
        flow_version: r.try_get("flow_version")?,
        path: r.try_get("path")?,
        intent: r.try_get("intent")?,
        queue: r.try_get("queue")?,
        agent: r.try_get("agent")?,
        wait_ms: r.try_get("wait_ms")?,
        outcome: r.try_get("outcome")?,
        ended_in: r.try_get("ended_in")?,
    })
}

fn token_row(r: &AnyRow) -> Result<ApiToken, sqlx::Error> {
    Ok(ApiToken {
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_ms: r.try_get("created_ms")?,
    })
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at_ms: i64,
    /// The token's name (`-` when none was given or it was unknown).
    pub actor: String,
    /// Its role.
    pub role: String,
    /// What was asked (`recording.pause`, …).
    pub action: String,
    /// What it was asked of (a call's Call-ID, …).
    pub target: String,
    /// The client's address.
    pub remote: String,
    /// The HTTP status answered.
    pub status: i64,
    /// The request's detail (a pause's reason, …).
    pub detail: String,
}

/// A call's journey (a call Crest answered itself): where the caller went and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallJourney {
    /// The call's Call-ID (leg A's).
    pub call_id: String,
    /// The number dialled.
    pub number: String,
    /// End of the call, Unix milliseconds.
    pub ended_ms: i64,
    /// From the caller's leg up to the end.
    pub duration_ms: i64,
    /// The IVR flow, if the caller was in one.
    pub flow: Option<String>,
    /// Its version.
    pub flow_version: Option<String>,
    /// The flow's nodes visited, joined by `>`.
    pub path: String,
    /// The intent the caller chose last.
    pub intent: Option<String>,
    /// The queue joined.
    pub queue: Option<String>,
    /// The agent who answered.
    pub agent: Option<String>,
    /// Time in the queue.
    pub wait_ms: Option<i64>,
    /// `answered`, `self-service`, `callback`, `refused`, `abandoned-<stage>`, …
    pub outcome: String,
    /// The stage the call ended in.
    pub ended_in: String,
}

/// One leg of a call detail record: how the call went on that leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallLeg {
    /// The call's Call-ID (leg A's).
    pub call_id: String,
    /// The number dialled.
    pub number: String,
    /// `A` (caller) or `B` (callee).
    pub leg: String,
    /// End of the call, Unix milliseconds.
    pub ended_ms: i64,
    /// Length of the call's media.
    pub duration_ms: i64,
    /// The codec the leg ran.
    pub codec: String,
    /// Packets expected from the peer.
    pub packets: i64,
    /// Packets lost.
    pub lost: i64,
    /// Interarrival jitter, microseconds.
    pub jitter_us: i64,
    /// Round-trip time from RTCP, microseconds.
    pub rtt_us: Option<i64>,
    /// E-model MOS × 1000.
    pub mos_milli: i64,
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The index.
#[derive(Debug, Clone)]
pub struct Index {
    pool: AnyPool,
    backend: Backend,
}

/// The columns of `recordings`, in [`RecordingRow`]'s order.
macro_rules! columns {
    () => {
        "id, call_id, legs, agent, queue, started_ms, duration_ms, format, layout, state, tier, \
         key_id, wrapped_key, sha256, size"
    };
}

fn row(r: &AnyRow) -> Result<RecordingRow, IndexError> {
    let id: String = r.try_get("id")?;
    let corrupt = |column, value: String| IndexError::Corrupt {
        id: id.clone(),
        column,
        value,
    };
    let state: String = r.try_get("state")?;
    let tier: String = r.try_get("tier")?;
    Ok(RecordingRow {
        id: id.parse().map_err(|_| corrupt("id", id.clone()))?,
        call_id: r.try_get("call_id")?,
        legs: r.try_get("legs")?,
        agent: r.try_get("agent")?,
        queue: r.try_get("queue")?,
        started_ms: r.try_get("started_ms")?,
        duration_ms: r.try_get("duration_ms")?,
        format: r.try_get("format")?,
        layout: r.try_get("layout")?,
        state: State::parse(&state).ok_or_else(|| corrupt("state", state.clone()))?,
        tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier", tier.clone()))?,
        key_id: r.try_get("key_id")?,
        wrapped_key: r.try_get("wrapped_key")?,
        sha256: r.try_get("sha256")?,
        size: r.try_get("size")?,
    })
}

impl Index {
    /// Connects to `url` (`sqlite:PATH` or `sqlite::memory:`, `postgres://…`) and creates
    /// the schema where it is missing.
    pub async fn connect(url: &str) -> Result<Self, IndexError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            let url = if rest.contains('?') || rest.starts_with(":memory:") {
                format!("sqlite:{rest}")
            } else {
                format!("sqlite:{rest}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(IndexError::Url(url.to_owned()));
        };
        // One SQLite connection: an in-memory database is per connection, and SQLite takes
        // one writer at a time anyway.
        let max = if backend == Backend::Sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .connect(&url)
            .await?;
        const SCHEMA: &str = include_str!("../schema/recording.sql");
        // The one type the two spell differently.
        let schema = match backend {
            Backend::Sqlite => SCHEMA.to_owned(),
            Backend::Postgres => SCHEMA.replace("BLOB", "BYTEA"),
        };
        for stmt in schema.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned()))
                .execute(&pool)
                .await?;
        }
        Ok(Self { pool, backend })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Adds a new recording (before its first byte is written).
    pub async fn insert(&self, r: &RecordingRow) -> Result<(), IndexError> {
        sqlx::query(concat!(
            "INSERT INTO recordings (",
            columns!(),
            ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)"
        ))
        .bind(r.id.to_string())
        .bind(&r.call_id)
        .bind(&r.legs)
        .bind(&r.agent)
        .bind(&r.queue)
        .bind(r.started_ms)
        .bind(r.duration_ms)
        .bind(&r.format)
        .bind(&r.layout)
        .bind(r.state.name())
        .bind(r.tier.name())
        .bind(&r.key_id)
        .bind(&r.wrapped_key)
        .bind(&r.sha256)
        .bind(r.size)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes a recording: its length, state, size and hash.
    pub async fn close(
        &self,
        id: &RecordingId,
        state: State,
        duration_ms: i64,
        size: i64,
        sha256: &str,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "UPDATE recordings SET state = $1, duration_ms = $2, size = $3, sha256 = $4 \
             WHERE id = $5",
        )
        .bind(state.name())
        .bind(duration_ms)
        .bind(size)
        .bind(sha256)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One recording.
    pub async fn get(&self, id: &RecordingId) -> Result<Option<RecordingRow>, IndexError> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(row)
        .transpose()
    }

    /// The recordings of a call (one, or more after transfers).
    pub async fn by_call(&self, call_id: &str) -> Result<Vec<RecordingRow>, IndexError> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE call_id = $1 ORDER BY started_ms"
        ))
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// Every recording, oldest first.
    pub async fn all(&self) -> Result<Vec<RecordingRow>, IndexError> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings ORDER BY started_ms, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// Recordings in `state`, oldest first.
    pub async fn in_state(&self, state: State) -> Result<Vec<RecordingRow>, IndexError> {
        sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings WHERE state = $1 ORDER BY started_ms, id"
        ))
        .bind(state.name())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row)
        .collect()
    }

    /// Moves a recording to `tier` in the index.
    pub async fn set_tier(&self, id: &RecordingId, tier: Tier) -> Result<(), IndexError> {
        sqlx::query("UPDATE recordings SET tier = $1 WHERE id = $2")
            .bind(tier.name())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces a recording's wrapped data key (key rotation), only if it is still wrapped by
    /// `old_key`; returns whether it was.
    pub async fn rewrap(
        &self,
        id: &RecordingId,
        old_key: &str,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<bool, IndexError> {
        let r = sqlx::query(
            "UPDATE recordings SET key_id = $1, wrapped_key = $2 WHERE id = $3 AND key_id = $4",
        )
        .bind(key_id)
        .bind(wrapped)
        .bind(id.to_string())
        .bind(old_key)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a recording's data key: crypto-shredding.
    pub async fn shred(&self, id: &RecordingId) -> Result<(), IndexError> {
        sqlx::query(
            "UPDATE recordings SET key_id = NULL, wrapped_key = NULL, state = $1 WHERE id = $2",
        )
        .bind(State::Shredded.name())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a recording's rows (after retention deleted its files).
    pub async fn delete(&self, id: &RecordingId) -> Result<(), IndexError> {
        let id = id.to_string();
        for sql in [
            "DELETE FROM recording_marks WHERE recording_id = $1",
            "DELETE FROM recordings WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&id).execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Adds a PCI pause mark.
    pub async fn add_mark(&self, id: &RecordingId, m: &Mark) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO recording_marks (recording_id, offset_ms, duration_ms, reason) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(m.offset_ms as i64)
        .bind(m.duration_ms as i64)
        .bind(&m.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A recording's PCI pause marks, in order.
    pub async fn marks(&self, id: &RecordingId) -> Result<Vec<Mark>, IndexError> {
        let rows = sqlx::query(
            "SELECT offset_ms, duration_ms, reason FROM recording_marks \
             WHERE recording_id = $1 ORDER BY offset_ms",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Mark {
                    offset_ms: r.try_get::<i64, _>("offset_ms")? as u64,
                    duration_ms: r.try_get::<i64, _>("duration_ms")? as u64,
                    reason: r.try_get("reason")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// Stores one leg of a call detail record.
    pub async fn add_call_leg(&self, c: &CallLeg) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO call_legs (call_id, number, leg, ended_ms, duration_ms, codec, packets, \
             lost, jitter_us, rtt_us, mos_milli) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
        )
        .bind(&c.call_id)
        .bind(&c.number)
        .bind(&c.leg)
        .bind(c.ended_ms)
        .bind(c.duration_ms)
        .bind(&c.codec)
        .bind(c.packets)
        .bind(c.lost)
        .bind(c.jitter_us)
        .bind(c.rtt_us)
        .bind(c.mos_milli)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a call's journey.
    pub async fn add_call_journey(&self, j: &CallJourney) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO call_journeys (call_id, number, ended_ms, duration_ms, flow, \
             flow_version, path, intent, queue, agent, wait_ms, outcome, ended_in) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
        )
        .bind(&j.call_id)
        .bind(&j.number)
        .bind(j.ended_ms)
        .bind(j.duration_ms)
        .bind(&j.flow)
        .bind(&j.flow_version)
        .bind(&j.path)
        .bind(&j.intent)
        .bind(&j.queue)
        .bind(&j.agent)
        .bind(j.wait_ms)
        .bind(&j.outcome)
        .bind(&j.ended_in)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps API token `name` (its SHA-256, hex) with `role`; false when the name is taken.
    pub async fn add_token(
        &self,
        name: &str,
        role: &str,
        sha256: &str,
        created_ms: i64,
    ) -> Result<bool, IndexError> {
        let taken = sqlx::query("SELECT name FROM api_tokens WHERE name = $1")
            .bind(name.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .is_some();
        if taken {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO api_tokens (name, role, sha256, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(name.to_owned())
        .bind(role.to_owned())
        .bind(sha256.to_owned())
        .bind(created_ms)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// The token whose SHA-256 is `sha256`, if it is not revoked.
    pub async fn token_by_hash(&self, sha256: &str) -> Result<Option<ApiToken>, IndexError> {
        let row = sqlx::query(
            "SELECT name, role, created_ms FROM api_tokens WHERE sha256 = $1 AND revoked_ms IS NULL",
        )
        .bind(sha256.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_row(&r))
            .transpose()
            .map_err(IndexError::Db)
    }

    /// Every token not revoked, by name.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, IndexError> {
        let rows = sqlx::query(
            "SELECT name, role, created_ms FROM api_tokens WHERE revoked_ms IS NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(token_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// Revokes token `name`; false when there is no such token in use.
    pub async fn revoke_token(&self, name: &str, at_ms: i64) -> Result<bool, IndexError> {
        let r = sqlx::query(
            "UPDATE api_tokens SET revoked_ms = $1 WHERE name = $2 AND revoked_ms IS NULL",
        )
        .bind(at_ms)
        .bind(name.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Keeps a survey's score.
    pub async fn add_csat(&self, c: &CsatResponse) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO csat_responses (call_id, ended_ms, queue, agent, score) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.call_id)
        .bind(c.ended_ms)
        .bind(c.queue.clone())
        .bind(c.agent.clone())
        .bind(c.score)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The scores of calls that ended at or after `from_ms`, oldest first.
    pub async fn csat_responses(&self, from_ms: i64) -> Result<Vec<CsatResponse>, IndexError> {
        let rows = sqlx::query(
            "SELECT call_id, ended_ms, queue, agent, score FROM csat_responses \
             WHERE ended_ms >= $1 ORDER BY ended_ms, call_id",
        )
        .bind(from_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CsatResponse {
                    call_id: r.try_get("call_id")?,
                    ended_ms: r.try_get("ended_ms")?,
                    queue: r.try_get("queue")?,
                    agent: r.try_get("agent")?,
                    score: r.try_get("score")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// Keeps an agent edit (the last one per agent counts).
    pub async fn put_agent_edit(&self, e: &AgentEdit) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO agent_edits (name, spec, updated_ms, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, \
             updated_ms = excluded.updated_ms, updated_by = excluded.updated_by",
        )
        .bind(&e.name)
        .bind(e.spec.clone())
        .bind(e.updated_ms)
        .bind(&e.updated_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every agent edit, oldest first.
    pub async fn agent_edits(&self) -> Result<Vec<AgentEdit>, IndexError> {
        let rows = sqlx::query(
            "SELECT name, spec, updated_ms, updated_by FROM agent_edits ORDER BY updated_ms, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgentEdit {
                    name: r.try_get("name")?,
                    spec: r.try_get("spec")?,
                    updated_ms: r.try_get("updated_ms")?,
                    updated_by: r.try_get("updated_by")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// Writes one line of the audit log.
    pub async fn add_audit(&self, e: &AuditEntry) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor, role, action, target, remote, status, detail) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
        )
        .bind(e.at_ms)
        .bind(&e.actor)
        .bind(&e.role)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.remote)
        .bind(e.status)
        .bind(&e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last `limit` lines of the audit log, oldest first.
    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditEntry>, IndexError> {
        let rows = sqlx::query(
            "SELECT at_ms, actor, role, action, target, remote, status, detail FROM audit_log \
             ORDER BY at_ms DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    remote: r.try_get("remote")?,
                    status: r.try_get("status")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(IndexError::Db)?;
        out.reverse();
        Ok(out)
    }

    /// Journeys that match `f`, newest first, at most `f.limit`.
    pub async fn search_journeys(&self, f: &JourneyFilter) -> Result<Vec<CallJourney>, IndexError> {
        let mut sql = String::from(
            "SELECT call_id, number, ended_ms, duration_ms, flow, flow_version, path, intent, \
             queue, agent, wait_ms, outcome, ended_in FROM call_journeys WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = |col: &str, op: &str| {
            n += 1;
            format!(" AND {col} {op} ${n}")
        };
        let texts = [
            ("number", &f.number),
            ("agent", &f.agent),
            ("queue", &f.queue),
        ];
        for (col, v) in &texts {
            if v.is_some() {
                sql.push_str(&next(col, "="));
            }
        }
        if f.from_ms.is_some() {
            sql.push_str(&next("ended_ms", ">="));
        }
        if f.to_ms.is_some() {
            sql.push_str(&next("ended_ms", "<"));
        }
        sql.push_str(&format!(
            " ORDER BY ended_ms DESC, call_id LIMIT {}",
            f.limit.clamp(1, 10_000)
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, v) in texts {
            if let Some(v) = v {
                q = q.bind(v.clone());
            }
        }
        for v in [f.from_ms, f.to_ms].into_iter().flatten() {
            q = q.bind(v);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(journey_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// The journeys of a call (every call when `call_id` is `None`), by end time.
    pub async fn call_journeys(
        &self,
        call_id: Option<&str>,
    ) -> Result<Vec<CallJourney>, IndexError> {
        let q = match call_id {
            Some(c) => sqlx::query(
                "SELECT call_id, number, ended_ms, duration_ms, flow, flow_version, path, intent, \
                 queue, agent, wait_ms, outcome, ended_in FROM call_journeys WHERE call_id = $1 \
                 ORDER BY ended_ms",
            )
            .bind(c.to_owned()),
            None => sqlx::query(
                "SELECT call_id, number, ended_ms, duration_ms, flow, flow_version, path, intent, \
                 queue, agent, wait_ms, outcome, ended_in FROM call_journeys \
                 ORDER BY ended_ms, call_id",
            ),
        };
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(journey_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// The call detail records of a call (every call when `call_id` is `None`), by end time.
    pub async fn call_legs(&self, call_id: Option<&str>) -> Result<Vec<CallLeg>, IndexError> {
        let q = match call_id {
            Some(c) => sqlx::query(
                "SELECT call_id, number, leg, ended_ms, duration_ms, codec, packets, lost, \
                 jitter_us, rtt_us, mos_milli FROM call_legs WHERE call_id = $1 \
                 ORDER BY ended_ms, leg",
            )
            .bind(c.to_owned()),
            None => sqlx::query(
                "SELECT call_id, number, leg, ended_ms, duration_ms, codec, packets, lost, \
                 jitter_us, rtt_us, mos_milli FROM call_legs ORDER BY ended_ms, call_id, leg",
            ),
        };
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(CallLeg {
                    call_id: r.try_get("call_id")?,
                    number: r.try_get("number")?,
                    leg: r.try_get("leg")?,
                    ended_ms: r.try_get("ended_ms")?,
                    duration_ms: r.try_get("duration_ms")?,
                    codec: r.try_get("codec")?,
                    packets: r.try_get("packets")?,
                    lost: r.try_get("lost")?,
                    jitter_us: r.try_get("jitter_us")?,
                    rtt_us: r.try_get("rtt_us")?,
                    mos_milli: r.try_get("mos_milli")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::Db)
    }

    /// Appends to a recording's history (moves, recovery, rotation, shredding).
    pub async fn log(
        &self,
        id: &RecordingId,
        at_ms: i64,
        event: &str,
        detail: &str,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO recording_events (recording_id, at_ms, event, detail) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(at_ms)
        .bind(event)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A recording's history: (at, event, detail), oldest first.
    pub async fn history(
        &self,
        id: &RecordingId,
    ) -> Result<Vec<(i64, String, String)>, IndexError> {
        let rows = sqlx::query(
            "SELECT at_ms, event, detail FROM recording_events WHERE recording_id = $1 \
             ORDER BY at_ms, event",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("at_ms")?,
                    r.try_get("event")?,
                    r.try_get("detail")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(IndexError::Db)
    }
}
