//! `config/crest.yaml`: loading, validation, and errors that name the file, line and key.

use std::path::{Path, PathBuf};

use crest_acd::SurgeConfig;
use crest_acd::admission::AdmissionConfig;
use crest_sip_proxy::SipConfig;

/// Where Crest listens. An empty address disables that listener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ListenConfig {
    /// SIP over UDP.
    pub(crate) udp: String,
    /// SIP over TCP.
    pub(crate) tcp: String,
    /// SIP over TLS (sips:).
    pub(crate) tls: String,
    /// The address written in Via and Contact; defaults to the UDP listener's address (which
    /// must then not be 0.0.0.0).
    pub(crate) advertise: Option<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            udp: "127.0.0.1:5060".into(),
            tcp: "127.0.0.1:5060".into(),
            tls: "127.0.0.1:5061".into(),
            advertise: None,
        }
    }
}

/// TLS certificate for the SIP TLS listener.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TlsConfig {
    /// PEM certificate chain; when empty Crest makes a self-signed certificate at start.
    pub(crate) cert_file: Option<PathBuf>,
    /// PEM private key.
    pub(crate) key_file: Option<PathBuf>,
    /// PEM trust anchors for outbound TLS (sips: routes); the system bundle when unset.
    pub(crate) ca_file: Option<PathBuf>,
}

/// The admin HTTP server (metrics, health, the API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AdminConfig {
    /// Listen address; empty disables it.
    pub(crate) listen: String,
    /// Client addresses that may read `/metrics` without a token.
    pub(crate) metrics_allow: Vec<String>,
    /// Serve HTTPS (the certificate of `tls:`, or a self-signed one) instead of plain HTTP:
    /// for an admin listener reached over a network.
    pub(crate) tls: bool,
    /// An agent desktop's state channel ends after this long (the agent logs in again).
    pub(crate) agent_session_secs: u64,
    /// The agent desktop over HTTPS (`/agent`, its state channel, SIP over secure WebSocket)
    /// on its own listener, always TLS (the `tls:` certificate, or a self-signed one with a
    /// warning): browsers give a page the microphone only in a secure context. Empty: none.
    pub(crate) desk_listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            metrics_allow: vec!["127.0.0.1".into(), "::1".into()],
            tls: false,
            agent_session_secs: 12 * 3600,
            desk_listen: String::new(),
        }
    }
}

/// Shutdown behaviour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ShutdownConfig {
    /// After SIGTERM, how long calls in progress may go on before Crest exits.
    pub(crate) drain_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { drain_secs: 30 }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// A tracing filter, e.g. `info` or `crest_sip_proxy=debug,info`; `RUST_LOG` overrides it.
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// Socket tuning for the SIP listeners.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SocketConfig {
    /// UDP receive buffer, bytes (the kernel caps it at net.core.rmem_max).
    pub(crate) udp_recv_buffer: usize,
    /// UDP send buffer, bytes.
    pub(crate) udp_send_buffer: usize,
    /// The share of time (0..1, over 200 ms windows) the SIP core may be busy before new calls
    /// and registrations get a fast 503 with Retry-After instead of timing out.
    pub(crate) overload_utilization: f64,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            udp_recv_buffer: 8 << 20,
            udp_send_buffer: 4 << 20,
            overload_utilization: 0.95,
        }
    }
}

