//! Transport-neutral types: which transport a message came over or leaves on, and the flow
//! (remote address and, for connection transports, the connection) it belongs to. The socket
//! work lives in `crest-server`; WebSocket (RFC 7118) is one more [`TransportKind`] whose frames
//! each carry one whole message, like a datagram.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::message::Framing;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP (unreliable: the transaction layer retransmits).
    Udp,
    /// TCP (RFC 3261 §18, Content-Length framing).
    Tcp,
    /// TLS over TCP (sips:).
    Tls,
    /// WebSocket (RFC 7118), one message per frame.
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl TransportKind {
    /// Whether the transport is reliable (no retransmission timers A, E, G; timers D, I, J, K
    /// are zero).
    pub fn is_reliable(self) -> bool {
        self != Self::Udp
    }

    /// Whether the transport is a WebSocket (RFC 7118): in practice a browser, whose media is
    /// WebRTC.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }

    /// The token used in Via.
    pub fn via_token(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Ws => "WS",
            Self::Wss => "WSS",
        }
    }

    /// How messages are delimited on this transport.
    pub fn framing(self) -> Framing {
        match self {
            Self::Tcp | Self::Tls => Framing::Stream,
            Self::Udp | Self::Ws | Self::Wss => Framing::Datagram,
        }
    }

    /// The transport a `transport=` URI parameter or a Via token names.
    pub fn from_token(t: &str) -> Option<Self> {
        Some(match t.to_ascii_uppercase().as_str() {
            "UDP" => Self::Udp,
            "TCP" => Self::Tcp,
            "TLS" => Self::Tls,
            "WS" => Self::Ws,
            "WSS" => Self::Wss,
            _ => return None,
        })
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// A connection of a stream or WebSocket transport, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// The transport.
    pub transport: TransportKind,
    /// The remote address.
    pub remote: SocketAddr,
    /// The connection it arrived on, for connection transports; `None` lets the driver reuse
    /// a connection to `remote` or open one.
    pub connection: Option<ConnectionId>,
}

impl Flow {
    /// A UDP flow to `remote`.
    pub fn udp(remote: SocketAddr) -> Self {
        Self {
            transport: TransportKind::Udp,
            remote,
            connection: None,
        }
    }
}

/// Bytes to send on a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send.
    pub flow: Flow,
    /// One whole message.
    pub data: Bytes,
}
