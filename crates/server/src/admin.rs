//! The admin HTTP server (axum): `/metrics` (Prometheus text format), `/healthz`, `/readyz`,
//! and the API under `/api/v1` with bearer tokens, roles (crate::access), an audit log of every
//! change and refusal, and errors as `application/problem+json`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use crest_recording::{AuditEntry, Index};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;
use utoipa::ToSchema;

use crate::access::{Permission, Role, bearer, token_hash};
use crate::app::AcdMsg;
use crest_call::AgentChange;

use crate::media::MediaShared;
use crate::metrics::{Exposition, Source};
use crate::recording::RecorderHandle;
use crate::sip_io::Snapshot;

impl Source for Snapshot {
    fn expose(&self, out: &mut Exposition<'_, '_>) {
        let st = &self.stats;
        for (name, help, v) in [
            (
                "crest_sip_requests_received_total",
                "SIP requests received, retransmissions included.",
                st.requests_in,
            ),
            (
                "crest_sip_responses_received_total",
                "SIP responses received.",
                st.responses_in,
            ),
            (
                "crest_sip_bad_messages_total",
                "Messages that failed to parse or validate.",
                st.bad_messages,
            ),
            (
                "crest_calls_started_total",
                "Calls routed to a target.",
                st.calls_started,
            ),
            (
                "crest_calls_answered_total",
                "Calls answered.",
                st.calls_answered,
            ),
            ("crest_calls_ended_total", "Calls ended.", st.calls_ended),
            (
                "crest_registrations_total",
                "Successful REGISTER requests.",
                st.registrations,
            ),
            (
                "crest_sip_rate_limited_total",
                "Requests refused by the per-source rate limit.",
                st.rate_limited,
            ),
            (
                "crest_sip_overload_rejected_total",
                "Requests refused with 503 for overload or draining.",
                st.overload_rejected,
            ),
            (
                "crest_sip_auth_rejected_total",
                "Requests refused with 401 or 403.",
                st.auth_rejected,
            ),
        ] {
            out.counter(name, help, v);
        }
        for (name, help, v) in [
            (
                "crest_calls_active",
                "Calls in progress.",
                self.active_calls,
            ),
            (
                "crest_registered_aors",
                "Addresses-of-record with a live binding.",
                self.registered,
            ),
            (
                "crest_sip_transactions",
                "Live SIP transactions.",
                self.transactions,
            ),
            (
                "crest_sip_connections",
                "Open TCP/TLS connections.",
                self.connections,
            ),
            (
                "crest_draining",
                "1 while shutting down.",
                usize::from(self.draining),
            ),
        ] {
            out.gauge(name, help, v);
        }
    }
}

impl Source for MediaShared {
    fn expose(&self, out: &mut Exposition<'_, '_>) {
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let c = &self.metrics;
        out.gauge(
            "crest_media_calls_active",
            "Calls with anchored media.",
            g(&c.calls_active),
        );
        out.gauge(
            "crest_media_calls_transcoding",
            "Anchored calls whose legs differ in codec.",
            g(&c.calls_transcoded),
        );
        out.gauge(
            "crest_media_browser_legs",
            "Agents' browser (WebRTC) legs held by calls.",
            g(&c.browser_legs),
        );
        let (routes, addresses) = self.browser_routes();
        out.gauge(
            "crest_media_browser_routes",
            "Browser legs the shared WebRTC socket routes datagrams to.",
            routes as u64,
        );
        out.gauge(
            "crest_media_browser_addresses",
            "Browsers' source addresses the shared WebRTC socket learnt (ICE).",
            addresses as u64,
        );
        for (name, help, v) in [
            (
                "crest_rtp_packets_received_total",
                "RTP packets received on anchored legs.",
                &c.packets_received,
            ),
            (
                "crest_rtp_packets_forwarded_total",
                "RTP packets forwarded with a rewritten header.",
                &c.packets_forwarded,
            ),
            (
                "crest_rtp_packets_generated_total",
                "RTP packets Crest encoded (transcoding, prompts, DTMF).",
                &c.packets_generated,
            ),
            (
                "crest_media_timeouts_total",
                "Calls ended because a leg sent no RTP.",
                &c.media_timeouts,
            ),
            (
                "crest_rtp_packets_lost_total",
                "Packets lost on ended legs (RTP sequence gaps).",
                &c.packets_lost,
            ),
            (
                "crest_media_legs_measured_total",
                "Ended legs with a quality estimate.",
                &c.legs_measured,
            ),
            (
                "crest_media_rtp_port_busy_total",
                "RTP ports skipped because another program held them.",
                &c.port_failures,
            ),
            (
                "crest_media_bandwidth_refused_total",
                "Calls refused because a bandwidth budget was spent.",
                &c.bandwidth_refused,
            ),
            (
                "crest_media_browser_connects_total",
                "Browser legs whose ICE and DTLS-SRTP came up.",
                &c.browser_connects,
            ),
            (
                "crest_media_browser_failures_total",
                "Browser offers refused, and browser legs that closed before connecting.",
                &c.browser_failures,
            ),
        ] {
            out.counter(name, help, g(v));
        }
        out.counter(
            "crest_media_mos_sum_total",
            "Sum of the ended legs' E-model MOS (divide by crest_media_legs_measured_total).",
            g(&c.mos_milli_sum) as f64 / 1000.0,
        );
        out.counters(
            "crest_dtmf_keys_total",
            "DTMF keys received, by how they came.",
            [
                ("rfc4733", &c.dtmf_rfc4733),
                ("inband", &c.dtmf_inband),
                ("info", &c.dtmf_info),
            ]
            .map(|(source, v)| (vec![("source", source)], g(v))),
        );
        if let Ok(ledger) = self.ledger.lock() {
            let usage = ledger.usage();
            out.gauges(
                "crest_bandwidth_used_bps",
                "Bandwidth of anchored legs (IP layer, both directions), by scope.",
                usage
                    .iter()
                    .map(|u| (vec![("scope", u.scope.as_str())], u.used)),
            );
            out.gauges(
                "crest_bandwidth_budget_bps",
                "Configured bandwidth budget, by scope.",
                usage
                    .iter()
                    .filter_map(|u| Some((vec![("scope", u.scope.as_str())], u.budget?))),
            );
        }
    }
}

/// The admin HTTP server's settings and the index that keeps tokens and the audit log.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    /// Tokens and the audit log (the recording index database).
    pub(crate) index: Arc<Index>,
    /// Addresses that may read `/metrics` without a token (a Prometheus on the box).
    pub(crate) metrics_allow: Vec<IpAddr>,
    /// The service level's threshold (`acd.service_level_secs`).
    pub(crate) service_level_secs: u64,
    /// Recordings to decrypt for a download (recording enabled).
    pub(crate) recordings: Option<Arc<crest_recording::Recordings>>,
    /// The SIP core, which checks an agent desktop's SIP credentials.
    pub(crate) core_requests: mpsc::UnboundedSender<crate::app::CoreRequest>,
    /// The ACD's wrap-up after each call (`acd.yaml`), shown counting down on the desktop.
    pub(crate) wrap_up_secs: u64,
    /// How long an agent desktop's state channel lasts (`admin.agent_session_secs`).
    pub(crate) agent_session: std::time::Duration,
}

/// What the admin endpoint reports on besides the SIP core.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) media: Option<MediaShared>,
    pub(crate) recorder: Option<RecorderHandle>,
    pub(crate) flows: Option<std::sync::Arc<crate::ivr::Flows>>,
    /// The calls Crest answers itself: the ACD's and the IVR's counters.
    pub(crate) app: Option<std::sync::Arc<crate::app::AppRuntime>>,
}

#[derive(Debug, Clone)]
struct State {
    core: mpsc::Sender<oneshot::Sender<Snapshot>>,
    sources: Sources,
    access: Access,
    /// `/api/v1/live` streams open now.
    live_streams: Arc<AtomicU64>,
    /// Agent desktops' state channels (`/agent/ws`) open now.
    agent_channels: Arc<AtomicU64>,
    /// Where `/sip` WebSockets hand their SIP messages, and as what transport.
    sip: (crate::sip_io::Hub, crest_sip_proxy::TransportKind),
    /// Failed agent-desktop logins per client address: (failures, since).
    desk_failures:
        Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, (u32, std::time::Instant)>>>,
}

