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

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crest_media::anchor::{AnchorConfig, CallAnchor, PortPool, Role};
use crest_media::bandwidth::{self, Budgets, Ledger, LegUse};
use crest_media::bridge::{CallMedia, DtmfSource, LegSetup, MediaConfig, MediaEvent, Side};
use crest_media::codec::CodecKind;
use crest_media::dtmf;
use crest_sip_proxy::{CallInfo, MediaHook, SdpRole};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::Config;

/// The media settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    anchor: AnchorConfig,
    media: MediaConfig,
    bind: IpAddr,
    port_min: u16,
    port_max: u16,
    budgets: Budgets,
    /// Route number → (caller's pool, callee's pool).
    pools: HashMap<String, (Option<String>, Option<String>)>,
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
        Ok(Self {
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
            port_min: m.port_min,
            port_max: m.port_max,
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
}

/// What the admin endpoint reads.
#[derive(Debug, Clone)]
pub(crate) struct MediaShared {
    pub(crate) metrics: Arc<MediaMetrics>,
    pub(crate) ledger: Arc<Mutex<Ledger>>,
}

enum Command {
    Configure(Side, LegSetup),
    /// A key from SIP INFO on a leg: reported, and sent on in the other leg's media.
    InfoKey(Side, char),
    Stop,
}

struct Entry {
    anchor: CallAnchor,
    ports: [u16; 2],
    tx: mpsc::UnboundedSender<Command>,
}

/// The SIP core's media hook (see the module docs).
pub(crate) struct MediaPlane {
    settings: Settings,
    ports: PortPool,
    calls: HashMap<u64, Entry>,
    shared: MediaShared,
    hangups: mpsc::UnboundedSender<(u64, &'static str)>,
    rng: u64,
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
    /// A media plane whose call tasks report media timeouts on `hangups`.
    pub(crate) fn new(
        settings: Settings,
        hangups: mpsc::UnboundedSender<(u64, &'static str)>,
        seed: u64,
    ) -> Self {
        Self {
            ports: PortPool::new(settings.port_min, settings.port_max),
            shared: MediaShared {
                metrics: Arc::default(),
                ledger: Arc::new(Mutex::new(Ledger::new(settings.budgets.clone()))),
            },
            settings,
            calls: HashMap::new(),
            hangups,
            rng: seed | 1,
        }
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
        let sockets = [a.1, a.2, b.1, b.2].map(UdpSocket::from_std);
        let [Ok(ra), Ok(ca), Ok(rb), Ok(cb)] = sockets else {
            self.release(call.key, Some(ports));
            return Err(503);
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let media = CallMedia::new(self.settings.media.clone(), self.random(), self.random());
        let span = info_span!("media", call_id = call.call_id);
        tokio::spawn(
            run_call(
                call.key,
                [ra, ca, rb, cb],
                media,
                rx,
                self.hangups.clone(),
                self.shared.metrics.clone(),
            )
            .instrument(span),
        );
        let session_id = u64::from(self.random());
        self.calls.insert(
            call.key,
            Entry {
                anchor: CallAnchor::new(ports[0], ports[1], session_id),
                ports,
                tx,
            },
        );
        Ok(())
    }

    fn release(&mut self, key: u64, ports: Option<[u16; 2]>) {
        if let Ok(mut l) = self.shared.ledger.lock() {
            l.release(key);
        }
        for p in ports.into_iter().flatten() {
            self.ports.release(p);
        }
    }
}

impl MediaHook for MediaPlane {
    fn exchange(
        &mut self,
        _now: std::time::Instant,
        call: &CallInfo<'_>,
        from: crest_sip_proxy::Side,
        role: SdpRole,
        sdp: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, u16> {
        let Ok(text) = sdp.map(std::str::from_utf8).transpose() else {
            return Err(400);
        };
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
        let ipv6 = self.settings.anchor.address.is_ipv6();
        for (s, setup) in ex.setups {
            if let Ok(mut l) = self.shared.ledger.lock() {
                let bps = bandwidth::leg_bps(setup.codec, setup.ptime, ipv6);
                l.update(call.key, usize::from(s == Side::B), bps);
            }
            let _ = entry.tx.send(Command::Configure(s, setup));
        }
        Ok(ex.body.map(String::into_bytes))
    }

    fn info(
        &mut self,
        _now: std::time::Instant,
        call: u64,
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

    fn ended(&mut self, _now: std::time::Instant, call: u64) {
        if let Some(e) = self.calls.remove(&call) {
            let _ = e.tx.send(Command::Stop);
            self.release(call, Some(e.ports));
        }
    }
}

/// One call's media task: four sockets, the `CallMedia` state machine, its timers.
async fn run_call(
    key: u64,
    sockets: [UdpSocket; 4],
    mut media: CallMedia,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hangups: mpsc::UnboundedSender<(u64, &'static str)>,
    metrics: Arc<MediaMetrics>,
) {
    metrics.calls_active.fetch_add(1, Ordering::Relaxed);
    let [rtp_a, rtcp_a, rtp_b, rtcp_b] = &sockets;
    let mut buf = vec![0u8; 2048];
    let mut transcoding = false;
    let mut timed_out = false;
    loop {
        let now = Instant::now();
        let wake = media
            .poll_timeout()
            .map_or(now + Duration::from_secs(1), Instant::from_std);
        tokio::select! {
            biased;
            c = commands.recv() => match c {
                Some(Command::Configure(s, setup)) => media.configure(now.into_std(), s, setup),
                Some(Command::InfoKey(s, k)) => {
                    media.info_dtmf(s, k);
                    media.send_dtmf(now.into_std(), s.other(), k);
                }
                Some(Command::Stop) | None => break,
            },
            r = rtp_a.readable() => if r.is_ok() {
                receive(&mut media, Side::A, rtp_a, rtp_b, &mut buf, &metrics);
            },
            r = rtp_b.readable() => if r.is_ok() {
                receive(&mut media, Side::B, rtp_b, rtp_a, &mut buf, &metrics);
            },
            r = rtcp_a.readable() => if r.is_ok() {
                while let Ok((n, _)) = rtcp_a.try_recv_from(&mut buf) {
                    media.handle_rtcp(Instant::now().into_std(), Side::A, &buf[..n]);
                }
            },
            r = rtcp_b.readable() => if r.is_ok() {
                while let Ok((n, _)) = rtcp_b.try_recv_from(&mut buf) {
                    media.handle_rtcp(Instant::now().into_std(), Side::B, &buf[..n]);
                }
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now().into_std();
        if media.poll_timeout().is_some_and(|t| t <= now) {
            media.handle_timeout(now);
        }
        while let Some(d) = media.poll_transmit() {
            let sock = match (d.side, d.rtcp) {
                (Side::A, false) => rtp_a,
                (Side::A, true) => rtcp_a,
                (Side::B, false) => rtp_b,
                (Side::B, true) => rtcp_b,
            };
            if !d.rtcp {
                metrics.packets_generated.fetch_add(1, Ordering::Relaxed);
            }
            let _ = sock.try_send_to(&d.data, d.to);
        }
        while let Some(ev) = media.poll_event() {
            match ev {
                MediaEvent::Dtmf { side, key, source } => {
                    let counter = match source {
                        DtmfSource::Rfc4733 => &metrics.dtmf_rfc4733,
                        DtmfSource::InBand => &metrics.dtmf_inband,
                        DtmfSource::Info => &metrics.dtmf_info,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    info!(leg = ?side, %key, ?source, "DTMF");
                }
                MediaEvent::MediaTimeout { side } if !timed_out => {
                    timed_out = true;
                    metrics.media_timeouts.fetch_add(1, Ordering::Relaxed);
                    warn!(leg = ?side, "no RTP: ending the call");
                    let _ = hangups.send((key, "media timeout"));
                }
                MediaEvent::Latched { side, addr } => debug!(leg = ?side, %addr, "RTP latched"),
                other => debug!(event = ?other, "media event"),
            }
        }
        let t = !media.forwarding();
        if t != transcoding {
            transcoding = t;
            if t {
                metrics.calls_transcoded.fetch_add(1, Ordering::Relaxed);
            } else {
                metrics.calls_transcoded.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    if transcoding {
        metrics.calls_transcoded.fetch_sub(1, Ordering::Relaxed);
    }
    for side in [Side::A, Side::B] {
        if let (Some(q), Some(setup)) = (media.quality(side), media.setup(side)) {
            metrics.legs_measured.fetch_add(1, Ordering::Relaxed);
            metrics
                .packets_lost
                .fetch_add(q.lost.max(0) as u64, Ordering::Relaxed);
            metrics
                .mos_milli_sum
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
        }
    }
    metrics.calls_active.fetch_sub(1, Ordering::Relaxed);
}

/// Reads every datagram waiting on `from_sock` and forwards or queues each.
fn receive(
    media: &mut CallMedia,
    side: Side,
    from_sock: &UdpSocket,
    to_sock: &UdpSocket,
    buf: &mut [u8],
    metrics: &MediaMetrics,
) {
    let now = Instant::now().into_std();
    let (mut got, mut sent) = (0, 0);
    while let Ok((n, from)) = from_sock.try_recv_from(buf) {
        got += 1;
        if let Some((to, len)) = media.handle_rtp(now, side, from, &mut buf[..n])
            && to_sock.try_send_to(&buf[..len], to).is_ok()
        {
            sent += 1;
        }
    }
    metrics.packets_received.fetch_add(got, Ordering::Relaxed);
    metrics.packets_forwarded.fetch_add(sent, Ordering::Relaxed);
}
