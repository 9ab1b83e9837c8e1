//! `config/crest.yaml`: loading, validation, and errors that name the file, line and key.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crest_sip_proxy::SipConfig;
use crest_sip_proxy::config::RouteTarget;

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

/// The admin HTTP server (metrics, health).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AdminConfig {
    /// Listen address; empty disables it.
    pub(crate) listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
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
    pub(crate) ivr: crate::ivr::IvrSection,
    pub(crate) acd: crate::app::AcdSection,
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

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) routes: Vec<(String, RouteTarget, bool)>,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) tls: Option<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) advertise: std::net::IpAddr,
    pub(crate) drain: Duration,
    pub(crate) media: Option<crate::media::Settings>,
    pub(crate) recording: crate::recording::Settings,
    /// The ACD's agents, pools and queues (`acd.file`).
    pub(crate) acd: Option<crest_acd::Model>,
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    (host, port).to_socket_addrs().ok()?.next()
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

impl Config {
    /// Reads and checks a configuration file.
    pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let (file, text) = read_file(path)?;
        Self::from_text(&file, &text)
    }

    /// Parses and checks configuration text.
    pub(crate) fn from_text(file: &str, text: &str) -> Result<Loaded, ConfigError> {
        let config: Self = parse_yaml(file, text)?;
        let err = |key: &str, message: String| ConfigError {
            file: file.to_owned(),
            column: 1,
            line: locate(text, key),
            key: key.to_owned(),
            message,
        };
        let addr = |key: &str, v: &str| -> Result<Option<SocketAddr>, ConfigError> {
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| err(key, format!("{v:?} is not an IP:port address")))
        };
        let udp = addr("listen.udp", &config.listen.udp)?;
        let tcp = addr("listen.tcp", &config.listen.tcp)?;
        let tls = addr("listen.tls", &config.listen.tls)?;
        let admin = addr("admin.listen", &config.admin.listen)?;
        if udp.is_none() && tcp.is_none() && tls.is_none() {
            return Err(err("listen", "enable at least one SIP listener".into()));
        }
        let advertise = match &config.listen.advertise {
            Some(a) => a
                .parse()
                .map_err(|_| err("listen.advertise", format!("{a:?} is not an IP address")))?,
            None => {
                let ip = udp.or(tcp).or(tls).map(|a| a.ip()).expect("checked above");
                if ip.is_unspecified() {
                    return Err(err(
                        "listen.advertise",
                        "set it when listening on 0.0.0.0 or ::".into(),
                    ));
                }
                ip
            }
        };
        for (key, f) in [
            ("tls.cert_file", &config.tls.cert_file),
            ("tls.key_file", &config.tls.key_file),
        ] {
            if let Some(f) = f
                && !f.exists()
            {
                return Err(err(key, format!("{} does not exist", f.display())));
            }
        }
        if config.tls.cert_file.is_some() != config.tls.key_file.is_some() {
            return Err(err(
                "tls",
                "set both cert_file and key_file, or neither".into(),
            ));
        }
        let routes = config
            .sip
            .resolve_routes(resolve)
            .map_err(|e| err(&e.key, e.message))?;
        let drain = Duration::from_secs(config.shutdown.drain_secs);
        let media = if config.media.anchor {
            Some(
                crate::media::Settings::from_config(&config, advertise)
                    .map_err(|(k, m)| err(&k, m))?,
            )
        } else {
            None
        };
        let recording = crate::recording::Settings::from_config(&config.recording)
            .map_err(|(k, m)| err(&k, m))?;
        if (recording.enabled || recording.cdr) && media.is_none() {
            return Err(err(
                if recording.enabled {
                    "recording.enabled"
                } else {
                    "recording.cdr"
                },
                "recording needs media.anchor: true (Crest must carry the audio)".into(),
            ));
        }
        let acd = match &config.acd.file {
            Some(p) => {
                let (f, t) = read_file(p).map_err(|e| err("acd.file", e.to_string()))?;
                let cfg: crest_acd::AcdConfig =
                    parse_yaml(&f, &t).map_err(|e| err("acd.file", e.to_string()))?;
                Some(
                    crest_acd::Model::new(&cfg)
                        .map_err(|e| err("acd.file", format!("{}: {e}", p.display())))?,
                )
            }
            None => None,
        };
        if let Some(t) = &config.acd.callback_uri {
            let uri = crest_sip_proxy::Uri::parse(&t.replace("{number}", "1"))
                .ok()
                .filter(|u| u.is_sip());
            let ip = uri.is_some_and(|u| {
                u.host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok()
            });
            if !t.contains("{number}") || !ip {
                return Err(err(
                    "acd.callback_uri",
                    format!(
                        "{t:?}: a sip: URI with {{number}} and an IP address host, e.g. \"sip:{{number}}@192.0.2.1:5060\""
                    ),
                ));
            }
        }
        for (i, r) in config.sip.routes.iter().enumerate() {
            let key = format!("sip.routes[{i}]");
            if (r.ivr.is_some() || r.queue.is_some()) && media.is_none() {
                return Err(err(
                    &key,
                    "Crest answers ivr: and queue: routes itself: they need media.anchor: true"
                        .into(),
                ));
            }
            if r.ivr.is_some() && !config.ivr.enabled {
                return Err(err(&format!("{key}.ivr"), "needs ivr.enabled: true".into()));
            }
            if let Some(q) = &r.queue {
                match &acd {
                    None => {
                        return Err(err(&format!("{key}.queue"), "needs acd.file".into()));
                    }
                    Some(m) if m.queue(q).is_none() => {
                        return Err(err(
                            &format!("{key}.queue"),
                            format!("no queue named {q:?} in the ACD file"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Loaded {
            acd,
            recording,
            config,
            routes,
            udp,
            tcp,
            tls,
            admin,
            advertise,
            drain,
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_files_load() {
        // Paths in the shipped files are relative to the repository's root, where crest runs.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::env::set_current_dir(&root).unwrap();
        let dir = root.join("config");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                if p.file_name().is_some_and(|f| f == "acd.yaml") {
                    // The ACD's file: agents, pools and queues.
                    let text = std::fs::read_to_string(&p).unwrap();
                    let acd: crest_acd::AcdConfig = parse_yaml("acd.yaml", &text).unwrap();
                    crest_acd::Model::new(&acd).unwrap();
                } else {
                    Config::load(&p).unwrap_or_else(|e| panic!("{e}"));
                }
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    #[test]
    fn a_callback_uri_needs_the_number_and_an_address() {
        for bad in [
            "sip:trunk@192.0.2.1",
            "sip:{number}@trunk.example",
            "http://{number}",
        ] {
            let text = format!("acd:\n  callback_uri: \"{bad}\"\n");
            let e = Config::from_text("c.yaml", &text).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), ("acd.callback_uri", 2), "{e}");
        }
        Config::from_text(
            "c.yaml",
            "acd:\n  callback_uri: \"sip:{number}@192.0.2.1:5060\"\n",
        )
        .unwrap();
    }

    #[test]
    fn unknown_key_names_line() {
        let e =
            Config::from_text("c.yaml", "sip:\n  ring_timeout_secs: 5\n  rnig: 3\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("rnig"), "{e}");
    }

    #[test]
    fn semantic_error_names_line_and_key() {
        let text = "sip:\n  users:\n    - name: a\n      ha1_md5: 00112233445566778899aabbccddeeff\n  routes:\n    - number: \"1\"\n      user: a\n    - number: \"2\"\n      uri: \"http://x\"\n";
        let e = Config::from_text("c.yaml", text).unwrap_err();
        assert_eq!(e.key, "sip.routes[1].uri");
        assert_eq!(e.line, 9, "{e}");
        let e = Config::from_text("c.yaml", "listen:\n  udp: nonsense\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "listen.udp"));
    }
}
