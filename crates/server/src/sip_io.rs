//! The tokio shell around the sans-IO SIP endpoint: UDP, TCP and TLS sockets, connection
//! reuse, timers, graceful drain. One task owns the `Endpoint` (no locks on the hot path); UDP
//! datagrams are read in batches straight from the socket in that task, stream connections
//! each have a reader task that frames messages by Content-Length and a writer task.
//!
//! ```text
//!  UDP socket ──try_recv_from (batch)──┐
//!  TCP/TLS readers ──frames (mpsc)─────┼─► core task: Endpoint ──► UDP try_send_to / conn writers
//!  timers (sleep_until poll_timeout) ──┘
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use crest_sip_proxy::message::stream_frame_len;
use crest_sip_proxy::{
    ConnectTarget, ConnectionId, Endpoint, Flow, Stats, Transmit, TransportKind,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::app::{AcdMsg, CoreRequest};

/// What the admin server shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) stats: Stats,
    pub(crate) active_calls: usize,
    pub(crate) registered: usize,
    pub(crate) transactions: usize,
    pub(crate) connections: usize,
    pub(crate) draining: bool,
}

pub(crate) enum StreamEvent {
    Opened {
        id: ConnectionId,
        key: (TransportKind, SocketAddr),
        writer: mpsc::Sender<Bytes>,
    },
    Message(Flow, Bytes),
    Closed(ConnectionId, (TransportKind, SocketAddr)),
    ConnectFailed((TransportKind, SocketAddr)),
}

/// Batches of datagrams for the UDP sending thread, in order.
pub(crate) type UdpSendQueue = std::sync::mpsc::Sender<Vec<(SocketAddr, Bytes)>>;

/// Binds the UDP listener and starts its sending thread.
pub(crate) fn start_udp(
    addr: SocketAddr,
    recv: usize,
    send: usize,
) -> io::Result<(UdpSocket, UdpSendQueue)> {
    let (socket, sender) = bind_udp(addr, recv, send)?;
    Ok((socket, spawn_udp_sender(sender)?))
}

/// The listeners and settings the core task runs with.
pub(crate) struct Sockets {
    pub(crate) udp: Option<UdpSocket>,
    /// The sending thread's channel (see [`start_udp`]).
    pub(crate) udp_sender: Option<UdpSendQueue>,
    pub(crate) tcp: Option<TcpListener>,
    pub(crate) tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    /// Client side of TLS, for requests to sips: routes.
    pub(crate) tls_out: Option<TlsOut>,
    /// The share of a 200 ms window the core task may spend working before new calls and
    /// registrations get a fast 503 (the core is saturated: queues grow from here on).
    pub(crate) overload_utilization: f64,
}

/// Binds a UDP socket with large buffers (the kernel caps them at rmem_max/wmem_max); the
/// second handle, on the same socket, is for the sending thread.
fn bind_udp(
    addr: SocketAddr,
    recv: usize,
    send: usize,
) -> io::Result<(UdpSocket, std::net::UdpSocket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    let _ = s.set_recv_buffer_size(recv);
    let _ = s.set_send_buffer_size(send);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    let std_socket: std::net::UdpSocket = s.into();
    let sender = std_socket.try_clone()?;
    Ok((UdpSocket::from_std(std_socket)?, sender))
}

/// A thread that sends the core's UDP datagrams, so that the system calls (and the wake-ups of
/// the receivers they cause) run on the other core. Batches keep their order.
fn spawn_udp_sender(socket: std::net::UdpSocket) -> io::Result<UdpSendQueue> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<(SocketAddr, Bytes)>>();
    std::thread::Builder::new()
        .name("crest-udp-send".into())
        .spawn(move || {
            for batch in rx {
                for (to, data) in batch {
                    // The socket is non-blocking (shared with the receiver): wait out a full
                    // send buffer for at most ~20 ms, then drop (the transaction retransmits).
                    for _ in 0..400 {
                        match socket.send_to(&data, to) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                std::thread::sleep(Duration::from_micros(50));
                            }
                            Err(e) => {
                                debug!(remote = %to, error = %e, "UDP send failed");
                                break;
                            }
                            Ok(_) => break,
                        }
                    }
                }
            }
        })?;
    Ok(tx)
}

