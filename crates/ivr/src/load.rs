//! Loading and checking flow files: schema errors (serde-saphyr, with line and column) and
//! graph errors (unknown targets, unreachable nodes, loops with no exit, input without no-input
//! or no-match handling, unknown queues, backends, flows and prompt files, intents without
//! examples), each with the file, line and column it concerns.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::interp;
use crate::model::{FlowFile, Node, Retry, Target};

/// One thing wrong with a flow file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    /// The file.
    pub file: String,
    /// Line (1-based; 0 when the file could not be read).
    pub line: u64,
    /// Column (1-based).
    pub column: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for FlowError {}

/// What a flow is checked against.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The ACD's queues; `None` skips the check.
    pub queues: Option<BTreeSet<String>>,
    /// Flows a `call` node may name; `None` skips the check.
    pub flows: Option<BTreeSet<String>>,
    /// The recogniser's pronouncing dictionary: every word of an `ask`'s examples must be in
    /// it, or the ask could not listen; `None` skips the check.
    pub dictionary: Option<std::sync::Arc<BTreeSet<String>>>,
    /// The synthesiser's voices (lower case): the flow's `voice` and every `say`'s must be
    /// one of them (a variant such as `en-us+m3` counts by its base); `None` skips the check.
    pub voices: Option<std::sync::Arc<BTreeSet<String>>>,
}

/// A checked flow, ready to run.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its name.
    pub name: String,
    /// Its version: the file's `version`, or a hash of its text.
    pub version: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Prompt language.
    pub language: String,
    /// Default TTS voice.
    pub voice: String,
    /// The parsed file.
    pub def: FlowFile,
    /// Node name → index in `def.nodes`.
    index: HashMap<String, usize>,
}

impl Flow {
    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.index.get(name).map(|&i| &self.def.nodes[i].value)
    }

    /// The first node's name.
    pub fn start(&self) -> &str {
        &self.def.start.value
    }

    /// Where a prompt file named in the flow is (relative to the flow file).
    pub fn resolve(&self, file: &str) -> PathBuf {
        self.file.parent().unwrap_or(Path::new(".")).join(file)
    }
}

/// Where a YAML error is (line, column; 0 when unknown) and what it says, without the
/// parser's own "line L column C:" prefix (the caller prints the place its own way).
pub fn yaml_error(e: &serde_saphyr::Error) -> (u64, u64, String) {
    let msg = e.to_string();
    let first = msg.lines().next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let message = match first.split_once(": ") {
        Some((pre, rest)) if pre.starts_with("line ") => rest,
        _ => first,
    };
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    (line, column, message.to_owned())
}

/// Parses a flow file's text (schema only).
pub fn parse(file: &str, text: &str) -> Result<FlowFile, FlowError> {
    serde_saphyr::from_str::<FlowFile>(text).map_err(|e| {
        let (line, column, message) = yaml_error(&e);
        FlowError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// The names of the flows in `files` (those that parse), for `call` nodes to name.
pub fn flow_names(files: &[PathBuf]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| parse("", &t).ok())
        .map(|f| f.flow)
        .collect()
}

/// Reads, parses and checks a flow file.
pub fn load(path: &Path, ctx: &Context) -> Result<Flow, Vec<FlowError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![FlowError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }]
    })?;
    check(path, &text, ctx)
}

