//! `crest`: the Crest call center and SIP soft-switch.
//!
//! `crest run` starts the SIP core (UDP, TCP, TLS), the admin HTTP endpoint and waits for
//! SIGTERM/SIGINT, then drains calls. `crest check` validates a configuration. `crest passwd`
//! prints the HA1 hashes to store for a user.

mod access;
mod admin;
mod app;
mod config;
mod flow;
mod ivr;
mod load;
mod media;
mod metrics;
mod recording;
mod simulate;
mod sip_io;
mod speech;
mod tls;

use std::hash::{BuildHasher, Hasher};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use crest_sip_proxy::auth::{Algorithm, ha1};
use crest_sip_proxy::{Endpoint, EndpointConfig, TransportKind};
use tokio::sync::watch;
use tracing::info;

use crate::load::Loaded;

/// mimalloc returns freed memory to the system after a burst (100,000 registrations leave
/// thousands of short-lived transactions behind); glibc's allocator kept it (docs/decisions).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "crest",
    version,
    about = "Crest: cloud call center and SIP soft-switch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Crest.
    Run {
        /// The configuration file.
        #[arg(long, default_value = "config/crest.yaml")]
        config: PathBuf,
    },
    /// Validate a configuration file and exit (non-zero with file:line and the key on error).
    Check {
        /// The configuration file.
        #[arg(long, default_value = "config/crest.yaml")]
        config: PathBuf,
    },
    /// Run an ACD scenario (agents, queues, traffic) in virtual time through the production
    /// routing code, once per strategy on the same seeded traffic.
    Simulate {
        /// The scenario file (see config/scenarios/double11.yaml).
        #[arg(long)]
        scenario: PathBuf,
        /// Strategies to run side by side: weighted, longest-idle, fifo.
        #[arg(long, default_value = "weighted")]
        compare: String,
        /// Overrides the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write an SVG chart of the run over time to this file.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Recordings: list, decrypt, verify, shred, apply the tiering policy.
    Recording {
        #[command(subcommand)]
        command: RecordingCommand,
        /// The configuration file (its `recording:` section).
        #[arg(long, default_value = "config/crest.yaml", global = true)]
        config: PathBuf,
    },
    /// IVR flows: check, run scripted calls, print the JSON Schema.
    Flow {
        #[command(subcommand)]
        command: FlowCommand,
    },
    /// Call detail records: each leg's codec, packets, loss, jitter, round-trip time and MOS.
    Cdr {
        /// One call's Call-ID; every call when omitted.
        call_id: Option<String>,
        /// The configuration file (its `recording:` section).
        #[arg(long, default_value = "config/crest.yaml")]
        config: PathBuf,
    },
    /// Recording keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        /// The configuration file (its `recording:` section).
        #[arg(long, default_value = "config/crest.yaml", global = true)]
        config: PathBuf,
    },
    /// API tokens of the admin API (kept as a SHA-256 in the index database).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        /// The configuration file (its `recording.index`).
        #[arg(long, default_value = "config/crest.yaml", global = true)]
        config: PathBuf,
    },
    /// Print the HA1 hashes for a user (the password is read from standard input).
    Passwd {
        /// The user name.
        user: String,
        /// The realm (sip.auth.realm).
        realm: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print it (the only time it is shown).
    Create {
        /// Who it is for (unique).
        #[arg(long)]
        name: String,
        /// admin, supervisor or agent.
        #[arg(long)]
        role: String,
    },
    /// The tokens in use.
    List,
    /// Revoke a token.
    Revoke {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum RecordingCommand {
    /// Every recording in the index.
    List,
    /// Decrypt a call's recording to a file (every chunk and the hash checked).
    Get {
        /// The call's Call-ID, or a recording id.
        call_id: String,
        /// Where to write the audio (WAV or Ogg Opus).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check every chunk's tag and the hash of every copy in both tiers.
    Verify {
        /// A Call-ID or recording id; every recording with --all.
        call_id: Option<String>,
        /// Check every recording.
        #[arg(long)]
        all: bool,
    },
    /// Delete a call's data keys: its recordings can never be played again.
    Shred {
        /// The call's Call-ID, or a recording id.
        call_id: String,
    },
    /// Run one pass of the tiering and retention policy now.
    Tier,
}

#[derive(Debug, Subcommand)]
enum FlowCommand {
    /// Check flow files: schema and graph errors with file:line:column; non-zero on any error.
    Check {
        /// Flow files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The ACD file whose queues `queue` nodes may name (default: acd.yaml beside the
        /// flows' directory, when it exists).
        #[arg(long)]
        acd: Option<PathBuf>,
    },
    /// Run a flow against scripted calls and check the path, variables and outcome.
    Test {
        /// The flow file.
        flow: PathBuf,
        /// The script (see config/flows/main.test.yaml).
        #[arg(long)]
        script: PathBuf,
    },
    /// Print the JSON Schema of flow files (config/schema/flow.schema.json).
    Schema,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-wrap every recording's data key with `recording.current_key` (audio untouched).
    Rotate,
}

/// Loads the configuration for a recording command and runs it; prints its report.
fn recording_command(
    config: &std::path::Path,
    f: impl FnOnce(&recording::Settings) -> anyhow::Result<(String, bool)>,
) -> ExitCode {
    let loaded = match load::load(config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match f(&loaded.recording) {
        Ok((out, ok)) => {
            print!("{out}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("crest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Recording { command, config } => {
            use recording::cli;
            let ok = |r: anyhow::Result<String>| r.map(|s| (s, true));
            recording_command(&config, |s| match command {
                RecordingCommand::List => ok(cli::list(s)),
                RecordingCommand::Get { call_id, out } => ok(cli::get(s, &call_id, &out)),
                RecordingCommand::Verify { call_id, all } => {
                    if call_id.is_none() && !all {
                        anyhow::bail!("name a Call-ID or give --all");
                    }
                    cli::verify(s, call_id.as_deref())
                }
                RecordingCommand::Shred { call_id } => ok(cli::shred(s, &call_id)),
                RecordingCommand::Tier => ok(cli::tier(s)),
            })
        }
        Command::Flow { command } => {
            let r = match command {
                FlowCommand::Check { files, acd } => flow::check(&files, acd.as_deref()),
                FlowCommand::Test { flow, script } => flow::test(&flow, &script),
                FlowCommand::Schema => Ok(crest_ivr::schema()),
            };
            match r {
                Ok(out) => {
                    print!("{out}");
                    ExitCode::SUCCESS
                }
                Err(out) => {
                    print!("{out}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Cdr { call_id, config } => recording_command(&config, |s| {
            recording::cli::cdr(s, call_id.as_deref()).map(|o| (o, true))
        }),
        Command::Token { command, config } => recording_command(&config, |s| {
            match command {
                TokenCommand::Create { name, role } => access::cli::create(s, &name, &role),
                TokenCommand::List => access::cli::list(s),
                TokenCommand::Revoke { name } => access::cli::revoke(s, &name),
            }
            .map(|o| (o, true))
        }),
        Command::Keys {
            command: KeysCommand::Rotate,
            config,
        } => recording_command(&config, |s| recording::cli::rotate(s).map(|o| (o, true))),
        Command::Simulate {
            scenario,
            compare,
            seed,
            json,
            svg,
        } => {
            let strategies = match simulate::strategies(&compare) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("--compare: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match simulate::run(&scenario, &strategies, seed) {
                Ok(outcomes) => {
                    let out = if json {
                        simulate::json(&outcomes)
                    } else {
                        simulate::table(&outcomes)
                    };
                    print!("{out}");
                    if let Some(path) = svg
                        && let Err(e) = std::fs::write(&path, simulate::svg(&outcomes))
                    {
                        eprintln!("{}: {e}", path.display());
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config } => match load::load(&config) {
            Ok(l) => {
                if l.config.ivr.enabled
                    && let Err(e) = ivr::Flows::open(&l.config.ivr)
                {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
                println!(
                    "{}: OK ({} users, {} routes)",
                    config.display(),
                    l.config.sip.users.len(),
                    l.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Passwd { user, realm } => {
            let mut password = String::new();
            if std::io::stdin().lock().read_line(&mut password).is_err() {
                eprintln!("cannot read the password from standard input");
                return ExitCode::FAILURE;
            }
            let password = password.trim_end_matches(['\r', '\n']);
            println!("- name: {user}");
            println!(
                "  ha1_md5: {}",
                ha1(Algorithm::Md5, &user, &realm, password)
            );
            println!(
                "  ha1_sha256: {}",
                ha1(Algorithm::Sha256, &user, &realm, password)
            );
            ExitCode::SUCCESS
        }
        Command::Run { config } => {
            let loaded = match load::load(&config) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            init_tracing(&loaded.config.log.level);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(loaded)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("crest: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

async fn run(mut l: Loaded) -> anyhow::Result<()> {
    // The SIP section (with possibly 100,000 users) moves into the endpoint, not a copy.
    let sip = std::mem::take(&mut l.config.sip);
    let cfg = &l.config;
    let (udp, udp_sender) = match l.udp {
        Some(a) => {
            let (s, tx) =
                sip_io::start_udp(a, cfg.sockets.udp_recv_buffer, cfg.sockets.udp_send_buffer)
                    .with_context(|| format!("binding UDP {a}"))?;
            (Some(s), Some(tx))
        }
        None => (None, None),
    };
    let tcp = match l.tcp {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding TCP {a}"))?,
        ),
        None => None,
    };
    let tls = match l.tls {
        Some(a) => {
            let acceptor = tls::acceptor(&cfg.tls, &l.advertise.to_string())?;
            let listener = tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding TLS {a}"))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    let mut local = Vec::new();
    for (kind, sock) in [
        (
            TransportKind::Udp,
            udp.as_ref().map(|s| s.local_addr()).transpose()?,
        ),
        (
            TransportKind::Tcp,
            tcp.as_ref().map(|s| s.local_addr()).transpose()?,
        ),
        (
            TransportKind::Tls,
            tls.as_ref().map(|(s, _)| s.local_addr()).transpose()?,
        ),
    ] {
        if let Some(a) = sock {
            local.push((kind, std::net::SocketAddr::new(l.advertise, a.port())));
        }
    }
    let seed = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let now = tokio::time::Instant::now().into_std();
    let mut ep = Endpoint::new(
        now,
        EndpointConfig {
            sip,
            routes: l.routes.clone(),
            local: local.clone(),
            seed,
        },
    );
    let (core_tx, core_rx) = tokio::sync::mpsc::unbounded_channel();
    let recorder = if l.recording.enabled || l.recording.cdr {
        let settings = l.recording.clone();
        let h = tokio::task::spawn_blocking(move || recording::start(settings))
            .await?
            .context("starting the recorder")?;
        info!(
            recording = l.recording.enabled,
            cdr = l.recording.cdr,
            "call records database open"
        );
        Some(h)
    } else {
        None
    };
    let recorder_at_exit = recorder.clone();
    let flows = if l.config.ivr.enabled {
        let mut section = l.config.ivr.clone();
        if section.acd_file.is_none() {
            section.acd_file = l.config.acd.file.clone();
        }
        let f = tokio::task::spawn_blocking(move || ivr::Flows::open(&section))
            .await?
            .map_err(|e| anyhow::anyhow!("IVR flows:\n{e}"))?;
        let f = std::sync::Arc::new(f);
        tokio::spawn(ivr::watch(
            f.clone(),
            std::time::Duration::from_secs(l.config.ivr.reload_secs.max(1)),
        ));
        Some(f)
    } else {
        None
    };
    // Tokens, the audit log and the agent edits live in the index database, recorded calls
    // or not.
    let index = match l.admin {
        Some(_) => Some(std::sync::Arc::new(
            l.recording
                .open_index()
                .await
                .context("opening the index database for the admin API")?,
        )),
        None => None,
    };
    let (acd_tx, acd_rx) = tokio::sync::mpsc::unbounded_channel();
    let app = app_runtime(&l, flows.clone(), acd_tx.clone())?;
    let acd_tx = match (&l.acd, &app) {
        (Some(model), Some(rt)) => {
            let edits = match &index {
                Some(i) => stored_agent_edits(i).await?,
                None => Vec::new(),
            };
            tokio::spawn(
                app::AcdService::new(model.clone(), &edits, &l.config.acd, core_tx.clone(), rt)
                    .run(acd_rx),
            );
            Some(acd_tx)
        }
        _ => None,
    };
    let media_shared = match l.media.clone() {
        Some(settings) => {
            let mut plane = media::MediaPlane::new(settings, core_tx.clone(), seed.rotate_left(17))
                .context("starting the media threads")?;
            if let Some(h) = &recorder {
                plane.set_recorder(h.clone(), l.recording.clone());
            }
            if let Some(rt) = &app {
                plane.set_app(rt.clone());
            }
            let shared = plane.shared();
            ep.set_media(Box::new(plane));
            Some(shared)
        }
        None => None,
    };
    let (snap_tx, snap_rx) = tokio::sync::mpsc::channel(64);
    let (hub, hub_rx) = sip_io::hub();
    if let Some(a) = l.admin {
        let listener = tokio::net::TcpListener::bind(a)
            .await
            .with_context(|| format!("binding admin {a}"))?;
        // HTTPS for an admin listener reached over a network (the SIP TLS certificate).
        let admin_tls = if l.config.admin.tls {
            Some(tls::acceptor(&l.config.tls, &l.advertise.to_string())?)
        } else {
            None
        };
        // The agent desktop's own HTTPS listener.
        let desk = match l.desk {
            Some(d) => Some((
                tokio::net::TcpListener::bind(d)
                    .await
                    .with_context(|| format!("binding admin.desk_listen {d}"))?,
                tls::acceptor(&l.config.tls, &l.advertise.to_string())?,
            )),
            None => None,
        };
        // Recordings to decrypt for the API's downloads (keys, tiers, index).
        let admin_recordings = if l.recording.enabled {
            Some(std::sync::Arc::new(
                l.recording
                    .open()
                    .await
                    .context("opening the recordings for the admin API")?,
            ))
        } else {
            None
        };
        tokio::spawn(admin::serve(
            listener,
            snap_tx,
            admin::Sources {
                media: media_shared,
                recorder,
                flows,
                app: app.clone(),
            },
            admin::Access {
                index: index.clone().expect("opened with the admin listener"),
                metrics_allow: l.metrics_allow.clone(),
                service_level_secs: l.config.acd.service_level_secs,
                recordings: admin_recordings,
                core_requests: core_tx.clone(),
                wrap_up_secs: l.acd.as_ref().map_or(0, |m| m.wrap_up.as_secs()),
                agent_session: std::time::Duration::from_secs(
                    l.config.admin.agent_session_secs.max(1),
                ),
            },
            admin_tls,
            desk,
            hub.clone(),
        ));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    for (kind, a) in &local {
        info!(transport = %kind, address = %a, "SIP listening");
    }
    if let Some(a) = l.admin {
        let scheme = if l.config.admin.tls { "HTTPS" } else { "HTTP" };
        info!(address = %a, scheme, "admin listening (/metrics, /healthz, /readyz, /api/v1, /wall)");
    }
    if let Some(d) = l.desk {
        info!(address = %d, "agent desktop listening: https://{d}/agent");
    }
    // Outbound TLS for sips: routes (and transport=tls), verified against the route's host name.
    let names: std::collections::HashMap<_, _> = l
        .routes
        .iter()
        .filter_map(|(_, t, _)| match t {
            crest_sip_proxy::config::RouteTarget::Uri(uri, addr) => Some((*addr, uri.host.clone())),
            crest_sip_proxy::config::RouteTarget::User(_)
            | crest_sip_proxy::config::RouteTarget::App(_) => None,
        })
        .collect();
    let tls_out = sip_io::TlsOut {
        connector: tls::connector(&cfg.tls)?,
        names: std::sync::Arc::new(names),
    };
    let sockets = sip_io::Sockets {
        tls_out: Some(tls_out),
        udp,
        udp_sender,
        tcp,
        tls,
        overload_utilization: cfg.sockets.overload_utilization,
    };
    sip_io::run(
        hub, hub_rx, ep, sockets, snap_rx, core_rx, acd_tx, stop_rx, l.drain,
    )
    .await;
    if let Some(h) = recorder_at_exit {
        tokio::task::spawn_blocking(move || h.shut_down(std::time::Duration::from_secs(10)))
            .await?;
        info!("recordings closed");
    }
    Ok(())
}

/// What the calls Crest answers itself share (`ivr:` and `queue:` routes): the flows, the
/// recogniser's model, the synthesiser, the ACD and the hold music. `None` without such routes.
/// The admin API's agent edits, oldest first (an entry that does not parse is skipped with a
/// warning).
async fn stored_agent_edits(
    index: &crest_recording::Index,
) -> anyhow::Result<Vec<app::StoredEdit>> {
    let rows = index
        .agent_edits()
        .await
        .context("reading the agent edits from the index database")?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.spec {
            None => Some(app::StoredEdit::Remove(r.name)),
            Some(json) => match serde_json::from_str(&json) {
                Ok(spec) => Some(app::StoredEdit::Put(spec)),
                Err(e) => {
                    tracing::warn!(agent = %r.name, error = %e, "a stored agent edit does not parse: skipped");
                    None
                }
            },
        })
        .collect())
}

fn app_runtime(
    l: &Loaded,
    flows: Option<std::sync::Arc<ivr::Flows>>,
    acd: tokio::sync::mpsc::UnboundedSender<app::AcdMsg>,
) -> anyhow::Result<Option<std::sync::Arc<app::AppRuntime>>> {
    use crest_sip_proxy::config::RouteTarget;
    let apps: Vec<&crest_sip_proxy::App> = l
        .routes
        .iter()
        .filter_map(|(_, t, _)| match t {
            RouteTarget::App(a) => Some(a),
            _ => None,
        })
        .collect();
    if apps.is_empty() {
        return Ok(None);
    }
    for a in &apps {
        if let crest_sip_proxy::App::Ivr(name) = a {
            let known = flows
                .as_ref()
                .is_some_and(|f| f.library().get(name).is_some());
            if !known {
                anyhow::bail!(
                    "sip.routes: no IVR flow named {name:?} in {}",
                    l.config.ivr.flows_dir.display()
                );
            }
        }
    }
    let speech = match &flows {
        Some(_) => {
            let model = crest_ivr::pocketsphinx::Model::load(std::path::Path::new(
                crest_ivr::pocketsphinx::DEBIAN_MODEL,
            ))
            .map_err(|e| anyhow::anyhow!("speech recognition model: {e}"))?;
            let ivr = &l.config.ivr;
            // Two decoders a listener (the grammar and the off-topic loop).
            model.keep_idle(2 * ivr.recognizers);
            let threads = match ivr.asr_threads {
                0 => std::thread::available_parallelism().map_or(1, usize::from),
                n => n,
            };
            Some(
                speech::Speech::start(&model, threads, ivr.recognizers)
                    .context("starting the recogniser threads")?,
            )
        }
        None => None,
    };
    let hold_music = match &l.config.acd.hold_music {
        Some(p) => {
            let bytes =
                std::fs::read(p).with_context(|| format!("acd.hold_music {}", p.display()))?;
            crest_media::wav::read(&bytes)
                .map_err(|e| anyhow::anyhow!("acd.hold_music {}: {e}", p.display()))?
        }
        None => app::chime(8000),
    };
    let http = reqwest::Client::builder()
        .build()
        .context("HTTP client for IVR lookups")?;
    Ok(Some(std::sync::Arc::new(app::AppRuntime {
        flows,
        speech,
        tts: std::sync::Arc::new(crest_ivr::tts::EspeakNg::new(160)),
        acd: l.acd.as_ref().map(|_| acd),
        runtime: tokio::runtime::Handle::current(),
        http,
        hold_music,
        metrics: std::sync::Arc::default(),
        ivr: std::sync::Arc::default(),
        renders: app::Renderers::start(std::thread::available_parallelism().map_or(1, usize::from))
            .context("starting the prompt renderers")?,
    })))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