struct Core {
    ep: Endpoint,
    udp: Option<Arc<UdpSocket>>,
    udp_out: Vec<(SocketAddr, Bytes)>,
    udp_sender: Option<UdpSendQueue>,
    tls_out: Option<TlsOut>,
    conns: HashMap<ConnectionId, mpsc::Sender<Bytes>>,
    by_remote: HashMap<(TransportKind, SocketAddr), ConnectionId>,
    pending: HashMap<(TransportKind, SocketAddr), Vec<Bytes>>,
    hub: Hub,
    draining: bool,
    shedding: bool,
}

impl Core {
    async fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            self.send(t).await;
        }
    }

    /// Hands the datagrams gathered so far to the sending thread.
    fn flush_udp(&mut self) {
        if self.udp_out.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.udp_out);
        if let Some(tx) = &self.udp_sender
            && tx.send(batch).is_err()
        {
            warn!("UDP sending thread is gone");
        }
    }

    async fn send(&mut self, t: Transmit) {
        match t.flow.transport {
            TransportKind::Udp => self.udp_out.push((t.flow.remote, t.data)),
            kind => {
                let key = (kind, t.flow.remote);
                let conn = t
                    .flow
                    .connection
                    .filter(|c| self.conns.contains_key(c))
                    .or_else(|| self.by_remote.get(&key).copied());
                if let Some(c) = conn
                    && let Some(w) = self.conns.get(&c)
                {
                    if w.try_send(t.data).is_err() {
                        warn!(remote = %t.flow.remote, "connection writer full; message dropped");
                    }
                    return;
                }
                let connector = match kind {
                    TransportKind::Tcp => None,
                    TransportKind::Tls if self.tls_out.is_some() => self.tls_out.clone(),
                    _ => {
                        // WebSocket peers (and TLS without a client config) connect to us.
                        debug!(remote = %t.flow.remote, %kind, "no connection to peer; dropped");
                        return;
                    }
                };
                let first = !self.pending.contains_key(&key);
                self.pending.entry(key).or_default().push(t.data);
                if first {
                    tokio::spawn(connect(key, connector, self.hub.clone()));
                }
            }
        }
    }

    fn on_stream(&mut self, now: Instant, ev: StreamEvent) {
        match ev {
            StreamEvent::Opened { id, key, writer } => {
                for data in self.pending.remove(&key).unwrap_or_default() {
                    let _ = writer.try_send(data);
                }
                self.by_remote.insert(key, id);
                self.conns.insert(id, writer);
            }
            StreamEvent::Message(flow, data) => self.ep.handle_input(now.into_std(), flow, data),
            StreamEvent::Closed(id, key) => {
                self.conns.remove(&id);
                self.ep.connection_closed(id);
                if self.by_remote.get(&key) == Some(&id) {
                    self.by_remote.remove(&key);
                }
            }
            StreamEvent::ConnectFailed(key) => {
                let n = self.pending.remove(&key).map_or(0, |v| v.len());
                warn!(remote = %key.1, transport = %key.0, dropped = n, "connect failed");
            }
        }
    }

    /// What the media tasks and the ACD ask of the endpoint.
    fn request(
        &mut self,
        now: std::time::Instant,
        req: CoreRequest,
        acd: Option<&mpsc::UnboundedSender<AcdMsg>>,
    ) {
        match req {
            CoreRequest::HangUp(key, why) => self.ep.hang_up(now, key, &why),
            CoreRequest::Connect { key, target, ring } => {
                if let Err(status) = self.ep.connect(now, key, &target, ring) {
                    match target {
                        ConnectTarget::User(_) => {
                            if let Some(acd) = acd {
                                let _ = acd.send(AcdMsg::ConnectFailed { key, status });
                            }
                        }
                        ConnectTarget::Uri(uri) => {
                            warn!(uri, status, "transfer target unreachable; hanging up");
                            self.ep.hang_up(now, key, "transfer failed");
                        }
                    }
                }
            }
            CoreRequest::Disconnect(key) => self.ep.disconnect(now, key),
            CoreRequest::CheckPassword {
                user,
                password,
                reply,
            } => {
                let _ = reply.send(self.ep.check_password(&user, &password));
            }
            CoreRequest::Accept(key) => self.ep.accept(now, key),
            CoreRequest::Originate {
                call,
                agent,
                queue,
                uri,
                ring,
            } => {
                let placed = self.ep.originate(
                    now,
                    &ConnectTarget::Uri(uri),
                    "crest",
                    crest_sip_proxy::App::Callback(queue),
                    ring,
                );
                let msg = match placed {
                    Ok(key) => AcdMsg::Dialled { key, call, agent },
                    Err(status) => {
                        warn!(status, "callback not placed");
                        AcdMsg::DialFailed { call }
                    }
                };
                if let Some(acd) = acd {
                    let _ = acd.send(msg);
                }
            }
            CoreRequest::Refuse { key, retry_after } => {
                self.ep.refuse(now, key, 503, Some(retry_after));
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            stats: self.ep.stats().clone(),
            active_calls: self.ep.active_calls(),
            registered: self.ep.registered_users(),
            transactions: self.ep.transactions(),
            connections: self.conns.len(),
            draining: self.draining,
        }
    }
}

