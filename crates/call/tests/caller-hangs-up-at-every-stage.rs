//! The caller hangs up in every stage of the journey: each time the host is told to let go of
//! everything the call held (the recogniser, the IVR session, the ACD's entry), the call's
//! record names the stage, and nothing comes out of the call afterwards.

mod common;

use std::time::Duration;

use common::Journey;
use crest_call::{FromAcd, Input, LegEvent, Output, Prompt, Stage, Start, ToAcd};

#[test]
fn before_the_callers_media_is_up() {
    let mut j = Journey::new(common::ivr_start());
    let r = j.end();
    assert_eq!(r.outcome, "abandoned-answering");
    assert!(j.log.iter().all(|o| matches!(o, Output::Record(_))));
}

#[test]
fn during_the_greeting() {
    let mut j = Journey::ivr();
    assert_eq!(j.saying(), Some("Welcome."));
    assert_eq!(j.ivr_sessions, 1);
    let r = j.end();
    assert_eq!(r.outcome, "abandoned-ivr");
    assert_eq!(r.flow, Some(("journey".into(), "7".into())));
    assert!(j.log.iter().any(
        |o| matches!(o, Output::IvrDone(s) if s.outcome == "abandoned" && s.path == ["welcome"])
    ));
}

#[test]
fn mid_prompt_of_an_ask_while_the_recogniser_listens() {
    let mut j = Journey::ivr();
    j.prompt_done();
    assert!(j.saying().is_some_and(|t| t.starts_with("Say where")));
    assert!(j.listening, "an ask listens from its prompt on (barge-in)");
    let outs = j.input(Input::Ended);
    assert!(outs.contains(&Output::StopListening));
    j.assert_released();
}

#[test]
fn during_an_ask_after_its_prompt() {
    let mut j = Journey::ivr();
    j.prompt_done();
    j.prompt_done();
    j.advance(Duration::from_secs(2));
    assert!(j.listening);
    j.end();
}

#[test]
fn during_a_lookup() {
    let mut j = Journey::ivr();
    j.prompt_done();
    let outs = j.input(Input::Key('1'));
    assert!(Journey::saw(
        &outs,
        |o| matches!(o, Output::Lookup { url, .. } if url == "http://127.0.0.1:9/orders/1")
    ));
    assert!(!j.listening, "keys end the listening");
    let r = j.end();
    assert_eq!(r.outcome, "abandoned-ivr");
    // The lookup's late answer changes nothing.
    j.call
        .handle_input(j.now, Input::LookupDone(Some((200, "{}"))));
    assert_eq!(j.call.poll_output(), None);
}

/// Into the refund queue by speech; returns the journey in admission.
fn to_admission() -> Journey {
    let mut j = Journey::ivr();
    j.prompt_done();
    let outs = j.input(Input::Heard {
        text: "i want a refund",
        confidence: 0.9,
    });
    assert!(outs.contains(&Output::Acd(ToAcd::Enqueue {
        queue: "refund".into(),
        tier: 2,
        number: "+8613800000000".into(),
        language: Some("en-US".into()),
        door: false,
        callback: false,
        context: vec![
            ("path".into(), "welcome>menu>refund_queue".into()),
            ("intent".into(), "refund".into()),
        ],
        agent: None,
    })));
    assert_eq!(j.call.stage(), Stage::Admission);
    assert_eq!(j.playing, Some(Prompt::HoldMusic));
    assert_eq!(j.ivr_sessions, 0);
    j
}

#[test]
fn in_admission() {
    let mut j = to_admission();
    let outs = j.input(Input::Ended);
    assert!(outs.contains(&Output::Acd(ToAcd::Ended)));
    j.assert_released();
    assert_eq!(j.records[0].outcome, "abandoned-admission");
    assert_eq!(j.records[0].queue.as_deref(), Some("refund"));
}

#[test]
fn while_queued_with_the_hold_music_looping() {
    let mut j = to_admission();
    j.input(Input::Acd(FromAcd::Admitted));
    assert_eq!(j.call.stage(), Stage::Queued);
    assert!(!j.answered, "an IVR caller is answered already");
    j.advance(Duration::from_secs(40));
    let outs = j.prompt_done();
    assert!(outs.contains(&Output::Play {
        prompt: Prompt::HoldMusic,
        barge_in: false
    }));
    let r = j.end();
    assert_eq!(r.outcome, "abandoned-queued");
    assert_eq!(r.wait, Some(Duration::from_secs(40)));
}

