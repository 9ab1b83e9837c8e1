//! Calls Crest answers itself (`ivr:` and `queue:` routes): what their controllers
//! (crest-call, driven by each call's media task) share — the flows, the recogniser pool, the
//! synthesiser and its cache, lookups — and the ACD service that queues callers and rings
//! agents' registered phones.
//!
//! ```text
//!  call task: Call ── Listen ──► recogniser pool (crate::speech) ── Heard ──┐
//!     ▲  │  └── Play(Say) ──► TTS cache, or rendered on the blocking pool ──┤
//!     │  │  └── Lookup ──► HTTP on the main runtime ── answer ──────────────┤
//!     │  └── Enqueue / Key / Leg / Ended ──► ACD task: Acd ── Connect ──► SIP core
//!     └──── AppEvent: Admitted, Announce, Connected, Goodbye, Refused ◄─────┘
//! ```
//!
//! A recogniser's start and a prompt's first rendering take tens of milliseconds: they run
//! off the media threads, which only look prompts up in the cache.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crest_acd::{AgentConfig, AgentId, CallId, Model, ModelError, QueueId, QueueStats, SurgeLevel};
use crest_call::{
    AgentChange, AgentView, Center, CenterConfig, CenterInput, CenterOutput, FromAcd, Start, ToAcd,
    UnknownAgent,
};
use crest_ivr::model::Method;
use crest_ivr::tts::{EspeakNg, Tts as _};
use crest_media::bridge::Prompt;
use crest_sip_proxy::ConnectTarget;
use tokio::sync::{mpsc, oneshot};
use tracing::{Span, info, warn};

use crate::config::AcdSection;
use crate::ivr::Flows;
use crate::speech::{Speech, SpeechEvent};

/// What the other tasks ask of the SIP core.
#[derive(Debug)]
pub(crate) enum CoreRequest {
    /// End the call (media timeout, the IVR hung up).
    HangUp(CallId, String),
    /// Connect a call Crest answered to an agent's phone or a SIP URI.
    Connect {
        key: CallId,
        target: ConnectTarget,
        ring: Duration,
    },
    /// Stop ringing (or hang up) the call's leg B; the caller stays.
    Disconnect(CallId),
    /// Answer (200) a queue caller taken with early media: admitted.
    Accept(CallId),
    /// Refuse a queue caller taken with early media: 503 with Retry-After.
    Refuse { key: CallId, retry_after: u64 },
    /// Whether `password` is SIP user `user`'s (the agent desktop's login).
    CheckPassword {
        user: String,
        password: String,
        reply: oneshot::Sender<bool>,
    },
    /// Call a customer back (the ACD reserved `agent` for the callback `call` of `queue`).
    Originate {
        call: CallId,
        agent: AgentId,
        queue: String,
        uri: String,
        ring: Duration,
    },
}

/// What a call's task hears: the ACD's decisions, the recogniser, lookups and prompts
/// rendered off the task. Everything that sends these holds only a sender; when the call's
/// task ends, its receiver goes and their sends fail (nothing waits on a call that is gone).
#[derive(Debug)]
pub(crate) enum AppEvent {
    /// The ACD's decision for the caller.
    Acd(FromAcd),
    /// What the recogniser heard, or that it could not go on.
    Speech(SpeechEvent),
    /// A lookup's answer: `Some((status, body))`, or `None` when it failed.
    Lookup(Option<(u16, String)>),
    /// A prompt rendered off the task (`serial`: which play it is for).
    Rendered {
        serial: u64,
        prompt: Result<Prompt, String>,
    },
    /// The agent on the call transfers the caller (from their desktop).
    Transfer(crest_call::Transfer),
}

impl From<SpeechEvent> for AppEvent {
    fn from(e: SpeechEvent) -> Self {
        Self::Speech(e)
    }
}

/// The IVR's counters for `/metrics`: sessions running now and in all, and what the
/// recognisers do.
#[derive(Debug, Default)]
pub(crate) struct IvrMetrics {
    pub(crate) sessions_active: AtomicU64,
    pub(crate) sessions_total: AtomicU64,
    pub(crate) lookups_active: AtomicU64,
    pub(crate) renders_active: AtomicU64,
    /// Queue → survey answers after agents' calls: (responses, sum of scores).
    pub(crate) csat: Mutex<BTreeMap<String, (u64, u64)>>,
}

