//! The agent desktop (`/agent`) in a real browser with its real SIP stack: Debian's headless
//! Chromium loads the page, which loads JsSIP (the bundle embedded in crest) and registers the
//! agent over SIP on a WebSocket (`/sip`) with her SIP password; the ACD logs her in. A caller
//! for her queue rings her page (the incoming call's card), she rejects it (486: the ACD counts
//! the miss), logs out (REGISTER with Expires 0; JsSIP closes its socket two seconds later),
//! logs in again, and reloading the tab (its socket closes) logs her out too. JsSIP reads only
//! the last `WWW-Authenticate` and speaks only MD5: over WebSocket the MD5 challenge comes last.

mod common;
#[path = "common/driver.rs"]
mod driver;
#[path = "common/peer.rs"]
mod peer;

use common::*;
use driver::Driver;

const ACD: &str = ONE_AGENT_ACD;

fn alice(crest: &Crest, token: &str) -> (String, bool) {
    let (status, _, body) = crest.http("GET", "/api/v1/agents", Some(token), None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        v[0]["state"].as_str().unwrap().to_owned(),
        v[0]["registered"].as_bool().unwrap(),
    )
}

/// The agent channel, read with a timeout (a frame that never comes fails the test).
fn channel(
    crest: &Crest,
) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>> {
    let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{}/agent/ws", crest.admin)).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
    }
    ws
}

