//! The flow interpreter (sans-IO): one [`Session`] per call takes `(now, input)` — the call
//! started, a prompt ended or was interrupted, a key, a recognition result, a lookup's answer,
//! a timer — and returns [`Command`]s: play a prompt, listen, look up, enqueue, transfer, hang
//! up. No-input timers run on `now`, so every path is tested in virtual time.
//!
//! ```text
//!  host (server / `crest flow test`)          Session
//!   Start{wall clock}, Key, Speech, … ──────► handle(now, input) ─► node by node
//!   poll_command() ◄── Play / Listen / Lookup / Enqueue / Transfer / Hangup
//!   poll_timeout() ◄── the no-input or lookup deadline
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::intent::{classify, spoken_digits, yes_no};
use crate::interp::{Vars, render};
use crate::load::Flow;
use crate::model::{Condition, Method, Node, Retry};

/// The flows a session can call into, by name.
#[derive(Debug, Clone, Default)]
pub struct Library {
    flows: HashMap<String, Arc<Flow>>,
}

impl Library {
    /// A library of `flows`.
    pub fn new(flows: impl IntoIterator<Item = Arc<Flow>>) -> Self {
        Self {
            flows: flows.into_iter().map(|f| (f.name.clone(), f)).collect(),
        }
    }

    /// The flow named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Flow>> {
        self.flows.get(name)
    }

    /// Every flow.
    pub fn flows(&self) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows.values()
    }
}

/// What happened on the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    /// The call was answered; `unix_secs` is the wall clock (for business hours).
    Start {
        /// Seconds since the Unix epoch.
        unix_secs: i64,
    },
    /// The prompt played to its end.
    PromptDone,
    /// The caller interrupted the prompt (a key or speech).
    BargeIn,
    /// A key.
    Key(char),
    /// What the recogniser heard (`""`: speech it could not match) and how sure it is.
    Speech {
        /// The words.
        text: &'a str,
        /// 0..1.
        confidence: f32,
    },
    /// A lookup answered.
    LookupDone {
        /// HTTP status.
        status: u16,
        /// The body (JSON).
        body: &'a str,
    },
    /// A lookup failed (connection, timeout).
    LookupFailed,
}

/// What to listen for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grammar {
    /// The intents of an `ask`: (name, examples).
    Intents(Vec<(String, Vec<String>)>),
    /// Spoken digits.
    Digits,
    /// Yes or no (a read-back).
    YesNo,
}

/// What the host does for the flow.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Play a prompt: TTS text, or a WAV file.
    Play {
        /// Text to speak.
        text: Option<String>,
        /// Or a file.
        file: Option<PathBuf>,
        /// TTS voice.
        voice: String,
        /// A key or speech may stop it.
        barge_in: bool,
    },
    /// Stop the prompt that plays.
    StopPrompt,
    /// Start recognising speech with this grammar (for the node `node`).
    Listen {
        /// The node that listens.
        node: String,
        /// What to listen for.
        grammar: Grammar,
    },
    /// Stop recognising.
    StopListening,
    /// An HTTP request.
    Lookup {
        /// GET or POST.
        method: Method,
        /// The full URL.
        url: String,
        /// POST body (JSON).
        body: Option<String>,
        /// Give up after.
        timeout: Duration,
    },
    /// Hand the caller to the ACD.
    Enqueue {
        /// The queue.
        queue: String,
        /// The problem type.
        problem_type: Option<String>,
        /// The customer tier.
        tier: Option<String>,
        /// Extra skills.
        skills: Vec<String>,
        /// The survey flow for when the agent hangs up first.
        survey: Option<String>,
    },
    /// Send the call to a SIP URI.
    Transfer {
        /// The URI.
        uri: String,
    },
    /// Register a callback.
    Callback {
        /// The queue.
        queue: String,
        /// The number to call.
        number: String,
    },
    /// End the call.
    Hangup {
        /// Why.
        reason: String,
    },
    /// The caller is (`true`) or is no longer (`false`) asked for card data (an `ask` whose
    /// `digits` say `pci: true`): keep what they say and key out of recordings and logs.
    CardData(bool),
}

