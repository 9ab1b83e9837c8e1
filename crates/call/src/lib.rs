//! Crest's call controller: the caller's whole journey through a call Crest answers itself, as
//! one sans-IO state machine per call.
//!
//! A [`Call`] takes what happens to the call — the caller's leg coming up, keys, prompt ends,
//! what the recogniser heard, lookup answers, the ACD's decisions, the legs Crest placed, the
//! call's end — through [`Call::handle_input`]`(now, Input)`, runs the IVR flow's
//! [`Session`] inside itself, and gives back what to do through [`Call::poll_output`]: play or
//! stop a prompt, listen to the caller, make a lookup, tell the ACD, answer, refuse, connect,
//! hang up the agent's leg (a transfer) or the call, start, pause (PCI) or stop the recording. [`Call::poll_timeout`] says when [`Call::handle_timeout`] wants to run (the flow's
//! timers). It owns no socket, thread or clock: the server's call task drives it, and the
//! tests drive it in virtual time.
//!
//! ```text
//!             ┌──────────────────────────── Call ────────────────────────────┐
//!  CallerUp ─►│ Answering ─► Ivr (Session) ─► Admission ─► Queued ─► Bridged  │─► Record
//!  keys, ──── │     │          │  └► Transferring ─► Bridged   Bridged ─► Admission │
//!             │     │          │     (the agent's Transfer: Disconnect, join again)│
//!  prompt end │     │          └► callback: goodbye ─► HangUp                 │
//!  heard,     │     └► (queue: route) Admission ─► Accept (200) / Refusing ─► 503 / BYE
//!  lookups,   │ any stage ── Ended ─► StopListening, IvrDone, Acd(Ended), Record
//!  ACD, legs ►└──────────────────────────────────────────────────────────────┘
//!                 ▼ poll_output(): Play · StopPrompt · Listen · StopListening · Lookup ·
//!                   Acd(Enqueue | Key | Leg | CustomerAnswered | …) · Accept · Refuse ·
//!                   Connect · Disconnect · HangUp · IvrStarted · IvrDone · Recording · Record
//! ```
//!
//! The controller guarantees the bookkeeping the server's tables rely on: every
//! [`Output::IvrStarted`] is followed by exactly one [`Output::IvrDone`], every
//! [`Output::Listen`] by a [`Output::StopListening`] or an [`Input::Heard`] /
//! [`Input::ListenFailed`], every call the ACD was told about ends with
//! [`ToAcd::Ended`], a started [`Recording`] is stopped once, and every call ends with exactly
//! one [`Output::Record`]; after it, nothing.
//!
//! The recording starts at the answer or at the bridge ([`RecordFrom`]); it is paused while an
//! IVR `ask` collects card data (`pci: true`) and while the agent's pause ([`Input::Pause`])
//! lasts, at most [`Config::pci_limit`].
//!
//! While bridged, the agent may put the caller on hold ([`Input::AgentHold`]: the hold music
//! loops) and transfer them ([`Input::Transfer`]) to a queue or to one colleague by name.

mod center;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use center::{
    ALREADY_BOOKED, AgentChange, AgentView, Center, CenterConfig, CenterInput, CenterOutput,
    GOODBYE, OfferView, REFUSAL, UnknownAgent, WaitingView,
};
pub use crest_acd::CallId;
use crest_ivr::engine::Input as FlowInput;
use crest_ivr::interp::Vars;
use crest_ivr::model::Method;
use crest_ivr::{Command as FlowCommand, Flow, Grammar, Library, Outcome, Session};
pub use crest_sip_proxy::{ConnectTarget, LegEvent};

/// Settings every call shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// Whether an ACD takes callers (without one, a hand-off to a queue ends the call).
    pub acd: bool,
    /// The voice of the ACD's announcements (place in line, goodbye, refusal).
    pub voice: String,
    /// How long a transfer target may ring.
    pub transfer_ring: Duration,
    /// Whether and from when the call is recorded.
    pub record: RecordFrom,
    /// The longest a PCI pause asked for by the agent lasts: then the recording resumes by
    /// itself (a forgotten pause must not leave the rest of the call unrecorded).
    pub pci_limit: Duration,
}

/// From when a call Crest answers is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFrom {
    /// Not recorded.
    #[default]
    Never,
    /// From the moment the caller talks to an agent or a transfer target.
    Bridge,
    /// From the caller's answer: the IVR, the hold and the conversation.
    Answer,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            acd: true,
            voice: "en-us".into(),
            transfer_ring: Duration::from_secs(60),
            record: RecordFrom::Never,
            pci_limit: Duration::from_secs(600),
        }
    }
}

