//! The SIP endpoint: protection, registrar, OPTIONS, and B2BUA call control, on top of the
//! transaction layer. Sans-IO: [`Endpoint::handle_input`] takes one received message with the
//! flow it came over; [`Endpoint::poll_transmit`] yields what to send; [`Endpoint::poll_timeout`]
//! and [`Endpoint::handle_timeout`] drive every timer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crest_ids::{CallId, mask};
use tracing::{debug, info, info_span, warn};

use crate::auth::{Algorithm, AuthError, Credentials, DigestAuth};
use crate::build::{own, response};
use crate::call::{BState, Call, CallState, Leg, PendingOk, RequestParts, Side, without_tag};
use crate::config::{App, RouteTarget, SipConfig, UserConfig};
use crate::header::{HeaderName, NameAddr, split_list};
use crate::media::{CallInfo, LegEvent, MediaHook, SdpRole};
use crate::message::{Message, parse_u32};
use crate::registrar::{RegisterError, Registrar};
use crate::transaction::{
    RequestMatch, ResponseMatch, TimeoutKind, TimerConfig, TransactionLayer, TxEvent, TxId,
};
use crate::transport::{ConnectionId, Flow, Transmit, TransportKind};
use crate::uri::Uri;

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE";
const SUPPORTED: &[&str] = &["timer"];
const BRANCH_PREFIX: &str = "z9hG4bKcr";
/// How long a caller Crest took with early media waits for the application to admit or
/// refuse them.
const APP_DECISION: Duration = Duration::from_secs(60);

/// Counters the server exports as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests received (including retransmissions).
    pub requests_in: u64,
    /// Responses received.
    pub responses_in: u64,
    /// Messages that failed to parse or validate.
    pub bad_messages: u64,
    /// Calls set up (INVITEs routed to a target).
    pub calls_started: u64,
    /// Calls answered.
    pub calls_answered: u64,
    /// Calls ended, whatever the reason.
    pub calls_ended: u64,
    /// Successful REGISTER requests.
    pub registrations: u64,
    /// Requests refused by the per-source rate limit.
    pub rate_limited: u64,
    /// Requests refused with 503 for overload or draining.
    pub overload_rejected: u64,
    /// Requests refused for missing or wrong credentials (401/403).
    pub auth_rejected: u64,
}

/// The parts of the configuration the endpoint runs on, resolved by the server.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The `sip:` section.
    pub sip: SipConfig,
    /// Routes with resolved targets: (number, target, public).
    pub routes: Vec<(String, RouteTarget, bool)>,
    /// The address Crest puts in Via and Contact for each transport it listens on.
    pub local: Vec<(TransportKind, SocketAddr)>,
    /// Seed for tags, branches, Call-IDs and the nonce key.
    pub seed: u64,
}

/// Where [`Endpoint::connect`] sends a caller Crest answered itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTarget {
    /// A registered user (an agent's phone).
    User(String),
    /// A SIP URI whose host is an IP address.
    Uri(String),
}

/// SplitMix64: small, fast, seedable; identifiers need uniqueness, not secrecy (the nonce key
/// is drawn from it once at start from a seed the server takes from the OS).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn token(&mut self) -> String {
        format!("{:016x}", self.next())
    }
}

#[derive(Debug, Clone)]
enum Owner {
    /// Crest's INVITE on leg B of a call.
    BInvite(CallId),
    /// Crest's INVITE on leg A of a call it placed itself.
    AInvite(CallId),
    /// A CANCEL, BYE or other request Crest started on its own.
    Own,
    /// A request relayed from one leg to the other: the server transaction to answer.
    Relay {
        call: CallId,
        from: Side,
        server_tx: TxId,
        request: Message,
    },
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The SIP endpoint (see the module docs).
pub struct Endpoint {
    cfg: SipConfig,
    routes: HashMap<String, (RouteTarget, bool)>,
    users: HashMap<String, UserConfig>,
    local: Vec<(TransportKind, SocketAddr)>,
    tx: TransactionLayer,
    registrar: Registrar,
    auth: DigestAuth,
    rng: Rng,
    /// Boxed: the table resizes and shrinks without moving whole calls.
    calls: HashMap<CallId, Box<Call>>,
    /// Calls not yet ended (`calls` also holds ended ones while they linger).
    active: usize,
    next_call: u64,
    dialogs: HashMap<Box<str>, (CallId, Side)>,
    owners: HashMap<TxId, Owner>,
    timers: BinaryHeap<Reverse<(Instant, CallId)>>,
    buckets: HashMap<IpAddr, Bucket>,
    out: VecDeque<Transmit>,
    draining: bool,
    shedding: bool,
    next_sweep: Instant,
    stats: Stats,
    media: Option<Box<dyn MediaHook>>,
    /// Users whose registration changed: (user, has contacts now).
    registrations: VecDeque<(String, bool)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("calls", &self.calls.len())
            .field("transactions", &self.tx.len())
            .finish()
    }
}

impl Endpoint {
    /// A new endpoint; `now` anchors nonce timestamps.
    pub fn new(now: Instant, cfg: EndpointConfig) -> Self {
        let mut rng = Rng(cfg.seed);
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        let mut sip = cfg.sip;
        // The users move into their own map; the config copy keeps no second list.
        let users = std::mem::take(&mut sip.users);
        let users_count = users.len();
        let timers = TimerConfig {
            t1: Duration::from_millis(sip.timers.t1_ms),
            t2: Duration::from_millis(sip.timers.t2_ms),
            t4: Duration::from_millis(sip.timers.t4_ms),
        };
        let auth = DigestAuth::new(
            &sip.auth.realm,
            secret,
            now,
            Duration::from_secs(sip.auth.nonce_ttl_secs),
            sip.auth.algorithms.clone(),
        );
        Self {
            routes: cfg
                .routes
                .into_iter()
                .map(|(n, t, p)| (n, (t, p)))
                .collect(),
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            local: cfg.local,
            tx: TransactionLayer::new(timers),
            registrar: Registrar::with_capacity(sip.registrar, users_count),
            auth,
            rng,
            calls: HashMap::new(),
            active: 0,
            next_call: 1,
            dialogs: HashMap::new(),
            owners: HashMap::new(),
            timers: BinaryHeap::new(),
            buckets: HashMap::new(),
            out: VecDeque::new(),
            draining: false,
            shedding: false,
            next_sweep: now + Duration::from_secs(30),
            cfg: sip,
            stats: Stats::default(),
            media: None,
            registrations: VecDeque::new(),
        }
    }

    /// Anchors calls' media through `hook` (without one, SDP is relayed unchanged).
    pub fn set_media(&mut self, hook: Box<dyn MediaHook>) {
        self.media = Some(hook);
    }

