//! The surge simulator's engine: seeded traffic in virtual time through the production
//! [`Acd`]. Arrivals are Poisson at a rate that follows a profile, handle times and patience
//! are exponential, agents answer after a fixed ring delay; the ACD decides everything else.
//! No clock and no sockets: a million calls run in seconds, and the same seed gives the same
//! result.
//!
//! With a [`Policy`], each arrival also goes through the production surge detector and
//! admission decision: under a surge callers are sent to IVR self-service first (a share of
//! them is served there), offered a callback (virtual hold: the ACD keeps their place, reserves
//! an agent when it comes up and dials them), or refused; results are kept per seat pool and
//! per interval of the run.
//!
//! ```text
//!   arrival ─► Surge::on_arrival ─► admission::decide ─► queue | self-service | callback | refuse
//!   events (arrival, answer, hang-up, abandon, callback answered) ─► Acd::handle ─► Offer / Dial
//!   Acd::poll_timeout ─► Acd::handle_timeout (ring-outs, wrap-up, overflow)
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::admission::{self, Admission, AdmissionConfig, Reason, Situation};
use crate::model::{AgentId, CallId, Caller, Model, QueueId};
use crate::router::{Acd, AgentState, Input, Output};
use crate::surge::{Surge, SurgeConfig, SurgeLevel};

/// Traffic for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    /// Mean arrivals per second at profile factor 1.
    pub rate: f64,
    /// (from second, factor) steps of the rate; the first applies from 0.
    pub profile: Vec<(f64, f64)>,
    /// Simulated duration, seconds.
    pub duration: f64,
    /// Mean talk time, seconds (exponential).
    pub mean_handle: f64,
    /// How much skill shortens calls: an agent at level `l` talks `mean_handle × (1 +
    /// skill_effect × (0.5 − l))` on average (0: skill does not matter).
    pub skill_effect: f64,
    /// Mean patience, seconds (exponential); `None`: nobody hangs up while waiting.
    pub mean_patience: Option<f64>,
    /// Seconds an offered agent takes to answer.
    pub answer_delay: f64,
    /// Share of callers per queue (normalised), and per tier within a call's queue.
    pub queue_mix: Vec<f64>,
    /// Share of callers per tier (0 normal … 3 VIP).
    pub tier_mix: Vec<f64>,
    /// The seed.
    pub seed: u64,
    /// Surge detection, admission and what callers do about it.
    pub policy: Policy,
}

/// Surge detection and admission in the run, and how callers respond.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    /// Surge levels from the arrival rate (none: the level stays normal).
    pub surge: Option<SurgeConfig>,
    /// Admission decisions (none: every caller queues).
    pub admission: Option<AdmissionConfig>,
    /// Share of callers sent to self-service whose question the IVR answers.
    pub containment: f64,
    /// Share of callers offered a callback who take it.
    pub callback_accept: f64,
    /// Share of callbacks the customer answers.
    pub callback_answer: f64,
    /// Seconds from the ACD's dial to the customer's answer (or giving up).
    pub dial_delay: f64,
    /// Intervals the run's time series has (0: none).
    pub intervals: usize,
}

/// One interval of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interval {
    /// Start, seconds.
    pub start: f64,
    /// Arrivals.
    pub arrived: u64,
    /// Answers.
    pub answered: u64,
    /// Answered within 20 s.
    pub within_20s: u64,
    /// Abandons.
    pub abandoned: u64,
    /// Served by self-service.
    pub self_served: u64,
    /// Callbacks taken.
    pub callbacks: u64,
    /// Refused.
    pub refused: u64,
    /// Highest surge level seen (0–3).
    pub surge: u8,
}