/// Media anchoring: RTP ports, codecs, timeouts, bandwidth budgets.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MediaSection {
    /// Anchor every call's RTP on Crest (off: SDP goes through unchanged, media end to end).
    pub(crate) anchor: bool,
    /// The address RTP sockets bind to; default: the advertised address.
    pub(crate) bind: Option<String>,
    /// The address written in SDP; default: `listen.advertise` (or the SIP listener's).
    pub(crate) advertise: Option<String>,
    /// Threads that relay RTP (each its own event loop; calls are spread over them).
    pub(crate) threads: usize,
    /// RTP port range (even ports for RTP, the odd one above for RTCP; two per call).
    pub(crate) port_min: u16,
    /// See `port_min`.
    pub(crate) port_max: u16,
    /// The one UDP port every browser's WebRTC leg uses (ICE, DTLS-SRTP, RTCP muxed);
    /// default: the first free port of the RTP range, so the range's firewall rule covers it.
    pub(crate) webrtc_port: Option<u16>,
    /// Codecs accepted and offered, best first: PCMU, PCMA, G722, opus.
    pub(crate) codecs: Vec<String>,
    /// Packet time Crest asks for, ms.
    pub(crate) ptime_ms: u32,
    /// No RTP for this long from a leg that should send ends the call; 0 never.
    pub(crate) timeout_secs: u64,
    /// RTCP report interval.
    pub(crate) rtcp_interval_secs: u64,
    /// Detect DTMF tones in the audio of G.711 legs without telephone-event.
    pub(crate) inband_dtmf: bool,
    /// Jitter buffer bounds on the transcoding path, ms.
    pub(crate) jitter_min_ms: u64,
    /// See `jitter_min_ms`.
    pub(crate) jitter_max_ms: u64,
    /// Bandwidth budgets.
    pub(crate) bandwidth: BandwidthSection,
    /// Announcements played to the caller when a call to a number is answered (e.g. "this
    /// call is recorded"): number → prompt.
    pub(crate) announce: std::collections::BTreeMap<String, AnnounceSection>,
}

/// A prompt Crest plays into a leg.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AnnounceSection {
    /// A WAV file: 16-bit PCM, mono, 8/16/48 kHz.
    pub(crate) file: PathBuf,
    /// A key or speech from the caller stops it.
    pub(crate) barge_in: bool,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            anchor: true,
            bind: None,
            advertise: None,
            threads: 1,
            port_min: 20_000,
            port_max: 59_999,
            webrtc_port: None,
            codecs: ["PCMU", "PCMA", "G722", "opus"].map(String::from).to_vec(),
            ptime_ms: 20,
            timeout_secs: 60,
            rtcp_interval_secs: 5,
            inband_dtmf: true,
            jitter_min_ms: 40,
            jitter_max_ms: 200,
            bandwidth: BandwidthSection::default(),
            announce: std::collections::BTreeMap::new(),
        }
    }
}

/// Bandwidth budgets in kbit/s (IP layer, both directions); unset means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct BandwidthSection {
    /// The whole node.
    pub(crate) node_kbps: Option<u64>,
    /// Named pools (routes name them with `pool:` and `caller_pool:`).
    pub(crate) pools: std::collections::BTreeMap<String, u64>,
}

/// `ivr:` in crest.yaml.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct IvrSection {
    /// Load and run the flows.
    pub(crate) enabled: bool,
    /// The flows' directory (`*.yaml`; `*.test.yaml` are their scripted calls).
    pub(crate) flows_dir: PathBuf,
    /// How often the directory is looked at for changes.
    pub(crate) reload_secs: u64,
    /// The ACD file whose queues `queue` nodes may name.
    pub(crate) acd_file: Option<PathBuf>,
    /// Callers a recogniser may listen to at once; past it an `ask` takes keys only.
    pub(crate) recognizers: usize,
    /// Recogniser threads; 0: one per core.
    pub(crate) asr_threads: usize,
    /// Canary versions (`flows_dir/canary/NAME.yaml`): their share of callers and the rule
    /// that rolls them back.
    pub(crate) canary: crest_ivr::canary::CanaryRule,
}

impl Default for IvrSection {
    fn default() -> Self {
        Self {
            enabled: false,
            flows_dir: "config/flows".into(),
            reload_secs: 2,
            acd_file: None,
            recognizers: 64,
            asr_threads: 0,
            canary: crest_ivr::canary::CanaryRule::default(),
        }
    }
}