#[test]
fn while_an_agent_rings() {
    let mut j = to_admission();
    j.input(Input::Acd(FromAcd::Admitted));
    let outs = j.input(Input::LegB(LegEvent::Ringing));
    assert_eq!(outs, [Output::Acd(ToAcd::Leg(LegEvent::Ringing))]);
    let outs = j.input(Input::Ended);
    assert!(outs.contains(&Output::Acd(ToAcd::Ended)));
    j.assert_released();
}

#[test]
fn during_the_bridge() {
    let mut j = to_admission();
    j.input(Input::Acd(FromAcd::Admitted));
    j.advance(Duration::from_secs(12));
    j.input(Input::LegB(LegEvent::Answered));
    let outs = j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    assert_eq!(outs, [Output::StopPrompt]);
    j.advance(Duration::from_secs(100));
    // The hold music does not come back once bridged.
    assert!(j.input(Input::PromptDone).is_empty());
    let r = j.end();
    assert_eq!(r.outcome, "answered");
    assert_eq!(r.agent.as_deref(), Some("alice"));
    assert_eq!(r.wait, Some(Duration::from_secs(12)));
    assert_eq!(r.ended_in, Stage::Bridged);
}

#[test]
fn during_a_callbacks_dial() {
    let mut j = Journey::new(Start::Callback("refund".into()));
    assert_eq!(j.call.stage(), Stage::Dialling);
    j.in_acd = true; // the ACD placed the call
    let outs = j.input(Input::Ended);
    assert_eq!(outs[0], Output::Acd(ToAcd::Ended));
    j.assert_released();
    assert_eq!(j.records[0].outcome, "abandoned-dialling");
}

#[test]
fn during_the_refusal_announcement() {
    let mut j = to_admission();
    j.input(Input::Acd(FromAcd::Refused {
        text: "We are sorry.".into(),
        retry_after: 300,
    }));
    // The ACD let go of the call when it refused it.
    j.in_acd = false;
    let outs = j.input(Input::Ended);
    assert!(!outs.contains(&Output::Acd(ToAcd::Ended)));
    j.assert_released();
    assert_eq!(j.records[0].outcome, "refused");
}

#[test]
fn while_a_transfer_target_rings() {
    let mut j = Journey::ivr();
    j.prompt_done();
    let outs = j.input(Input::Key('3'));
    assert!(outs.contains(&Output::Connect {
        target: crest_call::ConnectTarget::Uri("sip:desk@192.0.2.1".into()),
        ring: Duration::from_secs(60)
    }));
    assert_eq!(j.playing, Some(Prompt::HoldMusic));
    let r = j.end();
    assert_eq!(r.outcome, "abandoned-transferring");
}

#[test]
fn on_the_agents_hold_the_caller_hears_the_hold_music_until_taken_back() {
    let mut j = to_admission();
    j.input(Input::Acd(FromAcd::Admitted));
    j.input(Input::LegB(LegEvent::Answered));
    j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    let outs = j.input(Input::AgentHold(true));
    assert_eq!(
        outs,
        [Output::Play {
            prompt: Prompt::HoldMusic,
            barge_in: false
        }]
    );
    assert!(j.input(Input::AgentHold(true)).is_empty(), "held already");
    // The music loops while held.
    let outs = j.prompt_done();
    assert!(outs.contains(&Output::Play {
        prompt: Prompt::HoldMusic,
        barge_in: false
    }));
    assert_eq!(j.input(Input::AgentHold(false)), [Output::StopPrompt]);
    assert!(j.prompt_done().is_empty(), "no music once taken back");
    // Held again, then the agent hangs up: the music goes with them (no survey here).
    j.input(Input::AgentHold(true));
    let outs = j.input(Input::LegB(LegEvent::Ended));
    assert!(outs.contains(&Output::HangUp("the other party hung up".into())));
    assert!(
        j.prompt_done()
            .iter()
            .all(|o| !matches!(o, Output::Play { .. }))
    );
    let r = j.end();
    assert_eq!(r.outcome, "answered");
}
