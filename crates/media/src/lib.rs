//! Crest media plane: the sans-IO pieces of anchored media. `crest-server` owns the sockets,
//! threads and clocks and drives these with `(now, input)`.
//!
//! - Packets and timing: RTP (RFC 3550), per-source reception statistics (loss, duplicates,
//!   reordering, jitter, report blocks), RTCP SR/RR with round-trip time, an adaptive jitter
//!   buffer with concealment, a per-leg RTP/RTCP session (symmetric RTP, reports, media
//!   timeout), an E-model MOS estimate.
//! - Codecs and audio: G.711 μ/A-law, G.722, Opus, 8/16/24/48 kHz resampling, WAV prompts,
//!   DTMF (RFC 4733 events and in-band Goertzel detection).
//! - Calls: SDP offer/answer (RFC 3264) with Crest anchoring each leg (`anchor`), the call
//!   bridge that forwards or transcodes between two legs with prompts, listeners and keys
//!   (`bridge`), bandwidth admission (`bandwidth`), and a browser's WebRTC leg over str0m that
//!   stands in for a bridge leg, with the demultiplexer of the shared WebRTC socket (`webrtc`).
//!
//! ```text
//!   caller RTP ──► CallMedia (leg A) ══ forward / transcode ══ (leg B) ──► agent's RTP
//!                                                               └─ WebRtcLeg ──► browser
//! ```

pub mod anchor;
pub mod bandwidth;
pub mod bridge;
pub mod codec;
pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod quality;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod stats;
pub mod wav;
pub mod webrtc;

pub use jitter::{JitterBuffer, JitterConfig, JitterStats, Playout, Push};
pub use rtp::{RtpError, RtpPacket};
pub use stats::{Arrival, ReceiveStats, ReceptionReport};
