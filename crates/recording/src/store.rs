//! [`Recordings`]: the key ring, the hot and cold tiers and the index as one service: start
//! and close recordings, recover what a crash left open, decrypt for an operator, verify,
//! rotate keys, shred, and apply the tiering and retention policy.
//!
//! A move to the cold tier is four explicit steps ([`MoveStep`]), each durable before the next
//! starts, so a crash between any two loses nothing and leaves nothing retention would miss:
//! the index row exists throughout, and says which tier holds the verified copy.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::encode::{Format, duration_ms, finalize_wav};
use crate::hot::{HotFile, HotTier, RecoverError};
use crate::index::{Index, IndexError, RecordingRow, State, Tier};
use crate::keys::{DataKey, KeyError, KeyProvider};
use crate::recorder::{Mark, Summary};
use crate::seal::{OpenError, open};
use crate::{Layout, RecordingId};

/// Why a recording operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A key is missing or wrong, or the recording was shredded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The ciphertext does not open.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The hot tier failed.
    #[error("hot tier: {0}")]
    Hot(#[from] std::io::Error),
    /// Recovery failed.
    #[error(transparent)]
    Recover(#[from] RecoverError),
    /// The cold tier failed.
    #[error("cold tier: {0}")]
    Cold(#[from] object_store::Error),
    /// A tier's copy does not have the hash the index recorded.
    #[error("{tier} copy has SHA-256 {found}, the index recorded {expected}")]
    HashMismatch {
        /// The tier.
        tier: Tier,
        /// What the index holds.
        expected: String,
        /// What the copy hashes to.
        found: String,
    },
    /// The index knows no such recording.
    #[error("no recording {0}")]
    NotFound(String),
    /// The recording is still being written.
    #[error("recording {0} is still being written")]
    StillOpen(RecordingId),
}

/// Where the cold tier keeps recording `id`.
pub fn cold_path(id: &RecordingId) -> ObjectPath {
    ObjectPath::from(format!("recordings/{id}.crec"))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What a new recording is of.
#[derive(Debug, Clone)]
pub struct NewRecording {
    /// The call's Call-ID.
    pub call_id: String,
    /// What the channels hold.
    pub legs: String,
    /// The agent, if known.
    pub agent: Option<String>,
    /// The queue, if known.
    pub queue: Option<String>,
    /// Start, Unix milliseconds.
    pub started_ms: i64,
    /// Container and coding.
    pub format: Format,
    /// Stereo or mono.
    pub layout: Layout,
}

/// A recording that has started: its id, data key and hot file.
#[derive(Debug)]
pub struct Started {
    /// The id.
    pub id: RecordingId,
    /// The data key to seal with.
    pub key: DataKey,
    /// The file to append to.
    pub file: HotFile,
}

/// A fault `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The recording.
    pub id: RecordingId,
    /// The tier, where it concerns a copy.
    pub tier: Option<Tier>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tier {
            Some(t) => write!(f, "{} ({t}): {}", self.id, self.what),
            None => write!(f, "{}: {}", self.id, self.what),
        }
    }
}

/// The tiering and retention policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Move recordings older than this to the cold tier.
    pub cold_after_ms: Option<i64>,
    /// Move the oldest recordings to the cold tier while the hot tier holds more than this.
    pub hot_max_bytes: Option<u64>,
    /// Delete recordings older than this, from both tiers.
    pub delete_after_ms: Option<i64>,
}

/// What one pass of the policy did.
#[derive(Debug, Default)]
pub struct PolicyReport {
    /// Moved to the cold tier.
    pub moved: Vec<RecordingId>,
    /// Interrupted moves finished (hot copy of a recording already recorded as cold).
    pub finished: Vec<RecordingId>,
    /// Deleted by retention.
    pub deleted: Vec<RecordingId>,
    /// Moves or deletions that failed (left as they were, retried on the next pass).
    pub failed: Vec<(RecordingId, String)>,
}

/// One step of a move to the cold tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStep {
    /// Copy the ciphertext (checked against the index's hash first) to the cold tier.
    Copy,
    /// Read the cold copy back and check its hash.
    Verify,
    /// Record in the index that the cold tier holds the recording.
    Record,
    /// Delete the hot copy.
    DeleteHot,
}

/// A move of one recording to the cold tier, a step at a time.
#[derive(Debug)]
pub struct Mover<'a> {
    rec: &'a Recordings,
    row: RecordingRow,
    next: Option<MoveStep>,
    now_ms: i64,
}

