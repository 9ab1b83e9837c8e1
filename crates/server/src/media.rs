//! The tokio shell around the sans-IO media plane. The SIP core owns a [`MediaPlane`] (its
//! media hook): on a call's first SDP it admits the call's bandwidth, binds the two legs'
//! RTP/RTCP sockets from the port range and starts the call's media task; each exchange then
//! rewrites the SDP (crest-media `CallAnchor`) and sends the legs' settings to the task,
//! which drives a `CallMedia` with its four sockets and its timers.
//!
//! ```text
//!  SIP core ── exchange(sdp) ──► MediaPlane ── Configure ──► call task: CallMedia
//!     ▲                                                       │  RTP/RTCP sockets A, B
//!     └──────────── hang up (media timeout) ◄─────────────────┘
//! ```
//!
//! An agent in a browser offers WebRTC in the 2xx of Crest's SDP-less INVITE: the plane
//! answers it with a crest-media `WebRtcLeg` that stands in for the call's leg B. Every
//! browser leg shares one UDP socket, read by the `crest-webrtc` thread, which hands each
//! datagram to its call's task (by ICE username fragment, then source address); the task
//! drives the leg beside its `CallMedia` and sends on the shared socket.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use crest_media::anchor::{AnchorConfig, CallAnchor, PortPool, Role};
use crest_media::bandwidth::{self, Budgets, Ledger, LegUse};
use crest_media::bridge::{CallMedia, DtmfSource, LegSetup, MediaConfig, MediaEvent, Prompt, Side};
use crest_media::codec::CodecKind;
use crest_media::sdp::Direction;
use crest_media::webrtc::{Demux, WebRtcEvent, WebRtcLeg};
use crest_media::{dtmf, wav};
use crest_sip_proxy::{CallInfo, LegEvent, MediaHook, SdpRole};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Span, debug, info, info_span, warn};

use crate::app::{AcdMsg, AppEvent, AppRuntime, CoreRequest};
use crate::config::Config;
use crate::recording::{RecMsg, RecorderHandle};
use crate::speech::{Listening, SpeechEvent};
use crest_call::{Call, CallId, Input, Output};

/// The media settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    anchor: AnchorConfig,
    media: MediaConfig,
    bind: IpAddr,
    threads: usize,
    port_min: u16,
    port_max: u16,
    webrtc_port: Option<u16>,
    budgets: Budgets,
    /// Route number → (caller's pool, callee's pool).
    pools: HashMap<String, (Option<String>, Option<String>)>,
    /// Route number → the announcement played to the caller on answer, and barge-in.
    announce: HashMap<String, (Prompt, bool)>,
}

impl Settings {
    /// Reads `media:`; errors name the key.
    pub(crate) fn from_config(c: &Config, advertise: IpAddr) -> Result<Self, (String, String)> {
        let m = &c.media;
        let ip = |key: &str, v: &Option<String>| -> Result<IpAddr, (String, String)> {
            match v {
                None => Ok(advertise),
                Some(s) => s
                    .parse()
                    .map_err(|_| (key.to_owned(), format!("{s:?} is not an IP address"))),
            }
        };
        let address = ip("media.advertise", &m.advertise)?;
        let bind = ip("media.bind", &m.bind)?;
        if address.is_unspecified() {
            return Err((
                "media.advertise".into(),
                "set it when the SIP listener is on 0.0.0.0 or ::".into(),
            ));
        }
        if m.port_min < 1024 || u32::from(m.port_max) < u32::from(m.port_min) + 3 {
            return Err((
                "media.port_min".into(),
                format!(
                    "the range {}..{} must start at 1024 or above and hold at least two port pairs",
                    m.port_min, m.port_max
                ),
            ));
        }
        let mut codecs = Vec::new();
        for (i, name) in m.codecs.iter().enumerate() {
            let k = CodecKind::from_name(name).ok_or_else(|| {
                (
                    format!("media.codecs[{i}]"),
                    format!("unknown codec {name:?} (PCMU, PCMA, G722, opus)"),
                )
            })?;
            codecs.push(k);
        }
        if codecs.is_empty() {
            return Err(("media.codecs".into(), "name at least one codec".into()));
        }
        if !(10..=60).contains(&m.ptime_ms) || !m.ptime_ms.is_multiple_of(10) {
            return Err((
                "media.ptime_ms".into(),
                "use 10, 20, 30, 40, 50 or 60".into(),
            ));
        }
        if m.jitter_min_ms > m.jitter_max_ms {
            return Err((
                "media.jitter_min_ms".into(),
                "must not exceed jitter_max_ms".into(),
            ));
        }
        let kbps = |v: u64| v * 1000;
        let mut announce = HashMap::new();
        for (number, a) in &m.announce {
            let key = format!("media.announce.{number}.file");
            let bytes = std::fs::read(&a.file)
                .map_err(|e| (key.clone(), format!("{}: {e}", a.file.display())))?;
            let prompt = wav::read(&bytes)
                .map_err(|e| (key.clone(), format!("{}: {e}", a.file.display())))?;
            announce.insert(number.clone(), (prompt, a.barge_in));
        }
        Ok(Self {
            announce,
            anchor: AnchorConfig {
                address,
                codecs,
                ptime: m.ptime_ms,
            },
            media: MediaConfig {
                rtcp_interval: Duration::from_secs(m.rtcp_interval_secs.max(1)),
                media_timeout: Duration::from_secs(m.timeout_secs),
                inband_dtmf: m.inband_dtmf,
                jitter_min: Duration::from_millis(m.jitter_min_ms),
                jitter_max: Duration::from_millis(m.jitter_max_ms),
                cname: format!("crest@{address}"),
            },
            bind,
            threads: m.threads.max(1),
            port_min: m.port_min,
            port_max: m.port_max,
            webrtc_port: m.webrtc_port,
            budgets: Budgets {
                node: m.bandwidth.node_kbps.map(kbps),
                pools: m
                    .bandwidth
                    .pools
                    .iter()
                    .map(|(k, v)| (k.clone(), kbps(*v)))
                    .collect(),
            },
            pools: c
                .sip
                .routes
                .iter()
                .map(|r| (r.number.clone(), (r.caller_pool.clone(), r.pool.clone())))
                .collect(),
        })
    }
}

/// Media counters for `/metrics`, shared by the call tasks.
#[derive(Debug, Default)]
pub(crate) struct MediaMetrics {
    pub(crate) calls_active: AtomicU64,
    pub(crate) calls_transcoded: AtomicU64,
    pub(crate) packets_received: AtomicU64,
    pub(crate) packets_forwarded: AtomicU64,
    pub(crate) packets_generated: AtomicU64,
    pub(crate) dtmf_rfc4733: AtomicU64,
    pub(crate) dtmf_inband: AtomicU64,
    pub(crate) dtmf_info: AtomicU64,
    pub(crate) media_timeouts: AtomicU64,
    pub(crate) legs_measured: AtomicU64,
    pub(crate) packets_lost: AtomicU64,
    /// Sum of the legs' MOS × 1000.
    pub(crate) mos_milli_sum: AtomicU64,
    pub(crate) port_failures: AtomicU64,
    pub(crate) bandwidth_refused: AtomicU64,
    /// Browser (WebRTC) legs held by calls now.
    pub(crate) browser_legs: AtomicU64,
    /// Browser legs whose ICE and DTLS came up.
    pub(crate) browser_connects: AtomicU64,
    /// Browser offers refused, and legs that closed before connecting.
    pub(crate) browser_failures: AtomicU64,
}

