//! sipp with real RTP: a caller plays sipp's G.711 A-law recording and an RFC 4733 key from
//! pcap files through `crest` to a registered sipp UAS that echoes RTP back. Crest anchors both
//! legs (the far end's packets come from Crest's ports), forwards the audio both ways and
//! reports the key.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn pcap_audio_and_rfc4733_key_cross_crest_to_a_registered_uas() {
    let crest = Crest::start_with(
        "sipp-pcap",
        "  routes:\n    - {number: \"1000\", user: alice, public: true}\n",
        "media:\n  port_min: 42000\n  port_max: 42099\n",
    );
    let media_port = free_port().to_string();
    let uas = registered_uas(
        &crest,
        "uas_answer_pcma.xml",
        &["-mp", &media_port, "-rtp_echo"],
    );
    let out = uac(&crest, &scenario("uac_pcap_g711a_dtmf.xml"), "1000", &[]);
    assert_ok("caller", &out, &crest);
    assert_ok("callee", &uas.finish(Duration::from_secs(5)), &crest);
    std::thread::sleep(Duration::from_millis(300));
    // 236 audio packets and 10 event packets from the caller, echoed back by the callee.
    let received = crest.metric("crest_rtp_packets_received_total");
    let forwarded = crest.metric("crest_rtp_packets_forwarded_total");
    assert!(received >= 2 * 240, "received {received}\n{}", crest.log());
    assert!(forwarded >= 2 * 240, "forwarded {forwarded}");
    assert_eq!(crest.metric("crest_media_calls_transcoding"), 0);
    let log = crest.log();
    assert!(
        log.contains("DTMF leg=A key=1 source=Rfc4733"),
        "the caller's key is reported once:\n{log}"
    );
    assert_eq!(log.matches("DTMF leg=A").count(), 1);
    assert!(log.contains("media quality leg=A codec=PCMA"), "{log}");
}

/// What issue 15 found: sipp's own recording is PCMA in 30 ms packets, and a callee that takes
/// only PCMU makes Crest transcode. The caller's audio reaches the callee whole and the call's
/// recording is as long as the call (it was 0.6 s for a 9 s call, with 26 of 233 packets
/// forwarded, while the bridge played 30 ms packets at a 20 ms pace).
#[test]
fn thirty_ms_pcma_to_a_pcmu_callee_is_transcoded_and_recorded_whole() {
    let data = scratch_dir("sipp-pcap-30ms-recordings");
    std::fs::write(data.join("k1.hex"), "11".repeat(32)).unwrap();
    let recording = format!(
        "recording:\n  enabled: true\n  cdr: true\n  chunk_secs: 1\n  hot_dir: \"{d}/hot\"\n  \
         index: \"sqlite:{d}/index.db\"\n  current_key: k1\n  keys:\n    - {{id: k1, file: \"{d}/k1.hex\"}}\n",
        d = data.display()
    );
    let crest = Crest::start_with(
        "sipp-pcap-30ms",
        "  routes:\n    - {number: \"1000\", user: alice, public: true}\n",
        &format!("media:\n  port_min: 42100\n  port_max: 42199\n{recording}"),
    );
    let media_port = free_port().to_string();
    // sipp's built-in answer: PCMU only.
    let uas = registered_uas(&crest, "uas_answer.xml", &["-mp", &media_port, "-rtp_echo"]);
    let out = uac(&crest, &scenario("uac_pcap_g711a_dtmf.xml"), "1000", &[]);
    assert_ok("caller", &out, &crest);
    assert_ok("callee", &uas.finish(Duration::from_secs(5)), &crest);
    wait_for("the recording closed", || {
        crest.metric("crest_recordings_completed_total") == 1
    });
    let config = crest.dir.join("crest.yaml");
    let cli = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crest"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The call detail record: the caller's leg in PCMA with every packet counted, the
    // callee's in PCMU.
    let cdr = cli(&["cdr"]);
    let legs: Vec<Vec<&str>> = cdr
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(legs.len(), 2, "{cdr}");
    let (a, b) = (&legs[0], &legs[1]);
    assert_eq!(
        (a[2], a[5], b[2], b[5]),
        ("A", "PCMA", "B", "PCMU"),
        "{cdr}"
    );
    let call_secs: f64 = a[4].trim_end_matches('s').parse().unwrap();
    let a_packets: u64 = a[6].parse().unwrap();
    assert!(
        a_packets >= 220,
        "the caller's 30 ms packets: {a_packets}\n{cdr}"
    );
    // The callee got the caller's audio whole: 20 ms PCMU packets for all of it (they echo).
    let b_packets: u64 = b[6].parse().unwrap();
    assert!(
        b_packets * 20 >= a_packets * 30 * 9 / 10,
        "the callee's leg: {b_packets} packets of 20 ms for {a_packets} of 30 ms\n{cdr}"
    );
    // The recording lasts as long as the call.
    let wav = crest.dir.join("call.wav");
    cli(&["recording", "get", a[0], "--out", wav.to_str().unwrap()]);
    let bytes = std::fs::read(&wav).unwrap();
    let (rate, pcm) = crest_media::wav::read_pcm(&bytes).unwrap();
    let secs = pcm.len() as f64 / f64::from(rate); // both legs, mixed
    assert!(
        secs >= call_secs * 0.9,
        "the recording is {secs:.1} s for a {call_secs:.1} s call"
    );
}