/// Failed desktop logins from one address before it must wait, and how long.
const DESK_FAILURES: u32 = 5;
const DESK_LOCKOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A browser's WebSocket must come from a page of this listener: its `Origin` (when it sends
/// one; other clients do not) names the same host and port as `Host`. Refused: 403.
fn same_origin(headers: &HeaderMap) -> Result<(), Problem> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    if host.is_some() && origin_host == host {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            format!(
                "a WebSocket from another origin ({}) is refused",
                origin.to_str().unwrap_or("?")
            ),
        ))
    }
}

/// One open stream or channel, counted until it is dropped (the client went).
#[derive(Debug)]
struct Counted(Arc<AtomicU64>);

impl Counted {
    fn open(n: &Arc<AtomicU64>) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The admin listener's own figures.
#[derive(Debug)]
struct AdminFigures {
    live_streams: u64,
    agent_channels: u64,
}

impl Source for AdminFigures {
    fn expose(&self, out: &mut Exposition<'_, '_>) {
        out.gauge(
            "crest_admin_live_streams",
            "Live streams (/api/v1/live, the wallboards) open now.",
            self.live_streams,
        );
        out.gauge(
            "crest_admin_agent_channels",
            "Agent desktops' state channels (/agent/ws) open now.",
            self.agent_channels,
        );
    }
}

/// Serves the admin endpoints until the process exits; `core` answers snapshot requests.
///
/// `/healthz` and `/readyz` are open; `/metrics` takes a token (admin, supervisor) or a
/// client in `admin.metrics_allow`; the API under `/api/v1` takes a bearer token whose role
/// allows the request (crate::access) and answers errors as `application/problem+json`.
pub(crate) async fn serve(
    listener: TcpListener,
    core: mpsc::Sender<oneshot::Sender<Snapshot>>,
    sources: Sources,
    access: Access,
    tls: Option<tokio_rustls::TlsAcceptor>,
    desk: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    sip: crate::sip_io::Hub,
) {
    let state = State {
        core,
        sources,
        access,
        live_streams: Arc::new(AtomicU64::new(0)),
        agent_channels: Arc::new(AtomicU64::new(0)),
        desk_failures: Arc::default(),
        sip: (
            sip,
            if tls.is_some() {
                crest_sip_proxy::TransportKind::Wss
            } else {
                crest_sip_proxy::TransportKind::Ws
            },
        ),
    };
    // The agent desktop's own HTTPS listener: its page, state channel and SIP WebSocket only.
    if let Some((listener, acceptor)) = desk {
        let mut st = state.clone();
        st.sip.1 = crest_sip_proxy::TransportKind::Wss;
        let desk = desk_routes(Router::new())
            .route("/healthz", get(|| async { "ok\n" }))
            .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "no such endpoint".into()) })
            .with_state(st);
        tokio::spawn(serve_tls(listener, desk, acceptor));
    }
    let app = desk_routes(Router::new())
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/calls/{call_id}/recording/pause", post(pause))
        .route("/api/v1/calls/{call_id}/recording/resume", post(resume))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/agents/{name}/state", post(set_agent))
        .route(
            "/api/v1/agents/{name}",
            axum::routing::put(put_agent).delete(remove_agent),
        )
        .route("/api/v1/queues", get(queues))
        .route("/api/v1/surge", post(set_surge))
        .route("/api/v1/live", get(live))
        .route("/wall", get(|| async { axum::response::Html(WALL) }))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/calls/{call_id}/recording", get(download))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/flows", get(flows))
        .route("/api/v1/flows/{name}/canary", put(stage_canary))
        .route("/api/v1/flows/{name}/canary/{action}", post(canary_action))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(state);
    match tls {
        None => {
            if let Err(e) = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            {
                warn!(error = %e, "admin HTTP stopped");
            }
        }
        Some(acceptor) => serve_tls(listener, app, acceptor).await,
    }
}

/// The agent desktop's routes: the page, JsSIP, the state channel and SIP over WebSocket.
fn desk_routes(r: Router<State>) -> Router<State> {
    r.route("/sip", get(sip_websocket))
        .route("/agent", get(|| async { axum::response::Html(AGENT) }))
        .route("/agent/ws", get(agent_channel))
        .route(
            "/agent/jssip.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "max-age=3600"),
                    ],
                    JSSIP,
                )
            }),
        )
}

/// HTTPS: each connection's TLS handshake (bounded in time), then HTTP/1.1 on it with the
/// client's address where `ConnectInfo` finds it.
async fn serve_tls(listener: TcpListener, app: Router, acceptor: tokio_rustls::TlsAcceptor) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    loop {
        let Ok((tcp, remote)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone().layer(axum::Extension(ConnectInfo(remote)));
        tokio::spawn(async move {
            let hs = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let stream = match hs.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "admin TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// An error as RFC 9457 problem details.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    detail: String,
    /// The request field at fault.
    field: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: String) -> Self {
        Self {
            status,
            detail,
            field: None,
        }
    }

    fn field(status: StatusCode, field: &str, detail: String) -> Self {
        Self {
            status,
            detail,
            field: Some(field.to_owned()),
        }
    }
}

/// An error answer (RFC 9457 problem details, `application/problem+json`).
#[derive(Debug, serde::Serialize, ToSchema)]
struct ProblemDoc {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The status's reason phrase.
    title: &'static str,
    /// The HTTP status.
    status: u16,
    /// What went wrong, for a person.
    detail: String,
    /// The request field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemDoc {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("error"),
            status: self.status.as_u16(),
            detail: self.detail,
            field: self.field,
        };
        let mut r = (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&body).unwrap_or_default(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Who asked: the token's name and role.
#[derive(Debug, Clone)]
struct Caller {
    name: String,
    role: Option<Role>,
}

impl Caller {
    const NOBODY: &str = "-";

    fn role_name(&self) -> String {
        self.role
            .map_or_else(|| Self::NOBODY.to_owned(), |r| r.to_string())
    }
}

impl State {
    /// The caller of a request: `Err(401)` without a known token.
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "an API token is needed: Authorization: Bearer <token> (crest token create)"
                        .into(),
                )
            })?;
        let row = self
            .access
            .index
            .token_by_hash(&token_hash(token))
            .await
            .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let t = row.ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unknown or revoked API token".into(),
            )
        })?;
        Ok(Caller {
            role: t.role.parse().ok(),
            name: t.name,
        })
    }

    /// The caller, if their role may `p`: otherwise 401 or 403.
    async fn authorize(&self, headers: &HeaderMap, p: Permission) -> Result<Caller, Problem> {
        let c = self.caller(headers).await?;
        if c.role.is_some_and(|r| r.may(p)) {
            Ok(c)
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                format!("the role {} may not do this", c.role_name()),
            ))
        }
    }

    /// Runs `f` for a caller whose role may `p`, then writes the audit log's line for the
    /// request, a refusal's too: the status answered, and `f`'s detail or the problem's. A
    /// refused caller is named when their token is known.
    async fn audited<T>(
        &self,
        headers: &HeaderMap,
        remote: SocketAddr,
        p: Permission,
        action: &str,
        target: &str,
        f: impl AsyncFnOnce(&Caller) -> Result<(T, String), Problem>,
    ) -> Result<T, Problem> {
        let (who, result) = match self.authorize(headers, p).await {
            Ok(who) => {
                let r = f(&who).await;
                (who, r)
            }
            Err(e) => {
                let who = self.caller(headers).await.unwrap_or(Caller {
                    name: Caller::NOBODY.into(),
                    role: None,
                });
                (who, Err(e))
            }
        };
        let (status, detail) = match &result {
            Ok((_, d)) => (StatusCode::OK, d.clone()),
            Err(e) => (e.status, e.detail.clone()),
        };
        self.audit(&who, action, target, remote, status, &detail)
            .await;
        result.map(|(v, _)| v)
    }

    /// Writes the audit log's line for a request (a failure to is logged: the answer stands).
    async fn audit(
        &self,
        who: &Caller,
        action: &str,
        target: &str,
        remote: SocketAddr,
        status: StatusCode,
        detail: &str,
    ) {
        let e = AuditEntry {
            at_ms: crate::recording::unix_ms(),
            actor: who.name.clone(),
            role: who.role_name(),
            action: action.to_owned(),
            target: target.to_owned(),
            remote: remote.ip().to_string(),
            status: i64::from(status.as_u16()),
            detail: detail.to_owned(),
        };
        if let Err(err) = self.access.index.add_audit(&e).await {
            warn!(action, target, error = %err, "audit log not written");
        }
    }

    async fn snapshot(&self) -> Snapshot {
        let (tx, rx) = oneshot::channel();
        match self.core.send(tx).await {
            Ok(()) => rx.await.unwrap_or_default(),
            Err(_) => Snapshot {
                draining: true,
                ..Snapshot::default()
            },
        }
    }
}

