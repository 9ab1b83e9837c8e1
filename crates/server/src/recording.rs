//! Call recording in the server: the `recording:` section, the recorder thread that seals and
//! writes every recorded call, the tiering policy timer, and the `crest recording` and
//! `crest keys` commands.
//!
//! ```text
//!  call media task ── Begin / Audio(side, Arc<[i16]>) / End ──► recorder thread
//!   (listens to both legs)                                      Recorder → HotFile (fdatasync per chunk)
//!  admin /recording/pause|resume ── Pause / Resume ──────────►  Index (SQLite | PostgreSQL)
//!                                                               policy pass every interval → cold tier
//! ```
//!
//! The thread has its own single-threaded runtime for the index; file writes and syncs block
//! only it, never a media thread or the SIP core.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use crest_call::RecordFrom;
use crest_ids::CallId;
use crest_media::bridge::Side;
use crest_recording::{
    Format, HotFile, HotTier, Index, Kek, KeyRing, Layout, NewRecording, Policy, Recorder,
    RecorderConfig, RecordingId, RecordingRow, Recordings,
};
use object_store::ObjectStore;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// `recording:` in crest.yaml.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RecordingSection {
    /// Record calls.
    pub(crate) enabled: bool,
    /// Keep a call detail record (each leg's codec, packets, loss, jitter, RTT, MOS) of every
    /// anchored call in the index database, recorded or not.
    pub(crate) cdr: bool,
    /// Numbers (routes) whose calls are recorded; empty: every call.
    pub(crate) numbers: Vec<String>,
    /// Calls Crest answers itself (`ivr:`, `queue:`): recorded from the `bridge` to an agent
    /// or a transfer target, or from the `answer` (the IVR and the hold included).
    pub(crate) from: String,
    /// The longest an agent's PCI pause lasts before the recording resumes by itself.
    pub(crate) pci_limit_secs: u64,
    /// `wav` (16-bit PCM), `wav-pcmu`, `wav-pcma` or `opus` (Ogg).
    pub(crate) format: String,
    /// `stereo` (caller left, agent right) or `mono` (mixed).
    pub(crate) layout: String,
    /// Sample rate of the files: 8000, 16000 or 48000 (G.711: 8000).
    pub(crate) rate: u32,
    /// A chunk is sealed and synced at least this often: the most a crash can lose.
    pub(crate) chunk_secs: u64,
    /// The hot tier's directory.
    pub(crate) hot_dir: PathBuf,
    /// The cold tier.
    pub(crate) cold: ColdSection,
    /// The index: `sqlite:PATH` (embedded) or `postgres://user@host/db`.
    pub(crate) index: String,
    /// Key-encryption keys (64 hex digits each, from a file or an environment variable);
    /// empty: one key in `key_file`, made on first start.
    pub(crate) keys: Vec<KeySection>,
    /// The key that wraps new recordings' data keys (default: the first).
    pub(crate) current_key: Option<String>,
    /// With no `keys`: the file of the generated key.
    pub(crate) key_file: PathBuf,
    /// Tiering and retention.
    pub(crate) policy: PolicySection,
}

impl Default for RecordingSection {
    fn default() -> Self {
        Self {
            enabled: false,
            cdr: false,
            numbers: Vec::new(),
            from: "bridge".into(),
            pci_limit_secs: 600,
            format: "wav".into(),
            layout: "stereo".into(),
            rate: 8000,
            chunk_secs: 1,
            hot_dir: "data/recordings/hot".into(),
            cold: ColdSection::default(),
            index: "sqlite:data/recordings.db".into(),
            keys: Vec::new(),
            current_key: None,
            key_file: "data/recording-kek.hex".into(),
            policy: PolicySection::default(),
        }
    }
}