    /// Ends call `key` from outside the SIP signalling (media timeout, an operator): BYE to
    /// both legs once answered, otherwise 480 to the caller and CANCEL to the callee.
    pub fn hang_up(&mut self, now: Instant, key: CallId, reason: &str) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let _g = call.span.clone().entered();
        match call.state {
            CallState::Ended => {}
            CallState::Early if call.originated => {
                info!(reason, "hanging up");
                self.send_cancel(now, key, Side::A);
                self.end_call(now, key, reason);
            }
            CallState::Early => self.cancel_call(now, key, 480, reason),
            CallState::Answered | CallState::Confirmed => {
                info!(reason, "hanging up");
                self.bye_all(now, key, reason);
                self.end_call(now, key, reason);
            }
        }
        self.drain_tx(now);
    }

    /// Places a call from Crest to `target` (a callback to a customer: a SIP URI whose host is
    /// an IP address, or a registered user), as `caller_id`, ringing it for at most `ring`.
    /// Returns the call's key; what becomes of it comes back through [`MediaHook::leg_a`],
    /// and once answered it is a call Crest answered itself: [`Self::connect`] bridges it.
    pub fn originate(
        &mut self,
        now: Instant,
        target: &ConnectTarget,
        caller_id: &str,
        app: App,
        ring: Duration,
    ) -> Result<CallId, u16> {
        let (target_uri, flow) = self.resolve_target(now, target)?;
        let key = CallId(self.next_call);
        let a = self.uac_leg(caller_id, &target_uri, flow);
        let number = Uri::parse(&target_uri)
            .ok()
            .and_then(|u| u.user_unescaped())
            .unwrap_or_default();
        let offer = {
            let Some(hook) = self.media.as_mut() else {
                return Err(503);
            };
            let info = CallInfo {
                key,
                call_id: &a.call_id,
                number: &number,
                caller: caller_id,
                app: Some(&app),
            };
            hook.originate(now, &info)?
        };
        let Some((invite, tx)) = self.send_invite(now, &a, Some(&offer)) else {
            if let Some(hook) = self.media.as_mut() {
                hook.ended(now, key);
            }
            return Err(503);
        };
        self.next_call += 1;
        let span = info_span!("call", call_id = %a.call_id, %app);
        {
            let _g = span.enter();
            info!(target = %target_uri, "Crest places a call");
        }
        self.owners.insert(tx, Owner::AInvite(key));
        self.dialogs.insert(a.call_id.clone(), (key, Side::A));
        let mut call = Call::taken(span, a, &number, caller_id, app, invite, tx, now);
        call.originated = true;
        call.ring_deadline = Some(now + ring);
        self.calls.insert(key, Box::new(call));
        self.stats.calls_started += 1;
        self.active += 1;
        self.schedule(key);
        self.drain_tx(now);
        Ok(key)
    }

    /// The responses to Crest's INVITE on leg A of a call it placed.
    fn on_a_invite_response(&mut self, now: Instant, key: CallId, msg: &Message, code: u16) {
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let Some(t) = self.calls.get(&key).map(|c| c.a.flow.transport) else {
            return;
        };
        let via = self.via_prefix(t);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _g = call.span.clone().entered();
        if code < 200 {
            call.a.learn_from_response(msg);
            return;
        }
        if code >= 300 {
            if call.state == CallState::Early {
                info!(status = code, "the called party refused");
                self.end_call(now, key, "refused");
                if let Some(hook) = self.media.as_mut() {
                    hook.leg_a(now, key, LegEvent::Failed(code));
                }
            }
            return;
        }
        if call.a.ack.is_none() {
            call.a.learn_from_response(msg);
            let ack = call.a.request(&RequestParts {
                method: "ACK",
                cseq: 1,
                branch: &branch,
                via_prefix: &via,
                contact: None,
                max_forwards: 70,
                extra: "",
                body: None,
            });
            call.a.ack = Some(ack);
        }
        if let Some(ack) = call.a.ack.clone() {
            self.out.push_back(Transmit {
                flow: call.a.flow,
                data: ack,
            });
        }
        if call.state != CallState::Early {
            if call.state == CallState::Ended && call.answered.is_none() {
                // Cancelled meanwhile, answered anyway: hang it up.
                self.send_bye(now, key, Side::A, "call already ended");
            }
            return;
        }
        let body = msg.body();
        let sdp = (!body.is_empty()).then_some(&body);
        if let Err(code) = self.media_exchange(now, key, Side::A, SdpRole::Answer, sdp) {
            info!(status = code, "SDP answer of the called party refused");
            self.send_bye(now, key, Side::A, "unusable SDP answer");
            self.end_call(now, key, "unusable SDP answer");
            if let Some(hook) = self.media.as_mut() {
                hook.leg_a(now, key, LegEvent::Failed(code));
            }
            return;
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Answered;
        call.answered = Some(now);
        call.ring_deadline = None;
        info!("the called party answered");
        self.stats.calls_answered += 1;
        if let Some(hook) = self.media.as_mut() {
            hook.leg_a(now, key, LegEvent::Answered);
        }
    }

    /// Where a target is reached: its URI and flow.
    fn resolve_target(&self, now: Instant, target: &ConnectTarget) -> Result<(String, Flow), u16> {
        match target {
            ConnectTarget::User(user) => {
                let bindings = self.registrar.lookup(now, user);
                let b = bindings.first().ok_or(480u16)?;
                Ok((b.uri.to_string(), b.flow))
            }
            ConnectTarget::Uri(text) => {
                let uri = Uri::parse(text).ok().filter(Uri::is_sip).ok_or(416u16)?;
                let ip: IpAddr = uri
                    .host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse()
                    .map_err(|_| 416u16)?;
                let (transport, port) = uri_transport(&uri);
                Ok((
                    uri.to_string(),
                    Flow {
                        transport,
                        remote: SocketAddr::new(ip, uri.port.unwrap_or(port)),
                        connection: None,
                    },
                ))
            }
        }
    }

    /// Connects a call Crest answered itself (an application route) to `target`, ringing it
    /// for at most `ring`: a registered user (an agent's phone) or a SIP URI with an IP
    /// address (a transfer). What becomes of it comes back through
    /// [`MediaHook::leg_b`]; on answer the legs are bridged. Errors: 481 no such call, 491 a
    /// leg B is already ringing or up, 480 the user is not registered, 416 a URI Crest cannot
    /// reach, or the media's status.
    pub fn connect(
        &mut self,
        now: Instant,
        key: CallId,
        target: &ConnectTarget,
        ring: Duration,
    ) -> Result<(), u16> {
        let call = self.calls.get(&key).ok_or(481u16)?;
        if call.app.is_none() || !matches!(call.state, CallState::Answered | CallState::Confirmed) {
            return Err(481);
        }
        if call.b_state != BState::Idle {
            return Err(491);
        }
        let (b_target, b_flow) = self.resolve_target(now, target)?;
        // A browser offers WebRTC itself (late offer): Crest's INVITE carries no SDP.
        let browser = b_flow.transport.is_websocket();
        let offer = match self.media.as_mut() {
            Some(_) if browser => None,
            Some(hook) => Some(hook.offer_b(now, key)?),
            None => return Err(503),
        };
        let call = &self.calls[&key];
        let _g = call.span.clone().entered();
        let caller = call.caller.clone();
        let b = self.uac_leg(&caller, &b_target, b_flow);
        let Some((invite, tx)) = self.send_invite(now, &b, offer.as_deref()) else {
            return Err(503);
        };
        info!(target = %b.remote_target, browser, "connecting the caller");
        self.owners.insert(tx, Owner::BInvite(key));
        self.dialogs.insert(b.call_id.clone(), (key, Side::B));
        let call = self.calls.get_mut(&key).expect("checked above");
        call.b = b;
        call.b_invite = Some(invite);
        call.b_invite_tx = Some(tx);
        call.b_state = BState::Calling;
        call.b_provisional = false;
        call.b_browser = browser;
        call.cancel_pending = false;
        call.ring_deadline = Some(now + ring);
        self.schedule(key);
        self.drain_tx(now);
        Ok(())
    }

    /// A new dialog Crest starts as the UAC, from `user` at Crest's address to `target`.
    fn uac_leg(&mut self, user: &str, target: &str, flow: Flow) -> Leg {
        let local = self.local_for(flow.transport);
        let from = Uri::sip(Some(user), &local.ip().to_string(), None);
        Leg {
            call_id: format!("{}@crest", self.rng.token()).into(),
            local_tag: self.rng.token().into(),
            remote_tag: None,
            local_uri: format!("<{from}>"),
            remote_uri: format!("<{target}>"),
            remote_target: target.to_owned(),
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: 0,
            flow,
            ack: None,
            pending_ok: None,
        }
    }

    /// Sends the initial INVITE of `leg` with Crest's `offer` (none: the far end offers in
    /// its 2xx): the request and its transaction.
    fn send_invite(
        &mut self,
        now: Instant,
        leg: &Leg,
        offer: Option<&[u8]>,
    ) -> Option<(Message, TxId)> {
        let t = leg.flow.transport;
        let (via, contact) = (self.via_prefix(t), self.contact(t));
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let extra = format!("Supported: timer\r\nAllow: {ALLOW}\r\n");
        let invite = own(leg.request(&RequestParts {
            method: "INVITE",
            cseq: 1,
            branch: &branch,
            via_prefix: &via,
            contact: Some(&contact),
            max_forwards: 70,
            extra: &extra,
            body: offer.map(|o| ("application/sdp", o)),
        }));
        let tx = self.tx.send_request(now, invite.clone(), leg.flow)?;
        Some((invite, tx))
    }

    /// Stops ringing leg B of a call Crest answered itself (CANCEL), or hangs it up (BYE);
    /// the caller stays with Crest. Nothing is reported through [`MediaHook::leg_b`].
    pub fn disconnect(&mut self, now: Instant, key: CallId) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.app.is_none() {
            return;
        }
        match call.b_state {
            BState::Idle => {}
            BState::Calling => {
                self.stop_ringing_b(now, key);
            }
            BState::Up => {
                self.send_bye(now, key, Side::B, "disconnected");
                self.drop_b(key);
            }
        }
        self.drain_tx(now);
    }

    /// Answers (200) a caller Crest took with early media (a `queue:` route) once the
    /// application admits them.
    pub fn accept(&mut self, now: Instant, key: CallId) {
        if self
            .calls
            .get(&key)
            .is_some_and(|c| c.app.is_some() && c.state == CallState::Early)
        {
            self.send_app_ok(now, key);
            self.drain_tx(now);
        }
    }

    /// Refuses a caller Crest took with early media (after its announcement): `code` (503)
    /// with Retry-After.
    pub fn refuse(&mut self, now: Instant, key: CallId, code: u16, retry_after: Option<u64>) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.app.is_none() || call.state != CallState::Early {
            return;
        }
        let _g = call.span.clone().entered();
        info!(status = code, retry_after, "caller refused");
        let (invite, tx, flow, tag) = call.a_invite_reply();
        let extra = retry_after.map_or_else(String::new, |s| format!("Retry-After: {s}\r\n"));
        if !self.tx.is_final_sent(tx) {
            self.respond(now, tx, &invite, flow, code, Some(&tag), &extra, None);
        }
        self.end_call(now, key, "refused");
        self.drain_tx(now);
    }

    /// BYE to every leg that is up, CANCEL to a leg B that rings.
    fn bye_all(&mut self, now: Instant, key: CallId, reason: &str) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let b = call.b_state;
        self.send_bye(now, key, Side::A, reason);
        match b {
            BState::Up => self.send_bye(now, key, Side::B, reason),
            BState::Calling => self.stop_ringing_b(now, key),
            BState::Idle => {}
        }
    }

    /// Cancels leg B's INVITE (at once if it rang, else when its first provisional comes).
    fn stop_ringing_b(&mut self, now: Instant, key: CallId) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.ring_deadline = None;
        if call.b_provisional {
            self.send_cancel_b(now, key);
        } else {
            call.cancel_pending = true;
        }
        if let Some(call) = self.calls.get_mut(&key)
            && call.app.is_some()
        {
            call.b_state = BState::Idle;
        }
    }

    /// Forgets leg B of a call Crest answered itself (its dialog is over).
    fn drop_b(&mut self, key: CallId) {
        if let Some(call) = self.calls.get_mut(&key) {
            call.b_state = BState::Idle;
            call.ring_deadline = None;
            self.dialogs.remove(&call.b.call_id);
        }
    }

    /// Leg B of a call Crest answered itself failed with `code`: the application hears it.
    fn b_failed(&mut self, now: Instant, key: CallId, code: u16) {
        self.drop_b(key);
        if let Some(hook) = self.media.as_mut() {
            hook.leg_b(now, key, LegEvent::Failed(code));
        }
    }

    /// Runs the media hook on an SDP body of call `key` (relays it unchanged without a hook).
    fn media_exchange(
        &mut self,
        now: Instant,
        key: CallId,
        from: Side,
        role: SdpRole,
        body: Option<&Bytes>,
    ) -> Result<Option<Bytes>, u16> {
        let Some(hook) = self.media.as_mut() else {
            return Ok(body.cloned());
        };
        let Some(call) = self.calls.get(&key) else {
            return Ok(None);
        };
        let info = CallInfo {
            key,
            call_id: &call.a.call_id,
            number: &call.number,
            caller: &call.caller,
            app: call.app.as_ref(),
        };
        hook.exchange(now, &info, from, role, body.map(|b| &b[..]))
            .map(|b| b.map(Bytes::from))
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls not yet ended.
    pub fn active_calls(&self) -> usize {
        self.active
    }

    /// Registered AoRs.
    pub fn registered_users(&self) -> usize {
        self.registrar.len()
    }

    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.tx.len()
    }

    /// Stop taking new calls (SIGTERM): new INVITEs get 503; calls in progress go on.
    pub fn start_draining(&mut self) {
        self.draining = true;
    }

    /// Set by the driver while it is behind (its inbound queue waits too long): new calls and
    /// registrations get an immediate 503 with Retry-After instead of timing out.
    pub fn set_shedding(&mut self, on: bool) {
        self.shedding = on;
    }

    /// A user registered (`true`: they have contacts now) or lost their last contact
    /// (`false`: removed, lapsed, or its WebSocket closed), in order: agents' phones log them
    /// in and out of the ACD.
    pub fn poll_registration(&mut self) -> Option<(String, bool)> {
        self.registrations.pop_front()
    }

    /// Whether `password` is SIP user `user`'s (their stored HA1 in MD5 or SHA-256 matches):
    /// the agent desktop's login checks the agent's SIP credentials here.
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        let realm = self.auth.realm();
        [
            (Algorithm::Md5, &u.ha1_md5),
            (Algorithm::Sha256, &u.ha1_sha256),
        ]
        .into_iter()
        .any(|(alg, stored)| {
            stored.as_deref().is_some_and(|h| {
                h.eq_ignore_ascii_case(&crate::auth::ha1(alg, user, realm, password))
            })
        })
    }

    /// Connection `conn` closed: the contacts registered over it, if it was a WebSocket, are
    /// gone (a browser is reachable only through its socket); a user left with none is
    /// reported by [`Self::poll_registration`] (an agent is logged out).
    pub fn connection_closed(&mut self, conn: ConnectionId) {
        for aor in self.registrar.drop_connection(conn) {
            info!(aor = %mask(&aor), "unregistered: its WebSocket closed");
            self.registrations.push_back((aor, false));
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] next has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let tx = self.tx.poll_timeout();
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            match self.calls.get(&id).and_then(|c| c.next_deadline()) {
                Some(d) if d <= at => break,
                later => {
                    // Stale entry: the call's deadline moved later (or it has none left).
                    self.timers.pop();
                    if let Some(d) = later {
                        self.timers.push(Reverse((d, id)));
                    }
                }
            }
        }
        let call = self.timers.peek().map(|r| r.0.0);
        [tx, call, Some(self.next_sweep)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_tx(now);
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire_call_timers(now, id);
        }
        // What the call timers sent (CANCEL on ring-out, BYE on session expiry).
        self.drain_tx(now);
        if now >= self.next_sweep {
            self.next_sweep = now + Duration::from_secs(30);
            for aor in self.registrar.sweep(now) {
                info!(aor = %mask(&aor), "unregistered: its binding lapsed");
                self.registrations.push_back((aor, false));
            }
            self.auth.prune(now);
            self.tx.compact();
            if self.calls.capacity() > 1024 && self.calls.len() < self.calls.capacity() / 4 {
                self.calls.shrink_to(self.calls.len() * 2);
                self.dialogs.shrink_to(self.dialogs.len() * 2);
                self.owners.shrink_to(self.owners.len() * 2);
            }
            let rate = self.cfg.rate_limit.burst / self.cfg.rate_limit.requests_per_sec.max(0.001);
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < rate + 1.0);
        }
    }

    fn schedule(&mut self, id: CallId) {
        if let Some(at) = self.calls.get(&id).and_then(|c| c.next_deadline()) {
            self.timers.push(Reverse((at, id)));
        }
    }

    /// Handles one whole message received on `flow`.
    pub fn handle_input(&mut self, now: Instant, flow: Flow, data: Bytes) {
        let msg = match Message::parse(data, flow.transport.framing()) {
            Ok(m) => m,
            Err(e) => {
                self.stats.bad_messages += 1;
                debug!(remote = %flow.remote, error = %e, "unparsable message dropped");
                return;
            }
        };
        if let Err(e) = msg.validate() {
            self.stats.bad_messages += 1;
            debug!(remote = %flow.remote, error = %e, "invalid message");
            if msg.is_request() && msg.method() != Some("ACK") {
                self.stateless(&msg, flow, e.status(), "");
            }
            return;
        }
        if msg.is_request() {
            self.stats.requests_in += 1;
            self.handle_request(now, flow, msg);
        } else {
            self.stats.responses_in += 1;
            self.handle_response(now, &msg);
        }
        self.drain_tx(now);
    }

    fn stateless(&mut self, req: &Message, flow: Flow, code: u16, extra: &str) {
        let routable = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ]
        .iter()
        .all(|h| req.header(*h).is_some());
        if !routable {
            return; // a response could not be matched by the sender (RFC 4475 §3.3.1)
        }
        let tag = self.rng.token();
        let data = response(req, &flow, code, Some(&tag), extra, None);
        self.out.push_back(Transmit { flow, data });
    }

    #[allow(clippy::too_many_arguments)] // a response has this many independent parts
    fn respond(
        &mut self,
        now: Instant,
        tx: TxId,
        req: &Message,
        flow: Flow,
        code: u16,
        to_tag: Option<&str>,
        extra: &str,
        body: Option<(&str, &[u8])>,
    ) {
        let data = response(req, &flow, code, to_tag, extra, body);
        self.tx.send_response(now, tx, code, data);
    }

    /// A final response outside a dialog, with a fresh To tag.
    fn reply(&mut self, now: Instant, id: TxId, req: &Message, flow: Flow, code: u16, extra: &str) {
        let tag = self.rng.token();
        self.respond(now, id, req, flow, code, Some(&tag), extra, None);
    }

    fn drain_tx(&mut self, now: Instant) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                TxEvent::Transmit(t) => self.out.push_back(t),
                TxEvent::Timeout(id, kind) => self.on_tx_timeout(now, id, kind),
            }
        }
    }

    fn allow_source(&mut self, now: Instant, ip: IpAddr) -> bool {
        let rl = &self.cfg.rate_limit;
        if rl.requests_per_sec <= 0.0 || rl.exempt.contains(&ip) {
            return true;
        }
        let (rate, burst) = (rl.requests_per_sec, rl.burst);
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn retry_after(&self) -> String {
        format!("Retry-After: {}\r\n", self.cfg.overload.retry_after_secs)
    }
}

