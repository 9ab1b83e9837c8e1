//! SIGTERM: new calls get 503 with Retry-After at once, the call in progress goes on to its
//! normal end, then crest exits 0.

mod common;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_refuses_new_calls_and_lets_the_current_one_finish() {
    let uas_port = free_port();
    let mut crest = Crest::start_with(
        "drain",
        &route_to_port("6000", uas_port),
        "shutdown:\n  drain_secs: 20\n",
    );
    let callee = Background::sipp(
        &[
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(30),
    );
    let target = crest.addr().to_string();
    // A 3-second call.
    let long_call = std::thread::spawn(move || builtin_call(&target, "6000", 3000));
    let deadline = Instant::now() + Duration::from_secs(10);
    while crest.metric("crest_calls_answered_total") == 0 {
        assert!(
            Instant::now() < deadline,
            "the first call was not answered: {}",
            crest.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = crest.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(200));
    let refused = scenario_with_code(&crest, "uac_expect_failure.xml", 503);
    assert_ok(
        "new call while draining gets 503",
        &uac(&crest, &refused, "6000", &[]),
        &crest,
    );
    assert_ok(
        "the call in progress completes",
        &long_call.join().unwrap(),
        &crest,
    );
    let _ = callee.finish(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = crest.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "crest did not exit after draining: {}",
            crest.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(crest.log().contains("drained; exiting"));
}