impl IvrMetrics {
    /// A caller of `queue` rated their call `score` (1 to 5).
    pub(crate) fn csat(&self, queue: &str, score: u8) {
        if let Ok(mut c) = self.csat.lock() {
            let e = c.entry(queue.to_owned()).or_default();
            e.0 += 1;
            e.1 += u64::from(score);
        }
    }

    /// Queue → (responses, sum of scores).
    pub(crate) fn csat_by_queue(&self) -> BTreeMap<String, (u64, u64)> {
        self.csat.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// What every call Crest answers shares.
#[derive(Debug)]
pub(crate) struct AppRuntime {
    pub(crate) flows: Option<Arc<Flows>>,
    /// The recognisers (with the flows).
    pub(crate) speech: Option<Speech>,
    pub(crate) tts: Arc<EspeakNg>,
    pub(crate) acd: Option<mpsc::UnboundedSender<AcdMsg>>,
    /// The main runtime (lookups run there).
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) http: reqwest::Client,
    pub(crate) hold_music: Prompt,
    /// The ACD's counters, and the surge level the IVR's flows branch on.
    pub(crate) metrics: Arc<AcdMetrics>,
    pub(crate) ivr: Arc<IvrMetrics>,
    /// Where prompts are rendered (espeak-ng runs there, never on a media thread).
    pub(crate) renders: Renderers,
}

/// A fixed set of threads (`crest-tts-N`) rendering prompts the cache does not hold yet.
#[derive(Debug)]
pub(crate) struct Renderers {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl Renderers {
    /// `threads` renderers.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("crest-tts-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while a job is taken, not while it runs.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    fn run(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.send(Box::new(job));
    }
}

/// The IVR's rate: prompts are rendered at 8 kHz (telephone band).
pub(crate) const IVR_RATE: u32 = 8000;

impl AppRuntime {
    /// How call `number` from `caller` begins on `app`; `None` when its flow is not loaded.
    pub(crate) fn start(
        &self,
        app: &crest_sip_proxy::App,
        caller: &str,
        number: &str,
    ) -> Option<Start> {
        use crest_sip_proxy::App;
        match app {
            App::Ivr(flow) => {
                let flows = self.flows.as_ref()?;
                self.speech.as_ref()?;
                let library = flows.library();
                let Some(stable) = library.get(flow).cloned() else {
                    warn!(flow, "no such IVR flow loaded");
                    return None;
                };
                // A staged canary version takes its share of callers (by their number).
                let f = flows.canary_for(flow, caller).unwrap_or(stable);
                let vars = [
                    ("caller".to_owned(), caller.to_owned()),
                    ("number".to_owned(), number.to_owned()),
                    ("surge".to_owned(), format!("{:.1}", self.metrics.ratio())),
                ]
                .into();
                Some(Start::Ivr {
                    library,
                    flow: f,
                    vars,
                })
            }
            App::Queue(q) => Some(Start::Queue(q.clone())),
            App::Callback(q) => Some(Start::Callback(q.clone())),
        }
    }

    /// The controller's settings.
    pub(crate) fn call_config(&self) -> crest_call::Config {
        crest_call::Config {
            acd: self.acd.is_some(),
            ..crest_call::Config::default()
        }
    }

