//! Admission, sans-IO: before a caller joins a queue, decide whether they queue, go to
//! self-service first, are offered a callback, or are refused politely (an announcement, then
//! 503 with Retry-After), and say why. Inputs: the media bandwidth headroom of the node and the
//! pool (from the media ledger), the queue's length and the caller's predicted wait against
//! caps, and the surge level.

use std::time::Duration;

use crate::surge::SurgeLevel;

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Join the queue.
    Admit,
    /// Join the queue, hearing position and wait announcements and a callback offer (the
    /// circuit breaker).
    AdmitWithCallbackOffer,
    /// Self-service in the IVR first (the queue stays open if it does not help).
    SelfService,
    /// Offer a callback instead of waiting.
    OfferCallback,
    /// An announcement, then 503 with Retry-After.
    Refuse {
        /// Seconds for Retry-After.
        retry_after: Duration,
    },
}

/// Why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Nothing stands in the way.
    Normal,
    /// Not enough media bandwidth on the node or in the pool.
    Bandwidth,
    /// The queue is at its length cap.
    QueueFull,
    /// The predicted wait is over the cap.
    LongWait,
    /// The surge level asks for it.
    Surge(SurgeLevel),
}

/// Caps and choices, per queue.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Callers waiting in the queue beyond which new ones are not queued.
    pub max_queue: usize,
    /// A predicted wait beyond which the caller is offered a callback.
    pub max_wait_secs: u64,
    /// Whether callbacks may be offered (otherwise: refuse).
    pub callbacks: bool,
    /// Whether the caller's problem has a self-service path in the IVR.
    pub self_service: bool,
    /// Retry-After when refusing.
    pub retry_after_secs: u64,
    /// Under the circuit breaker, the message (its template's name) promised to callers who
    /// queue anyway, e.g. a coupon by SMS; none: no compensation.
    pub compensation: Option<String>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_queue: 500,
            max_wait_secs: 600,
            callbacks: true,
            self_service: true,
            retry_after_secs: 300,
            compensation: None,
        }
    }
}

/// The situation of one arriving caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// Bit/s the call would need.
    pub call_bps: u64,
    /// Bit/s free for it (node and pool; `None`: unlimited).
    pub headroom_bps: Option<u64>,
    /// Callers already waiting in the queue.
    pub queue_len: usize,
    /// The caller's predicted wait (`None`: nobody staffed).
    pub ewt: Option<Duration>,
    /// The surge level.
    pub surge: SurgeLevel,
    /// The caller already went through self-service.
    pub self_served: bool,
}

/// The compensation message for a caller admitted for `reason`: only under the circuit
/// breaker, and only when one is configured.
pub fn compensation(cfg: &AdmissionConfig, reason: Reason) -> Option<&str> {
    (reason == Reason::Surge(SurgeLevel::CircuitBreaker))
        .then_some(cfg.compensation.as_deref())
        .flatten()
}

/// Decides (see the module docs); the first rule that applies wins: bandwidth, queue cap,
/// self-service under surge, the circuit breaker, the wait cap.
pub fn decide(cfg: &AdmissionConfig, s: &Situation) -> (Admission, Reason) {
    let refuse = Admission::Refuse {
        retry_after: Duration::from_secs(cfg.retry_after_secs),
    };
    let callback_or_refuse = if cfg.callbacks {
        Admission::OfferCallback
    } else {
        refuse
    };
    if s.headroom_bps.is_some_and(|h| h < s.call_bps) {
        return (refuse, Reason::Bandwidth);
    }
    if s.queue_len >= cfg.max_queue {
        return (callback_or_refuse, Reason::QueueFull);
    }
    if s.surge >= SurgeLevel::SelfServiceFirst && cfg.self_service && !s.self_served {
        return (Admission::SelfService, Reason::Surge(s.surge));
    }
    if s.surge == SurgeLevel::CircuitBreaker {
        let a = if cfg.callbacks {
            Admission::AdmitWithCallbackOffer
        } else {
            Admission::Admit
        };
        return (a, Reason::Surge(s.surge));
    }
    let cap = Duration::from_secs(cfg.max_wait_secs);
    if s.ewt.is_none_or(|e| e > cap) {
        return (callback_or_refuse, Reason::LongWait);
    }
    (Admission::Admit, Reason::Normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal() -> Situation {
        Situation {
            call_bps: 160_000,
            headroom_bps: Some(1_000_000),
            queue_len: 10,
            ewt: Some(Duration::from_secs(60)),
            surge: SurgeLevel::Normal,
            self_served: false,
        }
    }

    #[test]
    fn each_rule_with_its_reason() {
        let cfg = AdmissionConfig::default();
        assert_eq!(decide(&cfg, &normal()), (Admission::Admit, Reason::Normal));
        let refuse = Admission::Refuse {
            retry_after: Duration::from_secs(300),
        };
        let tight = Situation {
            headroom_bps: Some(100_000),
            ..normal()
        };
        assert_eq!(decide(&cfg, &tight), (refuse, Reason::Bandwidth));
        let full = Situation {
            queue_len: 500,
            ..normal()
        };
        assert_eq!(
            decide(&cfg, &full),
            (Admission::OfferCallback, Reason::QueueFull)
        );
        let no_callbacks = AdmissionConfig {
            callbacks: false,
            ..AdmissionConfig::default()
        };
        assert_eq!(decide(&no_callbacks, &full), (refuse, Reason::QueueFull));
        let surge3 = Situation {
            surge: SurgeLevel::SelfServiceFirst,
            ..normal()
        };
        assert_eq!(
            decide(&cfg, &surge3),
            (
                Admission::SelfService,
                Reason::Surge(SurgeLevel::SelfServiceFirst)
            )
        );
        let served = Situation {
            self_served: true,
            ..surge3
        };
        assert_eq!(decide(&cfg, &served), (Admission::Admit, Reason::Normal));
        let breaker = Situation {
            surge: SurgeLevel::CircuitBreaker,
            self_served: true,
            ewt: Some(Duration::from_secs(3600)),
            ..normal()
        };
        assert_eq!(
            decide(&cfg, &breaker),
            (
                Admission::AdmitWithCallbackOffer,
                Reason::Surge(SurgeLevel::CircuitBreaker)
            )
        );
        let long = Situation {
            ewt: Some(Duration::from_secs(601)),
            ..normal()
        };
        assert_eq!(
            decide(&cfg, &long),
            (Admission::OfferCallback, Reason::LongWait)
        );
        let unstaffed = Situation {
            ewt: None,
            ..normal()
        };
        assert_eq!(decide(&cfg, &unstaffed).1, Reason::LongWait);
        let unlimited = Situation {
            headroom_bps: None,
            ..normal()
        };
        assert_eq!(decide(&cfg, &unlimited).0, Admission::Admit);
    }
}