/// The cold tier: a local directory or an S3-compatible bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ColdSection {
    /// `local` or `s3`.
    pub(crate) kind: String,
    /// `local`: the directory.
    pub(crate) dir: PathBuf,
    /// `s3`: the bucket.
    pub(crate) bucket: Option<String>,
    /// `s3`: the endpoint (MinIO, Ceph …); AWS when unset.
    pub(crate) endpoint: Option<String>,
    /// `s3`: the region.
    pub(crate) region: Option<String>,
    /// `s3`: environment variables holding the credentials.
    pub(crate) access_key_id_env: Option<String>,
    /// See `access_key_id_env`.
    pub(crate) secret_access_key_env: Option<String>,
    /// `s3`: allow plain HTTP (a local MinIO).
    pub(crate) allow_http: bool,
}

impl Default for ColdSection {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            dir: "data/recordings/cold".into(),
            bucket: None,
            endpoint: None,
            region: None,
            access_key_id_env: None,
            secret_access_key_env: None,
            allow_http: false,
        }
    }
}

/// One key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct KeySection {
    /// The key id recorded with each recording it wraps.
    pub(crate) id: String,
    /// A file holding 64 hex digits.
    pub(crate) file: Option<PathBuf>,
    /// An environment variable holding 64 hex digits.
    pub(crate) env: Option<String>,
}

/// When recordings move to the cold tier and when they are deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PolicySection {
    /// Move recordings older than this many days to the cold tier.
    pub(crate) cold_after_days: Option<u64>,
    /// Move the oldest to the cold tier while the hot tier holds more than this (MB).
    pub(crate) hot_max_mb: Option<u64>,
    /// Delete recordings older than this many days (both tiers).
    pub(crate) delete_after_days: Option<u64>,
    /// How often the policy runs.
    pub(crate) interval_secs: u64,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            cold_after_days: Some(7),
            hot_max_mb: None,
            delete_after_days: Some(365),
            interval_secs: 3600,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// The recording settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) cdr: bool,
    numbers: BTreeSet<String>,
    from: RecordFrom,
    pub(crate) pci_limit: Duration,
    recorder: RecorderConfig,
    section: RecordingSection,
    policy: Policy,
}

impl Settings {
    /// Reads `recording:`; errors name the key.
    pub(crate) fn from_config(s: &RecordingSection) -> Result<Self, (String, String)> {
        let format = Format::from_name(&s.format).ok_or_else(|| {
            (
                "recording.format".to_owned(),
                format!(
                    "unknown format {:?} (wav, wav-pcmu, wav-pcma, opus)",
                    s.format
                ),
            )
        })?;
        let layout = match s.layout.as_str() {
            "stereo" => Layout::Stereo,
            "mono" => Layout::Mono,
            other => {
                return Err((
                    "recording.layout".into(),
                    format!("{other:?}: use stereo or mono"),
                ));
            }
        };
        format
            .check_rate(s.rate)
            .map_err(|e| ("recording.rate".to_owned(), e.to_string()))?;
        let from = match s.from.as_str() {
            "bridge" => RecordFrom::Bridge,
            "answer" => RecordFrom::Answer,
            other => {
                return Err((
                    "recording.from".into(),
                    format!("{other:?}: use bridge or answer"),
                ));
            }
        };
        if s.pci_limit_secs == 0 {
            return Err((
                "recording.pci_limit_secs".into(),
                "must be at least 1".into(),
            ));
        }
        if s.chunk_secs == 0 {
            return Err(("recording.chunk_secs".into(), "must be at least 1".into()));
        }
        if !(s.index.starts_with("sqlite:") || s.index.starts_with("postgres")) {
            return Err((
                "recording.index".into(),
                format!("{:?}: use sqlite:PATH or postgres://…", s.index),
            ));
        }
        match s.cold.kind.as_str() {
            "local" => {}
            "s3" if s.cold.bucket.is_some() => {}
            "s3" => return Err(("recording.cold.bucket".into(), "s3 needs a bucket".into())),
            other => {
                return Err((
                    "recording.cold.kind".into(),
                    format!("{other:?}: use local or s3"),
                ));
            }
        }
        for (i, k) in s.keys.iter().enumerate() {
            if k.id.is_empty() || k.file.is_some() == k.env.is_some() {
                return Err((
                    format!("recording.keys[{i}]"),
                    "give an id and one of file or env".into(),
                ));
            }
        }
        if let Some(c) = &s.current_key
            && !s.keys.iter().any(|k| &k.id == c)
        {
            return Err((
                "recording.current_key".into(),
                format!("no key with id {c:?} under recording.keys"),
            ));
        }
        let days = |d: Option<u64>| d.map(|d| d as i64 * DAY_MS);
        Ok(Self {
            enabled: s.enabled,
            cdr: s.cdr,
            numbers: s.numbers.iter().cloned().collect(),
            from,
            pci_limit: Duration::from_secs(s.pci_limit_secs),
            recorder: RecorderConfig {
                format,
                layout,
                rate: s.rate,
                chunk_interval: Duration::from_secs(s.chunk_secs),
                ..RecorderConfig::default()
            },
            policy: Policy {
                cold_after_ms: days(s.policy.cold_after_days),
                hot_max_bytes: s.policy.hot_max_mb.map(|m| m << 20),
                delete_after_ms: days(s.policy.delete_after_days),
            },
            section: s.clone(),
        })
    }

