//! Concurrent recordings in real time through the production path of the server's recorder
//! thread: `Recordings::start` (index row on SQLite, hot file), then every 20 ms one frame per
//! leg per call into its `Recorder`, sealed chunks appended and fdatasynced, then `close`.
//! Reports the CPU it took (share of one core, per 100 calls) and the write amplification
//! (bytes the kernel wrote to storage for the process ÷ sealed bytes, and sealed ÷ PCM).
//!
//! `cargo run --release -p crest-recording --example concurrent_recordings -- \
//!     [--calls 1000] [--secs 30] [--format wav|wav-pcmu|opus] [--dir DIR]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_media::bridge::Side;
use crest_recording::{
    Format, HotTier, Index, Kek, KeyRing, Layout, NewRecording, Recorder, RecorderConfig,
    Recordings,
};
use sha2::{Digest as _, Sha256};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Process CPU time (user + system) from /proc/self/stat, seconds.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

/// Bytes this process caused to be written to storage.
fn storage_writes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: ").and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

struct Call {
    id: crest_recording::RecordingId,
    r: Recorder,
    file: crest_recording::HotFile,
    hash: Sha256,
    size: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let calls: usize = arg(&args, "--calls").map_or(1000, |v| v.parse().unwrap());
    let secs: u64 = arg(&args, "--secs").map_or(30, |v| v.parse().unwrap());
    let format = Format::from_name(&arg(&args, "--format").unwrap_or_else(|| "wav".into()))
        .expect("--format wav|wav-pcmu|wav-pcma|opus");
    let tmp = tempfile::tempdir().unwrap();
    let dir = arg(&args, "--dir").map_or_else(|| tmp.path().to_owned(), Into::into);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let keys = Arc::new(KeyRing::new("k", vec![Kek::new("k", &[9; 32]).unwrap()]).unwrap());
        std::fs::create_dir_all(dir.join("cold")).unwrap();
        let rec = Recordings::new(
            keys,
            HotTier::new(dir.join("hot")).unwrap(),
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.join("cold")).unwrap()),
            Index::connect(&format!("sqlite:{}", dir.join("index.db").display()))
                .await
                .unwrap(),
        );
        let rate = if format == Format::OggOpus { 16000 } else { 8000 };
        let cfg = RecorderConfig {
            format,
            layout: Layout::Stereo,
            rate,
            chunk_interval: Duration::from_secs(1),
            ..RecorderConfig::default()
        };
        let t0 = Instant::now();
        let (cpu0, io0) = (cpu_secs(), storage_writes());
        let mut all = Vec::with_capacity(calls);
        for i in 0..calls {
            let s = rec
                .start(&NewRecording {
                    call_id: format!("load-{i}@bench"),
                    legs: "left=caller right=agent".into(),
                    agent: None,
                    queue: None,
                    started_ms: 0,
                    format,
                    layout: Layout::Stereo,
                })
                .await
                .unwrap();
            let r = Recorder::new(Instant::now(), &s.id, &s.key, cfg.clone()).unwrap();
            all.push(Call {
                id: s.id,
                r,
                file: s.file,
                hash: Sha256::new(),
                size: 0,
            });
        }
        let start_cpu = cpu_secs() - cpu0;
        let a: Vec<i16> = (0..160).map(|i| ((i * 97) % 4000) as i16 - 2000).collect();
        let b: Vec<i16> = (0..160).map(|i| ((i * 31) % 3000) as i16 - 1500).collect();
        let (cpu1, io1) = (cpu_secs(), storage_writes());
        let run0 = Instant::now();
        let ticks = secs * 50;
        let mut late = Duration::ZERO;
        for k in 0..ticks {
            let due = run0 + Duration::from_millis(20 * k);
            let now = Instant::now();
            if now < due {
                std::thread::sleep(due - now);
            } else {
                late = late.max(now - due);
            }
            let now = Instant::now();
            for c in &mut all {
                c.r.handle_audio(now, Side::A, 8000, &a);
                c.r.handle_audio(now, Side::B, 8000, &b);
                c.r.handle_timeout(now);
                while let Some(w) = c.r.poll_write() {
                    c.file.append(&w).unwrap();
                    c.hash.update(&w);
                    c.size += w.len() as u64;
                }
            }
        }
        let elapsed = run0.elapsed().as_secs_f64();
        let (cpu2, io2) = (cpu_secs(), storage_writes());
        let mut sealed = 0;
        for mut c in all {
            let s = c.r.finish(Instant::now());
            let w = c.r.poll_write().unwrap();
            c.file.append(&w).unwrap();
            c.hash.update(&w);
            c.size += w.len() as u64;
            sealed += c.size;
            rec.close(&c.id, &s, &hex::encode(c.hash.finalize()), c.size)
                .await
                .unwrap();
        }
        let steady_cpu = cpu2 - cpu1;
        let pcm = (calls as u64) * ticks * 2 * 160 * 2;
        let share = steady_cpu / elapsed;
        println!("concurrent recordings: {calls} calls x {secs} s, format {}, chunk 1 s, fdatasync per chunk", format.name());
        println!("  start {calls} recordings (index rows + files): {:.2} s CPU, {:.2} s wall", start_cpu, t0.elapsed().as_secs_f64() - elapsed);
        println!("  steady state: {steady_cpu:.2} s CPU over {elapsed:.1} s = {:.1} % of one core; {:.2} % of one core per 100 calls", share * 100.0, share * 100.0 * 100.0 / calls as f64);
        println!("  worst tick lateness: {:.1} ms", late.as_secs_f64() * 1000.0);
        println!("  PCM in {:.1} MB, sealed {:.1} MB ({:.3}x), storage writes during the run {:.1} MB ({:.2}x the sealed bytes of that time); total with start {:.1} MB",
            pcm as f64 / 1e6,
            sealed as f64 / 1e6,
            sealed as f64 / pcm as f64,
            (io2 - io1) as f64 / 1e6,
            (io2 - io1) as f64 / (sealed as f64 * ticks as f64 / (ticks as f64 + 1.0)).max(1.0),
            (io2 - io0) as f64 / 1e6);
    });
}
