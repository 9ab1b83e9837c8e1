//! The contact center's side of the calls Crest answers itself, sans-IO: the ACD core
//! (crest-acd), the surge detector, admission, callbacks and queue announcements, and which
//! agent rings for which call. One [`Center`] per node; the calls' controllers ([`crate::Call`])
//! talk to it through [`CenterInput`] and [`FromAcd`].
//!
//! ```text
//!  Call ── Enqueue / Key / Leg / CustomerAnswered / Ended ──► Center ── ToCall(FromAcd) ──► Call
//!  registrations, arrivals, SIP results (Dialled, ConnectFailed) ─┘  └─► Ring · StopRinging ·
//!                                                                        HangUp · Originate
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crest_acd::AgentConfig;
use crest_acd::admission::{self, Admission, AdmissionConfig, Reason, Situation};
use crest_acd::{
    Acd, AgentId, AgentState, CallId, Caller, Input as AcdInput, Model, ModelError,
    Output as AcdOutput, QueueId, Surge, SurgeChange, SurgeConfig, SurgeLevel,
};
use tracing::{info, warn};

use crate::{FromAcd, LegEvent, ToAcd};

/// What a refused caller hears.
pub const REFUSAL: &str = "We are sorry: all our agents are busy and we cannot take your call now. Please call again later.";

/// What a holding caller who asks for a callback hears when one is booked for their number.
pub const ALREADY_BOOKED: &str =
    "A callback is already booked for this number. Please stay on the line for the next agent.";

/// What a caller who took a callback offer hears before the call ends.
pub const GOODBYE: &str =
    "Thank you. We will call you back on this number when an agent is free. Goodbye.";

/// The center's settings (crest.yaml's `acd:`).
#[derive(Debug, Clone)]
pub struct CenterConfig {
    /// How often a waiting caller hears their place in line and the expected wait.
    pub announce_every: Duration,
    /// The surge detector.
    pub surge: SurgeConfig,
    /// Admission before a caller joins a queue.
    pub admission: AdmissionConfig,
    /// Where callbacks are dialled (`{number}` is the customer's); `None`: no callbacks.
    pub callback_uri: Option<String>,
}

/// What happened, for the center.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CenterInput<'a> {
    /// A call reached an `ivr:` or `queue:` route (the surge detector counts it).
    Arrival,
    /// What call `call`'s controller tells the ACD ([`crate::Output::Acd`]).
    FromCall(CallId, ToAcd),
    /// The SIP core could not place the leg at all (480: the agent's phone is not
    /// registered).
    ConnectFailed {
        /// The call.
        call: CallId,
        /// The status.
        status: u16,
    },
    /// The SIP core placed the callback `callback` (the ACD's call, with `agent` reserved)
    /// as call `call`.
    Dialled {
        /// The call Crest placed.
        call: CallId,
        /// The ACD's callback.
        callback: CallId,
        /// The reserved agent.
        agent: AgentId,
    },
    /// The SIP core could not place the callback.
    DialFailed {
        /// The ACD's callback.
        callback: CallId,
    },
    /// User `user`'s phone registered (`true`) or removed its last contact.
    Registration {
        /// The SIP user (an agent's name).
        user: &'a str,
        /// Registered.
        on: bool,
    },
}

/// What the center asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CenterOutput {
    /// Tell call `call`'s controller.
    ToCall(CallId, FromAcd),
    /// Ring agent `agent` for call `call` (the ACD's ring timer decides; `ring` is the SIP
    /// core's backstop).
    Ring {
        /// The call.
        call: CallId,
        /// The agent's SIP user.
        agent: String,
        /// Backstop.
        ring: Duration,
    },
    /// Stop ringing call `call`'s agent (the caller stays).
    StopRinging(CallId),
    /// End call `call`.
    HangUp(CallId, String),
    /// Call a customer back: `agent` is reserved for callback `callback` of `queue`.
    Originate {
        /// The ACD's callback.
        callback: CallId,
        /// The reserved agent.
        agent: AgentId,
        /// The queue.
        queue: String,
        /// Where.
        uri: String,
        /// How long it may ring.
        ring: Duration,
    },
    /// The center holds nothing more for call `call` (the host may forget how to reach it).
    Released(CallId),
}

/// What a supervisor makes of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentChange {
    /// Ready for calls (from away, or logged out by a supervisor while registered).
    Ready,
    /// On a break, with a reason (during a call: once it ends).
    Away(String),
    /// Logged out until made ready again (a registration refresh does not log them in).
    Logout,
}

/// One agent as the center sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    /// The agent's name (their SIP user).
    pub name: String,
    /// Their pool.
    pub pool: String,
    /// `offline`, `available`, `ringing`, `on_call`, `wrap_up` or `away`.
    pub state: &'static str,
    /// Why away.
    pub reason: Option<String>,
    /// Their phone is registered.
    pub registered: bool,
    /// Skill name → level in 0..=1.
    pub skills: std::collections::HashMap<String, f64>,
    /// Languages they take calls in (primary tags); none: any.
    pub languages: Vec<String>,
    /// Rating, 0..=1.
    pub rating: f64,
}