/// How the call begins once the caller's leg is up.
#[derive(Debug, Clone)]
pub enum Start {
    /// Run an IVR flow with the call's variables (`caller`, `number`, `surge`, …).
    Ivr {
        /// Every flow (for `call` nodes).
        library: Arc<Library>,
        /// The flow.
        flow: Arc<Flow>,
        /// The call's variables.
        vars: Vars,
    },
    /// Queue the caller (a `queue:` route): early media until the ACD admits them.
    Queue(String),
    /// A callback Crest placed to a customer for this queue: the ACD knows the call already
    /// and rings the reserved agent once the customer answers.
    Callback(String),
}

/// What the host plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Text to speak in a voice.
    Say {
        /// The text.
        text: String,
        /// The TTS voice.
        voice: String,
    },
    /// A WAV file.
    File(PathBuf),
    /// The hold music (looped by the controller: it asks for it again at each end).
    HoldMusic,
}

/// What the ACD tells the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromAcd {
    /// The caller is in the queue (a `queue:` route's caller is answered now).
    Admitted,
    /// Place in line and expected wait, to say while the caller holds.
    Announce(String),
    /// The agent answered: the legs are bridged.
    Connected {
        /// The agent's name.
        agent: String,
    },
    /// The caller took a callback while holding: say this, then hang up.
    Goodbye(String),
    /// Admission refused the caller: say this, then refuse (503 with Retry-After) or hang up.
    Refused {
        /// The announcement.
        text: String,
        /// Seconds, for Retry-After.
        retry_after: u64,
    },
}

/// What the ACD is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToAcd {
    /// Join `queue` (or be called back at `number` from it).
    Enqueue {
        /// The queue's name.
        queue: String,
        /// The caller's tier (0 normal … 3 VIP).
        tier: u8,
        /// The caller's number, or the number to call back.
        number: String,
        /// The caller's language, when the IVR knows it.
        language: Option<String>,
        /// Straight from a `queue:` route (early media until admitted), not from the IVR.
        door: bool,
        /// A callback request instead of holding.
        callback: bool,
        /// What the IVR learned, for the agent's screen: `path` (the nodes visited),
        /// `intent`, and the results of the flows' lookups (`order.status`…). Never what the
        /// caller keyed or said (card data is asked into an `ask`'s variable, not a lookup's).
        context: Vec<(String, String)>,
        /// Only this agent is to be offered the caller (an agent transferred them to a
        /// colleague by name).
        agent: Option<String>,
    },
    /// A key while holding (1 takes a callback offer).
    Key(char),
    /// What became of the leg to the agent.
    Leg(LegEvent),
    /// A `queue:` caller held in early media was answered (200 sent): an agent offered
    /// meanwhile may ring now.
    Answered,
    /// The customer answered Crest's callback.
    CustomerAnswered,
    /// The customer did not answer Crest's callback (the status).
    CustomerUnanswered(u16),
    /// The call ended.
    Ended,
}

/// What happened to the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    /// The caller's leg is up with media (answered, early media, or a callback's customer
    /// answered); `unix_secs` is the wall clock (business hours).
    CallerUp {
        /// Seconds since the Unix epoch.
        unix_secs: i64,
    },
    /// The prompt played to its end.
    PromptDone,
    /// The prompt could not be made (no voice, unreadable file): the flow goes on.
    PromptFailed,
    /// The caller interrupted the prompt (a key or speech).
    BargeIn,
    /// A key from the caller (RFC 4733, in-band or SIP INFO).
    Key(char),
    /// What the recogniser heard once the caller stopped talking (`""`: nothing it could
    /// match).
    Heard {
        /// The words.
        text: &'a str,
        /// 0..1.
        confidence: f32,
    },
    /// No recogniser could listen (the pool is spent, or it failed): keys still work.
    ListenFailed,
    /// A lookup's answer: `Some((status, body))`, or `None` when it failed.
    LookupDone(Option<(u16, &'a str)>),
    /// The ACD's decision.
    Acd(FromAcd),
    /// What became of the customer's leg Crest placed (a callback).
    LegA(LegEvent),
    /// What became of the leg Crest placed to an agent or a transfer target.
    LegB(LegEvent),
    /// PCI: the agent (or the admin API for them) pauses the call's recording while the
    /// caller gives card data, with a reason. It lasts until [`Input::Resume`] or
    /// [`Config::pci_limit`]; asked before the recording starts, it applies from its start.
    Pause(&'a str),
    /// Ends the agent's PCI pause.
    Resume,
    /// The agent on the call sends the caller on (see [`Transfer`]): their leg is hung up
    /// and the caller holds for the next agent, with what the IVR learned and who sent them.
    /// Ignored unless the caller is bridged to an agent of the ACD.
    Transfer(Transfer),
    /// The agent put the caller on hold (`true`: the caller hears the hold music) or took
    /// them back (`false`). Only while bridged to an agent.
    AgentHold(bool),
    /// The call ended (either party hung up, a timeout, an error).
    Ended,
}

/// Where an agent transfers their caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// To a queue: its next agent.
    Queue(String),
    /// To one agent by name (in the queue the caller was in, or one the agent serves): the
    /// caller waits for them.
    Agent(String),
}

/// What the host does for the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Play a prompt to the caller (replacing any that plays).
    Play {
        /// What.
        prompt: Prompt,
        /// A key or speech may stop it.
        barge_in: bool,
    },
    /// Stop the prompt that plays.
    StopPrompt,
    /// Start recognising the caller's speech; answer with [`Input::Heard`] or
    /// [`Input::ListenFailed`].
    Listen(Grammar),
    /// Stop recognising (the recogniser goes back to its pool).
    StopListening,
    /// Make an HTTP request; answer with [`Input::LookupDone`].
    Lookup {
        /// GET or POST.
        method: Method,
        /// The URL.
        url: String,
        /// POST body.
        body: Option<String>,
        /// Give up after.
        timeout: Duration,
    },
    /// Tell the ACD.
    Acd(ToAcd),
    /// Answer (200) a `queue:` caller held in early media: admitted.
    Accept,
    /// Refuse a `queue:` caller held in early media: 503 with Retry-After.
    Refuse {
        /// Seconds.
        retry_after: u64,
    },
    /// Connect the caller to a SIP URI (a transfer).
    Connect {
        /// Where.
        target: ConnectTarget,
        /// How long it may ring.
        ring: Duration,
    },
    /// Hang up the agent's leg; the caller stays (a transfer).
    Disconnect,
    /// End the call.
    HangUp(String),
    /// An IVR session started.
    IvrStarted {
        /// The flow.
        flow: String,
        /// Its version.
        version: String,
    },
    /// The IVR session ended (followed its [`Output::IvrStarted`]).
    IvrDone(IvrSummary),
    /// Start, pause, resume or stop the call's recording.
    Recording(Recording),
    /// The call's record; the last output.
    Record(Record),
}