/// What the admin endpoint reads.
#[derive(Debug, Clone)]
pub(crate) struct MediaShared {
    pub(crate) metrics: Arc<MediaMetrics>,
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    /// The calls' tasks by the caller's SIP Call-ID (what the agent's desktop knows).
    by_call_id: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Command>>>>,
    /// The shared WebRTC socket's routes.
    browsers: Option<Browsers>,
}

impl MediaShared {
    /// Browser legs routed on the shared WebRTC socket, and the addresses learnt for them.
    pub(crate) fn browser_routes(&self) -> (usize, usize) {
        self.browsers.as_ref().map_or((0, 0), Browsers::routed)
    }

    /// PCI: pauses (`Some(reason)`) or resumes the recording of the call whose caller's
    /// Call-ID is `call_id`. False when no such call is up.
    pub(crate) fn pci(&self, call_id: &str, pause: Option<String>) -> bool {
        let tx = self
            .by_call_id
            .lock()
            .ok()
            .and_then(|m| m.get(call_id).cloned());
        tx.is_some_and(|tx| tx.send(Command::Pci(pause)).is_ok())
    }
}

enum Command {
    Configure(Side, LegSetup),
    /// Leg B is this browser from now on.
    Browser(Arc<Mutex<WebRtcLeg>>),
    /// The browser leg has work (a re-offer answered).
    BrowserChanged,
    /// A datagram for the call's browser leg, from the shared WebRTC socket.
    FromBrowser(SocketAddr, Vec<u8>),
    /// A key from SIP INFO on a leg: reported, and sent on in the other leg's media.
    InfoKey(Side, char),
    /// What became of a leg Crest placed: B of a call it answered itself, or A of a callback.
    Leg(Side, LegEvent),
    /// PCI: pause the recording (with a reason) or resume it.
    Pci(Option<String>),
    Stop,
}

struct Entry {
    anchor: CallAnchor,
    ports: [u16; 2],
    tx: mpsc::UnboundedSender<Command>,
    /// The caller's SIP Call-ID (the key of `MediaShared::by_call_id`).
    call_id: String,
    /// Leg B's browser, when it is one (shared with the call's task, which drives it).
    browser: Option<Arc<Mutex<WebRtcLeg>>>,
}

/// Locks a browser leg (a panic elsewhere does not stop the call's media).
fn lock(leg: &Mutex<WebRtcLeg>) -> std::sync::MutexGuard<'_, WebRtcLeg> {
    leg.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The browsers' WebRTC legs: one UDP socket for all of them (see the module docs).
#[derive(Clone)]
pub(crate) struct Browsers {
    /// Crest's address in the answers (the ICE host candidate).
    local: SocketAddr,
    socket: Arc<StdUdpSocket>,
    routes: Arc<Mutex<BrowserRoutes>>,
}

impl std::fmt::Debug for Browsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browsers")
            .field("local", &self.local)
            .field("routed", &self.routed())
            .finish()
    }
}

/// Which call's task a datagram on the shared socket goes to.
#[derive(Default)]
struct BrowserRoutes {
    demux: Demux<CallId>,
    tasks: HashMap<CallId, mpsc::UnboundedSender<Command>>,
}

impl Browsers {
    /// Reads `socket` on the `crest-webrtc` thread; Crest's candidate is `local`.
    fn start(socket: StdUdpSocket, local: SocketAddr) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let reader = socket.try_clone()?;
        let me = Self {
            local,
            socket: Arc::new(socket),
            routes: Arc::default(),
        };
        let routes = me.routes.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        std::thread::Builder::new()
            .name("crest-webrtc".into())
            .spawn(move || {
                rt.block_on(async move {
                    let sock = match UdpSocket::from_std(reader) {
                        Ok(s) => s,
                        Err(e) => return warn!(error = %e, "the WebRTC socket cannot be read"),
                    };
                    let mut buf = vec![0u8; 2048];
                    loop {
                        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                            continue;
                        };
                        let task = routes.lock().ok().and_then(|mut r| {
                            let key = r.demux.route(from, &buf[..n])?;
                            r.tasks.get(&key).cloned()
                        });
                        match task {
                            Some(tx) => {
                                let _ = tx.send(Command::FromBrowser(from, buf[..n].to_vec()));
                            }
                            None => debug!(%from, len = n, "WebRTC datagram for no call: dropped"),
                        }
                    }
                });
            })?;
        Ok(me)
    }

    /// Routes datagrams for `ufrag` to call `key`'s task (in place of its earlier leg).
    fn add(&self, key: CallId, ufrag: &str, task: mpsc::UnboundedSender<Command>) {
        if let Ok(mut r) = self.routes.lock() {
            r.demux.remove(key);
            r.demux.insert(ufrag, key);
            r.tasks.insert(key, task);
        }
    }

    /// Forgets call `key`'s browser leg.
    fn remove(&self, key: CallId) {
        if let Ok(mut r) = self.routes.lock() {
            r.demux.remove(key);
            r.tasks.remove(&key);
        }
    }

    /// Legs routed now, and the source addresses learnt for them.
    fn routed(&self) -> (usize, usize) {
        self.routes
            .lock()
            .map_or((0, 0), |r| (r.tasks.len(), r.demux.addresses()))
    }
}

/// Whether an SDP offer is a browser's (DTLS-SRTP with feedback, as WebRTC requires).
fn is_webrtc(sdp: &str) -> bool {
    sdp.contains("UDP/TLS/RTP/SAVPF")
}

/// The SIP core's media hook (see the module docs).
pub(crate) struct MediaPlane {
    settings: Settings,
    ports: PortPool,
    calls: HashMap<CallId, Entry>,
    shared: MediaShared,
    core: mpsc::UnboundedSender<CoreRequest>,
    /// The IVR and the ACD, for calls Crest answers itself.
    app: Option<Arc<AppRuntime>>,
    workers: MediaWorkers,
    rng: u64,
    /// The recorder and which numbers it records.
    recorder: Option<(RecorderHandle, crate::recording::Settings)>,
    /// The browsers' shared WebRTC socket.
    browsers: Option<Browsers>,
}

impl std::fmt::Debug for MediaPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPlane")
            .field("calls", &self.calls.len())
            .field("free_ports", &self.ports.available())
            .finish()
    }
}

fn side(s: crest_sip_proxy::Side) -> Side {
    match s {
        crest_sip_proxy::Side::A => Side::A,
        crest_sip_proxy::Side::B => Side::B,
    }
}

impl MediaPlane {
    /// A media plane whose call tasks ask the SIP core for hang-ups (media timeouts) on `core`.
    pub(crate) fn new(
        settings: Settings,
        core: mpsc::UnboundedSender<CoreRequest>,
        seed: u64,
    ) -> io::Result<Self> {
        let workers = MediaWorkers::start(settings.threads)?;
        let mut ports = PortPool::new(settings.port_min, settings.port_max);
        let browsers = Some(Self::webrtc_socket(&settings, &mut ports)?);
        Ok(Self {
            workers,
            ports,
            shared: MediaShared {
                metrics: Arc::default(),
                ledger: Arc::new(Mutex::new(Ledger::new(settings.budgets.clone()))),
                by_call_id: Arc::default(),
                browsers: browsers.clone(),
            },
            settings,
            calls: HashMap::new(),
            core,
            app: None,
            rng: seed | 1,
            recorder: None,
            browsers,
        })
    }

