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
    /// Share of callers sent to IVR self-service (under a surge) whose question it answers.
    #[serde(default)]
    self_service_containment: f64,
    /// Share of callers offered a callback who take it.
    #[serde(default = "half")]
    callback_accept: f64,
    /// Share of callbacks the customer answers.
    #[serde(default = "most")]
    callback_answer: f64,
    /// Seconds from the callback's dial to the customer's answer.
    #[serde(default = "dial_delay")]
    dial_delay_secs: f64,
    /// Intervals of the time series (table rows, chart points).
    #[serde(default = "intervals")]
    intervals: usize,
}

fn half() -> f64 {
    0.5
}

fn most() -> f64 {
    0.85
}

fn dial_delay() -> f64 {
    8.0
}

fn intervals() -> usize {
    48
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
    /// Surge levels from the arrival rate (the production detector); unset: none.
    #[serde(default)]
    surge: Option<crest_acd::SurgeConfig>,
    /// Admission decisions (the production rules); unset: every caller queues.
    #[serde(default)]
    admission: Option<crest_acd::AdmissionConfig>,
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
        policy: sim::Policy {
            surge: scenario.surge.clone(),
            admission: scenario.admission.clone(),
            containment: t.self_service_containment,
            callback_accept: t.callback_accept,
            callback_answer: t.callback_answer,
            dial_delay: t.dial_delay_secs,
            intervals: t.intervals.max(1),
        },
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

/// Tables: one row per strategy, then each strategy's seat pools, then the first strategy
/// over time.
pub(crate) fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "strategy      arrived  answered  abandoned  SL(20s)  ASA(s)  occupancy  overflows  self-served  callbacks  refused  compensated  standby  EWT error(s)  EWT bias(s)\n",
    );
    for o in outcomes {
        let r = &o.report;
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>9} {:>9.1}% {:>7.1}% {:>7.1} {:>9.1}% {:>10} {:>12} {:>10} {:>8} {:>12} {:>8} {:>13.1} {:>12.1}",
            o.strategy.name(),
            r.arrived,
            r.answered,
            100.0 * r.abandon_rate(),
            100.0 * r.service_level(),
            r.asa(),
            100.0 * r.occupancy,
            r.overflows,
            r.self_served,
            r.callbacks,
            r.refused,
            r.compensated,
            r.standby_activations,
            r.ewt_mae,
            r.ewt_bias
        );
    }
    out.push_str("\nper seat pool        agents  answered  from other pools  occupancy\n");
    for o in outcomes {
        for p in &o.report.pools {
            let _ = writeln!(
                out,
                "{:<12} {:<8} {:>6} {:>9} {:>17} {:>9.1}%",
                o.strategy.name(),
                p.name,
                p.agents,
                p.answered,
                p.from_other_pools,
                100.0 * p.occupancy
            );
        }
    }
    if let Some(o) = outcomes.first() {
        let _ = writeln!(
            out,
            "\nover time ({})      arrived  answered  SL(20s)  abandoned  self-served  callbacks  refused  surge",
            o.strategy.name()
        );
        for i in &o.report.intervals {
            let _ = writeln!(
                out,
                "{:>6.0} min {:>16} {:>9} {:>7.1}% {:>10} {:>12} {:>10} {:>8} {:>6}",
                i.start / 60.0,
                i.arrived,
                i.answered,
                100.0 * i.within_20s as f64 / i.arrived.max(1) as f64,
                i.abandoned,
                i.self_served,
                i.callbacks,
                i.refused,
                ["normal", "3x", "5x", "8x"][usize::from(i.surge.min(3))]
            );
        }
    }
    out
}

