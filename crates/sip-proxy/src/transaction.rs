//! The transaction layer of RFC 3261 §17, with the Accepted states of RFC 6026: four state
//! machines (client/server × INVITE/non-INVITE), retransmission over unreliable transports,
//! absorption of retransmitted requests and responses, and timers A–M derived from T1, T2, T4.
//!
//! Sans-IO: every call takes `now`; [`TransactionLayer::poll_event`] yields what to send and
//! which transactions timed out; [`TransactionLayer::poll_timeout`] says when to call
//! [`TransactionLayer::handle_timeout`] next.
//!
//! ```text
//! client INVITE:  Calling ─1xx─► Proceeding ─2xx─► Accepted (M) ─► Terminated
//!                    │ A,B            └─300-699─► Completed (D, sends ACK)
//! server INVITE:  Proceeding ─2xx─► Accepted (L)    ─300-699─► Completed (G,H) ─ACK─► Confirmed (I)
//! non-INVITE:     Trying ─1xx─► Proceeding ─final─► Completed (K client / J server)
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::header::HeaderName;
use crate::message::Message;
use crate::transport::{Flow, Transmit};

/// The base timer values (RFC 3261 §17.1.1.1 and Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip time estimate, 500 ms by default.
    pub t1: Duration,
    /// The longest retransmission interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// The longest time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// A transaction's handle, unique within one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(u64);

/// The timers whose expiry the transaction user hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Timer B: an INVITE got no response.
    B,
    /// Timer F: a non-INVITE request got no final response.
    F,
    /// Timer H: a final non-2xx response to an INVITE was never acknowledged.
    H,
}

/// What the layer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// Send these bytes (first sends, retransmissions, ACKs for non-2xx).
    Transmit(Transmit),
    /// A transaction timed out.
    Timeout(TxId, TimeoutKind),
}

/// How an incoming request relates to the existing server transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestMatch {
    /// A new transaction: the transaction user must answer it.
    New(TxId),
    /// A retransmission, absorbed (the last response was sent again if there was one).
    Retransmission,
    /// An ACK for a non-2xx final response, absorbed by its INVITE transaction.
    AckAbsorbed,
    /// An ACK that belongs to the dialog (for a 2xx): the transaction user handles it.
    AckForDialog,
}

/// How an incoming response relates to the client transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMatch {
    /// Pass it to the transaction user.
    Deliver(TxId),
    /// A retransmission absorbed by the transaction (an ACK was resent where needed).
    Absorbed,
    /// No transaction: drop it (RFC 3261 §18.1.2).
    NoMatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Retransmit,
    State,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    branch: Box<str>,
    /// INVITE for INVITE and ACK; otherwise the method.
    method: Box<str>,
    /// The sent-by of the top Via (server side; empty on the client side).
    sent_by: Box<str>,
    /// The Call-ID: not part of RFC 3261 §17.2.3 matching, but a real retransmission always
    /// carries the same one, and it keeps apart distinct requests from peers that reuse
    /// branch values (RFC 4475's test messages do).
    call_id: Box<str>,
}

#[derive(Debug)]
struct Transaction {
    key: Key,
    client: bool,
    invite: bool,
    state: State,
    flow: Flow,
    /// Client: the request (for retransmission and ACK building). Server: the last response.
    message: Option<Bytes>,
    request: Option<Message>,
    ack: Option<Bytes>,
    interval: Duration,
    retransmit_at: Option<Instant>,
    state_at: Option<Instant>,
}

/// All client and server transactions of one endpoint.
#[derive(Debug)]
pub struct TransactionLayer {
    timers_cfg: TimerConfig,
    next_id: u64,
    by_key: HashMap<Key, TxId>,
    /// Boxed: a burst leaves the map's capacity behind, and empty slots then cost a pointer.
    txs: HashMap<TxId, Box<Transaction>>,
    heap: BinaryHeap<Reverse<(Instant, TxId, u8)>>,
    events: VecDeque<TxEvent>,
}

