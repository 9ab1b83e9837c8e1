//! B2BUA call state: a call joins two dialogs, leg A (Crest is the UAS: the caller) and leg B
//! (Crest is the UAC: the callee). Each leg is a dialog of RFC 3261 §12 with its own Call-ID,
//! tags, CSeq spaces, route set and flow.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::build::finish;
use crate::config::App;
use crate::header::{HeaderName, NameAddr};
use crate::message::Message;
use crate::transaction::TxId;
use crate::transport::Flow;

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's leg (Crest answered its INVITE).
    A,
    /// The callee's leg (Crest sent the INVITE).
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// A 2xx that Crest, as UAS, retransmits until the ACK arrives (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
pub(crate) struct PendingOk {
    pub(crate) data: Bytes,
    pub(crate) cseq: u32,
    pub(crate) next: Instant,
    pub(crate) interval: Duration,
    pub(crate) give_up: Instant,
}

/// One dialog of a call.
#[derive(Debug, Clone)]
pub(crate) struct Leg {
    pub(crate) call_id: Box<str>,
    pub(crate) local_tag: Box<str>,
    pub(crate) remote_tag: Option<Box<str>>,
    /// Our name-addr without tag (From in our requests).
    pub(crate) local_uri: String,
    /// The peer's name-addr without tag (To in our requests).
    pub(crate) remote_uri: String,
    /// Request-URI of our in-dialog requests (the peer's Contact).
    pub(crate) remote_target: String,
    /// Route headers of our in-dialog requests, in order.
    pub(crate) route_set: Vec<String>,
    pub(crate) local_cseq: u32,
    pub(crate) remote_cseq: u32,
    /// Where the peer is reached (the flow its messages came over).
    pub(crate) flow: Flow,
    /// The ACK we sent for the peer's 2xx (resent on 2xx retransmissions).
    pub(crate) ack: Option<Bytes>,
    pub(crate) pending_ok: Option<PendingOk>,
}

/// Where we are in the life of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE sent to B, no final response yet.
    Early,
    /// B answered; the 200 to A awaits its ACK.
    Answered,
    /// Both legs confirmed.
    Confirmed,
    /// Ended; kept a while to absorb late messages.
    Ended,
}

/// Where leg B is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BState {
    /// No leg B (a call Crest answered itself, before it connects the caller or after a
    /// failed attempt).
    Idle,
    /// INVITE sent, no final response yet.
    Calling,
    /// Answered: the legs are bridged.
    Up,
}

/// A call: two legs Crest bridges, or a caller Crest answered itself (an application) and
/// later connects to an agent.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) span: tracing::Span,
    pub(crate) state: CallState,
    pub(crate) a: Leg,
    pub(crate) b: Leg,
    /// The number dialled (the route).
    pub(crate) number: Box<str>,
    /// The caller's user part (their number).
    pub(crate) caller: Box<str>,
    /// What Crest does with a call it answered itself.
    pub(crate) app: Option<App>,
    /// Crest's SDP answer to the caller until its 200 goes out (a call taken with early media).
    pub(crate) app_answer: Option<Vec<u8>>,
    /// Crest placed leg A itself (a callback): `a_invite` is Crest's INVITE, `a_invite_tx`
    /// its client transaction.
    pub(crate) originated: bool,
    pub(crate) a_invite: Message,
    pub(crate) a_invite_tx: TxId,
    pub(crate) b_state: BState,
    pub(crate) b_invite: Option<Message>,
    pub(crate) b_invite_tx: Option<TxId>,
    pub(crate) b_provisional: bool,
    /// Leg B is a browser (reached over WebSocket): Crest's INVITE went without SDP, the
    /// browser offers in its 2xx and Crest answers in the ACK, and its later offers are
    /// answered by Crest too, not relayed to the caller.
    pub(crate) b_browser: bool,
    pub(crate) cancel_pending: bool,
    /// Negotiated session interval (RFC 4028), if either leg runs a session timer.
    pub(crate) session_interval: Option<Duration>,
    pub(crate) started: Instant,
    pub(crate) answered: Option<Instant>,
    pub(crate) ring_deadline: Option<Instant>,
    pub(crate) session_deadline: Option<Instant>,
    pub(crate) linger_until: Option<Instant>,
}

