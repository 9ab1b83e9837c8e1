//! The surge simulator's engine: seeded traffic in virtual time through the production
//! [`Acd`]. Arrivals are Poisson at a rate that follows a profile, handle times and patience
//! are exponential, agents answer after a fixed ring delay; the ACD decides everything else.
//! No clock and no sockets: a million calls run in seconds, and the same seed gives the same
//! result.
//!
//! ```text
//!   events (arrival, answer, hang-up, abandon) ─► Acd::handle ─► Offer ─► scheduled answer
//!   Acd::poll_timeout ─► Acd::handle_timeout (ring-outs, wrap-up, overflow)
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::model::{AgentId, CallId, Caller, Model, QueueId};
use crate::router::{Acd, AgentState, Input, Output};

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
    let mut acd = Acd::new(t0, model);
    for a in 0..agents {
        acd.handle(t0, Input::AgentLogin(AgentId(a as u32)));
    }
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
            schedule_answers(&mut acd, &mut agenda, t_s, traffic.answer_delay);
        }
        last = last.max(now_s);
        let now = at(now_s);
        match event {
            Event::Arrival => {
                if now_s < traffic.duration {
                    agenda.push(now_s + rng.exp(1.0 / peak), Event::Arrival);
                    if rng.uniform() <= rate_at(now_s) / peak {
                        let call = CallId(next_call);
                        next_call += 1;
                        report.arrived += 1;
                        let queue = QueueId(rng.pick(&traffic.queue_mix) as u16);
                        arrived_at.insert(call, (now_s, queue));
                        let tier = rng.pick(&traffic.tier_mix) as u8;
                        if let Some(p) = traffic.mean_patience {
                            agenda.push(now_s + rng.exp(p), Event::Abandon(call));
                        }
                        acd.handle(
                            now,
                            Input::CallArrived(Caller {
                                call,
                                queue,
                                tier,
                                number: String::new(),
                            }),
                        );
                    }
                }
            }
            Event::Answer(a, call) => {
                let ringing = matches!(acd.agent_state(a), AgentState::Ringing(c, _) if *c == call);
                if ringing && let Some((arrived, queue)) = arrived_at.remove(&call) {
                    acd.handle(now, Input::Answered(a, call));
                    let wait = (now_s - arrived - traffic.answer_delay).max(0.0);
                    report.answered += 1;
                    report.wait_sum += wait;
                    report.waited += u64::from(wait > 1e-9);
                    report.within_20s += u64::from(wait <= 20.0);
                    busy += traffic.answer_delay;
                    talk_started.insert(call, now_s);
                    let level = levels[a.0 as usize][queue.0 as usize];
                    let mean = traffic.mean_handle * (1.0 + traffic.skill_effect * (0.5 - level));
                    agenda.push(now_s + talk_rng.exp(mean.max(1.0)), Event::HangUp(a, call));
                }
            }
            Event::HangUp(a, call) => {
                if let Some(start) = talk_started.remove(&call) {
                    busy += now_s - start + wrap_up;
                }
                acd.handle(now, Input::CallEnded(a, call));
            }
            Event::Abandon(call) => {
                if arrived_at.remove(&call).is_some() {
                    report.abandoned += 1;
                    acd.handle(now, Input::CallAbandoned(call));
                }
            }
        }
        // Timers the event made due at once (a zero wrap-up frees the agent now).
        while let Some(t) = acd.poll_timeout().filter(|t| *t <= now) {
            acd.handle_timeout(t);
        }
        schedule_answers(&mut acd, &mut agenda, now_s, traffic.answer_delay);
    }
    let c = acd.counters();
    report.overflows = c.overflows;
    report.ewt_mae = c.ewt_abs_error_secs / c.ewt_samples.max(1) as f64;
    report.occupancy = busy / (agents.max(1) as f64 * last.max(1e-9));
    report
}

/// Each offer the ACD made is answered `delay` seconds later (unless it was taken back).
fn schedule_answers(acd: &mut Acd, agenda: &mut Agenda, now_s: f64, delay: f64) {
    while let Some(o) = acd.poll_output() {
        if let Output::Offer { call, agent } = o {
            agenda.push(now_s + delay, Event::Answer(agent, call));
        }
    }
}

#[cfg(test)]
mod tests;
