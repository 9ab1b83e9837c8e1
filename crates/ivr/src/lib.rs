//! Crest IVR (placeholder crate of the workspace).
//!
//! Will hold the YAML flow model, its validator and the sans-IO flow engine with ASR and TTS
//! behind traits (issue "IVR").