impl Call {
    /// A call Crest takes itself (an application): leg A only, in its early state; leg B is a
    /// placeholder with no dialog until the application connects one. `invite` and
    /// `invite_tx` are the caller's INVITE and its server transaction, or Crest's own INVITE
    /// and its client transaction for a call Crest places.
    #[allow(clippy::too_many_arguments)] // the parts of a new call
    pub(crate) fn taken(
        span: tracing::Span,
        a: Leg,
        number: &str,
        caller: &str,
        app: App,
        invite: Message,
        invite_tx: TxId,
        now: Instant,
    ) -> Self {
        let b = Leg {
            call_id: "".into(),
            pending_ok: None,
            ..a.clone()
        };
        Self {
            span,
            state: CallState::Early,
            a,
            b,
            number: number.into(),
            caller: caller.into(),
            app: Some(app),
            app_answer: None,
            originated: false,
            a_invite: invite,
            a_invite_tx: invite_tx,
            b_state: BState::Idle,
            b_invite: None,
            b_invite_tx: None,
            b_provisional: false,
            b_browser: false,
            cancel_pending: false,
            session_interval: None,
            started: now,
            answered: None,
            ring_deadline: None,
            session_deadline: None,
            linger_until: None,
        }
    }

    /// What answering the caller's INVITE takes: the request, its server transaction, the
    /// caller's flow and Crest's tag on leg A.
    pub(crate) fn a_invite_reply(&self) -> (Message, TxId, Flow, Box<str>) {
        (
            self.a_invite.clone(),
            self.a_invite_tx,
            self.a.flow,
            self.a.local_tag.clone(),
        )
    }

    pub(crate) fn leg(&self, side: Side) -> &Leg {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    pub(crate) fn leg_mut(&mut self, side: Side) -> &mut Leg {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// The earliest deadline of any of the call's timers.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.ring_deadline,
            self.session_deadline,
            self.linger_until,
            self.a.pending_ok.as_ref().map(|p| p.next),
            self.b.pending_ok.as_ref().map(|p| p.next),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// What a request written on a leg needs from the endpoint.
#[derive(Debug)]
pub(crate) struct RequestParts<'a> {
    pub(crate) method: &'a str,
    pub(crate) cseq: u32,
    pub(crate) branch: &'a str,
    /// `SIP/2.0/UDP 192.0.2.1:5060` without parameters.
    pub(crate) via_prefix: &'a str,
    pub(crate) contact: Option<&'a str>,
    pub(crate) max_forwards: u32,
    pub(crate) extra: &'a str,
    pub(crate) body: Option<(&'a str, &'a [u8])>,
}

impl Leg {
    /// Writes a request within this dialog (or the initial INVITE of leg B).
    pub(crate) fn request(&self, p: &RequestParts<'_>) -> Bytes {
        let mut out = String::with_capacity(600);
        let _ = write!(
            out,
            "{} {} SIP/2.0\r\nVia: {};branch={};rport\r\nMax-Forwards: {}\r\n",
            p.method, self.remote_target, p.via_prefix, p.branch, p.max_forwards
        );
        for r in &self.route_set {
            let _ = write!(out, "Route: {r}\r\n");
        }
        let _ = write!(
            out,
            "From: {};tag={}\r\nTo: {}",
            self.local_uri, self.local_tag, self.remote_uri
        );
        if let Some(t) = &self.remote_tag {
            let _ = write!(out, ";tag={t}");
        }
        let _ = write!(
            out,
            "\r\nCall-ID: {}\r\nCSeq: {} {}\r\n",
            self.call_id, p.cseq, p.method
        );
        if let Some(c) = p.contact {
            let _ = write!(out, "Contact: {c}\r\n");
        }
        out.push_str(p.extra);
        finish(out, p.body)
    }

    /// Learns the peer's tag, target and route set from a dialog-creating response (leg B) —
    /// the route set of a UAC is the Record-Route list reversed (RFC 3261 §12.1.2).
    pub(crate) fn learn_from_response(&mut self, resp: &Message) {
        if let Some(tag) = resp.to_hdr().and_then(|t| t.tag().map(Box::from)) {
            self.remote_tag = Some(tag);
        }
        if let Some(c) = resp.header_list(HeaderName::Contact).first()
            && let Ok(na) = NameAddr::parse(c)
        {
            self.remote_target = na.uri.to_string();
        }
        let rr = resp.header_list(HeaderName::RecordRoute);
        if !rr.is_empty() {
            self.route_set = rr.iter().rev().map(|r| r.to_string()).collect();
        }
    }
}

/// A name-addr without its tag parameter, for From/To of our requests.
pub(crate) fn without_tag(na: &NameAddr) -> String {
    let mut na = na.clone();
    na.params.remove("tag");
    na.to_string()
}
