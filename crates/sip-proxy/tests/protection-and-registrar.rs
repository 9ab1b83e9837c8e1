//! Protection (Max-Forwards, loops, Require, rate limit, overload) and the registrar with
//! digest authentication, through the endpoint in virtual time.

mod common;

use std::time::Duration;

use common::*;
use crest_sip_proxy::HeaderName;
use crest_sip_proxy::auth::{Algorithm, ha1};

fn sip_with_both_algorithms() -> crest_sip_proxy::SipConfig {
    let mut sip = default_sip();
    sip.auth.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    sip.users[0].ha1_sha256 = Some(ha1(Algorithm::Sha256, "alice", "crest", "secret"));
    sip.auth.nonce_ttl_secs = 30;
    sip
}

#[test]
fn register_sha256_then_replay_stale_expiry_and_wildcard() {
    let mut h = Harness::new(sip_with_both_algorithms());
    h.recv(
        CALLEE,
        &register("r1", 1, &format!("<sip:alice@{CALLEE}>"), Some(600), ""),
    );
    let ch = h.take(CALLEE).remove(0);
    assert_eq!(ch.status(), Some(401));
    assert_eq!(
        ch.count(HeaderName::WwwAuthenticate),
        2,
        "one challenge per algorithm, SHA-256 first"
    );
    assert!(
        ch.header(HeaderName::WwwAuthenticate)
            .unwrap()
            .contains("SHA-256")
    );
    let (nonce, _) = nonce_of(&ch, "SHA-256");
    let cred = credentials(Algorithm::Sha256, &nonce, 1, "secret");
    h.recv(
        CALLEE,
        &register("r1", 2, &format!("<sip:alice@{CALLEE}>"), Some(600), &cred),
    );
    let ok = h.take(CALLEE).remove(0);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        ok.header(HeaderName::Contact).unwrap(),
        format!("<sip:alice@{CALLEE}>;expires=600")
    );
    // Same nonce-count again (a captured request replayed with a new branch): refused.
    h.recv(
        CALLEE,
        &register("r1", 3, &format!("<sip:alice@{CALLEE}>"), Some(600), &cred),
    );
    assert_eq!(h.take(CALLEE)[0].status(), Some(401));
    // A second contact with nc=2, then a wrong password.
    h.recv(
        CALLEE,
        &register(
            "r1",
            4,
            "<sip:alice@192.0.2.9>",
            Some(600),
            &credentials(Algorithm::Sha256, &nonce, 2, "secret"),
        ),
    );
    let ok = h.take(CALLEE).remove(0);
    assert_eq!(ok.count(HeaderName::Contact), 2, "two bindings");
    h.recv(
        CALLEE,
        &register(
            "r1",
            5,
            "<sip:alice@192.0.2.9>",
            Some(600),
            &credentials(Algorithm::Md5, &nonce, 3, "bad"),
        ),
    );
    assert_eq!(h.take(CALLEE)[0].status(), Some(403));
    // After the nonce lifetime: stale=true, and the fresh nonce works.
    h.advance(Duration::from_secs(31));
    h.recv(
        CALLEE,
        &register(
            "r1",
            6,
            "<sip:alice@192.0.2.9>",
            Some(0),
            &credentials(Algorithm::Sha256, &nonce, 4, "secret"),
        ),
    );
    let stale = h.take(CALLEE).remove(0);
    assert_eq!(stale.status(), Some(401));
    let (fresh, is_stale) = nonce_of(&stale, "SHA-256");
    assert!(is_stale, "stale=true");
    h.recv(
        CALLEE,
        &register(
            "r1",
            7,
            "<sip:alice@192.0.2.9>",
            Some(0),
            &credentials(Algorithm::Sha256, &fresh, 1, "secret"),
        ),
    );
    let ok = h.take(CALLEE).remove(0);
    assert_eq!(
        ok.count(HeaderName::Contact),
        1,
        "Expires: 0 removed one binding"
    );
    h.recv(
        CALLEE,
        &register(
            "r1",
            8,
            "*",
            Some(0),
            &credentials(Algorithm::Sha256, &fresh, 2, "secret"),
        ),
    );
    assert_eq!(h.take(CALLEE)[0].count(HeaderName::Contact), 0);
    assert_eq!(h.ep.registered_users(), 0, "wildcard removed all");
    // Too short an expiry: 423 with Min-Expires.
    h.recv(
        CALLEE,
        &register(
            "r1",
            9,
            "<sip:alice@192.0.2.9>",
            Some(10),
            &credentials(Algorithm::Sha256, &fresh, 3, "secret"),
        ),
    );
    let r = h.take(CALLEE).remove(0);
    assert_eq!(
        (r.status(), r.header(HeaderName::MinExpires).as_deref()),
        (Some(423), Some("60"))
    );
}

