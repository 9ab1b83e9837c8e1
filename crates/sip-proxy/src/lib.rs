//! Crest's SIP core, sans-IO: message parsing, the RFC 3261 §17 transaction layer, a registrar
//! with digest authentication, and B2BUA call control. No sockets and no clocks: the caller feeds
//! datagrams and stream frames with the current instant and drains what to send and when to wake.
//!
//! ```text
//!   bytes in ──► Message::parse ──► Endpoint::handle_input(now, Input)
//!                                       │  transactions (timers A–M)
//!                                       │  registrar / digest auth
//!                                       │  B2BUA calls (leg A ◄─► leg B)
//!   bytes out ◄── Transmit ◄──── Endpoint::poll_output(now) ──► Event / Timeout(Instant)
//! ```
//!
//! The run loop (in `crest-server`): read a packet, `handle_input`, then drain `poll_output`
//! until it returns `None`, sending each `Transmit`; sleep until the earliest `Timeout`, then call
//! `handle_timeout(now)`.

pub mod auth;
mod build;
mod call;
pub mod config;
pub mod endpoint;
pub mod header;
pub mod media;
pub mod message;
pub mod registrar;
pub mod transaction;
pub mod transport;
pub mod uri;

pub use build::reason_phrase;
pub use call::Side;
pub use config::{App, SipConfig};
pub use crest_ids::CallId;
pub use endpoint::{ConnectTarget, Endpoint, EndpointConfig, Stats};
pub use header::HeaderName;
pub use media::{CallInfo, LegEvent, MediaHook, SdpRole};
pub use message::{Framing, Message, ParseError};
pub use transport::{ConnectionId, Flow, Transmit, TransportKind};
pub use uri::Uri;