    /// `prompt` as PCM when it is at hand (the hold music, a prompt rendered before);
    /// otherwise it is rendered off the caller's task and comes back as
    /// [`AppEvent::Rendered`] with `serial`.
    pub(crate) fn prompt(
        &self,
        prompt: crest_call::Prompt,
        serial: u64,
        back: &mpsc::UnboundedSender<AppEvent>,
    ) -> Option<Prompt> {
        use crest_call::Prompt as P;
        let pcm = |pcm| Prompt {
            rate: IVR_RATE,
            pcm,
        };
        match &prompt {
            P::HoldMusic => return Some(self.hold_music.clone()),
            P::Say { text, voice } => {
                if let Some(p) = self.tts.cached(text, voice, IVR_RATE) {
                    return Some(pcm(p));
                }
            }
            P::File(_) => {}
        }
        let (tts, back, metrics) = (self.tts.clone(), back.clone(), self.ivr.clone());
        metrics.renders_active.fetch_add(1, Ordering::Relaxed);
        self.renders.run(move || {
            if back.is_closed() {
                // The caller hung up while the prompt waited its turn.
                metrics.renders_active.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            let made = match prompt {
                P::Say { text, voice } => tts
                    .render(&text, &voice, IVR_RATE)
                    .map(pcm)
                    .map_err(|e| e.to_string()),
                P::File(f) => std::fs::read(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|b| crest_media::wav::read_pcm(&b).map_err(|e| e.to_string()))
                    .map(|(r, p)| pcm(crest_ivr::tts::resample(&p, r, IVR_RATE).into()))
                    .map_err(|e| format!("{}: {e}", f.display())),
                P::HoldMusic => Err("the hold music is at hand".into()),
            };
            metrics.renders_active.fetch_sub(1, Ordering::Relaxed);
            let _ = back.send(AppEvent::Rendered {
                serial,
                prompt: made,
            });
        });
        None
    }

    /// An HTTP lookup on the main runtime; the answer goes back to the call's task.
    pub(crate) fn lookup(
        &self,
        method: Method,
        url: String,
        body: Option<String>,
        timeout: Duration,
        back: mpsc::UnboundedSender<AppEvent>,
    ) {
        let http = self.http.clone();
        let span = Span::current();
        let metrics = self.ivr.clone();
        metrics.lookups_active.fetch_add(1, Ordering::Relaxed);
        self.runtime.spawn(async move {
            let req = match method {
                Method::Get => http.get(&url),
                Method::Post => http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.unwrap_or_default()),
            };
            let ask = async {
                match req.timeout(timeout).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.text().await.ok().map(|b| (status, b))
                    }
                    Err(e) => {
                        let _g = span.enter();
                        warn!(url, error = %e, "IVR lookup failed");
                        None
                    }
                }
            };
            // A caller who hangs up takes their lookup with them (its connection closes).
            let answer = tokio::select! {
                a = ask => Some(a),
                () = back.closed() => None,
            };
            metrics.lookups_active.fetch_sub(1, Ordering::Relaxed);
            if let Some(answer) = answer {
                let _ = back.send(AppEvent::Lookup(answer));
            }
        });
    }
}

impl crate::metrics::Source for AppRuntime {
    /// The IVR, its recognisers, and the ACD.
    fn expose(&self, out: &mut crate::metrics::Exposition<'_, '_>) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let i = &self.ivr;
        out.gauge(
            "crest_ivr_sessions_active",
            "Callers in an IVR flow now.",
            g(&i.sessions_active),
        );
        out.counter(
            "crest_ivr_sessions_total",
            "IVR sessions started.",
            g(&i.sessions_total),
        );
        out.gauge(
            "crest_ivr_lookups_active",
            "IVR lookups waiting for an answer.",
            g(&i.lookups_active),
        );
        out.gauge(
            "crest_ivr_renders_active",
            "Prompts being rendered.",
            g(&i.renders_active),
        );
        out.gauge(
            "crest_ivr_prompts_cached",
            "Prompts rendered and kept, shared by every call.",
            self.tts.cached_count(),
        );
        let csat = i.csat_by_queue();
        out.counters(
            "crest_csat_responses_total",
            "Callers who rated their call with an agent in a survey, by queue.",
            csat.iter().map(|(q, (n, _))| (vec![("queue", &q[..])], *n)),
        );
        out.counters(
            "crest_csat_score_total",
            "Sum of the survey scores (1 to 5), by queue: over crest_csat_responses_total, the average.",
            csat.iter().map(|(q, (_, sum))| (vec![("queue", &q[..])], *sum)),
        );
        if let Some(s) = &self.speech {
            let m = &s.metrics;
            out.gauge(
                "crest_ivr_recognizers_active",
                "Callers a recogniser listens to now.",
                g(&m.active),
            );
            out.gauge(
                "crest_ivr_recognizers_limit",
                "Callers that may be listened to at once (ivr.recognizers).",
                s.limit(),
            );
            for (name, help, v) in [
                ("crest_ivr_listens_total", "Listens started.", &m.started),
                (
                    "crest_ivr_listens_refused_total",
                    "Listens refused: every recogniser was busy (the caller can still press keys).",
                    &m.refused,
                ),
                ("crest_ivr_utterances_total", "Utterances heard.", &m.heard),
                (
                    "crest_ivr_audio_frames_dropped_total",
                    "Caller audio frames dropped because a recogniser fell behind.",
                    &m.frames_dropped,
                ),
            ] {
                out.counter(name, help, g(v));
            }
        }
        self.metrics.expose(out);
    }
}