/// One seat pool's share of the run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolReport {
    /// The pool's name.
    pub name: String,
    /// Agents in it.
    pub agents: usize,
    /// Calls its agents answered.
    pub answered: u64,
    /// Of which came from another pool's queue (overflow).
    pub from_other_pools: u64,
    /// Busy share of its agents.
    pub occupancy: f64,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Calls that arrived.
    pub arrived: u64,
    /// Calls answered by an agent.
    pub answered: u64,
    /// Calls that hung up before an answer.
    pub abandoned: u64,
    /// Answered calls that waited at all (more than the ring delay).
    pub waited: u64,
    /// Answered within 20 s.
    pub within_20s: u64,
    /// Sum of the answered calls' waits (queue time, ring delay excluded), seconds.
    pub wait_sum: f64,
    /// Agent-seconds busy (ringing, talking, wrapping up) over agent-seconds logged in.
    pub occupancy: f64,
    /// Overflow steps taken.
    pub overflows: u64,
    /// Mean absolute error of the wait estimates, seconds.
    pub ewt_mae: f64,
    /// Mean signed error (actual − predicted) of the wait estimates, seconds.
    pub ewt_bias: f64,
    /// Callers the IVR served (self-service under a surge).
    pub self_served: u64,
    /// Callbacks requested (virtual hold).
    pub callbacks: u64,
    /// Callbacks the customer answered.
    pub callbacks_answered: u64,
    /// Callers refused (announcement, then 503).
    pub refused: u64,
    /// Callers promised the compensation message (queued under the circuit breaker).
    pub compensated: u64,
    /// Times the standby pools were called in.
    pub standby_activations: u64,
    /// Admission decisions by outcome: admit, admit with a callback offer, self-service,
    /// offer a callback, refuse.
    pub admissions: [u64; 5],
    /// Surge level changes: (second, level 0–3).
    pub surge_changes: Vec<(f64, u8)>,
    /// Per seat pool.
    pub pools: Vec<PoolReport>,
    /// Over time.
    pub intervals: Vec<Interval>,
}

impl Report {
    /// Average speed of answer, seconds.
    pub fn asa(&self) -> f64 {
        self.wait_sum / self.answered.max(1) as f64
    }

    /// Share of answered calls that waited.
    pub fn p_wait(&self) -> f64 {
        self.waited as f64 / self.answered.max(1) as f64
    }

    /// Service level: share of arrived calls answered within 20 s.
    pub fn service_level(&self) -> f64 {
        self.within_20s as f64 / self.arrived.max(1) as f64
    }

    /// Share of arrived calls abandoned.
    pub fn abandon_rate(&self) -> f64 {
        self.abandoned as f64 / self.arrived.max(1) as f64
    }
}

fn admission_index(a: Admission) -> usize {
    match a {
        Admission::Admit => 0,
        Admission::AdmitWithCallbackOffer => 1,
        Admission::SelfService => 2,
        Admission::OfferCallback => 3,
        Admission::Refuse { .. } => 4,
    }
}

/// SplitMix64 with uniform and exponential draws.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn exp(&mut self, mean: f64) -> f64 {
        -mean * self.uniform().ln()
    }

    fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x <= *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrival,
    Answer(AgentId, CallId),
    HangUp(AgentId, CallId),
    Abandon(CallId),
    /// The customer a callback dialled answers (or not).
    CallbackPickUp(CallId, bool),
}

/// Events in virtual time, in order (ties in the order they were scheduled).
#[derive(Debug, Default)]
struct Agenda {
    heap: BinaryHeap<Reverse<(Duration, u64, Event)>>,
    seq: u64,
}

impl Agenda {
    fn push(&mut self, at_secs: f64, e: Event) {
        self.seq += 1;
        self.heap
            .push(Reverse((Duration::from_secs_f64(at_secs), self.seq, e)));
    }

    fn pop(&mut self) -> Option<(f64, Event)> {
        self.heap
            .pop()
            .map(|Reverse((t, _, e))| (t.as_secs_f64(), e))
    }
}