/// `acd:` in crest.yaml.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AcdSection {
    /// Agents, pools and queues (`queue:` routes and the IVR's `queue` nodes name them).
    pub(crate) file: Option<PathBuf>,
    /// How often a waiting caller hears their place in line and the expected wait.
    pub(crate) announce_secs: u64,
    /// Played while a caller waits (WAV, 16-bit mono); unset: a soft generated chime.
    pub(crate) hold_music: Option<PathBuf>,
    /// The surge detector: arrivals at ivr: and queue: routes against a baseline.
    pub(crate) surge: SurgeConfig,
    /// Admission before a caller joins a queue.
    pub(crate) admission: AdmissionConfig,
    /// Where callbacks are dialled: a SIP URI with `{number}` (the customer's number), e.g.
    /// `sip:{number}@192.0.2.1:5060` for a trunk; unset: callbacks are not offered.
    pub(crate) callback_uri: Option<String>,
    /// The service level's threshold: the share of answered callers who waited at most this
    /// many seconds (one of 5, 10, 15, 20, 30, 60, 120, 300).
    pub(crate) service_level_secs: u64,
}

impl Default for AcdSection {
    fn default() -> Self {
        Self {
            file: None,
            announce_secs: 30,
            hold_music: None,
            surge: SurgeConfig::default(),
            admission: AdmissionConfig::default(),
            callback_uri: None,
            service_level_secs: 20,
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) listen: ListenConfig,
    pub(crate) tls: TlsConfig,
    pub(crate) admin: AdminConfig,
    pub(crate) shutdown: ShutdownConfig,
    pub(crate) log: LogConfig,
    pub(crate) sockets: SocketConfig,
    pub(crate) media: MediaSection,
    pub(crate) recording: crate::recording::RecordingSection,
    pub(crate) ivr: IvrSection,
    pub(crate) acd: AcdSection,
    pub(crate) sip: SipConfig,
}

/// A configuration error: where and what.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {key}{sep}{message}", sep = if key.is_empty() { "" } else { ": " })]
pub(crate) struct ConfigError {
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) key: String,
    pub(crate) message: String,
}

/// Finds the line of a dotted key path like `sip.routes[2].uri` in YAML text (block style).
pub(crate) fn locate(text: &str, key: &str) -> usize {
    let mut line_no = 0;
    let mut min_indent: i64 = -1;
    let lines: Vec<&str> = text.lines().collect();
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let mut found = None;
        for (i, l) in lines.iter().enumerate().skip(line_no) {
            let trimmed = l.trim_start();
            let indent = (l.len() - trimmed.len()) as i64;
            let body = trimmed.trim_start_matches("- ");
            if indent > min_indent && (body.starts_with(&format!("{name}:"))) {
                found = Some((i, indent));
                break;
            }
        }
        let Some((i, indent)) = found else { break };
        line_no = i;
        min_indent = indent;
        if let Some(idx) = index {
            let mut seen = 0;
            for (j, l) in lines.iter().enumerate().skip(i + 1) {
                let t = l.trim_start();
                if t.starts_with("- ") || t == "-" {
                    if seen == idx {
                        line_no = j;
                        min_indent = (l.len() - t.len()) as i64;
                        break;
                    }
                    seen += 1;
                }
            }
        }
    }
    line_no + 1
}

/// A file's name (for errors) and text.
pub(crate) fn read_file(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((file, text)),
        Err(e) => Err(ConfigError {
            file,
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }),
    }
}

/// Parses YAML into `T`; errors carry the file, line and column.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(
    file: &str,
    text: &str,
) -> Result<T, ConfigError> {
    // A configuration is the operator's own file, and may list 100,000 users: the parser's
    // default budget (250,000 nodes) is for untrusted input, so it is raised here.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 20_000_000,
            max_events: 50_000_000,
        },
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, column, message) = crest_ivr::load::yaml_error(&e);
        ConfigError {
            file: file.to_owned(),
            line: line as usize,
            column: column as usize,
            key: String::new(),
            message,
        }
    })
}
