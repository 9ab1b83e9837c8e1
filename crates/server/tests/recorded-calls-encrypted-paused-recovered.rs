//! Recording in a running `crest`: a call with real RTP (the caller sends 1 kHz, the callee
//! 600 Hz) is recorded in stereo, sealed on disk (no audio in the clear), with a PCI pause
//! from the admin endpoint kept as marked silence; `crest recording get` decrypts it with
//! caller left and callee right. A second call is cut by kill -9: `verify` reports it open,
//! the restarted crest recovers it to its last chunk. Then `crest keys rotate` re-wraps both
//! data keys (playback needs only the new key) and `crest recording tier` moves both to the
//! cold tier, where `verify --all` and `get` still work. The call detail record keeps each
//! leg's codec and quality (`crest cdr`). SIGTERM during a recorded call: the recording is
//! closed before crest exits; that call is recorded in Opus (Ogg) by the second crest's
//! configuration.

mod common;
#[path = "common/peer.rs"]
mod peer;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use crest_media::codec::CodecKind;
use peer::*;

const PCMU: &str = "a=rtpmap:0 PCMU/8000\r\n";

fn ok(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{s}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

fn recording_yaml(data: &Path, current: &str, keys: &[&str], cold_after_days: u32) -> String {
    let mut y = format!(
        "recording:\n  enabled: true\n  cdr: true\n  chunk_secs: 1\n  hot_dir: \"{d}/hot\"\n  index: \"sqlite:{d}/index.db\"\n  cold:\n    dir: \"{d}/cold\"\n  current_key: {current}\n  policy:\n    cold_after_days: {cold_after_days}\n  keys:\n",
        d = data.display()
    );
    for k in keys {
        y.push_str(&format!(
            "    - {{id: {k}, file: \"{}/{k}.hex\"}}\n",
            data.display()
        ));
    }
    y
}

fn start(name: &str, callee_port: u16, range: u16, recording: &str) -> Crest {
    Crest::start_with(
        name,
        &format!(
            "  routes:\n    - {{number: \"2000\", uri: \"sip:127.0.0.1:{callee_port}\", public: true}}\n"
        ),
        &format!(
            "media:\n  port_min: {range}\n  port_max: {}\n{recording}",
            range + 99
        ),
    )
}

/// A stereo 16-bit WAV's left and right channels.
#[test]
fn recorded_calls_are_sealed_paused_recovered_rotated_and_tiered() {
    let data = scratch_dir("recording-data");
    std::fs::write(data.join("k1.hex"), "11".repeat(32)).unwrap();
    std::fs::write(data.join("k2.hex"), "22".repeat(32)).unwrap();
    let callee = Phone::new("127.0.0.1:9".parse().unwrap());
    let callee_port = callee.port();
    let rec_k1 = recording_yaml(&data, "k1", &["k1"], 30);
    let crest = start("recording", callee_port, 43000, &rec_k1);
    let config = crest.dir.join("crest.yaml");

    // Call 1: one second of talk, one second paused (card number), one second of talk.
    let mut call = place(&crest, callee, ("0", PCMU), (CodecKind::Pcmu, 0, "0", PCMU));
    let call1 = call.caller.call_id.clone();
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    let agent = crest.token("agent-1", "agent");
    let (status, _, _) = crest.http(
        "POST",
        &format!("/api/v1/calls/{call1}/recording/pause"),
        Some(&agent),
        Some(r#"{"reason": "card number"}"#),
    );
    assert_eq!(status, 200);
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    let (status, _, _) = crest.http(
        "POST",
        &format!("/api/v1/calls/{call1}/recording/resume"),
        Some(&agent),
        None,
    );
    assert_eq!(status, 200);
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    call.caller.bye();
    call.callee.answer("BYE", None);
    wait_for("recording 1 closed", || {
        crest.metric("crest_recordings_completed_total") == 1
    });
    assert_eq!(crest.metric("crest_recordings_active"), 0);
    assert!(crest.metric("crest_recording_bytes_written_total") > 40_000);

    // The call detail record: both legs, their codec and quality.
    let cdr = ok(&crest_cli(&config, &["cdr", &call1]));
    let legs: Vec<&str> = cdr.lines().skip(1).collect();
    assert_eq!(legs.len(), 2, "{cdr}");
    for (leg, line) in ["A", "B"].iter().zip(&legs) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (f[0], f[1], f[2], f[5]),
            (call1.as_str(), "2000", *leg, "PCMU"),
            "{cdr}"
        );
        assert!(f[6].parse::<u64>().unwrap() >= 120, "{cdr}");
        assert!(f[10].parse::<f64>().unwrap() > 4.0, "MOS {cdr}");
    }

    // On disk: sealed, no WAV header or audio in the clear.
    let hot: Vec<_> = std::fs::read_dir(data.join("hot")).unwrap().collect();
    assert_eq!(hot.len(), 1);
    let sealed = std::fs::read(hot[0].as_ref().unwrap().path()).unwrap();
    assert!(sealed.starts_with(b"CRESTREC"));
    assert!(!sealed.windows(4).any(|w| w == b"RIFF" || w == b"data"));

    let out1 = data.join("call1.wav");
    let report = ok(&crest_cli(
        &config,
        &["recording", "get", &call1, "--out", out1.to_str().unwrap()],
    ));
    assert!(report.contains("paused at"), "{report}");
    assert!(report.contains("card number"), "{report}");
    let wav1 = std::fs::read(&out1).unwrap();
    let (left, right) = channels(&wav1);
    let secs = left.len() as f64 / 8000.0;
    assert!((2.6..=3.4).contains(&secs), "{secs} s recorded");
    // First second: caller 1 kHz on the left, callee 600 Hz on the right.
    assert_eq!(which_tone(&left[2000..6000]), Some(1000));
    assert_eq!(which_tone(&right[2000..6000]), Some(600));
    // The paused second is silence, exactly.
    let mid = left.len() / 2;
    assert!(left[mid - 2000..mid + 2000].iter().all(|&s| s == 0.0));
    assert!(right[mid - 2000..mid + 2000].iter().all(|&s| s == 0.0));
    // And the last second is audio again.
    let n = left.len();
    assert_eq!(which_tone(&left[n - 5000..n - 1000]), Some(1000));
    assert_eq!(which_tone(&right[n - 5000..n - 1000]), Some(600));

    // Call 2: cut by kill -9 after 2.5 s.
    let mut call = place(
        &crest,
        call.callee,
        ("0", PCMU),
        (CodecKind::Pcmu, 0, "0", PCMU),
    );
    let call2 = call.caller.call_id.clone();
    assert_ne!(call1, call2);
    talk(&mut call, 2.5, Some(1000.0), Some(600.0));
    drop(crest); // SIGKILL
    let v = crest_cli(&config, &["recording", "verify", &call2]);
    assert!(!v.status.success());
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("still open"),
        "{v:?}"
    );

    // The restarted crest recovers it.
    // The restarted crest records in Opus (Ogg) at 16 kHz; the recovery of call 2 follows the
    // recording's own format (WAV).
    let crest = start(
        "recording-2",
        callee_port,
        43200,
        &format!("{rec_k1}  format: opus\n  rate: 16000\n"),
    );
    assert!(crest.log().contains("recovered"), "{}", crest.log());
    let config = crest.dir.join("crest.yaml");
    let all = ok(&crest_cli(&config, &["recording", "verify", "--all"]));
    assert!(
        all.contains("2 recordings checked, 0 with problems"),
        "{all}"
    );
    let list = ok(&crest_cli(&config, &["recording", "list"]));
    assert!(
        list.contains("recovered") && list.contains("complete"),
        "{list}"
    );
    let out2 = data.join("call2.wav");
    ok(&crest_cli(
        &config,
        &["recording", "get", &call2, "--out", out2.to_str().unwrap()],
    ));
    let (left, right) = channels(&std::fs::read(&out2).unwrap());
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (1.0..=2.6).contains(&secs),
        "{secs} s kept up to the last chunk"
    );
    assert_eq!(which_tone(&left[2000..6000]), Some(1000));
    assert_eq!(which_tone(&right[2000..6000]), Some(600));

    // Rotation to k2, then playback with k2 alone.
    let rotate_cfg = data.join("rotate.yaml");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &rotate_cfg,
        base.replace(&rec_k1, &recording_yaml(&data, "k2", &["k1", "k2"], 30)),
    )
    .unwrap();
    let r = ok(&crest_cli(&rotate_cfg, &["keys", "rotate"]));
    assert_eq!(r, "2 data keys re-wrapped\n");
    let k2_only = data.join("k2.yaml");
    std::fs::write(
        &k2_only,
        base.replace(&rec_k1, &recording_yaml(&data, "k2", &["k2"], 0)),
    )
    .unwrap();
    let again = data.join("call1-k2.wav");
    ok(&crest_cli(
        &k2_only,
        &["recording", "get", &call1, "--out", again.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&again).unwrap(), wav1);

    // Tiering: with cold_after_days 0 both move; the cold copies verify and play.
    let t = ok(&crest_cli(&k2_only, &["recording", "tier"]));
    assert!(t.starts_with("moved 2 to cold"), "{t}");
    assert_eq!(std::fs::read_dir(data.join("hot")).unwrap().count(), 0);
    let all = ok(&crest_cli(&k2_only, &["recording", "verify", "--all"]));
    assert!(all.contains("OK (cold tier)"), "{all}");
    let cold = data.join("call1-cold.wav");
    ok(&crest_cli(
        &k2_only,
        &["recording", "get", &call1, "--out", cold.to_str().unwrap()],
    ));
    assert_eq!(std::fs::read(&cold).unwrap(), wav1);

    // Crypto-shredding: the data key goes, the ciphertext can never be played again.
    let s = ok(&crest_cli(&k2_only, &["recording", "shred", &call2]));
    assert!(s.contains("data key deleted"), "{s}");
    let g = crest_cli(
        &k2_only,
        &[
            "recording",
            "get",
            &call2,
            "--out",
            data.join("x.wav").to_str().unwrap(),
        ],
    );
    assert!(!g.status.success());
    assert!(
        String::from_utf8_lossy(&g.stderr).contains("shredded"),
        "{g:?}"
    );

    // SIGTERM during a recorded call: the call goes on to its end, its recording is closed
    // (not left for recovery), then crest exits 0.
    let mut call = place(
        &crest,
        call.callee,
        ("0", PCMU),
        (CodecKind::Pcmu, 0, "0", PCMU),
    );
    let call3 = call.caller.call_id.clone();
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    let mut crest = crest;
    let term = Command::new("kill")
        .args(["-TERM", &crest.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    talk(&mut call, 1.0, Some(1000.0), Some(600.0));
    call.caller.bye();
    call.callee.answer("BYE", None);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = crest.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "crest did not exit: {}",
            crest.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", crest.log());
    assert!(crest.log().contains("recordings closed"), "{}", crest.log());
    // This crest still wrapped with k1 (its configuration): the ring with both keys opens it.
    let list = ok(&crest_cli(&rotate_cfg, &["recording", "list"]));
    let row = list
        .lines()
        .find(|l| l.contains(&call3))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("complete"), "{row}");
    let v = ok(&crest_cli(&rotate_cfg, &["recording", "verify", &call3]));
    assert!(v.contains("0 with problems"), "{v}");
    assert!(row.contains("opus/stereo"), "{row}");
    let out3 = data.join("call3.opus");
    ok(&crest_cli(
        &rotate_cfg,
        &["recording", "get", &call3, "--out", out3.to_str().unwrap()],
    ));
    let ogg = std::fs::read(&out3).unwrap();
    assert!(ogg.starts_with(b"OggS"), "an Ogg stream");
    assert!(
        ogg.windows(8).any(|w| w == b"OpusHead"),
        "with its Opus header"
    );
}
