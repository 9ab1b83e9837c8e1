//! A call Crest answers itself, recorded by its controller's decisions in a running `crest`
//! (`recording.from: answer`): the caller keys a card number into an IVR `ask` marked
//! `pci: true` (RFC 4733), is queued, and talks to the agent, who pauses the recording from
//! the admin API for a second. The sealed recording holds two marked pauses, the IVR's and the
//! agent's, each silence; the card's keys are not in the log; a pause for a call that is not
//! up is a 404.

mod common;
#[path = "common/peer.rs"]
mod peer;

use std::time::Duration;

use common::*;
use crest_media::codec::CodecKind;
use peer::*;

const PCMU_TE: &str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

const PAY: &str = r#"
flow: pay
version: "3"
language: en-US
voice: en-us
start: card
nodes:
  - ask:
      name: card
      prompt: "Key in your card number, then the hash key."
      digits: {min: 12, max: 19, into: card, pci: true, next: thanks}
      timeout_secs: 10
      no_input: {prompt: "Please key in your card number.", retries: 1, then: agent}
      no_match: {prompt: "That is not a card number.", retries: 1, then: agent}
  - say: {name: thanks, text: "Thank you.", next: agent}
  - queue: {name: agent, queue: refund}
"#;

const ACD: &str = "ring_secs: 10\nwrap_up_secs: 1\nmax_misses: 3\n\
pools:\n  - {name: office, neighbours: [], overflow_after_secs: 30}\n\
queues:\n  - {name: refund, skill: refund, pool: office}\n\
agents:\n  - {name: alice, pool: office, skills: {refund: 0.9}, rating: 0.9}\n";

const CARD: &str = "4111111111111111";

/// Samples of a channel that are not silence, in `from..to`.
fn loud_samples(ch: &[f64], from: usize, to: usize) -> usize {
    ch[from.min(ch.len())..to.min(ch.len())]
        .iter()
        .filter(|s| s.abs() > 0.0)
        .count()
}