/// Runs `traffic` through an ACD over `model` with every agent logged in from the start.
pub fn run(model: Model, traffic: &Traffic) -> Report {
    let t0 = Instant::now();
    let at = |s: f64| t0 + Duration::from_secs_f64(s);
    let agents = model.agents.len();
    let wrap_up = model.wrap_up.as_secs_f64();
    let levels: Vec<Vec<f64>> = model
        .agents
        .iter()
        .map(|a| model.queues.iter().map(|q| a.level(q.skill)).collect())
        .collect();
    // Agents of standby pools log in only under a surge of 5× and more.
    let standby = model.standby_agents();
    let mut acd = Acd::new(t0, model);
    for a in 0..agents {
        let a = AgentId(a as u32);
        if !standby.contains(&a) {
            acd.handle(t0, Input::AgentLogin(a));
        }
    }
    let mut standby_on = false;
    // Two streams: the callers (arrival times, queues, tiers, patience) are the same whatever
    // the strategy decides; talk times come from the other.
    let mut rng = Rng(traffic.seed);
    let mut talk_rng = Rng(traffic.seed ^ 0x5DEE_CE66_D1CE_4E5B);
    let mut agenda = Agenda::default();
    let rate_at = |t: f64| {
        let f = traffic
            .profile
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map_or(1.0, |(_, f)| *f);
        traffic.rate * f
    };
    // Arrivals by thinning against the profile's peak rate.
    let peak = traffic.rate * traffic.profile.iter().map(|p| p.1).fold(1.0, f64::max);
    agenda.push(rng.exp(1.0 / peak), Event::Arrival);
    let mut report = Report::default();
    let policy = &traffic.policy;
    let mut surge = policy.surge.clone().map(|c| Surge::new(t0, c));
    let mut level = SurgeLevel::Normal;
    let span = traffic.duration / policy.intervals.max(1) as f64;
    report.intervals = (0..policy.intervals)
        .map(|i| Interval {
            start: i as f64 * span,
            ..Interval::default()
        })
        .collect();
    let bucket = |t: f64| ((t / span) as usize).min(policy.intervals.saturating_sub(1));
    let agent_pool: Vec<usize> = model_pools(&acd);
    let mut pool_busy = vec![0.0; acd.model().pools.len()];
    report.pools = acd
        .model()
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| PoolReport {
            name: p.name.clone(),
            agents: agent_pool.iter().filter(|&&ap| ap == i).count(),
            ..PoolReport::default()
        })
        .collect();
    let home_pool: Vec<usize> = acd
        .model()
        .queues
        .iter()
        .map(|q| q.pools.first().map_or(0, |p| p.0 as usize))
        .collect();
    // Callers on virtual hold: their patience no longer runs out in the queue.
    let mut on_hold: std::collections::HashSet<CallId> = std::collections::HashSet::new();
    let mut dialled: HashMap<CallId, AgentId> = HashMap::new();
    let mut arrived_at: HashMap<CallId, (f64, QueueId)> = HashMap::new();
    let mut talk_started: HashMap<CallId, f64> = HashMap::new();
    let mut busy = 0.0;
    let mut next_call = 0u64;
    let mut last = 0.0f64;
    while let Some((now_s, event)) = agenda.pop() {
        // The ACD's own timers (ring-outs, wrap-ups, overflow steps) due before this event.
        while let Some(t) = acd.poll_timeout().filter(|t| *t <= at(now_s)) {
            acd.handle_timeout(t);
            let t_s = t.saturating_duration_since(t0).as_secs_f64();
            schedule_answers(
                &mut acd,
                &mut agenda,
                t_s,
                traffic.answer_delay,
                policy,
                &mut dialled,
            );
        }
        last = last.max(now_s);
        let now = at(now_s);
        // An answer (by an agent, or by a customer called back) starts a talk: (agent, call,
        // queue, wait, seconds from offer or dial to answer).
        let talk: Option<(AgentId, CallId, QueueId, f64, f64)> = match event {
            Event::Arrival => {
                if now_s < traffic.duration {
                    agenda.push(now_s + rng.exp(1.0 / peak), Event::Arrival);
                    if rng.uniform() <= rate_at(now_s) / peak {
                        let call = CallId(next_call);
                        next_call += 1;
                        report.arrived += 1;
                        let queue = QueueId(rng.pick(&traffic.queue_mix) as u16);
                        let tier = rng.pick(&traffic.tier_mix) as u8;
                        let patience = traffic.mean_patience.map(|p| rng.exp(p));
                        // The caller's own choices (served by self-service, takes a callback)
                        // come from their id, so every strategy and policy sees the same
                        // callers choosing the same.
                        let mut own = Rng(call.0 ^ traffic.seed.rotate_left(32) ^ 0x5E1F);
                        let (r_served, r_accept) = (own.uniform(), own.uniform());
                        if let Some(i) = report.intervals.get_mut(bucket(now_s)) {
                            i.arrived += 1;
                        }
                        if let Some(s) = surge.as_mut()
                            && let Some(ch) = s.on_arrival(now)
                        {
                            level = ch.to;
                            report.surge_changes.push((now_s, level.index() as u8));
                            call_standby(
                                &mut acd,
                                now,
                                level,
                                &standby,
                                &mut standby_on,
                                &mut report,
                            );
                        }
                        if let Some(i) = report.intervals.get_mut(bucket(now_s)) {
                            i.surge = i.surge.max(level.index() as u8);
                        }
                        let queue_len = acd.waiting(queue);
                        acd.handle(
                            now,
                            Input::CallArrived(Caller {
                                call,
                                queue,
                                tier,
                                number: format!("+86{}", call.0),
                                language: None,
                                agent: None,
                            }),
                        );
                        let mut stays = true;
                        if let Some(cfg) = &policy.admission {
                            let mut situation = Situation {
                                call_bps: 0,
                                headroom_bps: None,
                                queue_len,
                                ewt: acd.ewt(call),
                                surge: level,
                                self_served: false,
                            };
                            let (mut decision, mut reason) = admission::decide(cfg, &situation);
                            if decision == Admission::SelfService {
                                report.admissions[admission_index(decision)] += 1;
                                if r_served < policy.containment {
                                    report.self_served += 1;
                                    if let Some(i) = report.intervals.get_mut(bucket(now_s)) {
                                        i.self_served += 1;
                                    }
                                    stays = false;
                                } else {
                                    situation.self_served = true;
                                    (decision, reason) = admission::decide(cfg, &situation);
                                }
                            }
                            if stays {
                                report.admissions[admission_index(decision)] += 1;
                                if admission::compensation(cfg, reason).is_some() {
                                    report.compensated += 1;
                                }
                                match decision {
                                    Admission::OfferCallback
                                    | Admission::AdmitWithCallbackOffer
                                        if r_accept < policy.callback_accept =>
                                    {
                                        acd.handle(now, Input::CallbackRequested(call));
                                        on_hold.insert(call);
                                        report.callbacks += 1;
                                        if let Some(i) = report.intervals.get_mut(bucket(now_s)) {
                                            i.callbacks += 1;
                                        }
                                    }
                                    Admission::Refuse { .. } => stays = false,
                                    // Declined the callback: a caller refused for a full queue
                                    // or a long wait goes; one under the circuit breaker waits.
                                    Admission::OfferCallback
                                        if matches!(
                                            reason,
                                            Reason::QueueFull | Reason::LongWait
                                        ) =>
                                    {
                                        stays = false;
                                    }
                                    _ => {}
                                }
                                if !stays
                                    && matches!(
                                        decision,
                                        Admission::Refuse { .. } | Admission::OfferCallback
                                    )
                                {
                                    report.refused += 1;
                                    if let Some(i) = report.intervals.get_mut(bucket(now_s)) {
                                        i.refused += 1;
                                    }
                                }
                            }
                        }
                        if stays {
                            arrived_at.insert(call, (now_s, queue));
                            if let Some(p) = patience {
                                agenda.push(now_s + p, Event::Abandon(call));
                            }
                        } else {
                            acd.handle(now, Input::CallAbandoned(call));
                        }
                    }
                }
                None
            }
            Event::Answer(a, call) => {
                let ringing = matches!(acd.agent_state(a), AgentState::Ringing(c, _) if *c == call);
                match ringing.then(|| arrived_at.remove(&call)).flatten() {
                    Some((arrived, queue)) => {
                        acd.handle(now, Input::Answered(a, call));
                        let wait = (now_s - arrived - traffic.answer_delay).max(0.0);
                        Some((a, call, queue, wait, traffic.answer_delay))
                    }
                    None => None,
                }
            }
            Event::HangUp(a, call) => {
                if let Some(start) = talk_started.remove(&call) {
                    let b = now_s - start + wrap_up;
                    busy += b;
                    pool_busy[agent_pool[a.0 as usize]] += b;
                }
                acd.handle(now, Input::CallEnded(a, call));
                // A standby agent released while on a call goes when the call ends.
                if !standby_on && standby.contains(&a) {
                    acd.handle(now, Input::AgentLogout(a));
                }
                None
            }
            Event::Abandon(call) => {
                if !on_hold.contains(&call) && arrived_at.remove(&call).is_some() {
                    report.abandoned += 1;
                    if let Some(i) = report.intervals.get_mut(bucket(now_s)) {
                        i.abandoned += 1;
                    }
                    acd.handle(now, Input::CallAbandoned(call));
                }
                None
            }
            Event::CallbackPickUp(call, true) => {
                let Some(agent) = dialled.remove(&call) else {
                    continue;
                };
                on_hold.remove(&call);
                match arrived_at.remove(&call) {
                    Some((arrived, queue)) => {
                        acd.handle(now, Input::CallbackAnswered(call));
                        report.callbacks_answered += 1;
                        // A callback's wait is the time until the customer is called back.
                        let wait = (now_s - arrived - policy.dial_delay).max(0.0);
                        Some((agent, call, queue, wait, policy.dial_delay))
                    }
                    None => None,
                }
            }
            Event::CallbackPickUp(call, false) => {
                dialled.remove(&call);
                on_hold.remove(&call);
                if arrived_at.remove(&call).is_some() {
                    report.abandoned += 1;
                    acd.handle(now, Input::CallbackUnanswered(call));
                }
                None
            }
        };
        if let Some((a, call, queue, wait, setup)) = talk {
            let home = home_pool[queue.0 as usize];
            answered(
                &mut report,
                agent_pool[a.0 as usize],
                home,
                bucket(now_s),
                wait,
            );
            busy += setup;
            talk_started.insert(call, now_s);
            let level = levels[a.0 as usize][queue.0 as usize];
            let mean = traffic.mean_handle * (1.0 + traffic.skill_effect * (0.5 - level));
            agenda.push(now_s + talk_rng.exp(mean.max(1.0)), Event::HangUp(a, call));
        }
        // Timers the event made due at once (a zero wrap-up frees the agent now).
        while let Some(t) = acd.poll_timeout().filter(|t| *t <= now) {
            acd.handle_timeout(t);
        }
        schedule_answers(
            &mut acd,
            &mut agenda,
            now_s,
            traffic.answer_delay,
            policy,
            &mut dialled,
        );
        if let Some(s) = surge.as_mut()
            && let Some(ch) = s.update(now)
        {
            level = ch.to;
            report.surge_changes.push((now_s, level.index() as u8));
            call_standby(&mut acd, now, level, &standby, &mut standby_on, &mut report);
        }
    }
    let c = acd.counters();
    report.overflows = c.overflows;
    report.ewt_mae = c.ewt_abs_error_secs / c.ewt_samples.max(1) as f64;
    report.ewt_bias = c.ewt_bias_secs / c.ewt_samples.max(1) as f64;
    report.occupancy = busy / (agents.max(1) as f64 * last.max(1e-9));
    for (p, b) in report.pools.iter_mut().zip(pool_busy) {
        p.occupancy = b / (p.agents.max(1) as f64 * last.max(1e-9));
    }
    report
}

