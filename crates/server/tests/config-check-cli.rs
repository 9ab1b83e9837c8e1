//! `crest check` accepts the shipped configuration and refuses bad ones with file:line and the
//! offending key; `crest passwd` prints HA1 hashes that the digest code accepts.

use std::io::Write;
use std::process::{Command, Stdio};

fn crest() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crest"))
}

fn check(text: &str, name: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("crest-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    let out = crest()
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn shipped_config_passes() {
    // The shipped configuration names its files relative to the repository's root (where the
    // README runs crest), like its flows and the ACD file.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let out = crest()
        .args(["check", "--config", "config/crest.yaml"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn typo_and_bad_values_name_file_line_and_key() {
    let (ok, msg) = check(
        "sip:\n  rate_limit:\n    requests_per_sec: 5\n    brust: 3\n",
        "typo.yaml",
    );
    assert!(!ok);
    assert!(
        msg.contains("typo.yaml:4:5:") && msg.contains("brust"),
        "{msg}"
    );
    let (ok, msg) = check(
        "sip:\n  routes:\n    - number: \"1\"\n      user: nobody\n",
        "user.yaml",
    );
    assert!(!ok);
    assert!(
        msg.contains("user.yaml:4:") && msg.contains("sip.routes[0].user"),
        "{msg}"
    );
    let (ok, msg) = check("sip:\n  session_timer:\n    min_se: 30\n", "minse.yaml");
    assert!(!ok);
    assert!(
        msg.contains("minse.yaml:3:") && msg.contains("min_se"),
        "{msg}"
    );
    let (ok, msg) = check(
        "listen:\n  udp: 0.0.0.0:5060\n  tcp: \"\"\n  tls: \"\"\n",
        "adv.yaml",
    );
    assert!(!ok);
    assert!(msg.contains("listen.advertise"), "{msg}");
}

#[test]
fn passwd_prints_the_ha1_hashes() {
    let mut child = crest()
        .args(["passwd", "alice", "crest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ha1_md5: 478a21be558e443c6ae3000c82c55aa2"),
        "{text}"
    );
    assert!(
        text.contains(
            "ha1_sha256: e4bd3e35e46d66ec17bbbdb243d7585e4005e6d7f5bdf06bc0dbda6be0cf613e"
        ),
        "{text}"
    );
}

#[test]
fn bad_media_settings_name_the_key() {
    for (text, key, what) in [
        (
            "media:\n  codecs:\n    - PCMU\n    - G729\n",
            "media.codecs[1]",
            "unknown codec \"G729\"",
        ),
        ("media:\n  port_min: 100\n", "media.port_min", "1024"),
        ("media:\n  ptime_ms: 25\n", "media.ptime_ms", "use 10, 20"),
        ("media:\n  bandwidth:\n    node: 5\n", "", "unknown field"),
    ] {
        let (ok, msg) = check(text, "media.yaml");
        assert!(!ok, "{text}");
        assert!(msg.contains(key) && msg.contains(what), "{text}: {msg}");
    }
    let (ok, msg) = check("media:\n  anchor: false\n  codecs: []\n", "off.yaml");
    assert!(
        ok,
        "media settings are not checked when anchoring is off: {msg}"
    );
}

#[test]
fn recording_and_announcement_keys_are_checked() {
    for (text, key, needle) in [
        ("recording:\n  format: mp3\n", "recording.format", "mp3"),
        ("recording:\n  layout: quad\n", "recording.layout", "quad"),
        (
            "recording:\n  format: wav-pcmu\n  rate: 16000\n",
            "recording.rate",
            "16000",
        ),
        (
            "recording:\n  index: \"mysql://x\"\n",
            "recording.index",
            "mysql",
        ),
        (
            "recording:\n  cold:\n    kind: s3\n",
            "recording.cold.bucket",
            "bucket",
        ),
        (
            "recording:\n  keys:\n    - {id: a}\n",
            "recording.keys[0]",
            "file or env",
        ),
        (
            "recording:\n  keys:\n    - {id: a, env: K}\n  current_key: b\n",
            "recording.current_key",
            "\"b\"",
        ),
        (
            "media:\n  announce:\n    \"1\": {file: /nonexistent/notice.wav}\n",
            "media.announce.1.file",
            "notice.wav",
        ),
        (
            "media:\n  anchor: false\nrecording:\n  enabled: true\n",
            "recording.enabled",
            "anchor",
        ),
    ] {
        let (ok, msg) = check(text, "rec.yaml");
        assert!(!ok, "{text}");
        assert!(
            msg.contains(&format!("{key}: ")) && msg.contains(needle) && msg.contains("rec.yaml:"),
            "{text} → {msg}"
        );
    }
}

#[test]
fn recording_keys_come_from_files_or_the_environment() {
    let dir = std::env::temp_dir().join(format!("crest-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("keys.yaml");
    std::fs::write(
        &cfg,
        format!(
            "recording:\n  hot_dir: \"{d}/hot\"\n  index: \"sqlite:{d}/index.db\"\n  cold: {{dir: \"{d}/cold\"}}\n  keys:\n    - {{id: k1, env: CREST_TEST_KEK}}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let list = |env: Option<&str>| {
        let mut c = crest();
        c.args(["recording", "list", "--config"]).arg(&cfg);
        c.env_remove("CREST_TEST_KEK");
        if let Some(v) = env {
            c.env("CREST_TEST_KEK", v);
        }
        c.output().unwrap()
    };
    let ok = list(Some(&"ab".repeat(32)));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("RECORDING"));
    let missing = list(None);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("$CREST_TEST_KEK"),
        "{missing:?}"
    );
    let short = list(Some("abcd"));
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("32 bytes"),
        "{short:?}"
    );
}