/// An SVG chart of the run over time: arrivals per interval (bars), each strategy's service
/// level (lines), and the surge level (shading).
pub(crate) fn svg(outcomes: &[Outcome]) -> String {
    let (w, h, left, top, bottom) = (960.0, 420.0, 60.0, 30.0, 50.0);
    let plot_h = h - top - bottom;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let Some(first) = outcomes.first() else {
        return out + "</svg>\n";
    };
    let iv = &first.report.intervals;
    let n = iv.len().max(1) as f64;
    let step = (w - left - 20.0) / n;
    let max_arr = iv.iter().map(|i| i.arrived).max().unwrap_or(1).max(1) as f64;
    let shade = ["none", "#fff3cd", "#ffe0b2", "#f8d7da"];
    for (k, i) in iv.iter().enumerate() {
        let x = left + k as f64 * step;
        if i.surge > 0 {
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{top}\" width=\"{step:.1}\" height=\"{plot_h}\" fill=\"{}\"/>",
                shade[usize::from(i.surge.min(3))]
            );
        }
        let bh = plot_h * i.arrived as f64 / max_arr;
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#cfd8dc\"/>",
            x + step * 0.15,
            top + plot_h - bh,
            step * 0.7
        );
    }
    let colours = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a"];
    for (j, o) in outcomes.iter().enumerate() {
        let pts: Vec<String> = o
            .report
            .intervals
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let sl = i.within_20s as f64 / i.arrived.max(1) as f64;
                format!(
                    "{:.1},{:.1}",
                    left + (k as f64 + 0.5) * step,
                    top + plot_h * (1.0 - sl)
                )
            })
            .collect();
        let c = colours[j % colours.len()];
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.0}\" y=\"18\" fill=\"{c}\">{} SL(20 s)</text>",
            left + j as f64 * 170.0,
            o.strategy.name()
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.0}\" y=\"18\" fill=\"#78909c\">arrivals (max {max_arr:.0} per interval)</text>",
        left + outcomes.len() as f64 * 170.0
    );
    for (v, label) in [(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")] {
        let y = top + plot_h * (1.0 - v);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eceff1\"/><text x=\"8\" y=\"{:.1}\">{label}</text>",
            w - 20.0,
            y + 4.0
        );
    }
    let total = iv.last().map_or(0.0, |i| i.start) + iv.get(1).map_or(0.0, |i| i.start);
    for k in (0..=4).map(|q| q as f64 / 4.0) {
        let x = left + k * (w - left - 20.0);
        let _ = writeln!(
            out,
            "<text x=\"{x:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{:.0} min</text>",
            h - bottom + 18.0,
            k * total / 60.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{left}\" y=\"{:.0}\" fill=\"#8d6e63\">shading: surge level (3x self-service first, 5x standby agents, 8x circuit breaker)</text>",
        h - 10.0
    );
    out + "</svg>\n"
}

/// JSON, one object per strategy (with its pools and intervals).
pub(crate) fn json(outcomes: &[Outcome]) -> String {
    let rows: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let r = &o.report;
            let pools: Vec<String> = r
                .pools
                .iter()
                .map(|p| {
                    format!(
                        "{{\"pool\":\"{}\",\"agents\":{},\"answered\":{},\"from_other_pools\":{},\"occupancy\":{:.4}}}",
                        p.name, p.agents, p.answered, p.from_other_pools, p.occupancy
                    )
                })
                .collect();
            let intervals: Vec<String> = r
                .intervals
                .iter()
                .map(|i| {
                    format!(
                        "{{\"start_secs\":{:.0},\"arrived\":{},\"answered\":{},\"within_20s\":{},\"abandoned\":{},\"self_served\":{},\"callbacks\":{},\"refused\":{},\"surge\":{}}}",
                        i.start, i.arrived, i.answered, i.within_20s, i.abandoned, i.self_served, i.callbacks, i.refused, i.surge
                    )
                })
                .collect();
            format!(
                "{{\"strategy\":\"{}\",\"arrived\":{},\"answered\":{},\"abandoned\":{},\"service_level_20s\":{:.4},\"asa_secs\":{:.2},\"occupancy\":{:.4},\"overflows\":{},\"self_served\":{},\"callbacks\":{},\"callbacks_answered\":{},\"refused\":{},\"compensated\":{},\"standby_activations\":{},\"admissions\":{:?},\"ewt_mae_secs\":{:.2},\"ewt_bias_secs\":{:.2},\"pools\":[{}],\"intervals\":[{}]}}",
                o.strategy.name(),
                r.arrived,
                r.answered,
                r.abandoned,
                r.service_level(),
                r.asa(),
                r.occupancy,
                r.overflows,
                r.self_served,
                r.callbacks,
                r.callbacks_answered,
                r.refused,
                r.compensated,
                r.standby_activations,
                r.admissions,
                r.ewt_mae,
                r.ewt_bias,
                pools.join(","),
                intervals.join(",")
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
