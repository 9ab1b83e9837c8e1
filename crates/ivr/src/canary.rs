//! Canary flows: a staged version of a flow takes a share of new calls, chosen by a stable
//! hash of the caller's number (a caller who calls back gets the same version), while the
//! stable version takes the rest. Both arms' outcomes and times in the flow are counted; once
//! each arm has `min_calls`, a canary that abandons more, contains less, hands more callers
//! to agents or keeps them longer than the stable version, by more than the rule's margins, is
//! rolled back by itself. Sans-IO: the host feeds it outcomes and
//! asks it which arm a caller takes.
//!
//! ```text
//!  caller's number ─► FNV-1a % 100 < share? ─► canary version : stable version
//!  IvrDone(flow, version, outcome) ─► record ─► KPIs per arm ─► rule ─► RolledBack(why)
//! ```

use std::time::Duration;

use serde::Deserialize;

/// When a canary takes calls and when it is rolled back (`ivr.canary` in crest.yaml).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryRule {
    /// Percent of new callers (by their number) who get the canary, 0–100.
    pub share_percent: u8,
    /// Calls each arm needs before the rule judges.
    pub min_calls: u64,
    /// Roll back when the canary's abandon rate exceeds the stable one's by more than this
    /// (0.05: five points).
    pub max_abandon_increase: f64,
    /// Roll back when the canary's containment (callers served by the IVR alone) is below the
    /// stable one's by more than this.
    pub max_containment_drop: f64,
    /// Roll back when the canary hands a larger share of callers to agents (a queue) than the
    /// stable one, by more than this.
    pub max_to_agent_increase: f64,
    /// Roll back when callers spend longer in the canary, on average, than in the stable
    /// version, by more than this many seconds.
    pub max_ivr_time_increase_secs: f64,
}

impl Default for CanaryRule {
    fn default() -> Self {
        Self {
            share_percent: 10,
            min_calls: 200,
            max_abandon_increase: 0.05,
            max_containment_drop: 0.05,
            max_to_agent_increase: 0.05,
            max_ivr_time_increase_secs: 20.0,
        }
    }
}

/// What callers of one arm did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Kpis {
    /// Calls that left the flow.
    pub calls: u64,
    /// Served by the IVR alone (the flow hung up).
    pub contained: u64,
    /// Hung up in the flow.
    pub abandoned: u64,
    /// Handed to a queue.
    pub to_agent: u64,
    /// Transferred or booked a callback.
    pub other: u64,
    /// Seconds the calls spent in the flow, all together.
    pub ivr_secs: f64,
}

impl Kpis {
    fn record(&mut self, outcome: &str, time: Duration) {
        self.calls += 1;
        self.ivr_secs += time.as_secs_f64();
        match outcome {
            "hangup" => self.contained += 1,
            "abandoned" => self.abandoned += 1,
            o if o.starts_with("queue:") => self.to_agent += 1,
            _ => self.other += 1,
        }
    }

    /// Share of calls abandoned in the flow.
    pub fn abandon_rate(&self) -> f64 {
        self.abandoned as f64 / self.calls.max(1) as f64
    }

    /// Share of calls served by the IVR alone.
    pub fn containment(&self) -> f64 {
        self.contained as f64 / self.calls.max(1) as f64
    }

    /// Share of calls handed to a queue.
    pub fn to_agent_rate(&self) -> f64 {
        self.to_agent as f64 / self.calls.max(1) as f64
    }

    /// Average time in the flow, seconds.
    pub fn average_ivr_secs(&self) -> f64 {
        self.ivr_secs / self.calls.max(1) as f64
    }
}

/// Where a canary stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryState {
    /// Taking its share of calls.
    Running,
    /// Taking no calls, and why (the rule, or who rolled it back).
    RolledBack(String),
}

/// One flow's canary (see the module docs).
#[derive(Debug, Clone)]
pub struct Canary {
    flow: String,
    stable_version: String,
    canary_version: String,
    rule: CanaryRule,
    stable: Kpis,
    canary: Kpis,
    state: CanaryState,
}

/// A caller's bucket, 0–99: FNV-1a of their number.
pub fn bucket(caller: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in caller.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 100) as u8
}

