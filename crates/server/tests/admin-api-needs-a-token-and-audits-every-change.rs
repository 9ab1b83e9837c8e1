//! The admin API of a running `crest` (axum): no endpoint but `/healthz` and `/readyz`
//! answers without a token; `/metrics` takes a supervisor's or admin's token (no allow-list
//! here); each role gets exactly what the permission table gives it (401 without a token or
//! with a revoked one, 403 for a role that may not); bad requests get problem+json naming the
//! field; every change and every refused attempt is in the audit log with who, what and from
//! where; a state change by GET (the old `/recording/pause?…`) is gone.

mod common;

use common::*;

const PROBLEM: &str = "application/problem+json";

#[test]
fn roles_tokens_problems_and_the_audit_log() {
    let crest = Crest::start_full(
        "admin-api",
        "",
        "recording:\n  enabled: true\n  cdr: false\n",
        "  metrics_allow: []\n",
    );
    let (agent, supervisor, admin) = (
        crest.token("desk-7", "agent"),
        crest.token("floor-lead", "supervisor"),
        crest.token("ops", "admin"),
    );
    assert_ne!(agent, supervisor);

    // Open: health and readiness.
    assert_eq!(crest.http("GET", "/healthz", None, None).0, 200);
    assert_eq!(crest.http("GET", "/readyz", None, None).0, 200);

    // /metrics: a token whose role reads metrics.
    let (status, ctype, body) = crest.http("GET", "/metrics", None, None);
    assert_eq!((status, ctype.as_str()), (401, PROBLEM), "{body}");
    assert!(body.contains("Bearer"), "{body}");
    assert_eq!(crest.http("GET", "/metrics", Some(&agent), None).0, 403);
    let (status, _, body) = crest.http("GET", "/metrics", Some(&supervisor), None);
    assert_eq!(status, 200);
    assert!(body.contains("crest_calls_active 0"), "{body}");
    assert_eq!(
        crest.http("GET", "/metrics", Some("crest_0000"), None).0,
        401
    );

    // PCI pause: every role may; the call must exist; the body is checked field by field.
    let pause = "/api/v1/calls/no-such-call/recording/pause";
    let reason = Some(r#"{"reason": "card number"}"#);
    assert_eq!(crest.http("POST", pause, None, reason).0, 401);
    let (status, ctype, body) = crest.http("POST", pause, Some(&agent), reason);
    assert_eq!((status, ctype.as_str()), (404, PROBLEM), "{body}");
    let (status, ctype, body) = crest.http("POST", pause, Some(&agent), Some("{"));
    assert_eq!((status, ctype.as_str()), (400, PROBLEM), "{body}");
    let (status, _, body) = crest.http("POST", pause, Some(&agent), Some("{}"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""field":"reason""#), "{body}");
    let (status, _, body) = crest.http(
        "POST",
        pause,
        Some(&agent),
        Some(r#"{"reason": "x", "why": 1}"#),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""field":"why""#), "{body}");
    let (status, _, body) = crest.http("POST", pause, Some(&agent), Some(r#"{"reason": "  "}"#));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""field":"reason""#), "{body}");
    // The old state change by GET is gone.
    assert_eq!(
        crest
            .http("GET", "/recording/pause?call_id=x&reason=y", None, None)
            .0,
        404
    );

    // The audit log: the admin's alone.
    assert_eq!(
        crest
            .http("GET", "/api/v1/audit", Some(&supervisor), None)
            .0,
        403
    );
    let (status, _, body) = crest.http("GET", "/api/v1/audit?limit=0", Some(&admin), None);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""field":"limit""#), "{body}");
    let (status, ctype, body) = crest.http("GET", "/api/v1/audit?limit=50", Some(&admin), None);
    assert_eq!(
        (status, ctype.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let seen: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    // (Sorted: lines of the same millisecond have no order.)
    let pause_rows = |actor: &str| -> Vec<i64> {
        let mut v: Vec<i64> = seen
            .iter()
            .filter(|(a, act, _)| a == actor && act == "recording.pause")
            .map(|(_, _, s)| *s)
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(pause_rows("-"), [401], "{seen:?}");
    assert_eq!(pause_rows("desk-7"), [400, 400, 400, 404, 422], "{seen:?}");
    assert!(
        rows.iter()
            .all(|r| r["remote"] == "127.0.0.1" && r["target"] == "no-such-call")
    );
    assert!(rows.iter().any(|r| r["role"] == "agent"));

    // A revoked token opens nothing.
    let out = crest.cli(&["token", "revoke", "desk-7"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(crest.http("POST", pause, Some(&agent), reason).0, 401);
    let list = crest.cli(&["token", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("floor-lead") && list.contains("ops") && !list.contains("desk-7"),
        "{list}"
    );
    assert!(!list.contains(&admin), "tokens are never shown again");
}

#[path = "common/peer.rs"]
mod peer;

#[test]
fn supervisors_see_agents_and_queues_and_set_agents_ready_away_or_out() {
    let dir = scratch_dir("admin-acd-files");
    let acd = dir.join("acd.yaml");
    std::fs::write(
        &acd,
        "ring_secs: 10\nwrap_up_secs: 1\nmax_misses: 2\n\
         pools:\n  - {name: office, neighbours: []}\n\
         queues:\n  - {name: refund, skill: refund, pool: office}\n\
         agents:\n  - {name: alice, pool: office, skills: {refund: 0.9}, rating: 0.9}\n  - {name: bob, pool: office, skills: {refund: 0.5}, rating: 0.5}\n",
    )
    .unwrap();
    let crest = Crest::start_with(
        "admin-acd",
        "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n",
        &format!("acd:\n  file: \"{}\"\n", acd.display()),
    );
    let (agent, supervisor) = (
        crest.token("desk", "agent"),
        crest.token("lead", "supervisor"),
    );
    let mut alice = peer::Phone::new(crest.addr());
    alice.register("alice");

    let agents = |crest: &Crest| -> Vec<serde_json::Value> {
        let (status, _, body) = crest.http("GET", "/api/v1/agents", Some(&supervisor), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let state_of = |crest: &Crest, name: &str| -> (String, bool) {
        let a = agents(crest);
        let a = a.iter().find(|a| a["name"] == name).unwrap();
        (
            a["state"].as_str().unwrap().to_owned(),
            a["registered"].as_bool().unwrap(),
        )
    };
    wait_for("alice logged in", || {
        state_of(&crest, "alice").0 == "available"
    });
    assert_eq!(state_of(&crest, "alice"), ("available".into(), true));
    assert_eq!(state_of(&crest, "bob"), ("offline".into(), false));
    assert_eq!(
        crest.metric("crest_acd_agents{pool=\"office\",state=\"available\"}"),
        1
    );
    assert_eq!(
        crest.metric("crest_acd_agents{pool=\"office\",state=\"offline\"}"),
        1
    );
    assert!(
        crest
            .http_get("/metrics")
            .unwrap()
            .contains("crest_acd_pool_occupancy{pool=\"office\"} 0.0\n")
    );
    assert_eq!(
        crest.http("GET", "/api/v1/agents", Some(&agent), None).0,
        403
    );

    let set = |crest: &Crest, who: &str, body: &str| {
        crest.http(
            "POST",
            &format!("/api/v1/agents/{who}/state"),
            Some(&supervisor),
            Some(body),
        )
    };
    let (status, _, body) = set(
        &crest,
        "alice",
        r#"{"state": "away", "reason": "coaching"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let a = agents(&crest);
    assert_eq!(
        (a[0]["state"].as_str(), a[0]["reason"].as_str()),
        (Some("away"), Some("coaching"))
    );
    let (status, ctype, body) = set(&crest, "alice", r#"{"state": "asleep"}"#);
    assert_eq!((status, ctype.as_str()), (422, PROBLEM), "{body}");
    assert!(body.contains(r#""field":"state""#), "{body}");
    assert_eq!(set(&crest, "mallory", r#"{"state": "ready"}"#).0, 404);
    // Logged out by the supervisor: her phone's REGISTER does not log her back in.
    assert_eq!(set(&crest, "alice", r#"{"state": "logout"}"#).0, 200);
    alice.register("alice");
    assert_eq!(state_of(&crest, "alice"), ("offline".into(), true));
    assert_eq!(set(&crest, "alice", r#"{"state": "ready"}"#).0, 200);
    assert_eq!(state_of(&crest, "alice").0, "available");
    assert_eq!(
        crest
            .http(
                "POST",
                "/api/v1/agents/alice/state",
                Some(&agent),
                Some(r#"{"state": "ready"}"#)
            )
            .0,
        403
    );

    let (status, _, body) = crest.http("GET", "/api/v1/queues", Some(&supervisor), None);
    assert_eq!(status, 200, "{body}");
    let q: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(q["queues"][0]["name"], "refund");
    assert_eq!(q["queues"][0]["waiting"], 0);
    assert_eq!(q["queues"][0]["answered"], 0);
    assert!(
        q["queues"][0]["service_level"].is_null(),
        "none before an answer"
    );
    assert_eq!(q["queues"][0]["service_level_secs"], 20);
    assert_eq!(q["surge_level"], 0);

    // The supervisor opens the circuit breaker by hand, then gives it back.
    let surge =
        |token: &str, body: &str| crest.http("POST", "/api/v1/surge", Some(token), Some(body));
    assert_eq!(surge(&agent, r#"{"level": "circuit_breaker"}"#).0, 403);
    let (status, _, body) = surge(&supervisor, r#"{"level": "meltdown"}"#);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains(r#""field":"level""#), "{body}");
    let (status, _, body) = surge(&supervisor, r#"{"level": "circuit_breaker"}"#);
    assert_eq!(status, 200, "{body}");
    let q: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (q["surge_level"].as_u64(), q["surge_set_by_hand"].as_bool()),
        (Some(3), Some(true))
    );
    assert!(q["surge_ratio"].as_f64().unwrap() >= 8.0, "{q}");
    assert_eq!(crest.metric("crest_acd_surge_set_by_hand"), 1);
    let (status, _, body) = surge(&supervisor, r#"{"level": "auto"}"#);
    assert_eq!(status, 200, "{body}");
    let q: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (q["surge_level"].as_u64(), q["surge_set_by_hand"].as_bool()),
        (Some(0), Some(false))
    );

    let admin = crest.token("ops", "admin");
    let (_, _, body) = crest.http("GET", "/api/v1/audit", Some(&admin), None);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut changes: Vec<(String, i64)> = rows
        .iter()
        .filter(|r| r["action"] == "agent.state")
        .map(|r| {
            (
                r["target"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            ("alice".into(), 200),
            ("alice".into(), 200),
            ("alice".into(), 200),
            ("alice".into(), 403),
            ("alice".into(), 422),
            ("mallory".into(), 404)
        ]
    );
}

#[test]
fn every_endpoint_is_in_the_openapi_document_generated_from_the_types() {
    let crest = Crest::start("admin-openapi", "");
    assert_eq!(crest.http("GET", "/api/v1/openapi.json", None, None).0, 401);
    let agent = crest.token("desk", "agent");
    let (status, ctype, body) = crest.http("GET", "/api/v1/openapi.json", Some(&agent), None);
    assert_eq!(
        (status, ctype.as_str()),
        (200, "application/json"),
        "{body}"
    );
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut paths: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    paths.sort();
    // Every API route the server has (the other tests here call each of them).
    assert_eq!(
        paths,
        [
            ("DELETE", "/api/v1/agents/{name}"),
            ("GET", "/api/v1/agents"),
            ("GET", "/api/v1/audit"),
            ("GET", "/api/v1/calls"),
            ("GET", "/api/v1/calls/{call_id}/recording"),
            ("GET", "/api/v1/flows"),
            ("GET", "/api/v1/live"),
            ("GET", "/api/v1/openapi.json"),
            ("GET", "/api/v1/queues"),
            ("POST", "/api/v1/agents/{name}/state"),
            ("POST", "/api/v1/calls/{call_id}/recording/pause"),
            ("POST", "/api/v1/calls/{call_id}/recording/resume"),
            ("POST", "/api/v1/flows/{name}/canary/{action}"),
            ("POST", "/api/v1/surge"),
            ("PUT", "/api/v1/agents/{name}"),
            ("PUT", "/api/v1/flows/{name}/canary"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
    for (p, ops) in doc["paths"].as_object().unwrap() {
        for (m, op) in ops.as_object().unwrap() {
            assert_eq!(
                op["security"][0]["bearer"],
                serde_json::json!([]),
                "{m} {p}"
            );
            assert!(op["responses"]["401"].is_object(), "{m} {p} documents 401");
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let pause = &doc["components"]["schemas"]["PauseRequest"];
    assert_eq!(pause["required"], serde_json::json!(["reason"]), "{pause}");
    assert!(doc["components"]["schemas"]["ProblemDoc"]["properties"]["field"].is_object());
}

#[test]
fn an_https_admin_listener_serves_the_same_api_and_knows_the_client() {
    let crest = Crest::start_full("admin-tls", "", "", "  tls: true\n");
    assert_eq!(crest.curl(&["/healthz"]).as_deref(), Some("ok\n"));
    // Plain HTTP on it gets nothing.
    assert_eq!(crest.http_get("/healthz"), None);
    let admin = crest.token("ops", "admin");
    let auth = format!("Authorization: Bearer {admin}");
    let problem = crest
        .curl(&[
            "-X",
            "POST",
            "-H",
            &auth,
            "-d",
            r#"{"reason": "x"}"#,
            "/api/v1/calls/gone/recording/pause",
        ])
        .unwrap();
    assert!(problem.contains(r#""status":409"#), "{problem}");
    let audit = crest.curl(&["-H", &auth, "/api/v1/audit"]).unwrap();
    assert!(
        audit.contains(r#""remote":"127.0.0.1","status":409"#),
        "the client's address over TLS: {audit}"
    );
}

#[test]
fn admins_add_edit_and_remove_agents_live_and_the_edits_outlast_a_restart() {
    let dir = scratch_dir("admin-agent-edits-files");
    let acd = dir.join("acd.yaml");
    std::fs::write(
        &acd,
        "ring_secs: 10\nwrap_up_secs: 1\nmax_misses: 2\n\
         pools:\n  - {name: office, neighbours: []}\n  - {name: night, neighbours: []}\n\
         queues:\n  - {name: refund, skill: refund, pool: office}\n\
         agents:\n  - {name: alice, pool: office, skills: {refund: 0.9}, rating: 0.9}\n",
    )
    .unwrap();
    let top = format!(
        "acd:\n  file: \"{}\"\nrecording:\n  index: \"sqlite:{}/index.db\"\n",
        acd.display(),
        dir.display()
    );
    let routes = "  routes:\n    - {number: \"4001\", queue: refund, public: true}\n";
    let mut crest = Crest::start_with("admin-agent-edits", routes, &top);
    let (admin, supervisor, agent) = (
        crest.token("ops", "admin"),
        crest.token("lead", "supervisor"),
        crest.token("desk", "agent"),
    );
    let put = |crest: &Crest, token: &str, who: &str, body: &str| {
        crest.http(
            "PUT",
            &format!("/api/v1/agents/{who}"),
            Some(token),
            Some(body),
        )
    };
    let agents = |crest: &Crest| -> Vec<serde_json::Value> {
        let (status, _, body) = crest.http("GET", "/api/v1/agents", Some(&supervisor), None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    // bob's phone is registered, but he is not an agent yet; a caller waits for refunds
    // (alice is not logged in).
    let mut bob = peer::Phone::new(crest.addr());
    bob.register("bob");
    let mut caller = peer::Phone::new(crest.addr());
    let rtp = peer::Rtp::new(crest_media::codec::CodecKind::Pcmu, 0);
    caller.invite("4001", &peer::sdp(rtp.port(), "0 101", ""));

    // No token: 401, nothing changed.
    let body = r#"{"pool": "office", "skills": {}}"#;
    assert_eq!(
        crest.http("PUT", "/api/v1/agents/bob", None, Some(body)).0,
        401
    );
    assert_eq!(
        crest.http("DELETE", "/api/v1/agents/alice", None, None).0,
        401
    );
    // Bad requests change nothing.
    for (token, body, status, field) in [
        (&agent, r#"{"pool": "office", "skills": {}}"#, 403, None),
        (
            &supervisor,
            r#"{"pool": "attic", "skills": {}}"#,
            422,
            Some("pool"),
        ),
        (
            &supervisor,
            r#"{"pool": "office", "skills": {"refund": 7}}"#,
            422,
            Some("skills.refund"),
        ),
        (&supervisor, r#"{"pool": "office"}"#, 400, Some("skills")),
        (
            &supervisor,
            r#"{"pool": "office", "skills": {}, "shoe_size": 9}"#,
            400,
            Some("shoe_size"),
        ),
        (&supervisor, "{not json", 400, None),
    ] {
        let (s, ctype, body) = put(&crest, token, "bob", body);
        assert_eq!((s, ctype.as_str()), (status, PROBLEM), "{body}");
        if let Some(f) = field {
            assert!(body.contains(&format!(r#""field":"{f}""#)), "{body}");
        }
    }
    assert_eq!(agents(&crest).len(), 1, "bob was not added");

    // Added: logged in by his registration, he rings for the waiting caller at once.
    let (status, _, body) = put(
        &crest,
        &supervisor,
        "bob",
        r#"{"pool": "office", "skills": {"refund": 0.6}, "languages": ["en-GB"]}"#,
    );
    assert_eq!(status, 201, "{body}");
    let item: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            &item["skills"]["refund"],
            &item["languages"],
            &item["rating"]
        ),
        (
            &serde_json::json!(0.6),
            &serde_json::json!(["en"]),
            &serde_json::json!(0.5)
        )
    );
    let (invite, from) = bob.expect_request("INVITE", std::time::Duration::from_secs(5));
    let busy = bob.respond(&invite, 486, None);
    bob.sip.send_to(busy.as_bytes(), from).unwrap();
    caller.bye();
    // Edited: moved to the night pool (which no queue uses), skills kept as given.
    let (status, _, body) = put(
        &crest,
        &admin,
        "bob",
        r#"{"pool": "night", "skills": {"refund": 0.8, "vip": 1}, "rating": 0.7}"#,
    );
    assert_eq!(status, 200, "{body}");
    // Removed: alice is gone from the list; an unknown agent is a 404.
    let del = |crest: &Crest, token: &str, who: &str| {
        crest.http(
            "DELETE",
            &format!("/api/v1/agents/{who}"),
            Some(token),
            None,
        )
    };
    assert_eq!(del(&crest, &agent, "alice").0, 403);
    assert_eq!(del(&crest, &supervisor, "alice").0, 204);
    assert_eq!(del(&crest, &supervisor, "alice").0, 404);
    assert_eq!(del(&crest, &supervisor, "mallory").0, 404);
    let names = |crest: &Crest| -> Vec<(String, String, f64)> {
        agents(crest)
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_owned(),
                    a["pool"].as_str().unwrap().to_owned(),
                    a["skills"]["refund"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(names(&crest), [("bob".into(), "night".into(), 0.8)]);

    // A restart keeps every edit (acd.yaml still lists alice, and not bob).
    drop(crest);
    crest = Crest::start_with("admin-agent-edits", routes, &top);
    assert_eq!(names(&crest), [("bob".into(), "night".into(), 0.8)]);
    let (_, _, body) = crest.http("GET", "/api/v1/audit", Some(&admin), None);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let mut edits: Vec<(String, String, i64)> = rows
        .iter()
        .filter(|r| {
            r["action"].as_str().unwrap().starts_with("agent.p") || r["action"] == "agent.remove"
        })
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
                r["status"].as_i64().unwrap(),
            )
        })
        .collect();
    edits.sort();
    let e = |a: &str, t: &str, s: i64| (a.to_owned(), t.to_owned(), s);
    assert_eq!(
        edits,
        [
            e("agent.put", "bob", 200),
            e("agent.put", "bob", 200),
            e("agent.put", "bob", 400),
            e("agent.put", "bob", 400),
            e("agent.put", "bob", 400),
            e("agent.put", "bob", 401),
            e("agent.put", "bob", 403),
            e("agent.put", "bob", 422),
            e("agent.put", "bob", 422),
            e("agent.remove", "alice", 200),
            e("agent.remove", "alice", 401),
            e("agent.remove", "alice", 403),
            e("agent.remove", "alice", 404),
            e("agent.remove", "mallory", 404),
        ]
    );
}