/// Requests outside any call, and the protection in front of them.
impl Endpoint {
    fn local_for(&self, t: TransportKind) -> SocketAddr {
        self.local
            .iter()
            .find(|(k, _)| *k == t)
            .or_else(|| self.local.first())
            .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)), |(_, a)| *a)
    }

    fn via_prefix(&self, t: TransportKind) -> String {
        let a = self.local_for(t);
        let host = match a.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        format!("SIP/2.0/{} {host}:{}", t.via_token(), a.port())
    }

    fn contact(&self, t: TransportKind) -> String {
        let a = self.local_for(t);
        let mut uri = Uri::sip(Some("crest"), &a.ip().to_string(), Some(a.port()));
        if t != TransportKind::Udp {
            uri.params
                .set("transport", Some(t.via_token().to_ascii_lowercase()));
        }
        format!("<{uri}>")
    }

    fn is_own_via(&self, v: &str) -> bool {
        crate::header::Via::parse(v).is_ok_and(|via| {
            via.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX))
                && self.local.iter().any(|(_, a)| {
                    via.host == a.ip().to_string() && via.port.unwrap_or(5060) == a.port()
                })
        })
    }

    fn handle_request(&mut self, now: Instant, flow: Flow, msg: Message) {
        let is_ack = msg.method() == Some("ACK");
        if !is_ack && !self.allow_source(now, flow.remote.ip()) {
            self.stats.rate_limited += 1;
            let extra = self.retry_after();
            self.stateless(&msg, flow, 503, &extra);
            return;
        }
        match self.tx.handle_request(now, &msg, flow) {
            RequestMatch::Retransmission | RequestMatch::AckAbsorbed => {}
            RequestMatch::AckForDialog => self.handle_dialog_ack(now, &msg),
            RequestMatch::New(id) => self.handle_new_request(now, id, flow, msg),
        }
    }

    fn unsupported_required(msg: &Message) -> Vec<String> {
        msg.header_list(HeaderName::Require)
            .iter()
            .chain(msg.header_list(HeaderName::ProxyRequire).iter())
            .map(|o| o.trim().to_owned())
            .filter(|o| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(o)))
            .collect()
    }

    fn handle_new_request(&mut self, now: Instant, id: TxId, flow: Flow, msg: Message) {
        let method = msg.method().unwrap_or_default().to_owned();
        if method == "CANCEL" {
            return self.handle_cancel(now, id, flow, &msg);
        }
        let unsupported = Self::unsupported_required(&msg);
        if !unsupported.is_empty() {
            let extra = format!("Unsupported: {}\r\n", unsupported.join(", "));
            return self.reply(now, id, &msg, flow, 420, &extra);
        }
        let uri = msg.request_uri_str().unwrap_or_default();
        if !Uri::is_sip_scheme(uri) {
            return self.reply(now, id, &msg, flow, 416, "");
        }
        if msg.to_hdr().is_some_and(|t| t.tag().is_some()) {
            return self.handle_in_dialog(now, id, flow, msg);
        }
        if matches!(method.as_str(), "INVITE" | "REGISTER") {
            let overloaded = self.shedding
                || self.tx.len() > self.cfg.overload.max_transactions
                || (method == "INVITE"
                    && (self.draining || self.active_calls() >= self.cfg.overload.max_calls));
            if overloaded {
                self.stats.overload_rejected += 1;
                let extra = self.retry_after();
                return self.reply(now, id, &msg, flow, 503, &extra);
            }
        }
        match method.as_str() {
            "REGISTER" => self.handle_register(now, id, flow, &msg),
            "INVITE" => self.handle_invite(now, id, flow, msg),
            "OPTIONS" => {
                let extra =
                    format!("Allow: {ALLOW}\r\nAccept: application/sdp\r\nSupported: timer\r\n");
                self.reply(now, id, &msg, flow, 200, &extra);
            }
            "BYE" | "INFO" | "UPDATE" | "PRACK" => {
                self.reply(now, id, &msg, flow, 481, "");
            }
            "SUBSCRIBE" | "NOTIFY" | "REFER" | "MESSAGE" | "PUBLISH" => {
                let extra = format!("Allow: {ALLOW}\r\n");
                self.reply(now, id, &msg, flow, 405, &extra);
            }
            _ => {
                let extra = format!("Allow: {ALLOW}\r\n");
                self.reply(now, id, &msg, flow, 501, &extra);
            }
        }
    }

    /// Checks digest credentials in Authorization or Proxy-Authorization; `Ok(user)` on success.
    fn authenticate(&mut self, now: Instant, msg: &Message) -> Result<String, AuthError> {
        let method = msg.method().unwrap_or_default();
        let mut result = Err(AuthError::Missing);
        for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
            for h in msg.headers().iter().filter(|h| h.name == name) {
                let Some(c) = Credentials::parse(&msg.value(h)) else {
                    continue; // unknown scheme: ignored (RFC 4475 §3.3.7)
                };
                if c.realm != self.auth.realm() {
                    continue;
                }
                let users = &self.users;
                result = self
                    .auth
                    .verify(now, method, &c, |u, alg| {
                        users.get(u).and_then(|x| match alg {
                            Algorithm::Md5 => x.ha1_md5.clone(),
                            Algorithm::Sha256 => x.ha1_sha256.clone(),
                        })
                    })
                    .map(|()| c.username.clone());
                if result.is_ok() {
                    return result;
                }
            }
        }
        result
    }

    /// Answers a failed authentication: a challenge (401, stale when the nonce expired) or 403.
    fn refuse_auth(&mut self, now: Instant, id: TxId, msg: &Message, flow: Flow, e: &AuthError) {
        self.stats.auth_rejected += 1;
        let (code, stale) = match e {
            AuthError::Stale => (401, true),
            AuthError::Missing
            | AuthError::BadNonce
            | AuthError::Replay
            | AuthError::Unsupported => (401, false),
            _ => (403, false),
        };
        let mut extra = String::new();
        if code == 401 {
            // Browsers' SIP stacks read the last challenge only, and speak MD5 only.
            let last = matches!(flow.transport, TransportKind::Ws | TransportKind::Wss)
                .then_some(Algorithm::Md5);
            for c in self.auth.challenges_ending_with(now, stale, last) {
                extra.push_str("WWW-Authenticate: ");
                extra.push_str(&c);
                extra.push_str("\r\n");
            }
        }
        debug!(remote = %flow.remote, error = %e, code, "authentication refused");
        self.reply(now, id, msg, flow, code, &extra);
    }

    fn handle_register(&mut self, now: Instant, id: TxId, flow: Flow, msg: &Message) {
        let user = match self.authenticate(now, msg) {
            Ok(u) => u,
            Err(e) => return self.refuse_auth(now, id, msg, flow, &e),
        };
        let Some(aor) = msg
            .to_hdr()
            .filter(|t| t.uri.is_sip())
            .and_then(|t| t.uri.user_unescaped())
        else {
            return self.reply(now, id, msg, flow, 400, "");
        };
        if user != aor {
            self.stats.auth_rejected += 1;
            return self.reply(now, id, msg, flow, 403, "");
        }
        match self.registrar.handle_register(now, &aor, msg, flow) {
            Ok(bindings) => {
                self.stats.registrations += 1;
                let mut extra = String::new();
                for b in &bindings {
                    let left = b.expires_at.saturating_duration_since(now).as_secs();
                    extra.push_str(&format!(
                        "Contact: <{}>{};expires={left}\r\n",
                        b.uri, b.params
                    ));
                }
                info!(aor = %mask(&aor), contacts = bindings.len(), "registered");
                self.registrations
                    .push_back((aor.clone(), !bindings.is_empty()));
                self.reply(now, id, msg, flow, 200, &extra);
            }
            Err(e) => {
                let extra = match e {
                    RegisterError::IntervalTooBrief(min) => format!("Min-Expires: {min}\r\n"),
                    _ => String::new(),
                };
                self.reply(now, id, msg, flow, e.status(), &extra);
            }
        }
    }

    fn handle_cancel(&mut self, now: Instant, id: TxId, flow: Flow, msg: &Message) {
        let Some(invite_tx) = self.tx.invite_for_cancel(msg) else {
            return self.reply(now, id, msg, flow, 481, "");
        };
        self.reply(now, id, msg, flow, 200, "");
        let call = self
            .calls
            .iter()
            .find(|(_, c)| c.a_invite_tx == invite_tx)
            .map(|(k, _)| *k);
        if let Some(call) = call {
            self.cancel_call(now, call, 487, "caller cancelled");
        }
    }
}