/// A caller waiting for an agent, as the wallboard shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingView {
    /// The queue.
    pub queue: String,
    /// Their number, masked ([`crest_ids::mask`]).
    pub number: String,
    /// How long they have waited.
    pub waited: Duration,
    /// `waiting`, `ringing` (an agent is offered the call) or `callback` (they hung up and
    /// keep their place; `ringing` again while Crest dials them).
    pub state: &'static str,
}

/// The call an agent's phone rings for, as the agent's desktop shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferView {
    /// The queue.
    pub queue: String,
    /// The caller's number, masked ([`crest_ids::mask`]).
    pub number: String,
    /// How long they waited.
    pub waited: Duration,
    /// Customer tier (0 normal, higher is more valuable).
    pub tier: u8,
    /// The caller's language, when the IVR knows it.
    pub language: Option<String>,
    /// What the IVR learned: `path`, `intent`, the lookups' results (see
    /// [`crate::ToAcd::Enqueue`]).
    pub context: Vec<(String, String)>,
}

/// The agent named is not in the ACD's file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no agent named {0:?}")]
pub struct UnknownAgent(pub String);

#[derive(Debug)]
struct Held {
    queue: String,
    /// The ACD's call: this call, or the callback it was placed for.
    acd_call: CallId,
    /// The controller hears the center (a callback's call: once the customer answered).
    reachable: bool,
    /// A callback call placed by Crest.
    dialled: bool,
    /// Asked to be called back: hangs up and keeps the place.
    callback_pending: bool,
    /// Admitted under the circuit breaker: the announcements offer a callback (key 1).
    callback_offer: bool,
    /// The agent ringing or talking.
    agent: Option<AgentId>,
    connected: bool,
    next_announce: Instant,
    /// A `queue:` caller not answered yet: an agent offered meanwhile rings once the
    /// controller says the caller was answered (the SIP core places no leg on an early call).
    early: bool,
    /// The callback to place once this caller (who asked for it) has hung up.
    dial_after: Option<CenterOutput>,
    /// What the IVR learned, for the agent's screen.
    context: Vec<(String, String)>,
}

/// The contact center (see the module docs).
#[derive(Debug)]
pub struct Center {
    acd: Acd,
    config: CenterConfig,
    calls: HashMap<CallId, Held>,
    surge: Surge,
    /// A level set by hand (a supervisor opened the circuit breaker); `None`: measured.
    surge_override: Option<SurgeLevel>,
    next_surge_check: Instant,
    surge_changes: u64,
    standby_activations: u64,
    admissions: BTreeMap<(&'static str, String), u64>,
    /// SIP users whose phones are registered (agents, and users not agents yet).
    registered: HashSet<String>,
    /// Logged out by a supervisor: registrations do not log them in.
    forced_out: HashSet<AgentId>,
    standby: Vec<AgentId>,
    standby_on: bool,
    /// Callbacks being dialled: the ACD's callback → the call Crest placed.
    dialling: HashMap<CallId, CallId>,
    /// Scheduled callbacks: the ACD's callback → its queue.
    callback_queues: HashMap<CallId, String>,
    out: std::collections::VecDeque<CenterOutput>,
}

/// The name of an agent state in views and metrics.
fn state_name(s: &AgentState) -> &'static str {
    match s {
        AgentState::Offline => "offline",
        AgentState::Available(_) => "available",
        AgentState::Ringing(..) => "ringing",
        AgentState::OnCall(_) => "on_call",
        AgentState::WrapUp(_) => "wrap_up",
        AgentState::Away(_) => "away",
    }
}

/// How often the surge level is looked at without arrivals (it comes down by itself).
const SURGE_CHECK: Duration = Duration::from_secs(1);

impl Center {
    /// The center on `model`; agents are offline until their phones register.
    pub fn new(now: Instant, model: Model, config: CenterConfig) -> Self {
        let standby = model.standby_agents();
        Self {
            acd: Acd::new(now, model),
            surge: Surge::new(now, config.surge.clone()),
            surge_override: None,
            config,
            calls: HashMap::new(),
            next_surge_check: now + SURGE_CHECK,
            surge_changes: 0,
            standby_activations: 0,
            admissions: BTreeMap::new(),
            registered: HashSet::new(),
            forced_out: HashSet::new(),
            standby,
            standby_on: false,
            dialling: HashMap::new(),
            callback_queues: HashMap::new(),
            out: std::collections::VecDeque::new(),
        }
    }

    /// The ACD core (its model, counters, queues).
    pub fn acd(&self) -> &Acd {
        &self.acd
    }

    /// The surge level now: the one set by hand, or the measured one.
    pub fn surge_level(&self) -> SurgeLevel {
        self.surge_override.unwrap_or_else(|| self.surge.level())
    }

