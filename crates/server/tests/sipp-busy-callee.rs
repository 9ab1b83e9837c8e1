//! A busy callee's 486 reaches the caller as 486, and both legs' ACKs are exchanged.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn busy_callee_486_reaches_the_caller() {
    let uas_port = free_port();
    let crest = Crest::start(
        "busy",
        &format!(
            "  routes:\n    - {{number: \"3000\", uri: \"sip:127.0.0.1:{uas_port}\", public: true}}\n"
        ),
    );
    let sc = scenario("uas_busy.xml");
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
    let uac = scenario_with_code(&crest, "uac_expect_failure.xml", 486);
    let target = crest.addr().to_string();
    let out = sipp(
        &[
            &target,
            "-sf",
            uac.to_str().unwrap(),
            "-s",
            "3000",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    );
    assert_ok("caller gets 486", &out, &crest);
    assert_ok(
        "callee gets its ACK",
        &uas.finish(Duration::from_secs(5)),
        &crest,
    );
}
