//! The IVR's speech recognisers: a fixed pool of threads (at most one per core) that decode
//! the callers an `ask` is listening to. A call holds a recogniser only while it listens,
//! and at most `ivr.recognizers` calls listen at once: a call that finds the pool spent is
//! told at once and goes on with keys.
//!
//! ```text
//!  call task ── Listen(grammar) ──► Speech::listen ─► Listening (guard; dropped = Stop)
//!      │ caller audio frames ──► worker thread i (call % n): PocketSphinx per listening call
//!      ◄── Heard / ListenFailed ──────┘
//! ```
//!
//! A recogniser is freed when it hears an utterance, when the call stops listening (the guard
//! is dropped, also when the call's task ends however it ends), and, as a last resort, when the
//! worker finds the call's channel closed.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use crest_ids::CallId;
use crest_ivr::Grammar;
use crest_ivr::asr::Recognizer;
use crest_ivr::pocketsphinx::{self, OFF_TOPIC_MARGIN, PocketSphinx};
use tokio::sync::mpsc;
use tracing::{Span, debug, warn};

/// The recognisers' rate: callers' audio at other rates is resampled.
const ASR_RATE: u32 = 8000;

/// Frames queued per worker before new ones are dropped (and counted): 20 ms frames, so
/// about 160 s of audio: a decoder starting (tens of ms) must not drop its neighbours' frames.
const QUEUE: usize = 8192;

/// How often a worker looks for recognisers of calls that are gone.
const SWEEP: Duration = Duration::from_secs(1);

/// What a listening call hears back.
#[derive(Debug)]
pub(crate) enum SpeechEvent {
    /// An utterance (listen `generation`).
    Heard {
        generation: u64,
        heard: crest_ivr::asr::Heard,
    },
    /// The recogniser could not go on (listen `generation`).
    Failed { generation: u64 },
}

/// Where a listening call's [`SpeechEvent`]s go.
pub(crate) trait Reply: Send {
    /// Sends; `false` when the call is gone.
    fn send(&self, e: SpeechEvent) -> bool;
    /// The call is gone.
    fn is_closed(&self) -> bool;
}

impl<T: From<SpeechEvent> + Send> Reply for mpsc::UnboundedSender<T> {
    fn send(&self, e: SpeechEvent) -> bool {
        Self::send(self, e.into()).is_ok()
    }

    fn is_closed(&self) -> bool {
        Self::is_closed(self)
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct SpeechMetrics {
    pub(crate) active: AtomicU64,
    pub(crate) started: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) heard: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
}

enum Job {
    Start {
        call: CallId,
        generation: u64,
        grammar: Grammar,
        reply: Box<dyn Reply>,
        span: Span,
    },
    Audio {
        call: CallId,
        pcm: Arc<[i16]>,
        rate: u32,
    },
    Stop {
        call: CallId,
    },
}

/// The pool (see the module docs).
#[derive(Debug)]
pub(crate) struct Speech {
    workers: Vec<std_mpsc::SyncSender<Job>>,
    limit: u64,
    next_generation: AtomicU64,
    pub(crate) metrics: Arc<SpeechMetrics>,
}

impl Speech {
    /// `threads` workers decoding with `model`, at most `limit` listening calls.
    pub(crate) fn start(
        model: &pocketsphinx::Model,
        threads: usize,
        limit: usize,
    ) -> io::Result<Self> {
        let metrics = Arc::new(SpeechMetrics::default());
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let (tx, rx) = std_mpsc::sync_channel(QUEUE);
            let (model, metrics) = (model.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("crest-asr-{i}"))
                .spawn(move || work(&model, &rx, &metrics))?;
            workers.push(tx);
        }
        Ok(Self {
            workers,
            limit: limit as u64,
            next_generation: AtomicU64::new(1),
            metrics,
        })
    }

