//! Crest call recording: every recorded call is encrypted from its first byte, kept on local
//! disk while it is likely to be played, and moved to object storage by policy, with nothing
//! lost on the way.
//!
//! ```text
//!  media listener frames (A, B) ─► Recorder ─► Encoder (WAV / Ogg Opus) ─► Sealer (AES-256-GCM
//!                                  (sans-IO)   stereo: caller L, agent R    chunks, data key)
//!                                                                              │ append + fdatasync
//!  Index (sqlx: SQLite | PostgreSQL) ◄── metadata, wrapped key, SHA-256 ── HotTier (local disk)
//!        ▲                                                                     │ policy: copy,
//!        └──────────────── record the move ◄── verify hash ◄── ColdTier (object_store)
//! ```
//!
//! The recorder is sans-IO (`(now, frame)` in, sealed bytes out); [`Recordings`] ties the key
//! ring, the two tiers and the index together for the server and the CLI.

mod encode;
mod hot;
mod index;
mod keys;
mod recorder;
mod seal;
mod store;

use std::fmt;
use std::str::FromStr;

pub use encode::{EncodeError, Encoder, Format, duration_ms, finalize_wav};
pub use hot::{HotFile, HotTier, RecoverError, Recovered};
pub use index::{
    AgentEdit, ApiToken, AuditEntry, Backend, CallJourney, CallLeg, CsatResponse, Index,
    IndexError, JourneyFilter, RecordingRow, State, Tier,
};
pub use keys::{DataKey, KEY_LEN, Kek, KeyError, KeyProvider, KeyRing};
pub use recorder::{MAX_SKEW_MS, Mark, Recorder, RecorderConfig, RecorderError, Summary};
pub use seal::{HEADER_LEN, MAX_CHUNK, OpenError, Opened, Sealer, open};
pub use store::{
    MoveStep, Mover, NewRecording, Policy, PolicyReport, Problem, Recordings, Started, StoreError,
    cold_path,
};

/// How the two legs are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Caller left, agent right.
    Stereo,
    /// Both legs mixed.
    Mono,
}

impl Layout {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stereo => "stereo",
            Self::Mono => "mono",
        }
    }
}

/// A recording's id: 16 random bytes, written as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId([u8; 16]);

impl RecordingId {
    /// A random id.
    pub fn generate() -> Result<Self, KeyError> {
        let mut b = [0u8; 16];
        keys::random(&mut b)?;
        Ok(Self(b))
    }

    /// The id of these bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        Self(b)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordingId({self})")
    }
}

impl FromStr for RecordingId {
    type Err = hex::FromHexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b)?;
        Ok(Self(b))
    }
}
