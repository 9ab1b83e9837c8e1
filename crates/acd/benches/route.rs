//! Routing decisions at call-center scale: 10,000 agents in 20 pools, 200 skills (one queue
//! each), 50,000 callers waiting. Measured: an agent finishing wrap-up (the ACD picks the best
//! waiting caller it may take and offers it) and a caller arriving when agents are free (the
//! ACD picks the best agent). `decision_p99` prints the 99th percentile of single decisions.
use std::time::{Duration, Instant};

use crest_acd::model::{AgentConfig, PoolConfig, QueueConfig, Weights};
use crest_acd::{Acd, AcdConfig, AgentId, CallId, Caller, Input, Model, Output, QueueId};

fn main() {
    divan::main();
}

const AGENTS: u32 = 10_000;
const SKILLS: u16 = 200;
const POOLS: u16 = 20;
const WAITING: u64 = 50_000;

/// xorshift64: the same center every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn center() -> AcdConfig {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pools = (0..POOLS)
        .map(|p| PoolConfig {
            name: format!("pool{p}"),
            neighbours: vec![
                format!("pool{}", (p + 1) % POOLS),
                format!("pool{}", (p + 2) % POOLS),
            ],
            overflow_after_secs: 30,
            standby: false,
        })
        .collect();
    let queues = (0..SKILLS)
        .map(|s| QueueConfig {
            name: format!("q{s}"),
            skill: format!("skill{s}"),
            pool: format!("pool{}", s % POOLS),
            weights: Weights::default(),
            aht_secs: 180,
        })
        .collect();
    let agents = (0..AGENTS)
        .map(|i| {
            let pool = (i % u32::from(POOLS)) as u16;
            // Mostly the pool's own skills, a few others.
            let skills = (0..4)
                .map(|k| {
                    let s = if k < 3 {
                        pool + POOLS * (rng.next(u64::from(SKILLS / POOLS)) as u16)
                    } else {
                        rng.next(u64::from(SKILLS)) as u16
                    };
                    (
                        format!("skill{s}"),
                        0.3 + 0.7 * (rng.next(100) as f64 / 100.0),
                    )
                })
                .collect();
            AgentConfig {
                name: format!("agent{i}"),
                pool: format!("pool{pool}"),
                skills,
                rating: rng.next(100) as f64 / 100.0,
                languages: Vec::new(),
            }
        })
        .collect();
    AcdConfig {
        pools,
        queues,
        agents,
        wrap_up_secs: 0,
        ..AcdConfig::default()
    }
}

/// Every agent on a call, 50,000 callers waiting.
fn busy_center(t0: Instant) -> Acd {
    let mut acd = Acd::new(t0, Model::new(&center()).unwrap());
    let mut rng = Rng(7);
    for a in 0..AGENTS {
        acd.handle(t0, Input::AgentLogin(AgentId(a)));
    }
    let mut n = 0u64;
    // Enough callers to put every agent on a call, then 50,000 more waiting.
    while acd.counters().answered < u64::from(AGENTS)
        || (0..SKILLS).map(|q| acd.waiting(QueueId(q))).sum::<usize>() < WAITING as usize
    {
        let q = QueueId(rng.next(u64::from(SKILLS)) as u16);
        let now = t0 + Duration::from_micros(n);
        acd.handle(
            now,
            Input::CallArrived(Caller {
                call: CallId(n),
                queue: q,
                tier: (rng.next(4)) as u8,
                number: String::new(),
                language: None,
                agent: None,
            }),
        );
        while let Some(o) = acd.poll_output() {
            if let Output::Offer { call, agent } = o {
                acd.handle(now, Input::Answered(agent, call));
            }
        }
        n += 1;
    }
    acd
}

