//! The shipped Grafana board (`deploy/grafana/crest-overview.json`) names only metrics a
//! running crest exports (IVR, ACD, media and recording on), and a real Prometheus (Debian's
//! package) scrapes that crest with a supervisor's token: the target is up, crest's series
//! are stored, and every query of the board is valid PromQL that Prometheus evaluates.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The board's queries.
fn board_queries() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/crest-overview.json")).unwrap();
    let board: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in board["panels"].as_array().unwrap() {
        assert_eq!(p["datasource"]["uid"], "prometheus", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(out.len() >= 20, "{} queries", out.len());
    out
}

/// The `crest_…` metric names in a query.
fn names(expr: &str) -> Vec<String> {
    let mut v = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("crest_") {
        let start = i + at;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        v.push(expr[start..end].to_owned());
        i = end;
    }
    v
}

/// GET over HTTP/1.0 (no chunking); the body.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (c as char).to_string()
            }
            _ => format!("%{c:02X}"),
        })
        .collect()
}

/// A Prometheus query's JSON answer.
fn query(port: u16, q: &str) -> serde_json::Value {
    let body = get(port, &format!("/api/v1/query?query={}", encode(q))).unwrap_or_default();
    serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_board_names_exported_metrics_and_prometheus_scrapes_crest_with_a_token() {
    let flows = root().join("config/flows");
    let acd = root().join("config/acd.yaml");
    let crest = Crest::start_full(
        "grafana",
        "  routes:\n    - {number: \"4000\", ivr: main, public: true}\n",
        &format!(
            "media:\n  port_min: 43600\n  port_max: 43699\nivr:\n  enabled: true\n  flows_dir: \"{}\"\n\
             acd:\n  file: \"{}\"\nrecording:\n  enabled: true\n  cdr: true\n  hot_dir: \"{}/hot\"\n",
            flows.display(),
            acd.display(),
            scratch_dir("grafana-rec").display()
        ),
        "  metrics_allow: []\n",
    );
    let reader = crest.token("board-check", "admin");
    let (status, _, metrics) = crest.http("GET", "/metrics", Some(&reader), None);
    assert_eq!(status, 200);
    // OpenMetrics names a counter's family without its `_total`, which its samples carry.
    let families: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [name, "counter"] => Some(format!("{name}_total")),
            [name, _] => Some(name.to_owned()),
            _ => None,
        })
        .collect();
    let queries = board_queries();
    for q in &queries {
        for n in names(q) {
            // A histogram's series are its family's name with a suffix.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|f| families.contains(*f)))
                .unwrap_or(&n);
            assert!(
                families.contains(family),
                "the board's {n} (in {q}) is not exported"
            );
        }
    }

    // A real Prometheus scrapes it with a supervisor's token (the allow-list is empty here:
    // the token file is what lets it in).
    let token = crest.token("prometheus", "supervisor");
    let dir = scratch_dir("grafana-prometheus");
    std::fs::write(dir.join("crest.token"), &token).unwrap();
    let port = free_port();
    let admin = crest.admin;
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: crest\n    \
             authorization:\n      type: Bearer\n      credentials_file: {}/crest.token\n    \
             static_configs:\n      - targets: [\"127.0.0.1:{admin}\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}/prometheus.yml", dir.display()))
            .arg(format!("--storage.tsdb.path={}/tsdb", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's package; ./scripts/setup.sh installs it)"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let up = loop {
        let r = query(port, "up{job=\"crest\"}");
        if r["data"]["result"][0]["value"][1].as_str() == Some("1") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        up,
        "crest is not up in Prometheus: {}",
        std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
    );
    let r = query(port, "crest_calls_active");
    assert_eq!(r["data"]["result"][0]["value"][1], "0", "{r}");
    let r = query(port, "crest_acd_waiting");
    assert!(
        r["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{r}"
    );
    // The service level's bucket, whichever way the Prometheus writes `le` (2.x keeps the
    // exposition's "20.0", 3.x normalises).
    let r = query(port, "crest_acd_wait_seconds_bucket{le=~\"20(\\\\.0)?\"}");
    assert!(
        r["data"]["result"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{r}"
    );
    for q in &queries {
        let r = query(port, q);
        assert_eq!(
            r["status"], "success",
            "Prometheus refuses the board's query {q}: {r}"
        );
    }
    assert_eq!(
        crest.http("GET", "/metrics", None, None).0,
        401,
        "no token, no metrics"
    );
}
