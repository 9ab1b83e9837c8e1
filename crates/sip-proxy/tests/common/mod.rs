//! A virtual-time harness around one `Endpoint`: peers are addresses; messages Crest sends are
//! collected per destination, and the clock only moves when a test says so.
#![allow(dead_code, unreachable_pub)] // each test file uses a different part of the harness

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crest_sip_proxy::HeaderName;
use crest_sip_proxy::auth::{Algorithm, Challenge, DigestClient};
use crest_sip_proxy::config::{RouteConfig, RouteTarget, UserConfig};
use crest_sip_proxy::{Endpoint, EndpointConfig, Flow, Framing, Message, SipConfig, TransportKind};

pub const CREST: &str = "127.0.0.1:5060";
pub const CALLER: &str = "127.0.0.1:6001";
pub const CALLEE: &str = "127.0.0.1:6002";

pub struct Harness {
    pub ep: Endpoint,
    pub t0: Instant,
    pub now: Instant,
    pub sent: Vec<(SocketAddr, Message, Duration)>,
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn default_sip() -> SipConfig {
    let mut sip = SipConfig::default();
    sip.auth.algorithms = vec![crest_sip_proxy::auth::Algorithm::Md5];
    sip.rate_limit.requests_per_sec = 0.0;
    sip.users = vec![UserConfig {
        name: "alice".into(),
        ha1_md5: Some(crest_sip_proxy::auth::ha1(
            crest_sip_proxy::auth::Algorithm::Md5,
            "alice",
            "crest",
            "secret",
        )),
        ha1_sha256: None,
    }];
    sip.routes = vec![
        RouteConfig {
            number: "100".into(),
            user: None,
            uri: Some(format!("sip:{CALLEE}")),
            public: true,
            ..RouteConfig::default()
        },
        RouteConfig {
            number: "200".into(),
            user: None,
            uri: Some(format!("sip:{CALLEE}")),
            public: false,
            ..RouteConfig::default()
        },
        RouteConfig {
            number: "300".into(),
            user: Some("alice".into()),
            uri: None,
            public: true,
            ..RouteConfig::default()
        },
    ];
    sip
}

impl Harness {
    pub fn new(sip: SipConfig) -> Self {
        let routes = sip
            .resolve_routes(|h, p| format!("{h}:{p}").parse().ok())
            .expect("test routes resolve");
        assert!(routes.iter().all(|(_, t, _)| matches!(
            t,
            RouteTarget::Uri(..) | RouteTarget::User(_) | RouteTarget::App(_)
        )));
        let t0 = Instant::now();
        let ep = Endpoint::new(
            t0,
            EndpointConfig {
                sip,
                routes,
                local: vec![(TransportKind::Udp, addr(CREST))],
                seed: 7,
            },
        );
        Self {
            ep,
            t0,
            now: t0,
            sent: Vec::new(),
        }
    }

    pub fn collect(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            let m = Message::parse(t.data, Framing::Datagram).expect("Crest sends valid messages");
            self.sent.push((t.flow.remote, m, self.now - self.t0));
        }
    }

    /// Delivers a message from `from`.
    pub fn recv(&mut self, from: &str, text: &str) {
        let data = Bytes::from(text.replace('\n', "\r\n").replace("\r\r\n", "\r\n"));
        self.ep.handle_input(self.now, Flow::udp(addr(from)), data);
        self.collect();
    }

    /// Delivers a message on `flow` (a WebSocket's, say).
    pub fn recv_on(&mut self, flow: Flow, text: &str) {
        let data = Bytes::from(text.replace('\n', "\r\n").replace("\r\r\n", "\r\n"));
        self.ep.handle_input(self.now, flow, data);
        self.collect();
    }