    /// Whether calls to `number` are recorded.
    pub(crate) fn records(&self, number: &str) -> bool {
        self.enabled && (self.numbers.is_empty() || self.numbers.contains(number))
    }

    /// From when a call to `number` that Crest answers itself is recorded.
    pub(crate) fn record_from(&self, number: &str) -> RecordFrom {
        if self.records(number) {
            self.from
        } else {
            RecordFrom::Never
        }
    }

    /// The key ring: configured keys, or the generated one.
    fn key_ring(&self) -> anyhow::Result<KeyRing> {
        let s = &self.section;
        if s.keys.is_empty() {
            let path = &s.key_file;
            if !path.exists() {
                let mut k = [0u8; 32];
                aws_lc_rs::rand::fill(&mut k).map_err(|_| anyhow::anyhow!("no random key"))?;
                write_secret(path, &hex::encode(k))
                    .with_context(|| format!("writing {}", path.display()))?;
                warn!(file = %path.display(), "generated a recording key-encryption key: back it up, or recordings cannot be played");
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Ok(KeyRing::new("local", vec![Kek::from_hex("local", &text)?])?);
        }
        let mut keys = Vec::new();
        for k in &s.keys {
            let text = match (&k.file, &k.env) {
                (Some(f), _) => std::fs::read_to_string(f)
                    .with_context(|| format!("recording key {:?}: {}", k.id, f.display()))?,
                (None, Some(v)) => {
                    std::env::var(v).with_context(|| format!("recording key {:?}: ${v}", k.id))?
                }
                (None, None) => unreachable!("checked in from_config"),
            };
            keys.push(Kek::from_hex(&k.id, &text)?);
        }
        let current = s
            .current_key
            .clone()
            .unwrap_or_else(|| s.keys[0].id.clone());
        Ok(KeyRing::new(&current, keys)?)
    }

    fn cold_store(&self) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let c = &self.section.cold;
        if c.kind == "local" {
            std::fs::create_dir_all(&c.dir)
                .with_context(|| format!("creating {}", c.dir.display()))?;
            return Ok(Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&c.dir)?,
            ));
        }
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(c.bucket.clone().unwrap_or_default())
            .with_allow_http(c.allow_http);
        if let Some(e) = &c.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &c.region {
            b = b.with_region(r);
        }
        for (var, set) in [(&c.access_key_id_env, 0), (&c.secret_access_key_env, 1)] {
            if let Some(v) = var {
                let value = std::env::var(v).with_context(|| format!("${v}"))?;
                b = if set == 0 {
                    b.with_access_key_id(value)
                } else {
                    b.with_secret_access_key(value)
                };
            }
        }
        Ok(Arc::new(b.build()?))
    }

    /// Opens keys, tiers and index.
    pub(crate) async fn open(&self) -> anyhow::Result<Recordings> {
        let keys = Arc::new(self.key_ring()?);
        let hot = HotTier::new(&self.section.hot_dir)
            .with_context(|| format!("hot tier {}", self.section.hot_dir.display()))?;
        let index = self.open_index().await?;
        Ok(Recordings::new(keys, hot, self.cold_store()?, index))
    }

    /// Opens the index database (an SQLite file's directory is made first).
    pub(crate) async fn open_index(&self) -> anyhow::Result<Index> {
        if let Some(p) = self
            .section
            .index
            .strip_prefix("sqlite:")
            .map(Path::new)
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(p)?;
        }
        Ok(Index::connect(&self.section.index).await?)
    }
}

fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the call tasks and the admin endpoint tell the recorder thread.
#[derive(Debug)]
pub(crate) enum RecMsg {
    /// A call's legs are both up: start recording it.
    Begin { key: CallId, call_id: String },
    /// One decoded frame of a leg.
    Audio {
        key: CallId,
        side: Side,
        rate: u32,
        pcm: Arc<[i16]>,
    },
    /// The call ended.
    End { key: CallId },
    /// PCI: replace the call's audio with silence from now (`Some(reason)`: the IVR or the
    /// agent collects card data), or end that pause (`None`).
    Pci { key: CallId, pause: Option<String> },
    /// A call ended: its detail record, a row per leg.
    Cdr(Vec<crest_recording::CallLeg>),
    /// The journey of a call Crest answered itself.
    Journey(Box<crest_recording::CallJourney>),
    /// A survey's score.
    Csat(Box<crest_recording::CsatResponse>),
    /// Crest is stopping: take what the calls still send for a moment, close every recording,
    /// then say so.
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct RecordingMetrics {
    pub(crate) active: AtomicU64,
    pub(crate) started: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) moved: AtomicU64,
    pub(crate) deleted: AtomicU64,
}

impl crate::metrics::Source for RecordingMetrics {
    fn expose(&self, out: &mut crate::metrics::Exposition<'_, '_>) {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        out.gauge(
            "crest_recordings_active",
            "Recordings being written.",
            g(&self.active),
        );
        for (name, help, v) in [
            (
                "crest_recordings_started_total",
                "Recordings started.",
                &self.started,
            ),
            (
                "crest_recordings_completed_total",
                "Recordings closed.",
                &self.completed,
            ),
            (
                "crest_recordings_failed_total",
                "Recordings that could not be started or written.",
                &self.failed,
            ),
            (
                "crest_recording_bytes_written_total",
                "Sealed bytes written to the hot tier.",
                &self.bytes,
            ),
            (
                "crest_recordings_moved_total",
                "Recordings moved to the cold tier.",
                &self.moved,
            ),
            (
                "crest_recordings_deleted_total",
                "Recordings deleted by retention.",
                &self.deleted,
            ),
        ] {
            out.counter(name, help, g(v));
        }
    }
}

/// The sending side, held by the media plane and the admin endpoint.
#[derive(Debug, Clone)]
pub(crate) struct RecorderHandle {
    pub(crate) tx: mpsc::UnboundedSender<RecMsg>,
    pub(crate) metrics: Arc<RecordingMetrics>,
}

impl RecorderHandle {
    /// Closes every recording (after the last calls' final frames) before Crest exits; waits
    /// up to `limit`.
    pub(crate) fn shut_down(&self, limit: Duration) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(RecMsg::Shutdown(done)).is_ok() {
            let _ = wait.recv_timeout(limit);
        }
    }
}

struct Active {
    id: RecordingId,
    call_id: String,
    recorder: Recorder,
    file: HotFile,
    hash: Sha256,
    size: u64,
}

