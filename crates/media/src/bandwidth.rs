//! Bandwidth accounting: what each leg costs on the wire (codec bitrate plus RTP, UDP and IP
//! headers, both directions), summed per node and per pool (a trunk, a seat pool) against
//! configured budgets. The SIP core asks [`Ledger::admit`] before it takes a call; the ACD
//! reads [`Ledger::headroom`] to route only where the bandwidth is.

use std::collections::HashMap;

use crest_ids::CallId;

use crate::codec::CodecKind;

/// Bits per second of one leg, both directions, at the IP layer.
pub fn leg_bps(codec: CodecKind, ptime_ms: u32, ipv6: bool) -> u64 {
    let ptime = u64::from(ptime_ms.max(1));
    let payload = u64::from(codec.bitrate()) * ptime / 8000;
    let headers = 12 + 8 + if ipv6 { 40 } else { 20 };
    let one_way = (payload + headers) * 8 * 1000 / ptime;
    2 * one_way
}

/// Budgets, bits per second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budgets {
    /// The whole node (`None`: unlimited).
    pub node: Option<u64>,
    /// Named pools (trunks, seat pools); a pool not listed is unlimited.
    pub pools: HashMap<String, u64>,
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bandwidth of {scope} exhausted: {used} of {budget} bit/s in use, {needed} more needed")]
pub struct Refusal {
    /// `node` or the pool's name.
    pub scope: String,
    /// In use now.
    pub used: u64,
    /// The budget.
    pub budget: u64,
    /// What the call needed.
    pub needed: u64,
}

/// One leg's share: its pool and its bits per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegUse {
    /// The pool the leg counts against.
    pub pool: Option<String>,
    /// Bits per second, both directions.
    pub bps: u64,
}

/// Usage of one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// `node` or the pool's name.
    pub scope: String,
    /// Bits per second in use.
    pub used: u64,
    /// Budget, if any.
    pub budget: Option<u64>,
}

/// The running totals.
#[derive(Debug, Default)]
pub struct Ledger {
    budgets: Budgets,
    node: u64,
    pools: HashMap<String, u64>,
    calls: HashMap<CallId, [LegUse; 2]>,
}

impl Ledger {
    /// An empty ledger with `budgets`.
    pub fn new(budgets: Budgets) -> Self {
        Self {
            budgets,
            ..Self::default()
        }
    }

    /// Replaces the budgets (configuration reload); calls in progress keep their share.
    pub fn set_budgets(&mut self, budgets: Budgets) {
        self.budgets = budgets;
    }

    /// Bits per second free in `pool` (and on the node): `None` when unlimited.
    pub fn headroom(&self, pool: Option<&str>) -> Option<u64> {
        let node = self.budgets.node.map(|b| b.saturating_sub(self.node));
        let pool = pool.and_then(|p| {
            let budget = self.budgets.pools.get(p)?;
            Some(budget.saturating_sub(self.pools.get(p).copied().unwrap_or(0)))
        });
        match (node, pool) {
            (Some(n), Some(p)) => Some(n.min(p)),
            (n, p) => n.or(p),
        }
    }

    fn check(
        &self,
        scope: &str,
        used: u64,
        budget: Option<u64>,
        needed: u64,
    ) -> Result<(), Refusal> {
        match budget {
            Some(budget) if used + needed > budget => Err(Refusal {
                scope: scope.to_owned(),
                used,
                budget,
                needed,
            }),
            _ => Ok(()),
        }
    }

    /// Takes call `key` with its two legs, or refuses it if a budget would be exceeded.
    pub fn admit(&mut self, key: CallId, legs: [LegUse; 2]) -> Result<(), Refusal> {
        let total: u64 = legs.iter().map(|l| l.bps).sum();
        self.check("node", self.node, self.budgets.node, total)?;
        let mut per_pool: HashMap<&str, u64> = HashMap::new();
        for l in &legs {
            if let Some(p) = &l.pool {
                *per_pool.entry(p).or_default() += l.bps;
            }
        }
        for (p, needed) in per_pool {
            let used = self.pools.get(p).copied().unwrap_or(0);
            self.check(p, used, self.budgets.pools.get(p).copied(), needed)?;
        }
        self.release(key);
        self.add(&legs, true);
        self.calls.insert(key, legs);
        Ok(())
    }

