//! A caller's journey in virtual time: a [`Call`] and a ledger of what the host holds for it
//! (the recogniser, the IVR session, the ACD's entry, the prompt that plays), kept from the
//! call's outputs, so that every test can check that an ended call leaves nothing behind.

#![allow(dead_code, unreachable_pub)] // each test file uses a part of the harness

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_call::{
    Call, CallId, Config, FromAcd, Input, Output, Prompt, Record, Recording, Start, ToAcd,
};
use crest_ivr::{Context, Library};

/// The flow the journeys run: a greeting, a menu by speech or keys, a lookup, a queue, a
/// transfer and a callback.
pub const FLOW: &str = r#"
flow: journey
version: "7"
language: en-US
voice: en-us
start: welcome
backends:
  orders: {url: "http://127.0.0.1:9", timeout_ms: 2000}
nodes:
  - say: {name: welcome, text: "Welcome.", next: menu}
  - ask:
      name: menu
      prompt: "Say where is my order, refund, transfer me or call me back."
      intents:
        order: {examples: ["where is my order"], dtmf: "1", next: lookup}
        refund: {examples: ["i want a refund"], dtmf: "2", next: refund_queue}
        transfer: {examples: ["transfer me"], dtmf: "3", next: out}
        callback: {examples: ["call me back"], dtmf: "4", next: cb}
      timeout_secs: 5
      no_input: {prompt: "Sorry, I did not hear you.", retries: 1, then: refund_queue}
      no_match: {prompt: "Sorry, I did not understand.", retries: 1, then: refund_queue}
  - lookup: {name: lookup, backend: orders, path: "/orders/1", into: order, next: status, on_error: status}
  - say: {name: status, text: "Your order is {order.status}.", next: bye}
  - hangup: {name: bye, reason: self-service}
  - queue: {name: refund_queue, queue: refund, tier: gold}
  - transfer: {name: out, uri: "sip:desk@192.0.2.1"}
  - callback: {name: cb, queue: refund, prompt: "We will call you back. Goodbye."}
"#;

/// The flow, checked.
pub fn ivr_start() -> Start {
    flow_start("journey.yaml", FLOW)
}

/// A caller of flow `yaml` (checked as file `name`).
pub fn flow_start(name: &str, yaml: &str) -> Start {
    let flow =
        crest_ivr::check(Path::new(name), yaml, &Context::default()).expect("the test flow checks");
    let flow = Arc::new(flow);
    Start::Ivr {
        library: Arc::new(Library::new([flow.clone()])),
        flow,
        vars: [("caller".to_owned(), "+8613800000000".to_owned())].into(),
    }
}

/// A call and what its host holds for it.
pub struct Journey {
    pub call: Call,
    pub now: Instant,
    pub t0: Instant,
    /// Every output so far, in order.
    pub log: Vec<Output>,
    // The host's tables, kept from the outputs.
    pub listening: bool,
    pub ivr_sessions: i32,
    pub in_acd: bool,
    pub playing: Option<Prompt>,
    pub records: Vec<Record>,
    pub answered: bool,
    /// The recorder: `None` while no recording runs, else whether it is paused.
    pub recording: Option<bool>,
    /// Recordings started.
    pub recordings: u32,
}

impl Journey {
    pub fn new(start: Start) -> Self {
        Self::with_config(start, Config::default())
    }

    pub fn with_config(start: Start, config: Config) -> Self {
        let t0 = Instant::now();
        Self {
            call: Call::new(CallId(1), "4000", "+8613800000000", start, config),
            now: t0,
            t0,
            log: Vec::new(),
            listening: false,
            ivr_sessions: 0,
            in_acd: false,
            playing: None,
            records: Vec::new(),
            answered: false,
            recording: None,
            recordings: 0,
        }
    }

    /// A caller of the test flow whose leg is up.
    pub fn ivr() -> Self {
        let mut j = Self::new(ivr_start());
        j.input(Input::CallerUp { unix_secs: 0 });
        j
    }

