//! Calls through a running `crest` with real RTP on both legs: Crest anchors the media, a
//! 1 kHz tone crosses each way (checked with Goertzel at the far end), forwarded when the
//! legs agree (PCMU ↔ PCMU) and transcoded when they differ (PCMU ↔ Opus); hold and resume by
//! re-INVITE (sendonly, inactive); DTMF by RFC 4733, in-band tones and SIP INFO; media timeout; bandwidth budgets.

mod common;
#[path = "common/peer.rs"]
mod peer;

use std::time::Duration;

use common::*;
use crest_media::codec::CodecKind;
use crest_media::dtmf::{self, TelephoneEvent};
use peer::*;

/// The tests run one at a time: each starts a crest and two RTP peers with 20 ms pacing, and
/// the timing checks (no media while held, no echo) should not share two vCPUs with six others.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const PCMU_TE: &str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

fn start(name: &str, callee: &Phone, range: u16, media_extra: &str) -> Crest {
    Crest::start_with(
        name,
        &format!(
            "  routes:\n    - {{number: \"2000\", uri: \"sip:127.0.0.1:{}\", public: true, pool: agents}}\n",
            callee.port()
        ),
        &format!(
            "media:\n  port_min: {range}\n  port_max: {}\n{media_extra}",
            range + 99
        ),
    )
}

fn check_both_ways(call: &mut Call, a_rate: u32, b_rate: u32) {
    let ((a_heard, _), (b_heard, _)) = talk(call, 1.2, Some(1000.0), None);
    assert!(
        has_1khz(&b_heard, b_rate),
        "the callee hears the caller's 1 kHz ({} samples)",
        b_heard.len()
    );
    assert!(!has_1khz(&a_heard, a_rate), "no echo to the caller");
    let ((a_heard, _), (b_heard, _)) = talk(call, 1.2, None, Some(1000.0));
    assert!(
        has_1khz(&a_heard, a_rate),
        "the caller hears the callee's 1 kHz ({} samples)",
        a_heard.len()
    );
    assert!(!has_1khz(&b_heard, b_rate), "no echo to the callee");
}

#[test]
fn a_tone_crosses_both_ways_forwarded_when_the_legs_agree() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start("media-forward", &callee, 41000, "");
    let mut call = place(
        &crest,
        callee,
        ("0 101", PCMU_TE),
        (CodecKind::Pcmu, 0, "0 101", PCMU_TE),
    );
    check_both_ways(&mut call, 8000, 8000);
    assert_eq!(crest.metric("crest_media_calls_transcoding"), 0);
    assert!(crest.metric("crest_rtp_packets_forwarded_total") >= 100);
    call.caller.bye();
    call.callee.answer("BYE", None);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(crest.metric("crest_media_calls_active"), 0);
    assert!(
        crest.log().contains("media quality"),
        "per-leg quality logged at the end"
    );
}

#[test]
fn a_tone_crosses_both_ways_transcoded_between_pcmu_and_opus() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start("media-transcode", &callee, 41100, "");
    let opus = "a=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n";
    let mut call = place(
        &crest,
        callee,
        ("0 101", PCMU_TE),
        (CodecKind::Opus, 111, "111 110", opus),
    );
    check_both_ways(&mut call, 8000, 48_000);
    assert_eq!(crest.metric("crest_media_calls_transcoding"), 1);
    assert!(crest.metric("crest_rtp_packets_generated_total") >= 100);
    // The agent's leg now counts at Opus's rate in its pool: (60 + 40) B × 50/s × 8 × 2.
    let m = crest.http_get("/metrics").unwrap();
    assert!(
        m.contains("crest_bandwidth_used_bps{scope=\"agents\"} 80000"),
        "{m}"
    );
    call.caller.bye();
    call.callee.answer("BYE", None);
}

