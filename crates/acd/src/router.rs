//! The ACD core, sans-IO: agent states, waiting callers, weighted skill routing, priority with
//! ageing, overflow steps. `handle(now, Input)` and `handle_timeout(now)` in; `poll_output()`
//! and `poll_timeout()` out.
//!
//! Indexes keep every decision logarithmic: for each (queue, pool) the available agents who
//! can take that queue's calls, best score first (ties: longest idle); for each (queue,
//! overflow step) the waiting callers in order of virtual arrival (arrival minus their tier's
//! credit, so a VIP goes ahead of callers who came a little earlier but no tier ever starves).
//!
//! ```text
//!   CallArrived ──► best available eligible agent? ──► Offer ──► Answered / NoAnswer / ring timeout
//!                        └─ none: wait; overflow timer widens the pools step by step
//!   agent free ───► best waiting caller it may take? ──► Offer
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::model::{
    AgentConfig, AgentId, CallId, Caller, Model, ModelError, PoolId, QueueId, Strategy,
};

/// Weight of each leaving caller in a queue's measured share of callers who stay.
const STAY_WEIGHT: f64 = 0.02;

/// What happens to the ACD.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// An agent logs in (available).
    AgentLogin(AgentId),
    /// An agent logs out.
    AgentLogout(AgentId),
    /// An agent takes a break (from available or wrap-up).
    AgentAway(AgentId, String),
    /// An agent is ready again.
    AgentReady(AgentId),
    /// A caller joins a queue.
    CallArrived(Caller),
    /// A caller hung up before being answered.
    CallAbandoned(CallId),
    /// The offered agent answered.
    Answered(AgentId, CallId),
    /// The offered agent did not answer (or refused).
    NoAnswer(AgentId, CallId),
    /// The agent's call ended.
    CallEnded(AgentId, CallId),
    /// A waiting caller asks to be called back instead of holding (virtual hold): they hang
    /// up and keep their place.
    CallbackRequested(CallId),
    /// A caller who asks from the start to be called back (the IVR's callback node) joins a
    /// queue as a callback, never offered to ring: refused ([`Output::CallbackRefused`], and
    /// not queued) when one is pending for their number already.
    CallbackArrived(Caller),
    /// The customer answered Crest's callback: bridge them to the reserved agent.
    CallbackAnswered(CallId),
    /// The customer did not answer the callback.
    CallbackUnanswered(CallId),
}

/// What the ACD decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Ring `agent` for `call`.
    Offer {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// Stop ringing `agent` for `call` (it rang out, or the caller left).
    Retract {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// A waiting caller's eligibility widened to one more pool.
    Overflow {
        /// The call.
        call: CallId,
        /// The step (1 = first neighbour).
        step: usize,
        /// The pool added.
        pool: PoolId,
    },
    /// The callback's turn came: `agent` is reserved; dial the customer at `number`.
    Dial {
        /// The call.
        call: CallId,
        /// The reserved agent.
        agent: AgentId,
        /// The customer's number.
        number: String,
    },
    /// A callback request was taken: the caller may hang up and keeps their place.
    CallbackScheduled {
        /// The call.
        call: CallId,
    },
    /// A callback request was refused (one pending callback per number, or the call is not
    /// waiting); the caller stays on the line.
    CallbackRefused {
        /// The call.
        call: CallId,
    },
    /// An agent was set away.
    AgentAway {
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: String,
    },
}

/// A caller the ACD holds, as a wallboard lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCaller {
    /// The call.
    pub call: CallId,
    /// Its queue.
    pub queue: QueueId,
    /// The caller's number.
    pub number: String,
    /// How long they have waited.
    pub waited: Duration,
    /// An agent rings for them (or is held for their callback).
    pub offered: bool,
    /// Waiting by callback (they hung up and keep their place).
    pub callback: bool,
}

/// An agent's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Logged out.
    Offline,
    /// Waiting for a call since the instant.
    Available(Instant),
    /// A call is offered until the instant.
    Ringing(CallId, Instant),
    /// On a call.
    OnCall(CallId),
    /// After-call work until the instant.
    WrapUp(Instant),
    /// On a break, with the reason.
    Away(String),
}

#[derive(Debug)]
struct AgentRt {
    state: AgentState,
    /// When the agent was last offered a call (the epoch before the first).
    last_offer: Instant,
    misses: u32,
    load: f64,
    load_at: Option<Instant>,
    /// A logout or break asked for during a call: taken when the call ends.
    after_call: Option<AgentState>,
}

impl AgentRt {
    /// An agent logged out, never offered a call.
    fn offline(now: Instant) -> Self {
        Self {
            last_offer: now,
            state: AgentState::Offline,
            misses: 0,
            load: 0.0,
            load_at: None,
            after_call: None,
        }
    }
}

