//! Crest media plane: the sans-IO pieces of anchored RTP.
//!
//! This release holds the packet layer and the codecs the B2BUA will anchor with: RTP packets
//! (RFC 3550), per-source reception statistics (extended sequence numbers, loss, duplicates,
//! reordering, jitter, RTCP report blocks), an adaptive jitter buffer with concealment
//! signalling, G.711 μ-law/A-law, DTMF (RFC 4733 events and in-band Goertzel detection), SDP
//! offer/answer (RFC 3264), RTCP SR/RR with round-trip time, an E-model MOS estimate, and
//! 8/16/24/48 kHz resampling, and a per-leg RTP/RTCP session (symmetric RTP, reports, media
//! timeout). Sockets, Opus, G.722 and the bridge come with the rest of the media issue; until
//! then the SIP core relays SDP between the legs unchanged.
//!
//! ```text
//!   datagram ──► RtpPacket::parse ──► ReceiveStats::handle_packet(now, &packet) ──► Arrival
//!                      │                              └──► report() ──► RTCP RR block
//!                      ├──► JitterBuffer::push(now, &packet) … pop(now) every ptime ──► Frame | Conceal
//!                      └──► payload ──► g711::decode_ulaw / decode_alaw ──► PCM
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