impl Mover<'_> {
    /// The step [`step`](Self::step) will take next.
    pub fn next(&self) -> Option<MoveStep> {
        self.next
    }

    /// Takes the next step; returns the step taken, or `None` when the move is done.
    pub async fn step(&mut self) -> Result<Option<MoveStep>, StoreError> {
        let Some(step) = self.next else {
            return Ok(None);
        };
        let id = self.row.id;
        let expected = self.row.sha256.clone().unwrap_or_default();
        let path = cold_path(&id);
        match step {
            MoveStep::Copy => {
                let data = self.rec.hot.read(&id)?;
                let found = sha256_hex(&data);
                if found != expected {
                    return Err(StoreError::HashMismatch {
                        tier: Tier::Hot,
                        expected,
                        found,
                    });
                }
                self.rec
                    .cold
                    .put(&path, PutPayload::from(Bytes::from(data)))
                    .await?;
                self.next = Some(MoveStep::Verify);
            }
            MoveStep::Verify => {
                let data = self.rec.cold.get(&path).await?.bytes().await?;
                let found = sha256_hex(&data);
                if found != expected {
                    // A bad copy is removed; the hot copy stays the one of record.
                    let _ = self.rec.cold.delete(&path).await;
                    return Err(StoreError::HashMismatch {
                        tier: Tier::Cold,
                        expected,
                        found,
                    });
                }
                self.next = Some(MoveStep::Record);
            }
            MoveStep::Record => {
                self.rec.index.set_tier(&id, Tier::Cold).await?;
                self.rec
                    .index
                    .log(
                        &id,
                        self.now_ms,
                        "moved",
                        &format!("hot -> cold sha256={expected}"),
                    )
                    .await?;
                self.next = Some(MoveStep::DeleteHot);
            }
            MoveStep::DeleteHot => {
                self.rec.hot.delete(&id)?;
                self.next = None;
            }
        }
        Ok(Some(step))
    }
}

/// Recordings: keys, tiers and index.
#[derive(Debug, Clone)]
pub struct Recordings {
    keys: Arc<dyn KeyProvider>,
    hot: HotTier,
    cold: Arc<dyn ObjectStore>,
    index: Index,
}

