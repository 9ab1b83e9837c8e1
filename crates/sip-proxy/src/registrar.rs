//! The location service of RFC 3261 §10: bindings of contacts to an address-of-record, with
//! expiry, several contacts per AoR, `Expires: 0` removal and `*` wildcard removal, and
//! Call-ID/CSeq ordering so that a stale REGISTER cannot undo a newer one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::header::{HeaderName, NameAddr};
use crate::message::{Message, parse_u32};
use crate::transport::{ConnectionId, Flow, TransportKind};

/// Registrar limits (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Expiry granted when the request names none.
    pub default_expires: u32,
    /// Shorter requests get 423 Interval Too Brief with Min-Expires.
    pub min_expires: u32,
    /// Longer requests are cut down to this.
    pub max_expires: u32,
    /// The most contacts one AoR may hold; the oldest is dropped beyond it.
    pub max_contacts: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_contacts: 10,
        }
    }
}

/// One contact bound to an AoR.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The contact URI as registered (parameters inside `<>` kept on the URI).
    pub uri: Box<str>,
    /// Header parameters of the Contact other than `expires` (e.g. `+sip.instance`).
    pub params: Box<str>,
    /// The flow the REGISTER came over: calls to this contact are sent there (NAT traversal).
    pub flow: Flow,
    /// When the binding lapses.
    pub expires_at: Instant,
    /// Preference (`q`), in thousandths.
    pub q: u16,
    /// A hash of the REGISTER's Call-ID: only compared, so 8 bytes instead of a string.
    call_id: u64,
    cseq: u32,
}

fn hash_call_id(call_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    h.finish()
}

/// Why a REGISTER was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// An expiry below the minimum: 423 with Min-Expires.
    #[error("interval too brief, minimum {0} s")]
    IntervalTooBrief(u32),
    /// `*` with other contacts or a non-zero expiry, or a malformed Contact: 400.
    #[error("invalid Contact: {0}")]
    BadContact(&'static str),
    /// A request older than the stored binding (same Call-ID, lower CSeq): 500 per §10.3.
    #[error("out-of-order REGISTER")]
    OutOfOrder,
}

impl RegisterError {
    /// The response status.
    pub fn status(&self) -> u16 {
        match self {
            Self::IntervalTooBrief(_) => 423,
            Self::BadContact(_) => 400,
            Self::OutOfOrder => 500,
        }
    }
}

/// All bindings, keyed by AoR user.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<Box<str>, Vec<Binding>>,
    /// AoRs by the expiry of a binding they were given, so that a sweep visits only AoRs with
    /// something to expire (a full scan of a million AoRs would pause the core).
    expiries: BinaryHeap<Reverse<(Instant, Box<str>)>>,
    /// AoRs bound over each open WebSocket connection, so that its close visits only them
    /// (an entry may name an AoR that since moved: the close checks).
    by_websocket: HashMap<ConnectionId, Vec<Box<str>>>,
}

impl Registrar {
    /// An empty location service.
    pub fn new(config: RegistrarConfig) -> Self {
        Self::with_capacity(config, 0)
    }

    /// A location service sized for `users` AoRs up front, so that a registration storm
    /// (every phone re-registering after an outage) never pauses the core to grow the table.
    pub fn with_capacity(config: RegistrarConfig, users: usize) -> Self {
        Self {
            config,
            bindings: HashMap::with_capacity(users),
            expiries: BinaryHeap::new(),
            by_websocket: HashMap::new(),
        }
    }

