//! The journey's ways through: speech and keys in the IVR, a lookup that serves the caller,
//! retries, a recogniser the pool could not give, admission each way at the door and after
//! the IVR, the callback offer while holding, transfers, callbacks Crest places, and a flow
//! reloaded while a caller is in it.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::Journey;
use crest_call::{FromAcd, Input, LegEvent, Output, Prompt, Stage, Start, ToAcd};
use crest_ivr::{Context, Grammar, Library};

#[test]
fn a_lookup_serves_the_caller_and_the_flow_hangs_up() {
    let mut j = Journey::ivr();
    j.prompt_done();
    j.input(Input::Heard {
        text: "where is my order",
        confidence: 0.8,
    });
    let outs = j.input(Input::LookupDone(Some((200, r#"{"status": "shipped"}"#))));
    assert!(Journey::saw(
        &outs,
        |o| matches!(o, Output::Play { prompt: Prompt::Say { text, .. }, .. } if text == "Your order is shipped.")
    ));
    let outs = j.prompt_done();
    assert!(outs.contains(&Output::HangUp("self-service".into())));
    assert!(Journey::saw(
        &outs,
        |o| matches!(o, Output::IvrDone(s) if s.outcome == "hangup" && s.path == ["welcome", "menu", "lookup", "status", "bye"])
    ));
    let r = j.end();
    assert_eq!(r.outcome, "self-service");
    assert_eq!(r.intent.as_deref(), Some("order"));
}

#[test]
fn a_lookup_that_never_answers_times_out_in_virtual_time() {
    let mut j = Journey::ivr();
    j.prompt_done();
    j.input(Input::Key('1'));
    assert!(j.advance(Duration::from_millis(1999)).is_empty());
    let outs = j.advance(Duration::from_millis(1));
    assert!(Journey::saw(
        &outs,
        |o| matches!(o, Output::Play { prompt: Prompt::Say { text, .. }, .. } if text.starts_with("Your order is"))
    ));
}

#[test]
fn silence_is_asked_again_then_the_caller_is_queued() {
    let mut j = Journey::ivr();
    j.prompt_done();
    j.prompt_done();
    let outs = j.advance(Duration::from_secs(5));
    assert!(Journey::saw(
        &outs,
        |o| matches!(o, Output::Play { prompt: Prompt::Say { text, .. }, .. } if text.starts_with("Sorry, I did not hear you. Say where"))
    ));
    j.prompt_done();
    let outs = j.advance(Duration::from_secs(5));
    assert!(Journey::saw(
        &outs,
        |o| matches!(o, Output::Acd(ToAcd::Enqueue { queue, .. }) if queue == "refund")
    ));
    assert!(!j.listening);
    j.end();
}

#[test]
fn without_a_recogniser_keys_still_work() {
    let mut j = Journey::ivr();
    let outs = j.prompt_done();
    assert!(Journey::saw(&outs, |o| matches!(
        o,
        Output::Listen(Grammar::Intents(_))
    )));
    j.input(Input::ListenFailed);
    assert!(!j.call.listening());
    let outs = j.input(Input::Key('2'));
    assert!(Journey::saw(&outs, |o| matches!(
        o,
        Output::Acd(ToAcd::Enqueue { .. })
    )));
    assert!(!outs.contains(&Output::StopListening), "nothing to stop");
    j.end();
}

#[test]
fn a_queue_route_caller_is_answered_only_when_admitted() {
    let mut j = Journey::new(Start::Queue("order-status".into()));
    let outs = j.input(Input::CallerUp { unix_secs: 0 });
    assert_eq!(
        outs[0],
        Output::Acd(ToAcd::Enqueue {
            queue: "order-status".into(),
            tier: 0,
            number: "+8613800000000".into(),
            language: None,
            door: true,
            callback: false,
            context: vec![],
            agent: None,
        })
    );
    assert!(!j.answered);
    let outs = j.input(Input::Acd(FromAcd::Admitted));
    assert_eq!(
        outs,
        [Output::Accept, Output::Acd(ToAcd::Answered)],
        "answered first, then the ACD may ring an agent"
    );
    assert_eq!(j.call.stage(), Stage::Queued);
    let outs = j.input(Input::Acd(FromAcd::Announce(
        "You are next in line.".into(),
    )));
    assert!(j.saying() == Some("You are next in line."), "{outs:?}");
    // The announcement ends: the music again.
    let outs = j.prompt_done();
    assert_eq!(
        outs[0],
        Output::Play {
            prompt: Prompt::HoldMusic,
            barge_in: false
        }
    );
    j.end();
}

#[test]
fn a_refused_queue_route_caller_hears_why_then_gets_503() {
    let mut j = Journey::new(Start::Queue("order-status".into()));
    j.input(Input::CallerUp { unix_secs: 0 });
    j.input(Input::Acd(FromAcd::Refused {
        text: "All our agents are busy.".into(),
        retry_after: 300,
    }));
    assert_eq!(j.saying(), Some("All our agents are busy."));
    let outs = j.prompt_done();
    assert_eq!(outs, [Output::Refuse { retry_after: 300 }]);
    j.in_acd = false;
    let r = j.end();
    assert_eq!(r.outcome, "refused");
    assert_eq!(r.ended_in, Stage::Refusing);
}

#[test]
fn a_refused_ivr_caller_hears_why_then_gets_a_bye() {
    let mut j = Journey::ivr();
    j.prompt_done();
    j.input(Input::Key('2'));
    j.input(Input::Acd(FromAcd::Refused {
        text: "Sorry.".into(),
        retry_after: 60,
    }));
    let outs = j.prompt_done();
    assert_eq!(outs, [Output::HangUp("refused by admission".into())]);
    j.in_acd = false;
    j.end();
}

#[test]
fn a_holding_caller_takes_the_callback_offer_with_key_1() {
    let mut j = Journey::new(Start::Queue("order-status".into()));
    j.input(Input::CallerUp { unix_secs: 0 });
    j.input(Input::Acd(FromAcd::Admitted));
    assert_eq!(j.input(Input::Key('1')), [Output::Acd(ToAcd::Key('1'))]);
    j.input(Input::Acd(FromAcd::Goodbye(
        "We will call you back.".into(),
    )));
    assert_eq!(j.call.stage(), Stage::Leaving);
    let outs = j.prompt_done();
    assert_eq!(outs, [Output::HangUp("callback taken".into())]);
    let outs = j.input(Input::Ended);
    assert_eq!(outs[0], Output::Acd(ToAcd::Ended));
    j.assert_released();
    assert_eq!(j.records[0].outcome, "callback");
}

#[test]
fn a_callback_asked_in_the_ivr_keeps_the_place_while_the_flow_says_goodbye() {
    let mut j = Journey::ivr();
    j.prompt_done();
    let outs = j.input(Input::Heard {
        text: "call me back",
        confidence: 0.9,
    });
    assert!(outs.contains(&Output::Acd(ToAcd::Enqueue {
        queue: "refund".into(),
        tier: 0,
        number: "+8613800000000".into(),
        language: None,
        door: false,
        callback: true,
        context: vec![],
        agent: None,
    })));
    assert_eq!(j.saying(), Some("We will call you back. Goodbye."));
    assert_ne!(j.playing, Some(Prompt::HoldMusic));
    let outs = j.prompt_done();
    assert!(outs.contains(&Output::HangUp("callback registered".into())));
    let r = j.end();
    assert_eq!(r.outcome, "callback");
}

#[test]
fn a_transfer_answered_is_bridged_and_one_that_fails_ends_the_call() {
    let mut j = Journey::ivr();
    j.prompt_done();
    j.input(Input::Key('3'));
    assert!(j.input(Input::LegB(LegEvent::Ringing)).is_empty());
    assert_eq!(
        j.input(Input::LegB(LegEvent::Answered)),
        [Output::StopPrompt]
    );
    assert_eq!(j.end().outcome, "transferred");

    let mut j = Journey::ivr();
    j.prompt_done();
    j.input(Input::Key('3'));
    let outs = j.input(Input::LegB(LegEvent::Failed(486)));
    assert_eq!(outs, [Output::HangUp("transfer failed".into())]);
    assert_eq!(j.end().outcome, "failed-transfer");
}

#[test]
fn a_callback_crest_places_reports_the_customers_answer_to_the_acd() {
    let mut j = Journey::new(Start::Callback("refund".into()));
    j.in_acd = true;
    assert!(j.input(Input::LegA(LegEvent::Ringing)).is_empty());
    assert_eq!(
        j.input(Input::LegA(LegEvent::Answered)),
        [Output::Acd(ToAcd::CustomerAnswered)]
    );
    j.input(Input::CallerUp { unix_secs: 0 });
    assert_eq!(j.playing, Some(Prompt::HoldMusic));
    assert_eq!(
        j.input(Input::LegB(LegEvent::Answered)),
        [Output::Acd(ToAcd::Leg(LegEvent::Answered))]
    );
    j.input(Input::Acd(FromAcd::Connected {
        agent: "bob".into(),
    }));
    assert_eq!(j.end().outcome, "answered");

    let mut j = Journey::new(Start::Callback("refund".into()));
    j.in_acd = true;
    assert_eq!(
        j.input(Input::LegA(LegEvent::Failed(480))),
        [Output::Acd(ToAcd::CustomerUnanswered(480))]
    );
    j.end();
}

#[test]
fn a_flow_reloaded_mid_call_keeps_the_callers_version() {
    let mut j = Journey::ivr();
    // The admin reloads a new version; new callers get it, this one keeps version 7.
    let v8 = common::FLOW
        .replace("version: \"7\"", "version: \"8\"")
        .replace("Welcome.", "Hello.");
    let v8 =
        Arc::new(crest_ivr::check(Path::new("journey.yaml"), &v8, &Context::default()).unwrap());
    let mut newcomer = Journey::new(Start::Ivr {
        library: Arc::new(Library::new([v8.clone()])),
        flow: v8,
        vars: Default::default(),
    });
    newcomer.input(Input::CallerUp { unix_secs: 0 });
    assert_eq!(newcomer.saying(), Some("Hello."));
    j.prompt_done();
    j.input(Input::Key('2'));
    assert!(Journey::saw(
        &j.log,
        |o| matches!(o, Output::IvrDone(s) if s.version == "7")
    ));
    assert_eq!(j.end().flow, Some(("journey".into(), "7".into())));
    assert_eq!(newcomer.end().flow, Some(("journey".into(), "8".into())));
}