#[test]
fn the_card_number_and_the_agents_pause_are_silence_in_the_recording_and_absent_from_the_log() {
    let dir = scratch_dir("pci-live-files");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("pay.yaml"), PAY).unwrap();
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    std::fs::write(dir.join("k1.hex"), "11".repeat(32)).unwrap();
    let d = dir.display();
    let crest = Crest::start_with(
        "pci-live",
        "  routes:\n    - {number: \"4000\", ivr: pay, public: true}\n",
        &format!(
            "media:\n  port_min: 43400\n  port_max: 43499\nivr:\n  enabled: true\n  flows_dir: \"{d}/flows\"\n\
             acd:\n  file: \"{d}/acd.yaml\"\n\
             recording:\n  enabled: true\n  cdr: true\n  from: answer\n  chunk_secs: 1\n  hot_dir: \"{d}/hot\"\n  \
             index: \"sqlite:{d}/index.db\"\n  cold:\n    dir: \"{d}/cold\"\n  keys:\n    - {{id: k1, file: \"{d}/k1.hex\"}}\n"
        ),
    );
    let agent = crest.token("alice", "agent");
    let (status, ctype, problem) = crest.http(
        "POST",
        "/api/v1/calls/nobody/recording/pause",
        Some(&agent),
        Some(r#"{"reason": "x"}"#),
    );
    assert_eq!((status, ctype.as_str()), (404, "application/problem+json"));
    assert!(
        problem.contains(r#"no call with call_id \"nobody\""#),
        "{problem}"
    );

    let mut alice = Phone::new(crest.addr());
    alice.register("alice");
    let mut b = Rtp::new(CodecKind::Pcmu, 0);

    let mut caller = Phone::new(crest.addr());
    let mut a = Rtp::new(CodecKind::Pcmu, 0);
    let ok = caller.invite("4000", &sdp(a.port(), "0 101", PCMU_TE));
    let call_id = caller.call_id.clone();
    let (port, _) = sdp_audio(body(&ok));
    a.remote = Some(([127, 0, 0, 1], port).into());
    a.hear_prompt(1.5, Duration::from_millis(1500), Duration::from_secs(30));
    for k in CARD.chars().chain(['#']) {
        a.press(101, k);
    }
    // "Thank you.", then the queue rings Alice, who answers.
    let (inv, from) = alice.expect_request("INVITE", Duration::from_secs(15));
    let (crest_port, _) = sdp_audio(body(&inv));
    let answer = alice.respond(&inv, 200, Some(&sdp(b.port(), "0", "")));
    alice.sip.send_to(answer.as_bytes(), from).unwrap();
    alice.expect_request("ACK", Duration::from_secs(5));
    b.remote = Some(([127, 0, 0, 1], crest_port).into());
    let mut call = Call {
        caller,
        callee: alice,
        a,
        b,
    };
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    let (status, _, answer) = crest.http(
        "POST",
        &format!("/api/v1/calls/{call_id}/recording/pause"),
        Some(&agent),
        Some(r#"{"reason": "agent takes the card"}"#),
    );
    assert_eq!(status, 200, "{answer}");
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    let (status, _, answer) = crest.http(
        "POST",
        &format!("/api/v1/calls/{call_id}/recording/resume"),
        Some(&agent),
        None,
    );
    assert_eq!(status, 200, "{answer}");
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    call.caller.bye();
    call.callee.answer("BYE", None);
    wait_for("the recording closed", || {
        crest.metric("crest_recordings_completed_total") == 1
    });
    assert_eq!(crest.metric("crest_recordings_active"), 0);

    let out = dir.join("call.wav");
    let config = crest.dir.join("crest.yaml");
    let got = crest_cli(
        &config,
        &["recording", "get", &call_id, "--out", out.to_str().unwrap()],
    );
    let report = String::from_utf8_lossy(&got.stdout);
    assert!(got.status.success(), "{report}{got:?}");
    assert!(report.contains("card data (IVR)"), "{report}");
    assert!(report.contains("agent takes the card"), "{report}");
    assert_eq!(report.matches("paused at").count(), 2, "{report}");

    // The records through the API: found by agent and queue, the same file downloaded.
    let lead = crest.token("lead", "supervisor");
    let (status, _, body) = crest.http(
        "GET",
        "/api/v1/calls?agent=alice&queue=refund",
        Some(&lead),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["call_id"], call_id.as_str());
    assert_eq!(
        (found[0]["outcome"].as_str(), found[0]["recorded"].as_bool()),
        (Some("answered"), Some(true))
    );
    assert_eq!(
        crest
            .http("GET", "/api/v1/calls?limit=0", Some(&lead), None)
            .0,
        422
    );
    let (status, _, body) = crest.http("GET", "/api/v1/calls?limit=x", Some(&lead), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""field":"limit""#), "{body}");
    let path = format!("/api/v1/calls/{call_id}/recording");
    assert_eq!(crest.http("GET", &path, Some(&agent), None).0, 403);
    let (status, head, bytes) = crest.http_raw("GET", &path, Some(&lead), None);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: audio/wav"),
        "{head}"
    );
    assert_eq!(
        head.to_ascii_lowercase()
            .matches("x-crest-pci-pauses:")
            .count(),
        1,
        "{head}"
    );
    assert!(
        head.contains("card data (IVR)") && head.contains("agent takes the card"),
        "{head}"
    );
    assert_eq!(
        bytes,
        std::fs::read(&out).unwrap(),
        "the CLI's file, byte for byte"
    );
    let admin = crest.token("ops", "admin");
    let (_, _, audit) = crest.http("GET", "/api/v1/audit", Some(&admin), None);
    assert!(
        audit.contains(r#""actor":"lead","role":"supervisor","action":"recording.download""#)
            && audit.contains("2 PCI pauses"),
        "{audit}"
    );

    // The recording runs from the answer: the prompt, the keyed card (silence), the agent.
    let wav = std::fs::read(&out).unwrap();
    let (pcm, _) = channels(&wav);
    let secs = pcm.len() as f64 / 8000.0;
    assert!(secs > 6.0, "{secs} s recorded");
    // The caller's tone plays in the last second, not in the agent's paused second before it.
    let n = pcm.len();
    assert_eq!(which_tone(&pcm[n - 5000..n - 1000]), Some(1000));
    assert_eq!(
        loud_samples(&pcm, n - 13_000, n - 11_000),
        0,
        "the agent's pause is silence"
    );

    let log = crest.log();
    assert!(log.contains("DTMF (card data, not logged)"), "{log}");
    for k in CARD.chars() {
        assert!(!log.contains(&format!("key={k}")), "a card key in the log");
    }
    assert!(!log.contains(CARD), "the card number in the log");
}