impl Canary {
    /// Version `canary_version` of `flow` staged beside `stable_version`.
    pub fn new(flow: &str, stable_version: &str, canary_version: &str, rule: CanaryRule) -> Self {
        Self {
            flow: flow.to_owned(),
            stable_version: stable_version.to_owned(),
            canary_version: canary_version.to_owned(),
            rule,
            stable: Kpis::default(),
            canary: Kpis::default(),
            state: CanaryState::Running,
        }
    }

    /// Whether a new call from `caller` gets the canary.
    pub fn takes(&self, caller: &str) -> bool {
        self.state == CanaryState::Running && bucket(caller) < self.rule.share_percent.min(100)
    }

    /// A call of `version` left the flow with `outcome` (`hangup`, `abandoned`,
    /// `queue:NAME`, …) after `time` in it. Returns why, when this call made the rule roll
    /// the canary back.
    pub fn record(&mut self, version: &str, outcome: &str, time: Duration) -> Option<String> {
        if version == self.canary_version {
            self.canary.record(outcome, time);
        } else if version == self.stable_version {
            self.stable.record(outcome, time);
        } else {
            return None;
        }
        if self.state != CanaryState::Running
            || self.canary.calls < self.rule.min_calls
            || self.stable.calls < self.rule.min_calls
        {
            return None;
        }
        let pct = |x: f64| format!("{:.1} %", x * 100.0);
        let (c, s) = (&self.canary, &self.stable);
        let why = if c.abandon_rate() - s.abandon_rate() > self.rule.max_abandon_increase {
            format!(
                "abandon rate {} against {} for version {}",
                pct(c.abandon_rate()),
                pct(s.abandon_rate()),
                self.stable_version
            )
        } else if s.containment() - c.containment() > self.rule.max_containment_drop {
            format!(
                "containment {} against {} for version {}",
                pct(c.containment()),
                pct(s.containment()),
                self.stable_version
            )
        } else if c.to_agent_rate() - s.to_agent_rate() > self.rule.max_to_agent_increase {
            format!(
                "handed to agents {} against {} for version {}",
                pct(c.to_agent_rate()),
                pct(s.to_agent_rate()),
                self.stable_version
            )
        } else if c.average_ivr_secs() - s.average_ivr_secs() > self.rule.max_ivr_time_increase_secs
        {
            format!(
                "average time in the flow {:.1} s against {:.1} s for version {}",
                c.average_ivr_secs(),
                s.average_ivr_secs(),
                self.stable_version
            )
        } else {
            return None;
        };
        self.state = CanaryState::RolledBack(why.clone());
        Some(why)
    }

    /// Stops the canary taking calls (`why`: who asked).
    pub fn roll_back(&mut self, why: &str) {
        self.state = CanaryState::RolledBack(why.to_owned());
    }

    /// The flow.
    pub fn flow(&self) -> &str {
        &self.flow
    }

    /// The stable version.
    pub fn stable_version(&self) -> &str {
        &self.stable_version
    }

    /// The canary's version.
    pub fn canary_version(&self) -> &str {
        &self.canary_version
    }

    /// The rule.
    pub fn rule(&self) -> &CanaryRule {
        &self.rule
    }

    /// Where it stands.
    pub fn state(&self) -> &CanaryState {
        &self.state
    }

    /// The stable arm's figures.
    pub fn stable(&self) -> Kpis {
        self.stable
    }

