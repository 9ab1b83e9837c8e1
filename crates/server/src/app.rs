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
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crest_acd::admission::{self, Admission, AdmissionConfig, Reason, Situation};
use crest_acd::{
    Acd, AgentId, AgentState, CallId, Caller, Input, Model, Output, Surge, SurgeConfig, SurgeLevel,
};
use crest_call::{FromAcd, Start};
use crest_ivr::model::Method;
use crest_ivr::tts::{EspeakNg, Tts as _};
use crest_media::bridge::Prompt;
use crest_sip_proxy::{ConnectTarget, LegEvent};
use tokio::sync::mpsc;
use tracing::{Span, info, warn};

use crate::ivr::Flows;
use crate::speech::Speech;

/// What the other tasks ask of the SIP core.
#[derive(Debug)]
pub(crate) enum CoreRequest {
    /// End the call (media timeout, the IVR hung up).
    HangUp(u64, String),
    /// Connect a call Crest answered to an agent's phone or a SIP URI.
    Connect {
        key: u64,
        target: ConnectTarget,
        ring: Duration,
    },
    /// Stop ringing (or hang up) the call's leg B; the caller stays.
    Disconnect(u64),
    /// Answer (200) a queue caller taken with early media: admitted.
    Accept(u64),
    /// Refuse a queue caller taken with early media: 503 with Retry-After.
    Refuse { key: u64, retry_after: u64 },
    /// Call a customer back (the ACD reserved `agent` for the callback `call` of `queue`).
    Originate {
        call: CallId,
        agent: AgentId,
        queue: String,
        uri: String,
        ring: Duration,
    },
}

/// `acd:` in crest.yaml.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AcdSection {
    /// Agents, pools and queues (`queue:` routes and the IVR's `queue` nodes name them).
    pub(crate) file: Option<PathBuf>,
    /// How often a waiting caller hears their place in line and the expected wait.
    pub(crate) announce_secs: u64,
    /// Played while a caller waits (WAV, 16-bit mono); unset: a soft generated chime.
    pub(crate) hold_music: Option<PathBuf>,
    /// The surge detector: arrivals at ivr: and queue: routes against a baseline.
    pub(crate) surge: SurgeConfig,
    /// Admission before a caller joins a queue.
    pub(crate) admission: AdmissionConfig,
    /// Where callbacks are dialled: a SIP URI with `{number}` (the customer's number), e.g.
    /// `sip:{number}@192.0.2.1:5060` for a trunk; unset: callbacks are not offered.
    pub(crate) callback_uri: Option<String>,
}

impl Default for AcdSection {
    fn default() -> Self {
        Self {
            file: None,
            announce_secs: 30,
            hold_music: None,
            surge: SurgeConfig::default(),
            admission: AdmissionConfig::default(),
            callback_uri: None,
        }
    }
}

/// What a call's task hears: the ACD's decisions, the recogniser, lookups and prompts
/// rendered off the task. Everything that sends these holds only a sender; when the call's
/// task ends, its receiver goes and their sends fail (nothing waits on a call that is gone).
#[derive(Debug)]
pub(crate) enum AppEvent {
    /// The ACD's decision for the caller.
    Acd(FromAcd),
    /// The recogniser heard an utterance (listen `generation`).
    Heard {
        generation: u64,
        heard: crest_ivr::asr::Heard,
    },
    /// The recogniser could not go on (listen `generation`).
    ListenFailed { generation: u64 },
    /// A lookup's answer: `Some((status, body))`, or `None` when it failed.
    Lookup(Option<(u16, String)>),
    /// A prompt rendered off the task (`serial`: which play it is for).
    Rendered {
        serial: u64,
        prompt: Result<Prompt, String>,
    },
}

/// The IVR's counters for `/metrics`: sessions running now and in all, and what the
/// recognisers do.
#[derive(Debug, Default)]
pub(crate) struct IvrMetrics {
    pub(crate) sessions_active: AtomicU64,
    pub(crate) sessions_total: AtomicU64,
    pub(crate) lookups_active: AtomicU64,
    pub(crate) renders_active: AtomicU64,
}