    /// The arrival rate over the baseline, as the IVR's flows see it: with a level set by
    /// hand, at least that level's threshold (below the first one for `Normal`).
    pub fn surge_ratio(&mut self, now: Instant) -> f64 {
        let measured = self.surge.ratio(now);
        let t = self.config.surge.thresholds;
        match self.surge_override.map(SurgeLevel::index) {
            None => measured,
            Some(0) => measured.min(t[0] * 0.99),
            Some(i) => measured.max(t[(i - 1).min(t.len() - 1)]),
        }
    }

    /// The level set by hand, if one is.
    pub fn surge_override(&self) -> Option<SurgeLevel> {
        self.surge_override
    }

    /// A supervisor sets the surge level by hand (`Some`: admission, the standby pools and
    /// the flows follow it whatever the arrivals), or gives it back to the measurement.
    pub fn set_surge(&mut self, now: Instant, level: Option<SurgeLevel>) {
        let from = self.surge_level();
        self.surge_override = level;
        let to = self.surge_level();
        warn!(?level, "surge level set by hand");
        if from != to {
            let ratio = self.surge_ratio(now);
            self.on_surge(now, Some(SurgeChange { from, to, ratio }));
        }
        self.step(now);
    }

    /// Surge level changes so far.
    pub fn surge_changes(&self) -> u64 {
        self.surge_changes
    }

    /// Times the standby pools were called in.
    pub fn standby_activations(&self) -> u64 {
        self.standby_activations
    }

    /// Admission decisions: (decision, reason) → callers.
    pub fn admissions(&self) -> &BTreeMap<(&'static str, String), u64> {
        &self.admissions
    }

    /// Calls the center holds (waiting, ringing, talking, dialled, hung up awaiting a
    /// callback): 0 once every call has ended and every callback is done.
    pub fn calls_held(&self) -> usize {
        self.calls.len() + self.dialling.len()
    }

    /// Scheduled callbacks not dialled yet.
    pub fn callbacks_pending(&self) -> usize {
        self.callback_queues.len()
    }

    /// Every agent: state, pool, registration.
    pub fn agents(&self) -> Vec<AgentView> {
        (0..self.acd.model().agents.len())
            .filter_map(|i| self.view(AgentId(i as u32)))
            .collect()
    }

    /// Agent `name`, as [`Self::agents`] shows them.
    pub fn agent(&self, name: &str) -> Option<AgentView> {
        self.view(self.acd.model().agent(name)?)
    }

    /// Agents by (pool, state name), without building their views (for metrics after every
    /// input).
    pub fn agent_counts(&self) -> BTreeMap<(String, &'static str), u64> {
        let model = self.acd.model();
        let mut out = BTreeMap::new();
        for (i, a) in model.agents.iter().enumerate().filter(|(_, a)| !a.retired) {
            let state = state_name(self.acd.agent_state(AgentId(i as u32)));
            let pool = model.pools[a.pool.0 as usize].name.clone();
            *out.entry((pool, state)).or_default() += 1;
        }
        out
    }

    fn view(&self, id: AgentId) -> Option<AgentView> {
        let model = self.acd.model();
        let a = model.agents.get(id.0 as usize).filter(|a| !a.retired)?;
        let spec = model.agent_config(id);
        let state = self.acd.agent_state(id);
        Some(AgentView {
            name: a.name.clone(),
            pool: spec.pool,
            state: state_name(state),
            reason: match state {
                AgentState::Away(r) => Some(r.clone()),
                _ => None,
            },
            registered: self.registered.contains(&a.name),
            skills: spec.skills,
            languages: spec.languages,
            rating: spec.rating,
        })
    }

    /// An admin adds or edits an agent (pool, skills, languages, rating), in force at once
    /// (see [`Acd::put_agent`]): a new agent whose phone is registered logs in; an agent
    /// moved into a standby pool while it is not called in logs out, and one moved out of it
    /// logs in. Returns whether the agent is new.
    pub fn put_agent(&mut self, now: Instant, spec: &AgentConfig) -> Result<bool, ModelError> {
        let new = self.acd.model().agent(&spec.name).is_none();
        let a = self.acd.put_agent(now, spec)?;
        info!(agent = %spec.name, pool = %spec.pool, new, "agent put in force by an admin");
        self.standby = self.acd.model().standby_agents();
        let standing_by = self.standby.contains(&a) && !self.standby_on;
        let offline = *self.acd.agent_state(a) == AgentState::Offline;
        if standing_by && !offline {
            self.acd.handle(now, AcdInput::AgentLogout(a));
        } else if !standing_by
            && offline
            && self.registered.contains(&spec.name)
            && !self.forced_out.contains(&a)
        {
            self.acd.handle(now, AcdInput::AgentLogin(a));
        }
        self.step(now);
        Ok(new)
    }