impl Recordings {
    /// The service over these parts.
    pub fn new(
        keys: Arc<dyn KeyProvider>,
        hot: HotTier,
        cold: Arc<dyn ObjectStore>,
        index: Index,
    ) -> Self {
        Self {
            keys,
            hot,
            cold,
            index,
        }
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The hot tier.
    pub fn hot(&self) -> &HotTier {
        &self.hot
    }

    /// The cold tier.
    pub fn cold(&self) -> &Arc<dyn ObjectStore> {
        &self.cold
    }

    /// Starts a recording: a fresh data key wrapped by the current KEK, the index row (so
    /// nothing written is ever unknown to the index), then the hot file.
    pub async fn start(&self, n: &NewRecording) -> Result<Started, StoreError> {
        let id = RecordingId::generate()?;
        let key = DataKey::generate()?;
        let kek = self.keys.kek(self.keys.current())?;
        let row = RecordingRow {
            id,
            call_id: n.call_id.clone(),
            legs: n.legs.clone(),
            agent: n.agent.clone(),
            queue: n.queue.clone(),
            started_ms: n.started_ms,
            duration_ms: None,
            format: n.format.name().to_owned(),
            layout: n.layout.name().to_owned(),
            state: State::Recording,
            tier: Tier::Hot,
            key_id: Some(kek.id().to_owned()),
            wrapped_key: Some(kek.wrap(&id, &key)?),
            sha256: None,
            size: None,
        };
        self.index.insert(&row).await?;
        let file = self.hot.create(&id)?;
        Ok(Started { id, key, file })
    }

    /// Closes a recording the recorder finished; `sha256` and `size` are of the whole file.
    pub async fn close(
        &self,
        id: &RecordingId,
        summary: &Summary,
        sha256: &str,
        size: u64,
    ) -> Result<(), StoreError> {
        for m in &summary.marks {
            self.index.add_mark(id, m).await?;
        }
        self.index
            .close(
                id,
                State::Complete,
                summary.duration_ms as i64,
                size as i64,
                sha256,
            )
            .await?;
        Ok(())
    }

    /// The data key of a recording.
    pub fn data_key(&self, row: &RecordingRow) -> Result<DataKey, StoreError> {
        let (Some(kid), Some(wrapped)) = (&row.key_id, &row.wrapped_key) else {
            return Err(KeyError::Shredded.into());
        };
        Ok(self.keys.kek(kid)?.unwrap(&row.id, wrapped)?)
    }

    /// Closes every recording a crash left open: whole chunks kept, a torn tail cut, the
    /// final chunk sealed, then length, size and hash recorded.
    pub async fn recover_open(
        &self,
        now_ms: i64,
    ) -> Result<Vec<(RecordingId, Result<u64, StoreError>)>, StoreError> {
        let mut out = Vec::new();
        for row in self.index.in_state(State::Recording).await? {
            let r = self.recover_one(&row, now_ms).await;
            match &r {
                Ok(ms) => {
                    info!(recording = %row.id, call_id = %row.call_id, duration_ms = ms, "recording recovered")
                }
                Err(e) => {
                    warn!(recording = %row.id, call_id = %row.call_id, "recording not recovered: {e}")
                }
            }
            out.push((row.id, r));
        }
        Ok(out)
    }

    async fn recover_one(&self, row: &RecordingRow, now_ms: i64) -> Result<u64, StoreError> {
        let dk = self.data_key(row)?;
        let r = self.hot.recover(&row.id, &dk)?;
        let format = Format::from_name(&row.format).unwrap_or(Format::WavPcm);
        let ms = duration_ms(format, &r.plain);
        let data = self.hot.read(&row.id)?;
        self.index
            .close(
                &row.id,
                State::Recovered,
                ms as i64,
                data.len() as i64,
                &sha256_hex(&data),
            )
            .await?;
        let found = r.found.map_or("complete".to_owned(), |e| e.to_string());
        self.index
            .log(
                &row.id,
                now_ms,
                "recovered",
                &format!(
                    "found: {found}; kept {} chunks, cut {} bytes",
                    r.chunks, r.cut
                ),
            )
            .await?;
        Ok(ms)
    }

    /// The ciphertext from the tier the index names.
    pub async fn ciphertext(&self, row: &RecordingRow) -> Result<Vec<u8>, StoreError> {
        Ok(match row.tier {
            Tier::Hot => self.hot.read(&row.id)?,
            Tier::Cold => self
                .cold
                .get(&cold_path(&row.id))
                .await?
                .bytes()
                .await?
                .to_vec(),
        })
    }

    /// The decrypted audio of a closed recording, every chunk and the hash checked; a WAV
    /// gets its real sizes. Also returns the PCI pause marks.
    pub async fn plaintext(&self, row: &RecordingRow) -> Result<(Vec<u8>, Vec<Mark>), StoreError> {
        if row.state == State::Recording {
            return Err(StoreError::StillOpen(row.id));
        }
        let dk = self.data_key(row)?;
        let data = self.ciphertext(row).await?;
        let mut plain = open(&data, &row.id, &dk)?.complete()?;
        let found = sha256_hex(&data);
        let expected = row.sha256.clone().unwrap_or_default();
        if found != expected {
            return Err(StoreError::HashMismatch {
                tier: row.tier,
                expected,
                found,
            });
        }
        if Format::from_name(&row.format) != Some(Format::OggOpus) {
            finalize_wav(&mut plain);
        }
        Ok((plain, self.index.marks(&row.id).await?))
    }

    /// Checks a recording in both tiers: the tier of record holds a copy, every copy has the
    /// recorded hash and every chunk its tag.
    pub async fn verify(&self, row: &RecordingRow) -> Vec<Problem> {
        let mut problems = Vec::new();
        let problem = |tier: Option<Tier>, what: String| Problem {
            id: row.id,
            tier,
            what,
        };
        if row.state == State::Recording {
            problems.push(problem(
                None,
                "still open (being written, or left by a crash: `crest run` recovers it)".into(),
            ));
            return problems;
        }
        let dk = match self.data_key(row) {
            Ok(k) => Some(k),
            Err(StoreError::Key(KeyError::Shredded)) => None,
            Err(e) => {
                problems.push(problem(None, e.to_string()));
                None
            }
        };
        let hot = match self.hot.read(&row.id) {
            Ok(d) => Some(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                problems.push(problem(Some(Tier::Hot), e.to_string()));
                None
            }
        };
        let cold = match self.cold.get(&cold_path(&row.id)).await {
            Ok(g) => match g.bytes().await {
                Ok(b) => Some(b.to_vec()),
                Err(e) => {
                    problems.push(problem(Some(Tier::Cold), e.to_string()));
                    None
                }
            },
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => {
                problems.push(problem(Some(Tier::Cold), e.to_string()));
                None
            }
        };
        let expected = row.sha256.clone().unwrap_or_default();
        for (tier, copy) in [(Tier::Hot, &hot), (Tier::Cold, &cold)] {
            let Some(data) = copy else {
                if tier == row.tier {
                    problems.push(problem(
                        Some(tier),
                        "missing: the index says this tier holds it".into(),
                    ));
                }
                continue;
            };
            let found = sha256_hex(data);
            if found != expected {
                problems.push(problem(
                    Some(tier),
                    format!("SHA-256 {found}, the index recorded {expected}"),
                ));
            }
            if let Some(dk) = &dk {
                match open(data, &row.id, dk) {
                    Ok(o) => {
                        if let Some(e) = o.error {
                            problems.push(problem(Some(tier), e.to_string()));
                        }
                    }
                    Err(e) => problems.push(problem(Some(tier), e.to_string())),
                }
            }
        }
        problems
    }

    /// Re-wraps every data key not wrapped by the current KEK with it (the audio is not
    /// touched). Returns how many were re-wrapped.
    pub async fn rotate(&self, now_ms: i64) -> Result<usize, StoreError> {
        let current = self.keys.current().to_owned();
        let kek = self.keys.kek(&current)?;
        let mut n = 0;
        for row in self.index.all().await? {
            let Some(old) = row.key_id.clone() else {
                continue;
            };
            if old == current {
                continue;
            }
            let dk = self.data_key(&row)?;
            let wrapped = kek.wrap(&row.id, &dk)?;
            if self.index.rewrap(&row.id, &old, &current, &wrapped).await? {
                self.index
                    .log(&row.id, now_ms, "rewrapped", &format!("{old} -> {current}"))
                    .await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes a recording's data key: the ciphertext in both tiers can never be opened.
    pub async fn shred(&self, id: &RecordingId, now_ms: i64) -> Result<(), StoreError> {
        self.index.shred(id).await?;
        self.index
            .log(id, now_ms, "shredded", "data key deleted")
            .await?;
        Ok(())
    }

    /// A move of `row` to the cold tier.
    pub fn mover(&self, row: RecordingRow, now_ms: i64) -> Mover<'_> {
        Mover {
            rec: self,
            row,
            next: Some(MoveStep::Copy),
            now_ms,
        }
    }

    async fn run_move(&self, row: RecordingRow, now_ms: i64) -> Result<(), StoreError> {
        let mut m = self.mover(row, now_ms);
        while m.step().await?.is_some() {}
        Ok(())
    }

    async fn delete(&self, row: &RecordingRow) -> Result<(), StoreError> {
        self.hot.delete(&row.id)?;
        match self.cold.delete(&cold_path(&row.id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.index.delete(&row.id).await?;
        Ok(())
    }

    /// One pass of the policy: retention, then interrupted moves finished, then moves by age
    /// and by hot-tier size (oldest first). A failure leaves its recording as it was.
    pub async fn apply_policy(
        &self,
        now_ms: i64,
        policy: &Policy,
    ) -> Result<PolicyReport, StoreError> {
        let mut report = PolicyReport::default();
        let mut rows = Vec::new();
        for row in self.index.all().await? {
            let expired = policy
                .delete_after_ms
                .is_some_and(|d| row.started_ms < now_ms - d);
            if expired && row.state != State::Recording {
                match self.delete(&row).await {
                    Ok(()) => {
                        info!(recording = %row.id, call_id = %row.call_id, "recording deleted by retention");
                        report.deleted.push(row.id);
                    }
                    Err(e) => report.failed.push((row.id, e.to_string())),
                }
            } else {
                rows.push(row);
            }
        }
        for row in &rows {
            if row.tier == Tier::Cold && self.hot.contains(&row.id) {
                match self.hot.delete(&row.id) {
                    Ok(()) => report.finished.push(row.id),
                    Err(e) => report.failed.push((row.id, e.to_string())),
                }
            }
        }
        let movable: Vec<_> = rows
            .into_iter()
            .filter(|r| {
                r.tier == Tier::Hot && matches!(r.state, State::Complete | State::Recovered)
            })
            .collect();
        let mut hot_bytes: u64 = movable.iter().map(|r| r.size.unwrap_or(0) as u64).sum();
        for row in movable {
            let old = policy
                .cold_after_ms
                .is_some_and(|d| row.started_ms < now_ms - d);
            let over = policy.hot_max_bytes.is_some_and(|m| hot_bytes > m);
            if !(old || over) {
                continue;
            }
            let (id, size) = (row.id, row.size.unwrap_or(0) as u64);
            match self.run_move(row, now_ms).await {
                Ok(()) => {
                    info!(recording = %id, "recording moved to the cold tier");
                    hot_bytes -= size;
                    report.moved.push(id);
                }
                Err(e) => {
                    warn!(recording = %id, "recording not moved: {e}");
                    report.failed.push((id, e.to_string()));
                }
            }
        }
        Ok(report)
    }
}
