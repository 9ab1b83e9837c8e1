//! The callee hangs up an answered call: its BYE reaches the caller through Crest.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn callee_hangs_up_and_the_caller_gets_bye() {
    let uas_port = free_port();
    let crest = Crest::start("hangup-callee", &route_to_port("4000", uas_port));
    let callee = uas(&scenario("uas_answer_then_bye.xml"), uas_port);
    let out = uac(&crest, &scenario("uac_callee_hangs_up.xml"), "4000", &[]);
    assert_ok("caller receives BYE", &out, &crest);
    assert_ok(
        "callee's BYE answered",
        &callee.finish(Duration::from_secs(5)),
        &crest,
    );
    assert_eq!(crest.metric("crest_calls_ended_total"), 1);
}