/// An agent's call ends (no wrap-up): the ACD offers it the best waiting caller it may take.
#[divan::bench(sample_count = 200, sample_size = 20)]
fn agent_free_picks_a_caller(bencher: divan::Bencher) {
    let t0 = Instant::now();
    let mut acd = busy_center(t0);
    let mut on_call: Vec<(AgentId, CallId)> = (0..AGENTS)
        .filter_map(|a| match acd.agent_state(AgentId(a)) {
            crest_acd::AgentState::OnCall(c) => Some((AgentId(a), *c)),
            _ => None,
        })
        .collect();
    let mut i = 0;
    let now = t0 + Duration::from_secs(10);
    bencher.bench_local(|| {
        let slot = i % on_call.len();
        let (agent, call) = on_call[slot];
        acd.handle(now, Input::CallEnded(agent, call));
        acd.handle_timeout(now);
        let mut next = call;
        while let Some(o) = acd.poll_output() {
            if let Output::Offer { call, agent: a } = o {
                acd.handle(now, Input::Answered(a, call));
                next = call;
            }
        }
        on_call[slot] = (agent, next);
        i += 1;
    });
}

/// The 99th percentile of single decisions, printed: agents freed one by one as above.
#[divan::bench(sample_count = 1, sample_size = 1)]
fn decision_p99() {
    let t0 = Instant::now();
    let mut acd = busy_center(t0);
    let agents: Vec<(AgentId, CallId)> = (0..AGENTS)
        .filter_map(|a| match acd.agent_state(AgentId(a)) {
            crest_acd::AgentState::OnCall(c) => Some((AgentId(a), *c)),
            _ => None,
        })
        .collect();
    let now = t0 + Duration::from_secs(10);
    let mut times = Vec::with_capacity(agents.len());
    for (agent, call) in agents {
        let start = Instant::now();
        acd.handle(now, Input::CallEnded(agent, call));
        acd.handle_timeout(now);
        while let Some(o) = acd.poll_output() {
            if let Output::Offer { call, agent: a } = o {
                acd.handle(now, Input::Answered(a, call));
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "decision_p99: {} decisions, p50 {:?}, p99 {:?}, max {:?}",
        times.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
}

/// The simulator's speed: 1,000,000 calls through a 400-agent center (4 pools with
/// neighbours, 8 queues, 4 tiers, patience, a 10× surge for a tenth of the run), one core.
#[divan::bench(sample_count = 1, sample_size = 1)]
fn simulate_million_calls() -> crest_acd::sim::Report {
    let mut rng = Rng(11);
    let pools = (0..4u16)
        .map(|p| PoolConfig {
            name: format!("pool{p}"),
            neighbours: vec![format!("pool{}", (p + 1) % 4)],
            overflow_after_secs: 20,
            standby: false,
        })
        .collect();
    let queues = (0..8u16)
        .map(|q| QueueConfig {
            name: format!("q{q}"),
            skill: format!("skill{q}"),
            pool: format!("pool{}", q % 4),
            weights: Weights::default(),
            aht_secs: 180,
        })
        .collect();
    let agents = (0..400u32)
        .map(|i| AgentConfig {
            name: format!("agent{i}"),
            pool: format!("pool{}", i % 4),
            skills: (0..3)
                .map(|_| {
                    (
                        format!("skill{}", rng.next(8)),
                        0.3 + rng.next(70) as f64 / 100.0,
                    )
                })
                .collect(),
            rating: rng.next(100) as f64 / 100.0,
            languages: Vec::new(),
        })
        .collect();
    let model = Model::new(&AcdConfig {
        pools,
        queues,
        agents,
        ..AcdConfig::default()
    })
    .unwrap();
    // 400 agents at 190 s per call (180 talk + 10 wrap-up) serve ~2.1 calls/s: offer 1.8/s.
    let rate = 1.8;
    let duration = 1_000_000.0 / (rate * 1.9);
    let traffic = crest_acd::sim::Traffic {
        rate,
        profile: vec![(0.0, 1.0), (duration * 0.45, 10.0), (duration * 0.55, 1.0)],
        duration,
        mean_handle: 180.0,
        skill_effect: 0.5,
        mean_patience: Some(120.0),
        answer_delay: 2.0,
        queue_mix: vec![1.0; 8],
        tier_mix: vec![0.7, 0.2, 0.08, 0.02],
        seed: 3,
        policy: Default::default(),
    };
    let start = Instant::now();
    let report = crest_acd::sim::run(model, &traffic);
    println!(
        "simulate_million_calls: {} calls in {:.2?}: answered {}, abandoned {}, ASA {:.1} s, overflows {}, EWT MAE {:.1} s",
        report.arrived,
        start.elapsed(),
        report.answered,
        report.abandoned,
        report.asa(),
        report.overflows,
        report.ewt_mae
    );
    report
}