#[derive(Debug)]
struct CallRt {
    caller: Caller,
    arrived: Instant,
    /// Virtual arrival (µs since the ACD's epoch, tier credit taken off).
    key: i64,
    /// Overflow steps taken: eligible pools are the queue's first `step + 1`.
    step: usize,
    offered: Option<AgentId>,
    /// Agents who let this call ring out.
    missed_by: Vec<AgentId>,
    /// The wait predicted on arrival (None: nobody staffed).
    predicted: Option<Duration>,
    /// Waiting by callback (the caller hung up and is to be dialled).
    callback: bool,
    /// The caller's language (primary tag), if known.
    language: Option<String>,
}

impl CallRt {
    /// Whether `agent` (`a`) may be offered this call: they have not let it ring out, it is
    /// not directed at someone else, and they take its language.
    fn may_go_to(&self, a: AgentId, agent: &crate::model::Agent) -> bool {
        !self.missed_by.contains(&a)
            && self.caller.agent.is_none_or(|only| only == a)
            && agent.speaks(self.language.as_deref())
    }
}

/// An answered call until it ends: for handle times.
#[derive(Debug, Clone, Copy)]
struct Connected {
    agent: AgentId,
    queue: QueueId,
    answered: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring(AgentId, CallId),
    Dial(AgentId, CallId),
    WrapUp(AgentId),
    Overflow(CallId, usize),
}

/// Counters for metrics and the simulator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Calls offered to an agent.
    pub offers: u64,
    /// Offers answered.
    pub answered: u64,
    /// Offers not answered.
    pub missed: u64,
    /// Overflow steps taken.
    pub overflows: u64,
    /// Callers who hung up while waiting or ringing.
    pub abandoned: u64,
    /// Agents set away for missed calls.
    pub set_away: u64,
    /// Callbacks scheduled.
    pub callbacks: u64,
    /// Callbacks the customer did not answer.
    pub callbacks_unanswered: u64,
    /// Answered calls that had a wait estimate.
    pub ewt_samples: u64,
    /// Sum of |actual wait − estimate|, seconds.
    pub ewt_abs_error_secs: f64,
    /// Sum of (actual wait − estimate), seconds (positive: estimates too short).
    pub ewt_bias_secs: f64,
}

/// Upper bounds (seconds) of the wait histogram's buckets: service levels are read at these
/// thresholds (80/20 is `le = 20`).
pub const WAIT_BUCKETS: [u64; 8] = [5, 10, 15, 20, 30, 60, 120, 300];

/// One queue's callers: how long the answered ones waited, how many gave up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// Callers answered by an agent.
    pub answered: u64,
    /// Callers who hung up before an agent answered.
    pub abandoned: u64,
    /// Sum of the answered callers' waits, seconds (ASA = this / answered).
    pub wait_sum_secs: f64,
    /// Answered callers who waited at most `WAIT_BUCKETS[i]` seconds (cumulative).
    pub waited_at_most: [u64; WAIT_BUCKETS.len()],
}

impl QueueStats {
    fn answered(&mut self, waited: f64) {
        self.answered += 1;
        self.wait_sum_secs += waited;
        for (n, b) in self.waited_at_most.iter_mut().zip(WAIT_BUCKETS) {
            *n += u64::from(waited <= b as f64);
        }
    }

    fn add(&mut self, o: &Self) {
        self.answered += o.answered;
        self.abandoned += o.abandoned;
        self.wait_sum_secs += o.wait_sum_secs;
        for (n, m) in self.waited_at_most.iter_mut().zip(o.waited_at_most) {
            *n += m;
        }
    }

    /// Average speed of answer.
    pub fn asa(&self) -> Option<Duration> {
        (self.answered > 0)
            .then(|| Duration::from_secs_f64(self.wait_sum_secs / self.answered as f64))
    }

    /// Share of answered callers who waited at most `secs` (one of `WAIT_BUCKETS`).
    pub fn service_level(&self, secs: u64) -> Option<f64> {
        let i = WAIT_BUCKETS.iter().position(|b| *b == secs)?;
        (self.answered > 0).then(|| self.waited_at_most[i] as f64 / self.answered as f64)
    }
}

/// How far back [`Acd::recent_stats`] looks: the minute now and the 14 before it.
pub const RECENT_MINUTES: u64 = 15;

/// One queue's figures per minute, for the last [`RECENT_MINUTES`].
#[derive(Debug, Clone, Default)]
struct Recent {
    /// `[minute % RECENT_MINUTES]`: the minute (since the ACD's epoch) and its figures.
    slots: [(u64, QueueStats); RECENT_MINUTES as usize],
}