    /// An admin removes agent `name`: logged out (after the call they are on) and offered
    /// no call again until put back.
    pub fn remove_agent(&mut self, now: Instant, name: &str) -> Result<(), UnknownAgent> {
        let a = self
            .acd
            .model()
            .agent(name)
            .ok_or_else(|| UnknownAgent(name.to_owned()))?;
        info!(agent = name, "agent removed by an admin");
        self.acd.retire_agent(now, a);
        self.forced_out.remove(&a);
        self.standby = self.acd.model().standby_agents();
        self.step(now);
        Ok(())
    }

    /// The call agent `name` is offered (their phone rings), if any.
    pub fn offer(&self, now: Instant, name: &str) -> Option<OfferView> {
        let a = self.acd.model().agent(name)?;
        let AgentState::Ringing(call, _) = self.acd.agent_state(a) else {
            return None;
        };
        let c = self.acd.caller(*call)?;
        Some(OfferView {
            queue: self.acd.model().queues[c.queue.0 as usize].name.clone(),
            number: crest_ids::mask(&c.number),
            waited: self.acd.waited(now, *call).unwrap_or_default(),
            tier: c.tier,
            language: c.language.clone(),
            context: self
                .calls
                .get(call)
                .map(|h| h.context.clone())
                .unwrap_or_default(),
        })
    }

    /// The queue whose calls agent `a` takes in their own pool: `preferred` when they take
    /// its calls, else the first that they do.
    fn queue_of(&self, a: AgentId, preferred: &str) -> Option<String> {
        let model = self.acd.model();
        let agent = model.agents.get(a.0 as usize)?;
        let takes = |q: &&crest_acd::model::Queue| {
            q.pools.first() == Some(&agent.pool) && agent.skills.iter().any(|(s, _)| *s == q.skill)
        };
        let queues: Vec<_> = model.queues.iter().filter(takes).collect();
        queues
            .iter()
            .find(|q| q.name == preferred)
            .or(queues.first())
            .map(|q| q.name.clone())
    }

    /// Whether a caller may be transferred `to`: the queue exists, or the agent does and
    /// takes some queue's calls. The error says why not.
    pub fn check_transfer(&self, to: &crate::Transfer) -> Result<(), String> {
        let model = self.acd.model();
        match to {
            crate::Transfer::Queue(q) if model.queue(q).is_some() => Ok(()),
            crate::Transfer::Queue(q) => Err(format!("no queue {q:?}")),
            crate::Transfer::Agent(name) => {
                let a = model
                    .agent(name)
                    .ok_or_else(|| format!("no agent {name:?}"))?;
                self.queue_of(a, "")
                    .map(|_| ())
                    .ok_or_else(|| format!("{name} takes no queue's calls in their pool"))
            }
        }
    }

    /// The call agent `name` is talking on (its key).
    pub fn talking(&self, name: &str) -> Option<CallId> {
        let a = self.acd.model().agent(name)?;
        let AgentState::OnCall(_) = self.acd.agent_state(a) else {
            return None;
        };
        self.calls
            .iter()
            .find(|(_, h)| h.agent == Some(a) && h.connected)
            .map(|(k, _)| *k)
    }

    /// Queue and agent names (what an agent may transfer to).
    pub fn directory(&self) -> (Vec<String>, Vec<String>) {
        let model = self.acd.model();
        (
            model.queues.iter().map(|q| q.name.clone()).collect(),
            model
                .agents
                .iter()
                .filter(|a| !a.retired)
                .map(|a| a.name.clone())
                .collect(),
        )
    }

    /// Every caller waiting for an agent, longest wait first.
    pub fn waiting(&self, now: Instant) -> Vec<WaitingView> {
        let model = self.acd.model();
        self.acd
            .held_callers(now)
            .into_iter()
            .map(|c| WaitingView {
                queue: model.queues[c.queue.0 as usize].name.clone(),
                number: crest_ids::mask(&c.number),
                waited: c.waited,
                state: match (c.offered, c.callback) {
                    (true, _) => "ringing",
                    (false, true) => "callback",
                    (false, false) => "waiting",
                },
            })
            .collect()
    }

