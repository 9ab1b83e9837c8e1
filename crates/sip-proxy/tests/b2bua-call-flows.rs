//! B2BUA call control in virtual time: both legs of each call flow, message by message.

mod common;

use std::time::Duration;

use common::*;
use crest_sip_proxy::HeaderName;

/// Sets up an answered call on route 100; returns (harness, INVITE sent to B, 200 sent to A).
fn answered_call(extra: &str) -> (Harness, crest_sip_proxy::Message, crest_sip_proxy::Message) {
    let mut h = Harness::new(default_sip());
    h.recv(CALLER, &invite("100", "call1", extra));
    assert_eq!(h.take_summary(CALLER), ["100"]);
    let mut to_b = h.take(CALLEE);
    assert_eq!(to_b.len(), 1);
    let inv = to_b.remove(0);
    assert_eq!(inv.method(), Some("INVITE"));
    assert_ne!(
        inv.call_id(),
        Some("call1".into()),
        "leg B has its own Call-ID"
    );
    assert_eq!(
        &inv.body()[..],
        b"v=0\r\ns=caller\r\n",
        "SDP relayed unchanged"
    );
    assert_eq!(inv.max_forwards(), Some(69));
    h.recv(CALLEE, &reply(&inv, 180, "bt", "", ""));
    assert_eq!(h.take_summary(CALLER), ["180"]);
    h.recv(CALLEE, &reply(&inv, 200, "bt", "", "v=0\r\ns=callee\r\n"));
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    let mut to_a = h.take(CALLER);
    let ok = to_a.remove(0);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(&ok.body()[..], b"v=0\r\ns=callee\r\n");
    (h, inv, ok)
}

#[test]
fn invite_180_200_ack_bye_from_caller() {
    let (mut h, _inv, ok) = answered_call("");
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));
    h.advance(Duration::from_secs(5));
    assert!(h.take(CALLER).is_empty(), "no 200 retransmission after ACK");
    h.recv(CALLER, &caller_request(&ok, "BYE", 2, ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
    let bye = h.take(CALLEE);
    assert_eq!(bye[0].method(), Some("BYE"));
    assert_eq!(bye[0].to_hdr().unwrap().tag(), Some("bt"));
    h.recv(CALLEE, &reply(&bye[0], 200, "bt", "", ""));
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn hang_up_from_callee() {
    let (mut h, inv, ok) = answered_call("");
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));
    h.recv(CALLEE, &callee_request(&inv, "bt", "BYE", 1, ""));
    assert_eq!(h.take_summary(CALLEE), ["200"]);
    let bye = h.take(CALLER);
    assert_eq!(bye[0].method(), Some("BYE"));
    assert_eq!(bye[0].call_id(), Some("call1".into()));
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn ok_is_retransmitted_until_ack_then_call_torn_down() {
    let (mut h, _inv, _ok) = answered_call("");
    h.advance(Duration::from_millis(3600));
    assert_eq!(
        h.take_summary(CALLER),
        ["200", "200", "200"],
        "at 0.5, 1.5, 3.5 s"
    );
    h.advance(Duration::from_secs(40));
    let to_a = h.take_summary(CALLER);
    assert!(
        to_a.contains(&"BYE".to_owned()),
        "no ACK in 64*T1: BYE to caller, got {to_a:?}"
    );
    assert!(h.take_summary(CALLEE).contains(&"BYE".to_owned()));
}

#[test]
fn cancel_before_answer() {
    let mut h = Harness::new(default_sip());
    h.recv(CALLER, &invite("100", "c2", ""));
    let inv = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&inv, 180, "bt", "", ""));
    h.take(CALLER);
    h.recv(
        CALLER,
        &format!(
            "CANCEL sip:100@{CREST} SIP/2.0\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-c2-1\n\
             From: \"Carol\" <sip:carol@{CALLER}>;tag=ctc2\nTo: <sip:100@{CREST}>\nCall-ID: c2\n\
             CSeq: 1 CANCEL\nMax-Forwards: 70\nContent-Length: 0\n\n"
        ),
    );
    assert_eq!(h.take_summary(CALLER), ["200", "487"]);
    let cancel = h.take(CALLEE).remove(0);
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    h.recv(CALLEE, &reply(&cancel, 200, "bt", "", ""));
    h.recv(CALLEE, &reply(&inv, 487, "bt", "", ""));
    assert_eq!(
        h.take_summary(CALLEE),
        ["ACK"],
        "the transaction layer ACKs the 487"
    );
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn callee_failures_map_to_the_caller() {
    for (callee, caller) in [(486, 486), (480, 480), (408, 408), (503, 500), (603, 603)] {
        let mut h = Harness::new(default_sip());
        h.recv(CALLER, &invite("100", "c3", ""));
        h.take(CALLER);
        let inv = h.take(CALLEE).remove(0);
        h.recv(CALLEE, &reply(&inv, callee, "bt", "", ""));
        assert_eq!(
            h.take_summary(CALLER),
            [caller.to_string()],
            "callee {callee}"
        );
    }
}

