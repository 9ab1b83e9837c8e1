//! `crest flow check|test|schema`: the IVR's flows from the command line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crest_ivr::pocketsphinx::{DEBIAN_MODEL, Model, OFF_TOPIC_MARGIN, PocketSphinx};
use crest_ivr::script::{Script, Transcribe, run_case};
use crest_ivr::{Context, Flow, Library};

use crate::config::{parse_yaml, read_file};

/// What flows are checked against: the ACD's queues (when its file is there) and the names of
/// the flows checked together or lying beside them (a running crest loads its whole flows
/// directory, so a flow may call, or survey with, any flow there).
fn context(acd: Option<&Path>, flows: &[PathBuf]) -> Result<Context, String> {
    let queues = match acd {
        Some(p) => {
            let (file, text) = read_file(p).map_err(|e| e.to_string())?;
            let cfg: crest_acd::AcdConfig = parse_yaml(&file, &text).map_err(|e| e.to_string())?;
            Some(
                cfg.queues
                    .into_iter()
                    .map(|q| q.name)
                    .collect::<BTreeSet<_>>(),
            )
        }
        None => None,
    };
    let mut known: Vec<PathBuf> = flows.to_vec();
    let dirs: BTreeSet<&Path> = flows.iter().filter_map(|f| f.parent()).collect();
    for d in dirs {
        let d = if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        };
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = p.to_string_lossy();
            if name.ends_with(".yaml") && !name.ends_with(".test.yaml") && !known.contains(&p) {
                known.push(p);
            }
        }
    }
    Ok(Context {
        queues,
        flows: Some(crest_ivr::load::flow_names(&known)),
        dictionary: dictionary(),
        voices: voices(),
    })
}

/// The recogniser's dictionary, when its model is installed (Debian's pocketsphinx-en-us).
pub(crate) fn dictionary() -> Option<Arc<BTreeSet<String>>> {
    Model::load(Path::new(DEBIAN_MODEL))
        .ok()
        .map(|m| Arc::new(m.words()))
}

/// espeak-ng's voices, when it is installed.
pub(crate) fn voices() -> Option<Arc<BTreeSet<String>>> {
    let v = crest_ivr::tts::EspeakNg::new(150).voices().clone();
    (!v.is_empty()).then(|| Arc::new(v.into_iter().collect()))
}

/// The ACD file beside a flow: `config/acd.yaml` for `config/flows/x.yaml`, if it exists.
fn default_acd(flow: &Path) -> Option<PathBuf> {
    let p = flow.parent()?.parent()?.join("acd.yaml");
    p.is_file().then_some(p)
}

/// `crest flow check FILE...`: every error of every file; Ok(report) when all pass.
/// Scripted calls (`NAME.test.yaml` beside `NAME.yaml`) are recognised and left to
/// `crest flow test`, so `crest flow check config/flows/*.yaml` checks a flows directory as is.
pub(crate) fn check(files: &[PathBuf], acd: Option<&Path>) -> Result<String, String> {
    let is_script = |f: &PathBuf| f.to_string_lossy().ends_with(".test.yaml");
    let (scripts, files): (Vec<PathBuf>, Vec<PathBuf>) = files.iter().cloned().partition(is_script);
    let acd = acd
        .map(Path::to_owned)
        .or_else(|| files.first().and_then(|f| default_acd(f)));
    let ctx = context(acd.as_deref(), &files)?;
    let mut out = String::new();
    for s in &scripts {
        let flow = s.to_string_lossy().replace(".test.yaml", ".yaml");
        out.push_str(&format!(
            "{}: scripted calls, not a flow (run them: crest flow test {flow} --script {})\n",
            s.display(),
            s.display()
        ));
    }
    let mut bad = 0;
    for f in &files {
        match crest_ivr::load(f, &ctx) {
            Ok(flow) => out.push_str(&format!(
                "{}: OK (flow {}, version {}, {} nodes)\n",
                f.display(),
                flow.name,
                flow.version,
                flow.def.nodes.len()
            )),
            Err(errs) => {
                bad += errs.len();
                for e in errs {
                    out.push_str(&format!("{e}\n"));
                }
            }
        }
    }
    if bad > 0 {
        return Err(out + &format!("{bad} errors\n"));
    }
    Ok(out)
}

/// `crest flow test FLOW --script SCRIPT`.
pub(crate) fn test(flow: &Path, script: &Path) -> Result<String, String> {
    let acd = default_acd(flow);
    let ctx = context(acd.as_deref(), &[flow.to_owned()])?;
    let f: Flow = crest_ivr::load(flow, &ctx)
        .map_err(|errs| errs.iter().map(|e| format!("{e}\n")).collect::<String>())?;
    let (file, text) = read_file(script).map_err(|e| e.to_string())?;
    let s: Script = parse_yaml(&file, &text).map_err(|e| e.to_string())?;
    let f = Arc::new(f);
    let lib = Arc::new(Library::new([f.clone()]));
    let dir = script.parent().unwrap_or(Path::new("."));
    let mut out = String::new();
    let mut failed = 0;
    let model = Model::load(Path::new(DEBIAN_MODEL)).map_err(|e| e.to_string())?;
    let mut hear = Transcribe(PocketSphinx::new(model, Some(OFF_TOPIC_MARGIN)));
    for case in &s.cases {
        let r = run_case(&lib, &f, case, dir, &mut hear);
        if r.failures.is_empty() {
            out.push_str(&format!(
                "ok    {} ({} → {})\n",
                r.name,
                r.path.join(" → "),
                r.outcome.as_deref().unwrap_or("-")
            ));
        } else {
            failed += 1;
            out.push_str(&format!("FAIL  {}\n", r.name));
            for e in &r.failures {
                out.push_str(&format!("      {e}\n"));
            }
            out.push_str(&format!("      path: {}\n", r.path.join(" → ")));
        }
    }
    out.push_str(&format!(
        "{} cases, {} passed, {failed} failed\n",
        s.cases.len(),
        s.cases.len() - failed
    ));
    if failed > 0 { Err(out) } else { Ok(out) }
}