    /// A supervisor's change to agent `name`.
    pub fn set_agent(
        &mut self,
        now: Instant,
        name: &str,
        change: AgentChange,
    ) -> Result<(), UnknownAgent> {
        let a = self
            .acd
            .model()
            .agent(name)
            .ok_or_else(|| UnknownAgent(name.to_owned()))?;
        info!(agent = name, ?change, "agent state set by a supervisor");
        match change {
            AgentChange::Ready => {
                self.forced_out.remove(&a);
                // An agent without a phone is logged in when it registers.
                if self.registered.contains(name) {
                    self.acd.handle(now, AcdInput::AgentReady(a));
                }
            }
            AgentChange::Away(reason) => self.acd.handle(now, AcdInput::AgentAway(a, reason)),
            AgentChange::Logout => {
                self.forced_out.insert(a);
                self.acd.handle(now, AcdInput::AgentLogout(a));
            }
        }
        self.step(now);
        Ok(())
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<CenterOutput> {
        self.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let announce = self
            .calls
            .values()
            .filter(|c| c.agent.is_none() && !c.callback_pending && !c.dialled && c.reachable)
            .map(|c| c.next_announce)
            .min();
        [
            self.acd.poll_timeout(),
            announce,
            Some(self.next_surge_check),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the timers: the ACD's (ring-out, wrap-up, ageing), announcements, the surge level.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.step(now);
    }

    /// Takes one input.
    pub fn handle_input(&mut self, now: Instant, input: CenterInput<'_>) {
        match input {
            CenterInput::Arrival => {
                let change = self.surge.on_arrival(now);
                self.on_surge(now, change);
            }
            CenterInput::FromCall(call, msg) => self.handle_call(now, call, msg),
            CenterInput::ConnectFailed { call, status } => self.connect_failed(now, call, status),
            CenterInput::Registration { user, on } => self.registration(now, user, on),
            CenterInput::Dialled {
                call,
                callback,
                agent,
            } => {
                self.dialling.insert(callback, call);
                self.calls.insert(
                    call,
                    Held {
                        queue: String::new(),
                        acd_call: callback,
                        reachable: false,
                        dialled: true,
                        callback_pending: false,
                        callback_offer: false,
                        agent: Some(agent),
                        connected: false,
                        next_announce: now,
                        early: false,
                        dial_after: None,
                        context: Vec::new(),
                    },
                );
            }
            CenterInput::DialFailed { callback } => {
                warn!(call = %callback, "the callback could not be placed");
                self.acd.handle(now, AcdInput::CallbackUnanswered(callback));
            }
        }
        self.step(now);
    }

    /// What a call's controller says.
    fn handle_call(&mut self, now: Instant, call: CallId, msg: ToAcd) {
        match msg {
            ToAcd::Enqueue {
                queue,
                tier,
                number,
                language,
                door,
                callback,
                context,
                agent,
            } => {
                // A transfer to one agent: the queue of theirs the caller goes to.
                let only = agent.as_deref().and_then(|name| {
                    let a = self.acd.model().agent(name)?;
                    Some((a, self.queue_of(a, &queue)?))
                });
                if agent.is_some() && only.is_none() {
                    warn!(call = %call, agent, "transfer to an agent who takes no queue's calls");
                }
                let queue = only.as_ref().map_or(queue, |(_, q)| q.clone());
                let caller = Caller {
                    call,
                    queue: QueueId(0),
                    tier,
                    number,
                    language,
                    agent: only.map(|(a, _)| a),
                };
                self.enqueue(now, caller, &queue, door, callback, context);
            }
            ToAcd::Key(digit) => {
                let offered = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.callback_offer && c.agent.is_none());
                if digit == '1' && offered {
                    info!(call = %call, "the caller takes the callback offer");
                    self.acd.handle(now, AcdInput::CallbackRequested(call));
                }
            }
            ToAcd::Leg(event) => self.on_agent_leg(now, call, event),
            ToAcd::Answered => {
                let ring = self.ring_backstop();
                let Some(c) = self.calls.get_mut(&call).filter(|c| c.early) else {
                    return;
                };
                c.early = false;
                if let Some(agent) = c.agent {
                    let agent = self.name(agent);
                    info!(call = %call, agent, "caller answered: ringing agent");
                    self.out.push_back(CenterOutput::Ring { call, agent, ring });
                }
            }
            ToAcd::CustomerAnswered => self.customer_answered(now, call),
            ToAcd::CustomerUnanswered(status) => {
                if let Some(c) = self.calls.remove(&call) {
                    info!(
                        call = %call,
                        status, "the customer did not answer the callback"
                    );
                    self.dialling.remove(&c.acd_call);
                    self.acd
                        .handle(now, AcdInput::CallbackUnanswered(c.acd_call));
                    self.out.push_back(CenterOutput::Released(call));
                }
            }
            ToAcd::Ended => self.ended(now, call),
        }
    }

    /// After every input and timer: the ACD's timers, the surge level, the ACD's decisions,
    /// announcements.
    fn step(&mut self, now: Instant) {
        if self.acd.poll_timeout().is_some_and(|t| t <= now) {
            self.acd.handle_timeout(now);
        }
        if now >= self.next_surge_check {
            self.next_surge_check = now + SURGE_CHECK;
            let change = self.surge.update(now);
            self.on_surge(now, change);
        }
        self.drain(now);
        self.announce(now);
    }

    fn name(&self, agent: AgentId) -> String {
        self.acd.model().agents[agent.0 as usize].name.clone()
    }

    fn ring_backstop(&self) -> Duration {
        self.acd.model().ring + Duration::from_secs(5)
    }

    fn registration(&mut self, now: Instant, user: &str, on: bool) {
        if on {
            self.registered.insert(user.to_owned());
        } else {
            self.registered.remove(user);
        }
        let Some(a) = self.acd.model().agent(user) else {
            return;
        };
        // Standby agents take calls only while their pools are called in.
        if self.standby.contains(&a) && !self.standby_on {
            return;
        }
        let state = self.acd.agent_state(a).clone();
        if on && state == AgentState::Offline && !self.forced_out.contains(&a) {
            info!(agent = user, "agent logged in (phone registered)");
            self.acd.handle(now, AcdInput::AgentLogin(a));
        } else if !on {
            info!(agent = user, "agent logged out (phone unregistered)");
            self.acd.handle(now, AcdInput::AgentLogout(a));
        }
    }

    fn connect_failed(&mut self, now: Instant, call: CallId, status: u16) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(agent) = c.agent.take() else {
            return;
        };
        let (acd_call, dialled) = (c.acd_call, c.dialled);
        info!(call = %call, agent = %self.name(agent), status, "agent's phone unreachable");
        if dialled {
            self.hang_up_callback(now, call, agent, acd_call);
        }
        if status == 480 {
            // The phone is not registered: logged out (the caller goes back to the queue
            // and the agent has not missed it).
            self.acd.handle(now, AcdInput::AgentLogout(agent));
        } else if !dialled {
            self.acd.handle(now, AcdInput::NoAnswer(agent, acd_call));
        }
    }