/// B2BUA call control.
impl Endpoint {
    fn handle_invite(&mut self, now: Instant, id: TxId, flow: Flow, msg: Message) {
        let reject = |this: &mut Self, code: u16, extra: &str| {
            let tag = this.rng.token();
            this.respond(now, id, &msg, flow, code, Some(&tag), extra, None);
        };
        if msg
            .header_list(HeaderName::Via)
            .iter()
            .skip(1)
            .any(|v| self.is_own_via(v))
        {
            return reject(self, 482, "");
        }
        let max_forwards = msg.max_forwards().unwrap_or(70);
        if max_forwards == 0 {
            return reject(self, 483, "");
        }
        let body = msg.body();
        if !body.is_empty() {
            let ctype = msg.header(HeaderName::ContentType).unwrap_or_default();
            let base = ctype
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if base != "application/sdp" {
                return reject(self, 415, "Accept: application/sdp\r\n");
            }
        }
        if let Some(accept) = msg.header(HeaderName::Accept) {
            let ok = split_list(&accept).any(|a| {
                let a = a
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                a == "application/sdp" || a == "*/*" || a == "application/*"
            });
            if !ok {
                return reject(self, 406, "Accept: application/sdp\r\n");
            }
        }
        let number = Uri::parse(msg.request_uri_str().unwrap_or_default())
            .ok()
            .and_then(|u| u.user_unescaped())
            .unwrap_or_default();
        let Some((target, public)) = self.routes.get(&number).cloned() else {
            debug!(number = %mask(&number), "no route");
            return reject(self, 404, "");
        };
        if !public && let Err(e) = self.authenticate(now, &msg) {
            return self.refuse_auth(now, id, &msg, flow, &e);
        }
        // RFC 4028: the caller's Session-Expires, checked against Min-SE.
        let st = self.cfg.session_timer;
        let caller_se = msg
            .header(HeaderName::SessionExpires)
            .and_then(|v| parse_u32(v.split(';').next().unwrap_or("").trim().as_bytes()));
        if let Some(se) = caller_se
            && se < st.min_se
        {
            return reject(self, 422, &format!("Min-SE: {}\r\n", st.min_se));
        }
        let caller_timer = caller_se.is_some()
            || msg
                .header_list(HeaderName::Supported)
                .iter()
                .any(|s| s.eq_ignore_ascii_case("timer"));
        let session_interval = caller_timer.then(|| {
            Duration::from_secs(
                caller_se
                    .unwrap_or(st.session_expires)
                    .min(st.session_expires)
                    .max(st.min_se)
                    .into(),
            )
        });
        let (b_target, b_flow) = match &target {
            RouteTarget::App(app) => {
                return self.answer_app(now, id, flow, msg, number, app.clone(), session_interval);
            }
            RouteTarget::Uri(uri, addr) => (
                uri.to_string(),
                Flow {
                    transport: uri_transport(uri).0,
                    remote: *addr,
                    connection: None,
                },
            ),
            RouteTarget::User(user) => match self.registrar.lookup(now, user).first() {
                Some(b) => (b.uri.to_string(), b.flow),
                None => {
                    debug!(user = %mask(user), "callee not registered");
                    return reject(self, 480, "");
                }
            },
        };
        let Some((a, from, to)) = self.leg_a(&msg, flow) else {
            return reject(self, 400, "");
        };
        let local = self.local_for(b_flow.transport);
        let mut b_from = from.clone();
        b_from.params.remove("tag");
        b_from.uri = Uri::sip(from.uri.user.as_deref(), &local.ip().to_string(), None);
        let b_to = NameAddr::parse(&format!("<{b_target}>")).unwrap_or(to);
        let b = Leg {
            call_id: format!("{}@crest", self.rng.token()).into(),
            local_tag: self.rng.token().into(),
            remote_tag: None,
            local_uri: b_from.to_string(),
            remote_uri: without_tag(&b_to),
            remote_target: b_target,
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: 0,
            flow: b_flow,
            ack: None,
            pending_ok: None,
        };
        let call_key = CallId(self.next_call);
        self.next_call += 1;
        let sdp = (!body.is_empty()).then_some(&body[..]);
        let b_body: Option<Bytes> = match self.media.as_mut() {
            None => sdp.map(|_| body.clone()),
            Some(hook) => {
                let info = CallInfo {
                    key: call_key,
                    call_id: &a.call_id,
                    number: &number,
                    caller: &from.uri.user_unescaped().unwrap_or_default(),
                    app: None,
                };
                match hook.exchange(now, &info, Side::A, SdpRole::Offer, sdp) {
                    Ok(b) => b.map(Bytes::from),
                    Err(code) => {
                        debug!(status = code, "media refused the offer");
                        return reject(self, code, media_warning(code));
                    }
                }
            }
        };
        let span = info_span!("call", call_id = %a.call_id, leg_b = %b.call_id);
        let caller = from.uri.user_unescaped().unwrap_or_default();
        let ctype = msg
            .header(HeaderName::ContentType)
            .map_or_else(|| "application/sdp".to_owned(), |c| c.into_owned());
        let mut extra = format!("Supported: timer\r\nAllow: {ALLOW}\r\n");
        extra.push_str(&format!(
            "Session-Expires: {};refresher=uac\r\n",
            st.session_expires
        ));
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let via = self.via_prefix(b_flow.transport);
        let contact = self.contact(b_flow.transport);
        let body_ref = b_body.as_deref().map(|b| (ctype.as_str(), b));
        let b_invite = own(b.request(&RequestParts {
            method: "INVITE",
            cseq: 1,
            branch: &branch,
            via_prefix: &via,
            contact: Some(&contact),
            max_forwards: max_forwards - 1,
            extra: &extra,
            body: body_ref,
        }));
        {
            let _g = span.enter();
            info!(from = %mask(&from.uri.user_unescaped().unwrap_or_default()), %number, "call routed");
        }
        // 100 Trying at once, so the caller stops retransmitting.
        self.respond(now, id, &msg, flow, 100, None, "", None);
        let Some(b_tx) = self.tx.send_request(now, b_invite.clone(), b_flow) else {
            if let Some(hook) = self.media.as_mut() {
                hook.ended(now, call_key);
            }
            return;
        };
        self.owners.insert(b_tx, Owner::BInvite(call_key));
        self.dialogs.insert(a.call_id.clone(), (call_key, Side::A));
        self.dialogs.insert(b.call_id.clone(), (call_key, Side::B));
        self.calls.insert(
            call_key,
            Box::new(Call {
                span,
                state: CallState::Early,
                a,
                b,
                number: number.into(),
                caller: caller.into(),
                app: None,
                app_answer: None,
                originated: false,
                a_invite: msg,
                a_invite_tx: id,
                b_state: BState::Calling,
                b_invite: Some(b_invite),
                b_invite_tx: Some(b_tx),
                b_provisional: false,
                b_browser: false,
                cancel_pending: false,
                session_interval,
                started: now,
                answered: None,
                ring_deadline: Some(now + Duration::from_secs(self.cfg.ring_timeout_secs.into())),
                session_deadline: None,
                linger_until: None,
            }),
        );
        self.stats.calls_started += 1;
        self.active += 1;
        self.schedule(call_key);
    }