async fn readyz(AxState(st): AxState<State>) -> Response {
    if st.snapshot().await.draining {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if !st.access.metrics_allow.contains(&remote.ip()) {
        st.authorize(&headers, Permission::ReadMetrics).await?;
    }
    let Sources {
        media,
        recorder,
        flows,
        app,
    } = &st.sources;
    let mut parts: Vec<Box<dyn Source>> = vec![
        Box::new(st.snapshot().await),
        Box::new(AdminFigures {
            live_streams: st.live_streams.load(Ordering::Relaxed),
            agent_channels: st.agent_channels.load(Ordering::Relaxed),
        }),
    ];
    if let Some(m) = media {
        parts.push(Box::new(m.clone()));
    }
    if let Some(r) = recorder {
        parts.push(Box::new(r.metrics.clone()));
    }
    if let Some(f) = flows {
        parts.push(Box::new(f.clone()));
    }
    if let Some(a) = app {
        parts.push(Box::new(a.clone()));
    }
    let body = crate::metrics::encode(parts);
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response())
}

/// The body of a PCI pause.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PauseRequest {
    /// Why (kept with the recording's mark): 1 to 200 characters.
    reason: String,
}

/// The longest pause reason.
const MAX_REASON: usize = 200;

/// A call's recording paused or resumed.
#[derive(Debug, serde::Serialize, ToSchema)]
struct PciAnswer {
    /// The caller's SIP Call-ID.
    call_id: String,
    /// Paused now.
    paused: bool,
}

/// `POST /api/v1/calls/{call_id}/recording/pause` `{"reason": "…"}`: PCI pause of the call's
/// recording, for the agent's desktop (the caller's SIP Call-ID). A call Crest answered
/// itself takes it through its controller, which ends a forgotten pause after
/// `recording.pci_limit_secs`.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/recording/pause", tag = "recording",
    params(("call_id" = String, Path, description = "The caller's SIP Call-ID")),
    request_body = PauseRequest,
    responses((status = 200, body = PciAnswer), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn pause(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let reason = st
        .audited(
            &headers,
            remote,
            Permission::PauseRecording,
            "recording.pause",
            &call_id,
            async |_| {
                let reason = parse_pause(&body)?;
                pci(&st, &call_id, Some(reason.clone()))?;
                Ok(((), reason))
            },
        )
        .await;
    reason.map(|()| {
        Json(PciAnswer {
            call_id,
            paused: true,
        })
        .into_response()
    })
}

/// `POST /api/v1/calls/{call_id}/recording/resume`: ends the PCI pause.
#[utoipa::path(post, path = "/api/v1/calls/{call_id}/recording/resume", tag = "recording",
    params(("call_id" = String, Path, description = "The caller's SIP Call-ID")),
    responses((status = 200, body = PciAnswer), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn resume(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.audited(
        &headers,
        remote,
        Permission::PauseRecording,
        "recording.resume",
        &call_id,
        async |_| pci(&st, &call_id, None).map(|()| ((), String::new())),
    )
    .await
    .map(|()| {
        Json(PciAnswer {
            call_id,
            paused: false,
        })
        .into_response()
    })
}

/// A JSON body, or 400 naming the field serde found at fault.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        // serde names the field in its message: "missing field `reason`", "unknown field `x`".
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.contains("field"))
            .unwrap_or("")
            .to_owned();
        let p = StatusCode::BAD_REQUEST;
        if field.is_empty() {
            Problem::new(p, format!("the body is not a valid request: {msg}"))
        } else {
            Problem::field(p, &field, msg)
        }
    })
}

fn parse_pause(body: &[u8]) -> Result<String, Problem> {
    let req: PauseRequest = parse_json(body)?;
    let n = req.reason.trim().chars().count();
    if n == 0 || n > MAX_REASON {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
            format!("reason must be 1 to {MAX_REASON} characters (got {n})"),
        ));
    }
    Ok(req.reason.trim().to_owned())
}

fn pci(st: &State, call_id: &str, pause: Option<String>) -> Result<(), Problem> {
    let (Some(_), Some(media)) = (&st.sources.recorder, &st.sources.media) else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "recording is not enabled".into(),
        ));
    };
    if media.pci(call_id, pause) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("no call with call_id {call_id:?}"),
        ))
    }
}

/// The ACD task's channel, or 409 when no ACD runs.
fn acd(st: &State) -> Result<&mpsc::UnboundedSender<AcdMsg>, Problem> {
    st.sources
        .app
        .as_ref()
        .and_then(|a| a.acd.as_ref())
        .ok_or_else(|| {
            Problem::new(
                StatusCode::CONFLICT,
                "no ACD is configured (acd.file)".into(),
            )
        })
}

fn acd_gone() -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the ACD stopped".into())
}

/// Asks the ACD task `msg` (made with the reply's sender) and waits for the answer.
async fn ask_acd<T>(
    st: &State,
    msg: impl FnOnce(oneshot::Sender<T>) -> AcdMsg,
) -> Result<T, Problem> {
    let (reply, rx) = oneshot::channel();
    acd(st)?.send(msg(reply)).map_err(|_| acd_gone())?;
    rx.await.map_err(|_| acd_gone())
}

/// One agent.
#[derive(Debug, serde::Serialize, ToSchema)]
struct AgentItem {
    /// The agent's name (their SIP user).
    name: String,
    /// Their pool.
    pool: String,
    /// `offline`, `available`, `ringing`, `on_call`, `wrap_up` or `away`.
    state: &'static str,
    /// Why away.
    reason: Option<String>,
    /// Their phone is registered.
    registered: bool,
    /// Skill name → level in 0..=1.
    skills: std::collections::BTreeMap<String, f64>,
    /// Languages they take calls in (primary tags); none: any.
    languages: Vec<String>,
    /// Rating, 0..=1.
    rating: f64,
}

impl From<crest_call::AgentView> for AgentItem {
    fn from(a: crest_call::AgentView) -> Self {
        Self {
            name: a.name,
            pool: a.pool,
            state: a.state,
            reason: a.reason,
            registered: a.registered,
            skills: a.skills.into_iter().collect(),
            languages: a.languages,
            rating: a.rating,
        }
    }
}

/// `GET /api/v1/agents` (admin, supervisor): every agent's state, pool, registration and
/// skills.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents",
    responses((status = 200, body = [AgentItem]), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 409, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn agents(AxState(st): AxState<State>, headers: HeaderMap) -> Result<Response, Problem> {
    st.authorize(&headers, Permission::ReadLive).await?;
    let list = ask_acd(&st, AcdMsg::Agents).await?;
    let list: Vec<AgentItem> = list.into_iter().map(AgentItem::from).collect();
    Ok(Json(list).into_response())
}

/// An agent's entry: what `acd.yaml` says of an agent, but its name.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AgentRequest {
    /// The seat pool (one `acd.yaml` names).
    pool: String,
    /// Skill name → level in 0..=1 (a skill no queue asks for is kept and routes nothing).
    skills: std::collections::BTreeMap<String, f64>,
    /// Languages the agent takes calls in (`en`, `zh-CN`); none: any. Default none.
    #[serde(default)]
    languages: Vec<String>,
    /// Rating from customer satisfaction, 0..=1. Default 0.5.
    rating: Option<f64>,
}

/// `PUT /api/v1/agents/{name}` (admin, supervisor): adds the agent or replaces its pool,
/// skills, languages and rating, in force at once (a call in progress goes on; an available
/// agent takes a waiting caller its new skills allow) and kept in the index database, over
/// `acd.yaml`, across restarts. 201 for a new agent, 200 for an edit.
#[utoipa::path(put, path = "/api/v1/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "The agent's name (their SIP user)")),
    request_body = AgentRequest,
    responses((status = 200, body = AgentItem), (status = 201, body = AgentItem),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn put_agent(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (new, item) = st
        .audited(
            &headers,
            remote,
            Permission::EditAgents,
            "agent.put",
            &name,
            async |who| {
                let req: AgentRequest = parse_json(&body)?;
                let spec = crest_acd::AgentConfig {
                    name: name.clone(),
                    pool: req.pool,
                    skills: req.skills.into_iter().collect(),
                    rating: req.rating.unwrap_or(0.5),
                    languages: req.languages,
                };
                // Checked, kept, then put in force: nothing is kept that the ACD refuses,
                // and nothing is in force that a restart would lose.
                put_agent_msg(&st, &spec, false).await?;
                let json = serde_json::to_string(&spec).unwrap_or_default();
                st.access
                    .index
                    .put_agent_edit(&crest_recording::AgentEdit {
                        name: name.clone(),
                        spec: Some(json.clone()),
                        updated_ms: crate::recording::unix_ms(),
                        updated_by: who.name.clone(),
                    })
                    .await
                    .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                let new = put_agent_msg(&st, &spec, true).await?;
                let item = agent_item(&st, &name).await?;
                Ok(((new, item), json))
            },
        )
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item)).into_response())
}