    fn ended(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        if c.dialled {
            if self.dialling.remove(&c.acd_call).is_some() {
                // Ended before the customer answered the callback.
                self.acd
                    .handle(now, AcdInput::CallbackUnanswered(c.acd_call));
            } else if let Some(a) = c.agent {
                self.acd.handle(now, AcdInput::CallEnded(a, c.acd_call));
            }
        } else if let (Some(a), true) = (c.agent, c.connected) {
            self.acd.handle(now, AcdInput::CallEnded(a, c.acd_call));
        } else if c.callback_pending {
            info!(
                call = %call,
                queue = c.queue,
                "caller hung up to be called back: they keep their place"
            );
            if let Some(dial) = c.dial_after {
                self.out.push_back(dial);
            }
        } else {
            info!(call = %call, queue = c.queue, "caller left the queue");
            self.acd.handle(now, AcdInput::CallAbandoned(c.acd_call));
        }
        self.out.push_back(CenterOutput::Released(call));
    }

    fn customer_answered(&mut self, now: Instant, call: CallId) {
        let ring = self.ring_backstop();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(agent) = c.agent else {
            return;
        };
        c.reachable = true;
        let acd_call = c.acd_call;
        self.dialling.remove(&acd_call);
        let name = self.name(agent);
        info!(
            call = %call,
            agent = name,
            "the customer answered the callback: ringing the reserved agent"
        );
        self.acd.handle(now, AcdInput::CallbackAnswered(acd_call));
        self.out.push_back(CenterOutput::Ring {
            call,
            agent: name,
            ring,
        });
    }

    /// A surge level change: an event in the log, the counters, and the standby pools called
    /// in at 5× or released below.
    fn on_surge(&mut self, now: Instant, change: Option<SurgeChange>) {
        let Some(c) = change else {
            return;
        };
        warn!(from = ?c.from, to = ?c.to, ratio = format!("{:.1}", c.ratio), "surge level changed");
        self.surge_changes += 1;
        // The level in force: a measured change under a level set by hand changes nothing.
        let want = self.surge_level() >= SurgeLevel::StandbyAgents;
        if want != self.standby_on && !self.standby.is_empty() {
            self.standby_on = want;
            if want {
                self.standby_activations += 1;
            }
            info!(on = want, agents = self.standby.len(), "standby pools");
            for a in self.standby.clone() {
                if want && self.registered.contains(&self.name(a)) {
                    self.acd.handle(now, AcdInput::AgentLogin(a));
                } else if !want {
                    self.acd.handle(now, AcdInput::AgentLogout(a));
                }
            }
        }
    }

    /// Admission for a caller just arrived in the ACD (the simulator's order: arrive, then
    /// decide from the queue and the caller's own wait estimate).
    fn admit(&mut self, call: CallId, queue_len: usize, door: bool) -> (Admission, Reason) {
        let situation = Situation {
            // Bandwidth is admitted at the door by the media plane's ledger (503 when the
            // node's or the pool's budget is spent): this call's media is counted already.
            call_bps: 0,
            headroom_bps: None,
            queue_len,
            ewt: self.acd.ewt(call),
            surge: self.surge_level(),
            self_served: !door,
        };
        // An agent free for the caller now takes them, whatever the queue or the surge.
        let (decision, reason) = if self.acd.offered_to(call).is_some() {
            (Admission::Admit, Reason::Normal)
        } else {
            admission::decide(&self.config.admission, &situation)
        };
        let label = match decision {
            Admission::Admit => "admit",
            Admission::AdmitWithCallbackOffer => "admit_with_callback_offer",
            Admission::SelfService => "self_service",
            Admission::OfferCallback => "offer_callback",
            Admission::Refuse { .. } => "refuse",
        };
        *self
            .admissions
            .entry((label, format!("{reason:?}").to_lowercase()))
            .or_default() += 1;
        info!(call = %call, decision = label, ?reason, queue_len, ewt_secs = ?situation.ewt.map(|d| d.as_secs()), "admission");
        (decision, reason)
    }

