//! The admin HTTP endpoint: `/metrics` (Prometheus text format), `/healthz`, `/readyz`.
//! A deliberately small HTTP/1.1 responder: one request per connection, GET only.

use std::fmt::Write as _;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::media::MediaShared;
use crate::recording::RecorderHandle;
use crate::sip_io::Snapshot;

/// Renders the snapshot in the Prometheus text exposition format.
pub(crate) fn render_metrics(s: &Snapshot) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, v: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        );
    };
    let st = &s.stats;
    metric(
        "crest_sip_requests_received_total",
        "counter",
        "SIP requests received, retransmissions included.",
        st.requests_in,
    );
    metric(
        "crest_sip_responses_received_total",
        "counter",
        "SIP responses received.",
        st.responses_in,
    );
    metric(
        "crest_sip_bad_messages_total",
        "counter",
        "Messages that failed to parse or validate.",
        st.bad_messages,
    );
    metric(
        "crest_calls_started_total",
        "counter",
        "Calls routed to a target.",
        st.calls_started,
    );
    metric(
        "crest_calls_answered_total",
        "counter",
        "Calls answered.",
        st.calls_answered,
    );
    metric(
        "crest_calls_ended_total",
        "counter",
        "Calls ended.",
        st.calls_ended,
    );
    metric(
        "crest_registrations_total",
        "counter",
        "Successful REGISTER requests.",
        st.registrations,
    );
    metric(
        "crest_sip_rate_limited_total",
        "counter",
        "Requests refused by the per-source rate limit.",
        st.rate_limited,
    );
    metric(
        "crest_sip_overload_rejected_total",
        "counter",
        "Requests refused with 503 for overload or draining.",
        st.overload_rejected,
    );
    metric(
        "crest_sip_auth_rejected_total",
        "counter",
        "Requests refused with 401 or 403.",
        st.auth_rejected,
    );
    metric(
        "crest_calls_active",
        "gauge",
        "Calls in progress.",
        s.active_calls as u64,
    );
    metric(
        "crest_registered_aors",
        "gauge",
        "Addresses-of-record with a live binding.",
        s.registered as u64,
    );
    metric(
        "crest_sip_transactions",
        "gauge",
        "Live SIP transactions.",
        s.transactions as u64,
    );
    metric(
        "crest_sip_connections",
        "gauge",
        "Open TCP/TLS connections.",
        s.connections as u64,
    );
    metric(
        "crest_draining",
        "gauge",
        "1 while shutting down.",
        u64::from(s.draining),
    );
    out
}

/// Renders the media plane's counters and bandwidth usage.
pub(crate) fn render_media(m: &MediaShared) -> String {
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, v: &AtomicU64| {
        let v = v.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        );
    };
    let c = &m.metrics;
    metric(
        "crest_media_calls_active",
        "gauge",
        "Calls with anchored media.",
        &c.calls_active,
    );
    metric(
        "crest_media_calls_transcoding",
        "gauge",
        "Anchored calls whose legs differ in codec.",
        &c.calls_transcoded,
    );
    metric(
        "crest_rtp_packets_received_total",
        "counter",
        "RTP packets received on anchored legs.",
        &c.packets_received,
    );
    metric(
        "crest_rtp_packets_forwarded_total",
        "counter",
        "RTP packets forwarded with a rewritten header.",
        &c.packets_forwarded,
    );
    metric(
        "crest_rtp_packets_generated_total",
        "counter",
        "RTP packets Crest encoded (transcoding, prompts, DTMF).",
        &c.packets_generated,
    );
    metric(
        "crest_media_timeouts_total",
        "counter",
        "Calls ended because a leg sent no RTP.",
        &c.media_timeouts,
    );
    metric(
        "crest_rtp_packets_lost_total",
        "counter",
        "Packets lost on ended legs (RTP sequence gaps).",
        &c.packets_lost,
    );
    metric(
        "crest_media_legs_measured_total",
        "counter",
        "Ended legs with a quality estimate.",
        &c.legs_measured,
    );
    metric(
        "crest_media_rtp_port_busy_total",
        "counter",
        "RTP ports skipped because another program held them.",
        &c.port_failures,
    );
    metric(
        "crest_media_bandwidth_refused_total",
        "counter",
        "Calls refused because a bandwidth budget was spent.",
        &c.bandwidth_refused,
    );
    let mos = c.mos_milli_sum.load(Ordering::Relaxed) as f64 / 1000.0;
    let _ = write!(
        out,
        "# HELP crest_media_mos_sum Sum of the ended legs' E-model MOS (divide by crest_media_legs_measured_total).\n# TYPE crest_media_mos_sum counter\ncrest_media_mos_sum {mos}\n"
    );
    let _ = write!(
        out,
        "# HELP crest_dtmf_keys_total DTMF keys received, by how they came.\n# TYPE crest_dtmf_keys_total counter\n"
    );
    for (source, v) in [
        ("rfc4733", &c.dtmf_rfc4733),
        ("inband", &c.dtmf_inband),
        ("info", &c.dtmf_info),
    ] {
        let _ = writeln!(
            out,
            "crest_dtmf_keys_total{{source=\"{source}\"}} {}",
            v.load(Ordering::Relaxed)
        );
    }
    if let Ok(ledger) = m.ledger.lock() {
        let _ = write!(
            out,
            "# HELP crest_bandwidth_used_bps Bandwidth of anchored legs (IP layer, both directions), by scope.\n# TYPE crest_bandwidth_used_bps gauge\n"
        );
        let usage = ledger.usage();
        for u in &usage {
            let _ = writeln!(
                out,
                "crest_bandwidth_used_bps{{scope=\"{}\"}} {}",
                u.scope, u.used
            );
        }
        let _ = write!(
            out,
            "# HELP crest_bandwidth_budget_bps Configured bandwidth budget, by scope.\n# TYPE crest_bandwidth_budget_bps gauge\n"
        );
        for u in &usage {
            if let Some(b) = u.budget {
                let _ = writeln!(
                    out,
                    "crest_bandwidth_budget_bps{{scope=\"{}\"}} {b}",
                    u.scope
                );
            }
        }
    }
    out
}

