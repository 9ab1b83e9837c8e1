//! The caller cancels while the callee rings: 200 for the CANCEL and 487 reach the caller,
//! Crest cancels the callee's leg, and the callee's 487 is acknowledged.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn cancel_before_answer_reaches_both_sides() {
    let uas_port = free_port();
    let crest = Crest::start(
        "cancel",
        &format!(
            "  routes:\n    - {{number: \"2000\", uri: \"sip:127.0.0.1:{uas_port}\", public: true}}\n"
        ),
    );
    let sc = scenario("uas_ring_cancel.xml");
    let uas = Background::sipp(
        &[
            "-sf",
            sc.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(20),
    );
    let uac = scenario("uac_cancel.xml");
    let target = crest.addr().to_string();
    let out = sipp(
        &[
            &target,
            "-sf",
            uac.to_str().unwrap(),
            "-s",
            "2000",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    );
    assert_ok("caller CANCEL", &out, &crest);
    assert_ok(
        "callee sees CANCEL",
        &uas.finish(Duration::from_secs(5)),
        &crest,
    );
    assert_eq!(crest.metric("crest_calls_answered_total"), 0);
    assert_eq!(crest.metric("crest_calls_active"), 0);
}
