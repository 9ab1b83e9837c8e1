//! Crest automatic call distributor (placeholder crate of the workspace).
//!
//! Will hold the sans-IO ACD core: agents, queues, weighted skill routing, overflow, admission,
//! surge levels, EWT, callbacks and the simulator (issue "ACD").