    /// A caller asks to join `queue` (or to be called back from it).
    fn enqueue(
        &mut self,
        now: Instant,
        mut caller: Caller,
        queue: &str,
        door: bool,
        callback: bool,
        context: Vec<(String, String)>,
    ) {
        let call = caller.call;
        let tier = caller.tier;
        let Some(q) = self.acd.model().queue(queue) else {
            warn!(call = %call, queue, "no such ACD queue: hanging up");
            self.out
                .push_back(CenterOutput::HangUp(call, "no such queue".into()));
            return;
        };
        let queue_len = self.acd.waiting(q);
        caller.queue = q;
        let mut held = Held {
            queue: queue.to_owned(),
            acd_call: call,
            reachable: true,
            dialled: false,
            callback_pending: false,
            callback_offer: false,
            agent: None,
            connected: false,
            next_announce: now,
            early: door,
            dial_after: None,
            context,
        };
        if callback && self.config.callback_uri.is_some() {
            // The caller asked for it: no admission, their place is kept; an agent free now
            // is reserved, not rung.
            info!(call = %call, queue, "callback requested");
            self.calls.insert(call, held);
            self.acd.handle(now, AcdInput::CallbackArrived(caller));
            return;
        }
        self.acd.handle(now, AcdInput::CallArrived(caller));
        // An agent free for the caller now: admitted whatever the queue (nobody waits).
        let (decision, reason) = self.admit(call, queue_len, door);
        match decision {
            Admission::Refuse { retry_after } => {
                self.acd.handle(now, AcdInput::CallAbandoned(call));
                // Whatever the ACD offered meanwhile goes back.
                self.drain(now);
                self.out.push_back(CenterOutput::ToCall(
                    call,
                    FromAcd::Refused {
                        text: REFUSAL.into(),
                        retry_after: retry_after.as_secs(),
                    },
                ));
                self.out.push_back(CenterOutput::Released(call));
                return;
            }
            Admission::AdmitWithCallbackOffer => {
                if let Some(m) = admission::compensation(&self.config.admission, reason) {
                    info!(
                        call = %call,
                        message = m,
                        "compensation promised to the caller"
                    );
                }
                held.callback_offer = self.config.callback_uri.is_some();
            }
            Admission::OfferCallback | Admission::SelfService => {
                // A caller from a queue route has no IVR to serve themselves in, and a
                // callback offer needs the IVR to take the request: they queue rather than
                // being lost.
                info!(call = %call, decision = ?decision, "not available here: the caller queues");
            }
            Admission::Admit => {}
        }
        // The controller answers a caller from a queue route (`door`) now.
        self.out
            .push_back(CenterOutput::ToCall(call, FromAcd::Admitted));
        info!(call = %call, queue, tier, door, "caller queued");
        self.calls.insert(call, held);
    }

    /// What became of the leg to the agent the ACD offered (or reserved for a callback).
    fn on_agent_leg(&mut self, now: Instant, call: CallId, event: LegEvent) {
        let Some(agent) = self.calls.get(&call).and_then(|c| c.agent) else {
            return;
        };
        let name = self.name(agent);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match event {
            // The call tells its end as `ToAcd::Ended`.
            LegEvent::Ringing | LegEvent::Ended => {}
            LegEvent::Answered => {
                c.connected = true;
                if c.reachable {
                    self.out.push_back(CenterOutput::ToCall(
                        call,
                        FromAcd::Connected {
                            agent: name.clone(),
                        },
                    ));
                }
                info!(call = %call, agent = name, "agent answered");
                if !c.dialled {
                    let acd_call = c.acd_call;
                    self.acd.handle(now, AcdInput::Answered(agent, acd_call));
                }
            }
            LegEvent::Failed(status) => {
                info!(call = %call, agent = name, status, "agent did not answer");
                let (acd_call, dialled) = (c.acd_call, c.dialled);
                if dialled {
                    self.hang_up_callback(now, call, agent, acd_call);
                } else {
                    c.agent = None;
                    self.acd.handle(now, AcdInput::NoAnswer(agent, acd_call));
                }
            }
        }
    }

    /// The agent reserved for a callback did not take it: the customer is told by the
    /// hang-up, the agent's call ends.
    fn hang_up_callback(&mut self, now: Instant, call: CallId, agent: AgentId, acd_call: CallId) {
        self.out.push_back(CenterOutput::HangUp(
            call,
            "the reserved agent did not answer".into(),
        ));
        self.calls.remove(&call);
        self.acd.handle(now, AcdInput::CallEnded(agent, acd_call));
        self.out.push_back(CenterOutput::Released(call));
    }

