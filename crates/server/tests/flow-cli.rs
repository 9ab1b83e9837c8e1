//! `crest flow check|test|schema`: the shipped flows check and pass their scripted calls, a
//! broken flow gets every error with file:line:column and a non-zero exit, and the shipped
//! JSON Schema is the one the Rust types generate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn crest(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crest"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn shipped_flows_check_and_pass_their_scripts() {
    // The README's command as written: `crest flow check config/flows/*.yaml`, run by a shell
    // (which expands the glob, scripted calls included).
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("crest flow check config/flows/*.yaml"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} flow check config/flows/*.yaml",
            env!("CARGO_BIN_EXE_crest")
        ))
        .current_dir(root())
        .output()
        .unwrap();
    let s = stdout(&out);
    assert!(
        out.status.success(),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.contains("config/flows/main.yaml: OK"), "{s}");
    assert!(
        s.contains("config/flows/main.test.yaml: scripted calls, not a flow"),
        "{s}"
    );
    let mut flows = Vec::new();
    for e in std::fs::read_dir(root().join("config/flows")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !name.ends_with(".test.yaml") {
            flows.push(format!("config/flows/{name}"));
        }
    }
    assert!(!flows.is_empty());
    for f in &flows {
        let script = f.replace(".yaml", ".test.yaml");
        if root().join(&script).exists() {
            let out = crest(&["flow", "test", f, "--script", &script]);
            let s = stdout(&out);
            assert!(out.status.success(), "{s}");
            assert!(s.contains(" 0 failed"), "{s}");
        }
    }
}

#[test]
fn a_broken_flow_gets_every_error_with_its_line() {
    let dir = std::env::temp_dir().join(format!("crest-flow-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(
        dir.join("acd.yaml"),
        std::fs::read_to_string(root().join("config/acd.yaml")).unwrap(),
    )
    .unwrap();
    let bad = dir.join("flows/bad.yaml");
    std::fs::write(
        &bad,
        "flow: bad\nstart: hello\nnodes:\n  - say: {name: hello, text: \"Hi {name\", next: menu}\n  - ask:\n      name: menu\n      prompt: \"Say something\"\n      intents:\n        x: {examples: [\"talk to a zorblax\"], next: nowhere}\n  - queue: {name: q, queue: no-such-queue}\n",
    )
    .unwrap();
    let out = crest(&["flow", "check", bad.to_str().unwrap()]);
    let s = stdout(&out);
    assert!(!out.status.success(), "{s}");
    let f = bad.display().to_string();
    for (line, want) in [
        (4, "unclosed '{'"),
        (5, "no no_input handling"),
        (5, "no no_match handling"),
        (
            5,
            "words the recogniser does not know (not in its dictionary): zorblax",
        ),
        (9, "no node named \"nowhere\""),
        (10, "no queue named \"no-such-queue\""),
    ] {
        assert!(
            s.lines()
                .any(|l| l.starts_with(&format!("{f}:{line}:")) && l.contains(want)),
            "{line} {want}: {s}"
        );
    }
    // A typo is a schema error at its line and column.
    std::fs::write(
        &bad,
        "flow: bad\nstart: a\nnodes:\n  - hangup: {name: a, raeson: x}\n",
    )
    .unwrap();
    let out = crest(&["flow", "check", bad.to_str().unwrap()]);
    let s = stdout(&out);
    assert!(
        !out.status.success() && s.contains(&format!("{f}:4:")) && s.contains("raeson"),
        "{s}"
    );
}

#[test]
fn the_shipped_schema_is_generated_from_the_types() {
    let out = crest(&["flow", "schema"]);
    assert!(out.status.success());
    let shipped = std::fs::read_to_string(root().join("config/schema/flow.schema.json")).unwrap();
    assert_eq!(
        stdout(&out),
        shipped,
        "regenerate: crest flow schema > config/schema/flow.schema.json"
    );
    assert!(shipped.contains("\"ask\"") && shipped.contains("\"additionalProperties\": false"));
}