/// Parses and checks flow text that came from `path`.
pub fn check(path: &Path, text: &str, ctx: &Context) -> Result<Flow, Vec<FlowError>> {
    let file = path.display().to_string();
    let def = parse(&file, text).map_err(|e| vec![e])?;
    let mut errs = Vec::new();
    let err_at = |errs: &mut Vec<FlowError>, line: u64, column: u64, message: String| {
        errs.push(FlowError {
            file: file.clone(),
            line,
            column,
            message,
        });
    };
    let mut index = HashMap::new();
    for (i, n) in def.nodes.iter().enumerate() {
        let name = n.value.name();
        if let Some(&first) = index.get(name) {
            let first: &Spanned<Node> = &def.nodes[first];
            err_at(
                &mut errs,
                n.referenced.line(),
                n.referenced.column(),
                format!(
                    "node {name:?} is defined twice (first at line {})",
                    first.referenced.line()
                ),
            );
        } else {
            index.insert(name.to_owned(), i);
        }
    }
    let known = |t: &Target| index.contains_key(&t.value);
    let unknown = |errs: &mut Vec<FlowError>, t: &Target| {
        err_at(
            errs,
            t.referenced.line(),
            t.referenced.column(),
            format!("no node named {:?}", t.value),
        );
    };
    if !known(&def.start) {
        unknown(&mut errs, &def.start);
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let voice_known = |v: &str| {
        ctx.voices
            .as_ref()
            .is_none_or(|set| set.contains(&v.split('+').next().unwrap_or(v).to_lowercase()))
    };
    if !voice_known(&def.voice) {
        err_at(
            &mut errs,
            1,
            1,
            format!(
                "voice {:?}: the synthesiser has no such voice (espeak-ng --voices)",
                def.voice
            ),
        );
    }
    for n in &def.nodes {
        let (line, col) = (n.referenced.line(), n.referenced.column());
        let node = &n.value;
        for t in node.targets() {
            if !known(t) {
                unknown(&mut errs, t);
            }
        }
        let mut e = |m: String| {
            err_at(
                &mut errs,
                line,
                col,
                format!("{} {:?}: {m}", node.kind(), node.name()),
            )
        };
        let mut texts: Vec<&str> = Vec::new();
        match node {
            Node::Say(s) => {
                if let Some(v) = &s.voice
                    && !voice_known(v)
                {
                    e(format!(
                        "voice {v:?}: the synthesiser has no such voice (espeak-ng --voices)"
                    ));
                }
                match (&s.text, &s.file) {
                    (None, None) => e("give text or file".into()),
                    (Some(_), Some(_)) => e("give text or file, not both".into()),
                    (Some(t), None) => texts.push(t),
                    (None, Some(f)) => {
                        if !base.join(f).is_file() {
                            e(format!("prompt file {f:?} does not exist"));
                        }
                    }
                }
            }
            Node::Menu(m) => {
                texts.push(&m.prompt);
                input_handling(&mut e, &m.no_input, &m.no_match, &mut texts);
                if m.choices.is_empty() {
                    e("a menu needs choices".into());
                }
                for k in m.choices.keys() {
                    if !is_dtmf_key(k) {
                        e(format!("choice {k:?} is not a DTMF key (0-9, *, #, A-D)"));
                    }
                }
            }
            Node::Ask(a) => {
                texts.push(&a.prompt);
                input_handling(&mut e, &a.no_input, &a.no_match, &mut texts);
                match (a.intents.is_empty(), &a.digits) {
                    (true, None) => e("an ask needs intents or digits".into()),
                    (false, Some(_)) => e("an ask takes intents or digits, not both".into()),
                    (true, Some(d)) => {
                        if d.max == 0 || d.min > d.max {
                            e(format!(
                                "digits: min {} and max {} do not fit",
                                d.min, d.max
                            ));
                        }
                        if !is_dtmf_key(&d.terminator) {
                            e(format!(
                                "digits: terminator {:?} is not a DTMF key",
                                d.terminator
                            ));
                        }
                    }
                    (false, None) => {}
                }
                if !(0.0..=1.0).contains(&a.confidence) {
                    e(format!("confidence {} is outside 0..1", a.confidence));
                }
                if let Some(dict) = &ctx.dictionary {
                    let mut missing: BTreeSet<String> = BTreeSet::new();
                    for i in a.intents.values() {
                        for ex in &i.examples {
                            missing.extend(
                                crate::intent::words(ex)
                                    .into_iter()
                                    .filter(|w| !dict.contains(w)),
                            );
                        }
                    }
                    if !missing.is_empty() {
                        e(format!(
                            "words the recogniser does not know (not in its dictionary): {}",
                            missing.into_iter().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                let mut keys = BTreeMap::new();
                for (name, i) in &a.intents {
                    if i.examples.iter().all(|x| x.trim().is_empty()) {
                        e(format!("intent {name:?} has no examples"));
                    }
                    if let Some(k) = &i.dtmf {
                        if !is_dtmf_key(k) {
                            e(format!("intent {name:?}: dtmf {k:?} is not a DTMF key"));
                        } else if let Some(other) = keys.insert(k.clone(), name) {
                            e(format!("key {k:?} is given to both {other:?} and {name:?}"));
                        }
                    }
                }
            }
            Node::Lookup(l) => {
                if !def.backends.contains_key(&l.backend) {
                    e(format!("no backend named {:?} under backends", l.backend));
                }
                texts.push(&l.path);
                texts.extend(l.body.values().map(String::as_str));
            }
            Node::Set(s) => texts.extend(s.vars.values().map(String::as_str)),
            Node::Branch(b) => {
                for (i, c) in b.cases.iter().enumerate() {
                    if c.when.is_empty() {
                        e(format!("case {i} has no conditions"));
                    }
                    for cond in &c.when {
                        let tests = [
                            cond.eq.is_some(),
                            cond.ne.is_some(),
                            cond.one_of.is_some(),
                            cond.lt.is_some(),
                            cond.ge.is_some(),
                            cond.exists.is_some(),
                            cond.prefix.is_some(),
                        ]
                        .iter()
                        .filter(|t| **t)
                        .count();
                        if tests != 1 {
                            e(format!(
                                "case {i}: condition on {:?} needs exactly one of eq, ne, one_of, lt, ge, exists, prefix",
                                cond.var
                            ));
                        }
                    }
                }
            }
            Node::Queue(q) => {
                if let Some(qs) = &ctx.queues
                    && !qs.contains(&q.queue)
                {
                    e(format!(
                        "no queue named {:?} in the ACD configuration",
                        q.queue
                    ));
                }
                if let (Some(fs), Some(survey)) = (&ctx.flows, &q.survey)
                    && !fs.contains(survey)
                {
                    e(format!("survey: no flow named {survey:?}"));
                }
                texts.extend(q.tier.as_deref());
            }
            Node::Callback(c) => {
                if let Some(qs) = &ctx.queues
                    && !qs.contains(&c.queue)
                {
                    e(format!(
                        "no queue named {:?} in the ACD configuration",
                        c.queue
                    ));
                }
                texts.extend(c.prompt.as_deref());
            }
            Node::Transfer(t) => texts.push(&t.uri),
            Node::Call(c) => {
                if let Some(fs) = &ctx.flows
                    && !fs.contains(&c.flow)
                {
                    e(format!("no flow named {:?}", c.flow));
                }
            }
            Node::Hangup(_) | Node::Return(_) => {}
        }
        for t in texts {
            if let Err(m) = interp::check(t) {
                e(m);
            }
        }
    }
    if errs.is_empty() {
        graph(&def, &index, &mut errs, &file);
    }
    if !errs.is_empty() {
        errs.sort_by_key(|e| (e.line, e.column));
        return Err(errs);
    }
    let version = def.version.clone().unwrap_or_else(|| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        format!("{:016x}", h.finish())
    });
    Ok(Flow {
        name: def.flow.clone(),
        version,
        file: path.to_owned(),
        language: def.language.clone(),
        voice: def.voice.clone(),
        def,
        index,
    })
}

fn input_handling<'a>(
    e: &mut impl FnMut(String),
    no_input: &'a Option<Retry>,
    no_match: &'a Option<Retry>,
    texts: &mut Vec<&'a str>,
) {
    if no_input.is_none() {
        e("no no_input handling (what happens when the caller says nothing)".into());
    }
    if no_match.is_none() {
        e("no no_match handling (what happens when nothing matches)".into());
    }
    texts.extend(no_input.iter().chain(no_match).map(|r| r.prompt.as_str()));
}

fn is_dtmf_key(k: &str) -> bool {
    k.len() == 1 && k.chars().all(|c| "0123456789*#ABCD".contains(c))
}

/// Unreachable nodes, and nodes from which no exit can be reached (loops with no exit).
fn graph(def: &FlowFile, index: &HashMap<String, usize>, errs: &mut Vec<FlowError>, file: &str) {
    let n = def.nodes.len();
    let edges: Vec<Vec<usize>> = def
        .nodes
        .iter()
        .map(|s| {
            s.value
                .targets()
                .iter()
                .filter_map(|t| index.get(&t.value).copied())
                .collect()
        })
        .collect();
    let mut reach = vec![false; n];
    let mut todo = VecDeque::from([index[&def.start.value]]);
    while let Some(i) = todo.pop_front() {
        if !std::mem::replace(&mut reach[i], true) {
            todo.extend(&edges[i]);
        }
    }
    // Nodes that can reach an exit: walk the edges backwards from every exit.
    let mut back = vec![Vec::new(); n];
    for (i, es) in edges.iter().enumerate() {
        for &j in es {
            back[j].push(i);
        }
    }
    let mut exits = vec![false; n];
    let mut todo: VecDeque<usize> = (0..n).filter(|&i| def.nodes[i].value.is_exit()).collect();
    while let Some(i) = todo.pop_front() {
        if !std::mem::replace(&mut exits[i], true) {
            todo.extend(&back[i]);
        }
    }
    for (i, s) in def.nodes.iter().enumerate() {
        let at = |message: String| FlowError {
            file: file.to_owned(),
            line: s.referenced.line(),
            column: s.referenced.column(),
            message,
        };
        let (kind, name) = (s.value.kind(), s.value.name());
        if !reach[i] {
            errs.push(at(format!("{kind} {name:?} is unreachable from start")));
        } else if !exits[i] {
            errs.push(at(format!(
                "{kind} {name:?} is in a loop with no exit (no hangup, queue, transfer, callback or return can be reached)"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        let ctx = Context {
            queues: Some(["sales".to_owned()].into()),
            flows: Some(BTreeSet::new()),
            dictionary: Some(std::sync::Arc::new(
                ["talk", "to", "an", "agent"].map(String::from).into(),
            )),
            voices: Some(std::sync::Arc::new(["en-us".to_owned()].into())),
        };
        match check(Path::new("f.yaml"), text, &ctx) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    const HEAD: &str = "flow: t\nstart: a\nnodes:\n";

    #[test]
    fn the_shipped_flow_checks() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows/main.yaml");
        let ctx = Context::default();
        let f = load(&dir, &ctx).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (f.name.as_str(), f.version.as_str()),
            ("main", "2026-12-01")
        );
    }

    #[test]
    fn schema_errors_have_line_and_column() {
        let e = errors(&format!("{HEAD}  - say: {{name: a, txet: hi, next: a}}\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("f.yaml:4:") && e[0].contains("txet"),
            "{e:?}"
        );
        let e = errors(&format!("{HEAD}  - shout: {{name: a}}\n"));
        assert!(
            e[0].starts_with("f.yaml:4:") && e[0].contains("shout"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{HEAD}  - menu:\n      name: a\n      prompt: p\n      timeout_secs: soon\n"
        ));
        assert!(e[0].starts_with("f.yaml:7:"), "{e:?}");
    }

    #[test]
    fn graph_errors_point_at_their_line() {
        let e = errors(&format!(
            "{HEAD}  - say: {{name: a, text: hi, next: nowhere}}\n  - hangup: {{name: b}}\n"
        ));
        assert!(
            e.iter()
                .any(|m| m.starts_with("f.yaml:4:") && m.contains("no node named \"nowhere\"")),
            "{e:?}"
        );
        assert!(
            e.is_empty() || e.len() == 1,
            "graph checks wait for names to resolve: {e:?}"
        );
        let e = errors(&format!(
            "{HEAD}  - say: {{name: a, text: hi, next: c}}\n  - hangup: {{name: b}}\n  - say: {{name: c, text: again, next: a}}\n"
        ));
        assert!(
            e.iter()
                .any(|m| m.starts_with("f.yaml:5:") && m.contains("unreachable")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("f.yaml:4:") && m.contains("loop with no exit")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.starts_with("f.yaml:6:") && m.contains("loop with no exit")),
            "{e:?}"
        );
    }

    #[test]
    fn input_queues_prompts_and_intents_are_checked() {
        let e = errors(&format!(
            "{HEAD}  - ask:\n      name: a\n      prompt: p\n      intents:\n        x: {{examples: [], next: q}}\n  - queue: {{name: q, queue: support}}\n"
        ));
        for want in [
            "no no_input handling",
            "no no_match handling",
            "intent \"x\" has no examples",
            "no queue named \"support\"",
        ] {
            assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
        }
        let e = errors(&format!(
            "{HEAD}  - ask:\n      name: a\n      prompt: p\n      intents:\n        x: {{examples: [\"talk to an agent\", \"frobnicate the gizmo\"], next: b}}\n      no_input: {{prompt: p, then: b}}\n      no_match: {{prompt: p, then: b}}\n  - hangup: {{name: b}}\n"
        ));
        for want in ["f.yaml:4:", "does not know", "frobnicate, gizmo, the"] {
            assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
        }
        let e = errors(
            "flow: t\nvoice: en-us+m3\nstart: a\nnodes:\n  - say: {name: a, text: hi, voice: klingon, next: b}\n  - hangup: {name: b}\n",
        );
        assert_eq!(e.len(), 1, "a variant of a known voice is fine: {e:?}");
        assert!(
            e[0].starts_with("f.yaml:5:") && e[0].contains("\"klingon\""),
            "{e:?}"
        );
        let e = errors(&format!(
            "{HEAD}  - say: {{name: a, file: missing.wav, next: b}}\n  - lookup: {{name: b, backend: crm, path: \"/x/{{id\", into: r, next: c, on_error: c}}\n  - call: {{name: c, flow: other, next: d}}\n  - hangup: {{name: d}}\n"
        ));
        for want in [
            "prompt file \"missing.wav\" does not exist",
            "no backend named \"crm\"",
            "unclosed '{'",
            "no flow named \"other\"",
        ] {
            assert!(e.iter().any(|m| m.contains(want)), "{want}: {e:?}");
        }
        let e = errors(&format!(
            "{HEAD}  - branch:\n      name: a\n      cases:\n        - if: [{{var: x}}]\n          next: b\n      otherwise: b\n  - hangup: {{name: b}}\n  - menu: {{name: m, prompt: p, choices: {{\"11\": b}}}}\n"
        ));
        assert!(e.iter().any(|m| m.contains("exactly one of")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("not a DTMF key")), "{e:?}");
    }
}