async fn put_agent_msg(
    st: &State,
    spec: &crest_acd::AgentConfig,
    apply: bool,
) -> Result<bool, Problem> {
    let spec = spec.clone();
    ask_acd(st, |reply| AcdMsg::PutAgent { spec, apply, reply })
        .await?
        .map_err(|e| {
            // The ACD names `agent.skills.x`: the request's field is `skills.x`.
            let field = e.key.strip_prefix("agent.").unwrap_or(&e.key);
            Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, e.to_string())
        })
}

async fn agent_item(st: &State, name: &str) -> Result<AgentItem, Problem> {
    desk(st, name)
        .await?
        .0
        .map(AgentItem::from)
        .ok_or_else(|| unknown_agent(name))
}

fn unknown_agent(name: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, format!("no agent named {name:?}"))
}

/// `DELETE /api/v1/agents/{name}` (admin, supervisor): the agent is logged out (after the
/// call they are on) and offered no call again; kept in the index database across restarts
/// (`PUT` brings them back).
#[utoipa::path(delete, path = "/api/v1/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    responses((status = 204, description = "Removed"), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn remove_agent(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.audited(
        &headers,
        remote,
        Permission::EditAgents,
        "agent.remove",
        &name,
        async |who| {
            agent_item(&st, &name).await?;
            st.access
                .index
                .put_agent_edit(&crest_recording::AgentEdit {
                    name: name.clone(),
                    spec: None,
                    updated_ms: crate::recording::unix_ms(),
                    updated_by: who.name.clone(),
                })
                .await
                .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            let who = name.clone();
            ask_acd(&st, |reply| AcdMsg::RemoveAgent { name: who, reply })
                .await?
                .map_err(|_| unknown_agent(&name))?;
            Ok(((), "removed".to_owned()))
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body of an agent state change.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AgentStateRequest {
    /// `ready`, `away` or `logout`.
    state: String,
    /// Why (away): 1 to 200 characters; default `supervisor`.
    reason: Option<String>,
}

/// `POST /api/v1/agents/{name}/state` `{"state": "ready"|"away"|"logout", "reason": "…"}`
/// (admin, supervisor): a logout lasts until `ready` (registrations do not undo it); `away`
/// and `logout` during a call take effect when it ends.
#[utoipa::path(post, path = "/api/v1/agents/{name}/state", tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    request_body = AgentStateRequest,
    responses((status = 200, body = AgentSet), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn set_agent(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let set = st
        .audited(
            &headers,
            remote,
            Permission::ChangeFloor,
            "agent.state",
            &name,
            async |_| {
                let change = parse_agent_state(&body)?;
                let set = format!("{change:?}");
                change_agent(&st, &name, change).await?;
                Ok((set.clone(), set))
            },
        )
        .await?;
    Ok(Json(AgentSet { agent: name, set }).into_response())
}

/// An agent's state as set.
#[derive(Debug, serde::Serialize, ToSchema)]
struct AgentSet {
    /// The agent.
    agent: String,
    /// What was set: `Ready`, `Away("…")` or `Logout`.
    set: String,
}

fn parse_agent_state(body: &[u8]) -> Result<AgentChange, Problem> {
    let req: AgentStateRequest = parse_json(body)?;
    let reason = match req.reason.as_deref().map(str::trim) {
        None => "supervisor".to_owned(),
        Some(r) if (1..=MAX_REASON).contains(&r.chars().count()) => r.to_owned(),
        Some(r) => {
            return Err(Problem::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "reason",
                format!(
                    "reason must be 1 to {MAX_REASON} characters (got {})",
                    r.chars().count()
                ),
            ));
        }
    };
    match req.state.as_str() {
        "ready" => Ok(AgentChange::Ready),
        "away" => Ok(AgentChange::Away(reason)),
        "logout" => Ok(AgentChange::Logout),
        other => Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "state",
            format!("{other:?}: use ready, away or logout"),
        )),
    }
}

async fn change_agent(st: &State, name: &str, change: AgentChange) -> Result<(), Problem> {
    let name = name.to_owned();
    ask_acd(st, |reply| AcdMsg::SetAgent {
        name,
        change,
        reply,
    })
    .await?
    .map_err(|e| Problem::new(StatusCode::NOT_FOUND, e.to_string()))
}

/// One queue.
#[derive(Debug, serde::Serialize, ToSchema)]
struct QueueItem {
    /// Its name.
    name: String,
    /// Callers waiting in it.
    waiting: usize,
    /// Callers answered by an agent since the start.
    answered: u64,
    /// Callers who hung up before an agent answered.
    abandoned: u64,
    /// Average speed of answer, seconds (none before the first answer).
    asa_secs: Option<f64>,
    /// Share of answered callers who waited at most `service_level_secs`.
    service_level: Option<f64>,
    /// The service level's threshold (`acd.service_level_secs`).
    service_level_secs: u64,
    /// The same figures over the last 15 minutes.
    last_15m: QueueWindow,
    /// The longest wait of a caller waiting now, seconds (none when nobody waits).
    longest_wait_secs: Option<f64>,
    /// Callers who rated their call in the survey after it (a flow's `survey`).
    csat_responses: u64,
    /// Their average score, 1 to 5 (none without a response).
    csat_average: Option<f64>,
}

/// A queue's callers over a window of time.
#[derive(Debug, serde::Serialize, ToSchema)]
struct QueueWindow {
    /// Callers answered by an agent.
    answered: u64,
    /// Callers who hung up before an agent answered.
    abandoned: u64,
    /// Average speed of answer, seconds (none without an answer).
    asa_secs: Option<f64>,
    /// Share of answered callers who waited at most `service_level_secs`.
    service_level: Option<f64>,
}

/// The queues and the surge.
#[derive(Debug, serde::Serialize, ToSchema)]
struct QueuesView {
    /// Every queue.
    queues: Vec<QueueItem>,
    /// 0 normal, 1 self-service first, 2 standby agents, 3 circuit breaker.
    surge_level: u64,
    /// The arrival rate over the baseline.
    surge_ratio: f64,
    /// The level was set by hand (`POST /api/v1/surge`).
    surge_set_by_hand: bool,
    /// Every seat pool.
    pools: Vec<PoolItem>,
}

/// A seat pool's agents.
#[derive(Debug, serde::Serialize, ToSchema)]
struct PoolItem {
    /// Its name.
    name: String,
    /// Agents logged in and not away.
    staffed: u64,
    /// Waiting for a call.
    available: u64,
    /// Ringing, on a call or wrapping up.
    busy: u64,
    /// Away (a break, or set away after missed calls).
    away: u64,
    /// Logged out.
    offline: u64,
    /// Busy over staffed (0 when nobody is staffed).
    occupancy: f64,
}

/// A caller waiting for an agent.
#[derive(Debug, serde::Serialize, ToSchema)]
struct WaitingItem {
    /// The queue.
    queue: String,
    /// Their number, masked (first two and last two characters).
    number: String,
    /// Seconds waited so far.
    waited_secs: f64,
    /// `waiting`, `ringing` (an agent is offered the call) or `callback` (hung up, keeps the
    /// place).
    state: &'static str,
}

/// The most waiting callers a live view lists (the longest waits).
const WAITING_SHOWN: usize = 50;

/// The supervisor's wallboard page (it reads `/api/v1/live` with the token in its URL's
/// fragment).
const WALL: &str = include_str!("wall.html");

/// The agent desktop page (its SIP stack registers over `/sip`).
const AGENT: &str = include_str!("../web/agent.html");

/// JsSIP 3.13.8 bundled by `scripts/bundle-web.sh` (its SHA-256 in `web/jssip.min.js.sha256`,
/// checked by a test).
const JSSIP: &str = include_str!("../web/jssip.min.js");