/// What every call Crest answers shares.
#[derive(Debug)]
pub(crate) struct AppRuntime {
    pub(crate) flows: Option<Arc<Flows>>,
    /// The recognisers (with the flows).
    pub(crate) speech: Option<Speech>,
    pub(crate) tts: Arc<EspeakNg>,
    pub(crate) acd: Option<mpsc::UnboundedSender<AcdMsg>>,
    /// The main runtime (lookups and renders run there).
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) http: reqwest::Client,
    pub(crate) hold_music: Prompt,
    /// The ACD's counters, and the surge level the IVR's flows branch on.
    pub(crate) metrics: Arc<AcdMetrics>,
    pub(crate) ivr: Arc<IvrMetrics>,
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
                let Some(f) = library.get(flow).cloned() else {
                    warn!(flow, "no such IVR flow loaded");
                    return None;
                };
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
        self.runtime.spawn_blocking(move || {
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

    /// Prometheus lines of the IVR and its recognisers.
    pub(crate) fn render_ivr(&self, out: &mut String) {
        use std::fmt::Write as _;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let i = &self.ivr;
        let _ = writeln!(
            out,
            "# HELP crest_ivr_sessions_active Callers in an IVR flow now.\n# TYPE crest_ivr_sessions_active gauge\ncrest_ivr_sessions_active {}\n\
             # HELP crest_ivr_sessions_total IVR sessions started.\n# TYPE crest_ivr_sessions_total counter\ncrest_ivr_sessions_total {}\n\
             # HELP crest_ivr_lookups_active IVR lookups waiting for an answer.\n# TYPE crest_ivr_lookups_active gauge\ncrest_ivr_lookups_active {}\n\
             # HELP crest_ivr_renders_active Prompts being rendered.\n# TYPE crest_ivr_renders_active gauge\ncrest_ivr_renders_active {}\n\
             # HELP crest_ivr_prompts_cached Prompts rendered and kept, shared by every call.\n# TYPE crest_ivr_prompts_cached gauge\ncrest_ivr_prompts_cached {}",
            g(&i.sessions_active),
            g(&i.sessions_total),
            g(&i.lookups_active),
            g(&i.renders_active),
            self.tts.cached_count(),
        );
        if let Some(s) = &self.speech {
            let m = &s.metrics;
            let _ = writeln!(
                out,
                "# HELP crest_ivr_recognizers_active Callers a recogniser listens to now.\n# TYPE crest_ivr_recognizers_active gauge\ncrest_ivr_recognizers_active {}\n\
                 # HELP crest_ivr_recognizers_limit Callers that may be listened to at once (ivr.recognizers).\n# TYPE crest_ivr_recognizers_limit gauge\ncrest_ivr_recognizers_limit {}\n\
                 # HELP crest_ivr_listens_total Listens started.\n# TYPE crest_ivr_listens_total counter\ncrest_ivr_listens_total {}\n\
                 # HELP crest_ivr_listens_refused_total Listens refused: every recogniser was busy (the caller can still press keys).\n# TYPE crest_ivr_listens_refused_total counter\ncrest_ivr_listens_refused_total {}\n\
                 # HELP crest_ivr_utterances_total Utterances heard.\n# TYPE crest_ivr_utterances_total counter\ncrest_ivr_utterances_total {}\n\
                 # HELP crest_ivr_audio_frames_dropped_total Caller audio frames dropped because a recogniser fell behind.\n# TYPE crest_ivr_audio_frames_dropped_total counter\ncrest_ivr_audio_frames_dropped_total {}",
                g(&m.active),
                s.limit(),
                g(&m.started),
                g(&m.refused),
                g(&m.heard),
                g(&m.frames_dropped),
            );
        }
    }
}

/// What the ACD task hears.
#[derive(Debug)]
pub(crate) enum AcdMsg {
    /// A call reached an `ivr:` or `queue:` route (the surge detector counts it).
    Arrival,
    /// A caller asks to join `queue`; what the ACD tells them goes to `task`. `door`: the
    /// caller came straight from a `queue:` route (early media until admitted), not from the
    /// IVR (answered, and served by it already).
    Enqueue {
        key: u64,
        queue: String,
        tier: u8,
        number: String,
        /// The caller's language, when the IVR knows it.
        language: Option<String>,
        door: bool,
        /// The caller asks to be called back at `number` instead of holding.
        callback: bool,
        task: mpsc::UnboundedSender<AppEvent>,
    },
    /// The SIP core placed the callback `call` as call `key`.
    Dialled {
        key: u64,
        call: CallId,
        agent: AgentId,
    },
    /// The SIP core could not place the callback `call`.
    DialFailed { call: CallId },
    /// The customer answered Crest's callback `key`.
    CustomerAnswered {
        key: u64,
        task: mpsc::UnboundedSender<AppEvent>,
    },
    /// The customer did not answer Crest's callback `key`.
    CustomerUnanswered { key: u64, status: u16 },
    /// What became of the leg Crest placed to the offered agent.
    Leg { key: u64, event: LegEvent },
    /// The SIP core could not place it at all (480: the agent's phone is not registered).
    ConnectFailed { key: u64, status: u16 },
    /// The call ended (the caller hung up, or the agent).
    Ended { key: u64 },
    /// A user's phone registered (`true`) or removed its last contact.
    Registration { user: String, on: bool },
    /// A waiting caller pressed a key (1 takes a callback offer).
    Key { key: u64, digit: char },
}

struct QueuedCall {
    task: Option<mpsc::UnboundedSender<AppEvent>>,
    queue: String,
    /// The ACD's call: this call's key, or the callback this call was placed for.
    call: CallId,
    /// A callback call placed by Crest (the agent is reserved, the ACD counts it answered
    /// once the customer answers).
    dialled: bool,
    /// The caller asked to be called back: they hang up and keep their place.
    callback_pending: bool,
    /// Admitted under the circuit breaker: the announcements offer a callback (key 1).
    callback_offer: bool,
    /// The agent ringing or talking.
    agent: Option<crest_acd::AgentId>,
    connected: bool,
    next_announce: Instant,
}

/// The ACD's counters for `/metrics`, shared with the admin endpoint (and the IVR, which
/// reads the surge ratio).
#[derive(Debug, Default)]
pub(crate) struct AcdMetrics {
    surge_level: AtomicU64,
    surge_ratio_milli: AtomicU64,
    surge_changes: AtomicU64,
    standby_activations: AtomicU64,
    /// (decision, reason) → callers.
    admissions: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Queue → callers waiting.
    waiting: Mutex<BTreeMap<String, usize>>,
    /// The router's counters (offers, answers, misses, overflows, abandons, callbacks, wait
    /// estimate error).
    counters: Mutex<crest_acd::Counters>,
}

impl AcdMetrics {
    /// The latest arrival rate over the baseline.
    pub(crate) fn ratio(&self) -> f64 {
        self.surge_ratio_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Prometheus lines.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP crest_acd_surge_level Surge level: 0 normal, 1 self-service first (3x), 2 standby agents (5x), 3 circuit breaker (8x).\n# TYPE crest_acd_surge_level gauge\ncrest_acd_surge_level {}\n\
             # HELP crest_acd_surge_ratio Arrival rate over the sliding window divided by the baseline.\n# TYPE crest_acd_surge_ratio gauge\ncrest_acd_surge_ratio {:.3}\n\
             # HELP crest_acd_surge_changes_total Surge level changes.\n# TYPE crest_acd_surge_changes_total counter\ncrest_acd_surge_changes_total {}\n\
             # HELP crest_acd_standby_activations_total Times the standby pools were called in.\n# TYPE crest_acd_standby_activations_total counter\ncrest_acd_standby_activations_total {}",
            self.surge_level.load(Ordering::Relaxed),
            self.ratio(),
            self.surge_changes.load(Ordering::Relaxed),
            self.standby_activations.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP crest_acd_admissions_total Admission decisions before a caller joins a queue, by decision and reason.\n# TYPE crest_acd_admissions_total counter"
        );
        if let Ok(a) = self.admissions.lock() {
            for ((decision, reason), n) in a.iter() {
                let _ = writeln!(
                    out,
                    "crest_acd_admissions_total{{decision=\"{decision}\",reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP crest_acd_waiting Callers waiting, by queue.\n# TYPE crest_acd_waiting gauge"
        );
        if let Ok(w) = self.waiting.lock() {
            for (q, n) in w.iter() {
                let _ = writeln!(out, "crest_acd_waiting{{queue=\"{q}\"}} {n}");
            }
        }
        let Ok(c) = self.counters.lock() else {
            return;
        };
        for (name, help, v) in [
            ("offers", "Calls offered to an agent.", c.offers),
            ("answered", "Offers an agent answered.", c.answered),
            ("missed", "Offers that rang out or failed.", c.missed),
            (
                "overflows",
                "Overflow steps to a neighbouring pool.",
                c.overflows,
            ),
            (
                "abandoned",
                "Callers who hung up while waiting or ringing.",
                c.abandoned,
            ),
            (
                "set_away",
                "Agents set away after missed calls.",
                c.set_away,
            ),
            ("callbacks", "Callbacks scheduled.", c.callbacks),
            (
                "callbacks_unanswered",
                "Callbacks the customer did not answer.",
                c.callbacks_unanswered,
            ),
            (
                "ewt_samples",
                "Answered calls that had a wait estimate.",
                c.ewt_samples,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP crest_acd_{name}_total {help}\n# TYPE crest_acd_{name}_total counter\ncrest_acd_{name}_total {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP crest_acd_ewt_abs_error_seconds_total Sum of |actual wait - estimate| over answered calls (divide by crest_acd_ewt_samples_total).\n# TYPE crest_acd_ewt_abs_error_seconds_total counter\ncrest_acd_ewt_abs_error_seconds_total {:.3}\n\
             # HELP crest_acd_ewt_bias_seconds_total Sum of (actual wait - estimate): positive when estimates are too short.\n# TYPE crest_acd_ewt_bias_seconds_total gauge\ncrest_acd_ewt_bias_seconds_total {:.3}",
            c.ewt_abs_error_secs, c.ewt_bias_secs
        );
    }
}

/// The ACD in a running crest (see the module docs).
pub(crate) struct AcdService {
    acd: Acd,
    calls: HashMap<u64, QueuedCall>,
    core: mpsc::UnboundedSender<CoreRequest>,
    announce_every: Duration,
    surge: Surge,
    admission: AdmissionConfig,
    metrics: Arc<AcdMetrics>,
    /// Agents whose phones are registered.
    registered: std::collections::HashSet<AgentId>,
    /// Agents of standby pools (logged in only under a surge of 5× and more).
    standby: Vec<AgentId>,
    standby_on: bool,
    callback_uri: Option<String>,
    /// Callbacks being dialled: the ACD's call → the key of the call Crest placed.
    dialling: HashMap<CallId, u64>,
    /// Scheduled callbacks: the ACD's call → its queue.
    callback_queues: HashMap<CallId, String>,
}

impl AcdService {
    /// The service on `model`; agents are offline until their phones register.
    pub(crate) fn new(
        model: Model,
        section: &AcdSection,
        core: mpsc::UnboundedSender<CoreRequest>,
        rt: &AppRuntime,
    ) -> Self {
        let now = Instant::now();
        let standby = model.standby_agents();
        Self {
            acd: Acd::new(now, model),
            calls: HashMap::new(),
            core,
            announce_every: Duration::from_secs(section.announce_secs.max(5)),
            surge: Surge::new(now, section.surge.clone()),
            admission: section.admission.clone(),
            metrics: rt.metrics.clone(),
            registered: std::collections::HashSet::new(),
            standby,
            standby_on: false,
            callback_uri: section.callback_uri.clone(),
            dialling: HashMap::new(),
            callback_queues: HashMap::new(),
        }
    }

    /// Runs until every sender is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<AcdMsg>) {
        loop {
            let now = Instant::now();
            // The surge level also comes down without arrivals: looked at every second.
            let next = [self.acd.poll_timeout(), self.next_announce()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + Duration::from_secs(1))
                .min(now + Duration::from_secs(1));
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => self.handle(Instant::now(), m),
                    None => return,
                },
                () = tokio::time::sleep_until(next.into()) => {}
            }
            let now = Instant::now();
            if self.acd.poll_timeout().is_some_and(|t| t <= now) {
                self.acd.handle_timeout(now);
            }
            let change = self.surge.update(now);
            self.on_surge(now, change);
            self.drain(now);
            self.announce(now);
            self.publish();
        }
    }

    /// A surge level change: an event in the log, the metrics, and the standby pools called
    /// in at 5× or released below.
    fn on_surge(&mut self, now: Instant, change: Option<crest_acd::SurgeChange>) {
        let ratio = self.surge.ratio(now);
        self.metrics
            .surge_ratio_milli
            .store((ratio * 1000.0) as u64, Ordering::Relaxed);
        let Some(c) = change else {
            return;
        };
        warn!(from = ?c.from, to = ?c.to, ratio = format!("{:.1}", c.ratio), "surge level changed");
        self.metrics
            .surge_level
            .store(c.to.index() as u64, Ordering::Relaxed);
        self.metrics.surge_changes.fetch_add(1, Ordering::Relaxed);
        let want = c.to >= SurgeLevel::StandbyAgents;
        if want != self.standby_on && !self.standby.is_empty() {
            self.standby_on = want;
            if want {
                self.metrics
                    .standby_activations
                    .fetch_add(1, Ordering::Relaxed);
            }
            info!(on = want, agents = self.standby.len(), "standby pools");
            for a in self.standby.clone() {
                if want && self.registered.contains(&a) {
                    self.acd.handle(now, Input::AgentLogin(a));
                } else if !want {
                    self.acd.handle(now, Input::AgentLogout(a));
                }
            }
        }
    }

    /// Queue lengths and the router's counters for the metrics.
    fn publish(&self) {
        if let Ok(mut c) = self.metrics.counters.lock() {
            c.clone_from(self.acd.counters());
        }
        if let Ok(mut w) = self.metrics.waiting.lock() {
            for (i, q) in self.acd.model().queues.iter().enumerate() {
                w.insert(
                    q.name.clone(),
                    self.acd.waiting(crest_acd::QueueId(i as u16)),
                );
            }
        }
    }

    /// Admission for a caller just arrived in the ACD (the simulator's order: arrive, then
    /// decide from the queue and the caller's own wait estimate).
    fn admit(&mut self, key: u64, queue_len: usize, door: bool) -> (Admission, Reason) {
        let situation = Situation {
            // Bandwidth is admitted at the door by the media plane's ledger (503 when the
            // node's or the pool's budget is spent): this call's media is counted already.
            call_bps: 0,
            headroom_bps: None,
            queue_len,
            ewt: self.acd.ewt(CallId(key)),
            surge: self.surge.level(),
            self_served: !door,
        };
        let (decision, reason) = admission::decide(&self.admission, &situation);
        let label = match decision {
            Admission::Admit => "admit",
            Admission::AdmitWithCallbackOffer => "admit_with_callback_offer",
            Admission::SelfService => "self_service",
            Admission::OfferCallback => "offer_callback",
            Admission::Refuse { .. } => "refuse",
        };
        if let Ok(mut a) = self.metrics.admissions.lock() {
            *a.entry((label, format!("{reason:?}").to_lowercase()))
                .or_default() += 1;
        }
        info!(key, decision = label, ?reason, queue_len, ewt_secs = ?situation.ewt.map(|d| d.as_secs()), "admission");
        (decision, reason)
    }

    fn next_announce(&self) -> Option<Instant> {
        self.calls
            .values()
            .filter(|c| c.agent.is_none() && !c.callback_pending && !c.dialled)
            .map(|c| c.next_announce)
            .min()
    }

    fn handle(&mut self, now: Instant, m: AcdMsg) {
        match m {
            AcdMsg::Arrival => {
                let change = self.surge.on_arrival(now);
                self.on_surge(now, change);
            }
            AcdMsg::Enqueue {
                key,
                queue,
                tier,
                number,
                language,
                door,
                callback,
                task,
            } => {
                let caller = Caller {
                    call: CallId(key),
                    queue: crest_acd::QueueId(0),
                    tier,
                    number,
                    language,
                };
                self.enqueue(now, caller, queue, door, callback, task);
            }
            AcdMsg::Leg { key, event } => self.on_agent_leg(now, key, event),
            AcdMsg::ConnectFailed { key, status } => {
                let Some(c) = self.calls.get_mut(&key) else {
                    return;
                };
                if let Some(agent) = c.agent.take() {
                    let (call, dialled) = (c.call, c.dialled);
                    info!(key, agent = %self.acd.model().agents[agent.0 as usize].name, status, "agent's phone unreachable");
                    if dialled {
                        self.hang_up_callback(now, key, agent, call);
                    } else {
                        self.acd.handle(now, Input::NoAnswer(agent, call));
                    }
                    if status == 480 {
                        self.acd.handle(now, Input::AgentLogout(agent));
                    }
                }
            }
            AcdMsg::Ended { key } => {
                let Some(c) = self.calls.remove(&key) else {
                    return;
                };
                if c.dialled {
                    if self.dialling.remove(&c.call).is_some() {
                        // Ended before the customer answered the callback.
                        self.acd.handle(now, Input::CallbackUnanswered(c.call));
                    } else if let Some(a) = c.agent {
                        self.acd.handle(now, Input::CallEnded(a, c.call));
                    }
                } else if let (Some(a), true) = (c.agent, c.connected) {
                    self.acd.handle(now, Input::CallEnded(a, c.call));
                } else if c.callback_pending {
                    info!(
                        key,
                        queue = c.queue,
                        "caller hung up to be called back: they keep their place"
                    );
                } else {
                    info!(key, queue = c.queue, "caller left the queue");
                    self.acd.handle(now, Input::CallAbandoned(c.call));
                }
            }
            AcdMsg::Registration { user, on } => {
                let Some(a) = self.acd.model().agent(&user) else {
                    return;
                };
                if on {
                    self.registered.insert(a);
                } else {
                    self.registered.remove(&a);
                }
                // Standby agents take calls only while their pools are called in.
                if self.standby.contains(&a) && !self.standby_on {
                    return;
                }
                let state = self.acd.agent_state(a).clone();
                if on && state == AgentState::Offline {
                    info!(agent = user, "agent logged in (phone registered)");
                    self.acd.handle(now, Input::AgentLogin(a));
                } else if !on {
                    info!(agent = user, "agent logged out (phone unregistered)");
                    self.acd.handle(now, Input::AgentLogout(a));
                }
            }
            AcdMsg::Key { key, digit } => {
                let offered = self
                    .calls
                    .get(&key)
                    .is_some_and(|c| c.callback_offer && c.agent.is_none());
                if digit == '1' && offered {
                    info!(key, "the caller takes the callback offer");
                    self.acd.handle(now, Input::CallbackRequested(CallId(key)));
                }
            }
            AcdMsg::Dialled { key, call, agent } => {
                self.dialling.insert(call, key);
                self.calls.insert(
                    key,
                    QueuedCall {
                        task: None,
                        queue: String::new(),
                        call,
                        dialled: true,
                        callback_pending: false,
                        callback_offer: false,
                        agent: Some(agent),
                        connected: false,
                        next_announce: now + Duration::from_secs(3600),
                    },
                );
            }
            AcdMsg::DialFailed { call } => {
                warn!(call = call.0, "the callback could not be placed");
                self.acd.handle(now, Input::CallbackUnanswered(call));
            }
            AcdMsg::CustomerAnswered { key, task } => {
                let Some(c) = self.calls.get_mut(&key) else {
                    return;
                };
                let Some(agent) = c.agent else {
                    return;
                };
                c.task = Some(task);
                self.dialling.remove(&c.call);
                let name = self.acd.model().agents[agent.0 as usize].name.clone();
                info!(
                    key,
                    agent = name,
                    "the customer answered the callback: ringing the reserved agent"
                );
                self.acd.handle(now, Input::CallbackAnswered(c.call));
                let ring = self.acd.model().ring + Duration::from_secs(5);
                let _ = self.core.send(CoreRequest::Connect {
                    key,
                    target: ConnectTarget::User(name),
                    ring,
                });
            }
            AcdMsg::CustomerUnanswered { key, status } => {
                if let Some(c) = self.calls.remove(&key) {
                    info!(key, status, "the customer did not answer the callback");
                    self.dialling.remove(&c.call);
                    self.acd.handle(now, Input::CallbackUnanswered(c.call));
                }
            }
        }
    }

    /// A caller asks to join `queue` (or to be called back from it).
    /// (`caller.queue` is set here from `queue`.)
    fn enqueue(
        &mut self,
        now: Instant,
        mut caller: Caller,
        queue: String,
        door: bool,
        callback: bool,
        task: mpsc::UnboundedSender<AppEvent>,
    ) {
        let key = caller.call.0;
        let tier = caller.tier;
        let Some(q) = self.acd.model().queue(&queue) else {
            warn!(key, queue, "no such ACD queue: hanging up");
            let _ = self
                .core
                .send(CoreRequest::HangUp(key, "no such queue".into()));
            return;
        };
        let queue_len = self.acd.waiting(q);
        caller.queue = q;
        self.acd.handle(now, Input::CallArrived(caller));
        let mut call = QueuedCall {
            task: Some(task),
            queue,
            call: CallId(key),
            dialled: false,
            callback_pending: false,
            callback_offer: false,
            agent: None,
            connected: false,
            next_announce: now,
        };
        if callback && self.callback_uri.is_some() {
            // The caller asked for it: no admission, their place is kept.
            info!(key, queue = call.queue, "callback requested");
            self.calls.insert(key, call);
            self.acd.handle(now, Input::CallbackRequested(CallId(key)));
            return;
        }
        let (decision, reason) = self.admit(key, queue_len, door);
        match decision {
            Admission::Refuse { retry_after } => {
                self.acd.handle(now, Input::CallAbandoned(CallId(key)));
                // Whatever the ACD offered meanwhile goes back.
                self.drain(now);
                if let Some(task) = &call.task {
                    Self::refuse(task, retry_after.as_secs());
                }
                return;
            }
            Admission::AdmitWithCallbackOffer => {
                if let Some(m) = admission::compensation(&self.admission, reason) {
                    info!(key, message = m, "compensation promised to the caller");
                }
                call.callback_offer = self.callback_uri.is_some();
            }
            Admission::OfferCallback | Admission::SelfService => {
                // A caller from a queue route has no IVR to serve themselves in, and a
                // callback offer needs the IVR to take the request: they queue rather than
                // being lost.
                info!(key, decision = ?decision, "not available here: the caller queues");
            }
            Admission::Admit => {}
        }
        // The controller answers a caller from a queue route (`door`) now.
        if let Some(t) = &call.task {
            let _ = t.send(AppEvent::Acd(FromAcd::Admitted));
        }
        info!(key, queue = call.queue, tier, door, "caller queued");
        self.calls.insert(key, call);
    }

    /// What became of the leg to the agent the ACD offered (or reserved for a callback).
    fn on_agent_leg(&mut self, now: Instant, key: u64, event: LegEvent) {
        let Some(c) = self.calls.get_mut(&key) else {
            return;
        };
        let Some(agent) = c.agent else {
            return;
        };
        let name = self.acd.model().agents[agent.0 as usize].name.clone();
        match event {
            LegEvent::Ringing => {}
            LegEvent::Answered => {
                c.connected = true;
                if let Some(t) = &c.task {
                    let _ = t.send(AppEvent::Acd(FromAcd::Connected {
                        agent: name.clone(),
                    }));
                }
                info!(key, agent = name, "agent answered");
                if !c.dialled {
                    let call = c.call;
                    self.acd.handle(now, Input::Answered(agent, call));
                }
            }
            LegEvent::Failed(status) => {
                info!(key, agent = name, status, "agent did not answer");
                let (call, dialled) = (c.call, c.dialled);
                if dialled {
                    self.hang_up_callback(now, key, agent, call);
                } else {
                    c.agent = None;
                    self.acd.handle(now, Input::NoAnswer(agent, call));
                }
            }
        }
    }

    /// The agent reserved for a callback did not take it: the customer is told by the
    /// hang-up (a real product would apologise first), the agent's call ends.
    fn hang_up_callback(&mut self, now: Instant, key: u64, agent: AgentId, call: CallId) {
        let _ = self.core.send(CoreRequest::HangUp(
            key,
            "the reserved agent did not answer".into(),
        ));
        self.calls.remove(&key);
        self.acd.handle(now, Input::CallEnded(agent, call));
    }

    /// Carries out the ACD's decisions.
    fn drain(&mut self, now: Instant) {
        let ring = self.acd.model().ring + Duration::from_secs(5);
        while let Some(out) = self.acd.poll_output() {
            let model = self.acd.model();
            match out {
                Output::Offer { call, agent } => {
                    let name = model.agents[agent.0 as usize].name.clone();
                    if let Some(c) = self.calls.get_mut(&call.0) {
                        c.agent = Some(agent);
                    }
                    info!(key = call.0, agent = name, "ringing agent");
                    // The ACD's own ring timer decides; the SIP core's is a backstop.
                    let _ = self.core.send(CoreRequest::Connect {
                        key: call.0,
                        target: ConnectTarget::User(name),
                        ring,
                    });
                }
                Output::Retract { call, agent } => {
                    info!(key = call.0, agent = %model.agents[agent.0 as usize].name, "agent rang out");
                    if let Some(key) = self.dialling.remove(&call) {
                        // The customer did not answer the callback in time.
                        self.calls.remove(&key);
                        let _ = self
                            .core
                            .send(CoreRequest::HangUp(key, "callback not answered".into()));
                        continue;
                    }
                    if let Some(c) = self.calls.get_mut(&call.0) {
                        c.agent = None;
                        c.next_announce = now;
                    }
                    let _ = self.core.send(CoreRequest::Disconnect(call.0));
                }
                Output::Overflow { call, step, pool } => {
                    info!(key = call.0, step, pool = %model.pools[pool.0 as usize].name, "overflow to the next pool");
                }
                Output::AgentAway { agent, reason } => {
                    info!(agent = %model.agents[agent.0 as usize].name, reason, "agent set away");
                }
                Output::Dial {
                    call,
                    agent,
                    number,
                } => {
                    let name = &model.agents[agent.0 as usize].name;
                    let queue = self.callback_queues.remove(&call).unwrap_or_default();
                    match &self.callback_uri {
                        Some(t) => {
                            let uri = t.replace("{number}", &number);
                            info!(
                                call = call.0,
                                agent = name,
                                uri,
                                "calling the customer back"
                            );
                            let _ = self.core.send(CoreRequest::Originate {
                                call,
                                agent,
                                queue,
                                uri,
                                ring,
                            });
                        }
                        None => self.acd.handle(now, Input::CallbackUnanswered(call)),
                    }
                }
                Output::CallbackScheduled { call } => {
                    if let Some(c) = self.calls.get_mut(&call.0) {
                        c.callback_pending = true;
                        self.callback_queues.insert(call, c.queue.clone());
                        // Taken while holding (not in the IVR): say so and hang up.
                        if c.callback_offer
                            && let Some(task) = &c.task
                        {
                            Self::goodbye(task);
                        }
                    }
                    // The flow says goodbye and hangs up.
                    info!(key = call.0, "callback scheduled: the caller may hang up");
                }
                Output::CallbackRefused { call } => {
                    // One pending callback per number: the earlier one stands.
                    info!(
                        key = call.0,
                        "callback refused: one is pending for this number already"
                    );
                    self.acd.handle(now, Input::CallAbandoned(call));
                    self.calls.remove(&call.0);
                }
            }
        }
    }

    /// "We will call you back", then the call ends.
    fn goodbye(task: &mpsc::UnboundedSender<AppEvent>) {
        let text =
            "Thank you. We will call you back on this number when an agent is free. Goodbye.";
        let _ = task.send(AppEvent::Acd(FromAcd::Goodbye(text.into())));
    }

    /// A refused caller hears why, then is refused.
    fn refuse(task: &mpsc::UnboundedSender<AppEvent>, retry_after: u64) {
        let text = "We are sorry: all our agents are busy and we cannot take your call now. Please call again later.";
        let _ = task.send(AppEvent::Acd(FromAcd::Refused {
            text: text.into(),
            retry_after,
        }));
    }

    /// Tells waiting callers their place in line and the expected wait, every
    /// `announce_every`; the prompt is rendered off this task.
    fn announce(&mut self, now: Instant) {
        for (key, c) in &mut self.calls {
            if c.agent.is_some() || c.next_announce > now || c.callback_pending || c.dialled {
                continue;
            }
            c.next_announce = now + self.announce_every;
            let call = CallId(*key);
            let Some(position) = self.acd.position(call) else {
                continue;
            };
            let mut text = wait_text(position, self.acd.ewt(call));
            if c.callback_offer {
                text.push_str(" To be called back instead, press 1.");
            }
            info!(key, position, text, "queue announcement");
            if let Some(task) = &c.task {
                let _ = task.send(AppEvent::Acd(FromAcd::Announce(text)));
            }
        }
    }
}

/// "You are number 2 in line. The expected wait is about 1 minute."
fn wait_text(position: usize, ewt: Option<Duration>) -> String {
    let place = if position == 1 {
        "You are next in line.".to_owned()
    } else {
        format!("You are number {position} in line.")
    };
    match ewt.map(|d| d.as_secs().div_ceil(60)) {
        None => format!("{place} All our agents are busy; please stay on the line."),
        Some(0 | 1) => format!("{place} The expected wait is less than a minute."),
        Some(m) => format!("{place} The expected wait is about {m} minutes."),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_callers_hear_their_place_and_wait_in_words() {
        assert_eq!(
            wait_text(1, Some(Duration::from_secs(20))),
            "You are next in line. The expected wait is less than a minute."
        );
        assert_eq!(
            wait_text(4, Some(Duration::from_secs(150))),
            "You are number 4 in line. The expected wait is about 3 minutes."
        );
        assert!(wait_text(2, None).contains("All our agents are busy"));
    }
}