    /// Leg A of a new call from the caller's INVITE, with its From and To.
    fn leg_a(&mut self, msg: &Message, flow: Flow) -> Option<(Leg, NameAddr, NameAddr)> {
        let (from, to, cseq) = (msg.from_hdr()?, msg.to_hdr()?, msg.cseq()?);
        let a_contact = msg
            .header_list(HeaderName::Contact)
            .first()
            .and_then(|c| NameAddr::parse(c).ok())
            .map_or_else(|| from.uri.to_string(), |c| c.uri.to_string());
        let a = Leg {
            call_id: msg.call_id().unwrap_or_default().into(),
            local_tag: self.rng.token().into(),
            remote_tag: from.tag().map(Box::from),
            local_uri: without_tag(&to),
            remote_uri: without_tag(&from),
            remote_target: a_contact,
            route_set: msg
                .header_list(HeaderName::RecordRoute)
                .iter()
                .map(|r| r.to_string())
                .collect(),
            local_cseq: self.rng.next() as u32 & 0xffff,
            remote_cseq: cseq.seq,
            flow,
            ack: None,
            pending_ok: None,
        };
        Some((a, from, to))
    }

    /// The headers of Crest's 2xx to the caller's INVITE.
    fn ok_headers(&self, t: TransportKind, session_interval: Option<Duration>) -> String {
        let mut extra = format!(
            "Contact: {}\r\nAllow: {ALLOW}\r\nSupported: timer\r\n",
            self.contact(t)
        );
        if let Some(se) = session_interval {
            extra.push_str(&format!(
                "Session-Expires: {};refresher=uac\r\nRequire: timer\r\n",
                se.as_secs()
            ));
        }
        extra
    }

    /// A call to an application route: Crest answers the caller itself (200 with the media
    /// layer's answer) and the application (IVR, queue) takes it from there.
    #[allow(clippy::too_many_arguments)] // the INVITE's parts, resolved by handle_invite
    fn answer_app(
        &mut self,
        now: Instant,
        id: TxId,
        flow: Flow,
        msg: Message,
        number: String,
        app: App,
        session_interval: Option<Duration>,
    ) {
        let reject = |this: &mut Self, code: u16, extra: &str| {
            let tag = this.rng.token();
            this.respond(now, id, &msg, flow, code, Some(&tag), extra, None);
        };
        let Some((a, from, _)) = self.leg_a(&msg, flow) else {
            return reject(self, 400, "");
        };
        let caller = from.uri.user_unescaped().unwrap_or_default();
        let key = CallId(self.next_call);
        let body = msg.body();
        let sdp = (!body.is_empty()).then_some(&body[..]);
        let Some(hook) = self.media.as_mut() else {
            return reject(self, 503, "");
        };
        let info = CallInfo {
            key,
            call_id: &a.call_id,
            number: &number,
            caller: &caller,
            app: Some(&app),
        };
        let answer = match hook.answer(now, &info, sdp) {
            Ok(b) => b,
            Err(code) => {
                debug!(status = code, "media refused the offer");
                return reject(self, code, media_warning(code));
            }
        };
        self.next_call += 1;
        let span = info_span!("call", call_id = %a.call_id, %app);
        // A queue admits the caller (200) or refuses them after an announcement (503): until
        // it decides, the caller hears Crest as early media.
        let early = matches!(app, App::Queue(_));
        if early {
            let _g = span.enter();
            info!(from = %mask(&caller), %number, "call taken by Crest (early media until admitted)");
            let extra = format!("Contact: {}\r\n", self.contact(flow.transport));
            self.respond(
                now,
                id,
                &msg,
                flow,
                183,
                Some(&a.local_tag),
                &extra,
                Some(("application/sdp", &answer)),
            );
        }
        self.dialogs.insert(a.call_id.clone(), (key, Side::A));
        let mut call = Call::taken(span, a, &number, &caller, app, msg, id, now);
        call.app_answer = Some(answer);
        call.session_interval = session_interval;
        // A decision that never comes must not hold the caller forever.
        call.ring_deadline = early.then(|| now + APP_DECISION);
        self.calls.insert(key, Box::new(call));
        self.stats.calls_started += 1;
        self.active += 1;
        if !early {
            self.send_app_ok(now, key);
        }
        self.schedule(key);
    }

    /// Crest's 200 to the caller of a call it answers itself (retransmitted until the ACK).
    fn send_app_ok(&mut self, now: Instant, key: CallId) {
        let t1 = self.tx.timers().t1;
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let (invite, tx, flow, tag) = call.a_invite_reply();
        let extra = self.ok_headers(flow.transport, call.session_interval);
        let call = self.calls.get_mut(&key).expect("checked above");
        let answer = call.app_answer.take().unwrap_or_default();
        let data = response(
            &invite,
            &flow,
            200,
            Some(&tag),
            &extra,
            Some(("application/sdp", &answer)),
        );
        call.a.pending_ok = Some(PendingOk {
            data: data.clone(),
            cseq: call.a.remote_cseq,
            next: now + t1,
            interval: t1,
            give_up: now + 64 * t1,
        });
        call.state = CallState::Answered;
        call.answered = Some(now);
        call.ring_deadline = None;
        call.session_deadline = call
            .session_interval
            .map(|se| now + se - (se / 3).min(Duration::from_secs(32)));
        {
            let _g = call.span.enter();
            info!("call answered by Crest");
        }
        self.stats.calls_answered += 1;
        self.tx.send_response(now, tx, 200, data);
        self.schedule(key);
    }