/// Starts the recorder thread: opens the store, recovers what a crash left open, then serves
/// messages until every sender is gone. Returns once the store is open (or failed to open).
pub(crate) fn start(settings: Settings) -> anyhow::Result<RecorderHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let metrics = Arc::new(RecordingMetrics::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("crest-recorder".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::Error::from(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let rec = match settings.open().await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                match rec.recover_open(unix_ms()).await {
                    Ok(list) if !list.is_empty() => {
                        info!(
                            count = list.len(),
                            "recordings left open by a crash recovered"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => error!("recovering open recordings: {e}"),
                }
                let _ = ready_tx.send(Ok(()));
                serve(rec, settings, rx, m).await;
            });
        })?;
    ready_rx.recv().context("the recorder thread stopped")??;
    Ok(RecorderHandle { tx, metrics })
}

async fn serve(
    rec: Recordings,
    settings: Settings,
    mut rx: mpsc::UnboundedReceiver<RecMsg>,
    m: Arc<RecordingMetrics>,
) {
    let mut active: HashMap<CallId, Active> = HashMap::new();
    let mut stopping: Option<(tokio::time::Instant, std::sync::mpsc::Sender<()>)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut policy = tokio::time::interval(Duration::from_secs(
        settings.section.policy.interval_secs.max(1),
    ));
    loop {
        tokio::select! {
            msg = rx.recv() => {
                match msg {
                    None => break,
                    Some(RecMsg::Shutdown(done)) => {
                        // The media tasks of the last calls may still be sending.
                        stopping = Some((tokio::time::Instant::now() + Duration::from_millis(500), done));
                    }
                    Some(msg) => handle(&rec, &settings, &mut active, &m, msg).await,
                }
            }
            _ = tick.tick() => {
                if stopping.as_ref().is_some_and(|(at, _)| tokio::time::Instant::now() >= *at) {
                    break;
                }
                let now = std::time::Instant::now();
                let mut failed = Vec::new();
                for (key, a) in &mut active {
                    a.recorder.handle_timeout(now);
                    if !write(a, &m) {
                        failed.push(*key);
                    }
                }
                for key in failed {
                    active.remove(&key);
                }
            }
            _ = policy.tick() => {
                match rec.apply_policy(unix_ms(), &settings.policy).await {
                    Ok(r) => {
                        m.moved.fetch_add(r.moved.len() as u64, Ordering::Relaxed);
                        m.deleted.fetch_add(r.deleted.len() as u64, Ordering::Relaxed);
                        for (id, e) in r.failed {
                            warn!(recording = %id, "recording policy: {e}");
                        }
                    }
                    Err(e) => warn!("recording policy: {e}"),
                }
            }
        }
    }
    for (_, a) in active.drain() {
        finish(&rec, a, &m).await;
    }
    if let Some((_, done)) = stopping {
        let _ = done.send(());
    }
}

