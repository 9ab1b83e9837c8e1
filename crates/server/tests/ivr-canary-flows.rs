//! Canary flows in a running `crest`: a version uploaded through the admin API (checked, every
//! error with its line, nothing staged when one is found) lands in `flows_dir/canary/` and
//! takes its share
//! of callers (all of them here) while the stable version keeps the rest; the admin API shows
//! each arm's calls, an admin rolls the canary back (the next caller gets the stable version)
//! and then promotes it (its file replaces the stable one and every new caller gets it). A
//! supervisor may look but not change; every change is audited. The rule that rolls a worse
//! canary back by itself is tested on scripted calls in crest-ivr (`canary.rs`).

mod common;
#[path = "common/peer.rs"]
mod peer;

use std::time::Duration;

use common::*;
use peer::*;

fn greet(version: &str, text: &str) -> String {
    format!(
        "flow: greet\nversion: \"{version}\"\nvoice: en-us\nstart: hi\nnodes:\n  - say: {{name: hi, text: \"{text}\", next: bye}}\n  - hangup: {{name: bye}}\n"
    )
}

/// The flows' figures from the API: (stable version, canary version and state, stable calls,
/// canary calls).
fn figures(crest: &Crest, token: &str) -> serde_json::Value {
    let (status, _, body) = crest.http("GET", "/api/v1/flows", Some(token), None);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "greet")
        .cloned()
        .unwrap()
}

/// A caller who hangs up as soon as the IVR answers.
fn call_and_hang_up(crest: &Crest, from: u32) {
    let mut p = Phone::new(crest.addr());
    p.call_id = format!("canary-{from}@127.0.0.1");
    let rtp = Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    p.invite("4000", &sdp(rtp.port(), "0", ""));
    std::thread::sleep(Duration::from_millis(300));
    p.bye();
}

#[test]
fn a_staged_version_takes_its_share_is_rolled_back_then_promoted() {
    let dir = scratch_dir("canary-files");
    std::fs::create_dir_all(dir.join("flows/canary")).unwrap();
    std::fs::write(dir.join("flows/greet.yaml"), greet("1", "Hello one")).unwrap();
    let crest = Crest::start_with(
        "canary",
        "  routes:\n    - {number: \"4000\", ivr: greet, public: true}\n",
        &format!(
            "media:\n  port_min: 43700\n  port_max: 43799\nivr:\n  enabled: true\n  flows_dir: \"{}/flows\"\n  reload_secs: 1\n  \
             canary: {{share_percent: 100, min_calls: 50}}\n",
            dir.display()
        ),
    );
    let (admin, lead) = (
        crest.token("ops", "admin"),
        crest.token("lead", "supervisor"),
    );
    assert!(figures(&crest, &lead)["canary"].is_null());

    // Uploads: checked before anything is written.
    let stage = "/api/v1/flows/greet/canary";
    let put = |token: &str, body: &str| crest.http("PUT", stage, Some(token), Some(body));
    assert_eq!(put(&lead, &greet("2", "Hello two")).0, 403);
    let broken = greet("2", "Hello two").replace("next: bye", "next: nowhere");
    let (status, ctype, body) = put(&admin, &broken);
    assert_eq!(
        (status, ctype.as_str()),
        (422, "application/problem+json"),
        "{body}"
    );
    assert!(
        body.contains("nowhere") && body.contains("6:"),
        "line of the error: {body}"
    );
    let (status, _, body) = put(
        &admin,
        &greet("2", "x").replace("flow: greet", "flow: other"),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""field":"flow""#), "{body}");
    let (status, _, body) = put(&admin, &greet("1", "Hello again"));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""field":"version""#), "{body}");
    assert!(
        !dir.join("flows/canary/greet.yaml").exists(),
        "nothing staged"
    );
    let (status, _, body) = put(&admin, &greet("2", "Hello two"));
    assert_eq!(status, 200, "{body}");
    let f = figures(&crest, &lead);
    assert_eq!(
        (f["version"].as_str(), f["canary"]["version"].as_str()),
        (Some("1"), Some("2"))
    );
    assert_eq!(f["canary"]["state"], "running");

    call_and_hang_up(&crest, 1);
    wait_for("the canary's call counted", || {
        figures(&crest, &lead)["canary"]["canary"]["calls"] == 1
    });
    let f = figures(&crest, &lead);
    assert_eq!(f["canary"]["canary"]["abandoned"], 1);
    assert_eq!(
        f["canary"]["stable"]["calls"], 0,
        "share 100 %: nobody on the stable"
    );
    assert_eq!(
        crest.metric(
            "crest_ivr_version_calls_total{flow=\"greet\",version=\"2\",outcome=\"abandoned\"}"
        ),
        1
    );

    // A supervisor may look, not change; the admin rolls it back.
    let rollback = "/api/v1/flows/greet/canary/rollback";
    assert_eq!(crest.http("POST", rollback, Some(&lead), None).0, 403);
    let (status, _, body) = crest.http("POST", rollback, Some(&admin), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("rolled back: rolled back by ops"), "{body}");
    call_and_hang_up(&crest, 2);
    wait_for("the stable version's call counted", || {
        figures(&crest, &lead)["canary"]["stable"]["calls"] == 1
    });
    assert_eq!(figures(&crest, &lead)["canary"]["canary"]["calls"], 1);
    assert_eq!(
        crest
            .http(
                "POST",
                "/api/v1/flows/nope/canary/rollback",
                Some(&admin),
                None
            )
            .0,
        404
    );

    // Promoted: the canary's file replaces the stable one; no canary is left.
    let (status, _, body) = crest.http(
        "POST",
        "/api/v1/flows/greet/canary/promote",
        Some(&admin),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let f = figures(&crest, &lead);
    assert_eq!(f["version"], "2", "{f}");
    assert!(f["canary"].is_null(), "{f}");
    assert!(!dir.join("flows/canary/greet.yaml").exists());
    assert!(
        std::fs::read_to_string(dir.join("flows/greet.yaml"))
            .unwrap()
            .contains("Hello two")
    );
    let m = crest.http_get("/metrics").unwrap();
    assert!(
        m.contains("crest_ivr_flow{flow=\"greet\",version=\"2\"} 1"),
        "{m}"
    );

    let (_, _, body) = crest.http("GET", "/api/v1/audit", Some(&admin), None);
    for (action, status) in [
        ("flow.stage", 403),
        ("flow.stage", 422),
        ("flow.stage", 200),
        ("flow.rollback", 403),
        ("flow.rollback", 200),
        ("flow.promote", 200),
    ] {
        assert!(
            body.contains(&format!(r#""action":"{action}","target":"greet""#))
                && body.contains(&format!(r#""status":{status}"#)),
            "{action} {status}: {body}"
        );
    }
}