fn key_of(msg: &Message, server: bool) -> Option<Key> {
    let via = msg.top_via()?;
    let cseq = msg.cseq()?;
    let method = match msg.method() {
        Some("ACK") | Some("INVITE") => "INVITE",
        Some(m) => m,
        None => cseq.method.as_str(),
    };
    let method = if msg.method().is_none() && cseq.method == "ACK" {
        "INVITE"
    } else {
        method
    };
    let branch = match via.branch() {
        Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => b.to_owned(),
        // RFC 2543 peers: no magic cookie, so key by the dialog-ish identifiers (§17.2.3).
        _ => format!(
            "2543|{}|{}|{}|{}",
            msg.call_id().unwrap_or_default(),
            cseq.seq,
            msg.from_hdr()
                .and_then(|f| f.tag().map(str::to_owned))
                .unwrap_or_default(),
            msg.request_uri_str().unwrap_or_default(),
        ),
    };
    let sent_by = if server {
        format!("{}:{}", via.host, via.port.unwrap_or(0))
    } else {
        String::new()
    };
    Some(Key {
        branch: branch.into(),
        method: method.into(),
        sent_by: sent_by.into(),
        call_id: msg.call_id().unwrap_or_default().into(),
    })
}

impl TransactionLayer {
    /// An empty layer with these timer values.
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers_cfg: timers,
            next_id: 1,
            by_key: HashMap::new(),
            txs: HashMap::new(),
            heap: BinaryHeap::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer values in use.
    pub fn timers(&self) -> TimerConfig {
        self.timers_cfg
    }

