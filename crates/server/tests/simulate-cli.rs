//! `crest simulate` runs the shipped Double 11 scenario through the production ACD with
//! several strategies on the same callers (with the production surge levels and admission
//! rules: self-service, callbacks, refusals), per pool and over time, as a table, JSON and an
//! SVG chart; and refuses a bad scenario with file:line and key.

use std::process::Command;

fn crest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crest"))
}

#[test]
fn the_double11_scenario_runs_every_strategy_on_the_same_callers() {
    let scenario = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/scenarios/double11.yaml"
    );
    let out = crest()
        .args([
            "simulate",
            "--scenario",
            scenario,
            "--compare",
            "weighted,longest-idle,fifo",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{text}");
    let arrived: Vec<u64> = rows
        .iter()
        .map(|r| r["arrived"].as_u64().unwrap())
        .collect();
    assert!(
        arrived.iter().all(|a| *a == arrived[0]),
        "same callers: {arrived:?}"
    );
    // A 30x surge for half an hour on top of ~17,000 normal calls.
    let n = arrived[0];
    assert!((24_000..32_000).contains(&n), "{n}");
    for r in rows {
        let u = |k: &str| r[k].as_u64().unwrap();
        assert_eq!(
            n,
            u("answered") + u("abandoned") + u("self_served") + u("refused"),
            "every caller accounted for: {r}"
        );
        // The surge was seen and acted on: self-service first, callbacks, the breaker.
        assert!(u("self_served") > 0 && u("callbacks") > 0, "{r}");
        assert!(u("compensated") > 0 && u("standby_activations") >= 1, "{r}");
        let pools = r["pools"].as_array().unwrap();
        assert_eq!(pools.len(), 4);
        assert!(
            pools[3]["answered"].as_u64().unwrap() > 0,
            "the standby pool answered"
        );
        let by_pool: u64 = pools.iter().map(|p| p["answered"].as_u64().unwrap()).sum();
        assert_eq!(by_pool, u("answered"));
        let iv = r["intervals"].as_array().unwrap();
        assert_eq!(iv.len(), 96);
        assert_eq!(
            iv.iter()
                .map(|i| i["arrived"].as_u64().unwrap())
                .sum::<u64>(),
            n
        );
        let peak = iv.iter().map(|i| i["surge"].as_u64().unwrap()).max();
        assert_eq!(peak, Some(3), "the circuit breaker engaged");
        assert_eq!(iv[0]["surge"].as_u64(), Some(0));
    }
    let svg = std::env::temp_dir().join(format!("crest-sim-{}.svg", std::process::id()));
    let out = crest()
        .args([
            "simulate",
            "--scenario",
            scenario,
            "--compare",
            "weighted,fifo",
            "--svg",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(
        chart.matches("<polyline").count(),
        2,
        "a service-level line per strategy"
    );
    assert!(
        chart.contains("fill=\"#f8d7da\""),
        "the circuit breaker's shading"
    );
    let table = crest()
        .args(["simulate", "--scenario", scenario, "--seed", "5"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.starts_with("strategy") && table.contains("\nweighted "),
        "{table}"
    );
    assert!(
        table.contains("per seat pool") && table.contains("over time"),
        "{table}"
    );
    assert!(table.contains(" 8x\n"), "{table}");
}

#[test]
fn a_bad_scenario_names_the_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("crest-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.yaml");
    std::fs::write(
        &p,
        "traffic:\n  rate_per_min: 1\n  duration_min: 10\n  mean_handle_secs: 60\n  queue_mix: {nope: 1}\n\
         acd:\n  pools:\n    - {name: p}\n  queues:\n    - {name: q, skill: s, pool: p}\n  agents: []\n",
    )
    .unwrap();
    let out = crest()
        .args(["simulate", "--scenario"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5:")
            && err.contains("traffic.queue_mix")
            && err.contains("\"nope\""),
        "{err}"
    );
    let out = crest()
        .args(["simulate", "--scenario"])
        .arg(&p)
        .args(["--compare", "random"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown strategy \"random\""));
}