    /// Applies an authenticated REGISTER for `aor`; returns the bindings now current.
    pub fn handle_register(
        &mut self,
        now: Instant,
        aor: &str,
        msg: &Message,
        flow: Flow,
    ) -> Result<Vec<Binding>, RegisterError> {
        let cfg = self.config;
        let call_id = hash_call_id(&msg.call_id().unwrap_or_default());
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        let header_expires = msg
            .header(HeaderName::Expires)
            .and_then(|v| parse_u32(v.trim().as_bytes()));
        let contacts = msg.header_list(HeaderName::Contact);
        let list = self.bindings.entry(aor.into()).or_default();
        list.retain(|b| b.expires_at > now);
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(RegisterError::BadContact(
                    "* needs Expires: 0 and no other contact",
                ));
            }
            if list.iter().any(|b| b.call_id == call_id && b.cseq >= cseq) {
                return Err(RegisterError::OutOfOrder);
            }
            list.clear();
        }
        let mut updates = Vec::with_capacity(contacts.len());
        for c in contacts.iter().filter(|c| c.trim() != "*") {
            let na = NameAddr::parse(c).map_err(|_| RegisterError::BadContact("syntax"))?;
            let expires = na
                .params
                .get("expires")
                .and_then(|e| parse_u32(e.as_bytes()))
                .or(header_expires)
                .unwrap_or(cfg.default_expires);
            if expires != 0 && expires < cfg.min_expires {
                return Err(RegisterError::IntervalTooBrief(cfg.min_expires));
            }
            let q = na
                .params
                .get("q")
                .and_then(|q| q.parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16);
            let mut params = na.params.clone();
            params.remove("expires");
            params.remove("q");
            updates.push((
                na.uri.to_string(),
                params.to_string(),
                expires.min(cfg.max_expires),
                q,
            ));
        }
        for (uri, params, expires, q) in updates {
            let existing = list.iter().position(|b| *b.uri == *uri);
            if let Some(i) = existing {
                if list[i].call_id == call_id && list[i].cseq >= cseq {
                    return Err(RegisterError::OutOfOrder);
                }
                if expires == 0 {
                    list.remove(i);
                    continue;
                }
            } else if expires == 0 {
                continue;
            }
            let expires_at = now + Duration::from_secs(expires.into());
            self.expiries.push(Reverse((expires_at, aor.into())));
            let binding = Binding {
                uri: uri.into(),
                params: params.into(),
                flow,
                expires_at,
                q,
                call_id,
                cseq,
            };
            match existing {
                Some(i) => list[i] = binding,
                None => {
                    if list.len() >= cfg.max_contacts {
                        // Drop the binding closest to expiry.
                        if let Some(oldest) = (0..list.len()).min_by_key(|&i| list[i].expires_at) {
                            list.remove(oldest);
                        }
                    }
                    list.reserve_exact(1); // most AoRs hold one contact: no spare slots
                    list.push(binding);
                }
            }
        }
        let current = list.clone();
        if list.is_empty() {
            self.bindings.remove(aor);
        }
        if let (TransportKind::Ws | TransportKind::Wss, Some(conn)) =
            (flow.transport, flow.connection)
        {
            let aors = self.by_websocket.entry(conn).or_default();
            if !current.is_empty() && !aors.iter().any(|a| &**a == aor) {
                aors.push(aor.into());
            }
        }
        Ok(current)
    }

    /// The live bindings of an AoR, best `q` first, then most recently refreshed.
    pub fn lookup(&self, now: Instant, aor: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings
            .get(aor)
            .map(|l| l.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.q.cmp(&a.q).then(b.expires_at.cmp(&a.expires_at)));
        v
    }

    /// Drops every lapsed binding; returns the AoRs left with none (their phones stopped
    /// refreshing: an agent's is logged out).
    pub fn sweep(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some(Reverse((at, _))) = self.expiries.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, aor))) = self.expiries.pop() else {
                break;
            };
            if let Some(list) = self.bindings.get_mut(&aor) {
                list.retain(|b| b.expires_at > now);
                if list.is_empty() {
                    self.bindings.remove(&aor);
                    gone.push(aor.to_string());
                }
            }
        }
        gone
    }

    /// Drops the bindings made over WebSocket connection `conn`, which closed (RFC 7118 §5: a
    /// browser's contact is reachable only through its socket); returns the AoRs left with
    /// no binding.
    pub fn drop_connection(&mut self, conn: ConnectionId) -> Vec<String> {
        let mut gone = Vec::new();
        for aor in self.by_websocket.remove(&conn).unwrap_or_default() {
            let Some(list) = self.bindings.get_mut(&aor) else {
                continue;
            };
            list.retain(|b| {
                b.flow.connection != Some(conn)
                    || !matches!(b.flow.transport, TransportKind::Ws | TransportKind::Wss)
            });
            if list.is_empty() {
                self.bindings.remove(&aor);
                gone.push(aor.into_string());
            }
        }
        gone.sort();
        gone
    }

    /// How many AoRs have at least one binding.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Framing;
    use bytes::Bytes;

    fn register(call_id: &str, cseq: u32, contact: &str, expires: Option<u32>) -> Message {
        let exp = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let s = format!(
            "REGISTER sip:crest SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{cseq}\r\n\
             From: <sip:alice@crest>;tag=1\r\nTo: <sip:alice@crest>\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{exp}Content-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Datagram).unwrap()
    }

    fn flow() -> Flow {
        Flow::udp("10.0.0.1:5060".parse().unwrap())
    }

    #[test]
    fn a_closed_websocket_takes_its_bindings_and_nothing_else() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        let ws = |conn: u64| Flow {
            transport: TransportKind::Wss,
            remote: "127.0.0.1:40000".parse().unwrap(),
            connection: Some(ConnectionId(conn)),
        };
        let tcp = Flow {
            transport: TransportKind::Tcp,
            connection: Some(ConnectionId(7)),
            ..ws(7)
        };
        let reg = |r: &mut Registrar, aor: &str, contact: &str, f: Flow| {
            r.handle_register(t0, aor, &register(aor, 1, contact, Some(300)), f)
                .unwrap();
        };
        reg(
            &mut r,
            "alice",
            "<sip:a1@df7jal23ls0d.invalid;transport=ws>",
            ws(7),
        );
        reg(&mut r, "bob", "<sip:b1@x.invalid;transport=ws>", ws(7));
        reg(&mut r, "bob", "<sip:b2@10.0.0.2>", flow());
        reg(&mut r, "carol", "<sip:c@10.0.0.3;transport=tcp>", tcp);
        reg(&mut r, "dave", "<sip:d@y.invalid;transport=ws>", ws(8));
        // Alice had only that socket; bob keeps his desk phone; carol's TCP (the same
        // connection number on another transport) and dave's other socket stay.
        assert_eq!(r.drop_connection(ConnectionId(7)), ["alice"]);
        assert!(r.lookup(t0, "alice").is_empty());
        assert_eq!(r.lookup(t0, "bob").len(), 1);
        assert_eq!(r.lookup(t0, "carol").len(), 1);
        assert_eq!(r.lookup(t0, "dave").len(), 1);
        assert!(r.drop_connection(ConnectionId(7)).is_empty());
    }

    #[test]
    fn several_contacts_expiry_removal_and_wildcard() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        r.handle_register(
            t0,
            "alice",
            &register("c1", 1, "<sip:alice@10.0.0.1>", Some(120)),
            flow(),
        )
        .unwrap();
        let b = r
            .handle_register(
                t0,
                "alice",
                &register("c2", 1, "<sip:alice@10.0.0.2>;expires=300", None),
                flow(),
            )
            .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            r.lookup(t0 + Duration::from_secs(121), "alice").len(),
            1,
            "first expired"
        );
        assert_eq!(
            r.handle_register(
                t0,
                "alice",
                &register("c2", 1, "<sip:alice@10.0.0.2>", None),
                flow()
            )
            .unwrap_err(),
            RegisterError::OutOfOrder
        );
        let b = r
            .handle_register(
                t0,
                "alice",
                &register("c2", 2, "<sip:alice@10.0.0.2>", Some(0)),
                flow(),
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        r.handle_register(t0, "alice", &register("c1", 5, "*", Some(0)), flow())
            .unwrap();
        assert!(r.lookup(t0, "alice").is_empty(), "wildcard removes all");
        assert!(r.is_empty());
    }

    #[test]
    fn sweep_drops_only_what_expired() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        r.handle_register(
            t0,
            "alice",
            &register("c1", 1, "<sip:a@h>", Some(60)),
            flow(),
        )
        .unwrap();
        r.handle_register(
            t0,
            "bob",
            &register("c2", 1, "<sip:b@h>", Some(600)),
            flow(),
        )
        .unwrap();
        // Alice refreshes: her first expiry entry must not drop the refreshed binding.
        r.handle_register(
            t0 + Duration::from_secs(50),
            "alice",
            &register("c1", 2, "<sip:a@h>", Some(60)),
            flow(),
        )
        .unwrap();
        assert!(r.sweep(t0 + Duration::from_secs(61)).is_empty());
        assert_eq!(r.len(), 2);
        assert_eq!(r.sweep(t0 + Duration::from_secs(111)), ["alice"]);
        assert_eq!(r.len(), 1, "alice lapsed at 110 s");
        assert_eq!(r.sweep(t0 + Duration::from_secs(601)), ["bob"]);
        assert!(r.is_empty());
    }

    #[test]
    fn interval_too_brief_and_params_stay_on_the_binding() {
        let t0 = Instant::now();
        let mut r = Registrar::new(RegistrarConfig::default());
        assert_eq!(
            r.handle_register(
                t0,
                "alice",
                &register("c1", 1, "<sip:a@h>", Some(10)),
                flow()
            ),
            Err(RegisterError::IntervalTooBrief(60))
        );
        let b = r
            .handle_register(
                t0,
                "alice",
                &register(
                    "c1",
                    2,
                    "<sip:a@h;transport=tcp>;+sip.instance=\"<urn:x>\";q=0.5",
                    None,
                ),
                flow(),
            )
            .unwrap();
        assert_eq!(&*b[0].uri, "sip:a@h;transport=tcp");
        assert_eq!(&*b[0].params, ";+sip.instance=\"<urn:x>\"");
        assert_eq!(b[0].q, 500);
        assert!(
            r.handle_register(t0, "alice", &register("c1", 3, "*", None), flow())
                .is_err()
        );
    }
}