/// Appends what the recorder sealed; false (and logged) when the disk refused.
fn write(a: &mut Active, m: &RecordingMetrics) -> bool {
    while let Some(w) = a.recorder.poll_write() {
        if let Err(e) = a.file.append(&w) {
            error!(call_id = %a.call_id, recording = %a.id, "recording write failed, recording stopped: {e}");
            m.failed.fetch_add(1, Ordering::Relaxed);
            m.active.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        a.hash.update(&w);
        a.size += w.len() as u64;
        m.bytes.fetch_add(w.len() as u64, Ordering::Relaxed);
    }
    true
}

async fn finish(rec: &Recordings, mut a: Active, m: &RecordingMetrics) {
    let summary = a.recorder.finish(std::time::Instant::now());
    if !write(&mut a, m) {
        return;
    }
    let sha = hex::encode(std::mem::take(&mut a.hash).finalize());
    match rec.close(&a.id, &summary, &sha, a.size).await {
        Ok(()) => {
            m.completed.fetch_add(1, Ordering::Relaxed);
            info!(call_id = %a.call_id, recording = %a.id, duration_ms = summary.duration_ms, bytes = a.size, pauses = summary.marks.len(), "recording closed");
        }
        Err(e) => {
            m.failed.fetch_add(1, Ordering::Relaxed);
            error!(call_id = %a.call_id, recording = %a.id, "recording not closed in the index (recovered at next start): {e}");
        }
    }
    m.active.fetch_sub(1, Ordering::Relaxed);
}

async fn handle(
    rec: &Recordings,
    settings: &Settings,
    active: &mut HashMap<CallId, Active>,
    m: &RecordingMetrics,
    msg: RecMsg,
) {
    match msg {
        RecMsg::Begin { key, call_id } => {
            let n = NewRecording {
                call_id: call_id.clone(),
                legs: match settings.recorder.layout {
                    Layout::Stereo => "left=caller right=callee".into(),
                    Layout::Mono => "mixed caller+callee".into(),
                },
                agent: None,
                queue: None,
                started_ms: unix_ms(),
                format: settings.recorder.format,
                layout: settings.recorder.layout,
            };
            let started = match rec.start(&n).await {
                Ok(s) => s,
                Err(e) => {
                    m.failed.fetch_add(1, Ordering::Relaxed);
                    error!(call_id = %call_id, "recording not started: {e}");
                    return;
                }
            };
            let recorder = match Recorder::new(
                std::time::Instant::now(),
                &started.id,
                &started.key,
                settings.recorder.clone(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    m.failed.fetch_add(1, Ordering::Relaxed);
                    error!(call_id = %call_id, "recording not started: {e}");
                    return;
                }
            };
            info!(call_id = %call_id, recording = %started.id, "recording started");
            m.started.fetch_add(1, Ordering::Relaxed);
            m.active.fetch_add(1, Ordering::Relaxed);
            let mut a = Active {
                id: started.id,
                call_id,
                recorder,
                file: started.file,
                hash: Sha256::new(),
                size: 0,
            };
            if write(&mut a, m) {
                active.insert(key, a);
            }
        }
        RecMsg::Audio {
            key,
            side,
            rate,
            pcm,
        } => {
            if let Some(a) = active.get_mut(&key) {
                a.recorder
                    .handle_audio(std::time::Instant::now(), side, rate, &pcm);
                if !write(a, m) {
                    active.remove(&key);
                }
            }
        }
        RecMsg::End { key } => {
            if let Some(a) = active.remove(&key) {
                finish(rec, a, m).await;
            }
        }
        RecMsg::Pci { key, pause } => {
            if let Some(a) = active.get_mut(&key) {
                match pause {
                    Some(reason) => {
                        info!(call_id = %a.call_id, recording = %a.id, reason, "recording paused (PCI)");
                        a.recorder.pause(&reason);
                    }
                    None => {
                        info!(call_id = %a.call_id, recording = %a.id, "recording resumed");
                        a.recorder.resume();
                    }
                }
            }
        }
        // `serve` takes it before `handle` sees a message.
        RecMsg::Shutdown(_) => {}
        RecMsg::Cdr(legs) => {
            for l in &legs {
                if let Err(e) = rec.index().add_call_leg(l).await {
                    warn!(call_id = %l.call_id, "call detail record not stored: {e}");
                }
            }
        }
        RecMsg::Journey(j) => {
            if let Err(e) = rec.index().add_call_journey(&j).await {
                warn!(call_id = %j.call_id, "call journey not stored: {e}");
            }
        }
        RecMsg::Csat(c) => {
            if let Err(e) = rec.index().add_csat(&c).await {
                warn!(call_id = %c.call_id, "satisfaction score not stored: {e}");
            }
        }
    }
}

/// `crest recording …` and `crest keys rotate`: each opens the store on its own runtime.
pub(crate) mod cli {
    use super::*;

    fn rows_of(rows: Vec<RecordingRow>, what: &str) -> anyhow::Result<Vec<RecordingRow>> {
        if rows.is_empty() {
            anyhow::bail!("no recording of {what}");
        }
        Ok(rows)
    }

    async fn find(rec: &Recordings, what: &str) -> anyhow::Result<Vec<RecordingRow>> {
        if let Ok(id) = what.parse::<RecordingId>()
            && let Some(r) = rec.index().get(&id).await?
        {
            return Ok(vec![r]);
        }
        rows_of(rec.index().by_call(what).await?, what)
    }

    fn block<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)
    }

    /// `crest recording list`.
    pub(crate) fn list(settings: &Settings) -> anyhow::Result<String> {
        block(async {
            let rec = settings.open().await?;
            let mut out = format!(
                "{:<32}  {:<28}  {:<13}  {:>9}  {:<9}  {:<4}  {:<8}  {}\n",
                "RECORDING", "CALL-ID", "STARTED(ms)", "LENGTH", "STATE", "TIER", "KEY", "FORMAT"
            );
            for r in rec.index().all().await? {
                out.push_str(&format!(
                    "{:<32}  {:<28}  {:<13}  {:>8.1}s  {:<9}  {:<4}  {:<8}  {}/{}\n",
                    r.id,
                    r.call_id,
                    r.started_ms,
                    r.duration_ms.unwrap_or(0) as f64 / 1000.0,
                    r.state,
                    r.tier,
                    r.key_id.as_deref().unwrap_or("-"),
                    r.format,
                    r.layout
                ));
            }
            Ok(out)
        })
    }

    /// `crest recording get CALL_ID --out FILE`: decrypts (every chunk and hash checked).
    pub(crate) fn get(settings: &Settings, what: &str, out: &Path) -> anyhow::Result<String> {
        block(async {
            let rec = settings.open().await?;
            let rows = find(&rec, what).await?;
            let mut report = String::new();
            for (i, r) in rows.iter().enumerate() {
                let (plain, marks) = rec
                    .plaintext(r)
                    .await
                    .with_context(|| format!("recording {}", r.id))?;
                let path = if i == 0 {
                    out.to_owned()
                } else {
                    out.with_extension(format!(
                        "{i}.{}",
                        out.extension().and_then(|e| e.to_str()).unwrap_or("wav")
                    ))
                };
                std::fs::write(&path, &plain)
                    .with_context(|| format!("writing {}", path.display()))?;
                report.push_str(&format!(
                    "{}: recording {} ({} ms, {} bytes, {} tier)\n",
                    path.display(),
                    r.id,
                    r.duration_ms.unwrap_or(0),
                    plain.len(),
                    r.tier
                ));
                for m in marks {
                    report.push_str(&format!(
                        "  paused at {} ms for {} ms: {}\n",
                        m.offset_ms, m.duration_ms, m.reason
                    ));
                }
            }
            Ok(report)
        })
    }

    /// `crest recording verify [CALL_ID | --all]`: problems, or none.
    pub(crate) fn verify(
        settings: &Settings,
        what: Option<&str>,
    ) -> anyhow::Result<(String, bool)> {
        block(async {
            let rec = settings.open().await?;
            let rows = match what {
                Some(w) => find(&rec, w).await?,
                None => rec.index().all().await?,
            };
            let mut out = String::new();
            let mut bad = 0;
            for r in &rows {
                let problems = rec.verify(r).await;
                if problems.is_empty() {
                    out.push_str(&format!("{} OK ({} tier)\n", r.id, r.tier));
                } else {
                    bad += 1;
                    for p in problems {
                        out.push_str(&format!("{p}\n"));
                    }
                }
            }
            out.push_str(&format!(
                "{} recordings checked, {bad} with problems\n",
                rows.len()
            ));
            Ok((out, bad == 0))
        })
    }

    /// `crest recording shred CALL_ID`.
    pub(crate) fn shred(settings: &Settings, what: &str) -> anyhow::Result<String> {
        block(async {
            let rec = settings.open().await?;
            let mut out = String::new();
            for r in find(&rec, what).await? {
                rec.shred(&r.id, unix_ms()).await?;
                out.push_str(&format!("{}: data key deleted\n", r.id));
            }
            Ok(out)
        })
    }

    /// `crest recording tier`: one pass of the tiering and retention policy now.
    pub(crate) fn tier(settings: &Settings) -> anyhow::Result<String> {
        block(async {
            let rec = settings.open().await?;
            let r = rec.apply_policy(unix_ms(), &settings.policy).await?;
            let mut out = format!(
                "moved {} to cold, finished {} interrupted moves, deleted {}\n",
                r.moved.len(),
                r.finished.len(),
                r.deleted.len()
            );
            for (id, e) in r.failed {
                out.push_str(&format!("{id}: {e}\n"));
            }
            Ok(out)
        })
    }

    /// `crest cdr [CALL_ID]`: call detail records, a line per leg.
    pub(crate) fn cdr(settings: &Settings, call_id: Option<&str>) -> anyhow::Result<String> {
        block(async {
            let rec = settings.open().await?;
            let mut out = format!(
                "{:<28}  {:<8}  {:<3}  {:<13}  {:>8}  {:<5}  {:>7}  {:>5}  {:>9}  {:>7}  {}\n",
                "CALL-ID",
                "NUMBER",
                "LEG",
                "ENDED(ms)",
                "LENGTH",
                "CODEC",
                "PACKETS",
                "LOST",
                "JITTER",
                "RTT",
                "MOS"
            );
            for l in rec.index().call_legs(call_id).await? {
                out.push_str(&format!(
                    "{:<28}  {:<8}  {:<3}  {:<13}  {:>7.1}s  {:<5}  {:>7}  {:>5}  {:>7.1}ms  {:>7}  {:.2}\n",
                    l.call_id,
                    l.number,
                    l.leg,
                    l.ended_ms,
                    l.duration_ms as f64 / 1000.0,
                    l.codec,
                    l.packets,
                    l.lost,
                    l.jitter_us as f64 / 1000.0,
                    l.rtt_us.map_or("-".into(), |r| format!("{:.1}ms", r as f64 / 1000.0)),
                    l.mos_milli as f64 / 1000.0
                ));
            }
            let journeys = rec.index().call_journeys(call_id).await?;
            if !journeys.is_empty() {
                out.push_str(&format!(
                    "\n{:<28}  {:<8}  {:<22}  {:<14}  {:<8}  {:>8}  {:>8}  {}\n",
                    "CALL-ID",
                    "NUMBER",
                    "OUTCOME",
                    "QUEUE",
                    "AGENT",
                    "WAIT",
                    "LENGTH",
                    "FLOW / PATH"
                ));
            }
            for j in journeys {
                let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                out.push_str(&format!(
                    "{:<28}  {:<8}  {:<22}  {:<14}  {:<8}  {:>8}  {:>7.1}s  {} {}\n",
                    j.call_id,
                    j.number,
                    j.outcome,
                    or_dash(j.queue),
                    or_dash(j.agent),
                    j.wait_ms
                        .map_or("-".into(), |w| format!("{:.1}s", w as f64 / 1000.0)),
                    j.duration_ms as f64 / 1000.0,
                    j.flow
                        .map(|f| format!("{f}@{}", j.flow_version.unwrap_or_default()))
                        .unwrap_or_else(|| "-".into()),
                    j.path
                ));
            }
            Ok(out)
        })
    }

    /// `crest keys rotate`: re-wraps every data key with the current key.
    pub(crate) fn rotate(settings: &Settings) -> anyhow::Result<String> {
        block(async {
            let rec = settings.open().await?;
            let n = rec.rotate(unix_ms()).await?;
            Ok(format!("{n} data keys re-wrapped\n"))
        })
    }
}