/// What the recorder does for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recording {
    /// Start recording both legs (the agent's leg from when it is up).
    Start,
    /// PCI: replace the audio with silence from now, marked with this reason.
    Pause(String),
    /// End the pause.
    Resume,
    /// Close the recording (the call ended).
    Stop,
}

/// How a caller's IVR session went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvrSummary {
    /// The flow.
    pub flow: String,
    /// Its version.
    pub version: String,
    /// `queue:NAME`, `transfer`, `callback`, `hangup`, or `abandoned` (the caller hung up).
    pub outcome: String,
    /// The nodes visited.
    pub path: Vec<String>,
    /// The language the caller spoke (the flow's `language` variable, or the flow's own).
    pub language: String,
    /// Time in the flow.
    pub duration: Duration,
}

/// Where a call ended: the stage it was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the caller's media.
    Answering,
    /// In the IVR flow.
    Ivr,
    /// Waiting for the ACD's admission decision, with hold music.
    Admission,
    /// Holding in a queue (an agent may be ringing).
    Queued,
    /// A transfer target rings.
    Transferring,
    /// Talking to an agent or a transfer target.
    Bridged,
    /// In the satisfaction survey after the agent hung up.
    Survey,
    /// Hearing the goodbye before a callback.
    Leaving,
    /// Hearing why admission refused them.
    Refusing,
    /// A callback: Crest dials the customer.
    Dialling,
    /// Over.
    Ended,
}

/// The call's record (CDR fields of the journey).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The call.
    pub call: CallId,
    /// The route's number.
    pub number: String,
    /// The IVR flow and version, if the caller was in one.
    pub flow: Option<(String, String)>,
    /// The IVR's nodes visited.
    pub path: Vec<String>,
    /// The intent the caller chose last, if the flow set `intent`.
    pub intent: Option<String>,
    /// The queue joined.
    pub queue: Option<String>,
    /// The agent who answered.
    pub agent: Option<String>,
    /// Time in the queue (to the agent's answer, or to the end).
    pub wait: Option<Duration>,
    /// From the caller's leg up to the end.
    pub duration: Duration,
    /// `answered`, `transferred`, `self-service`, `callback`, `refused`,
    /// `abandoned-<stage>`, `failed-transfer`.
    pub outcome: String,
    /// The stage the call ended in.
    pub ended_in: Stage,
    /// The caller's satisfaction score (1 to 5) from the survey after the agent's call.
    pub csat: Option<u8>,
}