/// Where connections (TCP, TLS, and WebSockets the admin listener upgrades) hand their
/// messages to the SIP core.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    events: mpsc::Sender<StreamEvent>,
    next: Arc<AtomicU64>,
}

impl Hub {
    /// Numbers a new connection and tells the core of it: its id, and the channel the core
    /// writes to it through (the sender is the connection's own, for its keep-alive answers).
    async fn open(
        &self,
        key: (TransportKind, SocketAddr),
    ) -> Option<(ConnectionId, mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)> {
        let id = ConnectionId(self.next.fetch_add(1, Ordering::Relaxed));
        let (wtx, wrx) = mpsc::channel::<Bytes>(1024);
        let opened = StreamEvent::Opened {
            id,
            key,
            writer: wtx.clone(),
        };
        self.events.send(opened).await.ok()?;
        Some((id, wtx, wrx))
    }
}

/// The hub, and its receiving end for [`run`].
pub(crate) fn hub() -> (Hub, mpsc::Receiver<StreamEvent>) {
    let (events, rx) = mpsc::channel::<StreamEvent>(8192);
    (
        Hub {
            events,
            next: Arc::new(AtomicU64::new(1)),
        },
        rx,
    )
}

/// How often a WebSocket is pinged, and how long it may stay silent before it is closed.
const WS_PING: Duration = Duration::from_secs(30);
const WS_SILENCE: Duration = Duration::from_secs(75);

