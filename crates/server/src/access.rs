//! Who may do what on the admin API: roles, their permissions, and API tokens (made by
//! `crest token create`, kept only as a SHA-256 in the index database).
//!
//! | permission            | admin | supervisor | agent |
//! |-----------------------|:-----:|:----------:|:-----:|
//! | read `/metrics`       |   ✓   |     ✓      |       |
//! | pause/resume a call's recording (PCI) | ✓ | ✓ | ✓ |
//! | read the audit log    |   ✓   |            |       |
//! | read agents', queues' and flows' live state | ✓ | ✓ |  |
//! | set an agent ready, away or logged out; set the surge level by hand | ✓ | ✓ |  |
//! | add, edit or remove an agent (pool, skills, languages, rating) | ✓ | ✓ |  |
//! | roll back or promote a canary flow | ✓ |         |       |
//! | search call records, download a recording (audited) | ✓ | ✓ |  |

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Admin,
    Supervisor,
    Agent,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "supervisor" => Ok(Self::Supervisor),
            "agent" => Ok(Self::Agent),
            other => Err(format!("{other:?}: use admin, supervisor or agent")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Admin => "admin",
            Self::Supervisor => "supervisor",
            Self::Agent => "agent",
        })
    }
}

/// What an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permission {
    ReadMetrics,
    PauseRecording,
    ReadAudit,
    ReadLive,
    ChangeFloor,
    EditAgents,
    ChangeFlows,
    ReadRecords,
}

impl Permission {
    /// Every permission, in the table's order.
    #[cfg(test)]
    const ALL: [Self; 8] = [
        Self::ReadMetrics,
        Self::PauseRecording,
        Self::ReadAudit,
        Self::ReadLive,
        Self::ChangeFloor,
        Self::EditAgents,
        Self::ChangeFlows,
        Self::ReadRecords,
    ];
}

impl Role {
    /// The permission table (module docs).
    pub(crate) fn may(self, p: Permission) -> bool {
        match p {
            Permission::ReadMetrics => matches!(self, Self::Admin | Self::Supervisor),
            Permission::PauseRecording => true,
            Permission::ReadAudit | Permission::ChangeFlows => self == Self::Admin,
            Permission::ReadLive
            | Permission::ChangeFloor
            | Permission::EditAgents
            | Permission::ReadRecords => {
                matches!(self, Self::Admin | Self::Supervisor)
            }
        }
    }
}

/// A new token: `crest_` and 40 hex digits from the system's random source.
pub(crate) fn new_token() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut b = [0u8; 20];
    aws_lc_rs::rand::fill(&mut b)?;
    Ok(format!("crest_{}", hex::encode(b)))
}

/// What the index keeps of a token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token of an `Authorization: Bearer …` header value.
pub(crate) fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `crest token create|list|revoke`, on the index database of `recording.index`.
pub(crate) mod cli {
    use anyhow::bail;

    use crate::recording::Settings;

    use super::{Role, new_token, token_hash};

    fn block<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)
    }

    /// Makes a token for `name` with `role`; prints it (the only time it is seen).
    pub(crate) fn create(s: &Settings, name: &str, role: &str) -> anyhow::Result<String> {
        let role: Role = role
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--role {e}"))?;
        if name.trim().is_empty() || name.len() > 64 {
            bail!("--name must be 1 to 64 characters");
        }
        block(async {
            let index = s.open_index().await?;
            let token = new_token().map_err(|_| anyhow::anyhow!("no random source"))?;
            let now = crate::recording::unix_ms();
            if !index
                .add_token(name, &role.to_string(), &token_hash(&token), now)
                .await?
            {
                bail!("a token named {name:?} exists: revoke it first");
            }
            Ok(format!("{token}\n"))
        })
    }

    /// The tokens in use.
    pub(crate) fn list(s: &Settings) -> anyhow::Result<String> {
        block(async {
            let index = s.open_index().await?;
            let mut out = format!("{:<24}  {:<10}  CREATED(ms)\n", "NAME", "ROLE");
            for t in index.tokens().await? {
                out.push_str(&format!(
                    "{:<24}  {:<10}  {}\n",
                    t.name, t.role, t.created_ms
                ));
            }
            Ok(out)
        })
    }

    /// Revokes token `name`.
    pub(crate) fn revoke(s: &Settings, name: &str) -> anyhow::Result<String> {
        block(async {
            let index = s.open_index().await?;
            if !index
                .revoke_token(name, crate::recording::unix_ms())
                .await?
            {
                bail!("no token named {name:?} in use");
            }
            Ok(format!("token {name:?} revoked\n"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_table() {
        let table: Vec<(Role, Vec<bool>)> = [Role::Admin, Role::Supervisor, Role::Agent]
            .into_iter()
            .map(|r| (r, Permission::ALL.iter().map(|p| r.may(*p)).collect()))
            .collect();
        assert_eq!(
            table,
            [
                (Role::Admin, vec![true; 8]),
                (
                    Role::Supervisor,
                    vec![true, true, false, true, true, true, false, true]
                ),
                (
                    Role::Agent,
                    vec![false, true, false, false, false, false, false, false]
                ),
            ]
        );
        for r in ["admin", "supervisor", "agent"] {
            assert_eq!(r.parse::<Role>().unwrap().to_string(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn tokens_are_random_and_kept_only_as_a_hash() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("crest_") && a.len() == 46, "{a}");
        let h = token_hash(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a[6..]));
        assert_eq!(h, token_hash(&a));
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer("Bearer crest_x"), Some("crest_x"));
        assert_eq!(bearer("bearer  crest_x "), Some("crest_x"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("crest_x"), None);
    }
}
