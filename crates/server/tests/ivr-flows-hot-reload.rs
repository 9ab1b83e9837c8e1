//! A running `crest` with the IVR on: its flows are loaded at start (metrics name flow and
//! version); a broken edit is refused with file:line in the log and the running version stays
//! in force; a good edit is in force within the reload interval; `crest check` refuses a
//! configuration whose flows do not check.

mod common;

use common::*;

#[test]
fn flows_reload_when_they_check_and_stay_when_they_do_not() {
    let flows = scratch_dir("ivr-flows");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let main = std::fs::read_to_string(root.join("config/flows/main.yaml")).unwrap();
    let file = flows.join("main.yaml");
    std::fs::write(&file, &main).unwrap();
    std::fs::copy(root.join("config/flows/csat.yaml"), flows.join("csat.yaml")).unwrap();
    let ivr = format!(
        "ivr:\n  enabled: true\n  flows_dir: \"{}\"\n  reload_secs: 1\n  acd_file: \"{}\"\n",
        flows.display(),
        root.join("config/acd.yaml").display()
    );
    let crest = Crest::start_with("ivr-reload", "", &ivr);
    let metric = "crest_ivr_flow{flow=\"main\",version=\"2026-12-01\"}";
    assert_eq!(crest.metric(metric), 1);
    assert!(crest.log().contains("IVR flow loaded"), "{}", crest.log());

    // A broken edit: an unknown queue on line 9 of the new text.
    let broken = main
        .replace("version: \"2026-12-01\"", "version: \"broken\"")
        .replace(
            "queue: refund, problem_type",
            "queue: refunds-typo, problem_type",
        );
    std::fs::write(&file, &broken).unwrap();
    wait_for("the broken flow is refused", || {
        crest.metric("crest_ivr_reloads_total{result=\"refused\"}") == 1
    });
    let log = crest.log();
    assert!(
        log.contains(&format!("IVR flow refused: {}:", file.display()))
            && log.contains("no queue named \"refunds-typo\""),
        "{log}"
    );
    assert!(log.contains("the running version stays in force"), "{log}");
    assert_eq!(crest.metric(metric), 1, "version 2026-12-01 still in force");

    // A good edit.
    std::fs::write(
        &file,
        main.replace("version: \"2026-12-01\"", "version: \"2026-12-02\""),
    )
    .unwrap();
    wait_for("the new version is in force", || {
        crest.metric("crest_ivr_reloads_total{result=\"loaded\"}") == 1
    });
    assert_eq!(
        crest.metric("crest_ivr_flow{flow=\"main\",version=\"2026-12-02\"}"),
        1
    );
    assert!(
        !crest
            .http_get("/metrics")
            .unwrap()
            .contains("version=\"2026-12-01\"")
    );
    assert!(crest.log().contains("new calls take this version"));

    // `crest check` checks the flows too.
    std::fs::write(&file, &broken).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crest"))
        .args(["check", "--config"])
        .arg(crest.dir.join("crest.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refunds-typo"),
        "{out:?}"
    );
}
