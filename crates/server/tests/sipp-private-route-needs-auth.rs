//! Toll-fraud guard: an unauthenticated caller to a private route is challenged (401), a wrong
//! password is refused (403), and only right credentials get the call routed.

mod common;

use common::*;

#[test]
fn unauthenticated_caller_to_private_route_is_rejected() {
    let crest = Crest::start(
        "private",
        "  routes:\n    - {number: \"5000\", user: bob}\n",
    );
    let no_creds = scenario_with_code(&crest, "uac_expect_failure.xml", 401);
    assert_ok(
        "no credentials -> 401",
        &uac(&crest, &no_creds, "5000", &[]),
        &crest,
    );
    let wrong = scenario_with_code(&crest, "uac_auth_expect.xml", 403);
    assert_ok(
        "wrong password -> 403",
        &uac(&crest, &wrong, "5000", &["-au", "alice", "-ap", "nope"]),
        &crest,
    );
    // Right credentials pass the guard; bob is not registered, so the call ends with 480.
    let right = scenario_with_code(&crest, "uac_auth_expect.xml", 480);
    let out = uac(&crest, &right, "5000", &["-au", "alice", "-ap", "secret"]);
    assert_ok(
        "right password -> routed (480: callee not registered)",
        &out,
        &crest,
    );
    assert_eq!(crest.metric("crest_calls_started_total"), 0);
}