/// How the flow ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to a queue.
    Queued(String),
    /// Transferred.
    Transferred(String),
    /// A callback was registered.
    Callback(String),
    /// Hung up by the flow (with the reason).
    HungUp(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Wait {
    /// A `say` prompt.
    Say,
    /// A menu or ask: the prompt plays (`playing`) or the caller has `deadline` to answer.
    Input { playing: bool },
    /// A read-back of spoken digits awaits yes or no.
    Confirm { digits: String, playing: bool },
    /// A lookup.
    Lookup,
    /// The goodbye prompt of a callback, then hang up.
    Goodbye,
    /// Nothing more.
    Done,
}

/// Most nodes run without input in a row before the flow is taken to loop (set/branch cycles).
const MAX_STEPS: usize = 1000;

/// One call's run through a flow.
#[derive(Debug)]
pub struct Session {
    lib: Arc<Library>,
    flow: Arc<Flow>,
    /// Flows that called into this one, and where each goes on.
    stack: Vec<(Arc<Flow>, String)>,
    node: String,
    vars: Vars,
    wait: Wait,
    deadline: Option<Instant>,
    no_input: u32,
    no_match: u32,
    digits: String,
    /// In an `ask` for card data (its `CardData(true)` went out).
    card_data: bool,
    out: VecDeque<Command>,
    path: Vec<String>,
    outcome: Option<Outcome>,
}

fn bool_var(b: bool) -> String {
    (if b { "true" } else { "false" }).to_owned()
}

impl Session {
    /// A session of `flow` with the variables the call brings (`caller`, `called`, `tier`, …).
    pub fn new(lib: Arc<Library>, flow: Arc<Flow>, vars: Vars) -> Self {
        Self {
            node: flow.start().to_owned(),
            lib,
            flow,
            stack: Vec::new(),
            vars,
            wait: Wait::Done,
            deadline: None,
            no_input: 0,
            no_match: 0,
            digits: String::new(),
            card_data: false,
            out: VecDeque::new(),
            path: Vec::new(),
            outcome: None,
        }
    }

    /// The flow and version the call runs (sub-flows aside).
    pub fn flow(&self) -> (&str, &str) {
        let f = self.stack.first().map_or(&self.flow, |(f, _)| f);
        (&f.name, &f.version)
    }

    /// The nodes visited, in order (`flow:node` inside sub-flows).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The variables.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// How the flow ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The next command.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Takes one input.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        // Ended (a callback's goodbye still plays: the outcome is known before the end).
        if self.outcome.is_some() && matches!(self.wait, Wait::Done) {
            return;
        }
        match (self.wait.clone(), input) {
            (_, Input::Start { unix_secs }) => {
                self.clock(unix_secs);
                self.run(now, None);
            }
            (Wait::Say, Input::PromptDone | Input::BargeIn) => {
                let next = match self.current() {
                    Node::Say(s) => s.next.value.clone(),
                    _ => return,
                };
                self.run(now, Some(next));
            }
            (Wait::Goodbye, Input::PromptDone | Input::BargeIn) => self.end(
                Command::Hangup {
                    reason: "callback registered".into(),
                },
                None,
            ),
            (Wait::Input { playing: true }, Input::PromptDone | Input::BargeIn) => {
                self.wait = Wait::Input { playing: false };
                self.arm(now);
            }
            (
                Wait::Confirm {
                    digits,
                    playing: true,
                },
                Input::PromptDone | Input::BargeIn,
            ) => {
                self.wait = Wait::Confirm {
                    digits,
                    playing: false,
                };
                self.arm(now);
            }
            (Wait::Input { playing }, Input::Key(k)) => self.key(now, k, playing),
            (Wait::Input { playing }, Input::Speech { text, confidence }) => {
                self.speech(now, text, confidence, playing);
            }
            (Wait::Confirm { digits, .. }, Input::Key(k)) => {
                self.confirmed(
                    now,
                    digits,
                    (k == '1').then_some(true).or((k == '2').then_some(false)),
                );
            }
            (Wait::Confirm { digits, .. }, Input::Speech { text, .. }) => {
                self.confirmed(now, digits, yes_no(text));
            }
            (Wait::Lookup, Input::LookupDone { status, body }) => {
                self.looked_up(now, Some((status, body)))
            }
            (Wait::Lookup, Input::LookupFailed) => self.looked_up(now, None),
            _ => {}
        }
    }

    /// Runs the timer: no input, or a lookup that took too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_none_or(|d| now < d) || self.outcome.is_some() {
            return;
        }
        self.deadline = None;
        match self.wait.clone() {
            Wait::Lookup => self.looked_up(now, None),
            Wait::Input { .. } if !self.digits.is_empty() => {
                // Keys stopped coming: what was typed is the answer.
                let digits = std::mem::take(&mut self.digits);
                self.digits_done(now, digits);
            }
            Wait::Input { .. } | Wait::Confirm { .. } => self.retry(now, true),
            _ => {}
        }
    }

    fn current(&self) -> &Node {
        // `node` always names a node of `flow`: the flow was checked before it ran.
        self.flow.node(&self.node).expect("checked flow")
    }

    fn clock(&mut self, unix_secs: i64) {
        let hours = self.flow.def.business_hours.clone();
        let offset = hours
            .as_ref()
            .map_or(0, |h| i64::from(h.utc_offset_minutes))
            * 60;
        let local = unix_secs + offset;
        let hour = local.rem_euclid(86_400) / 3600;
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let weekday = (local.div_euclid(86_400) + 3).rem_euclid(7);
        self.vars.insert("hour".into(), hour.to_string());
        self.vars.insert("weekday".into(), weekday.to_string());
        if let Some(h) = hours {
            let open = h.days.contains(&(weekday as u8))
                && hour >= i64::from(h.open)
                && hour < i64::from(h.close);
            self.vars.insert("business_hours".into(), bool_var(open));
        }
    }

    fn arm(&mut self, now: Instant) {
        let secs = match self.current() {
            Node::Menu(m) => m.timeout_secs,
            Node::Ask(a) => a.timeout_secs,
            _ => 5,
        };
        self.deadline = Some(now + Duration::from_secs(u64::from(secs)));
    }

    fn play(&mut self, text: &str, barge_in: bool) {
        self.out.push_back(Command::Play {
            text: Some(render(text, &self.vars)),
            file: None,
            voice: self.flow.voice.clone(),
            barge_in,
        });
    }

    fn end(&mut self, cmd: Command, outcome: Option<Outcome>) {
        self.card_data(false);
        if let Command::Hangup { reason } = &cmd {
            self.outcome.get_or_insert(Outcome::HungUp(reason.clone()));
        }
        if let Some(o) = outcome {
            self.outcome = Some(o);
        }
        self.out.push_back(cmd);
        self.wait = Wait::Done;
        self.deadline = None;
    }

    /// Goes to `next` (or starts at the current node) and runs nodes until one waits.
    fn run(&mut self, now: Instant, next: Option<String>) {
        if let Some(n) = next {
            self.node = n;
        }
        self.deadline = None;
        for _ in 0..MAX_STEPS {
            let name = if self.stack.is_empty() {
                self.node.clone()
            } else {
                format!("{}:{}", self.flow.name, self.node)
            };
            self.path.push(name);
            self.no_input = 0;
            self.no_match = 0;
            self.digits.clear();
            let node = self.current().clone();
            self.card_data(
                matches!(&node, Node::Ask(a) if a.digits.as_ref().is_some_and(|d| d.pci)),
            );
            let go = match &node {
                Node::Say(s) => {
                    let file = s.file.as_ref().map(|f| self.flow.resolve(f));
                    self.out.push_back(Command::Play {
                        text: s.text.as_ref().map(|t| render(t, &self.vars)),
                        file,
                        voice: s.voice.clone().unwrap_or_else(|| self.flow.voice.clone()),
                        barge_in: s.barge_in,
                    });
                    self.wait = Wait::Say;
                    return;
                }
                Node::Menu(m) => {
                    self.play(&m.prompt, true);
                    self.wait = Wait::Input { playing: true };
                    return;
                }
                Node::Ask(a) => {
                    self.play(&a.prompt, true);
                    self.listen(&node);
                    self.wait = Wait::Input { playing: true };
                    return;
                }
                Node::Lookup(l) => {
                    let Some(b) = self.flow.def.backends.get(&l.backend) else {
                        return self.end(
                            Command::Hangup {
                                reason: "no backend".into(),
                            },
                            None,
                        );
                    };
                    let body = (l.method == Method::Post).then(|| {
                        let fields: BTreeMap<&str, String> = l
                            .body
                            .iter()
                            .map(|(k, v)| (k.as_str(), render(v, &self.vars)))
                            .collect();
                        serde_json::to_string(&fields).unwrap_or_default()
                    });
                    self.out.push_back(Command::Lookup {
                        method: l.method,
                        url: format!(
                            "{}{}",
                            b.url.trim_end_matches('/'),
                            render(&l.path, &self.vars)
                        ),
                        body,
                        timeout: Duration::from_millis(u64::from(b.timeout_ms)),
                    });
                    self.wait = Wait::Lookup;
                    self.deadline = Some(now + Duration::from_millis(u64::from(b.timeout_ms)));
                    return;
                }
                Node::Set(s) => {
                    for (k, v) in &s.vars {
                        let v = render(v, &self.vars);
                        self.vars.insert(k.clone(), v);
                    }
                    s.next.value.clone()
                }
                Node::Branch(b) => b
                    .cases
                    .iter()
                    .find(|c| c.when.iter().all(|cond| holds(cond, &self.vars)))
                    .map_or(&b.otherwise, |c| &c.next)
                    .value
                    .clone(),
                Node::Queue(q) => {
                    let tier = q.tier.as_ref().map(|t| render(t, &self.vars));
                    return self.end(
                        Command::Enqueue {
                            queue: q.queue.clone(),
                            problem_type: q.problem_type.clone(),
                            tier,
                            skills: q.skills.clone(),
                            survey: q.survey.clone(),
                        },
                        Some(Outcome::Queued(q.queue.clone())),
                    );
                }
                Node::Transfer(t) => {
                    let uri = render(&t.uri, &self.vars);
                    return self.end(
                        Command::Transfer { uri: uri.clone() },
                        Some(Outcome::Transferred(uri)),
                    );
                }
                Node::Callback(c) => {
                    let number = c
                        .number
                        .as_ref()
                        .map(|n| render(n, &self.vars))
                        .or_else(|| self.vars.get("caller").cloned())
                        .unwrap_or_default();
                    self.out.push_back(Command::Callback {
                        queue: c.queue.clone(),
                        number,
                    });
                    self.outcome = Some(Outcome::Callback(c.queue.clone()));
                    match &c.prompt {
                        Some(p) => {
                            self.play(p, false);
                            self.wait = Wait::Goodbye;
                        }
                        None => self.end(
                            Command::Hangup {
                                reason: "callback registered".into(),
                            },
                            None,
                        ),
                    }
                    return;
                }
                Node::Hangup(h) => {
                    let reason = h.reason.clone().unwrap_or_else(|| "flow ended".into());
                    return self.end(
                        Command::Hangup {
                            reason: reason.clone(),
                        },
                        Some(Outcome::HungUp(reason)),
                    );
                }
                Node::Call(c) => {
                    let Some(sub) = self.lib.get(&c.flow).cloned() else {
                        return self.end(
                            Command::Hangup {
                                reason: format!("no flow {:?}", c.flow),
                            },
                            None,
                        );
                    };
                    let back = std::mem::replace(&mut self.flow, sub);
                    self.stack.push((back, c.next.value.clone()));
                    self.flow.start().to_owned()
                }
                Node::Return(_) => {
                    let Some((flow, next)) = self.stack.pop() else {
                        return self.end(
                            Command::Hangup {
                                reason: "return outside a sub-flow".into(),
                            },
                            None,
                        );
                    };
                    self.flow = flow;
                    next
                }
            };
            self.node = go;
        }
        self.end(
            Command::Hangup {
                reason: "flow loop".into(),
            },
            None,
        );
    }

    /// Says when the caller starts or stops giving card data.
    fn card_data(&mut self, on: bool) {
        if self.card_data != on {
            self.card_data = on;
            self.out.push_back(Command::CardData(on));
        }
    }

    fn listen(&mut self, node: &Node) {
        let grammar = match node {
            Node::Ask(a) if a.digits.is_some() => Grammar::Digits,
            Node::Ask(a) => Grammar::Intents(
                a.intents
                    .iter()
                    .map(|(k, i)| (k.clone(), i.examples.clone()))
                    .collect(),
            ),
            _ => return,
        };
        self.out.push_back(Command::Listen {
            node: node.name().to_owned(),
            grammar,
        });
    }

    fn stop_input(&mut self, playing: bool) {
        if playing {
            self.out.push_back(Command::StopPrompt);
        }
        if matches!(self.current(), Node::Ask(_)) {
            self.out.push_back(Command::StopListening);
        }
    }

    fn key(&mut self, now: Instant, k: char, playing: bool) {
        let node = self.current().clone();
        match &node {
            Node::Menu(m) => {
                self.stop_input(playing);
                match m.choices.get(&k.to_string()) {
                    Some(t) => {
                        self.vars.insert("key".into(), k.to_string());
                        self.run(now, Some(t.value.clone()));
                    }
                    None => self.retry(now, false),
                }
            }
            Node::Ask(a) => {
                if let Some(d) = &a.digits {
                    if playing {
                        self.out.push_back(Command::StopPrompt);
                        self.wait = Wait::Input { playing: false };
                    }
                    if d.terminator.starts_with(k) {
                        let digits = std::mem::take(&mut self.digits);
                        return self.digits_done(now, digits);
                    }
                    self.digits.push(k);
                    if self.digits.len() >= d.max as usize {
                        let digits = std::mem::take(&mut self.digits);
                        return self.digits_done(now, digits);
                    }
                    // The caller has the node's timeout for each further key.
                    self.arm(now);
                    return;
                }
                self.stop_input(playing);
                let hit = a
                    .intents
                    .iter()
                    .find(|(_, i)| i.dtmf.as_deref() == Some(&k.to_string()))
                    .map(|(name, i)| (name.clone(), i.next.value.clone()));
                match hit {
                    Some((name, next)) => {
                        self.vars.insert("intent".into(), name);
                        self.vars.insert("key".into(), k.to_string());
                        self.run(now, Some(next));
                    }
                    None => self.retry(now, false),
                }
            }
            _ => {}
        }
    }

    fn speech(&mut self, now: Instant, text: &str, confidence: f32, playing: bool) {
        let Node::Ask(a) = self.current().clone() else {
            return;
        };
        self.stop_input(playing);
        if a.digits.is_some() {
            return match spoken_digits(text) {
                // Card data is never said back (it would pass through the TTS and its cache).
                Some(d) if self.card_data => self.digits_done(now, d),
                // Spoken digits are read back before they count.
                Some(d) => {
                    let spaced: Vec<String> = d.chars().map(String::from).collect();
                    self.play(
                        &format!("I heard {}. Say yes or press 1 if that is right, say no or press 2 if not.", spaced.join(" ")),
                        true,
                    );
                    self.out.push_back(Command::Listen {
                        node: a.name,
                        grammar: Grammar::YesNo,
                    });
                    self.wait = Wait::Confirm {
                        digits: d,
                        playing: true,
                    };
                }
                None => self.retry(now, text.trim().is_empty()),
            };
        }
        match classify(&a.intents, text) {
            Some((name, score)) if score * confidence >= a.confidence => {
                let next = a.intents[name].next.value.clone();
                self.vars.insert("intent".into(), name.to_owned());
                self.vars.insert("utterance".into(), text.to_owned());
                self.run(now, Some(next));
            }
            _ => {
                self.vars.insert("utterance".into(), text.to_owned());
                self.retry(now, text.trim().is_empty());
            }
        }
    }

    fn confirmed(&mut self, now: Instant, digits: String, yes: Option<bool>) {
        self.out.push_back(Command::StopPrompt);
        self.out.push_back(Command::StopListening);
        match yes {
            Some(true) => self.digits_done(now, digits),
            _ => self.retry(now, false),
        }
    }

    fn digits_done(&mut self, now: Instant, digits: String) {
        let Node::Ask(a) = self.current().clone() else {
            return;
        };
        let Some(d) = &a.digits else { return };
        if (digits.len() as u32) < d.min {
            return self.retry(now, digits.is_empty());
        }
        self.out.push_back(Command::StopListening);
        self.vars.insert(d.into.clone(), digits);
        self.run(now, Some(d.next.value.clone()));
    }

    /// No input (`silent`) or no match: the retry prompt and the question again, or the
    /// retry's `then` once the retries are spent.
    fn retry(&mut self, now: Instant, silent: bool) {
        let node = self.current().clone();
        let (prompt, r): (&str, &Option<Retry>) = match &node {
            Node::Menu(m) => (&m.prompt, if silent { &m.no_input } else { &m.no_match }),
            Node::Ask(a) => (&a.prompt, if silent { &a.no_input } else { &a.no_match }),
            _ => return,
        };
        let Some(r) = r else { return };
        let count = if silent {
            &mut self.no_input
        } else {
            &mut self.no_match
        };
        *count += 1;
        if *count > r.retries {
            return self.run(now, Some(r.then.value.clone()));
        }
        self.digits.clear();
        let again = format!("{} {prompt}", r.prompt);
        self.play(&again, true);
        self.listen(&node);
        self.wait = Wait::Input { playing: true };
        self.deadline = None;
    }

    fn looked_up(&mut self, now: Instant, answer: Option<(u16, &str)>) {
        let Node::Lookup(l) = self.current().clone() else {
            return;
        };
        let ok = answer
            .filter(|(status, _)| (200..300).contains(status))
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(body).ok());
        match ok {
            Some(v) => {
                flatten(&l.into, &v, &mut self.vars);
                self.run(now, Some(l.next.value.clone()));
            }
            None => {
                self.vars.insert(format!("{}.error", l.into), "true".into());
                self.run(now, Some(l.on_error.value.clone()));
            }
        }
    }
}