/// One seat pool's agents by what they do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PoolFigures {
    pub(crate) name: String,
    pub(crate) available: u64,
    /// Ringing, on a call or wrapping up.
    pub(crate) busy: u64,
    pub(crate) away: u64,
    pub(crate) offline: u64,
}

impl PoolFigures {
    /// Logged in and not away.
    pub(crate) fn staffed(&self) -> u64 {
        self.available + self.busy
    }

    /// Busy over staffed (0 when nobody is staffed).
    pub(crate) fn occupancy(&self) -> f64 {
        match self.staffed() {
            0 => 0.0,
            n => self.busy as f64 / n as f64,
        }
    }
}

/// The pools of agents counted by (pool, state), in pool order.
pub(crate) fn pool_figures(states: &BTreeMap<(String, &'static str), u64>) -> Vec<PoolFigures> {
    let mut out: Vec<PoolFigures> = Vec::new();
    for ((pool, state), n) in states {
        if out.last().is_none_or(|p| p.name != *pool) {
            out.push(PoolFigures {
                name: pool.clone(),
                ..PoolFigures::default()
            });
        }
        let p = out.last_mut().expect("pushed");
        match *state {
            "offline" => p.offline += n,
            "away" => p.away += n,
            "available" => p.available += n,
            _ => p.busy += n,
        }
    }
    out
}

/// What the ACD task hears.
#[derive(Debug)]
pub(crate) enum AcdMsg {
    /// A call reached an `ivr:` or `queue:` route (the surge detector counts it).
    Arrival,
    /// What call `key`'s controller tells the ACD; what the ACD tells the call goes to `task`.
    Call {
        key: CallId,
        msg: ToAcd,
        task: mpsc::UnboundedSender<AppEvent>,
    },
    /// The SIP core placed the callback `call` as call `key`.
    Dialled {
        key: CallId,
        call: CallId,
        agent: AgentId,
    },
    /// The SIP core could not place the callback `call`.
    DialFailed { call: CallId },
    /// The SIP core could not place it at all (480: the agent's phone is not registered).
    ConnectFailed { key: CallId, status: u16 },
    /// A user's phone registered (`true`) or removed its last contact.
    Registration { user: String, on: bool },
    /// The admin API asks for every agent's state.
    Agents(oneshot::Sender<Vec<AgentView>>),
    /// The admin API asks for the callers waiting for an agent.
    Waiting(oneshot::Sender<Vec<crest_call::WaitingView>>),
    /// The agent desktop asks what agent `name` sees: their state and the call they are
    /// offered.
    Desk {
        name: String,
        reply: oneshot::Sender<(Option<AgentView>, Option<crest_call::OfferView>)>,
    },
    /// A supervisor sets the surge level by hand (`None`: back to the measurement).
    SetSurge {
        level: Option<SurgeLevel>,
        reply: oneshot::Sender<()>,
    },
    /// A supervisor's change to an agent (the admin API).
    SetAgent {
        name: String,
        change: AgentChange,
        reply: oneshot::Sender<Result<(), UnknownAgent>>,
    },
    /// An admin's agent entry: checked only (`apply: false`, before it is stored) or put in
    /// force; the answer says whether the agent is new.
    PutAgent {
        spec: AgentConfig,
        apply: bool,
        reply: oneshot::Sender<Result<bool, ModelError>>,
    },
    /// An admin removes an agent.
    RemoveAgent {
        name: String,
        reply: oneshot::Sender<Result<(), UnknownAgent>>,
    },
    /// Agent `agent` transfers the caller they talk to (their desktop); the error says why
    /// not.
    Transfer {
        agent: String,
        to: crest_call::Transfer,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The queues and agents a caller may be transferred to.
    Directory(oneshot::Sender<(Vec<String>, Vec<String>)>),
}

/// An agent edit kept in the index database, as the ACD takes it at start.
#[derive(Debug, Clone)]
pub(crate) enum StoredEdit {
    Put(AgentConfig),
    Remove(String),
}

/// The ACD's counters for `/metrics`, shared with the admin endpoint (and the IVR, which
/// reads the surge ratio).
#[derive(Debug, Default)]
pub(crate) struct AcdMetrics {
    surge_level: AtomicU64,
    /// 1 while a supervisor has set the level by hand.
    surge_by_hand: AtomicU64,
    surge_ratio_milli: AtomicU64,
    surge_changes: AtomicU64,
    standby_activations: AtomicU64,
    /// (decision, reason) → callers.
    admissions: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Queue → callers waiting.
    waiting: Mutex<BTreeMap<String, usize>>,
    /// Queue → answered and abandoned callers and their waits.
    queue_stats: Mutex<BTreeMap<String, QueueStats>>,
    /// The same over the last 15 minutes.
    recent_stats: Mutex<BTreeMap<String, QueueStats>>,
    /// (pool, state) → agents.
    agent_states: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// The router's counters (offers, answers, misses, overflows, abandons, callbacks, wait
    /// estimate error).
    counters: Mutex<crest_acd::Counters>,
}

impl AcdMetrics {
    /// Callers waiting, by queue (as of the ACD task's last turn).
    pub(crate) fn waiting(&self) -> BTreeMap<String, usize> {
        self.waiting.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// (pool, state) → agents.
    pub(crate) fn agent_states(&self) -> BTreeMap<(String, &'static str), u64> {
        self.agent_states
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// Answered and abandoned callers and their waits, by queue.
    pub(crate) fn queue_stats(&self) -> BTreeMap<String, QueueStats> {
        self.queue_stats
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// Queue → its callers over the last 15 minutes (as of the last change).
    pub(crate) fn recent_stats(&self) -> BTreeMap<String, QueueStats> {
        self.recent_stats
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    /// The surge level: 0 normal … 3 circuit breaker.
    pub(crate) fn surge_level(&self) -> u64 {
        self.surge_level.load(Ordering::Relaxed)
    }

    /// Whether a supervisor set the level by hand.
    pub(crate) fn surge_by_hand(&self) -> bool {
        self.surge_by_hand.load(Ordering::Relaxed) == 1
    }

    /// The latest arrival rate over the baseline.
    pub(crate) fn ratio(&self) -> f64 {
        self.surge_ratio_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

impl crate::metrics::Source for AcdMetrics {
    fn expose(&self, out: &mut crate::metrics::Exposition<'_, '_>) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.gauge(
            "crest_acd_surge_level",
            "Surge level: 0 normal, 1 self-service first (3x), 2 standby agents (5x), 3 circuit breaker (8x).",
            g(&self.surge_level),
        );
        out.gauge(
            "crest_acd_surge_ratio",
            "Arrival rate over the sliding window divided by the baseline.",
            self.ratio(),
        );
        out.gauge(
            "crest_acd_surge_set_by_hand",
            "1 while a supervisor has set the surge level by hand.",
            g(&self.surge_by_hand),
        );
        out.counter(
            "crest_acd_surge_changes_total",
            "Surge level changes.",
            g(&self.surge_changes),
        );
        out.counter(
            "crest_acd_standby_activations_total",
            "Times the standby pools were called in.",
            g(&self.standby_activations),
        );
        if let Ok(a) = self.admissions.lock() {
            out.counters(
                "crest_acd_admissions_total",
                "Admission decisions before a caller joins a queue, by decision and reason.",
                a.iter().map(|((decision, reason), n)| {
                    (vec![("decision", *decision), ("reason", &reason[..])], *n)
                }),
            );
        }
        if let Ok(w) = self.waiting.lock() {
            out.gauges(
                "crest_acd_waiting",
                "Callers waiting, by queue.",
                w.iter().map(|(q, n)| (vec![("queue", &q[..])], *n)),
            );
        }
        let stats = self.queue_stats();
        let bounds = crest_acd::WAIT_BUCKETS.map(|b| b as f64);
        out.histograms(
            "crest_acd_wait_seconds",
            "How long answered callers waited for an agent, by queue (service level: the le=\"20\" bucket over the count; ASA: the sum over the count).",
            &bounds,
            stats.iter().map(|(q, s)| {
                (
                    vec![("queue", &q[..])],
                    s.wait_sum_secs,
                    s.waited_at_most.to_vec(),
                    s.answered,
                )
            }),
        );
        let states = self.agent_states();
        out.gauges(
            "crest_acd_agents",
            "Agents by pool and state (offline, available, ringing, on_call, wrap_up, away).",
            states
                .iter()
                .map(|((pool, state), n)| (vec![("pool", &pool[..]), ("state", *state)], *n)),
        );
        let pools = pool_figures(&states);
        out.gauges(
            "crest_acd_pool_occupancy",
            "Busy agents (ringing, on a call, wrapping up) over staffed ones, by pool.",
            pools
                .iter()
                .map(|p| (vec![("pool", &p.name[..])], p.occupancy())),
        );
        out.counters(
            "crest_acd_queue_abandoned_total",
            "Callers who hung up before an agent answered, by queue.",
            stats
                .iter()
                .map(|(q, s)| (vec![("queue", &q[..])], s.abandoned)),
        );
        let Ok(c) = self.counters.lock() else {
            return;
        };
        for (name, help, v) in [
            (
                "crest_acd_offers_total",
                "Calls offered to an agent.",
                c.offers,
            ),
            (
                "crest_acd_answered_total",
                "Offers an agent answered.",
                c.answered,
            ),
            (
                "crest_acd_missed_total",
                "Offers that rang out or failed.",
                c.missed,
            ),
            (
                "crest_acd_overflows_total",
                "Overflow steps to a neighbouring pool.",
                c.overflows,
            ),
            (
                "crest_acd_abandoned_total",
                "Callers who hung up while waiting or ringing.",
                c.abandoned,
            ),
            (
                "crest_acd_set_away_total",
                "Agents set away after missed calls.",
                c.set_away,
            ),
            (
                "crest_acd_callbacks_total",
                "Callbacks scheduled.",
                c.callbacks,
            ),
            (
                "crest_acd_callbacks_unanswered_total",
                "Callbacks the customer did not answer.",
                c.callbacks_unanswered,
            ),
            (
                "crest_acd_ewt_samples_total",
                "Answered calls that had a wait estimate.",
                c.ewt_samples,
            ),
        ] {
            out.counter(name, help, v);
        }
        out.counter(
            "crest_acd_ewt_abs_error_seconds_total",
            "Sum of |actual wait - estimate| over answered calls (divide by crest_acd_ewt_samples_total).",
            c.ewt_abs_error_secs,
        );
        out.gauge(
            "crest_acd_ewt_bias_seconds",
            "Sum of (actual wait - estimate) over answered calls: positive when estimates are too short.",
            c.ewt_bias_secs,
        );
    }
}

/// The ACD in a running crest: the tokio driver of crest-call's [`Center`], which makes every
/// decision; this task only moves its inputs and outputs between the calls' tasks, the SIP
/// core and the metrics.
pub(crate) struct AcdService {
    center: Center,
    /// How to reach the calls the center knows (dropped when it releases them).
    tasks: HashMap<CallId, mpsc::UnboundedSender<AppEvent>>,
    core: mpsc::UnboundedSender<CoreRequest>,
    metrics: Arc<AcdMetrics>,
}

impl AcdService {
    /// The service on `model` with the admin API's stored agent `edits` put in force over
    /// it (an edit that no longer fits `acd.yaml`, such as a pool since removed, is skipped
    /// with a warning); agents are offline until their phones register.
    pub(crate) fn new(
        model: Model,
        edits: &[StoredEdit],
        section: &AcdSection,
        core: mpsc::UnboundedSender<CoreRequest>,
        rt: &AppRuntime,
    ) -> Self {
        let config = CenterConfig {
            announce_every: Duration::from_secs(section.announce_secs.max(5)),
            surge: section.surge.clone(),
            admission: section.admission.clone(),
            callback_uri: section.callback_uri.clone(),
        };
        let now = Instant::now();
        let mut center = Center::new(now, model, config);
        for e in edits {
            let r = match e {
                StoredEdit::Put(spec) => center
                    .put_agent(now, spec)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                StoredEdit::Remove(name) => {
                    center.remove_agent(now, name).map_err(|e| e.to_string())
                }
            };
            if let Err(error) = r {
                warn!(?e, %error, "a stored agent edit no longer fits acd.yaml: skipped");
            }
        }
        Self {
            center,
            tasks: HashMap::new(),
            core,
            metrics: rt.metrics.clone(),
        }
    }

    /// Runs until every sender is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<AcdMsg>) {
        loop {
            let now = Instant::now();
            let next = self
                .center
                .poll_timeout()
                .unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => self.handle(Instant::now(), m),
                    None => return,
                },
                () = tokio::time::sleep_until(next.into()) => {
                    self.center.handle_timeout(Instant::now());
                }
            }
            self.carry_out();
            self.publish(Instant::now());
        }
    }

    fn handle(&mut self, now: Instant, m: AcdMsg) {
        use CenterInput as I;
        let c = &mut self.center;
        match m {
            AcdMsg::Arrival => c.handle_input(now, I::Arrival),
            AcdMsg::Call { key, msg, task } => {
                let call = key;
                let ended = msg == ToAcd::Ended;
                // How to reach the call, until the center releases it (or it ends).
                self.tasks.insert(call, task);
                c.handle_input(now, I::FromCall(call, msg));
                if ended {
                    self.tasks.remove(&call);
                }
            }
            AcdMsg::Dialled { key, call, agent } => c.handle_input(
                now,
                I::Dialled {
                    call: key,
                    callback: call,
                    agent,
                },
            ),
            AcdMsg::DialFailed { call } => c.handle_input(now, I::DialFailed { callback: call }),
            AcdMsg::ConnectFailed { key, status } => {
                c.handle_input(now, I::ConnectFailed { call: key, status })
            }
            AcdMsg::Registration { user, on } => {
                c.handle_input(now, I::Registration { user: &user, on });
            }
            AcdMsg::SetSurge { level, reply } => {
                c.set_surge(now, level);
                // Published before the answer: the API reads the level back at once.
                self.publish(now);
                let _ = reply.send(());
            }
            AcdMsg::Agents(reply) => {
                let _ = reply.send(c.agents());
            }
            AcdMsg::Waiting(reply) => {
                let _ = reply.send(c.waiting(now));
            }
            AcdMsg::Desk { name, reply } => {
                let _ = reply.send((c.agent(&name), c.offer(now, &name)));
            }
            AcdMsg::SetAgent {
                name,
                change,
                reply,
            } => {
                let _ = reply.send(c.set_agent(now, &name, change));
            }
            AcdMsg::PutAgent { spec, apply, reply } => {
                let r = if apply {
                    c.put_agent(now, &spec)
                } else {
                    let model = c.acd().model();
                    model
                        .check_agent("agent", &spec)
                        .map(|()| model.agent(&spec.name).is_none())
                };
                let _ = reply.send(r);
            }
            AcdMsg::RemoveAgent { name, reply } => {
                let _ = reply.send(c.remove_agent(now, &name));
            }
            AcdMsg::Transfer { agent, to, reply } => {
                let task = c
                    .check_transfer(&to)
                    .and_then(|()| c.talking(&agent).ok_or_else(|| "not on a call".to_owned()))
                    .and_then(|call| {
                        self.tasks
                            .get(&call)
                            .ok_or_else(|| "the call is ending".to_owned())
                    });
                let r = task.and_then(|t| {
                    info!(agent, to = ?to, "transfer asked");
                    t.send(AppEvent::Transfer(to))
                        .map_err(|_| "the call is ending".to_owned())
                });
                let _ = reply.send(r);
            }
            AcdMsg::Directory(reply) => {
                let _ = reply.send(c.directory());
            }
        }
    }

    /// Carries out the center's decisions.
    fn carry_out(&mut self) {
        while let Some(out) = self.center.poll_output() {
            let request = match out {
                CenterOutput::ToCall(call, ev) => {
                    if let Some(t) = self.tasks.get(&call) {
                        let _ = t.send(AppEvent::Acd(ev));
                    }
                    continue;
                }
                CenterOutput::Released(call) => {
                    self.tasks.remove(&call);
                    continue;
                }
                CenterOutput::Ring { call, agent, ring } => CoreRequest::Connect {
                    key: call,
                    target: ConnectTarget::User(agent),
                    ring,
                },
                CenterOutput::StopRinging(call) => CoreRequest::Disconnect(call),
                CenterOutput::HangUp(call, why) => CoreRequest::HangUp(call, why),
                CenterOutput::Originate {
                    callback,
                    agent,
                    queue,
                    uri,
                    ring,
                } => CoreRequest::Originate {
                    call: callback,
                    agent,
                    queue,
                    uri,
                    ring,
                },
            };
            let _ = self.core.send(request);
        }
    }

    /// The surge level, admissions, queue lengths and the router's counters for the metrics.
    fn publish(&mut self, now: Instant) {
        let ratio = self.center.surge_ratio(now);
        let c = &self.center;
        let m = &self.metrics;
        m.surge_ratio_milli
            .store((ratio * 1000.0) as u64, Ordering::Relaxed);
        m.surge_level
            .store(c.surge_level().index() as u64, Ordering::Relaxed);
        m.surge_by_hand
            .store(u64::from(c.surge_override().is_some()), Ordering::Relaxed);
        m.surge_changes.store(c.surge_changes(), Ordering::Relaxed);
        m.standby_activations
            .store(c.standby_activations(), Ordering::Relaxed);
        if let Ok(mut a) = m.admissions.lock() {
            a.clone_from(c.admissions());
        }
        if let Ok(mut k) = m.counters.lock() {
            k.clone_from(c.acd().counters());
        }
        if let Ok(mut w) = m.waiting.lock() {
            for (i, q) in c.acd().model().queues.iter().enumerate() {
                w.insert(q.name.clone(), c.acd().waiting(QueueId(i as u16)));
            }
        }
        if let Ok(mut a) = m.agent_states.lock() {
            *a = c.agent_counts();
        }
        if let Ok(mut w) = m.queue_stats.lock() {
            for (i, q) in c.acd().model().queues.iter().enumerate() {
                if let Some(s) = c.acd().queue_stats(QueueId(i as u16)) {
                    w.insert(q.name.clone(), s.clone());
                }
            }
        }
        if let Ok(mut w) = m.recent_stats.lock() {
            for (i, q) in c.acd().model().queues.iter().enumerate() {
                if let Some(s) = c.acd().recent_stats(now, QueueId(i as u16)) {
                    w.insert(q.name.clone(), s);
                }
            }
        }
    }
}

/// A soft chime, four seconds: what a caller hears while waiting when no music file is set.
pub(crate) fn chime(rate: u32) -> Prompt {
    let n = rate as usize * 4;
    let notes = [523.25f64, 659.25, 783.99, 659.25];
    let pcm: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let k = ((t / 1.0) as usize).min(notes.len() - 1);
            let local = t - k as f64;
            let env = (-3.0 * local).exp() * (local * 200.0).min(1.0);
            (3000.0 * env * (2.0 * std::f64::consts::PI * notes[k] * t).sin()) as i16
        })
        .collect();
    Prompt {
        rate,
        pcm: pcm.into(),
    }
}