/// What the wallboard shows, at one moment.
#[derive(Debug, serde::Serialize, ToSchema)]
struct LiveView {
    /// When (ms since the Unix epoch).
    at_ms: i64,
    queues: QueuesView,
    agents: Vec<AgentItem>,
    /// The callers waiting longest (at most 50), longest first.
    waiting: Vec<WaitingItem>,
}

async fn live_view(st: &State) -> Result<LiveView, Problem> {
    let agents = ask_acd(st, AcdMsg::Agents)
        .await?
        .into_iter()
        .map(AgentItem::from)
        .collect();
    let waiting = waiting_callers(st).await?;
    Ok(LiveView {
        at_ms: crate::recording::unix_ms(),
        queues: queues_view(st, &waiting).await?,
        waiting: waiting
            .into_iter()
            .take(WAITING_SHOWN)
            .map(|w| WaitingItem {
                queue: w.queue,
                number: w.number,
                waited_secs: w.waited.as_secs_f64(),
                state: w.state,
            })
            .collect(),
        agents,
    })
}

/// `GET /api/v1/live` (admin, supervisor): server-sent events, one `LiveView` as JSON every
/// second (the wallboard), until the client goes.
#[utoipa::path(get, path = "/api/v1/live", tag = "agents",
    responses((status = 200, description = "text/event-stream of LiveView", body = LiveView),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 409, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn live(AxState(st): AxState<State>, headers: HeaderMap) -> Result<Response, Problem> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    st.authorize(&headers, Permission::ReadLive).await?;
    acd(&st)?;
    // The guard lives in the stream's state: axum drops the stream when the client goes.
    let open = Counted::open(&st.live_streams);
    let stream = futures_util::stream::unfold((st, true, open), |(st, first, open)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let v = live_view(&st).await.ok()?;
        let ev = Event::default().json_data(&v).ok()?;
        Some((Ok::<_, std::convert::Infallible>(ev), (st, false, open)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `GET /sip`: SIP over WebSocket (RFC 7118) for browser phones: the upgrade must ask for the
/// `sip` subprotocol (426 otherwise); each frame is then one SIP message for the SIP core, which
/// challenges a REGISTER or an INVITE as on any other transport.
async fn sip_websocket(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    if let Err(p) = same_origin(&headers) {
        return p.into_response();
    }
    let ws = ws.protocols(["sip"]);
    if ws.selected_protocol().is_none() {
        return Problem::new(
            StatusCode::UPGRADE_REQUIRED,
            "a SIP WebSocket needs the subprotocol sip (Sec-WebSocket-Protocol: sip)".into(),
        )
        .into_response();
    }
    let (hub, kind) = st.sip;
    ws.on_upgrade(move |socket| crate::sip_io::run_websocket(socket, (kind, remote), hub))
}

/// `GET /agent/ws`: the agent state channel, JSON text frames over a WebSocket. The first
/// frame logs in with the agent's SIP credentials (`{"type":"login","user":"…","password":"…"}`,
/// checked against the SIP user's stored HA1 by the SIP core) or an API token of the `agent`
/// role named after them (`{"type":"login_token","token":"…"}`); a refusal waits a second. Then
/// the agent sends `{"type":"ready"}`, `{"type":"away","reason":"…"}` (a break, or not ready) or
/// `{"type":"logout"}`, each audited as the agent's own change, `{"type":"transfer","queue":"…"}`
/// or `{"type":"transfer","agent":"…"}` for the caller they talk to (audited as
/// `call.transfer`), and `audio_check` (what the page hears on its call, logged only); the
/// welcome lists the queues and agents to transfer to; the channel ends after
/// `admin.agent_session_secs` (`the session expired`). Crest sends `welcome` (the
/// agent and the wrap-up time), `state` whenever the agent's state changes (ringing, on a call,
/// wrap-up, away with its reason) and `offer` when their phone rings (the queue, the caller's
/// number masked, their wait, tier and language, and what the IVR learned: its path, the
/// intent, the lookups' results), and `call` for the day's log: `answered`, `missed`, `ended`
/// (with the talk time). Errors are `{"type":"error","detail":"…"}`.
async fn agent_channel(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    if let Err(p) = same_origin(&headers) {
        return p.into_response();
    }
    ws.on_upgrade(move |socket| agent_desk(st, remote, socket))
}

impl State {
    /// Whether `ip` may try a desktop login now (fewer than five failures in the last minute).
    fn desk_login_allowed(&self, ip: IpAddr, now: std::time::Instant) -> bool {
        let Ok(mut f) = self.desk_failures.lock() else {
            return false;
        };
        f.retain(|_, (_, since)| now.duration_since(*since) < DESK_LOCKOUT);
        f.get(&ip).is_none_or(|(n, _)| *n < DESK_FAILURES)
    }

    fn desk_login_failed(&self, ip: IpAddr, now: std::time::Instant) {
        if let Ok(mut f) = self.desk_failures.lock() {
            let e = f.entry(ip).or_insert((0, now));
            e.0 += 1;
        }
    }
}

/// What an agent's desktop sends.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum DeskRequest {
    Login {
        user: String,
        password: String,
    },
    /// With an API token of the `agent` role: its name is the agent's.
    LoginToken {
        token: String,
    },
    Ready,
    Away {
        reason: String,
    },
    Logout,
    /// Send the caller on: to a queue, or to one agent by name (exactly one of them).
    Transfer {
        #[serde(default)]
        queue: Option<String>,
        #[serde(default)]
        agent: Option<String>,
    },
    /// What the page hears on its call (its audio check): the strongest frequency and the
    /// levels at 1 and 2 kHz, dB full scale. Logged for support; changes nothing.
    AudioCheck {
        peak_hz: f64,
        peak_db: f64,
        db_1k: f64,
        db_2k: f64,
    },
}

async fn agent_desk(st: State, remote: SocketAddr, socket: axum::extract::ws::WebSocket) {
    let _open = Counted::open(&st.agent_channels);
    use axum::extract::ws::Message as Ws;
    use futures_util::{SinkExt as _, StreamExt as _};
    let (mut tx, mut rx) = socket.split();
    let send = |v: serde_json::Value| Ws::Text(v.to_string().into());
    let error = |detail: &str| send(serde_json::json!({"type": "error", "detail": detail}));
    // Log in first, within ten seconds.
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), rx.next()).await;
    let Ok(Some(Ok(Ws::Text(t)))) = first else {
        return;
    };
    let login = serde_json::from_str::<DeskRequest>(t.as_str());
    let now = std::time::Instant::now();
    let logs_in = matches!(
        login,
        Ok(DeskRequest::Login { .. } | DeskRequest::LoginToken { .. })
    );
    if logs_in && !st.desk_login_allowed(remote.ip(), now) {
        let _ = tx
            .send(error(
                "too many failed logins from this address: try again in a minute",
            ))
            .await;
        return;
    }
    let user = match login {
        Ok(DeskRequest::Login { user, password }) => {
            let (reply, ok) = oneshot::channel();
            let asked = st
                .access
                .core_requests
                .send(crate::app::CoreRequest::CheckPassword {
                    user: user.clone(),
                    password,
                    reply,
                });
            if asked.is_err() || !ok.await.unwrap_or(false) {
                st.desk_login_failed(remote.ip(), now);
                tracing::warn!(agent = %crest_ids::mask(&user), %remote, "agent desktop login refused");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let _ = tx.send(error("wrong user or password")).await;
                return;
            }
            user
        }
        Ok(DeskRequest::LoginToken { token }) => {
            let row = st.access.index.token_by_hash(&token_hash(&token)).await;
            match row {
                Ok(Some(t)) if t.role.parse::<Role>().ok() == Some(Role::Agent) => t.name,
                _ => {
                    st.desk_login_failed(remote.ip(), now);
                    tracing::warn!(%remote, "agent desktop token login refused");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let _ = tx
                        .send(error("unknown or revoked token, or not an agent's"))
                        .await;
                    return;
                }
            }
        }
        _ => {
            let _ = tx
                .send(error(
                    "log in first: {\"type\":\"login\",\"user\",\"password\"} or {\"type\":\"login_token\",\"token\"}",
                ))
                .await;
            return;
        }
    };
    let who = Caller {
        name: user.clone(),
        role: Some(Role::Agent),
    };
    let Ok((Some(view), _)) = desk(&st, &user).await else {
        let _ = tx.send(error("not an agent of this ACD")).await;
        return;
    };
    tracing::info!(agent = %user, %remote, "agent desktop logged in");
    // The queues and agents a caller may be transferred to.
    let (queues, agents) = ask_acd(&st, AcdMsg::Directory).await.unwrap_or_default();
    let welcome = serde_json::json!({
        "type": "welcome",
        "agent": AgentItem::from(view.clone()),
        "wrap_up_secs": st.access.wrap_up_secs,
        "queues": queues,
        "agents": agents.into_iter().filter(|a| *a != user).collect::<Vec<_>>(),
    });
    if tx.send(send(welcome)).await.is_err() {
        return;
    }
    let mut last = Some(view);
    let mut offered: Option<crest_call::OfferView> = None;
    let mut talking: Option<(crest_call::OfferView, std::time::Instant)> = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    let expires = tokio::time::sleep(st.access.agent_session);
    tokio::pin!(expires);
    loop {
        tokio::select! {
            () = &mut expires => {
                let _ = tx.send(error("the session expired: log in again")).await;
                break;
            }
            _ = tick.tick() => {
                let Ok((view, offer)) = desk(&st, &user).await else { break };
                if view != last {
                    // The day's log: answered, ended (with its length), missed.
                    let state = view.as_ref().map_or("offline", |v| v.state);
                    let was = last.as_ref().map_or("offline", |v| v.state);
                    let event = match (was, state, &offered, &talking) {
                        ("ringing", "on_call", Some(o), _) => {
                            talking = Some((o.clone(), std::time::Instant::now()));
                            Some(("answered", o.clone(), None))
                        }
                        ("ringing", _, Some(o), _) => Some(("missed", o.clone(), None)),
                        ("on_call", _, _, Some((o, at))) => {
                            let secs = at.elapsed().as_secs_f64();
                            let o = o.clone();
                            talking = None;
                            Some(("ended", o, Some(secs)))
                        }
                        _ => None,
                    };
                    if let Some((event, o, secs)) = event {
                        let v = serde_json::json!({
                            "type": "call",
                            "event": event,
                            "queue": o.queue,
                            "caller": o.number,
                            "talked_secs": secs,
                            "at_ms": crate::recording::unix_ms(),
                        });
                        if tx.send(send(v)).await.is_err() {
                            break;
                        }
                    }
                    if let Some(v) = &view {
                        let item = serde_json::to_value(AgentItem::from(v.clone())).unwrap_or_default();
                        if tx.send(send(serde_json::json!({"type": "state", "agent": item}))).await.is_err() {
                            break;
                        }
                    }
                    last = view;
                }
                match offer {
                    Some(o) if offered.is_none() => {
                        offered = Some(o.clone());
                        let v = serde_json::json!({
                            "type": "offer",
                            "queue": o.queue,
                            "caller": o.number,
                            "waited_secs": o.waited.as_secs_f64(),
                            "tier": o.tier,
                            "language": o.language,
                            "context": o
                                .context
                                .into_iter()
                                .map(|(k, v)| (k, serde_json::Value::String(v)))
                                .collect::<serde_json::Map<_, _>>(),
                        });
                        if tx.send(send(v)).await.is_err() {
                            break;
                        }
                    }
                    // Kept until the state change is logged (answered or missed).
                    None if last.as_ref().is_none_or(|v| v.state != "ringing") => offered = None,
                    _ => {}
                }
            }
            m = rx.next() => {
                let t = match m {
                    Some(Ok(Ws::Text(t))) => t,
                    Some(Ok(Ws::Ping(_) | Ws::Pong(_) | Ws::Binary(_))) => continue,
                    _ => break,
                };
                let change = match serde_json::from_str::<DeskRequest>(t.as_str()) {
                    Ok(DeskRequest::Ready) => AgentChange::Ready,
                    Ok(DeskRequest::Away { reason }) => {
                        let r = reason.trim();
                        if r.is_empty() || r.chars().count() > MAX_REASON {
                            let _ = tx.send(error("a reason of 1 to 200 characters")).await;
                            continue;
                        }
                        AgentChange::Away(r.to_owned())
                    }
                    Ok(DeskRequest::Logout) => AgentChange::Logout,
                    Ok(DeskRequest::Transfer { queue, agent }) => {
                        let to = match (queue, agent) {
                            (Some(q), None) => crest_call::Transfer::Queue(q),
                            (None, Some(a)) => crest_call::Transfer::Agent(a),
                            _ => {
                                let _ = tx.send(error("transfer: name a queue or an agent")).await;
                                continue;
                            }
                        };
                        let detail = format!("{to:?} (agent desktop)");
                        let r = transfer(&st, &user, to).await;
                        let status = if r.is_ok() { StatusCode::OK } else { StatusCode::CONFLICT };
                        st.audit(&who, "call.transfer", &user, remote, status, &detail).await;
                        if let Err(e) = r {
                            let _ = tx.send(error(&format!("transfer: {e}"))).await;
                        }
                        continue;
                    }
                    Ok(DeskRequest::AudioCheck { peak_hz, peak_db, db_1k, db_2k }) => {
                        tracing::info!(agent = %user, peak_hz, peak_db, db_1k, db_2k, "agent page audio check");
                        continue;
                    }
                    Ok(DeskRequest::Login { .. } | DeskRequest::LoginToken { .. }) => {
                        let _ = tx.send(error("already logged in")).await;
                        continue;
                    }
                    Err(e) => {
                        let _ = tx.send(error(&format!("not a request: {e}"))).await;
                        continue;
                    }
                };
                let detail = format!("{change:?} (agent desktop)");
                let r = change_agent(&st, &user, change).await;
                let status = r.as_ref().map_or_else(|p| p.status, |()| StatusCode::OK);
                st.audit(&who, "agent.state", &user, remote, status, &detail).await;
                if let Err(p) = r {
                    let _ = tx.send(error(&p.detail)).await;
                }
            }
        }
    }
    tracing::info!(agent = %user, "agent desktop closed");
}

/// Agent `agent` transfers the caller they talk to.
async fn transfer(st: &State, agent: &str, to: crest_call::Transfer) -> Result<(), String> {
    let (reply, rx) = oneshot::channel();
    acd(st)
        .map_err(|p| p.detail)?
        .send(AcdMsg::Transfer {
            agent: agent.to_owned(),
            to,
            reply,
        })
        .map_err(|_| "the ACD is not running".to_owned())?;
    rx.await.map_err(|_| "the ACD is not running".to_owned())?
}

/// What agent `name` sees: their state and the call offered to them.
async fn desk(
    st: &State,
    name: &str,
) -> Result<(Option<crest_call::AgentView>, Option<crest_call::OfferView>), Problem> {
    let name = name.to_owned();
    ask_acd(st, |reply| AcdMsg::Desk { name, reply }).await
}

/// `GET /api/v1/queues` (admin, supervisor): callers waiting per queue and the surge level.
#[utoipa::path(get, path = "/api/v1/queues", tag = "agents",
    responses((status = 200, body = QueuesView), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 409, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn queues(AxState(st): AxState<State>, headers: HeaderMap) -> Result<Response, Problem> {
    st.authorize(&headers, Permission::ReadLive).await?;
    let waiting = waiting_callers(&st).await?;
    Ok(Json(queues_view(&st, &waiting).await?).into_response())
}

/// The callers waiting for an agent, longest first.
async fn waiting_callers(st: &State) -> Result<Vec<crest_call::WaitingView>, Problem> {
    ask_acd(st, AcdMsg::Waiting).await
}

async fn queues_view(
    st: &State,
    waiting_now: &[crest_call::WaitingView],
) -> Result<QueuesView, Problem> {
    acd(st)?;
    let Some(app) = &st.sources.app else {
        return Err(acd_gone());
    };
    let m = &app.metrics;
    let (stats, recent) = (m.queue_stats(), m.recent_stats());
    let csat = app.ivr.csat_by_queue();
    let sl = st.access.service_level_secs;
    Ok(QueuesView {
        queues: m
            .waiting()
            .into_iter()
            .map(|(name, waiting)| {
                let s = stats.get(&name).cloned().unwrap_or_default();
                let r = recent.get(&name).cloned().unwrap_or_default();
                let (n, sum) = csat.get(&name).copied().unwrap_or_default();
                QueueItem {
                    longest_wait_secs: waiting_now
                        .iter()
                        .find(|w| w.queue == name && w.state == "waiting")
                        .map(|w| w.waited.as_secs_f64()),
                    csat_responses: n,
                    csat_average: (n > 0).then(|| sum as f64 / n as f64),
                    last_15m: QueueWindow {
                        answered: r.answered,
                        abandoned: r.abandoned,
                        asa_secs: r.asa().map(|d| d.as_secs_f64()),
                        service_level: r.service_level(sl),
                    },
                    waiting,
                    answered: s.answered,
                    abandoned: s.abandoned,
                    asa_secs: s.asa().map(|d| d.as_secs_f64()),
                    service_level: s.service_level(sl),
                    service_level_secs: sl,
                    name,
                }
            })
            .collect(),
        surge_level: m.surge_level(),
        surge_ratio: m.ratio(),
        surge_set_by_hand: m.surge_by_hand(),
        pools: pools(&m.agent_states()),
    })
}

fn pools(states: &std::collections::BTreeMap<(String, &'static str), u64>) -> Vec<PoolItem> {
    crate::app::pool_figures(states)
        .into_iter()
        .map(|p| PoolItem {
            staffed: p.staffed(),
            occupancy: p.occupancy(),
            available: p.available,
            busy: p.busy,
            away: p.away,
            offline: p.offline,
            name: p.name,
        })
        .collect()
}

/// The body of a surge level set by hand.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SurgeRequest {
    /// `normal`, `self_service_first`, `standby_agents`, `circuit_breaker`, or `auto` (back to
    /// the measured level).
    level: String,
}

/// `POST /api/v1/surge` `{"level": "circuit_breaker"}` (admin, supervisor): admission, the
/// standby pools and the flows follow this level whatever the arrivals, until `auto`.
#[utoipa::path(post, path = "/api/v1/surge", tag = "agents", request_body = SurgeRequest,
    responses((status = 200, body = QueuesView), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn set_surge(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    st.audited(
        &headers,
        remote,
        Permission::ChangeFloor,
        "surge.set",
        "surge",
        async |_| {
            let req: SurgeRequest = parse_json(&body)?;
            let level = surge_level(&req.level).ok_or_else(|| {
            Problem::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "level",
                format!(
                    "{:?}: use normal, self_service_first, standby_agents, circuit_breaker or auto",
                    req.level
                ),
            )
        })?;
            ask_acd(&st, |reply| AcdMsg::SetSurge { level, reply }).await?;
            Ok(((), req.level))
        },
    )
    .await?;
    // What the ACD publishes after its turn (the level is in force already).
    queues(AxState(st), headers).await
}

fn surge_level(name: &str) -> Option<Option<crest_acd::SurgeLevel>> {
    use crest_acd::SurgeLevel as L;
    Some(match name {
        "auto" => None,
        "normal" => Some(L::Normal),
        "self_service_first" => Some(L::SelfServiceFirst),
        "standby_agents" => Some(L::StandbyAgents),
        "circuit_breaker" => Some(L::CircuitBreaker),
        _ => return None,
    })
}

/// A search of call records.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    /// The number dialled (the route).
    number: Option<String>,
    /// The agent who answered.
    agent: Option<String>,
    /// The queue joined.
    queue: Option<String>,
    /// Ended at or after (ms since the Unix epoch).
    from_ms: Option<i64>,
    /// Ended before.
    to_ms: Option<i64>,
    /// At most this many, newest first: 1 to 1,000 (default 100).
    limit: Option<i64>,
}

/// One call Crest answered itself: its journey, and whether it was recorded.
#[derive(Debug, serde::Serialize, ToSchema)]
struct CallItem {
    /// The caller's SIP Call-ID.
    call_id: String,
    /// The number dialled.
    number: String,
    /// Ended (ms since the Unix epoch).
    ended_ms: i64,
    /// From answer to end.
    duration_ms: i64,
    /// The IVR flow and its version.
    flow: Option<String>,
    flow_version: Option<String>,
    /// The flow's nodes, `>`-joined.
    path: String,
    intent: Option<String>,
    queue: Option<String>,
    agent: Option<String>,
    /// Time in the queue.
    wait_ms: Option<i64>,
    /// `answered`, `self-service`, `abandoned-<stage>`, …
    outcome: String,
    /// A recording of it is in the index.
    recorded: bool,
}

/// `GET /api/v1/calls?number=&agent=&queue=&from_ms=&to_ms=&limit=` (admin, supervisor): the
/// records of calls Crest answered itself, newest first.
#[utoipa::path(get, path = "/api/v1/calls", tag = "records", params(CallsQuery),
    responses((status = 200, body = [CallItem]), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn calls(
    AxState(st): AxState<State>,
    headers: HeaderMap,
    query: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    st.authorize(&headers, Permission::ReadRecords).await?;
    let Query(q) = query.map_err(|e| {
        let text = e.body_text();
        let field = ["number", "agent", "queue", "from_ms", "to_ms", "limit"]
            .into_iter()
            .find(|f| text.contains(f))
            .unwrap_or("query");
        Problem::field(StatusCode::BAD_REQUEST, field, text)
    })?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
            format!("limit must be 1 to 1000 (got {limit})"),
        ));
    }
    let index = &st.access.index;
    let db = |e: crest_recording::IndexError| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    };
    let rows = index
        .search_journeys(&crest_recording::JourneyFilter {
            number: q.number,
            agent: q.agent,
            queue: q.queue,
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            limit,
        })
        .await
        .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for j in rows {
        let recorded = !index.by_call(&j.call_id).await.map_err(db)?.is_empty();
        out.push(CallItem {
            call_id: j.call_id,
            number: j.number,
            ended_ms: j.ended_ms,
            duration_ms: j.duration_ms,
            flow: j.flow,
            flow_version: j.flow_version,
            path: j.path,
            intent: j.intent,
            queue: j.queue,
            agent: j.agent,
            wait_ms: j.wait_ms,
            outcome: j.outcome,
            recorded,
        });
    }
    Ok(Json(out).into_response())
}