impl Recent {
    fn at(&mut self, minute: u64) -> &mut QueueStats {
        let slot = &mut self.slots[(minute % RECENT_MINUTES) as usize];
        if slot.0 != minute {
            *slot = (minute, QueueStats::default());
        }
        &mut slot.1
    }

    fn sum(&self, minute: u64) -> QueueStats {
        let mut out = QueueStats::default();
        for (m, s) in &self.slots {
            if *m <= minute && minute - m < RECENT_MINUTES {
                out.add(s);
            }
        }
        out
    }
}

type AgentKey = (i64, Instant, AgentId);

/// How long an agent is held for a callback while Crest dials the customer.
const DIAL_WINDOW: Duration = Duration::from_secs(60);

/// The ACD (see the module docs).
#[derive(Debug)]
pub struct Acd {
    model: Model,
    epoch: Instant,
    agents: Vec<AgentRt>,
    calls: HashMap<CallId, CallRt>,
    /// Answered calls, until they end (a call id is not taken again meanwhile).
    connected: HashMap<CallId, Connected>,
    /// Measured average handle time per queue (talk + wrap-up), seconds.
    aht: Vec<f64>,
    /// Measured share of each queue's callers who stay until answered (the rest hang up),
    /// an exponentially weighted average over the callers leaving the queue.
    stay: Vec<f64>,
    /// Pending callbacks by number (one each).
    callbacks: HashMap<String, CallId>,
    /// `[queue][step]`: waiting callers by virtual arrival.
    waiting: Vec<Vec<BTreeSet<(i64, CallId)>>>,
    /// `(queue, pool)`: available agents, best first.
    available: HashMap<(QueueId, PoolId), BTreeSet<AgentKey>>,
    /// The queues each agent can serve, with the position of its pool in that queue's order.
    agent_queues: Vec<Vec<(QueueId, usize)>>,
    /// `[queue][pool position]`: agents logged in and not away.
    staffed: Vec<Vec<u32>>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    out: VecDeque<Output>,
    counters: Counters,
    /// Per queue (index = `QueueId`).
    queue_stats: Vec<QueueStats>,
    /// Per queue: the last minutes'.
    recent: Vec<Recent>,
}