    /// Moves the clock forward, firing timers on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(at) = self.ep.poll_timeout() {
            if at > end {
                break;
            }
            self.now = at.max(self.now);
            self.ep.handle_timeout(self.now);
            self.collect();
        }
        self.now = end;
    }

    /// Connects call `key` (answered by Crest) to `target`.
    pub fn connect(
        &mut self,
        key: crest_sip_proxy::CallId,
        target: crest_sip_proxy::ConnectTarget,
        ring: Duration,
    ) -> Result<(), u16> {
        let r = self.ep.connect(self.now, key, &target, ring);
        self.collect();
        r
    }

    /// Hangs call `key` up from outside the signalling.
    pub fn hang_up(&mut self, key: crest_sip_proxy::CallId, reason: &str) {
        self.ep.hang_up(self.now, key, reason);
        self.collect();
    }

    /// Removes and returns everything sent to `to`.
    pub fn take(&mut self, to: &str) -> Vec<Message> {
        let to = addr(to);
        let (mine, rest): (Vec<_>, Vec<_>) = self.sent.drain(..).partition(|(a, _, _)| *a == to);
        self.sent = rest;
        mine.into_iter().map(|(_, m, _)| m).collect()
    }

    /// Like [`Self::take_summary`] with retransmissions (repeats in a row) folded.
    pub fn take_distinct(&mut self, to: &str) -> Vec<String> {
        let mut v = self.take_summary(to);
        v.dedup();
        v
    }

    /// Status codes (or methods) of what was sent to `to`, removing them.
    pub fn take_summary(&mut self, to: &str) -> Vec<String> {
        self.take(to)
            .iter()
            .map(|m| {
                m.status()
                    .map_or_else(|| m.method().unwrap().to_owned(), |c| c.to_string())
            })
            .collect()
    }
}

pub fn invite(number: &str, call_id: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{number}@{CREST} SIP/2.0\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{call_id}-1\n\
         From: \"Carol\" <sip:carol@{CALLER}>;tag=ct{call_id}\n\
         To: <sip:{number}@{CREST}>\n\
         Call-ID: {call_id}\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:carol@{CALLER}>\n\
         Max-Forwards: 70\n\
         {extra}Content-Type: application/sdp\n\
         Content-Length: 15\n\n\
         v=0\r\ns=caller\r\n"
    )
}

/// A response from the callee to a request Crest sent it, echoing its headers.
pub fn reply(req: &Message, code: u16, to_tag: &str, extra: &str, body: &str) -> String {
    use crest_sip_proxy::HeaderName as H;
    let mut s = format!("SIP/2.0 {code} {}\n", crest_sip_proxy::reason_phrase(code));
    for v in req.header_list(H::Via) {
        s.push_str(&format!("Via: {v}\n"));
    }
    s.push_str(&format!("From: {}\n", req.header(H::From).unwrap()));
    let to = req.header(H::To).unwrap();
    if to.contains("tag=") {
        s.push_str(&format!("To: {to}\n"));
    } else {
        s.push_str(&format!("To: {to};tag={to_tag}\n"));
    }
    s.push_str(&format!(
        "Call-ID: {}\nCSeq: {}\n",
        req.call_id().unwrap(),
        req.header(H::CSeq).unwrap()
    ));
    s.push_str(&format!("Contact: <sip:bob@{CALLEE}>\n{extra}"));
    if body.is_empty() {
        s.push_str("Content-Length: 0\n\n");
    } else {
        s.push_str(&format!(
            "Content-Type: application/sdp\nContent-Length: {}\n\n{body}",
            body.len()
        ));
    }
    s
}

/// An in-dialog request from the caller on leg A, built from Crest's 200 to the INVITE.
pub fn caller_request(ok: &Message, method: &str, cseq: u32, extra: &str) -> String {
    use crest_sip_proxy::HeaderName as H;
    format!(
        "{method} sip:crest@{CREST} SIP/2.0\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{method}-{cseq}\n\
         From: {}\nTo: {}\nCall-ID: {}\nCSeq: {cseq} {method}\nMax-Forwards: 70\n{extra}Content-Length: 0\n\n",
        ok.header(H::From).unwrap(),
        ok.header(H::To).unwrap(),
        ok.call_id().unwrap()
    )
}

/// An in-dialog request from the callee on leg B, built from the INVITE Crest sent it.
pub fn callee_request(inv: &Message, to_tag: &str, method: &str, cseq: u32, extra: &str) -> String {
    use crest_sip_proxy::HeaderName as H;
    format!(
        "{method} sip:crest@{CREST} SIP/2.0\n\
         Via: SIP/2.0/UDP {CALLEE};branch=z9hG4bK-b{method}-{cseq}\n\
         From: {};tag={to_tag}\nTo: {}\nCall-ID: {}\nCSeq: {cseq} {method}\nMax-Forwards: 70\n{extra}Content-Length: 0\n\n",
        inv.header(H::To).unwrap(),
        inv.header(H::From).unwrap(),
        inv.call_id().unwrap()
    )
}

