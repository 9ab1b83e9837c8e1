//! `crest simulate`: a scenario file (an ACD configuration and its traffic) run through the
//! production ACD in virtual time, once per strategy on the same seeded traffic; a table, or
//! JSON with `--json`.

use std::fmt::Write as _;
use std::path::Path;

use crest_acd::model::Strategy;
use crest_acd::sim::{self, Report, Traffic};
use crest_acd::{AcdConfig, Model};

use crate::config::{ConfigError, locate, parse_yaml, read_file};

/// The traffic part of a scenario.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficConfig {
    /// Arrivals per minute on a normal day.
    rate_per_min: f64,
    /// Length of the run.
    duration_min: f64,
    /// `[from minute, factor]` steps of the arrival rate (a surge).
    #[serde(default)]
    profile: Vec<(f64, f64)>,
    /// Mean talk time.
    mean_handle_secs: f64,
    /// How much an agent's skill level shortens calls (0: not at all).
    #[serde(default)]
    skill_effect: f64,
    /// Mean patience of waiting callers; unset: nobody hangs up.
    #[serde(default)]
    mean_patience_secs: Option<f64>,
    /// Seconds an offered agent takes to answer.
    #[serde(default = "answer_delay")]
    answer_delay_secs: f64,
    /// Share of callers per queue name.
    queue_mix: std::collections::BTreeMap<String, f64>,
    /// Share of callers per tier (0 normal … 3 VIP).
    #[serde(default = "tiers")]
    tier_mix: Vec<f64>,
    /// Seed of the random traffic.
    #[serde(default)]
    seed: u64,
}

fn answer_delay() -> f64 {
    3.0
}

fn tiers() -> Vec<f64> {
    vec![1.0]
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    acd: AcdConfig,
    traffic: TrafficConfig,
}

/// One strategy's result.
#[derive(Debug)]
pub(crate) struct Outcome {
    strategy: Strategy,
    report: Report,
}

/// Loads `path` and runs it once per strategy (`seed` overrides the scenario's).
pub(crate) fn run(
    path: &Path,
    strategies: &[Strategy],
    seed: Option<u64>,
) -> Result<Vec<Outcome>, ConfigError> {
    let (file, text) = read_file(path)?;
    let scenario: Scenario = parse_yaml(&file, &text)?;
    let err = |key: String, message: String| ConfigError {
        file: file.clone(),
        line: locate(&text, &key),
        column: 1,
        message,
        key,
    };
    let model = Model::new(&scenario.acd).map_err(|e| err(format!("acd.{}", e.key), e.message))?;
    let t = &scenario.traffic;
    let mut queue_mix = vec![0.0; model.queues.len()];
    for (name, share) in &t.queue_mix {
        let q = model.queue(name).ok_or_else(|| {
            err(
                "traffic.queue_mix".into(),
                format!("no queue named {name:?} in acd.queues"),
            )
        })?;
        queue_mix[q.0 as usize] = *share;
    }
    if t.rate_per_min <= 0.0 || t.duration_min <= 0.0 || queue_mix.iter().sum::<f64>() <= 0.0 {
        return Err(err(
            "traffic".into(),
            "rate_per_min, duration_min and the queue mix must be positive".into(),
        ));
    }
    let traffic = Traffic {
        rate: t.rate_per_min / 60.0,
        profile: t.profile.iter().map(|(m, f)| (m * 60.0, *f)).collect(),
        duration: t.duration_min * 60.0,
        mean_handle: t.mean_handle_secs,
        skill_effect: t.skill_effect,
        mean_patience: t.mean_patience_secs,
        answer_delay: t.answer_delay_secs,
        queue_mix,
        tier_mix: t.tier_mix.clone(),
        seed: seed.unwrap_or(t.seed),
    };
    Ok(strategies
        .iter()
        .map(|&strategy| {
            let mut m = model.clone();
            m.strategy = strategy;
            Outcome {
                strategy,
                report: sim::run(m, &traffic),
            }
        })
        .collect())
}

/// A table, one row per strategy.
pub(crate) fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "strategy      arrived  answered  abandoned  SL(20s)  ASA(s)  occupancy  overflows  EWT error(s)\n",
    );
    for o in outcomes {
        let r = &o.report;
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>9} {:>9.1}% {:>7.1}% {:>7.1} {:>9.1}% {:>10} {:>13.1}",
            o.strategy.name(),
            r.arrived,
            r.answered,
            100.0 * r.abandon_rate(),
            100.0 * r.service_level(),
            r.asa(),
            100.0 * r.occupancy,
            r.overflows,
            r.ewt_mae
        );
    }
    out
}

/// JSON, one object per strategy.
pub(crate) fn json(outcomes: &[Outcome]) -> String {
    let rows: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let r = &o.report;
            format!(
                "{{\"strategy\":\"{}\",\"arrived\":{},\"answered\":{},\"abandoned\":{},\"service_level_20s\":{:.4},\"asa_secs\":{:.2},\"occupancy\":{:.4},\"overflows\":{},\"ewt_mae_secs\":{:.2}}}",
                o.strategy.name(),
                r.arrived,
                r.answered,
                r.abandoned,
                r.service_level(),
                r.asa(),
                r.occupancy,
                r.overflows,
                r.ewt_mae
            )
        })
        .collect();
    format!("[{}]\n", rows.join(","))
}

/// Parses `--compare weighted,longest-idle,fifo`.
pub(crate) fn strategies(list: &str) -> Result<Vec<Strategy>, String> {
    list.split(',')
        .map(|s| match s.trim() {
            "weighted" => Ok(Strategy::Weighted),
            "longest-idle" => Ok(Strategy::LongestIdle),
            "fifo" => Ok(Strategy::Fifo),
            other => Err(format!(
                "unknown strategy {other:?} (weighted, longest-idle, fifo)"
            )),
        })
        .collect()
}