    /// Carries out the ACD's decisions.
    fn drain(&mut self, now: Instant) {
        let ring = self.ring_backstop();
        while let Some(out) = self.acd.poll_output() {
            match out {
                AcdOutput::Offer { call, agent } => {
                    let name = self.name(agent);
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.agent = Some(agent);
                        if c.early {
                            info!(call = %call, agent = name, "agent offered: rings once the caller is answered");
                            continue;
                        }
                    }
                    info!(call = %call, agent = name, "ringing agent");
                    self.out.push_back(CenterOutput::Ring {
                        call,
                        agent: name,
                        ring,
                    });
                }
                AcdOutput::Retract { call, agent } => {
                    info!(call = %call, agent = %self.name(agent), "agent rang out");
                    if let Some(placed) = self.dialling.remove(&call) {
                        // The customer did not answer the callback in time.
                        self.calls.remove(&placed);
                        self.out.push_back(CenterOutput::HangUp(
                            placed,
                            "callback not answered".into(),
                        ));
                        self.out.push_back(CenterOutput::Released(placed));
                        continue;
                    }
                    let mut rang = true;
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.agent = None;
                        c.next_announce = now;
                        rang = !c.early;
                        // A callback not placed yet (the caller still on the line) is off.
                        c.dial_after = None;
                    }
                    if rang {
                        self.out.push_back(CenterOutput::StopRinging(call));
                    }
                }
                AcdOutput::Overflow { call, step, pool } => {
                    info!(call = %call, step, pool = %self.acd.model().pools[pool.0 as usize].name, "overflow to the next pool");
                }
                AcdOutput::AgentAway { agent, reason } => {
                    info!(agent = %self.name(agent), reason, "agent set away");
                }
                AcdOutput::Dial {
                    call,
                    agent,
                    number,
                } => {
                    let queue = self.callback_queues.remove(&call).unwrap_or_default();
                    match &self.config.callback_uri {
                        Some(t) => {
                            let uri = t.replace("{number}", &number);
                            let dial = CenterOutput::Originate {
                                callback: call,
                                agent,
                                queue,
                                uri,
                                ring,
                            };
                            // The customer is still on the line (hearing the goodbye): dial
                            // once they have hung up, or they would be busy.
                            let name = self.name(agent);
                            if let Some(c) = self.calls.get_mut(&call) {
                                info!(call = %call, agent = name, "agent reserved: the customer is called back after hanging up");
                                c.dial_after = Some(dial);
                                continue;
                            }
                            info!(call = %call, agent = name, "calling the customer back");
                            self.out.push_back(dial);
                        }
                        None => self.acd.handle(now, AcdInput::CallbackUnanswered(call)),
                    }
                }
                AcdOutput::CallbackScheduled { call } => {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.callback_pending = true;
                        self.callback_queues.insert(call, c.queue.clone());
                        // Taken while holding (not in the IVR): say so and hang up.
                        if c.callback_offer && c.reachable {
                            self.out.push_back(CenterOutput::ToCall(
                                call,
                                FromAcd::Goodbye(GOODBYE.into()),
                            ));
                        }
                    }
                    info!(call = %call, "callback scheduled: the caller may hang up");
                }
                AcdOutput::CallbackRefused { call } => {
                    // One pending callback per number: the earlier one stands.
                    info!(
                        call = %call,
                        "callback refused: one is pending for this number already"
                    );
                    match self.calls.get_mut(&call) {
                        // A holding caller who pressed 1: they keep their place in line.
                        Some(c) if c.callback_offer && c.reachable => {
                            c.callback_offer = false;
                            self.out.push_back(CenterOutput::ToCall(
                                call,
                                FromAcd::Announce(ALREADY_BOOKED.into()),
                            ));
                        }
                        // Asked in the IVR, which says its goodbye: the earlier callback
                        // stands and the ACD never queued this one.
                        Some(_) => {
                            self.calls.remove(&call);
                            self.out.push_back(CenterOutput::Released(call));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Tells waiting callers their place in line and the expected wait, every
    /// `announce_every`.
    fn announce(&mut self, now: Instant) {
        for (call, c) in &mut self.calls {
            if c.agent.is_some()
                || c.next_announce > now
                || c.callback_pending
                || c.dialled
                || !c.reachable
            {
                continue;
            }
            c.next_announce = now + self.config.announce_every;
            let Some(position) = self.acd.position(*call) else {
                continue;
            };
            let mut text = wait_text(position, self.acd.ewt(*call));
            if c.callback_offer {
                text.push_str(" To be called back instead, press 1.");
            }
            info!(call = %call, position, text, "queue announcement");
            self.out
                .push_back(CenterOutput::ToCall(*call, FromAcd::Announce(text)));
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