#[test]
fn call_to_registered_user_goes_to_the_binding_flow() {
    let mut h = Harness::new(sip_with_both_algorithms());
    h.recv(
        CALLEE,
        &register("r2", 1, "<sip:alice@10.9.9.9:5099>", None, ""),
    );
    let (nonce, _) = nonce_of(&h.take(CALLEE)[0], "MD5");
    h.recv(
        CALLEE,
        &register(
            "r2",
            2,
            "<sip:alice@10.9.9.9:5099>",
            None,
            &credentials(Algorithm::Md5, &nonce, 1, "secret"),
        ),
    );
    assert_eq!(h.take(CALLEE)[0].status(), Some(200));
    h.recv(CALLER, &invite("300", "to-alice", ""));
    let inv = h.take(CALLEE).remove(0);
    assert_eq!(
        inv.request_uri_str(),
        Some("sip:alice@10.9.9.9:5099"),
        "R-URI is the contact; sent to its flow"
    );
    // Nobody registered: 480.
    let mut h = Harness::new(sip_with_both_algorithms());
    h.recv(CALLER, &invite("300", "nobody", ""));
    assert_eq!(h.take_summary(CALLER), ["480"]);
}

#[test]
fn max_forwards_loops_require_and_unknown_numbers() {
    let mut h = Harness::new(default_sip());
    h.recv(
        CALLER,
        &invite("100", "mf0", "").replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(h.take_summary(CALLER), ["483"]);
    let looped = invite("100", "loop", "").replace(
        &format!("Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-loop-1\n"),
        &format!("Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-loop-1\nVia: SIP/2.0/UDP {CREST};branch=z9hG4bKcr0123;rport\n"),
    );
    h.recv(CALLER, &looped);
    assert_eq!(h.take_summary(CALLER), ["482"]);
    h.recv(CALLER, &invite("100", "req", "Require: 100rel, foo\n"));
    let r = h.take(CALLER).remove(0);
    assert_eq!(r.status(), Some(420));
    assert_eq!(
        raw_header(&r, "Unsupported").as_deref(),
        Some("100rel, foo")
    );
    h.recv(CALLER, &invite("100", "timer", "Require: timer\n"));
    assert_eq!(h.take_summary(CALLER), ["100"], "timer is supported");
    h.recv(CALLER, &invite("999", "nope", ""));
    assert_eq!(h.take_summary(CALLER), ["404"]);
    h.recv(CALLER, &invite("200", "private", ""));
    let r = h.take(CALLER).remove(0);
    assert_eq!(r.status(), Some(401), "private route: challenge");
    assert!(r.header(HeaderName::WwwAuthenticate).is_some());
}

#[test]
fn per_source_rate_limit_and_overload_answer_503_fast() {
    let mut sip = default_sip();
    sip.rate_limit.requests_per_sec = 10.0;
    sip.rate_limit.burst = 5.0;
    let mut h = Harness::new(sip);
    let opt = |i: u32| {
        format!(
            "OPTIONS sip:{CREST} SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-o{i}\nFrom: <sip:a@b>;tag=1\n\
             To: <sip:{CREST}>\nCall-ID: o{i}\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n"
        )
    };
    for i in 0..8 {
        h.recv(CALLER, &opt(i));
    }
    let codes = h.take_summary(CALLER);
    assert_eq!(
        codes,
        ["200", "200", "200", "200", "200", "503", "503", "503"]
    );
    h.advance(Duration::from_millis(300)); // refills 3 tokens
    for i in 10..14 {
        h.recv(CALLER, &opt(i));
    }
    assert_eq!(h.take_summary(CALLER), ["200", "200", "200", "503"]);
    assert_eq!(h.ep.stats().rate_limited, 4);

    let mut sip = default_sip();
    sip.overload.max_calls = 1;
    let mut h = Harness::new(sip);
    h.recv(CALLER, &invite("100", "first", ""));
    h.recv(CALLER, &invite("100", "second", ""));
    let r = h.take(CALLER);
    assert_eq!(r[1].status(), Some(503));
    assert_eq!(raw_header(&r[1], "Retry-After").as_deref(), Some("5"));
    h.take(CALLEE);
    h.ep.set_shedding(true);
    h.recv(CALLEE, &register("r3", 1, "<sip:alice@h>", None, ""));
    assert_eq!(
        h.take_summary(CALLEE),
        ["503"],
        "shedding: REGISTER refused before any work"
    );
}
