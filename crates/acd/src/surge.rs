//! Surge levels, sans-IO: the arrival rate over a sliding window divided by the configured
//! baseline. Levels rise as soon as the ratio crosses a threshold and fall only after the ratio
//! has stayed below a lower mark (hysteresis) for a dwell time, so a level does not flap at
//! its edge.
//!
//! ```text
//!   ratio ≥ 3× ─► SelfServiceFirst   ≥ 5× ─► StandbyAgents   ≥ 8× ─► CircuitBreaker
//!   down one level when ratio < threshold × hysteresis for `dwell`
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How busy the center is against its normal day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SurgeLevel {
    /// Normal operation.
    Normal,
    /// ≥ 3×: the IVR pushes self-service first.
    SelfServiceFirst,
    /// ≥ 5×: the standby agent pool is activated.
    StandbyAgents,
    /// ≥ 8×: new callers are queued with position and wait announcements and a callback
    /// offer (and the compensation message hook).
    CircuitBreaker,
}

impl SurgeLevel {
    const ALL: [Self; 4] = [
        Self::Normal,
        Self::SelfServiceFirst,
        Self::StandbyAgents,
        Self::CircuitBreaker,
    ];

    /// The level as a number (0–3) for metrics.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Surge settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurgeConfig {
    /// Normal arrivals per minute.
    pub baseline_per_min: f64,
    /// Width of the sliding window.
    pub window_secs: u64,
    /// Ratios that raise the level to SelfServiceFirst, StandbyAgents, CircuitBreaker.
    pub thresholds: [f64; 3],
    /// A level is left when the ratio is below its threshold times this.
    pub hysteresis: f64,
    /// … for this long.
    pub dwell_secs: u64,
}

impl Default for SurgeConfig {
    fn default() -> Self {
        Self {
            baseline_per_min: 60.0,
            window_secs: 60,
            thresholds: [3.0, 5.0, 8.0],
            hysteresis: 0.8,
            dwell_secs: 60,
        }
    }
}

/// A change of level, to log, count and act on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SurgeChange {
    /// The level before.
    pub from: SurgeLevel,
    /// The level now.
    pub to: SurgeLevel,
    /// The ratio that moved it.
    pub ratio: f64,
}

/// The detector: arrivals counted in one-second buckets over the window.
#[derive(Debug)]
pub struct Surge {
    cfg: SurgeConfig,
    /// (second, arrivals in it), oldest first.
    buckets: VecDeque<(u64, u32)>,
    count: u64,
    epoch: Instant,
    level: SurgeLevel,
    /// Since when the ratio has been below the current level's exit mark.
    below_since: Option<Instant>,
}

impl Surge {
    /// A detector at normal level; `now` is its epoch.
    pub fn new(now: Instant, cfg: SurgeConfig) -> Self {
        Self {
            cfg,
            buckets: VecDeque::new(),
            count: 0,
            epoch: now,
            level: SurgeLevel::Normal,
            below_since: None,
        }
    }

    /// The current level.
    pub fn level(&self) -> SurgeLevel {
        self.level
    }

    fn expire(&mut self, now: Instant) {
        let second = now.saturating_duration_since(self.epoch).as_secs();
        while let Some(&(s, n)) = self.buckets.front() {
            if s + self.cfg.window_secs.max(1) > second {
                break;
            }
            self.count -= u64::from(n);
            self.buckets.pop_front();
        }
    }

    /// Arrivals per window divided by the baseline for the same window.
    pub fn ratio(&mut self, now: Instant) -> f64 {
        self.expire(now);
        let window = self.cfg.window_secs.max(1) as f64;
        let expected = self.cfg.baseline_per_min.max(1e-9) * window / 60.0;
        self.count as f64 / expected
    }