/// A query parameter's value, percent-decoded.
fn param(query: &str, name: &str) -> Option<String> {
    let v = query
        .split('&')
        .find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name))?
        .1
        .as_bytes();
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = v
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (v[i], hex) {
            (b'%', Some(c)) => {
                out.push(c);
                i += 2;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `/recording/pause?call_id=…&reason=…` and `/recording/resume?call_id=…`: PCI pause of a
/// call's recording, for the agent's desktop (the caller's SIP Call-ID). A call Crest
/// answered itself takes it through its controller, which ends a forgotten pause after
/// `recording.pci_limit_secs`.
fn pci(
    recorder: Option<&RecorderHandle>,
    media: Option<&MediaShared>,
    path: &str,
    query: &str,
) -> (&'static str, &'static str, String) {
    let (Some(_), Some(media)) = (recorder, media) else {
        return (
            "409 Conflict",
            "text/plain",
            "recording is not enabled\n".into(),
        );
    };
    let Some(call_id) = param(query, "call_id") else {
        return (
            "400 Bad Request",
            "text/plain",
            "call_id is missing\n".into(),
        );
    };
    let pause = path
        .ends_with("pause")
        .then(|| param(query, "reason").unwrap_or_else(|| "paused".into()));
    if media.pci(&call_id, pause) {
        ("200 OK", "text/plain", "ok\n".into())
    } else {
        (
            "404 Not Found",
            "text/plain",
            format!("no call with call_id {call_id:?}\n"),
        )
    }
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

/// Serves the admin endpoints until the process exits; `core` answers snapshot requests.
pub(crate) async fn serve(
    listener: TcpListener,
    core: mpsc::Sender<oneshot::Sender<Snapshot>>,
    sources: Sources,
) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let core = core.clone();
        let Sources {
            media,
            recorder,
            flows,
            app,
        } = sources.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while n < buf.len() {
                match s.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let req = String::from_utf8_lossy(&buf[..n]);
            let target = req.split_whitespace().nth(1).unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let (tx, rx) = oneshot::channel();
            let snap = match core.send(tx).await {
                Ok(()) => rx.await.unwrap_or_default(),
                Err(_) => Snapshot {
                    draining: true,
                    ..Snapshot::default()
                },
            };
            let (status, ctype, body) = match path {
                "/metrics" => {
                    let mut body = render_metrics(&snap);
                    if let Some(m) = &media {
                        body.push_str(&render_media(m));
                    }
                    if let Some(r) = &recorder {
                        r.metrics.render(&mut body);
                    }
                    if let Some(f) = &flows {
                        f.render(&mut body);
                    }
                    if let Some(a) = &app {
                        a.metrics.render(&mut body);
                        a.render_ivr(&mut body);
                    }
                    ("200 OK", "text/plain; version=0.0.4", body)
                }
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_owned()),
                "/recording/pause" | "/recording/resume" => {
                    pci(recorder.as_ref(), media.as_ref(), path, query)
                }
                "/readyz" if snap.draining => (
                    "503 Service Unavailable",
                    "text/plain",
                    "draining\n".to_owned(),
                ),
                "/readyz" => ("200 OK", "text/plain", "ready\n".to_owned()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = s.write_all(resp.as_bytes()).await {
                debug!(error = %e, "admin write failed");
            }
        });
    }
}
