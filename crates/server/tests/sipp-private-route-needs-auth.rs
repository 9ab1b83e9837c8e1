//! Toll-fraud guard: an unauthenticated caller to a private route is challenged (401), a wrong
//! password is refused (403), and only right credentials get the call routed.

mod common;
use std::time::Duration;

use common::*;

#[test]
fn unauthenticated_caller_to_private_route_is_rejected() {
    let crest = Crest::start(
        "private",
        "  routes:\n    - {number: \"5000\", user: bob}\n",
    );
    let target = crest.addr().to_string();
    let no_creds = scenario_with_code(&crest, "uac_expect_failure.xml", 401);
    let out = sipp(
        &[
            &target,
            "-sf",
            no_creds.to_str().unwrap(),
            "-s",
            "5000",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    );
    assert_ok("no credentials -> 401", &out, &crest);
    let wrong = scenario_with_code(&crest, "uac_auth_expect.xml", 403);
    let out = sipp(
        &[
            &target,
            "-sf",
            wrong.to_str().unwrap(),
            "-s",
            "5000",
            "-au",
            "alice",
            "-ap",
            "nope",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    );
    assert_ok("wrong password -> 403", &out, &crest);
    // Right credentials pass the guard; bob is not registered, so the call ends with 480.
    let right = scenario_with_code(&crest, "uac_auth_expect.xml", 480);
    let out = sipp(
        &[
            &target,
            "-sf",
            right.to_str().unwrap(),
            "-s",
            "5000",
            "-au",
            "alice",
            "-ap",
            "secret",
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
            "-m",
            "1",
        ],
        Duration::from_secs(15),
    );
    assert_ok(
        "right password -> routed (480: callee not registered)",
        &out,
        &crest,
    );
    assert_eq!(crest.metric("crest_calls_started_total"), 0);
}
