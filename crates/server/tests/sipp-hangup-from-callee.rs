//! The callee hangs up an answered call: its BYE reaches the caller through Crest.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn callee_hangs_up_and_the_caller_gets_bye() {
    let uas_port = free_port();
    let crest = Crest::start(
        "hangup-callee",
        &format!(
            "  routes:\n    - {{number: \"4000\", uri: \"sip:127.0.0.1:{uas_port}\", public: true}}\n"
        ),
    );
    let sc = scenario("uas_answer_then_bye.xml");
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
    let uac = scenario("uac_callee_hangs_up.xml");
    let target = crest.addr().to_string();
    let out = sipp(
        &[
            &target,
            "-sf",
            uac.to_str().unwrap(),
            "-s",
            "4000",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    );
    assert_ok("caller receives BYE", &out, &crest);
    assert_ok(
        "callee's BYE answered",
        &uas.finish(Duration::from_secs(5)),
        &crest,
    );
    assert_eq!(crest.metric("crest_calls_ended_total"), 1);
}