#[test]
fn callee_silent_gives_408_after_timer_b() {
    let mut h = Harness::new(default_sip());
    h.recv(CALLER, &invite("100", "c4", ""));
    h.take(CALLER);
    h.advance(Duration::from_secs(33));
    assert_eq!(h.take(CALLEE).len(), 7, "INVITE plus 6 retransmissions");
    assert_eq!(
        h.take_distinct(CALLER),
        ["408"],
        "Timer G retransmits it until the ACK"
    );
}

#[test]
fn ringing_too_long_gives_480_and_cancel() {
    let mut h = Harness::new(default_sip());
    h.recv(CALLER, &invite("100", "c5", ""));
    let inv = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&inv, 180, "bt", "", ""));
    h.take(CALLER);
    h.advance(Duration::from_secs(61));
    assert_eq!(
        h.take_distinct(CALLER),
        ["480"],
        "Timer G retransmits it until the ACK"
    );
    assert_eq!(
        h.take_distinct(CALLEE),
        ["CANCEL"],
        "Timer E retransmits it until its 200"
    );
}

#[test]
fn reinvite_hold_and_info_are_passed_across() {
    let (mut h, _inv, ok) = answered_call("");
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));
    let hold = caller_request(&ok, "INVITE", 2, "").replace(
        "Content-Length: 0\n\n",
        "Content-Type: application/sdp\nContent-Length: 15\n\nv=0\r\na=sendonly",
    );
    h.recv(CALLER, &hold);
    let reinv = h.take(CALLEE).remove(0);
    assert_eq!(reinv.method(), Some("INVITE"));
    assert!(String::from_utf8_lossy(&reinv.body()).contains("sendonly"));
    assert_eq!(reinv.to_hdr().unwrap().tag(), Some("bt"));
    h.recv(
        CALLEE,
        &reply(&reinv, 200, "bt", "", "v=0\r\na=recvonly\r\n"),
    );
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    let ok2 = h.take(CALLER).remove(0);
    assert_eq!(ok2.status(), Some(200));
    assert!(String::from_utf8_lossy(&ok2.body()).contains("recvonly"));
    h.recv(CALLER, &caller_request(&ok, "ACK", 2, ""));
    h.recv(
        CALLER,
        &caller_request(&ok, "INFO", 3, "Content-Type: application/dtmf-relay\n"),
    );
    let info = h.take(CALLEE).remove(0);
    assert_eq!(info.method(), Some("INFO"));
    h.recv(CALLEE, &reply(&info, 200, "bt", "", ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
    h.recv(CALLER, &caller_request(&ok, "OPTIONS", 4, ""));
    let opt = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&opt, 200, "bt", "", ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
}

#[test]
fn session_timer_tears_down_a_stale_call_and_refresh_keeps_it() {
    let (mut h, _inv, ok) = answered_call("Supported: timer\nSession-Expires: 90\n");
    assert_eq!(
        ok.header(HeaderName::SessionExpires).as_deref(),
        Some("90;refresher=uac")
    );
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));
    // A refresh at 40 s (UPDATE) moves the deadline.
    h.advance(Duration::from_secs(40));
    h.recv(CALLER, &caller_request(&ok, "UPDATE", 2, ""));
    let upd = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&upd, 200, "bt", "", ""));
    h.take(CALLER);
    h.advance(Duration::from_secs(59));
    assert!(
        h.take(CALLEE).is_empty(),
        "refreshed at 40 s: alive at 99 s"
    );
    assert_eq!(h.ep.active_calls(), 1);
    // No refresh: BYE to both at 40 + 90 - 30 = 100 s.
    h.advance(Duration::from_secs(2));
    assert_eq!(h.take_distinct(CALLER), ["BYE"]);
    assert_eq!(h.take_distinct(CALLEE), ["BYE"]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn session_interval_below_min_se_is_refused_with_422() {
    let mut h = Harness::new(default_sip());
    h.recv(CALLER, &invite("100", "c6", "Session-Expires: 30\n"));
    let r = h.take(CALLER);
    assert_eq!(r[0].status(), Some(422));
    assert_eq!(r[0].header(HeaderName::MinSe).as_deref(), Some("90"));
}