    /// Binds the browsers' WebRTC socket: `media.webrtc_port`, or the first free port of the
    /// RTP range (taken out of it).
    fn webrtc_socket(settings: &Settings, ports: &mut PortPool) -> io::Result<Browsers> {
        let bind = |p: u16| StdUdpSocket::bind(SocketAddr::new(settings.bind, p));
        let socket = match settings.webrtc_port {
            Some(p) => bind(p)
                .map_err(|e| io::Error::new(e.kind(), format!("media.webrtc_port {p}: {e}")))?,
            None => loop {
                let Some(p) = ports.take() else {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "no free port in the RTP range for the WebRTC socket",
                    ));
                };
                if let Ok(s) = bind(p) {
                    break s;
                }
            },
        };
        let port = socket.local_addr()?.port();
        let local = SocketAddr::new(settings.anchor.address, port);
        info!(%local, "WebRTC socket for browser agents");
        Browsers::start(socket, local)
    }

    /// Runs the calls Crest answers itself (`ivr:` and `queue:` routes) on `app`.
    pub(crate) fn set_app(&mut self, app: Arc<AppRuntime>) {
        self.app = Some(app);
    }

    /// Records the calls `settings` names through `recorder`.
    pub(crate) fn set_recorder(
        &mut self,
        recorder: RecorderHandle,
        settings: crate::recording::Settings,
    ) {
        self.recorder = Some((recorder, settings));
    }

    /// The counters and the bandwidth ledger, for the admin endpoint (and the ACD).
    pub(crate) fn shared(&self) -> MediaShared {
        self.shared.clone()
    }

    fn random(&mut self) -> u32 {
        // xorshift64*: SSRCs and SDP session ids need to differ, not to be secret.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// Binds an RTP/RTCP socket pair on the next free port; ports another program holds are
    /// skipped (and go back to the end of the pool).
    fn bind_pair(&mut self) -> Option<(u16, StdUdpSocket, StdUdpSocket)> {
        for _ in 0..16 {
            let port = self.ports.take()?;
            let bind = |p: u16| -> io::Result<StdUdpSocket> {
                let s = StdUdpSocket::bind(SocketAddr::new(self.settings.bind, p))?;
                s.set_nonblocking(true)?;
                Ok(s)
            };
            match (bind(port), bind(port + 1)) {
                (Ok(rtp), Ok(rtcp)) => return Some((port, rtp, rtcp)),
                (r1, r2) => {
                    let e = r1.err().or(r2.err());
                    debug!(port, error = ?e, "RTP port busy; skipping it");
                    self.shared
                        .metrics
                        .port_failures
                        .fetch_add(1, Ordering::Relaxed);
                    self.ports.release(port);
                }
            }
        }
        None
    }

    /// Admits a new call and starts its media task.
    fn open(&mut self, call: &CallInfo<'_>) -> Result<(), u16> {
        let (caller_pool, callee_pool) = self
            .settings
            .pools
            .get(call.number)
            .cloned()
            .unwrap_or_default();
        let ipv6 = self.settings.anchor.address.is_ipv6();
        // Until the legs agree on codecs, count G.711 (the dearest codec Crest has).
        let estimate = bandwidth::leg_bps(CodecKind::Pcmu, self.settings.anchor.ptime, ipv6);
        let admitted = self.shared.ledger.lock().map_or(Ok(()), |mut l| {
            l.admit(
                call.key,
                [
                    LegUse {
                        pool: caller_pool,
                        bps: estimate,
                    },
                    LegUse {
                        pool: callee_pool,
                        bps: estimate,
                    },
                ],
            )
        });
        if let Err(e) = admitted {
            warn!(call_id = call.call_id, refusal = %e, "call refused for bandwidth");
            self.shared
                .metrics
                .bandwidth_refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(503);
        }
        let (Some(a), Some(b)) = (self.bind_pair(), self.bind_pair()) else {
            warn!(call_id = call.call_id, "no free RTP ports");
            self.release(call.key, None);
            return Err(503);
        };
        let ports = [a.0, b.0];
        let (tx, rx) = mpsc::unbounded_channel();
        let (app_tx, app_rx) = mpsc::unbounded_channel();
        let app = match (call.app, &self.app) {
            (Some(target), Some(rt)) => {
                let Some(start) = rt.start(target, call.caller, call.number) else {
                    warn!(call_id = call.call_id, app = %target, "not available: refusing the call");
                    self.release(call.key, Some([a.0, b.0]));
                    return Err(503);
                };
                let mut config = rt.call_config();
                if let Some((_, r)) = &self.recorder {
                    config.record = r.record_from(call.number);
                    config.pci_limit = r.pci_limit;
                }
                Some(AppCall {
                    call: Call::new(call.key, call.number, call.caller, start, config),
                    rt: rt.clone(),
                    up: false,
                    events: app_tx,
                    listening: None,
                    serial: 0,
                    barge_in: false,
                })
            }
            _ => None,
        };
        if let Ok(mut m) = self.shared.by_call_id.lock() {
            m.insert(call.call_id.to_owned(), tx.clone());
        }
        let answered = app.is_some();
        let task = CallTask {
            key: call.key,
            media: CallMedia::new(self.settings.media.clone(), self.random(), self.random()),
            commands: rx,
            app,
            app_events: app_rx,
            core: self.core.clone(),
            metrics: self.shared.metrics.clone(),
            span: info_span!("media", call_id = call.call_id),
            announce: self.settings.announce.get(call.number).cloned(),
            cdr: self.recorder.as_ref().filter(|(_, s)| s.cdr).map(|(h, _)| {
                (
                    h.tx.clone(),
                    call.number.to_owned(),
                    call.call_id.to_owned(),
                )
            }),
            recording: self
                .recorder
                .as_ref()
                .filter(|(_, s)| s.records(call.number))
                .map(|(h, _)| Recording {
                    tx: h.tx.clone(),
                    call_id: call.call_id.to_owned(),
                    started: false,
                    by_controller: answered,
                }),
            browser: None,
            agent_held: false,
            browsers: self.browsers.clone(),
        };
        self.workers.spawn([a.1, a.2, b.1, b.2], task);
        let session_id = u64::from(self.random());
        self.calls.insert(
            call.key,
            Entry {
                anchor: CallAnchor::new(ports[0], ports[1], session_id),
                ports,
                tx,
                call_id: call.call_id.to_owned(),
                browser: None,
            },
        );
        Ok(())
    }

    /// Answers a browser's offer for leg B of call `key`: a new WebRTC leg, or the same one
    /// re-offered (hold, resume). Refusals are 488.
    fn browser_offer(
        &mut self,
        now: std::time::Instant,
        key: CallId,
        call_id: &str,
        offer: &str,
    ) -> Result<Vec<u8>, u16> {
        let browsers = self.browsers.clone().ok_or(488u16)?;
        let entry = self.calls.get_mut(&key).ok_or(481u16)?;
        let refused = |e: crest_media::webrtc::WebRtcError| {
            info!(call_id, leg = "B", error = %e, "browser offer refused");
            488u16
        };
        if let Some(leg) = entry.browser.as_ref()
            && lock(leg).same_session(offer)
        {
            let (answer, setup) = {
                let mut l = lock(leg);
                let answer = l.reoffer(offer).map_err(refused)?;
                (answer, l.leg_setup())
            };
            let _ = entry.tx.send(Command::BrowserChanged);
            self.configure(key, vec![(Side::B, setup)]);
            return Ok(answer.into_bytes());
        }
        let (leg, answer) = match WebRtcLeg::answer(now, browsers.local, offer) {
            Ok(a) => a,
            Err(e) => {
                self.shared
                    .metrics
                    .browser_failures
                    .fetch_add(1, Ordering::Relaxed);
                return Err(refused(e));
            }
        };
        let setup = leg.leg_setup();
        browsers.add(key, leg.ufrag(), entry.tx.clone());
        let leg = Arc::new(Mutex::new(leg));
        entry.browser = Some(leg.clone());
        let _ = entry.tx.send(Command::Browser(leg));
        self.configure(key, vec![(Side::B, setup)]);
        Ok(answer.into_bytes())
    }

    /// Call `key`'s browser leg is over (its dialog ended, or the call did).
    fn drop_browser(&mut self, key: CallId) {
        if let Some(e) = self.calls.get_mut(&key) {
            e.browser = None;
        }
        if let Some(b) = &self.browsers {
            b.remove(key);
        }
    }

    fn release(&mut self, key: CallId, ports: Option<[u16; 2]>) {
        if let Ok(mut l) = self.shared.ledger.lock() {
            l.release(key);
        }
        for p in ports.into_iter().flatten() {
            self.ports.release(p);
        }
    }
}