impl Acd {
    /// An ACD over `model`; `now` is its epoch.
    pub fn new(now: Instant, model: Model) -> Self {
        let agent_queues = (0..model.agents.len())
            .map(|i| queues_of(&model, AgentId(i as u32)))
            .collect();
        Self {
            epoch: now,
            agents: model.agents.iter().map(|_| AgentRt::offline(now)).collect(),
            calls: HashMap::new(),
            connected: HashMap::new(),
            aht: model.queues.iter().map(|q| q.aht.as_secs_f64()).collect(),
            stay: vec![1.0; model.queues.len()],
            callbacks: HashMap::new(),
            waiting: model
                .queues
                .iter()
                .map(|q| vec![BTreeSet::new(); q.pools.len()])
                .collect(),
            available: HashMap::new(),
            staffed: model
                .queues
                .iter()
                .map(|q| vec![0; q.pools.len()])
                .collect(),
            agent_queues,
            timers: BinaryHeap::new(),
            out: VecDeque::new(),
            counters: Counters::default(),
            queue_stats: vec![QueueStats::default(); model.queues.len()],
            recent: vec![Recent::default(); model.queues.len()],
            model,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Puts an agent's entry (pool, skills, rating, languages) in force at once, as an
    /// admin edits it: a new agent is added logged out; an agent already known keeps its
    /// state, its call and its place (an available agent is offered at once a waiting caller
    /// its new skills or pool let it take; a ringing or talking agent's call goes on). A
    /// retired agent of that name is brought back, logged out.
    pub fn put_agent(&mut self, now: Instant, spec: &AgentConfig) -> Result<AgentId, ModelError> {
        self.model.check_agent("agent", spec)?;
        let agent = self.model.resolve_agent(spec);
        let a = match self.model.slot(&spec.name) {
            Some(a) => a,
            None => {
                self.model.agents.push(agent.clone());
                self.agents.push(AgentRt::offline(now));
                self.agent_queues.push(Vec::new());
                AgentId((self.agents.len() - 1) as u32)
            }
        };
        let i = a.0 as usize;
        let state = self.agents[i].state.clone();
        // Out of the indexes and the staffing counts under the old entry, back in under the
        // new one.
        self.unindex(a);
        let staffed = !matches!(state, AgentState::Offline | AgentState::Away(_));
        self.restaff(a, staffed, false);
        self.model.agents[i] = agent;
        self.agent_queues[i] = queues_of(&self.model, a);
        self.restaff(a, staffed, true);
        if let AgentState::Available(since) = state {
            match self.best_caller_for(a) {
                Some(call) => self.offer(now, call, a),
                None => self.index_agent(a, since, true),
            }
        }
        Ok(a)
    }

    /// Takes an agent out of service (removed by an admin): logged out at once, or when
    /// the call they are on ends; never offered a call again unless put back.
    pub fn retire_agent(&mut self, now: Instant, a: AgentId) {
        self.leave(now, a, AgentState::Offline);
        self.model.agents[a.0 as usize].retired = true;
    }

    fn restaff(&mut self, a: AgentId, staffed: bool, add: bool) {
        if !staffed {
            return;
        }
        for &(q, pos) in &self.agent_queues[a.0 as usize] {
            let n = &mut self.staffed[q.0 as usize][pos];
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// An agent's state.
    pub fn agent_state(&self, a: AgentId) -> &AgentState {
        &self.agents[a.0 as usize].state
    }

    /// An agent's recent load (share of time busy, 0..1).
    pub fn agent_load(&self, a: AgentId) -> f64 {
        self.agents[a.0 as usize].load
    }

    /// Callers waiting (not ringing an agent) in `queue`.
    pub fn waiting(&self, queue: QueueId) -> usize {
        self.waiting[queue.0 as usize]
            .iter()
            .map(BTreeSet::len)
            .sum()
    }

    /// Agents available for `queue` in `pool`.
    pub fn available(&self, queue: QueueId, pool: PoolId) -> usize {
        self.available.get(&(queue, pool)).map_or(0, BTreeSet::len)
    }

    /// Queue `q`'s callers: answered, abandoned, their waits.
    pub fn queue_stats(&self, q: QueueId) -> Option<&QueueStats> {
        self.queue_stats.get(q.0 as usize)
    }

    /// Queue `q`'s callers over the last [`RECENT_MINUTES`] (whole minutes since the ACD's
    /// epoch: the window is 14 to 15 minutes long) as seen at `now`.
    pub fn recent_stats(&self, now: Instant, q: QueueId) -> Option<QueueStats> {
        let minute = self.minute(now);
        self.recent.get(q.0 as usize).map(|r| r.sum(minute))
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / 60
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The next decision.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Takes an input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::AgentLogin(a) | Input::AgentReady(a) => {
                if self.model.agents[a.0 as usize].retired {
                    return;
                }
                self.agents[a.0 as usize].after_call = None;
                if matches!(
                    self.agent(a).state,
                    AgentState::Offline | AgentState::Away(_) | AgentState::WrapUp(_)
                ) {
                    self.agents[a.0 as usize].misses = 0;
                    self.make_available(now, a);
                }
            }
            Input::AgentLogout(a) => self.leave(now, a, AgentState::Offline),
            Input::AgentAway(a, reason) => self.leave(now, a, AgentState::Away(reason)),
            Input::CallArrived(caller) => self.arrive(now, caller, false),
            Input::CallbackArrived(caller) => self.arrive(now, caller, true),
            Input::CallAbandoned(call) => self.abandon(now, call),
            Input::CallbackRequested(call) => self.request_callback(call),
            Input::CallbackAnswered(call) => {
                if let Some(a) = self.reserved_for_callback(call) {
                    self.forget_callback(call);
                    self.handle(now, Input::Answered(a, call));
                }
            }
            Input::CallbackUnanswered(call) => {
                if let Some(a) = self.reserved_for_callback(call) {
                    self.callback_failed(now, a, call);
                }
            }
            Input::Answered(a, call) => {
                if self.agent(a).state.ringing_for() == Some(call) {
                    self.set_state(now, a, AgentState::OnCall(call));
                    self.agents[a.0 as usize].misses = 0;
                    if let Some(c) = self.calls.remove(&call) {
                        let waited = now.saturating_duration_since(c.arrived).as_secs_f64();
                        let (qi, minute) = (c.caller.queue.0 as usize, self.minute(now));
                        if let Some(q) = self.queue_stats.get_mut(qi) {
                            q.answered(waited);
                            self.recent[qi].at(minute).answered(waited);
                        }
                        let stay = &mut self.stay[c.caller.queue.0 as usize];
                        *stay += STAY_WEIGHT * (1.0 - *stay);
                        if let Some(p) = c.predicted {
                            let err = now.saturating_duration_since(c.arrived).as_secs_f64()
                                - p.as_secs_f64();
                            self.counters.ewt_samples += 1;
                            self.counters.ewt_abs_error_secs += err.abs();
                            self.counters.ewt_bias_secs += err;
                        }
                        self.connected.insert(
                            call,
                            Connected {
                                agent: a,
                                queue: c.caller.queue,
                                answered: now,
                            },
                        );
                    }
                    self.counters.answered += 1;
                }
            }
            Input::NoAnswer(a, call) => {
                let callback = self.calls.get(&call).is_some_and(|c| c.callback);
                if !callback && self.agent(a).state.ringing_for() == Some(call) {
                    self.ring_out(now, a, call);
                }
            }
            Input::CallEnded(a, call) => {
                if self.agent(a).state == AgentState::OnCall(call) {
                    if let Some(c) = self.connected.remove(&call) {
                        debug_assert_eq!(c.agent, a);
                        // Handle time = talk + wrap-up, averaged over about 50 calls.
                        let handle = (now.saturating_duration_since(c.answered)
                            + self.model.wrap_up)
                            .as_secs_f64();
                        let aht = &mut self.aht[c.queue.0 as usize];
                        *aht += (handle - *aht) / 50.0;
                    }
                    if let Some(state) = self.agents[a.0 as usize].after_call.take() {
                        // Logged out or on a break while talking: no wrap-up, no next call.
                        self.set_state(now, a, state);
                        return;
                    }
                    let until = now + self.model.wrap_up;
                    self.set_state(now, a, AgentState::WrapUp(until));
                    self.timers.push(Reverse((until, Timer::WrapUp(a))));
                }
            }
        }
    }

    /// Fires what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((t, timer))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Ring(a, call) => {
                    if self.agent(a).state == AgentState::Ringing(call, t) {
                        self.out.push_back(Output::Retract { call, agent: a });
                        self.ring_out(now, a, call);
                    }
                }
                Timer::Dial(a, call) => {
                    if self.agent(a).state == AgentState::Ringing(call, t) {
                        self.out.push_back(Output::Retract { call, agent: a });
                        self.callback_failed(now, a, call);
                    }
                }
                Timer::WrapUp(a) => {
                    if self.agent(a).state == AgentState::WrapUp(t) {
                        self.make_available(now, a);
                    }
                }
                Timer::Overflow(call, step) => self.overflow(now, call, step),
            }
        }
    }

    fn agent(&self, a: AgentId) -> &AgentRt {
        &self.agents[a.0 as usize]
    }

    /// Changes an agent's state, folding the time since the last change into its load.
    fn set_state(&mut self, now: Instant, a: AgentId, state: AgentState) {
        let window = self.model.load_window.as_secs_f64();
        let staffed = |s: &AgentState| !matches!(s, AgentState::Offline | AgentState::Away(_));
        let (was, is) = (staffed(&self.agents[a.0 as usize].state), staffed(&state));
        if was != is {
            self.restaff(a, true, is);
        }
        let rt = &mut self.agents[a.0 as usize];
        let busy = matches!(
            rt.state,
            AgentState::Ringing(..) | AgentState::OnCall(_) | AgentState::WrapUp(_)
        );
        if let Some(at) = rt.load_at {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            let alpha = 1.0 - (-dt / window).exp();
            rt.load += alpha * (f64::from(u8::from(busy)) - rt.load);
        }
        rt.load_at = Some(now);
        rt.state = state;
    }

    fn agent_key(&self, q: QueueId, a: AgentId, since: Instant) -> AgentKey {
        match self.model.strategy {
            Strategy::Weighted => {}
            Strategy::LongestIdle => return (0, since, a),
            Strategy::Fifo => return (0, self.agents[a.0 as usize].last_offer, a),
        }
        let w = self.model.queues[q.0 as usize].weights;
        let spec = &self.model.agents[a.0 as usize];
        let score = w.problem_type * spec.level(self.model.queues[q.0 as usize].skill)
            + w.load * (1.0 - self.agent(a).load)
            + w.rating * spec.rating;
        (-(score * 1e9) as i64, since, a)
    }

    fn index_agent(&mut self, a: AgentId, since: Instant, insert: bool) {
        let pool = self.model.agents[a.0 as usize].pool;
        for i in 0..self.agent_queues[a.0 as usize].len() {
            let (q, _) = self.agent_queues[a.0 as usize][i];
            let key = self.agent_key(q, a, since);
            let set = self.available.entry((q, pool)).or_default();
            if insert {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
    }

    /// Takes an agent out of the available indexes (whatever its state was).
    fn unindex(&mut self, a: AgentId) {
        if let AgentState::Available(since) = self.agent(a).state {
            self.index_agent(a, since, false);
        }
    }

    fn make_available(&mut self, now: Instant, a: AgentId) {
        self.unindex(a);
        self.set_state(now, a, AgentState::Available(now));
        match self.best_caller_for(a) {
            Some(call) => self.offer(now, call, a),
            None => self.index_agent(a, now, true),
        }
    }

    fn leave(&mut self, now: Instant, a: AgentId, state: AgentState) {
        match self.agent(a).state.clone() {
            // Taken when the call ends.
            AgentState::OnCall(_) => self.agents[a.0 as usize].after_call = Some(state),
            AgentState::Ringing(call, _) => {
                self.out.push_back(Output::Retract { call, agent: a });
                self.set_state(now, a, state);
                self.requeue(now, call);
            }
            _ => {
                self.unindex(a);
                self.set_state(now, a, state);
            }
        }
    }

    fn arrive(&mut self, now: Instant, caller: Caller, callback: bool) {
        if self.calls.contains_key(&caller.call)
            || self.connected.contains_key(&caller.call)
            || caller.queue.0 as usize >= self.model.queues.len()
        {
            return;
        }
        let credit = if self.model.strategy == Strategy::Fifo {
            Duration::ZERO
        } else {
            self.model
                .tier_credit
                .get(usize::from(caller.tier))
                .or(self.model.tier_credit.last())
                .copied()
                .unwrap_or_default()
        };
        let key = now.saturating_duration_since(self.epoch).as_micros() as i64
            - credit.as_micros() as i64;
        let call = caller.call;
        let q = caller.queue;
        let language = caller
            .language
            .as_deref()
            .map(crate::model::primary_language);
        self.calls.insert(
            call,
            CallRt {
                language,
                caller,
                arrived: now,
                key,
                step: 0,
                offered: None,
                missed_by: Vec::new(),
                predicted: None,
                callback: false,
            },
        );
        if callback {
            self.request_callback(call);
            if !self.calls.get(&call).is_some_and(|c| c.callback) {
                self.calls.remove(&call);
                return;
            }
        }
        let pools = &self.model.queues[q.0 as usize].pools;
        if pools.len() > 1 {
            let after = self.model.pools[pools[0].0 as usize].overflow_after;
            self.timers
                .push(Reverse((now + after, Timer::Overflow(call, 1))));
        }
        self.route_call(now, call);
        let predicted = self.ewt(call);
        if let Some(c) = self.calls.get_mut(&call) {
            c.predicted = predicted;
        }
    }

    /// The estimated wait of a waiting `call`: the callers ahead of it in its queue (by
    /// virtual arrival, whatever their overflow step) who will still be there (the measured
    /// share that stays until answered: under heavy abandonment many ahead hang up), plus
    /// itself, times the queue's average handle time, shared by the agents staffed for it
    /// (logged in, not away) in its eligible pools. Zero once it is ringing an agent; `None`
    /// when nobody is staffed.
    pub fn ewt(&self, call: CallId) -> Option<Duration> {
        let c = self.calls.get(&call)?;
        if c.offered.is_some() {
            return Some(Duration::ZERO);
        }
        let q = c.caller.queue;
        let ahead = self.position(call)? - 1;
        let staffed: u32 = self.staffed[q.0 as usize][..=c.step].iter().sum();
        if staffed == 0 {
            return None;
        }
        let aht = self.aht[q.0 as usize];
        let stay = self.stay[q.0 as usize];
        Some(Duration::from_secs_f64(
            (ahead as f64 * stay + 1.0) * aht / staffed as f64,
        ))
    }

    /// The agent `call` is offered to (ringing, or reserved for its callback), if any.
    pub fn offered_to(&self, call: CallId) -> Option<AgentId> {
        self.calls.get(&call).and_then(|c| c.offered)
    }

    /// A waiting caller's place in its queue (1: next), counting everyone ahead of it in
    /// the queue's order (priority credit and waiting time).
    pub fn position(&self, call: CallId) -> Option<usize> {
        let c = self.calls.get(&call)?;
        let ahead: usize = self.waiting[c.caller.queue.0 as usize]
            .iter()
            .map(|set| set.range(..(c.key, call)).count())
            .sum();
        Some(ahead + 1)
    }

    /// The measured average handle time of `queue`.
    pub fn aht(&self, queue: QueueId) -> Duration {
        Duration::from_secs_f64(self.aht[queue.0 as usize])
    }

    /// Offers `call` to its best eligible available agent, or puts it in the waiting sets.
    fn route_call(&mut self, now: Instant, call: CallId) {
        match self.best_agent_for(call) {
            Some(a) => self.offer(now, call, a),
            None => {
                let c = &self.calls[&call];
                let (q, step, key) = (c.caller.queue, c.step, c.key);
                self.waiting[q.0 as usize][step].insert((key, call));
            }
        }
    }

    fn best_agent_for(&self, call: CallId) -> Option<AgentId> {
        let c = self.calls.get(&call)?;
        let q = c.caller.queue;
        let pools = &self.model.queues[q.0 as usize].pools[..=c.step];
        pools
            .iter()
            .filter_map(|p| {
                self.available
                    .get(&(q, *p))?
                    .iter()
                    .find(|(_, _, a)| c.may_go_to(*a, &self.model.agents[a.0 as usize]))
            })
            .min()
            .map(|(_, _, a)| *a)
    }

    fn best_caller_for(&self, a: AgentId) -> Option<CallId> {
        let agent = &self.model.agents[a.0 as usize];
        self.agent_queues[a.0 as usize]
            .iter()
            .filter_map(|&(q, pos)| {
                self.waiting[q.0 as usize][pos..]
                    .iter()
                    .filter_map(|set| set.iter().find(|(_, c)| self.calls[c].may_go_to(a, agent)))
                    .min()
            })
            .min()
            .map(|(_, c)| *c)
    }

    fn offer(&mut self, now: Instant, call: CallId, a: AgentId) {
        self.unindex(a);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        self.waiting[c.caller.queue.0 as usize][c.step].remove(&(c.key, call));
        c.offered = Some(a);
        self.agents[a.0 as usize].last_offer = now;
        if c.callback {
            // The agent is held while Crest dials the customer (a minute at most).
            let number = c.caller.number.clone();
            let until = now + DIAL_WINDOW;
            self.set_state(now, a, AgentState::Ringing(call, until));
            self.timers.push(Reverse((until, Timer::Dial(a, call))));
            self.out.push_back(Output::Dial {
                call,
                agent: a,
                number,
            });
            return;
        }
        let until = now + self.model.ring;
        self.set_state(now, a, AgentState::Ringing(call, until));
        self.timers.push(Reverse((until, Timer::Ring(a, call))));
        self.counters.offers += 1;
        self.out.push_back(Output::Offer { call, agent: a });
    }

    /// The agent let the call ring out: skipped for this call, away after too many in a row.
    fn ring_out(&mut self, now: Instant, a: AgentId, call: CallId) {
        self.counters.missed += 1;
        let rt = &mut self.agents[a.0 as usize];
        rt.misses += 1;
        let misses = rt.misses;
        if let Some(c) = self.calls.get_mut(&call) {
            c.missed_by.push(a);
        }
        if misses >= self.model.max_misses {
            let reason = format!("missed {misses} calls in a row");
            self.set_state(now, a, AgentState::Away(reason.clone()));
            self.counters.set_away += 1;
            self.out.push_back(Output::AgentAway { agent: a, reason });
            self.requeue(now, call);
        } else {
            // The call first (the agent is excluded from it), then the agent.
            self.set_state(now, a, AgentState::WrapUp(now));
            self.requeue(now, call);
            self.make_available(now, a);
        }
    }

    fn requeue(&mut self, now: Instant, call: CallId) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.offered = None;
            self.route_call(now, call);
        }
    }

    fn abandon(&mut self, now: Instant, call: CallId) {
        self.forget_callback(call);
        let Some(c) = self.calls.remove(&call) else {
            return;
        };
        self.counters.abandoned += 1;
        let (qi, minute) = (c.caller.queue.0 as usize, self.minute(now));
        if let Some(q) = self.queue_stats.get_mut(qi) {
            q.abandoned += 1;
            self.recent[qi].at(minute).abandoned += 1;
        }
        // Callers who leave at once (served by self-service, refused) say nothing about
        // patience; those who waited and gave up do.
        if now.saturating_duration_since(c.arrived) >= Duration::from_secs(1) {
            let stay = &mut self.stay[c.caller.queue.0 as usize];
            *stay -= STAY_WEIGHT * *stay;
        }
        self.waiting[c.caller.queue.0 as usize][c.step].remove(&(c.key, call));
        if let Some(a) = c.offered {
            self.out.push_back(Output::Retract { call, agent: a });
            self.set_state(now, a, AgentState::WrapUp(now));
            self.make_available(now, a);
        }
    }

    fn request_callback(&mut self, call: CallId) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let number = c.caller.number.clone();
        if c.offered.is_some()
            || c.callback
            || number.is_empty()
            || self.callbacks.contains_key(&number)
        {
            self.out.push_back(Output::CallbackRefused { call });
            return;
        }
        c.callback = true;
        self.callbacks.insert(number, call);
        self.counters.callbacks += 1;
        self.out.push_back(Output::CallbackScheduled { call });
    }

    /// The agent held for `call`'s callback while Crest dials the customer.
    fn reserved_for_callback(&self, call: CallId) -> Option<AgentId> {
        self.calls
            .get(&call)
            .filter(|c| c.callback)
            .and_then(|c| c.offered)
    }

    fn forget_callback(&mut self, call: CallId) {
        if let Some(c) = self.calls.get(&call).filter(|c| c.callback) {
            self.callbacks.remove(&c.caller.number);
        }
    }

    /// The customer did not pick up: the callback is dropped and the agent freed.
    fn callback_failed(&mut self, now: Instant, a: AgentId, call: CallId) {
        self.forget_callback(call);
        self.calls.remove(&call);
        self.counters.callbacks_unanswered += 1;
        self.set_state(now, a, AgentState::WrapUp(now));
        self.make_available(now, a);
    }

    fn overflow(&mut self, now: Instant, call: CallId, step: usize) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.step + 1 != step {
            return;
        }
        let q = c.caller.queue;
        let pools = &self.model.queues[q.0 as usize].pools;
        let waiting = c.offered.is_none();
        if waiting {
            self.waiting[q.0 as usize][c.step].remove(&(c.key, call));
        }
        c.step = step;
        let pool = pools[step];
        if step + 1 < pools.len() {
            let after = self.model.pools[pool.0 as usize].overflow_after;
            self.timers
                .push(Reverse((now + after, Timer::Overflow(call, step + 1))));
        }
        self.counters.overflows += 1;
        self.out.push_back(Output::Overflow { call, step, pool });
        if waiting {
            self.route_call(now, call);
        }
    }

    /// The caller of `call`, while the ACD holds them.
    pub fn caller(&self, call: CallId) -> Option<&Caller> {
        self.calls.get(&call).map(|c| &c.caller)
    }

    /// Every caller waiting for an agent (ringing one, or booked for a callback), longest
    /// wait first.
    pub fn held_callers(&self, now: Instant) -> Vec<HeldCaller> {
        let mut v: Vec<HeldCaller> = self
            .calls
            .iter()
            .map(|(call, c)| HeldCaller {
                call: *call,
                queue: c.caller.queue,
                number: c.caller.number.clone(),
                waited: now.saturating_duration_since(c.arrived),
                offered: c.offered.is_some(),
                callback: c.callback,
            })
            .collect();
        v.sort_by(|a, b| b.waited.cmp(&a.waited).then(a.call.cmp(&b.call)));
        v
    }

    /// How long `call` has waited.
    pub fn waited(&self, now: Instant, call: CallId) -> Option<Duration> {
        self.calls
            .get(&call)
            .map(|c| now.saturating_duration_since(c.arrived))
    }

    /// Checks the ACD's invariants (for tests): an agent rings for at most one call and that
    /// call is offered to it alone; waiting callers are not offered; the indexes hold exactly
    /// the available agents.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (i, rt) in self.agents.iter().enumerate() {
            let a = AgentId(i as u32);
            if let AgentState::Ringing(call, _) = rt.state {
                let offered = self.calls.get(&call).and_then(|c| c.offered);
                if offered != Some(a) {
                    return Err(format!("{a:?} rings for {call:?} offered to {offered:?}"));
                }
            }
            let indexed = self.available.values().any(|s| s.iter().any(|k| k.2 == a));
            let available = matches!(rt.state, AgentState::Available(_));
            if indexed != (available && !self.agent_queues[i].is_empty()) {
                return Err(format!("{a:?} indexed {indexed} in state {:?}", rt.state));
            }
        }
        for (call, c) in &self.calls {
            let in_wait = self.waiting[c.caller.queue.0 as usize]
                .iter()
                .filter(|s| s.contains(&(c.key, *call)))
                .count();
            match c.offered {
                Some(a) if in_wait > 0 => {
                    return Err(format!("{call:?} offered to {a:?} and waiting"));
                }
                Some(a) if self.agent(a).state.ringing_for() != Some(*call) => {
                    return Err(format!(
                        "{call:?} offered to {a:?} who is {:?}",
                        self.agent(a).state
                    ));
                }
                None if in_wait != 1 => return Err(format!("{call:?} waits {in_wait} times")),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The queues agent `a` can serve, with the position of its pool in each queue's order.
fn queues_of(model: &Model, a: AgentId) -> Vec<(QueueId, usize)> {
    let agent = &model.agents[a.0 as usize];
    model
        .queues
        .iter()
        .enumerate()
        .filter(|(_, q)| agent.level(q.skill) > 0.0)
        .filter_map(|(i, q)| {
            let pos = q.pools.iter().position(|p| *p == agent.pool)?;
            Some((QueueId(i as u16), pos))
        })
        .collect()
}

impl AgentState {
    fn ringing_for(&self) -> Option<CallId> {
        match self {
            Self::Ringing(c, _) => Some(*c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
