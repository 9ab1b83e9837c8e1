//! `crest simulate` runs the shipped Double 11 scenario through the production ACD with
//! several strategies on the same callers, and refuses a bad scenario with file:line and key.

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
    let rows: Vec<&str> = text
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split("},{")
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    let arrived: Vec<&str> = rows
        .iter()
        .map(|r| {
            r.split("\"arrived\":")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
        })
        .collect();
    assert!(
        arrived.iter().all(|a| *a == arrived[0]),
        "same callers: {arrived:?}"
    );
    // A 30x surge for half an hour on top of ~17,000 normal calls.
    let n: u64 = arrived[0].parse().unwrap();
    assert!((24_000..32_000).contains(&n), "{n}");
    let table = crest()
        .args(["simulate", "--scenario", scenario, "--seed", "5"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.starts_with("strategy") && table.contains("\nweighted "),
        "{table}"
    );
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