impl MediaPlane {
    /// Tells call `key`'s task what became of the leg Crest placed on `side`.
    fn leg(&self, key: CallId, side: Side, event: LegEvent) {
        if let Some(e) = self.calls.get(&key) {
            let _ = e.tx.send(Command::Leg(side, event));
        }
    }

    /// Sends a negotiation's leg settings to the call's task, counting their bandwidth.
    fn configure(&mut self, key: CallId, setups: Vec<(Side, LegSetup)>) {
        let Some(entry) = self.calls.get(&key) else {
            return;
        };
        let ipv6 = self.settings.anchor.address.is_ipv6();
        for (s, setup) in setups {
            if let Ok(mut l) = self.shared.ledger.lock() {
                let bps = bandwidth::leg_bps(setup.codec, setup.ptime, ipv6);
                l.update(key, usize::from(s == Side::B), bps);
            }
            let _ = entry.tx.send(Command::Configure(s, setup));
        }
    }
}

impl MediaHook for MediaPlane {
    fn answer(
        &mut self,
        now: std::time::Instant,
        call: &CallInfo<'_>,
        sdp: Option<&[u8]>,
    ) -> Result<Vec<u8>, u16> {
        let Ok(text) = sdp.map(std::str::from_utf8).transpose() else {
            return Err(400);
        };
        if self.app.is_none() {
            warn!(
                call_id = call.call_id,
                "no IVR or ACD in this crest: refusing the call"
            );
            return Err(503);
        }
        let new = !self.calls.contains_key(&call.key);
        if new {
            self.open(call)?;
            if let Some(acd) = self.app.as_ref().and_then(|a| a.acd.as_ref()) {
                let _ = acd.send(AcdMsg::Arrival);
            }
        }
        let entry = self.calls.get_mut(&call.key).expect("opened above");
        match entry
            .anchor
            .answer_alone(&self.settings.anchor, Side::A, text)
        {
            Ok(ex) => {
                self.configure(call.key, ex.setups);
                Ok(ex.body.map(String::into_bytes).unwrap_or_default())
            }
            Err(e) => {
                debug!(call_id = call.call_id, error = %e, "SDP refused");
                if new {
                    self.ended(now, call.key);
                }
                Err(e.status())
            }
        }
    }

    fn offer_b(&mut self, _now: std::time::Instant, call: CallId) -> Result<Vec<u8>, u16> {
        let entry = self.calls.get_mut(&call).ok_or(481u16)?;
        Ok(entry
            .anchor
            .offer_far(&self.settings.anchor, Side::B)
            .into_bytes())
    }

    fn leg_b(&mut self, _now: std::time::Instant, call: CallId, event: LegEvent) {
        if matches!(event, LegEvent::Ended | LegEvent::Failed(_)) {
            self.drop_browser(call);
        }
        if event == LegEvent::Ended
            && let Ok(mut l) = self.shared.ledger.lock()
        {
            l.update(call, 1, 0);
        }
        self.leg(call, Side::B, event);
    }

    fn originate(&mut self, _now: std::time::Instant, call: &CallInfo<'_>) -> Result<Vec<u8>, u16> {
        if self.app.is_none() {
            return Err(503);
        }
        self.open(call)?;
        let entry = self.calls.get_mut(&call.key).expect("opened above");
        Ok(entry
            .anchor
            .offer_far(&self.settings.anchor, Side::A)
            .into_bytes())
    }

    fn leg_a(&mut self, _now: std::time::Instant, call: CallId, event: LegEvent) {
        self.leg(call, Side::A, event);
    }

    fn exchange(
        &mut self,
        now: std::time::Instant,
        call: &CallInfo<'_>,
        from: crest_sip_proxy::Side,
        role: SdpRole,
        sdp: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, u16> {
        let Ok(text) = sdp.map(std::str::from_utf8).transpose() else {
            return Err(400);
        };
        // A browser offers WebRTC for leg B (in its 2xx, or re-offering).
        if let (crest_sip_proxy::Side::B, SdpRole::Offer, Some(offer)) = (from, role, text)
            && is_webrtc(offer)
        {
            return self
                .browser_offer(now, call.key, call.call_id, offer)
                .map(Some);
        }
        let new = !self.calls.contains_key(&call.key);
        if new {
            self.open(call)?;
        }
        let role = match role {
            SdpRole::Offer => Role::Offer,
            SdpRole::Answer => Role::Answer,
        };
        let entry = self.calls.get_mut(&call.key).expect("opened above");
        let ex = match entry
            .anchor
            .exchange(&self.settings.anchor, side(from), role, text)
        {
            Ok(ex) => ex,
            Err(e) => {
                debug!(call_id = call.call_id, error = %e, "SDP refused");
                if new {
                    self.ended(std::time::Instant::now(), call.key);
                }
                return Err(e.status());
            }
        };
        self.configure(call.key, ex.setups);
        Ok(ex.body.map(String::into_bytes))
    }

    fn info(
        &mut self,
        _now: std::time::Instant,
        call: CallId,
        from: crest_sip_proxy::Side,
        content_type: &str,
        body: &[u8],
    ) -> bool {
        let Some(entry) = self.calls.get(&call) else {
            return false;
        };
        let key = std::str::from_utf8(body)
            .ok()
            .and_then(|b| dtmf::parse_info_body(content_type, b));
        match key {
            Some(k) => entry.tx.send(Command::InfoKey(side(from), k)).is_ok(),
            None => false,
        }
    }

    fn ended(&mut self, _now: std::time::Instant, call: CallId) {
        self.drop_browser(call);
        if let Some(e) = self.calls.remove(&call) {
            let _ = e.tx.send(Command::Stop);
            if let Ok(mut m) = self.shared.by_call_id.lock() {
                m.remove(&e.call_id);
            }
            self.release(call, Some(e.ports));
        }
    }
}

/// Threads that run the calls' media, each with its own single-threaded runtime: a packet is
/// read, handled and sent on the thread whose epoll saw it (like an rtpengine worker), with no
/// hand-over between threads; calls are spread over them in turn.
struct MediaWorkers {
    handles: Vec<tokio::runtime::Handle>,
    next: usize,
}

impl MediaWorkers {
    fn start(threads: usize) -> io::Result<Self> {
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            std::thread::Builder::new()
                .name(format!("crest-media-{i}"))
                .spawn(move || rt.block_on(std::future::pending::<()>()))?;
        }
        Ok(Self { handles, next: 0 })
    }

    fn spawn(&mut self, sockets: [StdUdpSocket; 4], task: CallTask) {
        let handle = &self.handles[self.next % self.handles.len()];
        self.next = self.next.wrapping_add(1);
        // The sockets register with the worker's reactor, inside the worker.
        handle.spawn(async move {
            match sockets.map(UdpSocket::from_std) {
                [Ok(a), Ok(ac), Ok(b), Ok(bc)] => task.run([a, ac, b, bc]).await,
                _ => {
                    let _g = task.span.enter();
                    warn!("cannot register the RTP sockets; ending the call");
                    let _ = task
                        .core
                        .send(CoreRequest::HangUp(task.key, "media failure".into()));
                }
            }
        });
    }
}