    /// Callers that may be listened to at once.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Starts listening to call `call` with `grammar`; what is heard goes to `reply`. `None`
    /// when the pool is spent.
    pub(crate) fn listen(
        &self,
        call: CallId,
        grammar: Grammar,
        reply: impl Reply + 'static,
        span: Span,
    ) -> Option<Listening> {
        let m = &self.metrics;
        if m.active.fetch_add(1, Ordering::AcqRel) >= self.limit {
            m.active.fetch_sub(1, Ordering::AcqRel);
            m.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let tx = self.workers[(call.0 % self.workers.len() as u64) as usize].clone();
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let start = Job::Start {
            call,
            generation,
            grammar,
            reply: Box::new(reply),
            span,
        };
        if tx.try_send(start).is_err() {
            m.active.fetch_sub(1, Ordering::AcqRel);
            m.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        m.started.fetch_add(1, Ordering::Relaxed);
        Some(Listening {
            call,
            generation,
            tx,
            metrics: self.metrics.clone(),
        })
    }
}

/// A call's hold on a recogniser: audio goes through it; dropping it frees the recogniser.
#[derive(Debug)]
pub(crate) struct Listening {
    call: CallId,
    generation: u64,
    tx: std_mpsc::SyncSender<Job>,
    metrics: Arc<SpeechMetrics>,
}

impl Listening {
    /// Which listen this is (answers of an earlier one are stale).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// A frame of the caller's decoded audio.
    pub(crate) fn audio(&self, pcm: Arc<[i16]>, rate: u32) {
        let job = Job::Audio {
            call: self.call,
            pcm,
            rate,
        };
        if self.tx.try_send(job).is_err() {
            self.metrics.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        // A full queue: the worker's sweep frees it once the call's channel closes.
        let _ = self.tx.try_send(Job::Stop { call: self.call });
    }
}

struct Listener {
    recognizer: PocketSphinx,
    generation: u64,
    reply: Box<dyn Reply>,
    span: Span,
    /// Listening for digits: what is heard may be card data, never logged.
    digits: bool,
}

fn work(model: &pocketsphinx::Model, rx: &std_mpsc::Receiver<Job>, m: &SpeechMetrics) {
    let mut calls: HashMap<CallId, Listener> = HashMap::new();
    let free = |calls: &mut HashMap<CallId, Listener>, call: CallId| {
        if calls.remove(&call).is_some() {
            m.active.fetch_sub(1, Ordering::AcqRel);
        }
    };
    let mut swept = Instant::now();
    loop {
        if swept.elapsed() >= SWEEP {
            swept = Instant::now();
            // Calls that ended without a word and whose Stop was lost (their task is gone).
            let gone: Vec<CallId> = calls
                .iter()
                .filter(|(_, l)| l.reply.is_closed())
                .map(|(k, _)| *k)
                .collect();
            for call in gone {
                free(&mut calls, call);
            }
        }
        let job = match rx.recv_timeout(SWEEP) {
            Ok(j) => j,
            Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        };
        match job {
            Job::Start {
                call,
                generation,
                grammar,
                reply,
                span,
            } => {
                free(&mut calls, call);
                let digits = grammar == Grammar::Digits;
                let mut recognizer = PocketSphinx::new(model.clone(), Some(OFF_TOPIC_MARGIN));
                match recognizer.start(&grammar) {
                    Ok(()) => {
                        calls.insert(
                            call,
                            Listener {
                                recognizer,
                                generation,
                                reply,
                                span,
                                digits,
                            },
                        );
                    }
                    Err(e) => {
                        m.active.fetch_sub(1, Ordering::AcqRel);
                        let _g = span.enter();
                        warn!(error = %e, "the recogniser did not start");
                        reply.send(SpeechEvent::Failed { generation });
                    }
                }
            }
            Job::Audio { call, pcm, rate } => {
                let Some(l) = calls.get_mut(&call) else {
                    continue;
                };
                let fed = if rate == ASR_RATE {
                    l.recognizer.feed(&pcm, ASR_RATE)
                } else {
                    let pcm = crest_ivr::tts::resample(&pcm, rate, ASR_RATE);
                    l.recognizer.feed(&pcm, ASR_RATE)
                };
                let event = match fed {
                    Ok(None) => continue,
                    Ok(Some(heard)) => {
                        m.heard.fetch_add(1, Ordering::Relaxed);
                        let _g = l.span.enter();
                        if l.digits {
                            debug!(chars = heard.text.len(), "heard digits");
                        } else {
                            debug!(text = heard.text, "heard");
                        }
                        SpeechEvent::Heard {
                            generation: l.generation,
                            heard,
                        }
                    }
                    Err(e) => {
                        let _g = l.span.enter();
                        warn!(error = %e, "the recogniser failed");
                        SpeechEvent::Failed {
                            generation: l.generation,
                        }
                    }
                };
                l.reply.send(event);
                free(&mut calls, call);
            }
            Job::Stop { call } => free(&mut calls, call),
        }
    }
}