/// One SIP-over-WebSocket connection (RFC 7118), upgraded by the admin listener with the `sip`
/// subprotocol: each text or binary frame is one SIP message; a `\r\n\r\n` keep-alive gets
/// `\r\n` back; Crest pings every 30 s and closes a socket silent for 75 s. Contacts registered
/// over it go when it closes (`Endpoint::connection_closed`).
pub(crate) async fn run_websocket(
    socket: axum::extract::ws::WebSocket,
    key: (TransportKind, SocketAddr),
    hub: Hub,
) {
    use axum::extract::ws::Message as Ws;
    use futures_util::{SinkExt as _, StreamExt as _};
    let Some((id, _wtx, mut wrx)) = hub.open(key).await else {
        return;
    };
    info!(remote = %key.1, transport = %key.0, connection = id.0, "SIP WebSocket open");
    let (mut sink, mut stream) = socket.split();
    let flow = Flow {
        transport: key.0,
        remote: key.1,
        connection: Some(id),
    };
    let mut ping = tokio::time::interval(WS_PING);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            out = wrx.recv() => {
                let Some(b) = out else { break };
                let frame = match std::str::from_utf8(&b) {
                    Ok(t) => Ws::Text(t.into()),
                    Err(_) => Ws::Binary(b),
                };
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
            m = stream.next() => {
                let data = match m {
                    Some(Ok(Ws::Text(t))) => Bytes::from(t.as_str().to_owned()),
                    Some(Ok(Ws::Binary(b))) => b,
                    Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => {
                        heard = tokio::time::Instant::now();
                        continue;
                    }
                    Some(Ok(Ws::Close(_)) | Err(_)) | None => break,
                };
                heard = tokio::time::Instant::now();
                if data.as_ref() == b"\r\n\r\n" {
                    if sink.send(Ws::Text("\r\n".into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                if hub.events.send(StreamEvent::Message(flow, data)).await.is_err() {
                    break;
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > WS_SILENCE {
                    debug!(remote = %key.1, "SIP WebSocket silent: closing");
                    break;
                }
                if sink.send(Ws::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
        }
    }
    info!(remote = %key.1, connection = id.0, "SIP WebSocket closed");
    let _ = hub.events.send(StreamEvent::Closed(id, key)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// Runs the SIP core until shutdown is signalled and calls have drained (or `drain` passed).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    hub: Hub,
    mut events_rx: mpsc::Receiver<StreamEvent>,
    ep: Endpoint,
    sockets: Sockets,
    mut snapshots: mpsc::Receiver<oneshot::Sender<Snapshot>>,
    mut requests: mpsc::UnboundedReceiver<CoreRequest>,
    acd: Option<mpsc::UnboundedSender<AcdMsg>>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    if let Some(l) = sockets.tcp {
        tokio::spawn(accept_loop(l, None, TransportKind::Tcp, hub.clone()));
    }
    if let Some((l, acceptor)) = sockets.tls {
        tokio::spawn(accept_loop(
            l,
            Some(acceptor),
            TransportKind::Tls,
            hub.clone(),
        ));
    }
    let mut core = Core {
        ep,
        udp: sockets.udp.map(Arc::new),
        udp_out: Vec::with_capacity(256),
        udp_sender: sockets.udp_sender,
        tls_out: sockets.tls_out,
        conns: HashMap::new(),
        by_remote: HashMap::new(),
        pending: HashMap::new(),
        hub,
        draining: false,
        shedding: false,
    };
    let mut batch = match &core.udp {
        Some(u) => match RecvBatch::new(u) {
            Ok(b) => Some(b),
            Err(e) => {
                warn!(error = %e, "UDP batch receive unavailable; SIP over UDP is off");
                None
            }
        },
        None => None,
    };
    let mut drain_deadline: Option<Instant> = None;
    let overload_utilization = sockets.overload_utilization;
    let mut load = Load::new(Instant::now());
    loop {
        let now = Instant::now();
        if let Some(d) = drain_deadline {
            let active = core.ep.active_calls();
            if active == 0 || now >= d {
                info!(calls_left = active, "drained; exiting");
                return;
            }
        }
        let wake = core
            .ep
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(now + Duration::from_secs(1))
            .min(now + Duration::from_secs(1));
        let udp = core.udp.clone();
        let waiting = Instant::now();
        tokio::select! {
            r = async { match &udp { Some(u) => u.readable().await, None => std::future::pending().await } } => {
                load.idle(waiting);
                if r.is_ok() && let (Some(u), Some(batch)) = (&udp, batch.as_mut()) {
                    let mut n = 0u32;
                    loop {
                        match batch.recv(u) {
                            Ok(count) => {
                                for (from, data) in batch.datagrams(count) {
                                    n += 1;
                                    core.ep.handle_input(Instant::now().into_std(), Flow::udp(from), data);
                                    core.flush().await;
                                    if n.is_multiple_of(64) {
                                        // Timers must not starve behind a flood.
                                        core.ep.handle_timeout(Instant::now().into_std());
                                        core.flush().await;
                                        core.flush_udp();
                                    }
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                debug!(error = %e, "UDP receive error");
                                break;
                            }
                        }
                    }
                }
            }
            Some(ev) = events_rx.recv() => {
                load.idle(waiting);
                core.on_stream(Instant::now(), ev);
                while let Ok(ev) = events_rx.try_recv() {
                    core.on_stream(Instant::now(), ev);
                }
            }
            Some(req) = requests.recv() => {
                load.idle(waiting);
                core.request(Instant::now().into_std(), req, acd.as_ref());
            }
            Some(reply) = snapshots.recv() => {
                load.idle(waiting);
                let _ = reply.send(core.snapshot());
            }
            _ = tokio::time::sleep_until(wake) => load.idle(waiting),
            // A signal, or the signal task gone: either way, drain.
            _ = shutdown.changed(), if drain_deadline.is_none() => {
                load.idle(waiting);
                info!(calls = core.ep.active_calls(), drain_secs = drain.as_secs(), "shutting down: no new calls, draining");
                core.ep.start_draining();
                core.draining = true;
                drain_deadline = Some(Instant::now() + drain);
            }
        }
        let now = Instant::now();
        core.ep.handle_timeout(now.into_std());
        core.flush().await;
        core.flush_udp();
        // Agents' phones registering log them in to the ACD.
        while let Some((user, on)) = core.ep.poll_registration() {
            if let Some(acd) = &acd {
                let _ = acd.send(AcdMsg::Registration { user, on });
            }
        }
        if let Some(util) = load.window_done(Instant::now()) {
            // Two windows in a row: a single pause (a table resize, a slow send) is not overload.
            let over = util > overload_utilization;
            let shed = over && load.was_over;
            load.was_over = over;
            if shed != core.shedding {
                warn!(
                    utilization = format!("{util:.2}"),
                    shedding = shed,
                    "core load"
                );
                core.shedding = shed;
                core.ep.set_shedding(shed);
            }
        }
    }
}

/// Batched UDP receive (`recvmmsg` on Linux, through quinn-udp): under load one system call
/// brings up to 32 datagrams.
struct RecvBatch {
    state: quinn_udp::UdpSocketState,
    storage: Vec<Box<[u8]>>,
    metas: Vec<quinn_udp::RecvMeta>,
}

impl RecvBatch {
    const SLOT: usize = 65_536;

    fn new(socket: &UdpSocket) -> io::Result<Self> {
        let n = quinn_udp::BATCH_SIZE;
        Ok(Self {
            state: quinn_udp::UdpSocketState::new(socket.into())?,
            storage: (0..n)
                .map(|_| vec![0u8; Self::SLOT].into_boxed_slice())
                .collect(),
            metas: vec![quinn_udp::RecvMeta::default(); n],
        })
    }

    /// Reads what is waiting (WouldBlock when nothing is); the number of filled slots.
    fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let Self {
            state,
            storage,
            metas,
        } = self;
        socket.try_io(tokio::io::Interest::READABLE, || {
            let mut bufs: Vec<io::IoSliceMut<'_>> =
                storage.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
            state.recv(socket.into(), &mut bufs, metas)
        })
    }

    /// The datagrams of the first `count` slots (a slot holds several when the kernel
    /// coalesced equal-sized datagrams: GRO, split at `stride`).
    fn datagrams(&self, count: usize) -> impl Iterator<Item = (SocketAddr, Bytes)> + '_ {
        self.metas[..count]
            .iter()
            .zip(&self.storage)
            .flat_map(|(m, buf)| {
                let stride = m.stride.max(1);
                buf[..m.len]
                    .chunks(stride)
                    .map(move |d| (m.addr, Bytes::copy_from_slice(d)))
            })
    }
}

/// How busy the core task is: the share of each 200 ms window not spent waiting.
struct Load {
    window_start: Instant,
    idle: Duration,
    was_over: bool,
}

impl Load {
    const WINDOW: Duration = Duration::from_millis(200);

    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            idle: Duration::ZERO,
            was_over: false,
        }
    }

    /// Counts the time since `since` (when the task started waiting) as idle.
    fn idle(&mut self, since: Instant) {
        self.idle += since.elapsed();
    }

    /// At the end of a window, its utilization (0..1), and a new window starts.
    fn window_done(&mut self, now: Instant) -> Option<f64> {
        let span = now.duration_since(self.window_start);
        if span < Self::WINDOW {
            return None;
        }
        let util = 1.0 - self.idle.as_secs_f64() / span.as_secs_f64();
        self.window_start = now;
        self.idle = Duration::ZERO;
        Some(util.clamp(0.0, 1.0))
    }
}

/// Opens an outbound TCP (or TLS) connection and runs it; reports failure to the core.
async fn connect(key: (TransportKind, SocketAddr), tls: Option<TlsOut>, hub: Hub) {
    let attempt = async {
        let s = TcpStream::connect(key.1).await?;
        let _ = s.set_nodelay(true);
        match tls {
            None => {
                run_stream(s, key, hub.clone()).await;
                Ok(())
            }
            Some(tls) => {
                let name = tls.server_name(key.1);
                let t = tls.connector.connect(name, s).await?;
                run_stream(t, key, hub.clone()).await;
                Ok::<(), io::Error>(())
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            debug!(remote = %key.1, error = %e, "connect failed");
            let _ = hub.events.send(StreamEvent::ConnectFailed(key)).await;
        }
        Err(_) => {
            let _ = hub.events.send(StreamEvent::ConnectFailed(key)).await;
        }
    }
}

/// Outbound TLS: the client configuration and the names to verify, per address (from the
/// routes' sips: URIs; an address without a name is verified as an IP address).
#[derive(Clone)]
pub(crate) struct TlsOut {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) names: Arc<HashMap<SocketAddr, String>>,
}

impl TlsOut {
    fn server_name(&self, addr: SocketAddr) -> rustls::pki_types::ServerName<'static> {
        self.names
            .get(&addr)
            .and_then(|n| rustls::pki_types::ServerName::try_from(n.clone()).ok())
            .unwrap_or_else(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into()))
    }
}

async fn accept_loop(
    l: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    kind: TransportKind,
    hub: Hub,
) {
    loop {
        let (s, remote) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = s.set_nodelay(true);
        let (hub, tls) = (hub.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => run_stream(s, (kind, remote), hub).await,
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await {
                        Ok(Ok(t)) => run_stream(t, (kind, remote), hub).await,
                        Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// One stream connection: frames messages by Content-Length (RFC 3261 §18.3), answers CRLF
/// keep-alive pings (RFC 5626 §4.4.1), and writes what the core sends.
async fn run_stream<S>(stream: S, key: (TransportKind, SocketAddr), hub: Hub)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Some((id, wtx, mut wrx)) = hub.open(key).await else {
        return;
    };
    let events = hub.events;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let flow = Flow {
        transport: key.0,
        remote: key.1,
        connection: Some(id),
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    'read: loop {
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            // Keep-alive: a lone CRLFCRLF ping gets a CRLF pong; stray CRLFs are skipped.
            if buf.starts_with(b"\r\n\r\n") {
                let _ = buf.split_to(4);
                let _ = wtx.try_send(Bytes::from_static(b"\r\n"));
                continue;
            }
            while buf.starts_with(b"\r\n") && buf.len() >= 2 && !buf.starts_with(b"\r\n\r") {
                let _ = buf.split_to(2);
            }
            if buf.is_empty() {
                break;
            }
            match stream_frame_len(&buf) {
                Ok(Some(used)) => {
                    let data = buf.split_to(used).freeze();
                    if events.send(StreamEvent::Message(flow, data)).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Framing is lost on a stream: nothing after this can be trusted.
                    debug!(remote = %key.1, error = %e, "unframeable message; closing connection");
                    break 'read;
                }
            }
        }
    }
    drop(wtx);
    let _ = events.send(StreamEvent::Closed(id, key)).await;
    writer.abort();
}
