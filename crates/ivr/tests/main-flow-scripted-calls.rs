//! The shipped flow (config/flows/main.yaml) against its scripted calls (main.test.yaml, its
//! `wav:` turns through PocketSphinx), and the engine's timers and barge-in in virtual time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_ivr::pocketsphinx::{DEBIAN_MODEL, Model, OFF_TOPIC_MARGIN, PocketSphinx};
use crest_ivr::script::{Hear, Script, Transcribe, run_case};
use crest_ivr::{Command, Context, Grammar, Input, Library, Outcome, Session, load};

struct Deaf;

impl Hear for Deaf {
    fn hear(&mut self, _: &Path, _: &Grammar) -> Result<(String, f32), String> {
        Err("no recogniser in this test".into())
    }
}

fn recogniser() -> Transcribe<PocketSphinx> {
    let model = Model::load(Path::new(DEBIAN_MODEL)).unwrap();
    Transcribe(PocketSphinx::new(model, Some(OFF_TOPIC_MARGIN)))
}

fn main_flow() -> Arc<crest_ivr::Flow> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows");
    Arc::new(load(&dir.join("main.yaml"), &Context::default()).unwrap())
}

#[test]
fn every_scripted_call_takes_its_path() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows");
    let flow = main_flow();
    let lib = Arc::new(Library::new([flow.clone()]));
    let text = std::fs::read_to_string(dir.join("main.test.yaml")).unwrap();
    let script: Script = serde_saphyr::from_str(&text).unwrap();
    assert!(script.cases.len() >= 8);
    let mut hear = recogniser();
    for case in &script.cases {
        let r = run_case(&lib, &flow, case, &dir, &mut hear);
        assert!(
            r.failures.is_empty(),
            "{}: {:?}\npath {:?}\nsaid {:?}",
            r.name,
            r.failures,
            r.path,
            r.said
        );
    }
}

#[test]
fn a_wrong_expectation_fails() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows");
    let flow = main_flow();
    let lib = Arc::new(Library::new([flow.clone()]));
    let script: Script = serde_saphyr::from_str(
        "cases:\n  - name: wrong\n    turns: [{keys: \"2\"}]\n    expect: {outcome: \"queue:vip\", vars: {intent: order}, said: [nothing like this]}\n",
    )
    .unwrap();
    let r = run_case(&lib, &flow, &script.cases[0], &dir, &mut Deaf);
    assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
}

fn drain(s: &mut Session) -> Vec<Command> {
    std::iter::from_fn(|| s.poll_command()).collect()
}

#[test]
fn no_input_timers_run_from_the_end_of_the_prompt() {
    let flow = main_flow();
    let lib = Arc::new(Library::new([flow.clone()]));
    let t0 = Instant::now();
    let mut s = Session::new(lib, flow, Default::default());
    s.handle(
        t0,
        Input::Start {
            unix_secs: 1_796_004_000,
        },
    );
    let c = drain(&mut s);
    assert!(matches!(&c[0], Command::Play { text: Some(t), .. } if t == "Welcome to Crest Shop."));
    s.handle(t0 + Duration::from_secs(2), Input::PromptDone);
    let c = drain(&mut s);
    assert!(
        matches!(&c[1], Command::Listen { grammar: Grammar::Intents(i), .. } if i.len() == 3),
        "{c:?}"
    );
    assert_eq!(s.poll_timeout(), None, "no timer while the question plays");
    let done = t0 + Duration::from_secs(9);
    s.handle(done, Input::PromptDone);
    assert_eq!(s.poll_timeout(), Some(done + Duration::from_secs(5)));
    // Nothing for 5 s: "Sorry, I did not hear you." and the question again; twice; then an agent.
    for round in 0..2 {
        let at = s.poll_timeout().unwrap();
        s.handle_timeout(at - Duration::from_millis(1));
        assert!(drain(&mut s).is_empty(), "not before the deadline");
        s.handle_timeout(at);
        let c = drain(&mut s);
        assert!(
            matches!(&c[0], Command::Play { text: Some(t), .. } if t.starts_with("Sorry, I did not hear you. How can I help")),
            "round {round}: {c:?}"
        );
        s.handle(at + Duration::from_secs(7), Input::PromptDone);
    }
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    assert_eq!(s.outcome(), Some(&Outcome::Queued("order-status".into())));
    assert!(
        matches!(drain(&mut s).last(), Some(Command::Enqueue { queue, .. }) if queue == "order-status")
    );
}

#[test]
fn a_key_during_the_prompt_stops_it() {
    let flow = main_flow();
    let lib = Arc::new(Library::new([flow.clone()]));
    let t0 = Instant::now();
    let mut s = Session::new(lib, flow, [("tier".to_owned(), "vip".to_owned())].into());
    s.handle(
        t0,
        Input::Start {
            unix_secs: 1_796_004_000,
        },
    );
    s.handle(t0, Input::PromptDone);
    drain(&mut s);
    s.handle(t0 + Duration::from_secs(1), Input::Key('0'));
    let c = drain(&mut s);
    assert_eq!(c[0], Command::StopPrompt);
    assert_eq!(c[1], Command::StopListening);
    assert!(
        matches!(&c[2], Command::Enqueue { queue, tier: Some(t), .. } if queue == "vip" && t == "vip"),
        "{c:?}"
    );
    assert_eq!(s.flow(), ("main", "2026-12-01"));
}

#[test]
fn after_hours_the_callback_goodbye_plays_and_then_the_flow_hangs_up() {
    let flow = main_flow();
    let lib = Arc::new(Library::new([flow.clone()]));
    let t0 = Instant::now();
    let vars = [("caller".to_owned(), "+8613800000001".to_owned())].into();
    let mut s = Session::new(lib, flow, vars);
    // 16:00 UTC is midnight in Shanghai: closed.
    s.handle(
        t0,
        Input::Start {
            unix_secs: 1_796_054_400,
        },
    );
    let c = drain(&mut s);
    assert!(
        matches!(&c[0], Command::Play { text: Some(t), .. } if t.starts_with("Crest Shop customer service is open")),
        "{c:?}"
    );
    s.handle(t0 + Duration::from_secs(4), Input::PromptDone);
    let c = drain(&mut s);
    assert!(
        matches!(&c[0], Command::Callback { queue, number } if queue == "order-status" && number == "+8613800000001"),
        "{c:?}"
    );
    assert!(
        matches!(&c[1], Command::Play { text: Some(t), .. } if t.ends_with("Goodbye.")),
        "{c:?}"
    );
    assert_eq!(s.outcome(), Some(&Outcome::Callback("order-status".into())));
    s.handle(t0 + Duration::from_secs(8), Input::PromptDone);
    assert!(
        matches!(drain(&mut s)[..], [Command::Hangup { .. }]),
        "the flow hangs up after its goodbye"
    );
}
