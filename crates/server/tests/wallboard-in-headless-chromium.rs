//! The supervisor's wallboard (`/wall`) in a real browser: Debian's headless Chromium loads the
//! page with a supervisor's token in the URL's fragment; the page follows `/api/v1/live`
//! (server-sent events) and the numbers read from its DOM are those `/api/v1` gives; its layout
//! is checked in the browser (two columns, nothing wider than a 1280-pixel wall) and a
//! screenshot is kept. Without a token the stream is refused; an agent's token may not read it.

mod common;
#[path = "common/driver.rs"]
mod driver;
#[path = "common/peer.rs"]
mod peer;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use driver::Driver;

const ACD: &str = "ring_secs: 10\nwrap_up_secs: 1\nmax_misses: 2\n\
pools:\n  - {name: office, neighbours: []}\n\
queues:\n  - {name: refund, skill: refund, pool: office}\n  - {name: vip, skill: vip, pool: office}\n\
agents:\n  - {name: alice, pool: office, skills: {refund: 0.9}, rating: 0.9}\n  - {name: bob, pool: office, skills: {vip: 0.5}, rating: 0.5}\n";

/// The first server-sent event of `/api/v1/live`, as JSON.
fn first_event(admin: u16, token: &str) -> serde_json::Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", admin)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/v1/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let n = s.read(&mut buf).unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(i) = text.find("data: ")
            && let Some(end) = text[i..].find('\n')
        {
            assert!(text.contains("text/event-stream"), "{text}");
            return serde_json::from_str(&text[i + 6..i + end]).unwrap();
        }
    }
    panic!("no event: {}", String::from_utf8_lossy(&got));
}

/// The text of the first element after `marker` with `data-k="key"`.
fn dom_value(dom: &str, marker: &str, key: &str) -> String {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page: {dom}"));
    let rest = &dom[at..];
    let k = rest.find(&format!("data-k=\"{key}\"")).unwrap();
    let rest = &rest[k..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].to_owned()
}

