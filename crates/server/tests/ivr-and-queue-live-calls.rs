//! The IVR and the ACD in real calls through a running `crest`: a caller's RTP carries
//! espeak-ng telephone speech and RFC 4733 keys into `config/flows/main.yaml`; the IVR answers
//! with its prompts, looks the order up over HTTP, and hangs up or queues the caller; the ACD
//! rings agents' registered phones (the next one when the first lets it ring out), bridges the
//! call, and forgets a caller who hangs up while waiting.

mod common;
#[path = "common/peer.rs"]
mod peer;
#[path = "../../ivr/tests/common/speech.rs"]
mod speech;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use crest_media::codec::CodecKind;
use peer::*;

const PCMU_TE: &str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// A tiny order backend: every GET /orders/N answers that the order is out for delivery; the
/// paths asked for are kept.
fn orders_backend() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(16).flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
            }
            log.lock().unwrap().push(path);
            let body = r#"{"status":"out for delivery","eta":"today"}"#;
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// `config/flows/main.yaml` as shipped, with two lines changed for the test: open all day
/// (so that the call is not sent to the closed-hours branch at night) and the order backend
/// on `port`.
/// The same with `hours` (`open: H, close: H`) in place of the shop's.
fn flows_with_hours(dir: &Path, port: u16, hours: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows");
    let text = std::fs::read_to_string(root.join("main.yaml")).unwrap();
    let shipped = "business_hours: {days: [0, 1, 2, 3, 4, 5, 6], open: 8, close: 22, utc_offset_minutes: 480}";
    let backend = "orders: {url: \"http://127.0.0.1:8099\", timeout_ms: 2000}";
    assert!(
        text.contains(shipped) && text.contains(backend),
        "main.yaml changed: update the test"
    );
    let wanted =
        format!("business_hours: {{days: [0, 1, 2, 3, 4, 5, 6], {hours}, utc_offset_minutes: 0}}");
    let text = text.replace(shipped, &wanted).replace(
        backend,
        &format!("orders: {{url: \"http://127.0.0.1:{port}\", timeout_ms: 2000}}"),
    );
    let out = dir.join("flows");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("main.yaml"), text).unwrap();
    // The survey its queues name.
    std::fs::copy(root.join("csat.yaml"), out.join("csat.yaml")).unwrap();
    out
}

/// An ACD with one queue and two agents who ring for 3 s.
const ACD: &str = "ring_secs: 3\nwrap_up_secs: 1\nmax_misses: 3\n\
pools:\n  - {name: office, neighbours: [], overflow_after_secs: 30}\n\
queues:\n  - {name: order-status, skill: order_status, pool: office}\n  - {name: refund, skill: refund, pool: office}\n  - {name: vip, skill: vip, pool: office}\n\
agents:\n  - {name: alice, pool: office, skills: {order_status: 0.9, refund: 0.5}, rating: 0.9}\n  - {name: bob, pool: office, skills: {order_status: 0.6}, rating: 0.8}\n";

fn start(name: &str, range: u16, backend: u16) -> Crest {
    start_with(name, range, backend, ACD, "", "open: 0, close: 24")
}

/// `acd_file`: the ACD's agents, pools and queues; `acd_extra`: more keys of the `acd:`
/// section (indented two spaces).
fn start_with(
    name: &str,
    range: u16,
    backend: u16,
    acd_file: &str,
    acd_extra: &str,
    hours: &str,
) -> Crest {
    let dir = scratch_dir(&format!("{name}-files"));
    let flows = flows_with_hours(&dir, backend, hours);
    let acd = dir.join("acd.yaml");
    std::fs::write(&acd, acd_file).unwrap();
    Crest::start_with(
        name,
        "  routes:\n    - {number: \"4000\", ivr: main, public: true}\n    - {number: \"4001\", queue: order-status, public: true}\n",
        &format!(
            "media:\n  port_min: {range}\n  port_max: {}\nivr:\n  enabled: true\n  flows_dir: \"{}\"\n  reload_secs: 60\n\
             acd:\n  file: \"{}\"\n  announce_secs: 5\n{acd_extra}recording:\n  enabled: false\n  cdr: false\n",
            range + 99,
            flows.display(),
            acd.display()
        ),
    )
}

