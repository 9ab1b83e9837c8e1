//! Callers of the IVR who hang up before their flow ends — during the greeting, while an
//! `ask` listens, while a lookup waits for its backend, while queued — leave nothing behind in
//! a running `crest`: no thread, no IVR session, no recogniser, no lookup, no queue entry.
//! (Before the call controller each such caller kept a `crest-ivr-N` thread and its
//! recognisers for good: about 14 MB a caller.)

mod common;
#[path = "common/peer.rs"]
mod peer;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use crest_media::codec::CodecKind;
use peer::*;

const PCMU_TE: &str = "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// The process's threads, and how many are named `crest-ivr…` (one per caller before).
fn threads(pid: u32) -> (usize, usize) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let names: Vec<String> = tasks
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default())
        .collect();
    let ivr = names.iter().filter(|n| n.starts_with("crest-ivr")).count();
    (names.len(), ivr)
}

/// A backend that takes connections and never answers: lookups wait until their timeout.
fn silent_backend() -> (u16, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    (l.local_addr().unwrap().port(), l)
}

fn start(backend: u16) -> Crest {
    let dir = scratch_dir("ivr-leave-nothing-files");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows");
    let text = std::fs::read_to_string(root.join("main.yaml"))
        .unwrap()
        .replace("open: 8, close: 22", "open: 0, close: 24")
        .replace("127.0.0.1:8099", &format!("127.0.0.1:{backend}"));
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("main.yaml"), text).unwrap();
    std::fs::copy(root.join("csat.yaml"), flows.join("csat.yaml")).unwrap();
    // One queue, nobody staffed: callers who reach it hold until they hang up.
    let acd = dir.join("acd.yaml");
    std::fs::write(
        &acd,
        "pools:\n  - {name: office, neighbours: []}\nqueues:\n  - {name: order-status, skill: order_status, pool: office}\n  - {name: refund, skill: refund, pool: office}\n  - {name: vip, skill: vip, pool: office}\n\
         agents:\n  - {name: alice, pool: office, skills: {order_status: 0.9, refund: 0.5, vip: 0.5}}\n",
    )
    .unwrap();
    Crest::start_with(
        "ivr-leave-nothing",
        "  routes:\n    - {number: \"4000\", ivr: main, public: true}\n",
        &format!(
            "media:\n  port_min: 43000\n  port_max: 43999\nivr:\n  enabled: true\n  flows_dir: \"{}\"\n  reload_secs: 60\n\
             acd:\n  file: \"{}\"\n  admission:\n    max_wait_secs: 100000\nrecording:\n  enabled: false\n  cdr: true\n  index: \"sqlite:{}/index.db\"\n",
            flows.display(),
            acd.display(),
            dir.display()
        ),
    )
}

/// A caller who presses `keys` (after the greeting), waits `then`, and hangs up.
fn keyed_caller(crest: &Crest, keys: &str, then: Duration) {
    let mut phone = Phone::new(crest.addr());
    let mut rtp = Rtp::new(CodecKind::Pcmu, 0);
    let ok = phone.invite("4000", &sdp(rtp.port(), "0 101", PCMU_TE));
    let (port, _) = sdp_audio(body(&ok));
    rtp.remote = Some(([127, 0, 0, 1], port).into());
    rtp.speak_until(&[], Duration::from_millis(1500), |_| false);
    for k in keys.chars() {
        rtp.press(101, k);
    }
    rtp.speak_until(&[], then, |_| false);
    phone.bye();
}

#[test]
fn ivr_callers_who_hang_up_at_every_point_leave_no_thread_session_or_recogniser() {
    let (backend, _listener) = silent_backend();
    let crest = start(backend);
    let pid = crest.child.id();
    let (idle, _) = threads(pid);

    // Silent callers (sipp, as in the report) who hang up in the greeting, while the menu
    // listens, and after its first no-input retry.
    let target = crest.addr().to_string();
    let silent: Vec<Background> = [("300", "4"), ("3500", "4"), ("9000", "4")]
        .into_iter()
        .map(|(hold, n)| {
            let port = free_port().to_string();
            Background::sipp(
                &[
                    &target,
                    "-sn",
                    "uac",
                    "-s",
                    "4000",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-r",
                    "4",
                    "-m",
                    n,
                    "-d",
                    hold,
                ],
                Duration::from_secs(40),
            )
        })
        .collect();
    // Callers who key: into the order-number ask, into a lookup that never answers, into the
    // queue (nobody staffed), and one who hangs up while the agent hand-off prompt plays.
    let keyed = [
        ("1", Duration::from_millis(800)),
        ("11234#", Duration::from_millis(600)),
        ("0", Duration::from_millis(1500)),
        ("2", Duration::from_millis(2500)),
    ];
    std::thread::scope(|s| {
        for (keys, then) in keyed {
            let crest = &crest;
            s.spawn(move || keyed_caller(crest, keys, then));
        }
        // While they are all up, the IVR holds sessions and no thread of its own per caller.
        std::thread::sleep(Duration::from_millis(1200));
        let (_, ivr_threads) = threads(pid);
        assert_eq!(ivr_threads, 0, "no thread per IVR caller");
        assert!(crest.metric("crest_ivr_sessions_active") >= 4);
    });
    for b in silent {
        let out = b.finish(Duration::from_secs(40));
        assert_ok("silent IVR callers", &out, &crest);
    }
    assert!(crest.metric("crest_ivr_sessions_total") >= 16);
    assert!(
        crest.metric("crest_ivr_listens_total") >= 12,
        "the menu listened"
    );

    // Everything is given back at once: no call, session, recogniser, lookup or waiting caller.
    wait_for("every call, session, recogniser and lookup gone", || {
        crest.metric("crest_calls_active") == 0
            && crest.metric("crest_ivr_sessions_active") == 0
            && crest.metric("crest_ivr_recognizers_active") == 0
            && crest.metric("crest_ivr_lookups_active") == 0
            && crest.metric("crest_ivr_renders_active") == 0
    });
    let metrics = crest.http_get("/metrics").unwrap();
    for q in ["order-status", "refund", "vip"] {
        assert!(
            metrics.contains(&format!("crest_acd_waiting{{queue=\"{q}\"}} 0")),
            "queue {q} emptied:\n{metrics}"
        );
    }
    // Threads: back to where they were before the first call (the runtime's blocking
    // threads, which rendered prompts, retire after 10 s idle).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now_threads = threads(pid).0;
    while now_threads > idle && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        now_threads = threads(pid).0;
    }
    assert!(
        now_threads <= idle,
        "threads: {idle} before the calls, {now_threads} after"
    );
    let log = crest.log();
    assert!(
        log.contains("outcome=\"abandoned\""),
        "IVR sessions end as abandoned"
    );
    assert!(log.contains("call journey"), "each call leaves its record");
}