    fn add(&mut self, legs: &[LegUse], plus: bool) {
        for l in legs {
            let apply = |v: &mut u64| {
                *v = if plus {
                    *v + l.bps
                } else {
                    v.saturating_sub(l.bps)
                }
            };
            apply(&mut self.node);
            if let Some(p) = &l.pool {
                apply(self.pools.entry(p.clone()).or_default());
            }
        }
    }

    /// The negotiated figure of one leg (0 or 1) of an admitted call, replacing the estimate.
    pub fn update(&mut self, key: CallId, leg: usize, bps: u64) {
        let Some(mut legs) = self.calls.remove(&key) else {
            return;
        };
        self.add(&legs, false);
        if let Some(l) = legs.get_mut(leg) {
            l.bps = bps;
        }
        self.add(&legs, true);
        self.calls.insert(key, legs);
    }

    /// Frees what call `key` held.
    pub fn release(&mut self, key: CallId) {
        if let Some(legs) = self.calls.remove(&key) {
            self.add(&legs, false);
        }
    }

    /// Usage of the node and of every pool with a budget or in use, for metrics.
    pub fn usage(&self) -> Vec<Usage> {
        let mut out = vec![Usage {
            scope: "node".into(),
            used: self.node,
            budget: self.budgets.node,
        }];
        let mut names: Vec<&String> = self.budgets.pools.keys().chain(self.pools.keys()).collect();
        names.sort();
        names.dedup();
        out.extend(names.into_iter().map(|n| Usage {
            scope: n.clone(),
            used: self.pools.get(n).copied().unwrap_or(0),
            budget: self.budgets.pools.get(n).copied(),
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(pool: Option<&str>, bps: u64) -> LegUse {
        LegUse {
            pool: pool.map(str::to_owned),
            bps,
        }
    }

    #[test]
    fn leg_bitrates_include_headers_both_ways() {
        // G.711, 20 ms: (160 + 40) bytes × 50 pps × 8 = 80 kbit/s each way.
        assert_eq!(leg_bps(CodecKind::Pcmu, 20, false), 160_000);
        assert_eq!(
            leg_bps(CodecKind::Pcma, 20, true),
            176_000,
            "IPv6: 20 bytes more"
        );
        // Opus at 24 kbit/s: (60 + 40) × 50 × 8 = 40 kbit/s each way.
        assert_eq!(leg_bps(CodecKind::Opus, 20, false), 80_000);
        assert_eq!(
            leg_bps(CodecKind::G722, 30, false),
            2 * 74_666,
            "30 ms: fewer headers"
        );
    }

    #[test]
    fn budgets_refuse_the_call_that_does_not_fit_and_free_on_release() {
        let mut l = Ledger::new(Budgets {
            node: Some(1_000_000),
            pools: [("agents".to_owned(), 400_000)].into(),
        });
        let g711 = 160_000;
        l.admit(
            CallId(1),
            [leg(Some("trunk"), g711), leg(Some("agents"), g711)],
        )
        .unwrap();
        l.admit(
            CallId(2),
            [leg(Some("trunk"), g711), leg(Some("agents"), g711)],
        )
        .unwrap();
        assert_eq!(l.headroom(Some("agents")), Some(80_000));
        let e = l
            .admit(
                CallId(3),
                [leg(Some("trunk"), g711), leg(Some("agents"), g711)],
            )
            .unwrap_err();
        assert_eq!(
            (e.scope.as_str(), e.used, e.needed),
            ("agents", 320_000, 160_000)
        );
        // An agent on Opus needs less: call 2's agent leg is renegotiated.
        l.update(CallId(2), 1, 80_000);
        l.admit(
            CallId(3),
            [leg(Some("trunk"), g711), leg(Some("agents"), 80_000)],
        )
        .unwrap();
        assert_eq!(l.headroom(Some("agents")), Some(80_000));
        let e = l
            .admit(CallId(4), [leg(None, 500_000), leg(None, 0)])
            .unwrap_err();
        assert_eq!(e.scope, "node");
        for k in 1..=3 {
            l.release(CallId(k));
        }
        let usage = l.usage();
        assert!(usage.iter().all(|u| u.used == 0), "{usage:?}");
        assert_eq!(usage.len(), 3, "node, agents, trunk");
        assert_eq!(l.headroom(None), Some(1_000_000));
        assert_eq!(Ledger::default().headroom(Some("x")), None, "unlimited");
    }
}
