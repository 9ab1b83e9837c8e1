//! Fuzzing on the stable toolchain: the shipped flow, mutated byte by byte, line by line and
//! spliced, through the checker and (where it checks) the interpreter with random input. The
//! checker either accepts or gives errors with a line; nothing panics. The cargo-fuzz target
//! `fuzz/fuzz_targets/flow.rs` runs the same entry point.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_ivr::{Context, Input, Library, Session, check};
use proptest::prelude::*;

fn shipped() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows/main.yaml"),
    )
    .unwrap()
}

/// The checker, then a short random call through what checks.
fn run(text: &str, inputs: &[u8]) {
    let Ok(flow) = check(Path::new("fuzz.yaml"), text, &Context::default()) else {
        return;
    };
    let flow = Arc::new(flow);
    let lib = Arc::new(Library::new([flow.clone()]));
    let mut s = Session::new(lib, flow, Default::default());
    let mut now = Instant::now();
    s.handle(
        now,
        Input::Start {
            unix_secs: 1_796_004_000,
        },
    );
    for &b in inputs {
        now += Duration::from_millis(u64::from(b) * 40);
        match b % 7 {
            0 => s.handle(now, Input::PromptDone),
            1 => s.handle(now, Input::BargeIn),
            2 => s.handle(
                now,
                Input::Key(char::from(b"0123456789*#"[usize::from(b) % 12])),
            ),
            3 => s.handle(
                now,
                Input::Speech {
                    text: "where is my order",
                    confidence: 1.0,
                },
            ),
            4 => s.handle(
                now,
                Input::LookupDone {
                    status: 200,
                    body: "{\"status\":\"x\"}",
                },
            ),
            5 => s.handle(now, Input::LookupFailed),
            _ => s.handle_timeout(now),
        }
        while s.poll_command().is_some() {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn mutated_bytes_never_panic(pos in 0usize..4000, byte in any::<u8>(), inputs in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut b = shipped().into_bytes();
        let at = pos % b.len();
        b[at] = byte;
        run(&String::from_utf8_lossy(&b), &inputs);
    }

    #[test]
    fn dropped_and_repeated_lines_never_panic(drop in 0usize..200, dup in 0usize..200, inputs in proptest::collection::vec(any::<u8>(), 0..40)) {
        let text = shipped();
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if i == drop % lines.len() {
                continue;
            }
            out.push(*l);
            if i == dup % lines.len() {
                out.push(*l);
            }
        }
        run(&out.join("\n"), &inputs);
    }

    #[test]
    fn random_text_never_panics(text in "[ -~\n]{0,400}") {
        run(&text, &[]);
    }
}

#[test]
fn a_mutated_flow_error_names_a_line() {
    let text = shipped().replace("next: order_lookup", "next: order_lokup");
    let e = check(Path::new("m.yaml"), &text, &Context::default()).unwrap_err();
    assert!(e.iter().all(|e| e.line > 0), "{e:?}");
    assert!(e[0].to_string().starts_with("m.yaml:"));
}