#[test]
fn hold_stops_the_media_and_resume_restarts_it() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start("media-hold", &callee, 41200, "");
    let mut call = place(&crest, callee, ("0", ""), (CodecKind::Pcmu, 0, "0", ""));
    let ((_, _), (b_heard, _)) = talk(&mut call, 0.6, Some(1000.0), None);
    assert!(has_1khz(&b_heard, 8000), "media flows before the hold");
    // The caller holds the call: re-INVITE with a=inactive; the callee answers inactive.
    let reinvite = |call: &mut Call, dir: &str| {
        let callee =
            std::mem::replace(&mut call.callee, Phone::new("127.0.0.1:9".parse().unwrap()));
        let b_port = call.b.port();
        // The callee answers a sendonly offer with recvonly, any other with the same.
        let dir2 = if dir == "sendonly" { "recvonly" } else { dir }.to_owned();
        let t = std::thread::spawn(move || {
            let inv = callee.answer("INVITE", Some(&sdp(b_port, "0", &format!("a={dir2}\r\n"))));
            callee.expect_request("ACK", Duration::from_secs(5));
            (callee, inv)
        });
        let ok = call
            .caller
            .invite("2000", &sdp(call.a.port(), "0", &format!("a={dir}\r\n")));
        let (callee, inv) = t.join().unwrap();
        call.callee = callee;
        // Packets of the previous phase still in flight are not this phase's media.
        call.a.drain();
        call.b.drain();
        (ok, inv)
    };
    // sendonly: the holding caller still sends (its music on hold), the callee's audio stops.
    let (ok, inv) = reinvite(&mut call, "sendonly");
    assert!(body(&inv).contains("a=sendonly"), "{inv}");
    assert!(body(&ok).contains("a=recvonly"), "{ok}");
    let ((a_heard, _), (b_heard, _)) = talk(&mut call, 1.0, Some(1000.0), Some(1000.0));
    assert!(has_1khz(&b_heard, 8000), "the caller is still heard");
    assert!(
        a_heard.is_empty(),
        "nothing to the holding caller: {}",
        a_heard.len()
    );
    let (ok, inv) = reinvite(&mut call, "inactive");
    assert!(
        body(&inv).contains("a=inactive"),
        "the hold reaches the callee: {inv}"
    );
    assert!(body(&ok).contains("a=inactive"), "{ok}");
    let ((a_heard, _), (b_heard, _)) = talk(&mut call, 1.0, Some(1000.0), Some(1000.0));
    assert!(
        a_heard.is_empty() && b_heard.is_empty(),
        "no media while held: {} / {}",
        a_heard.len(),
        b_heard.len()
    );
    let (ok, _) = reinvite(&mut call, "sendrecv");
    assert!(body(&ok).contains("a=sendrecv"), "{ok}");
    check_both_ways(&mut call, 8000, 8000);
}

