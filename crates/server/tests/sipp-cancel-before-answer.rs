//! The caller cancels while the callee rings: 200 for the CANCEL and 487 reach the caller,
//! Crest cancels the callee's leg, and the callee's 487 is acknowledged.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn cancel_before_answer_reaches_both_sides() {
    let uas_port = free_port();
    let crest = Crest::start("cancel", &route_to_port("2000", uas_port));
    let callee = uas(&scenario("uas_ring_cancel.xml"), uas_port);
    let out = uac(&crest, &scenario("uac_cancel.xml"), "2000", &[]);
    assert_ok("caller CANCEL", &out, &crest);
    assert_ok(
        "callee sees CANCEL",
        &callee.finish(Duration::from_secs(5)),
        &crest,
    );
    assert_eq!(crest.metric("crest_calls_answered_total"), 0);
    assert_eq!(crest.metric("crest_calls_active"), 0);
}
