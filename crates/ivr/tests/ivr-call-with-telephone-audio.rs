//! A caller in `config/flows/main.yaml` at the level of the call's media: prompts rendered by
//! espeak-ng at 8 kHz, the caller's telephone-band espeak speech fed in 20 ms frames to
//! PocketSphinx, keys, a lookup answered, the end of each prompt reported as the media plane
//! would — in virtual time. "where is my order" + keyed order number → the order's status and a
//! goodbye; "talk to an agent" → the order-status queue; a key press barges in on the question.

#[path = "common/speech.rs"]
mod speech;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crest_ivr::call::{Action, IvrCall};
use crest_ivr::pocketsphinx::{DEBIAN_MODEL, Model, OFF_TOPIC_MARGIN, PocketSphinx};
use crest_ivr::tts::EspeakNg;
use crest_ivr::{Command, Context, Library, Outcome, Session, load};

fn caller(tts: &Arc<EspeakNg>) -> IvrCall<PocketSphinx> {
    let flow = Arc::new(
        load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows/main.yaml"),
            &Context::default(),
        )
        .unwrap(),
    );
    let lib = Arc::new(Library::new([flow.clone()]));
    let vars = [("caller".to_owned(), "+8613800000001".to_owned())].into();
    let model = Model::load(Path::new(DEBIAN_MODEL)).unwrap();
    IvrCall::new(
        Session::new(lib, flow, vars),
        PocketSphinx::new(model, Some(OFF_TOPIC_MARGIN)),
        tts.clone(),
        8000,
    )
}

/// Plays what the IVR asks to its end (time passes by the prompt's length) and returns the
/// prompts' texts; answers lookups from `orders`.
fn play_out(ivr: &mut IvrCall<PocketSphinx>, now: &mut Instant, said: &mut Vec<String>) {
    while let Some(a) = ivr.poll_action() {
        match a {
            Action::Play {
                pcm, rate, text, ..
            } => {
                assert!(pcm.len() as u32 > rate / 4, "a real prompt: {text:?}");
                *now += Duration::from_secs_f64(pcm.len() as f64 / f64::from(rate));
                said.push(text);
                ivr.handle_prompt_done(*now);
            }
            Action::Lookup { url, .. } => {
                assert_eq!(url, "http://127.0.0.1:8099/orders/1234");
                ivr.handle_lookup(
                    *now,
                    Some((200, r#"{"status":"out for delivery","eta":"today"}"#)),
                );
            }
            Action::StopPrompt | Action::Leave(_) => {}
        }
    }
}

/// The caller says `pcm` (then a second of a quiet line: low noise, as a phone line carries,
/// not digital zeros), 20 ms at a time.
fn say(ivr: &mut IvrCall<PocketSphinx>, now: &mut Instant, pcm: &[i16]) {
    let mut audio = pcm.to_vec();
    let mut x = 0x2545_F491u32;
    audio.extend((0..8000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x % 61) as i16 - 30
    }));
    for f in audio.chunks(160) {
        *now += Duration::from_millis(20);
        ivr.handle_audio(*now, f);
    }
}

fn scratch() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("crest-ivr-call-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn spoken_order_question_and_keyed_number_get_the_order_status() {
    let tts = Arc::new(EspeakNg::new(175));
    let mut ivr = caller(&tts);
    let mut now = Instant::now();
    let mut said = Vec::new();
    ivr.start(now, 1_796_004_000);
    play_out(&mut ivr, &mut now, &mut said);
    assert_eq!(said[0], "Welcome to Crest Shop.");
    assert!(said[1].starts_with("How can I help you?"));
    let dir = scratch();
    say(
        &mut ivr,
        &mut now,
        &speech::telephone_speech(&dir, "where is my order", "en-us", 150),
    );
    play_out(&mut ivr, &mut now, &mut said);
    assert!(
        said.last()
            .unwrap()
            .starts_with("Please key in or say your order number"),
        "{said:?}"
    );
    for k in "1234#".chars() {
        now += Duration::from_millis(300);
        ivr.handle_key(now, k);
    }
    play_out(&mut ivr, &mut now, &mut said);
    assert!(
        said.iter()
            .any(|s| s == "Your order 1234 is out for delivery and arrives today."),
        "{said:?}"
    );
    // "Press 1 to talk to an agent, or 9 to end the call."
    ivr.handle_key(now, '9');
    play_out(&mut ivr, &mut now, &mut said);
    assert_eq!(ivr.outcome(), Some(&Outcome::HungUp("self-service".into())));
    assert_eq!(
        ivr.session().vars().get("intent").map(String::as_str),
        Some("order")
    );
    assert!(ivr.errors().is_empty(), "{:?}", ivr.errors());
}

#[test]
fn spoken_agent_request_is_queued_and_a_key_barges_in() {
    let tts = Arc::new(EspeakNg::new(175));
    let dir = scratch();
    let mut ivr = caller(&tts);
    let mut now = Instant::now();
    let mut said = Vec::new();
    ivr.start(now, 1_796_004_000);
    play_out(&mut ivr, &mut now, &mut said);
    say(
        &mut ivr,
        &mut now,
        &speech::telephone_speech(&dir, "talk to an agent", "en-gb", 185),
    );
    let mut left = None;
    while let Some(a) = ivr.poll_action() {
        if let Action::Leave(c) = a {
            left = Some(c);
        }
    }
    assert!(
        matches!(&left, Some(Command::Enqueue { queue, .. }) if queue == "order-status"),
        "{left:?} (said {said:?}, path {:?})",
        ivr.session().path()
    );

    // Another caller presses 2 while the question is still playing: it stops, refund queue.
    let mut ivr = caller(&tts);
    ivr.start(now, 1_796_004_000);
    let Some(Action::Play { .. }) = ivr.poll_action() else {
        panic!("the welcome prompt");
    };
    ivr.handle_prompt_done(now);
    let Some(Action::Play { barge_in: true, .. }) = ivr.poll_action() else {
        panic!("the question, with barge-in");
    };
    ivr.handle_key(now + Duration::from_secs(1), '2');
    assert_eq!(ivr.poll_action(), Some(Action::StopPrompt));
    assert!(matches!(
        ivr.poll_action(),
        Some(Action::Leave(Command::Enqueue { queue, .. })) if queue == "refund"
    ));
    // The prompts were rendered once each and reused by the second caller.
    assert!(tts.cached_count() >= 2);
}