#[test]
fn dtmf_by_rfc4733_info_and_inband_tones_is_reported_and_passed_on() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start("media-dtmf", &callee, 41300, "");
    let callee_te = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
    let mut call = place(
        &crest,
        callee,
        ("0 101", PCMU_TE),
        (CodecKind::Pcmu, 0, "0 96", callee_te),
    );
    // RFC 4733 from the caller: reported once, passed on with the callee's payload type.
    let events = dtmf::event_payloads('5', 800, 160);
    let a = &mut call.a;
    for (i, e) in events.iter().enumerate() {
        a.send_raw(101, i == 0, 16_000, e);
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIP INFO from the caller: Crest answers it and sends the key as RFC 4733 to the callee.
    call.caller.info_key('7');
    let (_, (_, got)) = talk(&mut call, 0.8, None, None);
    let keys: Vec<char> = got
        .iter()
        .filter(|(pt, _)| *pt == 96)
        .filter_map(|(_, p)| TelephoneEvent::parse(p).ok())
        .filter(|e| e.end)
        .map(|e| e.key)
        .collect();
    assert!(
        keys.contains(&'7'),
        "INFO became RFC 4733 toward the callee: {keys:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(crest.metric("crest_dtmf_keys_total{source=\"rfc4733\"}"), 1);
    assert_eq!(crest.metric("crest_dtmf_keys_total{source=\"info\"}"), 1);
    assert!(crest.log().contains("key=5"), "the RFC 4733 key is logged");
    call.caller.bye();
    call.callee.answer("BYE", None);

    // A trunk without telephone-event sends the key as tones: detected in the audio.
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let port = callee.port();
    let crest2 = Crest::start_with(
        "media-inband",
        &route_to_port("2000", port),
        "media:\n  port_min: 41400\n  port_max: 41499\n",
    );
    let mut call = place(&crest2, callee, ("0", ""), (CodecKind::Pcmu, 0, "0", ""));
    let mut pcm = dtmf::tone_pcm('9', 8000, 800).unwrap();
    pcm.extend(vec![0; 800]);
    let mut codes = Vec::new();
    for (n, chunk) in pcm.chunks(160).enumerate() {
        crest_media::g711::encode_ulaw(chunk, &mut codes);
        call.a.send_raw(0, false, 160 * n as u32, &codes);
        std::thread::sleep(Duration::from_millis(20));
    }
    talk(&mut call, 0.4, None, None);
    assert_eq!(crest2.metric("crest_dtmf_keys_total{source=\"inband\"}"), 1);
    assert!(crest2.log().contains("key=9"), "{}", crest2.log());
}

#[test]
fn silence_on_a_leg_ends_the_call_with_bye_to_both() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start("media-timeout", &callee, 41500, "  timeout_secs: 2\n");
    let call = place(&crest, callee, ("0", ""), (CodecKind::Pcmu, 0, "0", ""));
    let (bye_a, _) = call.caller.expect_request("BYE", Duration::from_secs(6));
    let (bye_b, _) = call.callee.expect_request("BYE", Duration::from_secs(6));
    assert!(
        bye_a.contains("media timeout") && bye_b.contains("media timeout"),
        "{bye_a}"
    );
    assert_eq!(crest.metric("crest_media_timeouts_total"), 1);
}

#[test]
fn a_spent_bandwidth_budget_refuses_the_next_call_with_503() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    // One G.711 leg is 160 kbit/s both ways; the agents' pool holds one and a bit.
    let crest = start(
        "media-bandwidth",
        &callee,
        41600,
        "  bandwidth:\n    pools: {agents: 200}\n",
    );
    let call = place(&crest, callee, ("0", ""), (CodecKind::Pcmu, 0, "0", ""));
    let mut second = Phone::new(crest.addr());
    let invite = second.request(
        "INVITE",
        &format!("sip:2000@{}", crest.addr()),
        &format!("<sip:2000@{}>", crest.addr()),
        Some(("application/sdp", &sdp(5004, "0", ""))),
    );
    second.send(&invite);
    let resp = second.recv_where(Duration::from_secs(5), |m| m.starts_with("SIP/2.0 100"));
    assert!(resp.starts_with("SIP/2.0 503"), "{resp}");
    assert_eq!(crest.metric("crest_media_bandwidth_refused_total"), 1);
    let m = crest.http_get("/metrics").unwrap();
    assert!(
        m.contains("crest_bandwidth_used_bps{scope=\"agents\"} 160000"),
        "{m}"
    );
    assert!(
        m.contains("crest_bandwidth_budget_bps{scope=\"agents\"} 200000"),
        "{m}"
    );
    drop(call);
}