    fn handle_response(&mut self, now: Instant, msg: &Message) {
        let id = match self.tx.handle_response(now, msg) {
            ResponseMatch::Deliver(id) => id,
            ResponseMatch::Absorbed | ResponseMatch::NoMatch => return,
        };
        let Some(owner) = self.owners.get(&id).cloned() else {
            return;
        };
        let code = msg.status().unwrap_or(500);
        if code >= 200 && !(code < 300 && msg.cseq().is_some_and(|c| c.method == "INVITE")) {
            self.owners.remove(&id);
        }
        match owner {
            Owner::BInvite(call) => {
                let current = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.b_invite_tx == Some(id));
                if current {
                    self.on_b_invite_response(now, call, msg, code);
                }
            }
            Owner::AInvite(call) => self.on_a_invite_response(now, call, msg, code),
            Owner::Own => {}
            Owner::Relay {
                call,
                from,
                server_tx,
                request,
            } => {
                self.on_relay_response(now, call, from, server_tx, &request, msg, code);
            }
        }
    }

    fn on_b_invite_response(&mut self, now: Instant, key: CallId, msg: &Message, code: u16) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _g = call.span.clone().entered();
        if code == 100 {
            return;
        }
        if code < 200 {
            call.b.learn_from_response(msg);
            call.b_provisional = true;
            if call.cancel_pending {
                call.cancel_pending = false;
                self.send_cancel_b(now, key);
                return;
            }
            if call.app.is_some() {
                // The caller is answered already: the agent's ringing is for the application.
                if call.b_state == BState::Calling
                    && code == 180
                    && let Some(hook) = self.media.as_mut()
                {
                    hook.leg_b(now, key, LegEvent::Ringing);
                }
                return;
            }
            if call.state != CallState::Early {
                return;
            }
            let (a_invite, tx, flow, tag) = call.a_invite_reply();
            let extra = format!("Contact: {}\r\n", self.contact(flow.transport));
            let body = msg.body();
            // Early media: the 18x's SDP is the callee's answer.
            let a_body = if body.is_empty() {
                None
            } else {
                self.media_exchange(now, key, Side::B, SdpRole::Answer, Some(&body))
                    .unwrap_or_else(|code| {
                        debug!(status = code, "early media refused");
                        None
                    })
            };
            let body_ref = a_body.as_deref().map(|b| ("application/sdp", b));
            self.respond(now, tx, &a_invite, flow, code, Some(&tag), &extra, body_ref);
            return;
        }
        if code < 300 {
            return self.on_b_answer(now, key, msg);
        }
        if call.app.is_some() {
            if call.b_state == BState::Calling {
                info!(status = code, "connection refused");
                self.b_failed(now, key, code);
            }
            return;
        }
        // A failure from the callee, mapped for the caller (RFC 3261 §16.7 on 503, 6xx kept).
        let mapped = match code {
            300..=399 => 480,
            401 | 407 => 403,
            503 => 500,
            c => c,
        };
        if call.state == CallState::Early {
            info!(status = code, "callee refused");
            let (a_invite, tx, flow, tag) = call.a_invite_reply();
            if !self.tx.is_final_sent(tx) {
                self.respond(now, tx, &a_invite, flow, mapped, Some(&tag), "", None);
            }
            self.end_call(now, key, "callee refused");
        }
    }

    fn on_b_answer(&mut self, now: Instant, key: CallId, msg: &Message) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let via_prefix = self.via_prefix(call.b.flow.transport);
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let t1 = self.tx.timers().t1;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        // A 2xx retransmission: resend our ACK.
        if call.b.ack.is_some()
            && call.b.remote_tag.as_deref() == msg.to_hdr().as_ref().and_then(|t| t.tag())
        {
            if let Some(ack) = call.b.ack.clone() {
                self.out.push_back(Transmit {
                    flow: call.b.flow,
                    data: ack,
                });
            }
            return;
        }
        call.b.learn_from_response(msg);
        // A browser's 2xx carries its offer: Crest's answer goes in the ACK.
        let browser = call.app.is_some() && call.b_state == BState::Calling && call.b_browser;
        let answer = if browser {
            let body = msg.body();
            let sdp = (!body.is_empty()).then_some(&body);
            sdp.ok_or(488u16)
                .and_then(|sdp| self.media_exchange(now, key, Side::B, SdpRole::Offer, Some(sdp)))
        } else {
            Ok(None)
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let ack = call.b.request(&RequestParts {
            method: "ACK",
            cseq: 1,
            branch: &branch,
            via_prefix: &via_prefix,
            contact: None,
            max_forwards: 70,
            extra: "",
            body: answer
                .as_ref()
                .ok()
                .and_then(Option::as_deref)
                .map(|a| ("application/sdp", a)),
        });
        call.b.ack = Some(ack.clone());
        self.out.push_back(Transmit {
            flow: call.b.flow,
            data: ack,
        });
        if let Err(code) = answer {
            // RFC 3261 §13.2.2.4: an unusable offer in a 2xx is ACKed, then hung up.
            info!(status = code, "the browser's offer refused");
            self.send_bye(now, key, Side::B, "unusable SDP offer");
            return self.b_failed(now, key, code);
        }
        if call.app.is_some() {
            return self.on_connected(now, key, msg);
        }
        if call.state != CallState::Early {
            // Cancelled or ended meanwhile: the callee answered anyway, so hang it up.
            self.send_bye(now, key, Side::B, "call already ended");
            return;
        }
        let callee_se = msg
            .header(HeaderName::SessionExpires)
            .and_then(|v| parse_u32(v.split(';').next().unwrap_or("").trim().as_bytes()))
            .map(|s| Duration::from_secs(s.into()));
        call.session_interval = match (call.session_interval, callee_se) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let body = msg.body();
        let sdp = (!body.is_empty()).then_some(&body);
        let a_body = match self.media_exchange(now, key, Side::B, SdpRole::Answer, sdp) {
            Ok(b) => b,
            Err(code) => {
                // The callee's answer is unusable: hang it up, refuse the caller.
                info!(status = code, "callee's SDP answer refused");
                self.send_bye(now, key, Side::B, "unusable SDP answer");
                let call = &self.calls[&key];
                let (a_invite, tx, flow, tag) = call.a_invite_reply();
                self.respond(now, tx, &a_invite, flow, code, Some(&tag), "", None);
                return self.end_call(now, key, "unusable SDP answer");
            }
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.state = CallState::Answered;
        call.b_state = BState::Up;
        call.answered = Some(now);
        call.ring_deadline = None;
        let (a_invite, tx, flow, tag) = call.a_invite_reply();
        let se = call.session_interval;
        let extra = self.ok_headers(flow.transport, se);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let data = response(
            &a_invite,
            &flow,
            200,
            Some(&tag),
            &extra,
            a_body.as_deref().map(|b| ("application/sdp", b)),
        );
        let cseq = call.a.remote_cseq;
        call.a.pending_ok = Some(PendingOk {
            data: data.clone(),
            cseq,
            next: now + t1,
            interval: t1,
            give_up: now + 64 * t1,
        });
        if let Some(se) = call.session_interval {
            call.session_deadline = Some(now + se - (se / 3).min(Duration::from_secs(32)));
        }
        info!("call answered");
        self.stats.calls_answered += 1;
        self.tx.send_response(now, tx, 200, data);
        self.schedule(key);
    }

    /// Leg B of a call Crest answered itself answered (ACKed already): bridge the legs.
    fn on_connected(&mut self, now: Instant, key: CallId, msg: &Message) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        if call.state == CallState::Ended || call.b_state != BState::Calling {
            // Cancelled or ended meanwhile: the far end answered anyway, so hang it up.
            self.send_bye(now, key, Side::B, "call already ended");
            return;
        }
        let body = msg.body();
        let sdp = (!body.is_empty()).then_some(&body);
        // Leg A was answered long ago: what the media layer would send there is dropped (a
        // browser's offer was answered in the ACK already).
        if !call.b_browser
            && let Err(code) = self.media_exchange(now, key, Side::B, SdpRole::Answer, sdp)
        {
            info!(status = code, "SDP answer of the connected leg refused");
            self.send_bye(now, key, Side::B, "unusable SDP answer");
            return self.b_failed(now, key, code);
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        call.b_state = BState::Up;
        call.ring_deadline = None;
        info!(target = %call.b.remote_target, "connected");
        if let Some(hook) = self.media.as_mut() {
            hook.leg_b(now, key, LegEvent::Answered);
        }
    }

    fn send_cancel_b(&mut self, now: Instant, key: CallId) {
        self.send_cancel(now, key, Side::B);
    }

    /// CANCEL of Crest's INVITE on `side` (leg B, or leg A of a call Crest placed).
    fn send_cancel(&mut self, now: Instant, key: CallId, side: Side) {
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let inv = match side {
            Side::A if call.originated => &call.a_invite,
            Side::A => return,
            Side::B => match &call.b_invite {
                Some(i) => i,
                None => return,
            },
        };
        let mut out = format!(
            "CANCEL {} SIP/2.0\r\n",
            inv.request_uri_str().unwrap_or_default()
        );
        for name in [
            HeaderName::Via,
            HeaderName::MaxForwards,
            HeaderName::Route,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
        ] {
            for h in inv.headers().iter().filter(|h| h.name == name) {
                out.push_str(name.canonical().unwrap_or_default());
                out.push_str(": ");
                out.push_str(&inv.value(h));
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!(
            "CSeq: {} CANCEL\r\n",
            inv.cseq().map_or(1, |c| c.seq)
        ));
        let flow = call.leg(side).flow;
        let cancel = own(crate::build::finish(out, None));
        if let Some(id) = self.tx.send_request(now, cancel, flow) {
            self.owners.insert(id, Owner::Own);
        }
    }

    /// Ends a call that is not yet answered: `code` to the caller, CANCEL to the callee.
    fn cancel_call(&mut self, now: Instant, key: CallId, code: u16, why: &str) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state != CallState::Early {
            return;
        }
        let (a_invite, tx, flow, tag) = call.a_invite_reply();
        let provisional = call.b_provisional;
        if !provisional {
            call.cancel_pending = true;
        }
        if !self.tx.is_final_sent(tx) {
            self.respond(now, tx, &a_invite, flow, code, Some(&tag), "", None);
        }
        if provisional {
            self.send_cancel_b(now, key);
        }
        self.end_call(now, key, why);
    }

    fn send_bye(&mut self, now: Instant, key: CallId, side: Side, reason: &str) {
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let via = self.via_prefix(call.leg(side).flow.transport);
        let call = self.calls.get_mut(&key).expect("checked above");
        let leg = call.leg_mut(side);
        leg.local_cseq += 1;
        let extra = format!("Reason: SIP;cause=200;text=\"{reason}\"\r\n");
        let bye = own(leg.request(&RequestParts {
            method: "BYE",
            cseq: leg.local_cseq,
            branch: &branch,
            via_prefix: &via,
            contact: None,
            max_forwards: 70,
            extra: &extra,
            body: None,
        }));
        let flow = leg.flow;
        if let Some(id) = self.tx.send_request(now, bye, flow) {
            self.owners.insert(id, Owner::Own);
        }
    }

    /// Marks a call ended. It lingers for T4 so that stragglers of its dialogs (a late ACK, a
    /// BYE crossing ours) still find it; retransmissions are absorbed by the transactions.
    fn end_call(&mut self, now: Instant, key: CallId, why: &str) {
        let linger = self.tx.timers().t4;
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if call.state == CallState::Ended {
            return;
        }
        let _g = call.span.clone().entered();
        let talk = call
            .answered
            .map(|a| now.saturating_duration_since(a).as_secs());
        info!(
            reason = why,
            talk_secs = talk,
            duration_ms = now.saturating_duration_since(call.started).as_millis() as u64,
            "call ended"
        );
        call.state = CallState::Ended;
        if let Some(hook) = self.media.as_mut() {
            hook.ended(now, key);
        }
        self.active -= 1;
        call.ring_deadline = None;
        call.session_deadline = None;
        call.linger_until = Some(now + linger);
        self.stats.calls_ended += 1;
        self.schedule(key);
    }

    fn remove_call(&mut self, key: CallId) {
        if let Some(call) = self.calls.remove(&key) {
            self.dialogs.remove(&call.a.call_id);
            self.dialogs.remove(&call.b.call_id);
            // Other owners (relays, BYE, CANCEL) leave with their final response or timeout.
            if let Some(tx) = call.b_invite_tx {
                self.owners.remove(&tx);
            }
        }
    }

    fn fire_call_timers(&mut self, now: Instant, key: CallId) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let _g = call.span.clone().entered();
        for side in [Side::A, Side::B] {
            let leg = call.leg_mut(side);
            if let Some(p) = leg.pending_ok.as_mut()
                && p.next <= now
            {
                if now >= p.give_up {
                    leg.pending_ok = None;
                    warn!(?side, "no ACK for 2xx");
                    if call.state == CallState::Answered {
                        self.bye_all(now, key, "no ACK");
                        self.end_call(now, key, "no ACK for 2xx");
                    }
                    return self.schedule(key);
                }
                p.interval = (p.interval * 2).min(self.tx.timers().t2);
                p.next = now + p.interval;
                let t = Transmit {
                    flow: leg.flow,
                    data: p.data.clone(),
                };
                self.out.push_back(t);
            }
        }
        let call = self.calls.get_mut(&key).expect("still present");
        if call.ring_deadline.is_some_and(|d| d <= now) {
            call.ring_deadline = None;
            info!("no answer");
            if call.originated && call.state == CallState::Early {
                self.send_cancel(now, key, Side::A);
                self.end_call(now, key, "no answer");
                if let Some(hook) = self.media.as_mut() {
                    hook.leg_a(now, key, LegEvent::Failed(480));
                }
            } else if call.app.is_some() && call.state == CallState::Early {
                self.refuse(now, key, 503, Some(60));
            } else if call.app.is_some() {
                self.stop_ringing_b(now, key);
                self.b_failed(now, key, 480);
            } else {
                self.cancel_call(now, key, 480, "no answer");
            }
            return self.schedule(key);
        }
        if call.session_deadline.is_some_and(|d| d <= now) {
            call.session_deadline = None;
            info!("session timer expired");
            self.bye_all(now, key, "session timer expired");
            self.end_call(now, key, "session timer expired");
            return self.schedule(key);
        }
        if call.linger_until.is_some_and(|d| d <= now) {
            return self.remove_call(key);
        }
        self.schedule(key);
    }

    fn on_tx_timeout(&mut self, now: Instant, id: TxId, kind: TimeoutKind) {
        match self.owners.remove(&id) {
            Some(Owner::AInvite(key)) => {
                if self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.state == CallState::Early)
                {
                    self.end_call(now, key, "the callee did not respond");
                    if let Some(hook) = self.media.as_mut() {
                        hook.leg_a(now, key, LegEvent::Failed(408));
                    }
                }
            }
            Some(Owner::BInvite(key)) => {
                if let Some(call) = self.calls.get(&key)
                    && call.app.is_some()
                {
                    if call.b_invite_tx == Some(id) && call.b_state == BState::Calling {
                        self.b_failed(now, key, 408);
                    }
                } else if let Some(call) = self.calls.get(&key)
                    && call.state == CallState::Early
                {
                    let (a_invite, tx, flow, tag) = call.a_invite_reply();
                    self.respond(now, tx, &a_invite, flow, 408, Some(&tag), "", None);
                    self.end_call(now, key, "callee did not respond");
                }
            }
            Some(Owner::Relay {
                call,
                from,
                server_tx,
                request,
            }) => {
                if let Some(c) = self.calls.get(&call) {
                    let leg = c.leg(from);
                    let (flow, tag) = (leg.flow, leg.local_tag.clone());
                    self.respond(now, server_tx, &request, flow, 408, Some(&tag), "", None);
                }
            }
            Some(Owner::Own) | None => {
                debug!(?kind, "transaction timed out");
            }
        }
    }

    /// An ACK for a 2xx Crest sent (to the initial INVITE or a relayed re-INVITE).
    fn handle_dialog_ack(&mut self, now: Instant, msg: &Message) {
        let Some(&(key, side)) = msg.call_id().and_then(|c| self.dialogs.get(c.as_ref())) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let seq = msg.cseq().map_or(0, |c| c.seq);
        let leg = call.leg_mut(side);
        if leg.pending_ok.as_ref().is_some_and(|p| p.cseq == seq) {
            leg.pending_ok = None;
            let body = msg.body();
            if !body.is_empty() {
                // The answer to the offer Crest made in its 2xx (late offer).
                if let Err(code) = self.media_exchange(now, key, side, SdpRole::Answer, Some(&body))
                {
                    debug!(status = code, "SDP answer in ACK refused");
                }
            }
        }
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        if side == Side::A && call.state == CallState::Answered {
            call.state = CallState::Confirmed;
        }
    }

    fn handle_in_dialog(&mut self, now: Instant, id: TxId, flow: Flow, msg: Message) {
        let method = msg.method().unwrap_or_default().to_owned();
        let found = msg
            .call_id()
            .and_then(|c| self.dialogs.get(c.as_ref()).copied());
        let to_tag = msg.to_hdr().and_then(|t| t.tag().map(str::to_owned));
        let Some((key, side)) = found.filter(|(k, s)| {
            self.calls
                .get(k)
                .is_some_and(|c| Some(&*c.leg(*s).local_tag) == to_tag.as_deref())
        }) else {
            return self.respond(now, id, &msg, flow, 481, None, "", None);
        };
        let call = self.calls.get_mut(&key).expect("found in dialogs");
        let _g = call.span.clone().entered();
        let seq = msg.cseq().map_or(0, |c| c.seq);
        let leg = call.leg_mut(side);
        // Leg B's remote CSeq is 0 until the callee sends its first request.
        let stale = seq <= leg.remote_cseq && (side == Side::A || leg.remote_cseq != 0);
        if stale {
            return self.respond(now, id, &msg, flow, 500, None, "Retry-After: 1\r\n", None);
        }
        leg.remote_cseq = seq;
        if call.state == CallState::Ended {
            let code = if method == "BYE" { 200 } else { 481 };
            return self.respond(now, id, &msg, flow, code, None, "", None);
        }
        if method == "BYE" {
            info!(?side, "hang-up");
            self.respond(now, id, &msg, flow, 200, None, "", None);
            let (state, app, b) = {
                let c = &self.calls[&key];
                (c.state, c.app.is_some(), c.b_state)
            };
            if app && state == CallState::Early {
                self.cancel_call(now, key, 487, "caller hung up early");
            } else if app {
                if side == Side::A {
                    if b == BState::Up {
                        self.send_bye(now, key, Side::B, "caller hung up");
                    } else if b == BState::Calling {
                        self.stop_ringing_b(now, key);
                    }
                    self.end_call(now, key, "caller hung up");
                } else if b == BState::Up {
                    // The caller stays with the application (a survey, or its hang-up).
                    self.drop_b(key);
                    if let Some(hook) = self.media.as_mut() {
                        hook.leg_b(now, key, LegEvent::Ended);
                    }
                } else {
                    self.b_failed(now, key, 480);
                }
            } else if side == Side::B && state == CallState::Early {
                // Callee gave up before answering (early dialog BYE): treat as a refusal.
                self.cancel_call(now, key, 480, "callee hung up early");
            } else if side == Side::A && state == CallState::Early {
                self.cancel_call(now, key, 487, "caller hung up early");
            } else {
                self.send_bye(now, key, side.other(), "hung up by the other party");
                self.end_call(
                    now,
                    key,
                    if side == Side::A {
                        "caller hung up"
                    } else {
                        "callee hung up"
                    },
                );
            }
            return;
        }
        if matches!(call.state, CallState::Early) {
            return self.respond(now, id, &msg, flow, 491, None, "Retry-After: 1\r\n", None);
        }
        if method == "INVITE"
            && let Some(c) = msg.header_list(HeaderName::Contact).first()
            && let Ok(na) = NameAddr::parse(c)
        {
            call.leg_mut(side).remote_target = na.uri.to_string();
        }
        if method == "INFO"
            && let Some(hook) = self.media.as_mut()
        {
            let ctype = msg.header(HeaderName::ContentType).unwrap_or_default();
            if hook.info(now, key, side, &ctype, &msg.body()) {
                return self.respond(now, id, &msg, flow, 200, None, "", None);
            }
        }
        let call = &self.calls[&key];
        // Nobody to relay to, or a browser on leg B: its WebRTC session is Crest's to answer,
        // and the caller's re-offers need no browser.
        if call.app.is_some() && (call.b_state != BState::Up || call.b_browser) {
            return self.answer_in_dialog(now, key, side, id, flow, &msg, &method);
        }
        self.relay(now, key, side, id, msg, &method);
    }

    /// A request on `side` of a call Crest answered itself that is not relayed (no leg B, or
    /// a browser there): a re-offer (re-INVITE, UPDATE with SDP) gets Crest's answer for that
    /// leg, INFO and OPTIONS 200.
    #[allow(clippy::too_many_arguments)] // the request and where it came
    fn answer_in_dialog(
        &mut self,
        now: Instant,
        key: CallId,
        side: Side,
        id: TxId,
        flow: Flow,
        msg: &Message,
        method: &str,
    ) {
        let body = msg.body();
        let offer = method == "INVITE" || (method == "UPDATE" && !body.is_empty());
        if !matches!(method, "INVITE" | "UPDATE" | "INFO" | "OPTIONS") {
            let extra = format!("Allow: {ALLOW}\r\n");
            return self.respond(now, id, msg, flow, 501, None, &extra, None);
        }
        let call = &self.calls[&key];
        let tag = call.leg(side).local_tag.clone();
        let mut extra = String::new();
        let mut answer = None;
        if offer {
            let Some(hook) = self.media.as_mut() else {
                return self.respond(now, id, msg, flow, 488, Some(&tag), "", None);
            };
            let info = CallInfo {
                key,
                call_id: &call.a.call_id,
                number: &call.number,
                caller: &call.caller,
                app: call.app.as_ref(),
            };
            let sdp = (!body.is_empty()).then_some(&body[..]);
            let answered = match side {
                Side::A => hook.answer(now, &info, sdp),
                // A browser's re-offer (hold, resume): its WebRTC session answers.
                Side::B => hook
                    .exchange(now, &info, Side::B, SdpRole::Offer, sdp)
                    .and_then(|a| a.ok_or(488)),
            };
            match answered {
                Ok(b) => answer = Some(b),
                Err(code) => return self.respond(now, id, msg, flow, code, Some(&tag), "", None),
            }
            extra = self.ok_headers(flow.transport, call.session_interval);
        }
        let data = response(
            msg,
            &flow,
            200,
            Some(&tag),
            &extra,
            answer.as_deref().map(|b| ("application/sdp", b)),
        );
        let t1 = self.tx.timers().t1;
        let call = self.calls.get_mut(&key).expect("found above");
        if offer && let Some(se) = call.session_interval {
            call.session_deadline = Some(now + se - (se / 3).min(Duration::from_secs(32)));
        }
        if method == "INVITE" {
            call.leg_mut(side).pending_ok = Some(PendingOk {
                data: data.clone(),
                cseq: msg.cseq().map_or(0, |c| c.seq),
                next: now + t1,
                interval: t1,
                give_up: now + 64 * t1,
            });
            self.schedule(key);
        }
        self.tx.send_response(now, id, 200, data);
    }

    /// Relays an in-dialog request to the other leg as a new request of that dialog.
    fn relay(
        &mut self,
        now: Instant,
        key: CallId,
        from: Side,
        server_tx: TxId,
        msg: Message,
        method: &str,
    ) {
        let to = from.other();
        let body = msg.body();
        let offer = method == "INVITE" || (method == "UPDATE" && !body.is_empty());
        let (ctype, body) = if offer {
            let sdp = (!body.is_empty()).then_some(&body);
            match self.media_exchange(now, key, from, SdpRole::Offer, sdp) {
                Ok(b) => (Some("application/sdp".to_owned()), b.unwrap_or_default()),
                Err(code) => {
                    let call = &self.calls[&key];
                    let (flow, tag) = (call.leg(from).flow, call.leg(from).local_tag.clone());
                    return self.respond(now, server_tx, &msg, flow, code, Some(&tag), "", None);
                }
            }
        } else {
            let ctype = msg.header(HeaderName::ContentType).map(|c| c.into_owned());
            (ctype, body)
        };
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let call = &self.calls[&key];
        let t = call.leg(to).flow.transport;
        let (via, contact) = (self.via_prefix(t), self.contact(t));
        let call = self.calls.get_mut(&key).expect("caller checked");
        let leg = call.leg_mut(to);
        leg.local_cseq += 1;
        let mut extra = String::new();
        for name in [
            HeaderName::SessionExpires,
            HeaderName::Supported,
            HeaderName::Event,
            HeaderName::Reason,
        ] {
            for h in msg.headers().iter().filter(|h| h.name == name) {
                extra.push_str(&format!(
                    "{}: {}\r\n",
                    name.canonical().unwrap_or_default(),
                    msg.value(h)
                ));
            }
        }
        for h in msg.headers().iter().filter(|h| h.name == HeaderName::Other) {
            let n = msg.header_name_str(h);
            if n.eq_ignore_ascii_case("Info-Package") || n.eq_ignore_ascii_case("Recv-Info") {
                extra.push_str(&format!("{n}: {}\r\n", msg.value(h)));
            }
        }
        let needs_contact = matches!(
            method,
            "INVITE" | "UPDATE" | "SUBSCRIBE" | "NOTIFY" | "REFER"
        );
        let req = own(leg.request(&RequestParts {
            method,
            cseq: leg.local_cseq,
            branch: &branch,
            via_prefix: &via,
            contact: needs_contact.then_some(contact.as_str()),
            max_forwards: msg.max_forwards().unwrap_or(70).saturating_sub(1),
            extra: &extra,
            body: ctype
                .as_deref()
                .filter(|_| !body.is_empty())
                .map(|c| (c, &body[..])),
        }));
        let flow = leg.flow;
        if let Some(id) = self.tx.send_request(now, req, flow) {
            self.owners.insert(
                id,
                Owner::Relay {
                    call: key,
                    from,
                    server_tx,
                    request: msg,
                },
            );
        }
    }

    #[allow(clippy::too_many_arguments)] // the relay's two ends and the response
    fn on_relay_response(
        &mut self,
        now: Instant,
        key: CallId,
        from: Side,
        server_tx: TxId,
        request: &Message,
        resp: &Message,
        code: u16,
    ) {
        if code == 100 {
            return;
        }
        let branch = format!("{BRANCH_PREFIX}{}", self.rng.token());
        let t1 = self.tx.timers().t1;
        let Some(call) = self.calls.get(&key) else {
            return;
        };
        let to = from.other();
        let via = self.via_prefix(call.leg(to).flow.transport);
        let contact = self.contact(call.leg(from).flow.transport);
        let call = self.calls.get_mut(&key).expect("checked above");
        let is_invite = request.method() == Some("INVITE");
        if is_invite && (200..300).contains(&code) {
            // ACK the 2xx on the far leg now; the originator's ACK ends our retransmissions.
            let far = call.leg_mut(to);
            let seq = resp.cseq().map_or(far.local_cseq, |c| c.seq);
            let ack = far.request(&RequestParts {
                method: "ACK",
                cseq: seq,
                branch: &branch,
                via_prefix: &via,
                contact: None,
                max_forwards: 70,
                extra: "",
                body: None,
            });
            self.out.push_back(Transmit {
                flow: far.flow,
                data: ack.clone(),
            });
            far.ack = Some(ack);
        }
        if (200..300).contains(&code)
            && matches!(request.method(), Some("INVITE" | "UPDATE"))
            && let Some(se) = call.session_interval
        {
            call.session_deadline = Some(now + se - (se / 3).min(Duration::from_secs(32)));
            debug!("session refreshed");
        }
        let near = call.leg(from);
        let (flow, tag) = (near.flow, near.local_tag.clone());
        let body = resp.body();
        let answered_offer = (200..300).contains(&code)
            && (is_invite || (request.method() == Some("UPDATE") && !request.body().is_empty()));
        let (ctype, body) = if answered_offer {
            let sdp = (!body.is_empty()).then_some(&body);
            let b = self
                .media_exchange(now, key, to, SdpRole::Answer, sdp)
                .unwrap_or_else(|code| {
                    warn!(status = code, "SDP answer to a re-offer refused");
                    None
                });
            (Some("application/sdp".to_owned()), b.unwrap_or_default())
        } else {
            let ctype = resp.header(HeaderName::ContentType).map(|c| c.into_owned());
            (ctype, body)
        };
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let mut extra = String::new();
        if is_invite || request.method() == Some("UPDATE") {
            extra.push_str(&format!("Contact: {contact}\r\n"));
        }
        for name in [
            HeaderName::SessionExpires,
            HeaderName::Require,
            HeaderName::Supported,
        ] {
            if let Some(v) = resp.header(name) {
                extra.push_str(&format!(
                    "{}: {v}\r\n",
                    name.canonical().unwrap_or_default()
                ));
            }
        }
        let data = response(
            request,
            &flow,
            code,
            Some(&tag),
            &extra,
            ctype
                .as_deref()
                .filter(|_| !body.is_empty())
                .map(|c| (c, &body[..])),
        );
        if is_invite && (200..300).contains(&code) {
            let seq = request.cseq().map_or(0, |c| c.seq);
            call.leg_mut(from).pending_ok = Some(PendingOk {
                data: data.clone(),
                cseq: seq,
                next: now + t1,
                interval: t1,
                give_up: now + 64 * t1,
            });
            self.schedule(key);
        }
        self.tx.send_response(now, server_tx, code, data);
    }
}

/// The transport a URI asks for, and its default port.
fn uri_transport(uri: &Uri) -> (TransportKind, u16) {
    let sips = uri.scheme == "sips";
    let t = uri
        .params
        .get("transport")
        .and_then(TransportKind::from_token)
        .unwrap_or(if sips {
            TransportKind::Tls
        } else {
            TransportKind::Udp
        });
    (t, if sips { 5061 } else { 5060 })
}

/// The Warning header of a media refusal: 305 for 488 (RFC 3261 §20.43).
fn media_warning(code: u16) -> &'static str {
    if code == 488 {
        "Warning: 305 crest \"Incompatible media format\"\r\n"
    } else {
        ""
    }
}