/// `GET /api/v1/calls/{call_id}/recording` (admin, supervisor): the call's recording,
/// decrypted (every chunk and the hash checked), as `audio/wav` or `audio/ogg`; its PCI pauses
/// in `X-Crest-Pci-Pauses`. Every download is in the audit log.
#[utoipa::path(get, path = "/api/v1/calls/{call_id}/recording", tag = "records",
    params(("call_id" = String, Path, description = "The caller's SIP Call-ID")),
    responses((status = 200, description = "The recording (audio/wav or audio/ogg)"),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc), (status = 409, body = ProblemDoc),
        (status = 500, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn download(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let (id, bytes, ogg, marks) = st
        .audited(
            &headers,
            remote,
            Permission::ReadRecords,
            "recording.download",
            &call_id,
            async |_| {
                let r = fetch_recording(&st, &call_id).await?;
                let detail = format!(
                    "recording {}, {} bytes, {} PCI pauses",
                    r.0,
                    r.1.len(),
                    r.3.len()
                );
                Ok((r, detail))
            },
        )
        .await?;
    let pauses = marks
        .iter()
        .map(|m| {
            format!(
                "{}+{} {}",
                m.offset_ms,
                m.duration_ms,
                m.reason.replace([';', '\r', '\n'], " ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let (ctype, ext) = if ogg {
        ("audio/ogg", "ogg")
    } else {
        ("audio/wav", "wav")
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.{ext}\""),
            ),
        ],
        bytes,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&pauses) {
        r.headers_mut().insert("x-crest-pci-pauses", v);
    }
    Ok(r)
}

/// A call's first recording, decrypted: (its id, the file, Ogg or not, its PCI marks).
async fn fetch_recording(
    st: &State,
    call_id: &str,
) -> Result<(String, Vec<u8>, bool, Vec<crest_recording::Mark>), Problem> {
    let rec = st
        .access
        .recordings
        .as_ref()
        .ok_or_else(|| Problem::new(StatusCode::CONFLICT, "recording is not enabled".into()))?;
    let rows = rec
        .index()
        .by_call(call_id)
        .await
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let row = rows.into_iter().next().ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("no recording of call_id {call_id:?}"),
        )
    })?;
    let (plain, marks) = rec
        .plaintext(&row)
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((row.id.to_string(), plain, row.format == "opus", marks))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
struct AuditQuery {
    /// How many lines, 1 to 10,000 (default 100).
    limit: Option<i64>,
}

