//! The IVR's flows in a running `crest`: loaded and checked at start (`ivr:` in crest.yaml),
//! then watched; a changed flow is checked first and applies to new calls, an invalid one is
//! refused with its errors logged and the running version stays in force. A version staged in
//! `flows_dir/canary/` takes `ivr.canary.share_percent` of new callers (crest_ivr::canary) until
//! its rule or an admin rolls it back, or an admin promotes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeMap;

use crest_ivr::canary::{Canary, CanaryRule, CanaryState};
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
    /// The same by version: (flow, version, outcome) → count.
    by_version: Mutex<std::collections::BTreeMap<(String, String, String), u64>>,
    /// Versions staged in `flows_dir/canary/`.
    staged: Mutex<Registry>,
    /// Where staged versions are written.
    canary_dir: std::path::PathBuf,
    rule: CanaryRule,
    /// Flow → its canary (for a staged version that differs from the stable one).
    canaries: Mutex<BTreeMap<String, Canary>>,
}

/// Why a canary request cannot be done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CanaryError {
    #[error("flow {0:?} has no canary staged")]
    NoCanary(String),
    #[error("the canary file could not be written or moved: {0}")]
    Io(#[from] std::io::Error),
    #[error("the flow does not check")]
    Invalid(Vec<crest_ivr::FlowError>),
    #[error("the file is flow {found:?}, not {wanted:?}")]
    OtherFlow { wanted: String, found: String },
    #[error("no flow {0:?} is in force: a canary stands beside a stable version")]
    NoStable(String),
    #[error("version {0:?} is the stable version: give the canary another")]
    SameVersion(String),
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
        let canary_dir = s.flows_dir.join("canary");
        let staged = Registry::open(&canary_dir, registry.context()).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let f = Self {
            registry: Mutex::new(registry),
            loaded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            outcomes: Mutex::default(),
            by_version: Mutex::default(),
            staged: Mutex::new(staged),
            canary_dir,
            rule: s.canary.clone(),
            canaries: Mutex::default(),
        };
        f.sync_canaries();
        Ok(f)
    }

    /// The canary version of `flow` if `caller` is in its share.
    pub(crate) fn canary_for(&self, flow: &str, caller: &str) -> Option<Arc<crest_ivr::Flow>> {
        let takes = self
            .canaries
            .lock()
            .ok()?
            .get(flow)
            .is_some_and(|c| c.takes(caller));
        if !takes {
            return None;
        }
        self.staged.lock().ok()?.library().get(flow).cloned()
    }

    /// Starts a canary for each staged version that differs from the stable one; forgets
    /// those whose file is gone or whose version is now the stable one.
    fn sync_canaries(&self) {
        let (Ok(stable), Ok(staged), Ok(mut canaries)) = (
            self.registry.lock(),
            self.staged.lock(),
            self.canaries.lock(),
        ) else {
            return;
        };
        let stable: BTreeMap<String, String> =
            stable.flows().into_iter().map(|(_, f, v)| (f, v)).collect();
        let mut keep = Vec::new();
        for (_, flow, version) in staged.flows() {
            let Some(sv) = stable.get(&flow).filter(|sv| **sv != version) else {
                continue;
            };
            keep.push(flow.clone());
            let fresh = canaries
                .get(&flow)
                .is_none_or(|c| c.canary_version() != version || c.stable_version() != sv);
            if fresh {
                info!(
                    flow,
                    stable = sv,
                    canary = version,
                    share = self.rule.share_percent,
                    "canary staged"
                );
                canaries.insert(
                    flow.clone(),
                    Canary::new(&flow, sv, &version, self.rule.clone()),
                );
            }
        }
        canaries.retain(|f, _| keep.contains(f));
    }

    /// An admin stages `text` as the canary of `flow`: checked like any flow (it may call the
    /// stable flows), then written to `flows_dir/canary/FLOW.yaml` and put in force. Returns
    /// its version.
    pub(crate) fn stage(&self, flow: &str, text: &str, who: &str) -> Result<String, CanaryError> {
        let file = self.canary_dir.join(format!("{flow}.yaml"));
        let (ctx, stable) = {
            let r = self
                .registry
                .lock()
                .map_err(|_| CanaryError::NoStable(flow.into()))?;
            (r.context(), in_force(&r, flow).map(|(_, v)| v))
        };
        let stable = stable.ok_or_else(|| CanaryError::NoStable(flow.to_owned()))?;
        let f = crest_ivr::check(&file, text, &ctx).map_err(CanaryError::Invalid)?;
        if f.name != flow {
            return Err(CanaryError::OtherFlow {
                wanted: flow.to_owned(),
                found: f.name,
            });
        }
        if f.version == stable {
            return Err(CanaryError::SameVersion(stable));
        }
        std::fs::create_dir_all(&self.canary_dir)?;
        let tmp = self.canary_dir.join(format!(".{flow}.yaml.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &file)?;
        info!(flow, version = f.version, who, "canary uploaded");
        self.rescan();
        Ok(f.version)
    }

    /// An admin rolls `flow`'s canary back: it takes no more calls (its file stays, for a
    /// look, until it is changed or removed).
    pub(crate) fn roll_back(&self, flow: &str, who: &str) -> Result<(), CanaryError> {
        let mut c = self
            .canaries
            .lock()
            .map_err(|_| CanaryError::NoCanary(flow.into()))?;
        let c = c
            .get_mut(flow)
            .ok_or_else(|| CanaryError::NoCanary(flow.to_owned()))?;
        warn!(
            flow,
            version = c.canary_version(),
            who,
            "canary rolled back by hand"
        );
        c.roll_back(&format!("rolled back by {who}"));
        Ok(())
    }

    /// An admin promotes `flow`'s canary: its file replaces the stable one's (a rename in the
    /// flows directory), and the next rescan puts it in force for every new call.
    pub(crate) fn promote(&self, flow: &str, who: &str) -> Result<(), CanaryError> {
        let version = self
            .canaries
            .lock()
            .ok()
            .and_then(|c| c.get(flow).map(|c| c.canary_version().to_owned()))
            .ok_or_else(|| CanaryError::NoCanary(flow.to_owned()))?;
        let (from, to) = {
            let staged = self
                .staged
                .lock()
                .map_err(|_| CanaryError::NoCanary(flow.into()))?;
            let stable = self
                .registry
                .lock()
                .map_err(|_| CanaryError::NoCanary(flow.into()))?;
            let from = in_force(&staged, flow).map(|(p, _)| p);
            let to = in_force(&stable, flow).map(|(p, _)| p);
            (from, to)
        };
        let (Some(from), Some(to)) = (from, to) else {
            return Err(CanaryError::NoCanary(flow.to_owned()));
        };
        std::fs::rename(&from, &to)?;
        // The reload tells a change by modification time and length: a renamed file keeps its
        // own time, which may equal the replaced one's (and so may the length).
        std::fs::File::options()
            .append(true)
            .open(&to)?
            .set_modified(std::time::SystemTime::now())?;
        info!(
            flow,
            version, who, "canary promoted: it replaces the stable version"
        );
        self.rescan();
        Ok(())
    }

    /// Every flow in force with its canary, for the admin API.
    pub(crate) fn list(&self) -> Vec<(String, String, Option<Canary>)> {
        let canaries = self.canaries.lock().map(|c| c.clone()).unwrap_or_default();
        self.registry
            .lock()
            .map(|r| r.flows())
            .unwrap_or_default()
            .into_iter()
            .map(|(_, f, v)| {
                let c = canaries.get(&f).cloned();
                (f, v, c)
            })
            .collect()
    }

    /// The flows in force, for a new call.
    pub(crate) fn library(&self) -> Arc<crest_ivr::Library> {
        self.registry
            .lock()
            .map(|r| r.library())
            .unwrap_or_default()
    }

    /// A call left version `version` of flow `flow` this way (`queue:refund`, `hangup`, …).
    pub(crate) fn count_outcome(&self, flow: &str, version: &str, outcome: &str, time: Duration) {
        if let Ok(mut o) = self.outcomes.lock() {
            *o.entry((flow.to_owned(), outcome.to_owned())).or_default() += 1;
        }
        if let Ok(mut o) = self.by_version.lock() {
            *o.entry((flow.to_owned(), version.to_owned(), outcome.to_owned()))
                .or_default() += 1;
        }
        if let Ok(mut c) = self.canaries.lock()
            && let Some(c) = c.get_mut(flow)
            && let Some(why) = c.record(version, outcome, time)
        {
            warn!(
                flow,
                version = c.canary_version(),
                why,
                "canary rolled back by its rule"
            );
        }
    }

    fn rescan(&self) {
        let mut events = self
            .registry
            .lock()
            .map(|mut r| r.rescan())
            .unwrap_or_default();
        if let Ok(mut s) = self.staged.lock() {
            events.extend(s.rescan());
        }
        self.sync_canaries();
        for ev in events {
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
}

impl crate::metrics::Source for Flows {
    /// The flows in force, the reloads, the canaries and how calls left each flow version.
    fn expose(&self, out: &mut crate::metrics::Exposition<'_, '_>) {
        if let Ok(r) = self.registry.lock() {
            let flows = r.flows();
            out.gauges(
                "crest_ivr_flow",
                "IVR flows in force (1 per flow and version).",
                flows.iter().map(|(_, flow, version)| {
                    (vec![("flow", &flow[..]), ("version", &version[..])], 1)
                }),
            );
        }
        out.counters(
            "crest_ivr_reloads_total",
            "Flow file changes, by result.",
            [("loaded", &self.loaded), ("refused", &self.refused)]
                .map(|(result, v)| (vec![("result", result)], v.load(Ordering::Relaxed))),
        );
        if let Ok(c) = self.canaries.lock() {
            out.gauges(
                "crest_ivr_canary",
                "Staged canary versions: 1 running, 0 rolled back.",
                c.values().map(|c| {
                    (
                        vec![("flow", c.flow()), ("version", c.canary_version())],
                        i64::from(*c.state() == CanaryState::Running),
                    )
                }),
            );
            out.counters(
                "crest_ivr_canary_calls_total",
                "Calls that left a flow with a canary, by arm and outcome.",
                c.values().flat_map(|c| {
                    [("stable", c.stable()), ("canary", c.canary())]
                        .into_iter()
                        .flat_map(move |(arm, k)| {
                            [
                                ("contained", k.contained),
                                ("abandoned", k.abandoned),
                                ("to_agent", k.to_agent),
                                ("other", k.other),
                            ]
                            .map(|(o, n)| {
                                (vec![("flow", c.flow()), ("arm", arm), ("outcome", o)], n)
                            })
                        })
                }),
            );
        }
        if let Ok(o) = self.by_version.lock() {
            out.counters(
                "crest_ivr_version_calls_total",
                "Calls that ran a flow to its end, by version and how they left it (containment per version: outcome=\"hangup\").",
                o.iter().map(|((flow, version, outcome), n)| {
                    (
                        vec![("flow", &flow[..]), ("version", &version[..]), ("outcome", &outcome[..])],
                        *n,
                    )
                }),
            );
        }
        if let Ok(o) = self.outcomes.lock() {
            out.counters(
                "crest_ivr_calls_total",
                "Calls that ran a flow to its end, by how they left it.",
                o.iter().map(|((flow, outcome), n)| {
                    (vec![("flow", &flow[..]), ("outcome", &outcome[..])], *n)
                }),
            );
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

/// Flow `flow`'s file and version in `r`, if it is in force there.
fn in_force(r: &Registry, flow: &str) -> Option<(std::path::PathBuf, String)> {
    r.flows()
        .into_iter()
        .find(|(_, f, _)| f == flow)
        .map(|(p, _, v)| (p, v))
}
