//! Hot reload: the flows of a directory (`*.yaml`, scripts `*.test.yaml` aside), rechecked
//! when a file changes. A change that checks replaces the flow for new calls (calls in progress
//! keep the `Arc<Flow>` they started with); one that does not is refused with its errors and
//! the running version stays in force.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::engine::Library;
use crate::load::{Context, Flow, FlowError, flow_names, load};

/// What a rescan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadEvent {
    /// A new or changed file checked and is in force.
    Loaded {
        /// The file.
        file: PathBuf,
        /// The flow's name.
        flow: String,
        /// Its version.
        version: String,
    },
    /// A changed file did not check; the version before it stays in force.
    Refused {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        errors: Vec<FlowError>,
        /// The version still running, if the file had one.
        kept: Option<String>,
    },
    /// A file was deleted; its flow is gone for new calls.
    Removed {
        /// The file.
        file: PathBuf,
        /// The flow it held.
        flow: String,
    },
}

/// The flows of a directory, as checked.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    ctx: Context,
    /// File → (its stamp when last read, the flow in force from it).
    files: BTreeMap<PathBuf, (Stamp, Option<Arc<Flow>>)>,
    library: Arc<Library>,
}

/// What tells a file changed: modification time and length.
type Stamp = (Option<SystemTime>, u64);

fn stamp(p: &Path) -> Stamp {
    std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len()))
}

fn flow_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".yaml") && !name.ends_with(".test.yaml")
        })
        .collect();
    v.sort();
    v
}

impl Registry {
    /// Loads every flow of `dir`; all must check.
    pub fn open(dir: &Path, ctx: Context) -> Result<Self, Vec<FlowError>> {
        let mut files = BTreeMap::new();
        let mut errs = Vec::new();
        // A `call` may name the flows here and those the context knows (a canary directory's
        // flows call the stable ones).
        let mut names = ctx.flows.clone().unwrap_or_default();
        names.extend(flow_names(&flow_files(dir)));
        let ctx = Context {
            flows: Some(names),
            ..ctx
        };
        for p in flow_files(dir) {
            match load(&p, &ctx) {
                Ok(f) => {
                    files.insert(p.clone(), (stamp(&p), Some(Arc::new(f))));
                }
                Err(e) => errs.extend(e),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut r = Self {
            dir: dir.to_owned(),
            ctx,
            files,
            library: Arc::default(),
        };
        r.rebuild();
        Ok(r)
    }

    fn rebuild(&mut self) {
        self.library = Arc::new(Library::new(
            self.files.values().filter_map(|(_, f)| f.clone()),
        ));
    }

    /// What the flows are checked against.
    pub fn context(&self) -> Context {
        self.ctx.clone()
    }

    /// The flows in force, for new calls.
    pub fn library(&self) -> Arc<Library> {
        self.library.clone()
    }

    /// The flows in force: (file, name, version).
    pub fn flows(&self) -> Vec<(PathBuf, String, String)> {
        self.files
            .iter()
            .filter_map(|(p, (_, f))| {
                f.as_ref()
                    .map(|f| (p.clone(), f.name.clone(), f.version.clone()))
            })
            .collect()
    }

    /// Looks for new, changed and deleted files.
    pub fn rescan(&mut self) -> Vec<ReloadEvent> {
        let mut events = Vec::new();
        let now: Vec<PathBuf> = flow_files(&self.dir);
        for p in &now {
            let s = stamp(p);
            if self.files.get(p).is_some_and(|(old, _)| *old == s) {
                continue;
            }
            if let Some(names) = &mut self.ctx.flows {
                names.extend(flow_names(std::slice::from_ref(p)));
            }
            let kept = self.files.get(p).and_then(|(_, f)| f.clone());
            match load(p, &self.ctx) {
                Ok(f) => {
                    events.push(ReloadEvent::Loaded {
                        file: p.clone(),
                        flow: f.name.clone(),
                        version: f.version.clone(),
                    });
                    self.files.insert(p.clone(), (s, Some(Arc::new(f))));
                }
                Err(errors) => {
                    events.push(ReloadEvent::Refused {
                        file: p.clone(),
                        errors,
                        kept: kept.as_ref().map(|f| f.version.clone()),
                    });
                    // Remember the stamp so the same bad file is reported once.
                    self.files.insert(p.clone(), (s, kept));
                }
            }
        }
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !now.contains(p))
            .cloned()
            .collect();
        for p in gone {
            if let Some((_, Some(f))) = self.files.remove(&p) {
                events.push(ReloadEvent::Removed {
                    file: p,
                    flow: f.name.clone(),
                });
            }
        }
        if !events.is_empty() {
            self.rebuild();
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Input, Session};

    const FLOW: &str = "flow: greet\nversion: \"1\"\nstart: hi\nnodes:\n  - say: {name: hi, text: \"Hello one\", next: bye}\n  - hangup: {name: bye}\n";

    fn said(lib: Arc<Library>) -> (String, Option<String>) {
        let flow = lib.get("greet").unwrap().clone();
        let mut s = Session::new(lib, flow.clone(), Default::default());
        s.handle(std::time::Instant::now(), Input::Start { unix_secs: 0 });
        let text = match s.poll_command() {
            Some(crate::engine::Command::Play { text, .. }) => text,
            _ => None,
        };
        (flow.version.clone(), text)
    }

    #[test]
    fn a_good_change_applies_to_new_calls_and_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("crest-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("greet.yaml");
        std::fs::write(&file, FLOW).unwrap();
        std::fs::write(dir.join("greet.test.yaml"), "cases: []\n").unwrap();
        let mut r = Registry::open(&dir, Context::default()).unwrap();
        assert_eq!(r.flows().len(), 1, "scripts are not flows");
        let before = r.library();
        assert!(r.rescan().is_empty());

        // A broken edit: refused, version 1 stays in force.
        std::fs::write(
            &file,
            FLOW.replace("next: bye", "next: nowhere")
                .replace("\"1\"", "\"2\""),
        )
        .unwrap();
        let ev = r.rescan();
        assert!(
            matches!(&ev[..], [ReloadEvent::Refused { kept: Some(v), errors, .. }] if v == "1" && errors[0].message.contains("nowhere")),
            "{ev:?}"
        );
        assert_eq!(said(r.library()).0, "1");
        assert!(r.rescan().is_empty(), "reported once");

        // A good edit: version 3 for new calls; a call that started before keeps version 1.
        std::fs::write(
            &file,
            FLOW.replace("Hello one", "Hello three")
                .replace("\"1\"", "\"3\""),
        )
        .unwrap();
        let ev = r.rescan();
        assert!(
            matches!(&ev[..], [ReloadEvent::Loaded { version, .. }] if version == "3"),
            "{ev:?}"
        );
        assert_eq!(said(r.library()), ("3".into(), Some("Hello three".into())));
        assert_eq!(said(before), ("1".into(), Some("Hello one".into())));

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(&r.rescan()[..], [ReloadEvent::Removed { flow, .. }] if flow == "greet"));
        assert!(r.library().get("greet").is_none());
    }
}