/// What woke a call task: which sockets are readable, a command, the IVR or the ACD, the
/// timer.
struct Ready {
    sockets: [bool; 4],
    command: Option<Option<Command>>,
    app: Option<AppEvent>,
    timer: bool,
}

/// Packet counts kept in the task and added to the shared metrics in batches.
#[derive(Default)]
struct Counts {
    received: u64,
    forwarded: u64,
    generated: u64,
}

impl Counts {
    fn flush(&mut self, m: &MediaMetrics, force: bool) {
        if force || self.received + self.generated >= 64 {
            m.packets_received
                .fetch_add(self.received, Ordering::Relaxed);
            m.packets_forwarded
                .fetch_add(self.forwarded, Ordering::Relaxed);
            m.packets_generated
                .fetch_add(self.generated, Ordering::Relaxed);
            *self = Self::default();
        }
    }
}

/// A recorded call's link to the recorder thread.
struct Recording {
    tx: mpsc::UnboundedSender<RecMsg>,
    call_id: String,
    /// The recorder has the call and its legs' audio goes there.
    started: bool,
    /// The call's controller says when it starts and pauses (a call Crest answered itself);
    /// otherwise it starts once both legs are up.
    by_controller: bool,
}

impl Recording {
    /// Sends the legs' audio to the recorder from now on.
    fn start(&mut self, now: std::time::Instant, key: CallId, media: &mut CallMedia) {
        if self.started {
            return;
        }
        self.started = true;
        media.listen(now, Side::A, true);
        media.listen(now, Side::B, true);
        let _ = self.tx.send(RecMsg::Begin {
            key,
            call_id: self.call_id.clone(),
        });
    }

    /// PCI: pauses (`Some(reason)`) or resumes the running recording.
    fn pci(&self, key: CallId, pause: Option<String>) {
        if self.started {
            let _ = self.tx.send(RecMsg::Pci { key, pause });
        }
    }
}

/// A call Crest answered itself: its controller (crest-call) and what the task holds for it.
struct AppCall {
    rt: Arc<AppRuntime>,
    call: Call,
    /// The caller's leg is up and the controller knows it.
    up: bool,
    /// Given to the ACD, the recognisers, lookups and renders; their answers come back on
    /// the task's receiver, which goes when the task ends.
    events: mpsc::UnboundedSender<AppEvent>,
    /// The recogniser listening to the caller (dropped: freed).
    listening: Option<Listening>,
    /// Which play a prompt rendered off the task belongs to: a later play or a stop makes
    /// it stale.
    serial: u64,
    barge_in: bool,
}

/// One call's media: the `CallMedia` state machine and what it reports to.
struct CallTask {
    key: CallId,
    media: CallMedia,
    commands: mpsc::UnboundedReceiver<Command>,
    app: Option<AppCall>,
    app_events: mpsc::UnboundedReceiver<AppEvent>,
    core: mpsc::UnboundedSender<CoreRequest>,
    metrics: Arc<MediaMetrics>,
    span: Span,
    /// Played to the caller once both legs are up, then cleared.
    announce: Option<(Prompt, bool)>,
    recording: Option<Recording>,
    /// Where the call detail record goes: (recorder thread, number, Call-ID).
    cdr: Option<(mpsc::UnboundedSender<RecMsg>, String, String)>,
    /// Leg B's browser, when it is one.
    browser: Option<BrowserLeg>,
    /// The browser put the caller on hold (the controller plays them the hold music).
    agent_held: bool,
    /// The shared WebRTC socket (sends) and its routes.
    browsers: Option<Browsers>,
}

/// A call's browser leg, as its task holds it.
struct BrowserLeg {
    leg: Arc<Mutex<WebRtcLeg>>,
    /// When the browser's offer was answered (set-up time is measured from it).
    since: Instant,
    connected: bool,
    /// An RTP packet of the bridge's leg B made of the browser's frame (reused).
    rtp: Vec<u8>,
}

