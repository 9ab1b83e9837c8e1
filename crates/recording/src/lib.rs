//! Crest call recording (placeholder crate of the workspace).
//!
//! Will hold the recording encoder, per-recording envelope encryption, hot and cold tiers and
//! the index (issue "Recording").