/// `GET /api/v1/audit?limit=N` (admin): the last N lines of the audit log (default 100).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [AuditRow]), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn audit(
    AxState(st): AxState<State>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    st.authorize(&headers, Permission::ReadAudit).await?;
    let Query(q) =
        query.map_err(|e| Problem::field(StatusCode::BAD_REQUEST, "limit", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
            format!("limit must be 1 to 10000 (got {limit})"),
        ));
    }
    let rows = st
        .access
        .index
        .audit(limit)
        .await
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let rows: Vec<AuditRow> = rows
        .into_iter()
        .map(|e| AuditRow {
            at_ms: e.at_ms,
            actor: e.actor,
            role: e.role,
            action: e.action,
            target: e.target,
            remote: e.remote,
            status: e.status,
            detail: e.detail,
        })
        .collect();
    Ok(Json(rows).into_response())
}

/// One arm's figures.
#[derive(Debug, serde::Serialize, ToSchema)]
struct ArmKpis {
    /// Calls that left the flow.
    calls: u64,
    /// Served by the IVR alone.
    contained: u64,
    /// Hung up in the flow.
    abandoned: u64,
    /// Handed to a queue.
    to_agent: u64,
    /// Transferred or booked a callback.
    other: u64,
    /// Average time in the flow, seconds.
    average_ivr_secs: f64,
}

