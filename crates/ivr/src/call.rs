//! One caller in the IVR, at the level of a call's media: the flow's [`Session`] joined to a
//! recogniser and a synthesiser. The host (the server's call media task) passes in the caller's
//! decoded audio, keys and the prompt's end; it gets back PCM to play, lookups to make and how
//! the caller leaves the IVR.
//!
//! ```text
//!  caller audio (listener frames) ─► Recognizer (while an ask listens) ─► Speech ─┐
//!  keys (RFC 4733 / in-band / INFO), PromptDone, BargeIn, lookup answers ─────────┼─► Session
//!  poll_action() ◄── PlayPcm (Tts at the call's rate) · StopPrompt · Lookup · Leave ◄┘
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::asr::{AsrError, Recognizer};
use crate::engine::{Command, Input, Outcome, Session};
use crate::model::Method;
use crate::tts::{Tts, TtsError};

/// What the host does for the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Play this PCM to the caller (the prompt's text, for the log).
    Play {
        /// Mono PCM at the call's rate.
        pcm: Arc<[i16]>,
        /// Sample rate.
        rate: u32,
        /// A key or speech may stop it.
        barge_in: bool,
        /// What it says.
        text: String,
    },
    /// Stop the prompt that plays.
    StopPrompt,
    /// Make an HTTP request and answer with [`IvrCall::handle_lookup`].
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
    /// The caller leaves the IVR: to a queue, a SIP URI, a callback, or the call ends.
    Leave(Command),
}

/// What went wrong in a call's IVR (the call goes on: a prompt that cannot be made is
/// skipped, recognition that fails counts as nothing heard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The synthesiser failed.
    Tts(TtsError),
    /// The recogniser failed.
    Asr(AsrError),
    /// A prompt file could not be read.
    Prompt(String),
}

/// A caller in the IVR.
#[derive(Debug)]
pub struct IvrCall<R> {
    session: Session,
    recognizer: R,
    tts: Arc<dyn Tts>,
    rate: u32,
    listening: bool,
    actions: VecDeque<Action>,
    errors: Vec<CallError>,
}

impl<R: Recognizer> IvrCall<R> {
    /// A caller whose audio runs at `rate` (8000 or 16000).
    pub fn new(session: Session, recognizer: R, tts: Arc<dyn Tts>, rate: u32) -> Self {
        Self {
            session,
            recognizer,
            tts,
            rate,
            listening: false,
            actions: VecDeque::new(),
            errors: Vec::new(),
        }
    }

    /// The flow's session (path, variables, outcome).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// What went wrong so far (for the log).
    pub fn errors(&self) -> &[CallError] {
        &self.errors
    }

    /// How the caller left the IVR, once they have.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.session.outcome()
    }

    /// The call was answered; `unix_secs` is the wall clock.
    pub fn start(&mut self, now: Instant, unix_secs: i64) {
        self.session.handle(now, Input::Start { unix_secs });
        self.drain(now);
    }

    /// A frame of the caller's decoded audio.
    pub fn handle_audio(&mut self, now: Instant, pcm: &[i16]) {
        if !self.listening {
            return;
        }
        match self.recognizer.feed(pcm, self.rate) {
            Ok(None) => {}
            Ok(Some(h)) => {
                self.listening = false;
                self.session.handle(
                    now,
                    Input::Speech {
                        text: &h.text,
                        confidence: h.confidence,
                    },
                );
                self.drain(now);
            }
            Err(e) => {
                self.listening = false;
                self.errors.push(CallError::Asr(e));
            }
        }
    }

    /// A key from the caller.
    pub fn handle_key(&mut self, now: Instant, key: char) {
        self.session.handle(now, Input::Key(key));
        self.drain(now);
    }

    /// The prompt played to its end.
    pub fn handle_prompt_done(&mut self, now: Instant) {
        self.session.handle(now, Input::PromptDone);
        self.drain(now);
    }

    /// The caller interrupted the prompt.
    pub fn handle_barge_in(&mut self, now: Instant) {
        self.session.handle(now, Input::BargeIn);
        self.drain(now);
    }

    /// A lookup's answer: `Some((status, body))`, or `None` when it failed.
    pub fn handle_lookup(&mut self, now: Instant, answer: Option<(u16, &str)>) {
        let input = match answer {
            Some((status, body)) => Input::LookupDone { status, body },
            None => Input::LookupFailed,
        };
        self.session.handle(now, input);
        self.drain(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.session.poll_timeout()
    }

    /// Runs the flow's timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.drain(now);
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Turns the session's commands into actions.
    fn drain(&mut self, now: Instant) {
        while let Some(c) = self.session.poll_command() {
            match c {
                Command::Play {
                    text,
                    file,
                    voice,
                    barge_in,
                } => {
                    let prompt = match (&text, &file) {
                        (Some(t), _) => self
                            .tts
                            .render(t, &voice, self.rate)
                            .map_err(CallError::Tts),
                        (None, Some(f)) => std::fs::read(f)
                            .map_err(|e| e.to_string())
                            .and_then(|b| crest_media::wav::read_pcm(&b).map_err(|e| e.to_string()))
                            .map(|(r, pcm)| crate::tts::resample(&pcm, r, self.rate).into())
                            .map_err(|e| CallError::Prompt(format!("{}: {e}", f.display()))),
                        (None, None) => Err(CallError::Prompt("empty prompt".into())),
                    };
                    match prompt {
                        Ok(pcm) => self.actions.push_back(Action::Play {
                            pcm,
                            rate: self.rate,
                            barge_in,
                            text: text.unwrap_or_default(),
                        }),
                        Err(e) => {
                            // Without its prompt the flow still goes on.
                            self.errors.push(e);
                            self.session.handle(now, Input::PromptDone);
                        }
                    }
                }
                Command::StopPrompt => self.actions.push_back(Action::StopPrompt),
                Command::Listen { grammar, .. } => match self.recognizer.start(&grammar) {
                    Ok(()) => self.listening = true,
                    Err(e) => {
                        self.listening = false;
                        self.errors.push(CallError::Asr(e));
                    }
                },
                Command::StopListening => self.listening = false,
                Command::Lookup {
                    method,
                    url,
                    body,
                    timeout,
                } => self.actions.push_back(Action::Lookup {
                    method,
                    url,
                    body,
                    timeout,
                }),
                leave @ (Command::Enqueue { .. }
                | Command::Transfer { .. }
                | Command::Callback { .. }
                | Command::Hangup { .. }) => {
                    self.listening = false;
                    self.actions.push_back(Action::Leave(leave));
                }
            }
        }
    }
}
