//! A sipp UAS registers as alice; a sipp UAC dials 1000 (routed to alice); the call goes
//! INVITE/100/180/200/ACK/BYE/200 through Crest's two legs; the caller hangs up.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn call_reaches_registered_user_and_caller_hangs_up() {
    let crest = Crest::start(
        "call-registered",
        "  routes:\n    - {number: \"1000\", user: alice, public: true}\n",
    );
    let uas = registered_uas(&crest, "uas_answer.xml", &[]);
    let target = crest.addr().to_string();
    let out = builtin_call(&target, "1000", 200);
    assert_ok("caller", &out, &crest);
    let uas = uas.finish(Duration::from_secs(5));
    assert_ok("callee", &uas, &crest);
    assert_eq!(crest.metric("crest_calls_answered_total"), 1);
    assert_eq!(crest.metric("crest_calls_active"), 0);
    assert!(
        crest.log().contains("call_id="),
        "calls are logged in a span with their call id"
    );
}
