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
