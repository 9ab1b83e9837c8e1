//! Telephone speech through the real recogniser: espeak-ng says the main menu's phrases, sox
//! band-limits them to 300–3400 Hz and codes them as 8 kHz G.711 μ-law (what a call carries),
//! and PocketSphinx, with the grammar the `ask` makes, hears the right intent; off-topic speech
//! is no intent; spoken digits come back as digits.

#[path = "common/speech.rs"]
mod speech;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crest_ivr::asr::Recognizer as _;
use crest_ivr::pocketsphinx::{DEBIAN_MODEL, Model, OFF_TOPIC_MARGIN, PocketSphinx};
use crest_ivr::{Context, Grammar, intent, load};
use speech::{hear, telephone_speech};

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("crest-asr-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn telephone_speech_reaches_the_right_intent() {
    let flow = Arc::new(
        load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows/main.yaml"),
            // The shipped flow's example words are all in the recogniser's dictionary.
            &Context {
                dictionary: Some(Arc::new(
                    Model::load(Path::new(DEBIAN_MODEL)).unwrap().words(),
                )),
                ..Context::default()
            },
        )
        .unwrap(),
    );
    let Some(crest_ivr::model::Node::Ask(menu)) = flow.node("main_menu").cloned() else {
        panic!("main_menu is an ask");
    };
    let grammar = Grammar::Intents(
        menu.intents
            .iter()
            .map(|(k, i)| (k.clone(), i.examples.clone()))
            .collect(),
    );
    let model = Model::load(Path::new(DEBIAN_MODEL)).unwrap();
    let mut r = PocketSphinx::new(model, Some(OFF_TOPIC_MARGIN));
    let dir = scratch();
    for (text, want) in [
        ("where is my order", "order"),
        ("i want a refund", "refund"),
        ("talk to an agent", "agent"),
    ] {
        let pcm = telephone_speech(&dir, text, "en-us", 150);
        let heard = hear(&mut r, &grammar, &pcm);
        let got = intent::classify(&menu.intents, &heard).map(|(i, _)| i);
        assert_eq!(got, Some(want), "{text:?} was heard as {heard:?}");
    }
    // espeak-ng's digits are hard for the model on telephone audio (ASR.md: 4 of 40 digit
    // strings exact, an "eight" inserted after "one" by most voices); the read-back in the
    // flow catches that. This voice comes through; every voice is in the accuracy benchmark.
    let pcm = telephone_speech(&dir, "one two three four", "en-us+m3", 185);
    let heard = hear(&mut r, &Grammar::Digits, &pcm);
    assert_eq!(
        intent::spoken_digits(&heard).as_deref(),
        Some("1234"),
        "heard {heard:?}"
    );
    // Words outside the dictionary are named before anything is decoded.
    let bad = Grammar::Intents(vec![("x".into(), vec!["frobnicate the quux".into()])]);
    let e = r.start(&bad).unwrap_err().to_string();
    assert!(e.contains("frobnicate") && e.contains("quux"), "{e}");
}

#[test]
fn tts_prompts_are_rendered_at_the_call_rate_cached_and_understood() {
    use crest_ivr::tts::{EspeakNg, Tts};
    let tts = EspeakNg::new(150);
    let p = tts.render("talk to an agent", "en-us", 8000).unwrap();
    let secs = p.len() as f64 / 8000.0;
    assert!((0.6..3.0).contains(&secs), "{secs} s");
    let again = tts.render("talk to an agent", "en-us", 8000).unwrap();
    assert!(
        Arc::ptr_eq(&p, &again),
        "the second render comes from the cache"
    );
    assert_eq!(tts.cached_count(), 1);
    let wide = tts.render("talk to an agent", "en-us", 16000).unwrap();
    assert!((wide.len() as f64 / p.len() as f64 - 2.0).abs() < 0.01);
    assert!(tts.render("hello", "no-such-voice", 8000).is_err());
    // What Crest says, the recogniser understands.
    let model = Model::load(Path::new(DEBIAN_MODEL)).unwrap();
    let mut r = PocketSphinx::new(model, Some(OFF_TOPIC_MARGIN));
    let g = Grammar::Intents(vec![
        ("agent".into(), vec!["talk to an agent".into()]),
        ("refund".into(), vec!["i want a refund".into()]),
    ]);
    assert_eq!(hear(&mut r, &g, &p), "talk to an agent");
}

#[test]
fn decoders_are_reused_a_quiet_line_is_not_decoded_and_a_dropped_listener_gives_its_back() {
    let grammar = Grammar::Intents(vec![
        ("order".into(), vec!["where is my order".into()]),
        ("refund".into(), vec!["i want a refund".into()]),
    ]);
    let model = Model::load(Path::new(DEBIAN_MODEL)).unwrap();
    let dir = scratch();
    let refund = telephone_speech(&dir, "i want a refund", "en-us", 150);
    let mut first = PocketSphinx::new(model.clone(), Some(OFF_TOPIC_MARGIN));
    assert_eq!(hear(&mut first, &grammar, &refund), "i want a refund");
    assert_eq!(
        model.idle_decoders(),
        2,
        "the grammar's and the off-topic loop's"
    );

    // A second caller takes them: five seconds of a quiet line cost no decoding.
    let mut second = PocketSphinx::new(model.clone(), Some(OFF_TOPIC_MARGIN));
    second.start(&grammar).unwrap();
    assert_eq!(model.idle_decoders(), 0);
    for _ in 0..250 {
        assert_eq!(second.feed(&[3; 160], 8000).unwrap(), None);
    }
    assert_eq!(second.decoded_ms(), 0);
    let order = telephone_speech(&dir, "where is my order", "en-us", 150);
    let heard = order
        .chunks(160)
        .chain(std::iter::repeat_n(&[0i16; 160][..], 100))
        .find_map(|f| second.feed(f, 8000).unwrap())
        .expect("heard");
    assert_eq!(heard.text, "where is my order");
    assert!(second.decoded_ms() > 1000);

    // A caller who hangs up mid-listen: the decoders go back to the pool.
    let mut third = PocketSphinx::new(model.clone(), Some(OFF_TOPIC_MARGIN));
    third.start(&grammar).unwrap();
    third.feed(&refund[..1600], 8000).unwrap();
    drop(third);
    assert_eq!(model.idle_decoders(), 2);
}