/// Calls `number` with PCMU and telephone-event; the caller's phone and RTP end.
fn call(crest: &Crest, number: &str) -> (Phone, Rtp) {
    let mut phone = Phone::new(crest.addr());
    let mut rtp = Rtp::new(CodecKind::Pcmu, 0);
    let ok = phone.invite(number, &sdp(rtp.port(), "0 101", PCMU_TE));
    let (port, _) = sdp_audio(body(&ok));
    rtp.remote = Some(([127, 0, 0, 1], port).into());
    (phone, rtp)
}

/// A prompt's end: a second and a half of quiet (longer than the pauses between its
/// sentences).
const GAP: Duration = Duration::from_millis(1500);

#[test]
fn a_spoken_question_and_order_number_get_the_status_then_nine_hangs_up_and_a_refund_is_queued() {
    let (backend, seen) = orders_backend();
    let crest = start("ivr-live-order", 42000, backend);
    let (caller, mut a) = call(&crest, "4000");
    let scratch = scratch_dir("ivr-live-speech");
    // "Welcome to Crest Shop. How can I help you? You can say …"
    a.hear_prompt(5.0, GAP, Duration::from_secs(30));
    let question = speech::telephone_speech(&scratch, "where is my order", "en-us", 150);
    // "Please key in or say your order number, then press the hash key."
    let heard = a.speak_until(&question, Duration::from_secs(20), prompt_ended(1.5, GAP));
    assert!(
        prompt_ended(1.5, GAP)(&heard),
        "the order number question: {} s",
        speech_secs(&heard)
    );
    // Spoken digits are read back ("I heard …. Say yes or press 1 …"); espeak's digits are
    // seldom heard exactly (docs/benchmarks.md), so the caller says no (2) and keys them in.
    let digits = speech::telephone_speech(&scratch, "one two three four", "en-us", 150);
    a.speak_until(&digits, Duration::from_secs(20), prompt_ended(2.0, GAP));
    assert!(
        crest.log().contains("IVR prompt text=\"I heard "),
        "the spoken order number is read back"
    );
    a.press(101, '2');
    a.hear_prompt(1.5, GAP, Duration::from_secs(20));
    for k in "1234#".chars() {
        a.press(101, k);
    }
    // "Your order 1234 is out for delivery and arrives today. Press 1 to talk to an agent, or 9 …"
    a.hear_prompt(4.0, GAP, Duration::from_secs(30));
    assert_eq!(
        *seen.lock().unwrap(),
        ["/orders/1234"],
        "the keyed order number was looked up"
    );
    a.press(101, '9');
    // "Thank you for calling Crest Shop. Goodbye." and the flow hangs up.
    let (bye, from) = caller.expect_request("BYE", Duration::from_secs(20));
    caller
        .sip
        .send_to(caller.respond(&bye, 200, None).as_bytes(), from)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let log = crest.log();
    assert!(
        log.contains("path=\"hours>welcome>main_menu>order_number>")
            && log.contains(">order_lookup>order_found>order_status>anything_else>goodbye>bye\""),
        "the IVR's path: {}",
        log.lines()
            .filter(|l| l.contains("IVR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        crest.metric("crest_ivr_calls_total{flow=\"main\",outcome=\"hangup\"}"),
        1
    );
    // Another caller: "I want a refund" → the refund queue.
    let (mut caller, mut a) = call(&crest, "4000");
    a.hear_prompt(5.0, GAP, Duration::from_secs(30));
    let refund = speech::telephone_speech(&scratch, "i want a refund", "en-us", 150);
    a.speak_until(&refund, Duration::from_secs(10), |h| speech_secs(h) > 0.5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        crest.metric("crest_ivr_calls_total{flow=\"main\",outcome=\"queue:refund\"}"),
        1,
        "{}",
        crest
            .log()
            .lines()
            .filter(|l| l.contains("IVR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    caller.bye();
}

/// An agent's phone: registered, answering Crest's INVITEs as told.
fn agent(crest: &Crest, user: &str) -> (Phone, Rtp) {
    let mut p = Phone::new(crest.addr());
    p.register(user);
    (p, Rtp::new(CodecKind::Pcmu, 0))
}

#[test]
fn waiting_callers_hear_their_place_then_a_spoken_request_rings_agents_until_one_answers() {
    let (backend, _) = orders_backend();
    let crest = start("acd-live", 42200, backend);
    // Nobody logged in: a caller to the queue route waits, hears the wait announcement, hangs up.
    let (mut waiting, mut w) = call(&crest, "4001");
    // Hold music, with the announcement over it.
    let heard = w.speak_until(&[], Duration::from_secs(6), |_| false);
    assert!(speech_secs(&heard) > 3.0, "{} s", speech_secs(&heard));
    waiting.bye();
    std::thread::sleep(Duration::from_millis(300));
    let log = crest.log();
    assert!(
        log.contains("queue announcement") && log.contains("All our agents are busy"),
        "{log}"
    );
    assert!(
        log.contains("caller left the queue"),
        "the hang-up removes the caller"
    );

    // Alice and Bob log in by registering their phones.
    let (alice, _) = agent(&crest, "alice");
    let (bob, mut b) = agent(&crest, "bob");
    let (mut caller, mut a) = call(&crest, "4000");
    a.hear_prompt(5.0, GAP, Duration::from_secs(30));
    let scratch = scratch_dir("acd-live-speech");
    let ask = speech::telephone_speech(&scratch, "talk to an agent", "en-us", 150);
    a.speak_until(
        &ask,
        Duration::from_millis(ask.len() as u64 / 8 + 200),
        |_| false,
    );
    // Alice (the better order-status skill) rings first and lets it ring out.
    let (inv, from) = alice.expect_request("INVITE", Duration::from_secs(15));
    alice
        .sip
        .send_to(alice.respond(&inv, 180, None).as_bytes(), from)
        .unwrap();
    let (cancel, from) = alice.expect_request("CANCEL", Duration::from_secs(6));
    alice
        .sip
        .send_to(alice.respond(&cancel, 200, None).as_bytes(), from)
        .unwrap();
    alice
        .sip
        .send_to(alice.respond(&inv, 487, None).as_bytes(), from)
        .unwrap();
    // Then Bob, who answers: the caller and Bob hear each other.
    let (inv, from) = bob.expect_request("INVITE", Duration::from_secs(6));
    let (crest_port, _) = sdp_audio(body(&inv));
    let ok = bob.respond(&inv, 200, Some(&sdp(b.port(), "0", "")));
    bob.sip.send_to(ok.as_bytes(), from).unwrap();
    bob.expect_request("ACK", Duration::from_secs(5));
    b.remote = Some(([127, 0, 0, 1], crest_port).into());
    let mut bridged = Call {
        caller: Phone::new(crest.addr()),
        callee: Phone::new(crest.addr()),
        a,
        b,
    };
    a_tone_each_way(&mut bridged);
    caller.bye();
    let (bye, from) = bob.expect_request("BYE", Duration::from_secs(5));
    bob.sip
        .send_to(bob.respond(&bye, 200, None).as_bytes(), from)
        .unwrap();
    let log = crest.log();
    assert!(
        log.contains("agent rang out") && log.contains("agent answered"),
        "{log}"
    );
    assert_eq!(
        crest.metric("crest_ivr_calls_total{flow=\"main\",outcome=\"queue:order-status\"}"),
        1
    );
    assert_eq!(crest.metric("crest_acd_offers_total"), 2, "Alice, then Bob");
    assert_eq!(crest.metric("crest_acd_missed_total"), 1);
    assert_eq!(crest.metric("crest_acd_answered_total"), 1);
    assert_eq!(
        crest.metric("crest_acd_abandoned_total"),
        1,
        "the caller who gave up"
    );
}

fn a_tone_each_way(call: &mut Call) {
    let ((_, _), (b_heard, _)) = talk(call, 1.2, Some(1000.0), None);
    assert!(
        has_1khz(&b_heard, 8000),
        "the agent hears the caller ({} samples)",
        b_heard.len()
    );
    let ((a_heard, _), _) = talk(call, 1.2, None, Some(1000.0));
    assert!(
        has_1khz(&a_heard, 8000),
        "the caller hears the agent ({} samples)",
        a_heard.len()
    );
}

/// Calls `number` and returns Crest's final response after the early media (what the caller
/// heard meanwhile, 8 kHz).
fn call_refused(crest: &Crest, number: &str) -> (String, Vec<i16>) {
    let mut phone = Phone::new(crest.addr());
    let mut rtp = Rtp::new(CodecKind::Pcmu, 0);
    let invite = phone.request(
        "INVITE",
        &format!("sip:{number}@{}", crest.addr()),
        &format!("<sip:{number}@{}>", crest.addr()),
        Some(("application/sdp", &sdp(rtp.port(), "0 101", PCMU_TE))),
    );
    phone.send(&invite);
    let early = phone.recv_where(Duration::from_secs(5), |m| !m.starts_with("SIP/2.0 183"));
    let (port, _) = sdp_audio(body(&early));
    rtp.remote = Some(([127, 0, 0, 1], port).into());
    phone.sip.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut heard = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        heard.extend(rtp.speak_until(&[], Duration::from_millis(200), |_| false));
        if let Ok((n, _)) = phone.sip.recv_from(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.starts_with("SIP/2.0 ") && !m.starts_with("SIP/2.0 1") {
                return (m, heard);
            }
        }
    }
    panic!("no final response within 30 s");
}

#[test]
fn admission_refuses_with_an_announcement_and_503_and_a_surge_is_a_metric_the_ivr_follows() {
    let (backend, _) = orders_backend();
    // Nobody staffed and no callbacks: a queue caller is refused. The surge baseline is two
    // calls per 20 s window, so a handful of calls make a surge.
    // Bob sits in a standby pool: registered, but taking calls only in a surge.
    let acd = ACD.replace(
        "  - {name: bob, pool: office,",
        "  - {name: bob, pool: reserve,",
    ) + "";
    let acd = acd.replace(
        "pools:\n",
        "pools:\n  - {name: reserve, neighbours: [], overflow_after_secs: 30, standby: true}\n",
    );
    let crest = start_with(
        "acd-admission",
        42400,
        backend,
        &acd,
        "  admission: {callbacks: false, retry_after_secs: 120}\n  surge: {baseline_per_min: 6, window_secs: 20, thresholds: [1.5, 2.5, 4.5], dwell_secs: 30}\n",
        "open: 0, close: 24",
    );
    let mut bob = Phone::new(crest.addr());
    bob.register("bob");
    let (refused, heard) = call_refused(&crest, "4001");
    assert!(refused.starts_with("SIP/2.0 503"), "{refused}");
    assert_eq!(header(&refused, "Retry-After"), Some("120"));
    assert!(
        speech_secs(&heard) > 2.0,
        "the refusal announcement first: {} s",
        speech_secs(&heard)
    );
    assert_eq!(
        crest.metric("crest_acd_admissions_total{decision=\"refuse\",reason=\"longwait\"}"),
        1
    );
    for _ in 0..6 {
        let mut p = Phone::new(crest.addr());
        let rtp = Rtp::new(CodecKind::Pcmu, 0);
        p.invite("4000", &sdp(rtp.port(), "0", ""));
        p.bye();
        // The ACD task counts each arrival before the next call's IVR reads the level.
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        crest.metric("crest_acd_surge_level"),
        2,
        "7 calls where 2 are usual: past this test's 2.5x, the standby level"
    );
    assert!(crest.metric("crest_acd_surge_changes_total") >= 1);
    assert_eq!(
        crest.metric("crest_acd_standby_activations_total"),
        1,
        "Bob's pool called in"
    );
    let log = crest.log();
    assert!(log.contains("surge level changed"), "an event in the log");
    // At 3x and more the IVR puts self-service first (the last call came at 3x: six before it).
    assert!(
        log.contains("We are very busy right now"),
        "the flow's surge branch"
    );
}

/// A crest that dials callbacks to the customer's phone it returns (`acd_extra`: more `acd:`
/// keys; `hours` as for [`start_with`]).
fn with_customer(name: &str, range: u16, acd_extra: &str, hours: &str) -> (Crest, Phone) {
    let (backend, _) = orders_backend();
    let customer = Phone::new("127.0.0.1:9".parse().unwrap());
    let extra = format!(
        "{acd_extra}  callback_uri: \"sip:{{number}}@127.0.0.1:{}\"\n",
        customer.port()
    );
    (
        start_with(name, range, backend, ACD, &extra, hours),
        customer,
    )
}

#[test]
fn after_hours_the_ivr_takes_a_callback_request_and_crest_calls_back_when_an_agent_is_free() {
    // Always closed: main.yaml offers a callback.
    let (crest, customer) = with_customer("acd-callback", 42600, "", "open: 0, close: 0");
    // "… open from eight in the morning to ten at night." "We will call you back …" and BYE.
    let (caller, mut a) = call(&crest, "4000");
    let heard = a.speak_until(&[], Duration::from_secs(3), |_| false);
    assert!(speech_secs(&heard) > 1.0, "the closed-hours message");
    let (bye, from) = caller.expect_request("BYE", Duration::from_secs(20));
    caller
        .sip
        .send_to(caller.respond(&bye, 200, None).as_bytes(), from)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        crest.log().contains("callback scheduled"),
        "{}",
        crest.log()
    );
    // Alice logs in: her first call is the callback. Crest dials the customer ("caller", the
    // number the flow took from the From header), then rings Alice.
    let (alice, mut b) = agent(&crest, "alice");
    let (inv, from) = customer.expect_request("INVITE", Duration::from_secs(10));
    assert!(inv.starts_with("INVITE sip:caller@127.0.0.1:"), "{inv}");
    let mut c = Rtp::new(CodecKind::Pcmu, 0);
    let (crest_c, _) = sdp_audio(body(&inv));
    let ok = customer.respond(&inv, 200, Some(&sdp(c.port(), "0", "")));
    customer.sip.send_to(ok.as_bytes(), from).unwrap();
    customer.expect_request("ACK", Duration::from_secs(5));
    c.remote = Some(([127, 0, 0, 1], crest_c).into());
    let (inv, from) = alice.expect_request("INVITE", Duration::from_secs(10));
    let (crest_b, _) = sdp_audio(body(&inv));
    let ok = alice.respond(&inv, 200, Some(&sdp(b.port(), "0", "")));
    alice.sip.send_to(ok.as_bytes(), from).unwrap();
    alice.expect_request("ACK", Duration::from_secs(5));
    b.remote = Some(([127, 0, 0, 1], crest_b).into());
    let mut bridged = Call {
        caller: Phone::new(crest.addr()),
        callee: Phone::new(crest.addr()),
        a: c,
        b,
    };
    a_tone_each_way(&mut bridged);
    let log = crest.log();
    assert!(
        log.contains("calling the customer back") && log.contains("agent answered"),
        "{log}"
    );
    assert_eq!(
        crest.metric("crest_ivr_calls_total{flow=\"main\",outcome=\"callback\"}"),
        1
    );
}

#[test]
fn under_the_circuit_breaker_a_waiting_caller_takes_the_callback_offer_with_a_key() {
    // The first call already trips this test's breaker (0.3x); no self-service at the door.
    let (crest, customer) = with_customer(
        "acd-breaker",
        42800,
        "  admission: {self_service: false}\n  surge: {baseline_per_min: 6, window_secs: 20, thresholds: [0.1, 0.2, 0.3]}\n",
        "open: 0, close: 24",
    );
    let (caller, mut a) = call(&crest, "4001");
    // Hold music and the announcement with the offer.
    a.speak_until(&[], Duration::from_secs(2), |_| false);
    assert!(
        crest.log().contains("To be called back instead, press 1."),
        "{}",
        crest.log()
    );
    a.press(101, '1');
    let (bye, from) = caller.expect_request("BYE", Duration::from_secs(20));
    caller
        .sip
        .send_to(caller.respond(&bye, 200, None).as_bytes(), from)
        .unwrap();
    let log = crest.log();
    assert!(
        log.contains("admit_with_callback_offer") && log.contains("takes the callback offer"),
        "{log}"
    );
    // An agent logs in: Crest calls the customer back.
    let (alice, _) = agent(&crest, "alice");
    let (inv, from) = customer.expect_request("INVITE", Duration::from_secs(10));
    let c = Rtp::new(CodecKind::Pcmu, 0);
    let ok = customer.respond(&inv, 200, Some(&sdp(c.port(), "0", "")));
    customer.sip.send_to(ok.as_bytes(), from).unwrap();
    let (to_alice, _) = alice.expect_request("INVITE", Duration::from_secs(10));
    assert!(to_alice.contains("From: <sip:crest@"), "{to_alice}");
    assert_eq!(crest.metric("crest_acd_callbacks_total"), 1);
}

#[test]
fn when_the_agent_hangs_up_first_the_caller_rates_the_call_with_a_key() {
    let (backend, _) = orders_backend();
    let crest = start("csat-live", 42800, backend);
    let (alice, mut b) = agent(&crest, "alice");
    let (caller, mut a) = call(&crest, "4000");
    // "Welcome to Crest Shop." and the menu; 0 for an agent: the order-status queue, whose
    // node names the survey `csat`.
    a.hear_prompt(5.0, GAP, Duration::from_secs(30));
    a.press(101, '0');
    let (invite, from) = alice.expect_request("INVITE", Duration::from_secs(15));
    let (crest_port, _) = sdp_audio(body(&invite));
    let ok = alice.respond(&invite, 200, Some(&sdp(b.port(), "0", "")));
    alice.sip.send_to(ok.as_bytes(), from).unwrap();
    alice.expect_request("ACK", Duration::from_secs(5));
    b.remote = Some(([127, 0, 0, 1], crest_port).into());
    b.speak_until(&[], Duration::from_millis(500), |_| false);
    // Alice hangs up first: the caller is not hung up on, but asked to rate the call.
    alice.hang_up_answered(&invite, &ok, from);
    let question = a.hear_prompt(3.0, GAP, Duration::from_secs(20));
    assert!(speech_secs(&question) > 3.0);
    a.press(101, '4');
    // "Thank you for your answer. Goodbye." and the BYE.
    let (bye, from) = caller.expect_request("BYE", Duration::from_secs(20));
    caller
        .sip
        .send_to(caller.respond(&bye, 200, None).as_bytes(), from)
        .unwrap();
    wait_for("the score counted", || {
        crest
            .http_get("/metrics")
            .is_some_and(|m| m.contains("crest_csat_responses_total{queue=\"order-status\"} 1"))
    });
    assert_eq!(
        crest.metric("crest_csat_score_total{queue=\"order-status\"}"),
        4
    );
    let lead = crest.token("lead", "supervisor");
    let (_, _, body) = crest.http("GET", "/api/v1/queues", Some(&lead), None);
    let q: serde_json::Value = serde_json::from_str(&body).unwrap();
    let order = q["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "order-status")
        .unwrap();
    assert_eq!(
        (&order["csat_responses"], &order["csat_average"]),
        (&serde_json::json!(1), &serde_json::json!(4.0)),
        "{q}"
    );
    let log = crest.log();
    let journey = log
        .lines()
        .find(|l| l.contains("call journey"))
        .expect("the journey is logged");
    assert!(
        journey.contains("outcome=\"answered\"") && journey.contains("csat=4"),
        "{journey}"
    );
    // The agent's call ended with her BYE: she wrapped up (1 s) and is free again, and the
    // survey left nothing behind.
    wait_for("alice free", || {
        crest.metric("crest_acd_agents{pool=\"office\",state=\"available\"}") == 1
            && crest.metric("crest_calls_active") == 0
            && crest.metric("crest_ivr_sessions_active") == 0
    });
}