impl CallTask {
    /// Runs the call's media on its four sockets until the SIP core stops it.
    async fn run(mut self, sockets: [UdpSocket; 4]) {
        let started = Instant::now();
        let metrics = self.metrics.clone();
        metrics.calls_active.fetch_add(1, Ordering::Relaxed);
        let [rtp_a, rtcp_a, rtp_b, rtcp_b] = &sockets;
        let mut buf = vec![0u8; 2048];
        let mut counts = Counts::default();
        let mut transcoding = false;
        let mut timed_out = false;
        // One timer for the task, moved only when the media's next deadline comes earlier (a
        // new timer per packet would cost a timer-wheel insert and remove each time; a
        // deadline that moved later, like the media timeout after each packet, just finds
        // nothing due when the timer fires and is re-armed then).
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let app_due = self.app.as_ref().and_then(|a| a.call.poll_timeout());
            let browser_due = self
                .browser
                .as_ref()
                .and_then(|b| lock(&b.leg).poll_timeout());
            let due = self
                .media
                .poll_timeout()
                .into_iter()
                .chain(app_due)
                .chain(browser_due)
                .min()
                .map_or(now + Duration::from_secs(1), Instant::from_std);
            if armed.is_none_or(|a| due < a) {
                sleep.as_mut().reset(due);
                armed = Some(due);
            }
            // One pass over everything that can wake the call (no futures built per wake):
            // every ready socket is drained in the same turn.
            let ready = std::future::poll_fn(|cx| {
                let r = Ready {
                    sockets: [rtp_a, rtp_b, rtcp_a, rtcp_b]
                        .map(|s| s.poll_recv_ready(cx).is_ready()),
                    command: match self.commands.poll_recv(cx) {
                        Poll::Ready(c) => Some(c),
                        Poll::Pending => None,
                    },
                    app: match self.app_events.poll_recv(cx) {
                        Poll::Ready(e) => e,
                        Poll::Pending => None,
                    },
                    timer: sleep.as_mut().poll(cx).is_ready(),
                };
                if r.sockets.contains(&true) || r.command.is_some() || r.app.is_some() || r.timer {
                    Poll::Ready(r)
                } else {
                    Poll::Pending
                }
            })
            .await;
            let media = &mut self.media;
            let browser = self.browser.as_ref().map(|b| &*b.leg);
            if ready.sockets[0] {
                receive(
                    media,
                    Side::A,
                    rtp_a,
                    (rtp_b, browser),
                    &mut buf,
                    &mut counts,
                );
            }
            if ready.sockets[1] {
                receive(media, Side::B, rtp_b, (rtp_a, None), &mut buf, &mut counts);
            }
            for (side, sock, i) in [(Side::A, rtcp_a, 2), (Side::B, rtcp_b, 3)] {
                while ready.sockets[i]
                    && let Ok((n, _)) = sock.try_recv_from(&mut buf)
                {
                    media.handle_rtcp(now.into_std(), side, &buf[..n]);
                }
            }
            match ready.command {
                None => {}
                Some(Some(Command::Configure(s, setup))) => {
                    let direction = setup.direction;
                    media.configure(now.into_std(), s, setup);
                    // A browser's hold re-offer: Crest stops sending it audio; the caller
                    // hears the hold music meanwhile.
                    let held = matches!(direction, Direction::RecvOnly | Direction::Inactive);
                    if s == Side::B && self.browser.is_some() && held != self.agent_held {
                        self.agent_held = held;
                        self.span
                            .in_scope(|| info!(leg = "B", held, "the agent's hold"));
                        self.app_input(now.into_std(), Input::AgentHold(held));
                    }
                    let media = &mut self.media;
                    // Once both legs are up: the announcement, then the recording.
                    let up = media.setup(Side::A).is_some() && media.setup(Side::B).is_some();
                    if up && let Some((prompt, barge_in)) = self.announce.take() {
                        let _g = self.span.enter();
                        info!(
                            leg = "A",
                            samples = prompt.pcm.len(),
                            barge_in,
                            "announcement playing"
                        );
                        media.play(now.into_std(), Side::A, &prompt, barge_in);
                    }
                    // Each leg's decoded audio goes to the recorder thread, shared, not copied.
                    if up && let Some(r) = self.recording.as_mut().filter(|r| !r.by_controller) {
                        r.start(now.into_std(), self.key, media);
                    }
                }
                Some(Some(Command::InfoKey(s, k))) => {
                    media.info_dtmf(s, k);
                    if media.setup(s.other()).is_some() {
                        media.send_dtmf(now.into_std(), s.other(), k);
                    }
                }
                Some(Some(Command::Browser(leg))) => {
                    let _g = self.span.enter();
                    info!(leg = "B", "browser leg answered");
                    if self.browser.is_none() {
                        self.metrics.browser_legs.fetch_add(1, Ordering::Relaxed);
                    }
                    self.browser = Some(BrowserLeg {
                        leg,
                        since: now,
                        connected: false,
                        rtp: Vec::new(),
                    });
                }
                Some(Some(Command::BrowserChanged)) => {}
                Some(Some(Command::FromBrowser(from, data))) => {
                    if let Some(b) = &self.browser {
                        lock(&b.leg).handle_receive(now.into_std(), from, &data);
                    }
                }
                Some(Some(Command::Leg(Side::B, ev))) => {
                    if matches!(ev, LegEvent::Ended | LegEvent::Failed(_)) {
                        self.drop_browser();
                    }
                    if ev == LegEvent::Ended {
                        // The agent hung up; the caller stays (a survey, or the hang-up).
                        self.media.release(now.into_std(), Side::B);
                    }
                    self.app_input(now.into_std(), Input::LegB(ev));
                }
                Some(Some(Command::Leg(Side::A, ev))) => {
                    self.app_input(now.into_std(), Input::LegA(ev));
                }
                Some(Some(Command::Pci(pause))) => match (&self.app, &self.recording) {
                    // The controller keeps the pause's limit and what else pauses it.
                    (Some(_), _) => {
                        let now = now.into_std();
                        match &pause {
                            Some(reason) => self.app_input(now, Input::Pause(reason)),
                            None => self.app_input(now, Input::Resume),
                        }
                    }
                    (None, Some(r)) => r.pci(self.key, pause),
                    (None, None) => {}
                },
                Some(Some(Command::Stop) | None) => break,
            }
            if let Some(app) = self.app.as_mut().filter(|a| !a.up)
                && self.media.setup(Side::A).is_some()
            {
                app.up = true;
                let unix_secs = crate::recording::unix_ms() / 1000;
                self.app_input(now.into_std(), Input::CallerUp { unix_secs });
            }
            if let Some(ev) = ready.app {
                self.on_app_event(now.into_std(), ev);
            }
            let media = &mut self.media;
            if ready.timer {
                armed = None;
                counts.flush(&metrics, true);
            }
            let now = Instant::now();
            if now >= due {
                media.handle_timeout(now.into_std());
            }
            if let Some(app) = self.app.as_mut()
                && app.call.poll_timeout().is_some_and(|t| t <= now.into_std())
            {
                app.call.handle_timeout(now.into_std());
                self.app_outputs(now.into_std());
            }
            if self.browser.is_some() {
                self.browser_step(now, rtp_a, &mut counts);
            }
            let media = &mut self.media;
            while let Some(d) = media.poll_transmit() {
                if d.side == Side::B
                    && let Some(b) = &self.browser
                {
                    // The browser's own RTCP is str0m's; audio goes out as Opus frames.
                    if !d.rtcp {
                        counts.generated += 1;
                        lock(&b.leg).send_rtp(now.into_std(), &d.data);
                    }
                    continue;
                }
                let sock = match (d.side, d.rtcp) {
                    (Side::A, false) => rtp_a,
                    (Side::A, true) => rtcp_a,
                    (Side::B, false) => rtp_b,
                    (Side::B, true) => rtcp_b,
                };
                counts.generated += u64::from(!d.rtcp);
                let _ = sock.try_send_to(&d.data, d.to);
            }
            self.browser_transmit();
            while let Some(ev) = self.media.poll_event() {
                // Keys of card data are not logged (asked before the controller sees the key:
                // the last digit ends the ask).
                let card_data = self.app.as_ref().is_some_and(|a| a.call.card_data());
                self.feed_app(Instant::now().into_std(), &ev);
                self.report(ev, card_data, &mut timed_out);
            }
            let t = !self.media.forwarding();
            if t != transcoding {
                transcoding = t;
                let c = &metrics.calls_transcoded;
                if t {
                    c.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.fetch_sub(1, Ordering::Relaxed);
                }
            }
            counts.flush(&metrics, false);
        }
        counts.flush(&metrics, true);
        self.drop_browser();
        // The controller lets go of everything (the recogniser, the IVR session, the ACD's
        // entry) and gives the call's record.
        self.app_input(Instant::now().into_std(), Input::Ended);
        if let Some(r) = self.recording.as_ref().filter(|r| r.started) {
            let _ = r.tx.send(RecMsg::End { key: self.key });
        }
        if transcoding {
            metrics.calls_transcoded.fetch_sub(1, Ordering::Relaxed);
        }
        self.log_quality(started.elapsed());
        metrics.calls_active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Runs the browser leg's timers and hands what it heard to the bridge: its audio as leg
    /// B's RTP (forwarded to the caller's socket when both legs run Opus), its keys as keys.
    fn browser_step(&mut self, now: Instant, rtp_a: &UdpSocket, counts: &mut Counts) {
        let Some(b) = self.browser.as_mut() else {
            return;
        };
        let mut leg = lock(&b.leg);
        let std_now = now.into_std();
        if leg.poll_timeout().is_some_and(|t| t <= std_now) {
            leg.handle_timeout(std_now);
        }
        let from = leg.source();
        let mut closed = false;
        while let Some(ev) = leg.poll_event() {
            match ev {
                WebRtcEvent::Audio { data, rtp_time } => {
                    counts.received += 1;
                    leg.rtp_from_browser(&data, rtp_time, &mut b.rtp);
                    if let Some((to, len)) =
                        self.media.handle_rtp(std_now, Side::B, from, &mut b.rtp)
                        && rtp_a.try_send_to(&b.rtp[..len], to).is_ok()
                    {
                        counts.forwarded += 1;
                    }
                }
                WebRtcEvent::Key(k) => {
                    self.media.event_dtmf(Side::B, k);
                    if self.media.setup(Side::A).is_some() {
                        self.media.send_dtmf(std_now, Side::A, k);
                    }
                }
                WebRtcEvent::Connected => {
                    b.connected = true;
                    self.metrics
                        .browser_connects
                        .fetch_add(1, Ordering::Relaxed);
                    let _g = self.span.enter();
                    info!(
                        leg = "B",
                        remote = ?leg.remote(),
                        setup_ms = (now - b.since).as_millis() as u64,
                        "browser media connected (ICE, DTLS-SRTP)"
                    );
                }
                WebRtcEvent::Closed => closed = true,
            }
        }
        drop(leg);
        if closed {
            if b.connected {
                self.span
                    .in_scope(|| info!(leg = "B", "browser media closed"));
            } else {
                self.metrics
                    .browser_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.span
                    .in_scope(|| warn!(leg = "B", "browser media never connected"));
            }
            self.browser_transmit();
            self.drop_browser();
            // The browser went without a BYE (or before it): its leg is hung up, and the
            // caller stays with the application, as when an agent hangs up.
            if self.media.setup(Side::B).is_some() {
                let _ = self.core.send(CoreRequest::Disconnect(self.key));
                self.media.release(std_now, Side::B);
                self.app_input(std_now, Input::LegB(LegEvent::Ended));
            }
        }
    }