/// JSON fields as `prefix.field` variables (nested objects as `prefix.a.b`).
fn flatten(prefix: &str, v: &serde_json::Value, vars: &mut Vars) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                flatten(&format!("{prefix}.{k}"), v, vars);
            }
        }
        serde_json::Value::String(s) => {
            vars.insert(prefix.to_owned(), s.clone());
        }
        serde_json::Value::Null => {}
        other => {
            vars.insert(prefix.to_owned(), other.to_string());
        }
    }
}

/// Whether a branch condition holds.
fn holds(c: &Condition, vars: &Vars) -> bool {
    let v = vars.get(&c.var);
    let num = || v.and_then(|s| s.parse::<f64>().ok());
    if let Some(e) = &c.eq {
        return v == Some(e);
    }
    if let Some(e) = &c.ne {
        return v != Some(e);
    }
    if let Some(set) = &c.one_of {
        return v.is_some_and(|v| set.contains(v));
    }
    if let Some(x) = c.lt {
        return num().is_some_and(|n| n < x);
    }
    if let Some(x) = c.ge {
        return num().is_some_and(|n| n >= x);
    }
    if let Some(e) = c.exists {
        return v.is_some() == e;
    }
    if let Some(p) = &c.prefix {
        return v.is_some_and(|v| v.starts_with(p.as_str()));
    }
    false
}
