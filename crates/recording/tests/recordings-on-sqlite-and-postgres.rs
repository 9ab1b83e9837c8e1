//! The recording service end to end against both index backends: real audio (the A-law
//! speech sipp ships, /usr/share/sip-tester/g711a.pcap) recorded, sealed, closed, decrypted
//! bit-exact; each kind of damage named; key rotation then playback; crypto-shredding; a crash
//! while writing, then recovery; moves to the cold tier with a crash after every step and a
//! fault injected at every cold-tier call; retention; call detail records.
//!
//! PostgreSQL: `CREST_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! each test makes its own database and drops it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crest_media::bridge::Side;
use crest_recording::{
    Format, HotTier, Index, Kek, KeyError, KeyRing, Layout, MoveStep, NewRecording, OpenError,
    Policy, Recorder, RecorderConfig, RecordingRow, Recordings, State, StoreError, Tier, cold_path,
};
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use sha2::{Digest as _, Sha256};

/// Which cold-tier call fails next.
const FAIL_NONE: u8 = 0;
const FAIL_PUT: u8 = 1;
const FAIL_GET: u8 = 2;
const CORRUPT_PUT: u8 = 3;

/// A cold tier that fails or corrupts on command.
#[derive(Debug)]
struct Faulty {
    inner: LocalFileSystem,
    fault: AtomicU8,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("faulty")
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: "injected fault".into(),
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match self.fault.load(Ordering::SeqCst) {
            FAIL_PUT => Err(injected()),
            CORRUPT_PUT => {
                let mut b: Vec<u8> = payload.iter().flat_map(|c| c.to_vec()).collect();
                let n = b.len();
                b[n / 2] ^= 1;
                self.inner.put_opts(location, b.into(), opts).await
            }
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if self.fault.load(Ordering::SeqCst) == FAIL_GET {
            return Err(injected());
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

struct Setup {
    rec: Recordings,
    cold: Arc<Faulty>,
    _dir: tempfile::TempDir,
    drop_db: Option<(String, String)>,
}

fn kek(id: &str, b: u8) -> Kek {
    Kek::new(id, &[b; 32]).unwrap()
}

fn ring(current: &str, keys: Vec<Kek>) -> Arc<KeyRing> {
    Arc::new(KeyRing::new(current, keys).unwrap())
}

fn postgres_admin() -> String {
    std::env::var("CREST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn index_url(backend: &str, dir: &std::path::Path) -> (String, Option<(String, String)>) {
    if backend == "sqlite" {
        return (format!("sqlite:{}", dir.join("index.db").display()), None);
    }
    let admin = postgres_admin();
    let name = format!(
        "crest_rec_{}",
        crest_recording::RecordingId::generate().unwrap()
    );
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("PostgreSQL at CREST_TEST_POSTGRES (scripts/setup.sh starts it)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').unwrap().0;
    (format!("{base}/{name}"), Some((admin, name)))
}

async fn setup(backend: &str, keys: Arc<KeyRing>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (url, drop_db) = index_url(backend, dir.path()).await;
    let index = Index::connect(&url).await.unwrap();
    std::fs::create_dir_all(dir.path().join("cold")).unwrap();
    let cold = Arc::new(Faulty {
        inner: LocalFileSystem::new_with_prefix(dir.path().join("cold")).unwrap(),
        fault: AtomicU8::new(FAIL_NONE),
    });
    let hot = HotTier::new(dir.path().join("hot")).unwrap();
    Setup {
        rec: Recordings::new(keys, hot, cold.clone(), index),
        cold,
        _dir: dir,
        drop_db,
    }
}

impl Setup {
    /// The same files and index under another key ring (a restart with new configuration).
    fn with_keys(&self, keys: Arc<KeyRing>) -> Recordings {
        Recordings::new(
            keys,
            self.rec.hot().clone(),
            self.cold.clone(),
            self.rec.index().clone(),
        )
    }

    async fn teardown(self) {
        let Self { rec, drop_db, .. } = self;
        drop(rec);
        if let Some((admin, name)) = drop_db {
            let pool = sqlx::PgPool::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
    }
}

/// The A-law speech in sipp's g711a.pcap, decoded: real telephone audio, 8 kHz.
fn real_audio() -> Vec<i16> {
    let pcap = std::fs::read("/usr/share/sip-tester/g711a.pcap")
        .expect("sipp's g711a.pcap (scripts/setup.sh installs sip-tester)");
    let mut pcm = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + len];
        at += 16 + len;
        // Ethernet (14) + IPv4 (IHL) + UDP (8) + RTP (12).
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let rtp = &frame[14 + ihl + 8..];
        if rtp.len() > 12 && rtp[1] & 0x7f == 8 {
            pcm.extend(
                rtp[12..]
                    .iter()
                    .map(|&c| crest_media::g711::alaw_to_linear(c)),
            );
        }
    }
    assert!(pcm.len() > 8000 * 5, "{} samples", pcm.len());
    pcm
}

fn call(id: &str, started_ms: i64) -> NewRecording {
    NewRecording {
        call_id: id.into(),
        legs: "left=caller right=agent".into(),
        agent: Some("alice".into()),
        queue: Some("orders".into()),
        started_ms,
        format: Format::WavPcm,
        layout: Layout::Stereo,
    }
}

/// Records `caller` on the left and the reversed audio on the right, in 20 ms frames;
/// `close` false stops as a crash would (after `frames` frames, nothing more written).
async fn record(
    rec: &Recordings,
    n: &NewRecording,
    caller: &[i16],
    frames: usize,
    close: bool,
) -> RecordingRow {
    let started = rec.start(n).await.unwrap();
    let mut file = started.file;
    let t0 = Instant::now();
    let cfg = RecorderConfig {
        chunk_interval: Duration::from_millis(500),
        ..RecorderConfig::default()
    };
    let mut r = Recorder::new(t0, &started.id, &started.key, cfg).unwrap();
    let agent: Vec<i16> = caller.iter().rev().copied().collect();
    let mut hash = Sha256::new();
    let mut size = 0u64;
    for (k, (a, b)) in caller
        .chunks(160)
        .zip(agent.chunks(160))
        .take(frames)
        .enumerate()
    {
        let now = t0 + Duration::from_millis(20 * k as u64);
        r.handle_timeout(now);
        r.handle_audio(now, Side::A, 8000, a);
        r.handle_audio(now, Side::B, 8000, b);
        while let Some(w) = r.poll_write() {
            file.append(&w).unwrap();
            hash.update(&w);
            size += w.len() as u64;
        }
    }
    if close {
        let s = r.finish(t0 + Duration::from_millis(20 * frames as u64));
        let w = r.poll_write().unwrap();
        file.append(&w).unwrap();
        hash.update(&w);
        size += w.len() as u64;
        rec.close(&started.id, &s, &hex::encode(hash.finalize()), size)
            .await
            .unwrap();
    }
    rec.index().get(&started.id).await.unwrap().unwrap()
}

fn stereo(wav: &[u8]) -> (Vec<i16>, Vec<i16>) {
    let data = wav.windows(4).position(|w| w == b"data").unwrap() + 8;
    let s: Vec<i16> = wav[data..]
        .chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    (
        s.iter().step_by(2).copied().collect(),
        s.iter().skip(1).step_by(2).copied().collect(),
    )
}

async fn round_trip_damage_and_keys(backend: &str) {
    let s = setup(backend, ring("k1", vec![kek("k1", 1)])).await;
    let audio = real_audio();
    let frames = audio.len() / 160;
    let row = record(&s.rec, &call("call-1@test", 1_000), &audio, frames, true).await;
    assert_eq!(row.state, State::Complete);
    assert_eq!(row.duration_ms, Some(frames as i64 * 20));
    assert_eq!(row.key_id.as_deref(), Some("k1"));
    assert_eq!(
        s.rec.index().by_call("call-1@test").await.unwrap(),
        std::slice::from_ref(&row)
    );

    // Bit-exact, caller left and agent right; the WAV has its real sizes.
    let (wav, marks) = s.rec.plaintext(&row).await.unwrap();
    assert!(marks.is_empty());
    let (left, right) = stereo(&wav);
    assert_eq!(left, audio[..frames * 160]);
    let agent: Vec<i16> = audio.iter().rev().copied().collect();
    assert_eq!(right, agent[..frames * 160]);
    assert!(s.rec.verify(&row).await.is_empty());

    // Each kind of damage has its own error.
    let path = s.rec.hot().path(&row.id);
    let good = std::fs::read(&path).unwrap();
    let chunk_len = u32::from_be_bytes(good[37..41].try_into().unwrap()) as usize + 4;
    let damage = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = good.clone();
        f(&mut d);
        std::fs::write(&path, &d).unwrap();
    };
    damage(&|d| d[37 + chunk_len + 100] ^= 0x01);
    let e = s.rec.plaintext(&row).await.unwrap_err();
    assert!(
        matches!(e, StoreError::Open(OpenError::Tampered { chunk: 1, .. })),
        "{e}"
    );
    let v = s.rec.verify(&row).await;
    assert_eq!(v.len(), 2, "{v:?}"); // the hash and the chunk
    assert!(v.iter().all(|p| p.tier == Some(Tier::Hot)));

    damage(&|d| d.truncate(d.len() - 30));
    let e = s.rec.plaintext(&row).await.unwrap_err();
    assert!(
        matches!(e, StoreError::Open(OpenError::PartialChunk { .. })),
        "{e}"
    );
    damage(&|d| {
        let (a, b) = (37, 37 + chunk_len);
        let first = d[a..b].to_vec();
        let second = d[b..b + chunk_len].to_vec();
        d[a..b].copy_from_slice(&second);
        d[b..b + chunk_len].copy_from_slice(&first);
    });
    let e = s.rec.plaintext(&row).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Open(OpenError::Reordered {
                position: 0,
                chunk: 1
            })
        ),
        "{e}"
    );
    std::fs::write(&path, &good).unwrap();

    // A wrong KEK under the right id.
    let wrong = s.with_keys(ring("k1", vec![kek("k1", 9)]));
    let e = wrong.plaintext(&row).await.unwrap_err();
    assert!(
        matches!(e, StoreError::Key(KeyError::WrongKey(ref k)) if k == "k1"),
        "{e}"
    );

    // Rotation: k2 becomes current; the data keys are re-wrapped, the audio untouched.
    let rotated = s.with_keys(ring("k2", vec![kek("k1", 1), kek("k2", 2)]));
    assert_eq!(rotated.rotate(5_000).await.unwrap(), 1);
    assert_eq!(rotated.rotate(5_001).await.unwrap(), 0);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    let row = s.rec.index().get(&row.id).await.unwrap().unwrap();
    assert_eq!(row.key_id.as_deref(), Some("k2"));
    // k1 can now be retired: playback needs only k2.
    let only_k2 = s.with_keys(ring("k2", vec![kek("k2", 2)]));
    assert_eq!(only_k2.plaintext(&row).await.unwrap().0, wav);
    let hist = s.rec.index().history(&row.id).await.unwrap();
    assert_eq!(hist[0].1, "rewrapped");
    assert_eq!(hist[0].2, "k1 -> k2");

    // Call detail records sit beside the recordings.
    let leg = |l: &str, rtt| crest_recording::CallLeg {
        call_id: "call-1@test".into(),
        number: "2000".into(),
        leg: l.into(),
        ended_ms: 9_000,
        duration_ms: 7_000,
        codec: "PCMU".into(),
        packets: 350,
        lost: 2,
        jitter_us: 1_500,
        rtt_us: rtt,
        mos_milli: 4_380,
    };
    let (a, b) = (leg("A", Some(12_000)), leg("B", None));
    s.rec.index().add_call_leg(&a).await.unwrap();
    s.rec.index().add_call_leg(&b).await.unwrap();
    assert_eq!(
        s.rec.index().call_legs(Some("call-1@test")).await.unwrap(),
        [a.clone(), b]
    );
    assert!(
        s.rec
            .index()
            .call_legs(Some("other"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.rec.index().call_legs(None).await.unwrap().len(), 2);
    // And the journeys of calls Crest answered itself: one served, one who hung up early.
    let served = crest_recording::CallJourney {
        call_id: "call-2@test".into(),
        number: "4000".into(),
        ended_ms: 12_000,
        duration_ms: 95_000,
        flow: Some("main".into()),
        flow_version: Some("2026-12-01".into()),
        path: "hours>welcome>main_menu>order_queue".into(),
        intent: Some("order".into()),
        queue: Some("order-status".into()),
        agent: Some("alice".into()),
        wait_ms: Some(41_000),
        outcome: "answered".into(),
        ended_in: "bridged".into(),
    };
    let early = crest_recording::CallJourney {
        call_id: "call-3@test".into(),
        ended_ms: 10_000,
        duration_ms: 2_000,
        path: String::new(),
        flow: None,
        flow_version: None,
        intent: None,
        queue: None,
        agent: None,
        wait_ms: None,
        outcome: "abandoned-answering".into(),
        ended_in: "answering".into(),
        ..served.clone()
    };
    s.rec.index().add_call_journey(&served).await.unwrap();
    s.rec.index().add_call_journey(&early).await.unwrap();
    assert_eq!(
        s.rec.index().call_journeys(None).await.unwrap(),
        [early.clone(), served.clone()],
        "by end time, NULLs kept"
    );
    assert_eq!(
        s.rec
            .index()
            .call_journeys(Some("call-2@test"))
            .await
            .unwrap(),
        std::slice::from_ref(&served)
    );
    // Searched by agent, queue, number and time, newest first.
    let search = |f: crest_recording::JourneyFilter| {
        let idx = s.rec.index();
        async move { idx.search_journeys(&f).await.unwrap() }
    };
    let all = crest_recording::JourneyFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(search(all.clone()).await, [served.clone(), early.clone()]);
    let by_alice = crest_recording::JourneyFilter {
        agent: Some("alice".into()),
        queue: Some("order-status".into()),
        ..all.clone()
    };
    assert_eq!(search(by_alice).await, std::slice::from_ref(&served));
    let before_11s = crest_recording::JourneyFilter {
        number: Some("4000".into()),
        from_ms: Some(9_000),
        to_ms: Some(11_000),
        ..all.clone()
    };
    assert_eq!(search(before_11s).await, std::slice::from_ref(&early));
    let one = crest_recording::JourneyFilter { limit: 1, ..all };
    assert_eq!(search(one).await, [served]);

    // Agent edits: the last one per agent counts; a removal keeps no entry.
    let edit = |name: &str, spec: Option<&str>, at: i64| crest_recording::AgentEdit {
        name: name.into(),
        spec: spec.map(str::to_owned),
        updated_ms: at,
        updated_by: "ops".into(),
    };
    let idx = s.rec.index();
    idx.put_agent_edit(&edit("carol", Some(r#"{"pool":"a"}"#), 1))
        .await
        .unwrap();
    idx.put_agent_edit(&edit("dave", Some(r#"{"pool":"b"}"#), 2))
        .await
        .unwrap();
    idx.put_agent_edit(&edit("carol", None, 3)).await.unwrap();
    assert_eq!(
        idx.agent_edits().await.unwrap(),
        [
            edit("dave", Some(r#"{"pool":"b"}"#), 2),
            edit("carol", None, 3)
        ]
    );

    // Survey scores, from a time on.
    let csat = |id: &str, at: i64, score: i64| crest_recording::CsatResponse {
        call_id: id.into(),
        ended_ms: at,
        queue: Some("refund".into()),
        agent: Some("alice".into()),
        score,
    };
    idx.add_csat(&csat("c1", 1_000, 5)).await.unwrap();
    idx.add_csat(&csat("c2", 2_000, 2)).await.unwrap();
    assert_eq!(
        idx.csat_responses(1_500).await.unwrap(),
        [csat("c2", 2_000, 2)]
    );
    assert_eq!(idx.csat_responses(0).await.unwrap().len(), 2);

    // Crypto-shredding.
    only_k2.shred(&row.id, 6_000).await.unwrap();
    let row = s.rec.index().get(&row.id).await.unwrap().unwrap();
    assert_eq!(row.state, State::Shredded);
    let e = only_k2.plaintext(&row).await.unwrap_err();
    assert!(matches!(e, StoreError::Key(KeyError::Shredded)), "{e}");
    s.teardown().await;
}

async fn crash_then_recovery(backend: &str) {
    let s = setup(backend, ring("k1", vec![kek("k1", 1)])).await;
    let audio = real_audio();
    // 3.3 s recorded with a chunk every 0.5 s, then the process dies: no final chunk, and a
    // torn write at the end.
    let row = record(&s.rec, &call("crash@test", 1_000), &audio, 165, false).await;
    assert_eq!(row.state, State::Recording);
    let path = s.rec.hot().path(&row.id);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0, 0, 1, 0, 9, 9, 9]).unwrap();
    drop(f);
    let v = s.rec.verify(&row).await;
    assert!(v[0].what.contains("still open"), "{v:?}");

    let out = s.rec.recover_open(9_000).await.unwrap();
    assert_eq!(out.len(), 1);
    let ms = *out[0].1.as_ref().unwrap();
    // Everything up to the last chunk boundary (3.0 s) is kept.
    assert_eq!(ms, 3000);
    let row = s.rec.index().get(&row.id).await.unwrap().unwrap();
    assert_eq!(row.state, State::Recovered);
    assert_eq!(row.duration_ms, Some(3000));
    let (wav, _) = s.rec.plaintext(&row).await.unwrap();
    let (left, _) = stereo(&wav);
    assert_eq!(left, audio[..24_000]);
    assert!(s.rec.verify(&row).await.is_empty());
    let hist = s.rec.index().history(&row.id).await.unwrap();
    assert_eq!(hist[0].1, "recovered");
    assert!(hist[0].2.contains("cut 7 bytes"), "{}", hist[0].2);
    // Nothing left open.
    assert!(s.rec.recover_open(9_001).await.unwrap().is_empty());
    s.teardown().await;
}

async fn tier_moves_survive_crashes_and_faults(backend: &str) {
    let s = setup(backend, ring("k1", vec![kek("k1", 1)])).await;
    let audio = real_audio();
    let day = 86_400_000;
    let policy = Policy {
        cold_after_ms: Some(7 * day),
        hot_max_bytes: None,
        delete_after_ms: Some(90 * day),
    };
    let now = 100 * day;
    let steps = [
        MoveStep::Copy,
        MoveStep::Verify,
        MoveStep::Record,
        MoveStep::DeleteHot,
    ];
    // A crash after each step: a fresh policy pass (the restarted process) finishes the job.
    for crash_after in 0..steps.len() {
        let row = record(&s.rec, &call("move@test", 50 * day), &audio, 100, true).await;
        let (wav, _) = s.rec.plaintext(&row).await.unwrap();
        let mut m = s.rec.mover(row.clone(), now);
        for step in &steps[..=crash_after] {
            assert_eq!(m.step().await.unwrap(), Some(*step));
        }
        drop(m);
        let r = s.rec.apply_policy(now, &policy).await.unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        let row = s.rec.index().get(&row.id).await.unwrap().unwrap();
        assert_eq!(row.tier, Tier::Cold, "crash after {:?}", steps[crash_after]);
        assert!(!s.rec.hot().contains(&row.id));
        assert_eq!(s.rec.plaintext(&row).await.unwrap().0, wav);
        assert!(s.rec.verify(&row).await.is_empty());
    }
    // Faults at each cold-tier call: nothing moves, the hot copy stays the one of record.
    for fault in [FAIL_PUT, FAIL_GET, CORRUPT_PUT] {
        let row = record(&s.rec, &call("fault@test", 60 * day), &audio, 100, true).await;
        s.cold.fault.store(fault, Ordering::SeqCst);
        let r = s.rec.apply_policy(now, &policy).await.unwrap();
        s.cold.fault.store(FAIL_NONE, Ordering::SeqCst);
        assert_eq!(r.failed.len(), 1, "fault {fault}: {r:?}");
        assert!(r.moved.is_empty());
        let still = s.rec.index().get(&row.id).await.unwrap().unwrap();
        assert_eq!(still.tier, Tier::Hot);
        assert!(s.rec.hot().contains(&row.id));
        assert!(s.rec.plaintext(&still).await.is_ok());
        if fault == CORRUPT_PUT {
            // The bad copy was removed.
            assert!(s.cold.head(&cold_path(&row.id)).await.is_err());
        }
        // The next pass, with the fault gone, moves it.
        let r = s.rec.apply_policy(now, &policy).await.unwrap();
        assert_eq!(r.moved, [row.id]);
    }
    // A corrupt cold copy is reported by verify; retention deletes from both tiers.
    let rows = s.rec.index().all().await.unwrap();
    assert_eq!(rows.len(), 7);
    let victim = &rows[0];
    let p = cold_path(&victim.id);
    let mut b = s
        .cold
        .get(&p)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    b[200] ^= 0xff;
    s.cold.put(&p, b.into()).await.unwrap();
    let v = s.rec.verify(victim).await;
    assert!(
        v.iter().all(|p| p.tier == Some(Tier::Cold)) && v.len() == 2,
        "{v:?}"
    );

    // Recent recordings stay hot; the hot-size cap moves the oldest first.
    let recent_a = record(&s.rec, &call("recent-a@test", now - day), &audio, 100, true).await;
    let recent_b = record(
        &s.rec,
        &call("recent-b@test", now - 1000),
        &audio,
        100,
        true,
    )
    .await;
    let r = s.rec.apply_policy(now, &policy).await.unwrap();
    assert!(r.moved.is_empty());
    let capped = Policy {
        hot_max_bytes: Some(recent_b.size.unwrap() as u64),
        ..policy.clone()
    };
    let r = s.rec.apply_policy(now, &capped).await.unwrap();
    assert_eq!(r.moved, [recent_a.id]);

    let r = s.rec.apply_policy(200 * day, &policy).await.unwrap();
    assert_eq!(r.deleted.len(), 9, "{r:?}");
    assert!(s.rec.index().all().await.unwrap().is_empty());
    assert!(s.rec.hot().list().unwrap().is_empty());
    let mut left = s.cold.list(None);
    assert!(futures::StreamExt::next(&mut left).await.is_none());
    s.teardown().await;
}

#[tokio::test]
async fn sqlite_round_trip_damage_and_keys() {
    round_trip_damage_and_keys("sqlite").await;
}

#[tokio::test]
async fn postgres_round_trip_damage_and_keys() {
    round_trip_damage_and_keys("postgres").await;
}

#[tokio::test]
async fn sqlite_crash_then_recovery() {
    crash_then_recovery("sqlite").await;
}

#[tokio::test]
async fn postgres_crash_then_recovery() {
    crash_then_recovery("postgres").await;
}

#[tokio::test]
async fn sqlite_tier_moves_survive_crashes_and_faults() {
    tier_moves_survive_crashes_and_faults("sqlite").await;
}

#[tokio::test]
async fn postgres_tier_moves_survive_crashes_and_faults() {
    tier_moves_survive_crashes_and_faults("postgres").await;
}
