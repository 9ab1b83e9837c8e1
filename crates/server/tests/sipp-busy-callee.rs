//! A busy callee's 486 reaches the caller as 486, and both legs' ACKs are exchanged.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn busy_callee_486_reaches_the_caller() {
    let uas_port = free_port();
    let crest = Crest::start("busy", &route_to_port("3000", uas_port));
    let callee = uas(&scenario("uas_busy.xml"), uas_port);
    let out = uac(
        &crest,
        &scenario_with_code(&crest, "uac_expect_failure.xml", 486),
        "3000",
        &[],
    );
    assert_ok("caller gets 486", &out, &crest);
    assert_ok(
        "callee gets its ACK",
        &callee.finish(Duration::from_secs(5)),
        &crest,
    );
}