/// One call Crest answers itself (see the crate docs).
#[derive(Debug)]
pub struct Call {
    id: CallId,
    caller: String,
    config: Config,
    start: Option<Start>,
    stage: Stage,
    session: Option<Session>,
    /// The flow's language, for the caller's language when they leave the IVR.
    flow_language: String,
    /// When the IVR session started.
    ivr_at: Option<Instant>,
    /// Every flow, for the survey after the agent's call.
    library: Option<Arc<Library>>,
    /// What the IVR learned, for the agent's screen (see [`ToAcd::Enqueue`]).
    context: Vec<(String, String)>,
    /// The survey flow the queue node named.
    survey: Option<String>,
    /// The tier and language the caller joined the ACD with (a transfer keeps them).
    joined: Option<(u8, Option<String>)>,
    /// The wall clock when the caller's leg came up (seconds), and that instant.
    up_unix: i64,
    listening: bool,
    /// The ACD knows the call (it must hear of its end).
    in_acd: bool,
    /// The hold music loops.
    holding: bool,
    /// A `queue:` caller not answered yet (early media).
    early: bool,
    retry_after: u64,
    ivr_outcome: Option<String>,
    up_at: Option<Instant>,
    queued_at: Option<Instant>,
    /// The recording runs (started, not stopped).
    recording: bool,
    /// What the recorder was last told: paused, and why.
    paused: Option<String>,
    /// The IVR asks for card data.
    card_data: bool,
    /// The agent's PCI pause: its reason and when it runs out.
    agent_pause: Option<(String, Instant)>,
    record: Record,
    out: VecDeque<Output>,
}

impl Call {
    /// A call `id` to route `number` from `caller`, to begin as `start` once its leg is up.
    pub fn new(id: CallId, number: &str, caller: &str, start: Start, config: Config) -> Self {
        let callback = matches!(start, Start::Callback(_));
        Self {
            id,
            caller: caller.to_owned(),
            config,
            stage: if callback {
                Stage::Dialling
            } else {
                Stage::Answering
            },
            // A callback is the ACD's from the start.
            in_acd: callback,
            early: matches!(start, Start::Queue(_)),
            start: Some(start),
            session: None,
            flow_language: String::new(),
            ivr_at: None,
            library: None,
            context: Vec::new(),
            survey: None,
            joined: None,
            up_unix: 0,
            listening: false,
            holding: false,
            retry_after: 0,
            ivr_outcome: None,
            up_at: None,
            queued_at: None,
            recording: false,
            paused: None,
            card_data: false,
            agent_pause: None,
            record: Record {
                call: id,
                number: number.to_owned(),
                flow: None,
                path: Vec::new(),
                intent: None,
                queue: None,
                agent: None,
                wait: None,
                duration: Duration::ZERO,
                outcome: String::new(),
                ended_in: Stage::Answering,
                csat: None,
            },
            out: VecDeque::new(),
        }
    }

    /// The call.
    pub fn id(&self) -> CallId {
        self.id
    }

