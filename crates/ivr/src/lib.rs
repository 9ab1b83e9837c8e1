//! Crest IVR: flows that admins write in YAML (`config/flows/*.yaml`, docs/ivr.md), checked
//! before they run, and a sans-IO interpreter per call.
//!
//! ```text
//!  flow.yaml ─► load::check (schema: file:line:col; graph: targets, reachability, exits,
//!                            input handling, queues, backends, prompt files)
//!                    │ Flow (name, version)
//!                    ▼
//!  Session::handle(now, Start | PromptDone | BargeIn | Key | Speech | LookupDone …)
//!        └─► poll_command(): Play · Listen(grammar) · Lookup · Enqueue · Transfer · Callback ·
//!                            Hangup · CardData
//! ```
//!
//! Speech comes from a recogniser behind a trait; the engine sees only its
//! text and confidence, and maps it to an intent with the `ask`'s example phrases.
//!
//! `reload` keeps the flows of a directory in force as they change; `canary` decides which
//! callers get a staged version and rolls a worse one back.

pub mod asr;
pub mod canary;
pub mod engine;
pub mod intent;
pub mod interp;
pub mod load;
pub mod model;
pub mod pocketsphinx;
pub mod reload;
pub mod script;
pub mod tts;

pub use engine::{Command, Grammar, Input, Library, Outcome, Session};
pub use load::{Context, Flow, FlowError, check, load};

/// The JSON Schema of flow files (`config/schema/flow.schema.json`), from the Rust types.
pub fn schema() -> String {
    let s = schemars::schema_for!(model::FlowFile);
    // A schema built from our own types always serialises.
    serde_json::to_string_pretty(&s).expect("schema serialises") + "\n"
}