#[test]
fn an_offer_crest_cannot_anchor_gets_488_with_a_warning() {
    let _serial = serial();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start("media-488", &callee, 41700, "");
    let mut caller = Phone::new(crest.addr());
    for (formats, proto) in [("18", "RTP/AVP"), ("0", "RTP/SAVP")] {
        let offer = sdp(5004, formats, "a=rtpmap:18 G729/8000\r\n").replace("RTP/AVP", proto);
        let invite = caller.request(
            "INVITE",
            &format!("sip:2000@{}", crest.addr()),
            &format!("<sip:2000@{}>", crest.addr()),
            Some(("application/sdp", &offer)),
        );
        caller.send(&invite);
        let resp = caller.recv_where(Duration::from_secs(5), |m| m.starts_with("SIP/2.0 100"));
        assert!(resp.starts_with("SIP/2.0 488"), "{proto} {formats}: {resp}");
        assert!(resp.contains("Warning: 305 crest"), "{resp}");
    }
    assert_eq!(
        crest.metric("crest_calls_started_total"),
        0,
        "nothing reached the callee"
    );
    // The refused call's media task stops on its own thread, soon after the 488.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while crest.metric("crest_media_calls_active") != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(crest.metric("crest_media_calls_active"), 0);
}

/// The tone `pcm` holds (see `which_tone`).
fn dominant(pcm: &[i16]) -> Option<u32> {
    which_tone(&pcm.iter().map(|&s| f64::from(s)).collect::<Vec<_>>())
}

#[test]
fn an_announcement_plays_to_the_caller_on_answer_and_a_key_barges_in() {
    let _serial = serial();
    let dir = scratch_dir("announce-prompt");
    // A 2 s WAV prompt at 16 kHz (the bridge resamples it to the caller's 8 kHz PCMU).
    let pcm: Vec<i16> = (0..32_000)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 16000.0).sin()) as i16
        })
        .collect();
    let wav = dir.join("notice.wav");
    std::fs::write(&wav, crest_media::wav::write(16_000, &pcm)).unwrap();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let crest = start(
        "media-announce",
        &callee,
        41800,
        &format!(
            "  announce:\n    \"2000\": {{file: \"{}\", barge_in: true}}\n",
            wav.display()
        ),
    );
    // First call: the prompt plays to its end, then the callee is heard.
    let mut call = place(
        &crest,
        callee,
        ("0 101", PCMU_TE),
        (CodecKind::Pcmu, 0, "0 101", PCMU_TE),
    );
    let ((heard, _), (callee_heard, _)) = talk(&mut call, 1.5, None, Some(600.0));
    assert_eq!(
        dominant(&heard[2000..]),
        Some(1000),
        "the caller hears the prompt"
    );
    assert_eq!(
        dominant(&callee_heard),
        None,
        "the callee hears the caller's silence"
    );
    let ((heard, _), _) = talk(&mut call, 1.5, None, Some(600.0));
    assert_eq!(
        dominant(&heard[heard.len() - 4000..]),
        Some(600),
        "after the prompt the callee's audio reaches the caller"
    );
    assert!(crest.log().contains("prompt done"), "{}", crest.log());
    call.caller.bye();
    call.callee.answer("BYE", None);

    // Second call: a key from the caller stops the prompt at once.
    let mut call = place(
        &crest,
        call.callee,
        ("0 101", PCMU_TE),
        (CodecKind::Pcmu, 0, "0 101", PCMU_TE),
    );
    let ((heard, _), _) = talk(&mut call, 0.5, None, Some(600.0));
    assert_eq!(dominant(&heard[1000..]), Some(1000));
    for (i, e) in dtmf::event_payloads('1', 800, 160).iter().enumerate() {
        call.a.send_raw(101, i == 0, 16_000, e);
        std::thread::sleep(Duration::from_millis(20));
    }
    let ((heard, _), _) = talk(&mut call, 0.6, None, Some(600.0));
    assert_eq!(
        dominant(&heard[heard.len() / 2..]),
        Some(600),
        "barge-in: the callee is heard well before the 2 s prompt would end"
    );
    let log = crest.log();
    assert!(
        log.contains("barge-in") && log.contains("Key('1')"),
        "{log}"
    );
    call.caller.bye();
    call.callee.answer("BYE", None);
}