    /// Feeds one input and collects what it caused.
    pub fn input(&mut self, input: Input<'_>) -> Vec<Output> {
        // A recogniser that answered (or failed) has gone back to its pool.
        if matches!(input, Input::Heard { .. } | Input::ListenFailed) {
            self.listening = false;
        }
        self.call.handle_input(self.now, input);
        self.collect()
    }

    /// Moves virtual time on by `d`, running the call's timers on the way.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        let until = self.now + d;
        let mut outs = Vec::new();
        while let Some(t) = self.call.poll_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.call.handle_timeout(self.now);
            outs.extend(self.collect());
        }
        self.now = until;
        outs
    }

    /// The prompt that plays ends.
    pub fn prompt_done(&mut self) -> Vec<Output> {
        self.playing = None;
        self.input(Input::PromptDone)
    }

    fn collect(&mut self) -> Vec<Output> {
        let mut outs = Vec::new();
        while let Some(o) = self.call.poll_output() {
            assert!(
                self.records.is_empty(),
                "output after the call's record: {o:?}"
            );
            match &o {
                Output::Listen(_) => {
                    assert!(!self.listening, "a second recogniser for one call");
                    self.listening = true;
                }
                Output::StopListening => {
                    assert!(self.listening, "StopListening without Listen");
                    self.listening = false;
                }
                Output::IvrStarted { .. } => self.ivr_sessions += 1,
                Output::IvrDone(_) => {
                    self.ivr_sessions -= 1;
                    assert!(self.ivr_sessions >= 0, "IvrDone without IvrStarted");
                }
                Output::Acd(ToAcd::Enqueue { .. }) => self.in_acd = true,
                Output::Acd(ToAcd::Ended) => {
                    assert!(self.in_acd, "the ACD told of an end it never knew");
                    self.in_acd = false;
                }
                Output::Play { prompt, .. } => self.playing = Some(prompt.clone()),
                Output::StopPrompt => self.playing = None,
                Output::Accept => self.answered = true,
                Output::Record(r) => self.records.push(r.clone()),
                Output::Recording(Recording::Start) => {
                    assert_eq!(self.recording, None, "a second recording for one call");
                    self.recording = Some(false);
                    self.recordings += 1;
                }
                Output::Recording(Recording::Pause(_)) => {
                    assert_eq!(self.recording, Some(false), "pause of no running recording");
                    self.recording = Some(true);
                }
                Output::Recording(Recording::Resume) => {
                    assert_eq!(self.recording, Some(true), "resume of no pause");
                    self.recording = Some(false);
                }
                Output::Recording(Recording::Stop) => {
                    assert!(self.recording.is_some(), "stop of no recording");
                    self.recording = None;
                }
                _ => {}
            }
            outs.push(o.clone());
            self.log.push(o);
        }
        outs
    }

    /// The SIP core ends the call; then nothing of it may remain.
    pub fn end(&mut self) -> Record {
        self.input(Input::Ended);
        self.assert_released();
        self.records[0].clone()
    }

    /// Nothing of the call remains in the host's tables, and it never speaks again.
    pub fn assert_released(&mut self) {
        assert!(!self.listening, "a recogniser still held");
        assert_eq!(self.ivr_sessions, 0, "an IVR session still counted");
        assert!(!self.in_acd, "the ACD still holds the call");
        assert_eq!(self.recording, None, "a recording still open");
        assert_eq!(self.records.len(), 1, "one record per call");
        assert_eq!(self.call.poll_timeout(), None, "a timer still armed");
        // Whatever comes after the end is ignored.
        for input in [
            Input::PromptDone,
            Input::Key('1'),
            Input::Ended,
            Input::Acd(FromAcd::Admitted),
            Input::Heard {
                text: "refund",
                confidence: 1.0,
            },
        ] {
            self.call.handle_input(self.now, input);
        }
        assert_eq!(self.call.poll_output(), None);
    }

    /// Whether the outputs include one matching `f`.
    pub fn saw(outs: &[Output], f: impl Fn(&Output) -> bool) -> bool {
        outs.iter().any(f)
    }

    /// The text of the prompt that plays, if it is spoken.
    pub fn saying(&self) -> Option<&str> {
        match &self.playing {
            Some(Prompt::Say { text, .. }) => Some(text),
            _ => None,
        }
    }
}