/// Calls the standby pools in at 5× and more, and releases them below (agents on a call go
/// when it ends).
fn call_standby(
    acd: &mut Acd,
    now: Instant,
    level: SurgeLevel,
    standby: &[AgentId],
    on: &mut bool,
    report: &mut Report,
) {
    let want = level >= SurgeLevel::StandbyAgents;
    if want == *on || standby.is_empty() {
        return;
    }
    *on = want;
    if want {
        report.standby_activations += 1;
    }
    for &a in standby {
        let input = if want {
            Input::AgentLogin(a)
        } else {
            Input::AgentLogout(a)
        };
        acd.handle(now, input);
    }
}

/// The seat pool of every agent, by index.
fn model_pools(acd: &Acd) -> Vec<usize> {
    acd.model()
        .agents
        .iter()
        .map(|a| a.pool.0 as usize)
        .collect()
}

/// Counts an answer: totals, the answering agent's pool (and whether the call came from
/// another pool's queue), the interval.
fn answered(report: &mut Report, pool: usize, home: usize, interval: usize, wait: f64) {
    report.answered += 1;
    report.wait_sum += wait;
    report.waited += u64::from(wait > 1e-9);
    report.within_20s += u64::from(wait <= 20.0);
    if let Some(p) = report.pools.get_mut(pool) {
        p.answered += 1;
        p.from_other_pools += u64::from(pool != home);
    }
    if let Some(i) = report.intervals.get_mut(interval) {
        i.answered += 1;
        i.within_20s += u64::from(wait <= 20.0);
    }
}

/// Each offer the ACD made is answered `delay` seconds later (unless it was taken back).
/// Each offer the ACD made is answered `delay` seconds later (unless it was taken back); each
/// callback it dialled is picked up (or not) `policy.dial_delay` seconds later.
fn schedule_answers(
    acd: &mut Acd,
    agenda: &mut Agenda,
    now_s: f64,
    delay: f64,
    policy: &Policy,
    dialled: &mut HashMap<CallId, AgentId>,
) {
    while let Some(o) = acd.poll_output() {
        match o {
            Output::Offer { call, agent } => agenda.push(now_s + delay, Event::Answer(agent, call)),
            Output::Dial { call, agent, .. } => {
                dialled.insert(call, agent);
                // Whether the customer picks up is theirs: the same for every strategy.
                let picks_up = Rng(call.0 ^ 0xCA11_BAC4).uniform() < policy.callback_answer;
                agenda.push(
                    now_s + policy.dial_delay,
                    Event::CallbackPickUp(call, picks_up),
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
