//! The configuration, checked: what `crest run` and `crest check` start from. Built on the
//! plain sections of [`crate::config`] and the settings each part checks for itself.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use crest_sip_proxy::config::RouteTarget;

use crate::config::{Config, ConfigError, locate, parse_yaml, read_file};

/// Everything the server needs, checked.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    pub(crate) routes: Vec<(String, RouteTarget, bool)>,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) tcp: Option<SocketAddr>,
    pub(crate) tls: Option<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
    /// The agent desktop's HTTPS listener.
    pub(crate) desk: Option<SocketAddr>,
    /// Who may read `/metrics` without a token.
    pub(crate) metrics_allow: Vec<std::net::IpAddr>,
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

/// Reads and checks a configuration file.
pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let (file, text) = read_file(path)?;
    from_text(&file, &text)
}

/// Parses and checks configuration text.
pub(crate) fn from_text(file: &str, text: &str) -> Result<Loaded, ConfigError> {
    let config: Config = parse_yaml(file, text)?;
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
    let desk = addr("admin.desk_listen", &config.admin.desk_listen)?;
    if desk.is_some() && admin.is_none() {
        return Err(err(
            "admin.desk_listen",
            "the agent desktop needs admin.listen (its API and state live there)".into(),
        ));
    }
    let metrics_allow = config
        .admin
        .metrics_allow
        .iter()
        .enumerate()
        .map(|(i, a)| {
            a.parse().map_err(|_| {
                err(
                    &format!("admin.metrics_allow[{i}]"),
                    format!("{a:?} is not an IP address"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
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
        Some(crate::media::Settings::from_config(&config, advertise).map_err(|(k, m)| err(&k, m))?)
    } else {
        None
    };
    let recording =
        crate::recording::Settings::from_config(&config.recording).map_err(|(k, m)| err(&k, m))?;
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
    if !crest_acd::WAIT_BUCKETS.contains(&config.acd.service_level_secs) {
        return Err(err(
            "acd.service_level_secs",
            format!(
                "{}: use one of {:?}",
                config.acd.service_level_secs,
                crest_acd::WAIT_BUCKETS
            ),
        ));
    }
    for (i, r) in config.sip.routes.iter().enumerate() {
        let key = format!("sip.routes[{i}]");
        if (r.ivr.is_some() || r.queue.is_some()) && media.is_none() {
            return Err(err(
                &key,
                "Crest answers ivr: and queue: routes itself: they need media.anchor: true".into(),
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
        desk,
        metrics_allow,
        advertise,
        drain,
        media,
    })
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
                    load(&p).unwrap_or_else(|e| panic!("{e}"));
                }
                n += 1;
            }
        }
        assert!(n >= 1);
    }

    #[test]
    fn the_service_level_threshold_is_one_of_the_wait_buckets() {
        let e = from_text(
            "c.yaml",
            "log:\n  level: info\nacd:\n  service_level_secs: 25\n",
        )
        .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.line),
            ("acd.service_level_secs", 4),
            "{e}"
        );
        assert!(
            e.message.contains("[5, 10, 15, 20, 30, 60, 120, 300]"),
            "{e}"
        );
        from_text("c.yaml", "acd:\n  service_level_secs: 30\n").unwrap();
    }

    #[test]
    fn a_callback_uri_needs_the_number_and_an_address() {
        for bad in [
            "sip:trunk@192.0.2.1",
            "sip:{number}@trunk.example",
            "http://{number}",
        ] {
            let text = format!("acd:\n  callback_uri: \"{bad}\"\n");
            let e = from_text("c.yaml", &text).unwrap_err();
            assert_eq!((e.key.as_str(), e.line), ("acd.callback_uri", 2), "{e}");
        }
        from_text(
            "c.yaml",
            "acd:\n  callback_uri: \"sip:{number}@192.0.2.1:5060\"\n",
        )
        .unwrap();
    }

    #[test]
    fn unknown_key_names_line() {
        let e = from_text("c.yaml", "sip:\n  ring_timeout_secs: 5\n  rnig: 3\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.to_string().contains("rnig"), "{e}");
    }

    #[test]
    fn semantic_error_names_line_and_key() {
        let text = "sip:\n  users:\n    - name: a\n      ha1_md5: 00112233445566778899aabbccddeeff\n  routes:\n    - number: \"1\"\n      user: a\n    - number: \"2\"\n      uri: \"http://x\"\n";
        let e = from_text("c.yaml", text).unwrap_err();
        assert_eq!(e.key, "sip.routes[1].uri");
        assert_eq!(e.line, 9, "{e}");
        let e = from_text("c.yaml", "listen:\n  udp: nonsense\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "listen.udp"));
    }
}
