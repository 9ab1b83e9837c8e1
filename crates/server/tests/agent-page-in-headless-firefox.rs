//! The agent desktop in Firefox (Debian's firefox-esr, headless, driven over WebDriver BiDi):
//! the same page and JsSIP bundle log in over the HTTPS desk listener (`admin.desk_listen`,
//! SIP over secure WebSocket, the self-signed certificate accepted by the profile), answer a
//! G.711 caller with Firefox's WebRTC (its own offer, Crest's ICE-lite DTLS-SRTP answer, Opus),
//! and both hear each other: the caller hears Firefox's fake microphone (its 1 kHz test tone)
//! and the page hears the caller's 600 Hz. The page hangs up: BYE to the caller.

mod common;
#[path = "common/firefox.rs"]
mod firefox;
#[path = "common/peer.rs"]
mod peer;

use common::*;
use firefox::Firefox;

const ACD: &str = ONE_AGENT_ACD;

#[test]
fn a_firefox_agent_answers_over_https_and_hears_the_caller_who_hears_her() {
    let dir = scratch_dir("agent-firefox-files");
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    let desk = free_port();
    // Firefox gathers no loopback candidate (whatever media.peerconnection.ice.loopback and
    // force_interface say), so Crest's media is on the machine's own address here.
    let ip = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .expect("iproute2");
    let ip = String::from_utf8_lossy(&ip.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .expect("an IPv4 address besides loopback")
        .to_owned();
    let crest = Crest::start_full(
        "agent-firefox",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!(
            "acd:\n  file: \"{}/acd.yaml\"\nmedia:\n  advertise: \"{ip}\"\n  bind: \"{ip}\"\n",
            dir.display()
        ),
        &format!("  desk_listen: \"127.0.0.1:{desk}\"\n"),
    );
    assert!(
        crest
            .log()
            .contains(&format!("https://127.0.0.1:{desk}/agent")),
        "{}",
        crest.log()
    );
    let mut ff = Firefox::start("agent-firefox");
    ff.go(&format!(
        "https://127.0.0.1:{desk}/agent?test=audio&autoanswer=1"
    ));
    assert_eq!(
        ff.eval("location.protocol + isSecureContext"),
        serde_json::json!("https:true")
    );
    ff.eval(
        "document.getElementById('user').value = 'alice';\
         document.getElementById('password').value = 'secret';\
         document.getElementById('login-form').requestSubmit(); true",
    );
    let state = |ff: &mut Firefox| {
        ff.eval("document.getElementById('agent-state').textContent")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while state(&mut ff) != "available" {
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not log in: {}\n{}",
            ff.eval("document.body.innerText"),
            crest.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        crest.log().contains("transport=WSS"),
        "SIP over secure WebSocket"
    );

    let mut caller = peer::Phone::new(crest.addr());
    let mut rtp = peer::Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    let te = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let ok = caller.invite("4001", &peer::sdp(rtp.port(), "0 101", te));
    let (port, _) = peer::sdp_audio(peer::body(&ok));
    rtp.remote = Some(std::net::SocketAddr::new(ip.parse().unwrap(), port));
    let call_state = |ff: &mut Firefox| {
        ff.eval("document.getElementById('call-state').dataset.state")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while call_state(&mut ff) != "talking" {
        assert!(
            std::time::Instant::now() < deadline,
            "Firefox did not answer: {}\n{}",
            ff.eval("document.body.innerText"),
            crest.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crest.metric("crest_media_browser_connects_total") != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "Firefox's media not up: {} {}\n{}",
            ff.eval("talking && talking.connection.iceConnectionState"),
            ff.eval("talking && talking.connection.localDescription.sdp"),
            ff.eval("talking && talking.connection.remoteDescription.sdp"),
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The caller plays 600 Hz and hears Firefox's fake microphone (1 kHz).
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(4), Some(600.0));
    assert!(
        peer::has_1khz(&pcm, 8000),
        "the caller hears Firefox's 1 kHz ({} samples)\n{}",
        pcm.len(),
        crest.log()
    );
    let checks = crest.audio_checks();
    assert!(
        checks.iter().any(|r| (r["peak_hz"] - 600.0).abs() < 30.0),
        "the page hears the caller's 600 Hz: {checks:?}"
    );
    // The page hangs up: BYE to the caller; nothing of the browser leg stays.
    ff.eval("document.getElementById('hangup-button').click(); true");
    let (bye, from) = caller.expect_request("BYE", std::time::Duration::from_secs(10));
    let ok = caller.respond(&bye, 200, None);
    caller.sip.send_to(ok.as_bytes(), from).unwrap();
    crest.assert_browser_legs_gone();
}
