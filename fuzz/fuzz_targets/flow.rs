//! IVR flow files through the checker (the same entry point as
//! crates/ivr/tests/flow-checker-never-panics.rs on stable).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = crest_ivr::check(
        std::path::Path::new("fuzz.yaml"),
        &text,
        &crest_ivr::Context::default(),
    );
});