fn page_state(d: &Driver) -> String {
    d.script("return document.getElementById('state').dataset.state;")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn log_in(d: &Driver, crest: &Crest) {
    d.script(
        "document.getElementById('user').value = 'alice';\
         document.getElementById('password').value = 'secret';\
         document.getElementById('login-form').requestSubmit(); return true;",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while page_state(d) != "registered" {
        if std::time::Instant::now() > deadline {
            let page = d.script("return document.body.innerText;");
            panic!("the page did not register: {page}\n{}", crest.log());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn an_agent_logs_in_with_jssip_in_chromium_sees_a_call_rejects_it_and_logs_out() {
    let dir = scratch_dir("agent-page-files");
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    let crest = Crest::start_with(
        "agent-page",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!("acd:\n  file: \"{}/acd.yaml\"\n", dir.display()),
    );
    let lead = crest.token("lead", "supervisor");
    let (status, head, js) = crest.http_raw("GET", "/agent/jssip.js", None, None);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/javascript; charset=utf-8"),
        "{head}"
    );
    assert!(js.len() > 200_000, "the bundle: {} bytes", js.len());

    let driver = Driver::start();
    driver.go(&format!("http://127.0.0.1:{}/agent", crest.admin));
    assert_eq!(page_state(&driver), "out");
    log_in(&driver, &crest);
    wait_for("alice logged in by her page", || {
        alice(&crest, &lead) == ("available".into(), true)
    });
    // The state channel: her state on the page, a break with its reason, ready again.
    let shown = |d: &Driver| {
        d.script("return document.getElementById('agent-state').textContent;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    wait_for("her state on the page", || shown(&driver) == "available");
    driver.script(
        "document.getElementById('away-reason').value = 'lunch';\
         document.getElementById('away-button').click(); return true;",
    );
    wait_for("away for lunch", || shown(&driver) == "away (lunch)");
    assert_eq!(alice(&crest, &lead), ("away".into(), true));
    driver.script("document.getElementById('ready-button').click(); return true;");
    wait_for("ready again", || shown(&driver) == "available");

    // A caller for refunds rings her page.
    let mut caller = peer::Phone::new(crest.addr());
    let rtp = peer::Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    caller.invite("4001", &peer::sdp(rtp.port(), "0 101", ""));
    wait_for("the incoming call's card", || {
        driver
            .script("return !document.getElementById('call').hidden;")
            .as_bool()
            == Some(true)
    });
    assert_eq!(alice(&crest, &lead).0, "ringing");
    // The offer's context from the ACD: the queue, the caller's number masked.
    wait_for("the offer's queue", || {
        driver
            .script("return document.getElementById('offer-queue').textContent;")
            .as_str()
            == Some("refund")
    });
    assert_eq!(
        driver
            .script("return document.getElementById('caller').textContent;")
            .as_str(),
        Some("ca**er")
    );
    assert_eq!(shown(&driver), "ringing");
    // She rejects it: the ACD counts the miss and she is free again.
    driver.script("document.getElementById('reject-button').click(); return true;");
    wait_for("the miss counted", || {
        crest.metric("crest_acd_missed_total") == 1
    });
    wait_for("alice free again", || {
        alice(&crest, &lead) == ("available".into(), true)
    });
    wait_for("the missed call in the day's log", || {
        driver
            .script("return document.getElementById('log').textContent;")
            .as_str()
            .is_some_and(|l| l.contains("missed: refund call from ca**er"))
    });
    caller.bye();

    // Log out: JsSIP unregisters and the ACD logs her out.
    driver.script("document.getElementById('logout-button').click(); return true;");
    wait_for("alice logged out", || {
        alice(&crest, &lead) == ("offline".into(), false)
    });
    // JsSIP closes its socket two seconds after unregistering.
    wait_for("the socket closed", || {
        crest.log().contains("SIP WebSocket closed")
    });
    // Logged in again, then the tab is reloaded: its socket closes and she is logged out.
    log_in(&driver, &crest);
    wait_for("alice back", || {
        alice(&crest, &lead) == ("available".into(), true)
    });
    driver.script("location.reload(); return true;");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while alice(&crest, &lead) != ("offline".into(), false) {
        assert!(
            std::time::Instant::now() < deadline,
            "alice not logged out with her page: {:?}\n{}",
            alice(&crest, &lead),
            crest.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        crest.log().contains("unregistered: its WebSocket closed"),
        "{}",
        crest.log()
    );
}

/// The state channel refuses a wrong password and a SIP user who is not an agent, and audits
/// the agent's own changes.
#[test]
fn the_state_channel_checks_sip_credentials_and_audits_the_agents_changes() {
    use tungstenite::Message;
    let dir = scratch_dir("agent-desk-files");
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    let crest = Crest::start_with(
        "agent-desk",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!("acd:\n  file: \"{}/acd.yaml\"\n", dir.display()),
    );
    let open = || channel(&crest);
    let next = |ws: &mut tungstenite::WebSocket<_>| -> serde_json::Value {
        loop {
            if let Message::Text(t) = ws.read().expect("a frame") {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    };
    let login = |user: &str, password: &str| {
        serde_json::json!({"type": "login", "user": user, "password": password})
            .to_string()
            .into()
    };
    for (user, password, why) in [
        ("alice", "guess", "wrong user or password"),
        ("mallory", "secret", "wrong user or password"),
        ("bob", "secret", "not an agent of this ACD"),
    ] {
        let mut ws = open();
        ws.send(Message::Text(login(user, password))).unwrap();
        let v = next(&mut ws);
        assert_eq!(
            (v["type"].as_str(), v["detail"].as_str()),
            (Some("error"), Some(why))
        );
    }
    let mut ws = open();
    ws.send(Message::Text(r#"{"type": "ready"}"#.into()))
        .unwrap();
    assert_eq!(next(&mut ws)["type"], "error", "log in first");

    let mut ws = open();
    ws.send(Message::Text(login("alice", "secret"))).unwrap();
    let v = next(&mut ws);
    assert_eq!(
        (
            v["type"].as_str(),
            v["agent"]["name"].as_str(),
            v["wrap_up_secs"].as_u64()
        ),
        (Some("welcome"), Some("alice"), Some(1))
    );
    assert_eq!(
        v["queues"],
        serde_json::json!(["refund"]),
        "what she may transfer to"
    );
    ws.send(Message::Text(r#"{"type": "away", "reason": ""}"#.into()))
        .unwrap();
    assert_eq!(next(&mut ws)["detail"], "a reason of 1 to 200 characters");
    ws.send(Message::Text(r#"{"type": "dance"}"#.into()))
        .unwrap();
    assert_eq!(next(&mut ws)["type"], "error");
    // Her phone is not registered: away still applies (a forced state), audited as hers.
    ws.send(Message::Text(
        r#"{"type": "away", "reason": "training"}"#.into(),
    ))
    .unwrap();
    let v = next(&mut ws);
    assert_eq!(
        (
            v["type"].as_str(),
            v["agent"]["state"].as_str(),
            v["agent"]["reason"].as_str()
        ),
        (Some("state"), Some("away"), Some("training"))
    );
    let admin = crest.token("ops", "admin");
    let (_, _, body) = crest.http("GET", "/api/v1/audit", Some(&admin), None);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        rows.iter().any(|r| r["actor"] == "alice"
            && r["role"] == "agent"
            && r["action"] == "agent.state"
            && r["status"] == 200),
        "{body}"
    );
    // An API token of the agent role logs its agent in; a supervisor's does not.
    let token_login = |token: &str| -> serde_json::Value {
        let mut ws = open();
        ws.send(Message::Text(
            serde_json::json!({"type": "login_token", "token": token})
                .to_string()
                .into(),
        ))
        .unwrap();
        next(&mut ws)
    };
    let v = token_login(&crest.token("alice", "agent"));
    assert_eq!(
        (v["type"].as_str(), v["agent"]["name"].as_str()),
        (Some("welcome"), Some("alice"))
    );
    let v = token_login(&crest.token("lead", "supervisor"));
    assert_eq!(
        v["detail"].as_str(),
        Some("unknown or revoked token, or not an agent's")
    );
    // Logins are rate-limited per address: after five failures in a minute even the right
    // password waits (three failures above, bob's password was right).
    for _ in 0..2 {
        let mut ws = open();
        ws.send(Message::Text(login("alice", "guess"))).unwrap();
        assert_eq!(next(&mut ws)["detail"], "wrong user or password");
    }
    let mut ws = open();
    ws.send(Message::Text(login("alice", "secret"))).unwrap();
    assert_eq!(
        next(&mut ws)["detail"],
        "too many failed logins from this address: try again in a minute"
    );
    // A page of another origin may not open the channel.
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://127.0.0.1:{}/agent/ws",
        crest.admin
    ))
    .unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    match tungstenite::connect(req) {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        other => panic!("another origin got in: {:?}", other.map(|_| ())),
    }
}

/// A desk-phone agent on the same channel: the offer with its caller, then `answered` and
/// `ended` for the day's log as her SIP phone answers and the caller hangs up; a session that
/// outlives `admin.agent_session_secs` is ended.
#[test]
fn a_desk_phone_agent_logs_her_calls_on_the_channel_and_her_session_expires() {
    use tungstenite::Message;
    let dir = scratch_dir("agent-desk-phone-files");
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    let crest = Crest::start_full(
        "agent-desk-phone",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!("acd:\n  file: \"{}/acd.yaml\"\n", dir.display()),
        "  agent_session_secs: 6\n",
    );
    let pcmu = crest_media::codec::CodecKind::Pcmu;
    let mut phone = peer::Phone::new(crest.addr());
    phone.register("alice");
    let mut ws = channel(&crest);
    ws.send(Message::Text(
        r#"{"type": "login", "user": "alice", "password": "secret"}"#.into(),
    ))
    .unwrap();
    let next_of = |ws: &mut tungstenite::WebSocket<_>, kind: &str| -> serde_json::Value {
        loop {
            if let Message::Text(t) = ws.read().expect("a frame") {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
        }
    };
    assert_eq!(next_of(&mut ws, "welcome")["agent"]["state"], "available");
    assert_eq!(crest.metric("crest_admin_agent_channels"), 1);
    let mut caller = peer::Phone::new(crest.addr());
    let a = peer::Rtp::new(pcmu, 0);
    caller.invite("4001", &peer::sdp(a.port(), "0 101", ""));
    let offer = next_of(&mut ws, "offer");
    assert_eq!(
        (&offer["queue"], &offer["caller"]),
        (&serde_json::json!("refund"), &serde_json::json!("ca**er"))
    );
    let (invite, from) = phone.expect_request("INVITE", std::time::Duration::from_secs(5));
    let b = peer::Rtp::new(pcmu, 0);
    let ok = phone.respond(&invite, 200, Some(&peer::sdp(b.port(), "0", "")));
    phone.sip.send_to(ok.as_bytes(), from).unwrap();
    phone.expect_request("ACK", std::time::Duration::from_secs(5));
    let answered = next_of(&mut ws, "call");
    assert_eq!(
        (&answered["event"], &answered["caller"]),
        (&serde_json::json!("answered"), &serde_json::json!("ca**er"))
    );
    std::thread::sleep(std::time::Duration::from_millis(1200));
    caller.bye();
    phone.answer("BYE", None);
    let ended = next_of(&mut ws, "call");
    assert_eq!(ended["event"], "ended");
    assert!(ended["talked_secs"].as_f64().unwrap() >= 1.0, "{ended}");
    // Six seconds after the login the session ends.
    let v = next_of(&mut ws, "error");
    assert_eq!(v["detail"], "the session expired: log in again");
    // The channel is gone with its session, and the call left nothing.
    wait_for("no channel left", || {
        crest.metric("crest_admin_agent_channels") == 0
    });
    assert_eq!(crest.metric("crest_calls_active"), 0);
}

/// The call's audio end to end between a G.711 caller and the agent's page: Chromium's fake
/// microphone plays 2 kHz, the caller plays 1 kHz in PCMU. The page answers (its offer in the
/// 200 of Crest's SDP-less INVITE, Crest's WebRTC answer in the ACK: ICE-lite, DTLS-SRTP,
/// Opus), the caller hears 2 kHz and the page hears 1 kHz (its AnalyserNode, reported over
/// the state channel). A key from the page's keypad reaches the caller as RFC 4733; hold and
/// resume keep the same ICE/DTLS session; the page hangs up: BYE to the caller, wrap-up, ready,
/// and the shared WebRTC socket routes nothing more. On the way she transfers the caller to
/// bob (a desk phone) from her page, and bob sends them back to her from his state channel.
#[test]
fn a_browser_agent_answers_and_the_caller_and_the_page_hear_each_other() {
    // In a network namespace of its own with loopback only (`unshare -n`): this test runs
    // again in it, crest, Chromium and the caller with it, and no other interface can take
    // part in ICE.
    const INSIDE: &str = "CREST_TEST_IN_NETNS";
    if std::env::var_os(INSIDE).is_none() {
        let me = std::env::current_exe().unwrap();
        let status = std::process::Command::new("unshare")
            .args([
                "-n",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(me)
            .args([
                "--exact",
                "a_browser_agent_answers_and_the_caller_and_the_page_hear_each_other",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(INSIDE, "1")
            .status()
            .expect("unshare (util-linux) and ip (iproute2); the tests run as root");
        assert!(status.success(), "the test in its network namespace failed");
        return;
    }
    let ifaces = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ifaces.stdout).lines().count(),
        1,
        "loopback only"
    );
    let dir = scratch_dir("agent-audio-files");
    let acd = ACD.replace(
        "rating: 0.9}\n",
        "rating: 0.9}\n  - {name: bob, pool: office, skills: {refund: 0.5}, rating: 0.5}\n",
    );
    std::fs::write(dir.join("acd.yaml"), acd).unwrap();
    let tone: Vec<i16> = (0..48_000 * 5)
        .map(|i| (6000.0 * (std::f64::consts::TAU * 2000.0 * f64::from(i) / 48_000.0).sin()) as i16)
        .collect();
    let mic = dir.join("mic-2khz.wav");
    std::fs::write(&mic, crest_media::wav::write(48_000, &tone)).unwrap();
    let crest = Crest::start_with(
        "agent-audio",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!("acd:\n  file: \"{}/acd.yaml\"\n", dir.display()),
    );
    let lead = crest.token("lead", "supervisor");
    let fake_mic = format!("--use-file-for-fake-audio-capture={}", mic.display());
    let driver = Driver::start_with(&[
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        &fake_mic,
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]);
    driver.go(&format!(
        "http://127.0.0.1:{}/agent?test=audio",
        crest.admin
    ));
    log_in(&driver, &crest);
    wait_for("alice available", || {
        alice(&crest, &lead) == ("available".into(), true)
    });

    let mut caller = peer::Phone::new(crest.addr());
    let mut rtp = peer::Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    let te = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let ok = caller.invite("4001", &peer::sdp(rtp.port(), "0 101", te));
    let (port, _) = peer::sdp_audio(peer::body(&ok));
    rtp.remote = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    wait_for("the incoming call's card", || {
        driver
            .script("return !document.getElementById('call').hidden;")
            .as_bool()
            == Some(true)
    });
    driver.script("document.getElementById('answer-button').click(); return true;");
    let call_state = |d: &Driver| {
        d.script("return document.getElementById('call-state').dataset.state;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while call_state(&driver) != "talking" {
        let page = driver.script("return document.body.innerText;");
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not answer: {page}\n{}",
            crest.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    wait_for("alice on the call", || alice(&crest, &lead).0 == "on_call");
    wait_for("the browser's media up", || {
        crest.metric("crest_media_browser_connects_total") == 1
    });
    assert_eq!(crest.metric("crest_media_browser_legs"), 1);

    // The caller plays 1 kHz and hears the page's 2 kHz.
    let heard_2k = |pcm: &[i16]| {
        let tail: Vec<f64> = pcm[pcm.len() / 2..].iter().map(|&s| f64::from(s)).collect();
        let p2 = crest_media::dtmf::goertzel_power(&tail, 2000.0, 8000);
        let p1 = crest_media::dtmf::goertzel_power(&tail, 1000.0, 8000);
        let ms = tail.iter().map(|x| x * x).sum::<f64>() / tail.len().max(1) as f64;
        (ms > 1.0e5 && p2 > 30.0 * p1, ms, p2 / p1.max(1.0))
    };
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(3), Some(1000.0));
    let (ok2k, ms, ratio) = heard_2k(&pcm);
    assert!(
        ok2k,
        "the caller hears the page's 2 kHz: {} samples, mean square {ms:.0}, 2k/1k {ratio:.1}\n{}",
        pcm.len(),
        crest.log()
    );
    // The page hears the caller's 1 kHz (its audio check over the state channel).
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(2), Some(1000.0));
    assert!(heard_2k(&pcm).0);
    let checks = crest.audio_checks();
    assert!(
        checks
            .iter()
            .any(|r| (r["peak_hz"] - 1000.0).abs() < 30.0 && r["db_1k"] > r["db_2k"] + 20.0),
        "the page reports 1 kHz: {checks:?}"
    );

    // A key from the page's keypad reaches the caller as RFC 4733 (payload type 101).
    driver.script(
        "document.getElementById('keypad-button').click();\
         document.querySelector('#keypad button[data-key=\"5\"]').click(); return true;",
    );
    let (_, raw) = rtp.run(std::time::Duration::from_secs(1), Some(1000.0));
    let events: Vec<&Vec<u8>> = raw
        .iter()
        .filter(|(pt, _)| *pt == 101)
        .map(|(_, p)| p)
        .collect();
    assert!(
        events.first().is_some_and(|p| p[0] == 5),
        "key 5 as telephone-event: {} events\n{}",
        events.len(),
        crest.log()
    );
    assert!(
        crest.log().contains("key=5 source=Rfc4733"),
        "the page sent it as RFC 4733 in its SRTP"
    );

    // Mute: the caller hears her no more; unmute: again.
    driver.script("document.getElementById('mute-button').click(); return true;");
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(2), Some(1000.0));
    let (heard, ms, _) = heard_2k(&pcm);
    assert!(
        !heard,
        "muted, yet the caller hears 2 kHz (mean square {ms:.0})"
    );
    driver.script("document.getElementById('mute-button').click(); return true;");
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(2), Some(1000.0));
    assert!(heard_2k(&pcm).0, "unmuted: the caller hears her again");

    // Hold, then resume: re-INVITEs Crest answers on the same ICE/DTLS session.
    driver.script("document.getElementById('hold-button').click(); return true;");
    wait_for("on hold", || call_state(&driver) == "on hold");
    // Held: the caller hears Crest's hold music (the chime's notes), not her.
    wait_for("the agent's hold", || {
        crest.log().contains("the agent's hold leg=\"B\" held=true")
    });
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(2), Some(1000.0));
    let tail: Vec<f64> = pcm.iter().map(|&s| f64::from(s)).collect();
    let chime: f64 = [523.25, 659.25, 783.99]
        .iter()
        .map(|f| crest_media::dtmf::goertzel_power(&tail, *f, 8000))
        .sum();
    let her = crest_media::dtmf::goertzel_power(&tail, 2000.0, 8000);
    assert!(
        chime > 10.0 * her && !heard_2k(&pcm).0,
        "on hold the caller hears the music: chime {chime:.0}, 2 kHz {her:.0}"
    );
    driver.script("document.getElementById('hold-button').click(); return true;");
    wait_for("talking again", || call_state(&driver) == "talking");
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(2), Some(1000.0));
    assert!(heard_2k(&pcm).0, "audio again after resume");
    assert_eq!(
        crest.metric("crest_media_browser_connects_total"),
        1,
        "the same session: no second handshake"
    );

    // Alice transfers the caller to bob from her page: her leg goes (BYE to the page), bob's
    // desk phone rings and answers, and the caller hears him (600 Hz).
    let mut bob = peer::Phone::new(crest.addr());
    bob.register("bob");
    let mut bob_rtp = peer::Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    driver.script(
        "document.getElementById('transfer-to').value = 'agent:bob';\
         document.getElementById('transfer-button').click(); return true;",
    );
    let (invite, from) = bob.expect_request("INVITE", std::time::Duration::from_secs(10));
    let (crest_port, _) = peer::sdp_audio(peer::body(&invite));
    bob_rtp.remote = Some(std::net::SocketAddr::from(([127, 0, 0, 1], crest_port)));
    let answer = bob.respond(&invite, 200, Some(&peer::sdp(bob_rtp.port(), "0", te)));
    bob.sip.send_to(answer.as_bytes(), from).unwrap();
    wait_for("the page's call ended", || {
        driver
            .script("return document.getElementById('in-call').hidden;")
            .as_bool()
            == Some(true)
    });
    let heard_bob = std::thread::scope(|s| {
        s.spawn(|| bob_rtp.run(std::time::Duration::from_secs(3), Some(600.0)));
        rtp.run(std::time::Duration::from_secs(3), Some(1000.0)).0
    });
    let tail: Vec<f64> = heard_bob[heard_bob.len() / 2..]
        .iter()
        .map(|&s| f64::from(s))
        .collect();
    assert_eq!(peer::which_tone(&tail), Some(600), "the caller hears bob");
    wait_for("the browser leg let go", || {
        crest.metric("crest_media_browser_legs") == 0
    });
    wait_for("alice ready after her wrap-up", || {
        alice(&crest, &lead) == ("available".into(), true)
    });
    assert!(
        crest.log().contains("transfer asked"),
        "the ACD carried it out"
    );
    // Bob sends the caller back to alice from his state channel; her page rings and she
    // answers on a new WebRTC session.
    let mut ws = channel(&crest);
    let send = |ws: &mut tungstenite::WebSocket<_>, v: serde_json::Value| {
        ws.send(tungstenite::Message::Text(v.to_string().into()))
            .unwrap();
    };
    send(
        &mut ws,
        serde_json::json!({"type": "login", "user": "bob", "password": "secret"}),
    );
    send(
        &mut ws,
        serde_json::json!({"type": "transfer", "agent": "alice"}),
    );
    wait_for("the caller offered to alice again", || {
        driver
            .script("return !document.getElementById('call').hidden;")
            .as_bool()
            == Some(true)
    });
    bob.answer("BYE", None);
    driver.script("document.getElementById('answer-button').click(); return true;");
    wait_for("alice talking again", || call_state(&driver) == "talking");
    let (pcm, _) = rtp.run(std::time::Duration::from_secs(2), Some(1000.0));
    assert!(heard_2k(&pcm).0, "the caller hears alice's page again");
    assert_eq!(crest.metric("crest_media_browser_connects_total"), 2);
    drop(ws);

    // The page hangs up: BYE to the caller (no survey on this queue), wrap-up, then ready.
    driver.script("document.getElementById('hangup-button').click(); return true;");
    let (bye, from) = caller.expect_request("BYE", std::time::Duration::from_secs(10));
    let ok = caller.respond(&bye, 200, None);
    caller.sip.send_to(ok.as_bytes(), from).unwrap();
    wait_for("alice ready after her wrap-up", || {
        alice(&crest, &lead) == ("available".into(), true)
    });
    crest.assert_browser_legs_gone();
    assert_eq!(crest.metric("crest_media_browser_failures_total"), 0);
}