    /// How many transactions are alive.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    fn arm(&mut self, id: TxId, timer: Timer, at: Instant) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        match timer {
            Timer::Retransmit => tx.retransmit_at = Some(at),
            Timer::State => tx.state_at = Some(at),
        }
        self.heap.push(Reverse((at, id, timer as u8)));
    }

    fn fresh_id(&mut self) -> TxId {
        let id = TxId(self.next_id);
        self.next_id += 1;
        id
    }

    fn transmit(&mut self, flow: Flow, data: Bytes) {
        self.events
            .push_back(TxEvent::Transmit(Transmit { flow, data }));
    }

    /// Matches an incoming request (RFC 3261 §17.2.3) and creates a server transaction for a
    /// new one. `flow` is where it came from; responses go back there.
    pub fn handle_request(&mut self, now: Instant, msg: &Message, flow: Flow) -> RequestMatch {
        let Some(key) = key_of(msg, true) else {
            return RequestMatch::Retransmission;
        };
        let is_ack = msg.method() == Some("ACK");
        if let Some(&id) = self.by_key.get(&key) {
            let tx = self
                .txs
                .get_mut(&id)
                .expect("by_key and txs are kept in step");
            if is_ack {
                return match tx.state {
                    State::Completed => {
                        tx.state = State::Confirmed;
                        tx.retransmit_at = None;
                        let wait = if flow.transport.is_reliable() {
                            Duration::ZERO
                        } else {
                            self.timers_cfg.t4
                        };
                        self.arm(id, Timer::State, now + wait); // Timer I
                        RequestMatch::AckAbsorbed
                    }
                    State::Accepted => RequestMatch::AckForDialog,
                    _ => RequestMatch::AckAbsorbed,
                };
            }
            if let (Some(resp), State::Proceeding | State::Completed) = (&tx.message, tx.state) {
                let (flow, resp) = (tx.flow, resp.clone());
                self.transmit(flow, resp);
            }
            return RequestMatch::Retransmission;
        }
        if is_ack {
            return RequestMatch::AckForDialog;
        }
        let id = self.fresh_id();
        let invite = msg.method() == Some("INVITE");
        self.by_key.insert(key.clone(), id);
        self.txs.insert(
            id,
            Box::new(Transaction {
                key,
                client: false,
                invite,
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                flow,
                message: None,
                request: None,
                ack: None,
                interval: self.timers_cfg.t1,
                retransmit_at: None,
                state_at: None,
            }),
        );
        RequestMatch::New(id)
    }

    /// The server INVITE transaction a CANCEL refers to (RFC 3261 §9.2).
    pub fn invite_for_cancel(&self, cancel: &Message) -> Option<TxId> {
        let mut key = key_of(cancel, true)?;
        key.method = "INVITE".into();
        self.by_key.get(&key).copied()
    }

    /// Whether a server INVITE transaction has sent a final response.
    pub fn is_final_sent(&self, id: TxId) -> bool {
        self.txs
            .get(&id)
            .is_none_or(|t| !matches!(t.state, State::Proceeding | State::Trying))
    }

    /// Sends a response on a server transaction; `status` is its code.
    pub fn send_response(&mut self, now: Instant, id: TxId, status: u16, data: Bytes) {
        let t = self.timers_cfg;
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        if tx.client || matches!(tx.state, State::Completed | State::Confirmed) {
            return;
        }
        let flow = tx.flow;
        let reliable = flow.transport.is_reliable();
        tx.message = Some(data.clone());
        if status < 200 {
            if !tx.invite {
                tx.state = State::Proceeding;
            }
            self.transmit(flow, data);
            return;
        }
        if tx.invite && status < 300 {
            // RFC 6026: Accepted; the TU retransmits the 2xx, Timer L absorbs INVITE copies.
            tx.state = State::Accepted;
            tx.message = None;
            self.transmit(flow, data);
            self.arm(id, Timer::State, now + 64 * t.t1);
            return;
        }
        tx.state = State::Completed;
        let invite = tx.invite;
        self.transmit(flow, data);
        if invite {
            if !reliable {
                self.arm(id, Timer::Retransmit, now + t.t1); // Timer G
            }
            self.arm(id, Timer::State, now + 64 * t.t1); // Timer H
        } else {
            let j = if reliable { Duration::ZERO } else { 64 * t.t1 };
            self.arm(id, Timer::State, now + j); // Timer J
        }
    }

    /// Starts a client transaction for `request` (whose top Via carries a fresh branch) and
    /// sends it on `flow`.
    pub fn send_request(&mut self, now: Instant, request: Message, flow: Flow) -> Option<TxId> {
        let key = key_of(&request, false)?;
        let invite = request.method() == Some("INVITE");
        let data = request.as_bytes();
        let id = self.fresh_id();
        let t = self.timers_cfg;
        self.by_key.insert(key.clone(), id);
        self.txs.insert(
            id,
            Box::new(Transaction {
                key,
                client: true,
                invite,
                state: State::Trying,
                flow,
                message: Some(data.clone()),
                request: invite.then_some(request),
                ack: None,
                interval: t.t1,
                retransmit_at: None,
                state_at: None,
            }),
        );
        self.transmit(flow, data);
        if !flow.transport.is_reliable() {
            self.arm(id, Timer::Retransmit, now + t.t1); // Timer A or E
        }
        self.arm(id, Timer::State, now + 64 * t.t1); // Timer B or F
        Some(id)
    }

    /// Matches an incoming response to its client transaction (RFC 3261 §17.1.3).
    pub fn handle_response(&mut self, now: Instant, msg: &Message) -> ResponseMatch {
        let (Some(key), Some(code)) = (key_of(msg, false), msg.status()) else {
            return ResponseMatch::NoMatch;
        };
        let Some(&id) = self.by_key.get(&key) else {
            return ResponseMatch::NoMatch;
        };
        let t = self.timers_cfg;
        let tx = self
            .txs
            .get_mut(&id)
            .expect("by_key and txs are kept in step");
        let reliable = tx.flow.transport.is_reliable();
        match (tx.invite, tx.state, code) {
            (_, State::Trying | State::Proceeding, 100..=199) => {
                tx.state = State::Proceeding;
                if tx.invite {
                    // Timer A stops; Timer B does not apply once a provisional arrived.
                    tx.retransmit_at = None;
                    tx.state_at = None;
                } else {
                    tx.interval = t.t2;
                }
                ResponseMatch::Deliver(id)
            }
            (true, State::Trying | State::Proceeding, 200..=299) => {
                tx.state = State::Accepted;
                tx.retransmit_at = None;
                self.arm(id, Timer::State, now + 64 * t.t1); // Timer M
                ResponseMatch::Deliver(id)
            }
            (true, State::Accepted, 200..=299) => ResponseMatch::Deliver(id),
            (true, State::Trying | State::Proceeding, _) => {
                tx.state = State::Completed;
                tx.retransmit_at = None;
                let ack = tx.request.as_ref().map(|r| build_ack(r, msg));
                tx.ack = ack.clone();
                let flow = tx.flow;
                if let Some(ack) = ack {
                    self.transmit(flow, ack);
                }
                let d = if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                };
                self.arm(id, Timer::State, now + d); // Timer D
                ResponseMatch::Deliver(id)
            }
            (true, State::Completed, 300..) => {
                if let Some(ack) = tx.ack.clone() {
                    let flow = tx.flow;
                    self.transmit(flow, ack);
                }
                ResponseMatch::Absorbed
            }
            (false, State::Trying | State::Proceeding, 200..) => {
                tx.state = State::Completed;
                tx.retransmit_at = None;
                let k = if reliable { Duration::ZERO } else { t.t4 };
                self.arm(id, Timer::State, now + k); // Timer K
                ResponseMatch::Deliver(id)
            }
            _ => ResponseMatch::Absorbed,
        }
    }

    /// The earliest instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id, which))) = self.heap.peek().copied() {
            if self.is_current(at, id, which) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    fn is_current(&self, at: Instant, id: TxId, which: u8) -> bool {
        self.txs.get(&id).is_some_and(|tx| {
            if which == Timer::Retransmit as u8 {
                tx.retransmit_at == Some(at)
            } else {
                tx.state_at == Some(at)
            }
        })
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id, which))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            if !self.is_current(at, id, which) {
                continue;
            }
            if which == Timer::Retransmit as u8 {
                self.fire_retransmit(at, id);
            } else {
                self.fire_state(id);
            }
        }
    }

    fn fire_retransmit(&mut self, at: Instant, id: TxId) {
        let t = self.timers_cfg;
        let tx = self.txs.get_mut(&id).expect("checked by is_current");
        let Some(data) = tx.message.clone() else {
            return;
        };
        let flow = tx.flow;
        tx.interval = if tx.client && tx.invite {
            tx.interval * 2 // Timer A doubles without bound
        } else if tx.client && tx.state == State::Proceeding {
            t.t2 // Timer E in Proceeding: every T2
        } else {
            (tx.interval * 2).min(t.t2) // Timer E in Trying, Timer G
        };
        let next = at + tx.interval;
        self.transmit(flow, data);
        self.arm(id, Timer::Retransmit, next);
    }

    fn fire_state(&mut self, id: TxId) {
        let tx = self.txs.get(&id).expect("checked by is_current");
        let timeout = match (tx.client, tx.invite, tx.state) {
            (true, true, State::Trying) => Some(TimeoutKind::B),
            (true, false, State::Trying | State::Proceeding) => Some(TimeoutKind::F),
            (false, true, State::Completed) => Some(TimeoutKind::H),
            _ => None,
        };
        if let Some(kind) = timeout {
            self.events.push_back(TxEvent::Timeout(id, kind));
        }
        self.remove(id);
    }

    fn remove(&mut self, id: TxId) {
        if let Some(tx) = self.txs.remove(&id) {
            self.by_key.remove(&tx.key);
        }
    }

    /// Gives memory back after a burst: shrinks the tables when they are mostly empty.
    pub fn compact(&mut self) {
        if self.txs.capacity() > 1024 && self.txs.len() < self.txs.capacity() / 4 {
            self.txs.shrink_to(self.txs.len() * 2);
            self.by_key.shrink_to(self.by_key.len() * 2);
        }
        if self.heap.capacity() > 1024 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }

    /// The next thing to send or report.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.events.pop_front()
    }
}

/// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): Request-URI, Call-ID, From,
/// CSeq number and Route of the request, the top Via of the request, To of the response.
fn build_ack(request: &Message, response: &Message) -> Bytes {
    let mut out = String::with_capacity(512);
    out.push_str("ACK ");
    out.push_str(request.request_uri_str().unwrap_or_default());
    out.push_str(" SIP/2.0\r\n");
    if let Some(v) = request.header_list(HeaderName::Via).first() {
        out.push_str("Via: ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    for (name, msg) in [
        (HeaderName::From, request),
        (HeaderName::To, response),
        (HeaderName::CallId, request),
        (HeaderName::Route, request),
    ] {
        for h in msg.headers().iter().filter(|h| h.name == name) {
            out.push_str(name.canonical().unwrap_or_default());
            out.push_str(": ");
            out.push_str(&msg.value(h));
            out.push_str("\r\n");
        }
    }
    if let Some(c) = request.cseq() {
        out.push_str(&format!("CSeq: {} ACK\r\n", c.seq));
    }
    out.push_str("Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Framing;
    use crate::transport::TransportKind;

    fn msg(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()), Framing::Datagram).unwrap()
    }

    fn invite() -> Message {
        msg(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
    }

    fn response(code: u16, method: &str) -> Message {
        msg(&format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    fn flow(t: TransportKind) -> Flow {
        Flow {
            transport: t,
            remote: "10.0.0.2:5060".parse().unwrap(),
            connection: None,
        }
    }

    /// Runs the layer in virtual time until `end`, returning the offsets (in ms) at which it
    /// transmitted and the timeouts it reported.
    fn run(
        layer: &mut TransactionLayer,
        t0: Instant,
        end: Duration,
    ) -> (Vec<u128>, Vec<(u128, TimeoutKind)>) {
        let (mut sends, mut timeouts) = (Vec::new(), Vec::new());
        let mut now = t0;
        loop {
            while let Some(ev) = layer.poll_event() {
                match ev {
                    TxEvent::Transmit(_) => sends.push((now - t0).as_millis()),
                    TxEvent::Timeout(_, k) => timeouts.push(((now - t0).as_millis(), k)),
                }
            }
            match layer.poll_timeout() {
                Some(at) if at <= t0 + end => {
                    now = at;
                    layer.handle_timeout(now);
                }
                _ => break,
            }
        }
        (sends, timeouts)
    }

    #[test]
    fn timer_a_doubles_and_timer_b_fires_at_64_t1() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        l.send_request(t0, invite(), flow(TransportKind::Udp))
            .unwrap();
        let (sends, timeouts) = run(&mut l, t0, Duration::from_secs(60));
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(timeouts, [(32_000, TimeoutKind::B)]);
        assert!(l.is_empty());
    }

    #[test]
    fn timer_e_caps_at_t2_and_timer_f_fires_at_32s() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let opt = msg(
            "OPTIONS sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKo\r\n\
                       From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c2\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        l.send_request(t0, opt, flow(TransportKind::Udp)).unwrap();
        let (sends, timeouts) = run(&mut l, t0, Duration::from_secs(60));
        assert_eq!(
            sends,
            [
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(timeouts, [(32_000, TimeoutKind::F)]);
    }

    #[test]
    fn reliable_transport_has_no_retransmissions() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        l.send_request(t0, invite(), flow(TransportKind::Tcp))
            .unwrap();
        let (sends, timeouts) = run(&mut l, t0, Duration::from_secs(60));
        assert_eq!(sends, [0]);
        assert_eq!(timeouts, [(32_000, TimeoutKind::B)]);
    }

    #[test]
    fn client_invite_non_2xx_is_acked_and_retransmissions_absorbed_until_timer_d() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let id = l
            .send_request(t0, invite(), flow(TransportKind::Udp))
            .unwrap();
        let _ = l.poll_event();
        let t = t0 + Duration::from_millis(100);
        assert_eq!(
            l.handle_response(t, &response(180, "INVITE")),
            ResponseMatch::Deliver(id)
        );
        assert_eq!(
            l.handle_response(t, &response(486, "INVITE")),
            ResponseMatch::Deliver(id)
        );
        let Some(TxEvent::Transmit(ack)) = l.poll_event() else {
            panic!("ACK expected")
        };
        let ack = Message::parse(ack.data, Framing::Datagram).unwrap();
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.to_hdr().unwrap().tag(), Some("2"));
        assert_eq!(ack.cseq().unwrap().method, "ACK");
        assert_eq!(
            l.handle_response(t, &response(486, "INVITE")),
            ResponseMatch::Absorbed
        );
        assert!(
            matches!(l.poll_event(), Some(TxEvent::Transmit(_))),
            "ACK resent"
        );
        assert_eq!(
            l.poll_timeout(),
            Some(t + Duration::from_secs(32)),
            "Timer D"
        );
    }

    #[test]
    fn client_invite_2xx_goes_to_accepted_and_timer_m() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let id = l
            .send_request(t0, invite(), flow(TransportKind::Udp))
            .unwrap();
        let t = t0 + Duration::from_millis(200);
        assert_eq!(
            l.handle_response(t, &response(200, "INVITE")),
            ResponseMatch::Deliver(id)
        );
        assert_eq!(
            l.handle_response(t, &response(200, "INVITE")),
            ResponseMatch::Deliver(id)
        );
        assert_eq!(
            l.poll_timeout(),
            Some(t + Duration::from_secs(32)),
            "Timer M"
        );
    }

    #[test]
    fn server_invite_timer_g_h_and_i() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let inv = invite();
        let RequestMatch::New(id) = l.handle_request(t0, &inv, flow(TransportKind::Udp)) else {
            panic!("new transaction expected")
        };
        assert_eq!(
            l.handle_request(t0, &inv, flow(TransportKind::Udp)),
            RequestMatch::Retransmission
        );
        l.send_response(t0, id, 486, Bytes::from_static(b"SIP/2.0 486 Busy\r\n\r\n"));
        let (sends, timeouts) = run(&mut l, t0, Duration::from_secs(40));
        // Timer G: T1 doubling to T2; Timer H at 64*T1.
        assert_eq!(
            sends,
            [
                0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(timeouts, [(32_000, TimeoutKind::H)]);

        // With an ACK: Confirmed, then Timer I after T4.
        let mut l = TransactionLayer::new(TimerConfig::default());
        let RequestMatch::New(id) = l.handle_request(t0, &inv, flow(TransportKind::Udp)) else {
            panic!()
        };
        l.send_response(t0, id, 486, Bytes::from_static(b"SIP/2.0 486 Busy\r\n\r\n"));
        let ack = msg(
            "ACK sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n\
                       From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\n\r\n",
        );
        let t = t0 + Duration::from_millis(700);
        assert_eq!(
            l.handle_request(t, &ack, flow(TransportKind::Udp)),
            RequestMatch::AckAbsorbed
        );
        assert_eq!(
            l.poll_timeout(),
            Some(t + Duration::from_secs(5)),
            "Timer I = T4"
        );
    }

    #[test]
    fn server_non_invite_resends_response_and_timer_j() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let bye = msg(
            "BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKbye\r\n\
                       From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\n\r\n",
        );
        let RequestMatch::New(id) = l.handle_request(t0, &bye, flow(TransportKind::Udp)) else {
            panic!()
        };
        l.send_response(t0, id, 200, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
        let _ = l.poll_event();
        assert_eq!(
            l.handle_request(t0, &bye, flow(TransportKind::Udp)),
            RequestMatch::Retransmission
        );
        assert!(matches!(l.poll_event(), Some(TxEvent::Transmit(_))));
        assert_eq!(
            l.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "Timer J = 64*T1"
        );
    }

    #[test]
    fn server_invite_2xx_accepted_timer_l_and_cancel_matching() {
        let t0 = Instant::now();
        let mut l = TransactionLayer::new(TimerConfig::default());
        let inv = invite();
        let RequestMatch::New(id) = l.handle_request(t0, &inv, flow(TransportKind::Udp)) else {
            panic!()
        };
        let cancel = msg(
            "CANCEL sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n\
                          From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 CANCEL\r\n\r\n",
        );
        assert_eq!(l.invite_for_cancel(&cancel), Some(id));
        assert!(matches!(
            l.handle_request(t0, &cancel, flow(TransportKind::Udp)),
            RequestMatch::New(_)
        ));
        l.send_response(t0, id, 200, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
        assert_eq!(
            l.handle_request(t0, &inv, flow(TransportKind::Udp)),
            RequestMatch::Retransmission
        );
        assert_eq!(
            l.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "Timer L"
        );
    }
}