    /// Where the caller is.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether a recogniser should be listening to the caller.
    pub fn listening(&self) -> bool {
        self.listening
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether the caller is giving card data (keys and words are kept out of logs).
    pub fn card_data(&self) -> bool {
        self.card_data
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pause = self.agent_pause.as_ref().map(|(_, until)| *until);
        self.session
            .as_ref()
            .and_then(Session::poll_timeout)
            .into_iter()
            .chain(pause)
            .min()
    }

    /// Runs the timers: the flow's (no input, a lookup that took too long) and the end of
    /// an agent's PCI pause.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .agent_pause
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            tracing::warn!(call = %self.id, "PCI pause ran out: recording resumes");
            self.agent_pause = None;
            self.sync_recording();
        }
        if let Some(s) = self.session.as_mut() {
            s.handle_timeout(now);
            self.drain_flow(now);
        }
    }

    /// Takes one input.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if self.stage == Stage::Ended {
            return;
        }
        match input {
            Input::CallerUp { unix_secs } => self.caller_up(now, unix_secs),
            Input::PromptDone | Input::PromptFailed => self.prompt_done(now),
            Input::BargeIn => self.feed_flow(now, FlowInput::BargeIn),
            Input::Key(k) => {
                if self.session.is_some() {
                    self.feed_flow(now, FlowInput::Key(k));
                } else if self.holding && self.in_acd {
                    self.out.push_back(Output::Acd(ToAcd::Key(k)));
                }
            }
            Input::Heard { text, confidence } => {
                if self.listening {
                    self.listening = false;
                    self.feed_flow(now, FlowInput::Speech { text, confidence });
                }
            }
            Input::ListenFailed => self.listening = false,
            Input::LookupDone(answer) => {
                let input = match answer {
                    Some((status, body)) => FlowInput::LookupDone { status, body },
                    None => FlowInput::LookupFailed,
                };
                self.feed_flow(now, input);
            }
            Input::Acd(ev) => self.handle_acd(now, ev),
            Input::LegA(ev) => match ev {
                LegEvent::Answered => self.out.push_back(Output::Acd(ToAcd::CustomerAnswered)),
                LegEvent::Failed(status) => self
                    .out
                    .push_back(Output::Acd(ToAcd::CustomerUnanswered(status))),
                LegEvent::Ringing | LegEvent::Ended => {}
            },
            Input::LegB(ev) => self.leg_b(now, ev),
            Input::Pause(reason) => {
                self.agent_pause = Some((reason.to_owned(), now + self.config.pci_limit));
                self.sync_recording();
            }
            Input::Resume => {
                self.agent_pause = None;
                self.sync_recording();
            }
            Input::Transfer(to) => self.transfer(now, to),
            Input::AgentHold(on) if self.stage == Stage::Bridged && on != self.holding => {
                self.holding = on;
                if on {
                    self.play(Prompt::HoldMusic, false);
                } else {
                    self.out.push_back(Output::StopPrompt);
                }
            }
            Input::AgentHold(_) => {}
            Input::Ended => self.end(now),
        }
    }

    fn caller_up(&mut self, now: Instant, unix_secs: i64) {
        let Some(start) = self.start.take() else {
            return;
        };
        self.up_at = Some(now);
        self.up_unix = unix_secs;
        if self.config.record == RecordFrom::Answer {
            self.start_recording();
        }
        match start {
            Start::Ivr {
                library,
                flow,
                vars,
            } => {
                self.stage = Stage::Ivr;
                self.ivr_at = Some(now);
                self.flow_language.clone_from(&flow.language);
                self.library = Some(library.clone());
                let mut session = Session::new(library, flow, vars);
                let (name, version) = session.flow();
                let (name, version) = (name.to_owned(), version.to_owned());
                self.record.flow = Some((name.clone(), version.clone()));
                self.out.push_back(Output::IvrStarted {
                    flow: name,
                    version,
                });
                session.handle(now, FlowInput::Start { unix_secs });
                self.session = Some(session);
                self.drain_flow(now);
            }
            Start::Queue(queue) => self.join(now, queue, 0, None, None),
            Start::Callback(queue) => {
                // The customer answered Crest's callback: music until the agent answers.
                self.record.queue = Some(queue);
                self.stage = Stage::Queued;
                self.queued_at = Some(now);
                self.hold();
            }
        }
    }

    fn prompt_done(&mut self, now: Instant) {
        match self.stage {
            Stage::Leaving => {
                let why = "callback taken".to_owned();
                self.out.push_back(Output::HangUp(why));
            }
            Stage::Refusing => {
                let o = if self.early {
                    Output::Refuse {
                        retry_after: self.retry_after,
                    }
                } else {
                    Output::HangUp("refused by admission".into())
                };
                self.out.push_back(o);
            }
            _ if self.holding => self.play(Prompt::HoldMusic, false),
            _ => self.feed_flow(now, FlowInput::PromptDone),
        }
    }

    fn handle_acd(&mut self, now: Instant, ev: FromAcd) {
        match ev {
            FromAcd::Admitted => {
                if self.early {
                    self.early = false;
                    self.out.push_back(Output::Accept);
                    self.out.push_back(Output::Acd(ToAcd::Answered));
                }
                if self.stage == Stage::Admission {
                    self.stage = Stage::Queued;
                }
            }
            FromAcd::Announce(text) => {
                if self.holding && self.stage == Stage::Queued {
                    self.say(text);
                }
            }
            FromAcd::Connected { agent } => {
                self.holding = false;
                self.stage = Stage::Bridged;
                self.record.agent = Some(agent);
                self.record.wait = self.queued_at.map(|q| now.saturating_duration_since(q));
                self.out.push_back(Output::StopPrompt);
                self.start_recording();
            }
            FromAcd::Goodbye(text) => {
                self.holding = false;
                self.stage = Stage::Leaving;
                self.record.outcome = "callback".into();
                self.say(text);
            }
            FromAcd::Refused { text, retry_after } => {
                self.holding = false;
                self.in_acd = false;
                self.stage = Stage::Refusing;
                self.retry_after = retry_after;
                self.record.outcome = "refused".into();
                self.say(text);
            }
        }
    }

    fn leg_b(&mut self, now: Instant, ev: LegEvent) {
        if ev == LegEvent::Ended {
            self.far_end_left(now);
        } else if self.in_acd {
            self.out.push_back(Output::Acd(ToAcd::Leg(ev)));
        } else if self.stage == Stage::Transferring {
            match ev {
                LegEvent::Answered => {
                    self.holding = false;
                    self.stage = Stage::Bridged;
                    self.out.push_back(Output::StopPrompt);
                    self.start_recording();
                }
                LegEvent::Failed(_) => {
                    self.record.outcome = "failed-transfer".into();
                    self.out.push_back(Output::HangUp("transfer failed".into()));
                }
                LegEvent::Ringing | LegEvent::Ended => {}
            }
        }
    }

    /// The agent sends the caller on: their leg goes (wrap-up for them), the caller holds
    /// for the next agent in the queue named, or for the agent named.
    fn transfer(&mut self, now: Instant, to: Transfer) {
        if self.stage != Stage::Bridged || !self.in_acd {
            return;
        }
        let from = self.record.agent.clone().unwrap_or_default();
        self.out.push_back(Output::Disconnect);
        self.out.push_back(Output::Acd(ToAcd::Ended));
        self.in_acd = false;
        let (tier, language) = self.joined.clone().unwrap_or((0, None));
        let (queue, agent) = match to {
            Transfer::Queue(q) => (q, None),
            Transfer::Agent(a) => (self.record.queue.clone().unwrap_or_default(), Some(a)),
        };
        self.context.retain(|(k, _)| k != "transferred_by");
        self.context.push(("transferred_by".into(), from));
        self.say("Please hold while I transfer your call.".into());
        self.join_agent(now, queue, tier, language, agent);
    }

    /// The agent (or the transfer target) hung up while the caller stays: the survey the
    /// queue node named, or the caller's hang-up.
    fn far_end_left(&mut self, now: Instant) {
        if self.stage != Stage::Bridged {
            return;
        }
        // Held by the agent who left: the music ends with them.
        self.holding = false;
        if self.in_acd {
            // The agent's call is over for the ACD (wrap-up), whatever the caller does now.
            self.in_acd = false;
            self.out.push_back(Output::Acd(ToAcd::Ended));
        }
        if self.recording {
            // The recording is of the conversation.
            self.recording = false;
            self.paused = None;
            self.out.push_back(Output::Recording(Recording::Stop));
        }
        let flow = self
            .survey
            .take()
            .filter(|_| self.record.agent.is_some())
            .and_then(|name| self.library.as_ref()?.get(&name).cloned());
        let (Some(flow), Some(library)) = (flow, self.library.clone()) else {
            self.out
                .push_back(Output::HangUp("the other party hung up".into()));
            return;
        };
        self.stage = Stage::Survey;
        let mut vars = Vars::new();
        vars.insert("caller".into(), self.caller.clone());
        for (k, v) in [("agent", &self.record.agent), ("queue", &self.record.queue)] {
            if let Some(v) = v {
                vars.insert(k.into(), v.clone());
            }
        }
        let mut session = Session::new(library, flow, vars);
        let (name, version) = session.flow();
        self.out.push_back(Output::IvrStarted {
            flow: name.to_owned(),
            version: version.to_owned(),
        });
        let since_up = self
            .up_at
            .map_or(0, |u| now.saturating_duration_since(u).as_secs());
        session.handle(
            now,
            FlowInput::Start {
                unix_secs: self.up_unix + since_up as i64,
            },
        );
        self.ivr_at = Some(now);
        self.session = Some(session);
        self.drain_flow(now);
    }

    fn end(&mut self, now: Instant) {
        let ended_in = self.stage;
        if self.session.is_some() {
            self.leave_flow(now, Some("abandoned".into()));
        }
        if self.listening {
            self.listening = false;
            self.out.push_back(Output::StopListening);
        }
        if self.in_acd {
            self.in_acd = false;
            self.out.push_back(Output::Acd(ToAcd::Ended));
        }
        self.holding = false;
        self.stage = Stage::Ended;
        if self.recording {
            self.recording = false;
            self.out.push_back(Output::Recording(Recording::Stop));
        }
        self.card_data = false;
        self.agent_pause = None;
        let r = &mut self.record;
        r.ended_in = ended_in;
        r.duration = self
            .up_at
            .map_or(Duration::ZERO, |u| now.saturating_duration_since(u));
        if r.wait.is_none() {
            r.wait = self.queued_at.map(|q| now.saturating_duration_since(q));
        }
        if r.outcome.is_empty() {
            r.outcome = match (ended_in, &self.ivr_outcome) {
                (Stage::Bridged | Stage::Survey, _) if r.agent.is_some() => "answered".into(),
                (Stage::Bridged, _) => "transferred".into(),
                (Stage::Ivr | Stage::Answering, Some(o)) if o == "hangup" => "self-service".into(),
                (s, _) => format!("abandoned-{}", stage_name(s)),
            };
        }
        self.out.push_back(Output::Record(self.record.clone()));
    }

    /// Feeds the flow, if the caller is in one.
    fn feed_flow(&mut self, now: Instant, input: FlowInput<'_>) {
        if let Some(s) = self.session.as_mut() {
            s.handle(now, input);
            self.drain_flow(now);
        }
    }

    /// Turns the flow's commands into outputs.
    fn drain_flow(&mut self, now: Instant) {
        while let Some(c) = self.session.as_mut().and_then(Session::poll_command) {
            match c {
                FlowCommand::Play {
                    text,
                    file,
                    voice,
                    barge_in,
                } => {
                    let prompt = match (text, file) {
                        (Some(text), _) => Prompt::Say { text, voice },
                        (None, Some(f)) => Prompt::File(f),
                        // The loader refuses such a prompt; were one to come, the flow goes on.
                        (None, None) => {
                            self.feed_flow(now, FlowInput::PromptDone);
                            continue;
                        }
                    };
                    self.play(prompt, barge_in);
                }
                FlowCommand::StopPrompt => self.out.push_back(Output::StopPrompt),
                FlowCommand::Listen { grammar, .. } => {
                    // One recogniser per call: a new grammar replaces the old one.
                    self.stop_listening();
                    self.listening = true;
                    self.out.push_back(Output::Listen(grammar));
                }
                FlowCommand::StopListening => self.stop_listening(),
                FlowCommand::Lookup {
                    method,
                    url,
                    body,
                    timeout,
                } => self.out.push_back(Output::Lookup {
                    method,
                    url,
                    body,
                    timeout,
                }),
                FlowCommand::Enqueue {
                    queue,
                    tier,
                    survey,
                    ..
                } => {
                    self.survey = survey;
                    let language = self.language();
                    self.context = self.caller_context();
                    self.leave_flow(now, None);
                    self.join(now, queue, tier_of(tier.as_deref()), Some(language), None);
                }
                FlowCommand::Callback { queue, number } => {
                    // The flow says its goodbye and hangs up itself; the ACD keeps the place.
                    self.stop_listening();
                    self.join(now, queue, 0, None, Some(number));
                }
                FlowCommand::Transfer { uri } => {
                    self.leave_flow(now, None);
                    self.stage = Stage::Transferring;
                    self.hold();
                    self.out.push_back(Output::Connect {
                        target: ConnectTarget::Uri(uri),
                        ring: self.config.transfer_ring,
                    });
                }
                FlowCommand::CardData(on) => {
                    self.card_data = on;
                    self.sync_recording();
                }
                FlowCommand::Hangup { reason } => {
                    self.leave_flow(now, None);
                    if self.record.outcome.is_empty() && self.in_acd {
                        self.record.outcome = "callback".into();
                    }
                    self.out.push_back(Output::HangUp(reason));
                }
            }
        }
    }

    /// Starts the recording, if the call is recorded and it has not started.
    fn start_recording(&mut self) {
        if self.config.record != RecordFrom::Never && !self.recording {
            self.recording = true;
            self.out.push_back(Output::Recording(Recording::Start));
            self.sync_recording();
        }
    }

    /// Pauses or resumes the running recording as card data and the agent's pause say.
    fn sync_recording(&mut self) {
        if !self.recording {
            return;
        }
        let want = match (&self.agent_pause, self.card_data) {
            (Some((reason, _)), _) => Some(reason.clone()),
            (None, true) => Some("card data (IVR)".to_owned()),
            (None, false) => None,
        };
        match (&self.paused, want) {
            (None, Some(reason)) => {
                self.paused = Some(reason.clone());
                self.out
                    .push_back(Output::Recording(Recording::Pause(reason)));
            }
            (Some(_), None) => {
                self.paused = None;
                self.out.push_back(Output::Recording(Recording::Resume));
            }
            // Already paused: the recorder keeps the first reason for the stretch.
            _ => {}
        }
    }

    fn stop_listening(&mut self) {
        if self.listening {
            self.listening = false;
            self.out.push_back(Output::StopListening);
        }
    }

    /// The IVR's path, the intent and its lookups' results (variables under any flow's
    /// lookup `into`, but never card data keyed in a `pci` ask), for the agent who takes the
    /// call.
    fn caller_context(&self) -> Vec<(String, String)> {
        let Some(s) = &self.session else {
            return Vec::new();
        };
        let mut out = vec![("path".to_owned(), s.path().join(">"))];
        let vars = s.vars();
        if let Some(i) = vars.get("intent") {
            out.push(("intent".to_owned(), i.clone()));
        }
        let nodes: Vec<&crest_ivr::model::Node> = self
            .library
            .iter()
            .flat_map(|l| l.flows())
            .flat_map(|f| f.def.nodes.iter())
            .map(|n| &n.value)
            .collect();
        let lookups: Vec<&str> = nodes
            .iter()
            .filter_map(|n| match n {
                crest_ivr::model::Node::Lookup(l) => Some(l.into.as_str()),
                _ => None,
            })
            .collect();
        // Card data never leaves the call, whatever variable it was keyed into.
        let card: Vec<&str> = nodes
            .iter()
            .filter_map(|n| match n {
                crest_ivr::model::Node::Ask(a) => a.digits.as_ref().filter(|d| d.pci),
                _ => None,
            })
            .map(|d| d.into.as_str())
            .collect();
        let under =
            |k: &str, i: &str| k == i || k.strip_prefix(i).is_some_and(|r| r.starts_with('.'));
        for (k, v) in vars {
            if lookups.iter().any(|i| under(k, i)) && !card.iter().any(|c| under(k, c)) {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }

    fn language(&self) -> String {
        self.session
            .as_ref()
            .and_then(|s| s.vars().get("language").cloned())
            .unwrap_or_else(|| self.flow_language.clone())
    }

    /// The caller leaves the IVR (`outcome` when the flow did not end it: `abandoned`).
    fn leave_flow(&mut self, now: Instant, outcome: Option<String>) {
        let language = self.language();
        self.stop_listening();
        let Some(s) = self.session.take() else {
            return;
        };
        let outcome = outcome
            .or_else(|| s.outcome().map(outcome_label))
            .unwrap_or_else(|| "abandoned".into());
        let (flow, version) = s.flow();
        if self.stage == Stage::Survey {
            // The survey keeps the journey's path and intent; its answer is the score.
            self.record.csat = s
                .vars()
                .get("csat")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n| (1..=5).contains(n));
        } else {
            self.record.path = s.path().to_vec();
            self.record.intent = s.vars().get("intent").cloned();
            self.ivr_outcome = Some(outcome.clone());
        }
        self.out.push_back(Output::IvrDone(IvrSummary {
            flow: flow.to_owned(),
            version: version.to_owned(),
            outcome,
            path: s.path().to_vec(),
            language,
            duration: self
                .ivr_at
                .map_or(Duration::ZERO, |at| now.saturating_duration_since(at)),
        }));
    }

    /// Joins `queue` (or asks to be called back at `callback`).
    fn join(
        &mut self,
        now: Instant,
        queue: String,
        tier: u8,
        language: Option<String>,
        callback: Option<String>,
    ) {
        if !self.config.acd {
            self.out
                .push_back(Output::HangUp("no ACD configured".into()));
            return;
        }
        self.in_acd = true;
        self.record.queue = Some(queue.clone());
        self.joined = Some((tier, language.clone()));
        let door = self.early;
        let is_callback = callback.is_some();
        self.out.push_back(Output::Acd(ToAcd::Enqueue {
            queue,
            tier,
            number: callback.unwrap_or_else(|| self.caller.clone()),
            language,
            door,
            callback: is_callback,
            context: self.context.clone(),
            agent: None,
        }));
        if !is_callback {
            self.stage = Stage::Admission;
            self.queued_at = Some(now);
            self.hold();
        }
    }

    /// Joins `queue` again after a transfer, for `agent` only when named; the announcement
    /// already playing goes on before the hold music.
    fn join_agent(
        &mut self,
        now: Instant,
        queue: String,
        tier: u8,
        language: Option<String>,
        agent: Option<String>,
    ) {
        self.in_acd = true;
        self.record.queue = Some(queue.clone());
        self.out.push_back(Output::Acd(ToAcd::Enqueue {
            queue,
            tier,
            number: self.caller.clone(),
            language,
            door: false,
            callback: false,
            context: self.context.clone(),
            agent,
        }));
        self.stage = Stage::Admission;
        self.queued_at = Some(now);
        self.holding = true;
    }

    fn hold(&mut self) {
        self.holding = true;
        self.play(Prompt::HoldMusic, false);
    }

    fn say(&mut self, text: String) {
        let voice = self.config.voice.clone();
        self.play(Prompt::Say { text, voice }, false);
    }

    fn play(&mut self, prompt: Prompt, barge_in: bool) {
        self.out.push_back(Output::Play { prompt, barge_in });
    }
}