/// A header by its written name (for headers without a variant of their own).
pub fn raw_header(m: &Message, name: &str) -> Option<String> {
    m.headers()
        .iter()
        .find(|h| m.header_name_str(h).eq_ignore_ascii_case(name))
        .map(|h| m.value(h).into_owned())
}

/// A REGISTER of alice from the callee's address.
pub fn register(
    call_id: &str,
    cseq: u32,
    contact: &str,
    expires: Option<u32>,
    auth: &str,
) -> String {
    let exp = expires
        .map(|e| format!("Expires: {e}\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{CREST} SIP/2.0\nVia: SIP/2.0/UDP {CALLEE};branch=z9hG4bK-r{call_id}{cseq}\n\
         From: <sip:alice@{CREST}>;tag=r\nTo: <sip:alice@{CREST}>\nCall-ID: {call_id}\nCSeq: {cseq} REGISTER\n\
         Contact: {contact}\n{exp}{auth}Max-Forwards: 70\nContent-Length: 0\n\n"
    )
}

pub fn nonce_of(challenge: &Message, alg: &str) -> (String, bool) {
    // One challenge per header line (header_list would split them at their commas).
    let lines: Vec<String> = challenge
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::WwwAuthenticate)
        .map(|h| challenge.value(h).into_owned())
        .collect();
    let alg = if alg == "MD5" {
        Algorithm::Md5
    } else {
        Algorithm::Sha256
    };
    let c = Challenge::find(lines.iter().map(String::as_str), alg)
        .expect("a challenge for the algorithm");
    (c.nonce, c.stale)
}

pub fn credentials(alg: Algorithm, nonce: &str, nc: u32, password: &str) -> String {
    let client = DigestClient {
        alg,
        user: "alice",
        password,
        realm: "crest",
    };
    format!(
        "Authorization: {}\n",
        client.authorization(nonce, "REGISTER", &format!("sip:{CREST}"), nc, "cn")
    )
}

impl Harness {
    /// Registers alice (password "secret", MD5) at the callee's address.
    /// Registers alice (MD5) from a browser at the callee's address: over secure WebSocket
    /// connection `conn`, Via and Contact on a `.invalid` host as JsSIP sends them. Returns
    /// the flow.
    pub fn register_alice_in_a_browser(&mut self, conn: u64) -> Flow {
        let flow = Flow {
            transport: TransportKind::Wss,
            remote: addr(CALLEE),
            connection: Some(crest_sip_proxy::ConnectionId(conn)),
        };
        let contact = "<sip:k3j2@df7jal23ls0d.invalid;transport=ws>";
        let ws = |text: String| {
            text.replace(
                &format!("SIP/2.0/UDP {CALLEE}"),
                "SIP/2.0/WSS df7jal23ls0d.invalid",
            )
        };
        self.recv_on(flow, &ws(register("wreg", 1, contact, Some(600), "")));
        let challenge = self.take(CALLEE).remove(0);
        assert_eq!(challenge.status(), Some(401));
        let (nonce, _) = nonce_of(&challenge, "MD5");
        let auth = credentials(Algorithm::Md5, &nonce, 1, "secret");
        self.recv_on(flow, &ws(register("wreg", 2, contact, Some(600), &auth)));
        assert_eq!(self.take_summary(CALLEE), ["200"]);
        flow
    }

    pub fn register_alice(&mut self) {
        let contact = format!("<sip:alice@{CALLEE}>");
        self.recv(CALLEE, &register("reg1", 1, &contact, Some(3600), ""));
        let challenge = self.take(CALLEE).remove(0);
        assert_eq!(challenge.status(), Some(401));
        let (nonce, _) = nonce_of(&challenge, "MD5");
        let auth = credentials(Algorithm::Md5, &nonce, 1, "secret");
        self.recv(CALLEE, &register("reg1", 2, &contact, Some(3600), &auth));
        assert_eq!(self.take_summary(CALLEE), ["200"]);
    }
}