    /// Sends the browser leg's datagrams on the shared socket.
    fn browser_transmit(&self) {
        let (Some(b), Some(bs)) = (&self.browser, &self.browsers) else {
            return;
        };
        let mut leg = lock(&b.leg);
        while let Some(d) = leg.poll_transmit() {
            let _ = bs.socket.send_to(&d.data, d.to);
        }
    }

    /// Lets go of the browser leg and its routes on the shared socket.
    fn drop_browser(&mut self) {
        self.agent_held = false;
        forget_browser(
            &mut self.browser,
            &self.metrics,
            self.browsers.as_ref(),
            self.key,
        );
    }

    fn report(&self, ev: MediaEvent, card_data: bool, timed_out: &mut bool) {
        // Audio comes 50 times a second per listened leg: straight to the recorder, outside
        // the call's span (nothing is logged for it).
        let ev = match ev {
            MediaEvent::Audio { side, rate, pcm } => {
                if let Some(r) = &self.recording {
                    let _ = r.tx.send(RecMsg::Audio {
                        key: self.key,
                        side,
                        rate,
                        pcm,
                    });
                }
                return;
            }
            other => other,
        };
        let _g = self.span.enter();
        let m = &self.metrics;
        match ev {
            MediaEvent::Dtmf { side, key, source } => {
                let counter = match source {
                    DtmfSource::Rfc4733 => &m.dtmf_rfc4733,
                    DtmfSource::InBand => &m.dtmf_inband,
                    DtmfSource::Info => &m.dtmf_info,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if card_data {
                    info!(leg = ?side, ?source, "DTMF (card data, not logged)");
                } else {
                    info!(leg = ?side, %key, ?source, "DTMF");
                }
            }
            MediaEvent::MediaTimeout { side } if !*timed_out => {
                *timed_out = true;
                m.media_timeouts.fetch_add(1, Ordering::Relaxed);
                warn!(leg = ?side, "no RTP: ending the call");
                let _ = self
                    .core
                    .send(CoreRequest::HangUp(self.key, "media timeout".into()));
            }
            MediaEvent::Latched { side, addr } => debug!(leg = ?side, %addr, "RTP latched"),
            MediaEvent::PromptDone { side } => info!(leg = ?side, "prompt done"),
            MediaEvent::BargeIn { side, by } => info!(leg = ?side, ?by, "prompt stopped: barge-in"),
            other => debug!(event = ?other, "media event"),
        }
    }

    /// Feeds the call's controller and carries out what it asks.
    fn app_input(&mut self, now: std::time::Instant, input: Input<'_>) {
        let Some(app) = self.app.as_mut() else {
            return;
        };
        app.call.handle_input(now, input);
        self.app_outputs(now);
    }

    /// Carries out the controller's outputs (see crest-call).
    fn app_outputs(&mut self, now: std::time::Instant) {
        let Some(app) = self.app.as_mut() else {
            return;
        };
        let key = self.key;
        let media = &mut self.media;
        let _g = self.span.enter();
        while let Some(out) = app.call.poll_output() {
            match out {
                Output::Play { prompt, barge_in } => {
                    if let crest_call::Prompt::Say { text, .. } = &prompt {
                        debug!(text, "IVR prompt");
                    }
                    app.serial += 1;
                    app.barge_in = barge_in;
                    match app.rt.prompt(prompt, app.serial, &app.events) {
                        Some(p) => media.play(now, Side::A, &p, barge_in),
                        // Silence until it is rendered.
                        None => media.stop_prompt(now, Side::A),
                    }
                }
                Output::StopPrompt => {
                    app.serial += 1;
                    media.stop_prompt(now, Side::A);
                }
                Output::Listen(grammar) => {
                    app.listening = None;
                    let speech = app.rt.speech.as_ref();
                    match speech
                        .and_then(|s| s.listen(key, grammar, app.events.clone(), self.span.clone()))
                    {
                        Some(l) => {
                            media.listen(now, Side::A, true);
                            app.listening = Some(l);
                        }
                        None => {
                            warn!("every recogniser is busy: the caller can press keys");
                            app.call.handle_input(now, Input::ListenFailed);
                        }
                    }
                }
                Output::StopListening => {
                    app.listening = None;
                    if !self.recording.as_ref().is_some_and(|r| r.started) {
                        media.listen(now, Side::A, false);
                    }
                }
                Output::Recording(r) => {
                    let Some(rec) = self.recording.as_mut() else {
                        continue;
                    };
                    match r {
                        crest_call::Recording::Start => rec.start(now, key, media),
                        crest_call::Recording::Pause(reason) => {
                            info!(reason, "recording paused (PCI)");
                            rec.pci(key, Some(reason));
                        }
                        crest_call::Recording::Resume => {
                            info!("recording resumed");
                            rec.pci(key, None);
                        }
                        // The task sends the recorder its end once the call is over.
                        crest_call::Recording::Stop => {}
                    }
                }
                Output::Lookup {
                    method,
                    url,
                    body,
                    timeout,
                } => app
                    .rt
                    .lookup(method, url, body, timeout, app.events.clone()),
                Output::Acd(msg) => {
                    if let Some(acd) = &app.rt.acd {
                        let task = app.events.clone();
                        let _ = acd.send(AcdMsg::Call { key, msg, task });
                    }
                }
                Output::Accept => {
                    let _ = self.core.send(CoreRequest::Accept(key));
                }
                Output::Refuse { retry_after } => {
                    let _ = self.core.send(CoreRequest::Refuse { key, retry_after });
                }
                Output::Connect { target, ring } => {
                    info!(target = ?target, "transferring");
                    let _ = self.core.send(CoreRequest::Connect { key, target, ring });
                }
                Output::HangUp(why) => {
                    let _ = self.core.send(CoreRequest::HangUp(key, why));
                }
                Output::Disconnect => {
                    // The agent's leg goes; the caller holds for the next one.
                    let _ = self.core.send(CoreRequest::Disconnect(key));
                    media.release(now, Side::B);
                    self.agent_held = false;
                    forget_browser(
                        &mut self.browser,
                        &self.metrics,
                        self.browsers.as_ref(),
                        key,
                    );
                }
                Output::IvrStarted { flow, version } => {
                    app.rt.ivr.sessions_active.fetch_add(1, Ordering::Relaxed);
                    app.rt.ivr.sessions_total.fetch_add(1, Ordering::Relaxed);
                    info!(flow, version, "IVR started");
                }
                Output::IvrDone(s) => {
                    app.rt.ivr.sessions_active.fetch_sub(1, Ordering::Relaxed);
                    if let Some(f) = &app.rt.flows {
                        f.count_outcome(&s.flow, &s.version, &s.outcome, s.duration);
                    }
                    info!(
                        flow = s.flow,
                        version = s.version,
                        outcome = s.outcome,
                        path = s.path.join(">"),
                        language = s.language,
                        "IVR done"
                    );
                }
                Output::Record(r) => {
                    info!(
                        outcome = r.outcome,
                        stage = ?r.ended_in,
                        flow = r.flow.as_ref().map(|(f, v)| format!("{f}@{v}")),
                        intent = r.intent,
                        queue = r.queue,
                        agent = r.agent,
                        wait_ms = r.wait.map(|w| w.as_millis() as u64),
                        duration_ms = r.duration.as_millis() as u64,
                        csat = r.csat,
                        path = r.path.join(">"),
                        "call journey"
                    );
                    if let Some(score) = r.csat {
                        app.rt
                            .ivr
                            .csat(r.queue.as_deref().unwrap_or_default(), score);
                    }
                    if let Some((tx, number, call_id)) = &self.cdr {
                        if let Some(score) = r.csat {
                            let _ =
                                tx.send(RecMsg::Csat(Box::new(crest_recording::CsatResponse {
                                    call_id: call_id.clone(),
                                    ended_ms: crate::recording::unix_ms(),
                                    queue: r.queue.clone(),
                                    agent: r.agent.clone(),
                                    score: i64::from(score),
                                })));
                        }
                        let _ = tx.send(RecMsg::Journey(Box::new(journey(call_id, number, r))));
                    }
                }
            }
        }
    }

    /// Nobody listens to the caller any more: their audio is no longer decoded for it
    /// (unless the recording takes it).
    fn stop_decoding_caller(&mut self, now: std::time::Instant) {
        if !self.recording.as_ref().is_some_and(|r| r.started) {
            self.media.listen(now, Side::A, false);
        }
    }

    /// What the recognisers, lookups, renders and the ACD sent the call.
    fn on_app_event(&mut self, now: std::time::Instant, ev: AppEvent) {
        let Some(app) = self.app.as_mut() else {
            return;
        };
        match ev {
            AppEvent::Acd(a) => self.app_input(now, Input::Acd(a)),
            AppEvent::Speech(SpeechEvent::Heard { generation, heard }) => {
                if app.listening.as_ref().map(Listening::generation) == Some(generation) {
                    app.listening = None;
                    self.stop_decoding_caller(now);
                    self.app_input(
                        now,
                        Input::Heard {
                            text: &heard.text,
                            confidence: heard.confidence,
                        },
                    );
                }
            }
            AppEvent::Speech(SpeechEvent::Failed { generation }) => {
                if app.listening.as_ref().map(Listening::generation) == Some(generation) {
                    app.listening = None;
                    self.stop_decoding_caller(now);
                    self.app_input(now, Input::ListenFailed);
                }
            }
            AppEvent::Lookup(answer) => {
                let answer = answer.as_ref().map(|(s, b)| (*s, b.as_str()));
                self.app_input(now, Input::LookupDone(answer));
            }
            AppEvent::Rendered { serial, prompt } if serial == app.serial => match prompt {
                Ok(p) => self.media.play(now, Side::A, &p, app.barge_in),
                Err(e) => {
                    self.span
                        .in_scope(|| warn!(error = e, "prompt not made: the flow goes on"));
                    self.app_input(now, Input::PromptFailed);
                }
            },
            AppEvent::Rendered { .. } => {}
            AppEvent::Transfer(to) => self.app_input(now, Input::Transfer(to)),
        }
    }

    /// The caller's keys, barge-ins, prompt ends and audio, for the controller (and the
    /// recogniser).
    fn feed_app(&mut self, now: std::time::Instant, ev: &MediaEvent) {
        let Some(app) = self.app.as_ref() else {
            return;
        };
        match ev {
            MediaEvent::Audio {
                side: Side::A,
                rate,
                pcm,
            } => {
                if let Some(l) = &app.listening {
                    l.audio(pcm.clone(), *rate);
                }
            }
            MediaEvent::Dtmf {
                side: Side::A, key, ..
            } => self.app_input(now, Input::Key(*key)),
            MediaEvent::BargeIn { side: Side::A, .. } => self.app_input(now, Input::BargeIn),
            MediaEvent::PromptDone { side: Side::A } => self.app_input(now, Input::PromptDone),
            _ => {}
        }
    }

    /// The per-leg quality at the end of the call: logged (the call's record) and summed
    /// into the metrics.
    fn log_quality(&self, duration: Duration) {
        let _g = self.span.enter();
        let m = &self.metrics;
        let mut cdr = Vec::new();
        for side in [Side::A, Side::B] {
            let (Some(q), Some(setup)) = (self.media.quality(side), self.media.setup(side)) else {
                continue;
            };
            m.legs_measured.fetch_add(1, Ordering::Relaxed);
            m.packets_lost
                .fetch_add(q.lost.max(0) as u64, Ordering::Relaxed);
            m.mos_milli_sum
                .fetch_add((q.mos * 1000.0) as u64, Ordering::Relaxed);
            info!(
                leg = ?side,
                codec = %setup.codec,
                packets = q.expected,
                lost = q.lost,
                jitter_ms = format!("{:.1}", q.jitter_ms),
                rtt_ms = q.rtt_ms.map(|r| format!("{r:.1}")),
                mos = format!("{:.2}", q.mos),
                "media quality"
            );
            if let Some((_, number, call_id)) = &self.cdr {
                cdr.push(crest_recording::CallLeg {
                    call_id: call_id.clone(),
                    number: number.clone(),
                    leg: format!("{side:?}"),
                    ended_ms: crate::recording::unix_ms(),
                    duration_ms: duration.as_millis() as i64,
                    codec: setup.codec.to_string(),
                    packets: q.expected as i64,
                    lost: q.lost,
                    jitter_us: (q.jitter_ms * 1000.0) as i64,
                    rtt_us: q.rtt_ms.map(|r| (r * 1000.0) as i64),
                    mos_milli: (q.mos * 1000.0) as i64,
                });
            }
        }
        if let Some((tx, _, _)) = &self.cdr
            && !cdr.is_empty()
        {
            let _ = tx.send(RecMsg::Cdr(cdr));
        }
    }
}

/// Lets go of call `key`'s browser leg and its routes on the shared socket.
fn forget_browser(
    browser: &mut Option<BrowserLeg>,
    metrics: &MediaMetrics,
    browsers: Option<&Browsers>,
    key: CallId,
) {
    if browser.take().is_some() {
        metrics.browser_legs.fetch_sub(1, Ordering::Relaxed);
        if let Some(bs) = browsers {
            bs.remove(key);
        }
    }
}

/// The row the index keeps of a call's journey.
fn journey(call_id: &str, number: &str, r: crest_call::Record) -> crest_recording::CallJourney {
    let (flow, flow_version) = r.flow.unzip();
    crest_recording::CallJourney {
        call_id: call_id.to_owned(),
        number: number.to_owned(),
        ended_ms: crate::recording::unix_ms(),
        duration_ms: r.duration.as_millis() as i64,
        flow,
        flow_version,
        path: r.path.join(">"),
        intent: r.intent,
        queue: r.queue,
        agent: r.agent,
        wait_ms: r.wait.map(|w| w.as_millis() as i64),
        outcome: r.outcome,
        ended_in: format!("{:?}", r.ended_in).to_lowercase(),
    }
}

/// Reads every datagram waiting on `from_sock` and forwards or queues each; what is
/// forwarded goes out of the other leg's socket, or to its browser when it is one.
fn receive(
    media: &mut CallMedia,
    side: Side,
    from_sock: &UdpSocket,
    (to_sock, browser): (&UdpSocket, Option<&Mutex<WebRtcLeg>>),
    buf: &mut [u8],
    counts: &mut Counts,
) {
    let now = Instant::now().into_std();
    while let Ok((n, from)) = from_sock.try_recv_from(buf) {
        counts.received += 1;
        let Some((to, len)) = media.handle_rtp(now, side, from, &mut buf[..n]) else {
            continue;
        };
        let sent = match browser {
            Some(b) => {
                lock(b).send_rtp(now, &buf[..len]);
                true
            }
            None => to_sock.try_send_to(&buf[..len], to).is_ok(),
        };
        counts.forwarded += u64::from(sent);
    }
}
