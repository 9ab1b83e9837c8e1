//! The IVR's flows in a running `crest`: loaded and checked at start (`ivr:` in crest.yaml),
//! then watched; a changed flow is checked first and applies to new calls, an invalid one is
//! refused with its errors logged and the running version stays in force.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crest_ivr::reload::{Registry, ReloadEvent};
use tracing::{error, info, warn};

use crate::config::IvrSection;

/// The flows in force, shared with the admin endpoint (and the calls that run them).
#[derive(Debug)]
pub(crate) struct Flows {
    registry: Mutex<Registry>,
    loaded: AtomicU64,
    refused: AtomicU64,
    /// Calls that ran a flow to its end: (flow, outcome) → count.
    outcomes: Mutex<std::collections::BTreeMap<(String, String), u64>>,
}

impl Flows {
    /// Loads every flow of the directory; all must check.
    pub(crate) fn open(s: &IvrSection) -> Result<Self, String> {
        let queues = match &s.acd_file {
            Some(p) => {
                let (file, text) = crate::config::read_file(p).map_err(|e| e.to_string())?;
                let cfg: crest_acd::AcdConfig =
                    crate::config::parse_yaml(&file, &text).map_err(|e| e.to_string())?;
                Some(cfg.queues.into_iter().map(|q| q.name).collect())
            }
            None => None,
        };
        let ctx = crest_ivr::Context {
            queues,
            flows: None,
            dictionary: crate::flow::dictionary(),
            voices: crate::flow::voices(),
        };
        let registry = Registry::open(&s.flows_dir, ctx).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        for (file, flow, version) in registry.flows() {
            info!(file = %file.display(), flow, version, "IVR flow loaded");
        }
        Ok(Self {
            registry: Mutex::new(registry),
            loaded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            outcomes: Mutex::default(),
        })
    }

    /// The flows in force, for a new call.
    pub(crate) fn library(&self) -> Arc<crest_ivr::Library> {
        self.registry
            .lock()
            .map(|r| r.library())
            .unwrap_or_default()
    }

    /// A call left flow `flow` this way (`queue:refund`, `hangup`, …).
    pub(crate) fn count_outcome(&self, flow: &str, outcome: &str) {
        if let Ok(mut o) = self.outcomes.lock() {
            *o.entry((flow.to_owned(), outcome.to_owned())).or_default() += 1;
        }
    }

    fn rescan(&self) {
        let Ok(mut r) = self.registry.lock() else {
            return;
        };
        for ev in r.rescan() {
            match ev {
                ReloadEvent::Loaded {
                    file,
                    flow,
                    version,
                } => {
                    self.loaded.fetch_add(1, Ordering::Relaxed);
                    info!(file = %file.display(), flow, version, "IVR flow reloaded: new calls take this version");
                }
                ReloadEvent::Refused { file, errors, kept } => {
                    self.refused.fetch_add(1, Ordering::Relaxed);
                    for e in &errors {
                        error!("IVR flow refused: {e}");
                    }
                    match kept {
                        Some(v) => {
                            warn!(file = %file.display(), version = v, "the running version stays in force")
                        }
                        None => warn!(file = %file.display(), "the new flow is not loaded"),
                    }
                }
                ReloadEvent::Removed { file, flow } => {
                    warn!(file = %file.display(), flow, "IVR flow file removed: new calls cannot use it");
                }
            }
        }
    }

    /// Prometheus lines: the flows in force and the reloads.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP crest_ivr_flow IVR flows in force (1 per flow and version).\n# TYPE crest_ivr_flow gauge"
        );
        if let Ok(r) = self.registry.lock() {
            for (_, flow, version) in r.flows() {
                let _ = writeln!(
                    out,
                    "crest_ivr_flow{{flow=\"{flow}\",version=\"{version}\"}} 1"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP crest_ivr_reloads_total Flow file changes, by result.\n# TYPE crest_ivr_reloads_total counter\ncrest_ivr_reloads_total{{result=\"loaded\"}} {}\ncrest_ivr_reloads_total{{result=\"refused\"}} {}",
            self.loaded.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP crest_ivr_calls_total Calls that ran a flow to its end, by how they left it.\n# TYPE crest_ivr_calls_total counter"
        );
        if let Ok(o) = self.outcomes.lock() {
            for ((flow, outcome), n) in o.iter() {
                let _ = writeln!(
                    out,
                    "crest_ivr_calls_total{{flow=\"{flow}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
    }
}

/// Looks for changed flows every `every` until the process ends.
pub(crate) async fn watch(flows: Arc<Flows>, every: Duration) {
    let mut t = tokio::time::interval(every);
    t.tick().await;
    loop {
        t.tick().await;
        let f = flows.clone();
        let _ = tokio::task::spawn_blocking(move || f.rescan()).await;
    }
}