impl From<crest_ivr::canary::Kpis> for ArmKpis {
    fn from(k: crest_ivr::canary::Kpis) -> Self {
        Self {
            calls: k.calls,
            contained: k.contained,
            abandoned: k.abandoned,
            to_agent: k.to_agent,
            other: k.other,
            average_ivr_secs: k.average_ivr_secs(),
        }
    }
}

/// A flow's canary.
#[derive(Debug, serde::Serialize, ToSchema)]
struct CanaryView {
    /// The staged version.
    version: String,
    /// Percent of callers it takes while running.
    share_percent: u8,
    /// `running`, or `rolled back: why`.
    state: String,
    /// The stable version's callers since the canary was staged.
    stable: ArmKpis,
    /// The canary's callers.
    canary: ArmKpis,
}

/// A flow in force.
#[derive(Debug, serde::Serialize, ToSchema)]
struct FlowItem {
    /// The flow's name.
    name: String,
    /// The stable version.
    version: String,
    /// Its canary, when one is staged.
    canary: Option<CanaryView>,
}

fn flows_of(st: &State) -> Result<&crate::ivr::Flows, Problem> {
    st.sources
        .flows
        .as_deref()
        .ok_or_else(|| Problem::new(StatusCode::CONFLICT, "the IVR is not enabled".into()))
}

/// `GET /api/v1/flows` (admin, supervisor): the flows in force and their canaries' figures.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows",
    responses((status = 200, body = [FlowItem]), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 409, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn flows(AxState(st): AxState<State>, headers: HeaderMap) -> Result<Response, Problem> {
    st.authorize(&headers, Permission::ReadLive).await?;
    Ok(Json(flow_items(flows_of(&st)?)).into_response())
}

fn flow_items(f: &crate::ivr::Flows) -> Vec<FlowItem> {
    f.list()
        .into_iter()
        .map(|(name, version, c)| FlowItem {
            name,
            version,
            canary: c.map(|c| CanaryView {
                version: c.canary_version().to_owned(),
                share_percent: c.rule().share_percent,
                state: match c.state() {
                    crest_ivr::canary::CanaryState::Running => "running".into(),
                    crest_ivr::canary::CanaryState::RolledBack(why) => {
                        format!("rolled back: {why}")
                    }
                },
                stable: c.stable().into(),
                canary: c.canary().into(),
            }),
        })
        .collect()
}

/// `PUT /api/v1/flows/{name}/canary` (admin), the flow's YAML as the body: checked (every
/// error with its line and column, nothing written when one is found), then staged as the
/// canary of `name`; the answer is the flows as they are then.
#[utoipa::path(put, path = "/api/v1/flows/{name}/canary", tag = "flows",
    params(("name" = String, Path, description = "The flow")),
    request_body(content = String, content_type = "application/yaml",
        description = "The flow file (config/schema/flow.schema.json)"),
    responses((status = 200, body = [FlowItem]), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 422, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn stage_canary(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    st.audited(
        &headers,
        remote,
        Permission::ChangeFlows,
        "flow.stage",
        &name,
        async |who| {
            let f = flows_of(&st)?;
            let text = std::str::from_utf8(&body).map_err(|_| {
                Problem::new(StatusCode::BAD_REQUEST, "the body is not UTF-8 text".into())
            })?;
            let v = f
                .stage(&name, text, &who.name)
                .map_err(|e| canary_problem(&e))?;
            Ok((flow_items(f), format!("version {v}")))
        },
    )
    .await
    .map(|items| Json(items).into_response())
}

/// A canary request's failure as problem details; a flow that does not check lists every
/// error as `line:column: message`.
fn canary_problem(e: &crate::ivr::CanaryError) -> Problem {
    use crate::ivr::CanaryError as E;
    match e {
        E::NoCanary(_) | E::NoStable(_) => Problem::new(StatusCode::NOT_FOUND, e.to_string()),
        E::Io(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        E::Invalid(errs) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            errs.iter()
                .map(|x| format!("{}:{}: {}", x.line, x.column, x.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        E::OtherFlow { .. } => {
            Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "flow", e.to_string())
        }
        E::SameVersion(_) => {
            Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "version", e.to_string())
        }
    }
}

/// `POST /api/v1/flows/{name}/canary/rollback` or `…/promote` (admin): the canary takes no
/// more calls, or its file replaces the stable one; the answer is the flows as they are then.
#[utoipa::path(post, path = "/api/v1/flows/{name}/canary/{action}", tag = "flows",
    params(("name" = String, Path, description = "The flow"),
        ("action" = String, Path, description = "`rollback` or `promote`")),
    responses((status = 200, body = [FlowItem]), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, body = ProblemDoc), (status = 500, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn canary_action(
    AxState(st): AxState<State>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path((name, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let action_name = format!("flow.{action}");
    st.audited(
        &headers,
        remote,
        Permission::ChangeFlows,
        &action_name,
        &name,
        async |who| {
            let f = flows_of(&st)?;
            let done = match action.as_str() {
                "rollback" => f.roll_back(&name, &who.name),
                "promote" => f.promote(&name, &who.name),
                _ => {
                    return Err(Problem::new(
                        StatusCode::NOT_FOUND,
                        format!("no canary action {action:?}: rollback or promote"),
                    ));
                }
            };
            done.map_err(|e| canary_problem(&e))?;
            Ok((flow_items(f), String::new()))
        },
    )
    .await
    .map(|items| Json(items).into_response())
}

/// One line of the audit log.
#[derive(Debug, serde::Serialize, ToSchema)]
struct AuditRow {
    /// When (ms since the Unix epoch).
    at_ms: i64,
    /// The token's name (`-`: none, or unknown).
    actor: String,
    /// Its role.
    role: String,
    /// `recording.pause`, `recording.resume`, `agent.state`.
    action: String,
    /// A Call-ID or an agent's name.
    target: String,
    /// The client's address.
    remote: String,
    /// The status answered.
    status: i64,
    /// The request's detail, or why it was refused.
    detail: String,
}

/// The OpenAPI document of `/api/v1`, generated from the handlers and types above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Crest admin API", description = "Bearer tokens from `crest token create`; errors are application/problem+json."),
    paths(pause, resume, agents, set_agent, put_agent, remove_agent, queues, set_surge, live, calls, download, audit,
        openapi, flows, stage_canary, canary_action),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// `GET /api/v1/openapi.json` (any token): this API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document"),
        (status = 401, body = ProblemDoc)),
    security(("bearer" = [])))]
async fn openapi(AxState(st): AxState<State>, headers: HeaderMap) -> Result<Response, Problem> {
    st.caller(&headers).await?;
    Ok(Json(<ApiDoc as utoipa::OpenApi>::openapi()).into_response())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn the_embedded_jssip_bundle_is_the_one_its_checksum_names() {
        let want = include_str!("../web/jssip.min.js.sha256");
        let got = hex::encode(Sha256::digest(super::JSSIP.as_bytes()));
        assert_eq!(
            want.split_whitespace().next(),
            Some(got.as_str()),
            "rebuild with scripts/bundle-web.sh and commit the bundle and its checksum"
        );
        assert!(super::JSSIP.contains("JsSIP"), "the bundle exposes JsSIP");
    }
}
