//! Crest's automatic call distributor, sans-IO: `(now, input) → decisions`, no clock and no
//! sockets. This release holds the model (`config/acd.yaml`: agents with skills and ratings,
//! seat pools with neighbours, queues with score weights) and the routing core: agent states
//! (offline, available, ringing, on call, wrap-up, away), weighted skill scoring, priority with
//! ageing, overflow to neighbouring pools as explicit steps, ring-out handling; wait estimates
//! with their measured error; surge levels with hysteresis; admission decisions with reasons.
//! Callbacks, the simulator and wiring queues into calls come with the rest of the ACD issue.
//!
//! ```text
//!   Input ──► Acd::handle(now, input) ──► poll_output(): Offer / Retract / Overflow / AgentAway
//!             Acd::handle_timeout(now) ◄── poll_timeout(): ring, wrap-up and overflow timers
//! ```

pub mod admission;
pub mod model;
pub mod router;
pub mod sim;
pub mod surge;

pub use admission::{Admission, AdmissionConfig, Reason, Situation};
pub use model::{
    AcdConfig, AgentConfig, AgentId, CallId, Caller, Model, ModelError, PoolId, QueueId, SkillId,
};
pub use router::{
    Acd, AgentState, Counters, HeldCaller, Input, Output, QueueStats, RECENT_MINUTES, WAIT_BUCKETS,
};
pub use surge::{Surge, SurgeChange, SurgeConfig, SurgeLevel};