    /// Counts an arrival; the level change it caused, if any.
    pub fn on_arrival(&mut self, now: Instant) -> Option<SurgeChange> {
        let second = now.saturating_duration_since(self.epoch).as_secs();
        match self.buckets.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => self.buckets.push_back((second, 1)),
        }
        self.count += 1;
        self.update(now)
    }

    /// Re-evaluates the level at `now` (call it on a timer too, so that levels fall when
    /// arrivals stop).
    pub fn update(&mut self, now: Instant) -> Option<SurgeChange> {
        let ratio = self.ratio(now);
        let target = SurgeLevel::ALL
            .iter()
            .rev()
            .find(|l| l.index() == 0 || ratio >= self.cfg.thresholds[l.index() - 1])
            .copied()
            .unwrap_or(SurgeLevel::Normal);
        let from = self.level;
        if target > from {
            self.level = target;
            self.below_since = None;
            return Some(SurgeChange {
                from,
                to: target,
                ratio,
            });
        }
        if from == SurgeLevel::Normal {
            return None;
        }
        let exit = self.cfg.thresholds[from.index() - 1] * self.cfg.hysteresis;
        if ratio >= exit {
            self.below_since = None;
            return None;
        }
        let since = *self.below_since.get_or_insert(now);
        if now.saturating_duration_since(since) < Duration::from_secs(self.cfg.dwell_secs) {
            return None;
        }
        self.level = SurgeLevel::ALL[from.index() - 1];
        self.below_since = None;
        Some(SurgeChange {
            from,
            to: self.level,
            ratio,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arrivals at `per_min` for `secs` seconds from `start`, evenly spaced; the changes.
    fn feed(s: &mut Surge, start: Instant, per_min: f64, secs: u64) -> Vec<SurgeChange> {
        let gap = Duration::from_secs_f64(60.0 / per_min);
        let end = start + Duration::from_secs(secs);
        let mut out = Vec::new();
        let (mut t, mut tick) = (start, start);
        while t < end {
            while tick <= t {
                out.extend(s.update(tick));
                tick += Duration::from_secs(1);
            }
            out.extend(s.on_arrival(t));
            t += gap;
        }
        out
    }

    #[test]
    fn levels_rise_with_the_rate_and_fall_slowly() {
        let t0 = Instant::now();
        let mut s = Surge::new(t0, SurgeConfig::default()); // baseline 60/min
        assert!(feed(&mut s, t0, 60.0, 120).is_empty(), "a normal day");
        let up: Vec<_> = feed(&mut s, t0 + Duration::from_secs(120), 600.0, 120)
            .iter()
            .map(|c| c.to)
            .collect();
        assert_eq!(
            up,
            [
                SurgeLevel::SelfServiceFirst,
                SurgeLevel::StandbyAgents,
                SurgeLevel::CircuitBreaker
            ],
            "10× climbs through every level"
        );
        // Back to 7×: above 8 × 0.8 = 6.4, so the breaker holds (hysteresis).
        let t1 = t0 + Duration::from_secs(240);
        assert!(feed(&mut s, t1, 420.0, 120).is_empty());
        assert_eq!(s.level(), SurgeLevel::CircuitBreaker);
        // 4.5×: below 6.4, one level down after the 60 s dwell; above 5 × 0.8 = 4, so it
        // stays there.
        let t2 = t1 + Duration::from_secs(120);
        let down: Vec<_> = feed(&mut s, t2, 270.0, 180).iter().map(|c| c.to).collect();
        assert_eq!(down, [SurgeLevel::StandbyAgents]);
        // Silence: all the way down, one dwell per level.
        let t3 = t2 + Duration::from_secs(180);
        let mut changes = Vec::new();
        for k in 0..400 {
            changes.extend(s.update(t3 + Duration::from_secs(k)));
        }
        let tos: Vec<_> = changes.iter().map(|c| c.to).collect();
        assert_eq!(tos, [SurgeLevel::SelfServiceFirst, SurgeLevel::Normal]);
    }

    #[test]
    fn a_short_burst_inside_the_window_counts_as_its_rate_over_the_window() {
        let t0 = Instant::now();
        let mut s = Surge::new(t0, SurgeConfig::default());
        // 200 calls in 5 s: 200 per 60 s window against 60 expected.
        for i in 0..200u64 {
            s.on_arrival(t0 + Duration::from_millis(25 * i));
        }
        assert_eq!(s.level(), SurgeLevel::SelfServiceFirst);
        assert!((s.ratio(t0 + Duration::from_secs(6)) - 200.0 / 60.0).abs() < 1e-9);
        assert_eq!(
            s.ratio(t0 + Duration::from_secs(65)),
            0.0,
            "out of the window"
        );
    }
}