#[test]
fn the_wallboard_shows_what_the_api_says_in_headless_chromium() {
    let dir = scratch_dir("wall-files");
    std::fs::write(dir.join("acd.yaml"), ACD).unwrap();
    let crest = Crest::start_with(
        "wall",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n    - {number: \"4002\", queue: vip, public: true}\n",
        &format!("acd:\n  file: \"{}/acd.yaml\"\n", dir.display()),
    );
    let lead = crest.token("wall-tv", "supervisor");
    let mut alice = peer::Phone::new(crest.addr());
    alice.register("alice");
    assert_eq!(crest.http("GET", "/api/v1/live", None, None).0, 401);
    let desk = crest.token("desk", "agent");
    assert_eq!(crest.http("GET", "/api/v1/live", Some(&desk), None).0, 403);
    // Bob is on a break, set by the supervisor.
    let (status, _, body) = crest.http(
        "POST",
        "/api/v1/agents/bob/state",
        Some(&lead),
        Some(r#"{"state": "away", "reason": "lunch"}"#),
    );
    assert_eq!(status, 200, "{body}");
    // One caller, answered by alice at once and hung up: today's and the last 15 minutes'
    // service level are 100 %.
    let pcmu = crest_media::codec::CodecKind::Pcmu;
    let mut caller = peer::Phone::new(crest.addr());
    let (a, b) = (peer::Rtp::new(pcmu, 0), peer::Rtp::new(pcmu, 0));
    caller.invite("4001", &peer::sdp(a.port(), "0 101", ""));
    let (invite, from) = alice.expect_request("INVITE", Duration::from_secs(5));
    let ok = alice.respond(&invite, 200, Some(&peer::sdp(b.port(), "0 101", "")));
    alice.sip.send_to(ok.as_bytes(), from).unwrap();
    alice.expect_request("ACK", Duration::from_secs(5));
    caller.bye();
    alice.answer("BYE", None);
    wait_for("alice free after her wrap-up", || {
        let (_, _, body) = crest.http("GET", "/api/v1/agents", Some(&lead), None);
        body.contains(r#""name":"alice","pool":"office","state":"available""#)
    });
    // A VIP caller waits: bob, the only VIP agent, is on his break.
    let mut vip = peer::Phone::new(crest.addr());
    let v = peer::Rtp::new(pcmu, 0);
    vip.invite("4002", &peer::sdp(v.port(), "0 101", ""));
    let ev = first_event(crest.admin, &lead);
    assert_eq!(
        (
            &ev["waiting"][0]["number"],
            &ev["waiting"][0]["queue"],
            &ev["waiting"][0]["state"]
        ),
        (
            &serde_json::json!("ca**er"),
            &serde_json::json!("vip"),
            &serde_json::json!("waiting")
        ),
        "the caller's number masked: {ev}"
    );
    assert_eq!(ev["agents"][0]["name"], "alice");
    assert_eq!(ev["agents"][0]["state"], "available");

    let url = format!("http://127.0.0.1:{}/wall#token={lead}", crest.admin);
    let driver = Driver::start();
    driver.go(&url);
    let mut dom = String::new();
    wait_for("the wallboard filled from the live stream", || {
        dom = driver.source();
        dom.contains("data-agent=\"bob\"")
    });
    let (_, _, body) = crest.http("GET", "/api/v1/queues", Some(&lead), None);
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    for q in api["queues"].as_array().unwrap() {
        let marker = format!("data-queue=\"{}\"", q["name"].as_str().unwrap());
        assert_eq!(
            dom_value(&dom, &marker, "waiting"),
            q["waiting"].to_string()
        );
        assert_eq!(
            dom_value(&dom, &marker, "answered"),
            q["answered"].to_string()
        );
    }
    let refund = &api["queues"][0];
    assert_eq!(
        (&refund["answered"], &refund["last_15m"]["service_level"]),
        (&serde_json::json!(1), &serde_json::json!(1.0)),
        "{api}"
    );
    for key in ["service_level", "service_level_15m"] {
        assert_eq!(dom_value(&dom, "data-queue=\"refund\"", key), "100 %");
    }
    assert_eq!(
        dom_value(&dom, "data-agent=\"alice\"", "state"),
        "available"
    );
    assert_eq!(
        dom_value(&dom, "data-agent=\"bob\"", "state"),
        "away (lunch)"
    );
    assert!(dom.contains("surge: normal"), "{dom}");
    assert!(
        dom.contains(">ca**er<"),
        "the waiting caller, masked: {dom}"
    );
    assert_eq!(dom_value(&dom, "data-waiting=\"0\"", "state"), "waiting");
    assert_ne!(dom_value(&dom, "data-queue=\"vip\"", "longest_wait"), "–");

    // A screenshot at the wall's size: a PNG of 1280×800 that is not blank.
    let bytes = driver.screenshot();
    std::fs::write(dir.join("wall.png"), &bytes).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!(w, 1280, "the window's width");
    assert!(h >= 600, "{h} px high");
    // The layout: queues left of agents, side by side, nothing wider than the screen.
    let l = driver.script(
        "const [q, a] = document.querySelectorAll('main > section');\
         const r = (e) => e.getBoundingClientRect();\
         return [r(q).left, r(q).right, r(a).left, r(a).right, Math.abs(r(q).top - r(a).top),\
                 document.documentElement.scrollWidth, window.innerWidth];",
    );
    let n = |i: usize| l[i].as_f64().unwrap();
    assert!(n(1) <= n(2), "queues then agents: {l}");
    assert!(n(4) < 1.0, "side by side: {l}");
    assert!(n(3) <= n(6) && n(5) <= n(6), "no horizontal overflow: {l}");
    assert!(bytes.len() > 10_000, "{} bytes: a blank page?", bytes.len());
    // The page's stream is the only one open (the test's own ended with its socket), and it
    // ends when the browser goes.
    wait_for("one live stream", || {
        crest.metric("crest_admin_live_streams") == 1
    });
    drop(driver);
    wait_for("no live stream", || {
        crest.metric("crest_admin_live_streams") == 0
    });
}