fn stage_name(s: Stage) -> &'static str {
    match s {
        Stage::Answering => "answering",
        Stage::Ivr => "ivr",
        Stage::Admission => "admission",
        Stage::Queued => "queued",
        Stage::Transferring => "transferring",
        Stage::Bridged => "bridged",
        Stage::Survey => "survey",
        Stage::Leaving => "leaving",
        Stage::Refusing => "refusing",
        Stage::Dialling => "dialling",
        Stage::Ended => "ended",
    }
}

/// How a flow ended, as a label: `queue:refund`, `hangup`, `transfer`, `callback`.
fn outcome_label(o: &Outcome) -> String {
    match o {
        Outcome::Queued(q) => format!("queue:{q}"),
        Outcome::Transferred(_) => "transfer".into(),
        Outcome::Callback(_) => "callback".into(),
        Outcome::HungUp(_) => "hangup".into(),
    }
}

/// A customer tier as the IVR names it: a number, or vip/gold/silver.
pub fn tier_of(name: Option<&str>) -> u8 {
    match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "normal" | "standard") => 0,
        Some("silver") => 1,
        Some("gold") => 2,
        Some("vip" | "platinum") => 3,
        Some(n) => n.parse().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_by_name_or_number() {
        assert_eq!(
            [
                tier_of(None),
                tier_of(Some("VIP")),
                tier_of(Some("gold")),
                tier_of(Some("2")),
                tier_of(Some("x"))
            ],
            [0, 3, 2, 2, 0]
        );
    }
}