    /// The canary arm's figures.
    pub fn canary(&self) -> Kpis {
        self.canary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: Duration = Duration::from_secs(40);

    fn number(i: u32) -> String {
        format!("+86138{i:08}")
    }

    #[test]
    fn a_share_of_callers_by_number_and_always_the_same_ones() {
        let c = Canary::new("main", "7", "8", CanaryRule::default());
        let taken = (0..20_000).filter(|i| c.takes(&number(*i))).count();
        assert!(
            (1_700..=2_300).contains(&taken),
            "{taken} of 20,000 for 10 %"
        );
        for i in 0..1_000 {
            assert_eq!(
                c.takes(&number(i)),
                c.takes(&number(i)),
                "stable per caller"
            );
        }
        let none = Canary::new(
            "main",
            "7",
            "8",
            CanaryRule {
                share_percent: 0,
                ..CanaryRule::default()
            },
        );
        assert!((0..1_000).all(|i| !none.takes(&number(i))));
        let all = Canary::new(
            "main",
            "7",
            "8",
            CanaryRule {
                share_percent: 100,
                ..CanaryRule::default()
            },
        );
        assert!((0..1_000).all(|i| all.takes(&number(i))));
    }

    /// Scripted calls: `n` of each arm, the canary abandoning `canary_abandon` of every 100
    /// and the stable arm 3; the rest served by the IVR.
    fn run(canary_abandon: u64, n: u64) -> (Canary, Option<(u64, String)>) {
        let mut c = Canary::new("main", "7", "8", CanaryRule::default());
        let mut verdict = None;
        for i in 0..n {
            let s = if i % 100 < 3 { "abandoned" } else { "hangup" };
            let k = if i % 100 < canary_abandon {
                "abandoned"
            } else {
                "hangup"
            };
            for (v, o) in [("7", s), ("8", k)] {
                if let Some(why) = c.record(v, o, SECS)
                    && verdict.is_none()
                {
                    verdict = Some((i + 1, why));
                }
            }
        }
        (c, verdict)
    }

    #[test]
    fn a_worse_canary_is_rolled_back_once_both_arms_have_enough_calls() {
        let (c, verdict) = run(12, 500);
        let (at, why) = verdict.expect("rolled back");
        assert_eq!(at, 200, "judged at min_calls, not before");
        assert_eq!(why, "abandon rate 12.0 % against 3.0 % for version 7");
        assert_eq!(c.state(), &CanaryState::RolledBack(why));
        assert!(!c.takes(&number(1)) && (0..1_000).all(|i| !c.takes(&number(i))));
        assert_eq!(c.canary().calls, 500, "still counted after the roll-back");
    }

    #[test]
    fn a_canary_within_the_margins_keeps_running() {
        let (c, verdict) = run(6, 1_000);
        assert_eq!(verdict, None);
        assert_eq!(c.state(), &CanaryState::Running);
        let (k, s) = (c.canary(), c.stable());
        assert_eq!((k.calls, s.calls), (1_000, 1_000));
        assert!((k.abandon_rate() - 0.06).abs() < 1e-9);
        assert!((s.containment() - 0.97).abs() < 1e-9);
    }

    #[test]
    fn less_containment_rolls_back_too_and_unknown_versions_are_ignored() {
        let mut c = Canary::new("main", "7", "8", CanaryRule::default());
        let mut why = None;
        for i in 0..200 {
            c.record("7", "hangup", SECS);
            let o = if i % 10 == 0 {
                "hangup"
            } else {
                "queue:refund"
            };
            why = why.or(c.record("8", o, SECS));
        }
        assert_eq!(
            why.as_deref(),
            Some("containment 10.0 % against 100.0 % for version 7")
        );
        assert_eq!(c.canary().to_agent, 180);
        assert_eq!(c.record("6", "abandoned", SECS), None);
        assert_eq!(c.stable().calls, 200);
    }

    /// 200 calls per arm: `(served, to a queue)` of every 100 (the rest transferred) and the
    /// seconds each spends in the flow; the stable arm is (70, 20) at 40 s.
    fn judge(canary: (u64, u64), secs: u64) -> Option<String> {
        let outcome = |i: u64, (served, queued): (u64, u64)| match i % 100 {
            n if n < served => "hangup",
            n if n < served + queued => "queue:refund",
            _ => "transfer",
        };
        let mut c = Canary::new("main", "7", "8", CanaryRule::default());
        let mut why = None;
        for i in 0..200 {
            why = why.or(c.record("7", outcome(i, (70, 20)), SECS));
            why = why.or(c.record("8", outcome(i, canary), Duration::from_secs(secs)));
        }
        why
    }

    #[test]
    fn more_callers_to_agents_or_a_longer_flow_roll_back_each_by_its_margin() {
        // 2 points fewer served, 2 more to agents, 15 s longer: within every margin.
        assert_eq!(judge((68, 22), 55), None);
        // 4 points fewer served (within), but 10 more handed to agents.
        assert_eq!(
            judge((66, 30), 40).as_deref(),
            Some("handed to agents 30.0 % against 20.0 % for version 7")
        );
        // The same outcomes, 25 s longer in the flow.
        assert_eq!(
            judge((70, 20), 65).as_deref(),
            Some("average time in the flow 65.0 s against 40.0 s for version 7")
        );
    }
}
