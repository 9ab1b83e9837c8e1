//! The controller decides the call's recording: when it starts (the bridge, or the answer),
//! when PCI pauses it (the IVR asking for card data, the agent's pause and its limit), and
//! that it stops with the call, in every case exactly once.

mod common;

use std::time::Duration;

use common::{Journey, flow_start, ivr_start};
use crest_call::{
    Config, ConnectTarget, FromAcd, Input, LegEvent, Output, RecordFrom, Recording, Start,
};

/// A payment flow: the card number by keys (PCI), then an agent.
const PAY: &str = r#"
flow: pay
version: "1"
language: en-US
voice: en-us
start: card
nodes:
  - ask:
      name: card
      prompt: "Key in your card number, then the hash key."
      digits: {min: 12, max: 19, into: card, pci: true, next: thanks}
      timeout_secs: 10
      no_input: {prompt: "Please key in your card number.", retries: 2, then: agent}
      no_match: {prompt: "That is not a card number.", retries: 2, then: agent}
  - say: {name: thanks, text: "Thank you.", next: agent}
  - queue: {name: agent, queue: refund}
"#;

fn pay_start() -> Start {
    flow_start("pay.yaml", PAY)
}

fn config(record: RecordFrom) -> Config {
    Config {
        record,
        ..Config::default()
    }
}

fn recordings(outs: &[Output]) -> Vec<Recording> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Recording(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// A caller of the journey flow, queued for refunds by key 2, then connected to alice.
fn bridged(record: RecordFrom) -> Journey {
    let mut j = Journey::with_config(ivr_start(), config(record));
    j.input(Input::CallerUp { unix_secs: 0 });
    j.prompt_done();
    j.input(Input::Key('2'));
    j.input(Input::Acd(FromAcd::Admitted));
    j
}

#[test]
fn recorded_from_the_bridge_paused_by_the_agent_and_stopped_with_the_call() {
    let mut j = bridged(RecordFrom::Bridge);
    assert_eq!(j.recordings, 0, "nothing recorded in the IVR and the queue");
    let outs = j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    assert_eq!(recordings(&outs), [Recording::Start]);

    let outs = j.input(Input::Pause("agent: card number"));
    assert_eq!(
        recordings(&outs),
        [Recording::Pause("agent: card number".into())]
    );
    // A second pause changes nothing; the recorder keeps the first reason.
    assert_eq!(recordings(&j.input(Input::Pause("again"))), []);
    assert_eq!(recordings(&j.input(Input::Resume)), [Recording::Resume]);
    assert_eq!(recordings(&j.input(Input::Resume)), []);

    j.advance(Duration::from_secs(30));
    j.input(Input::Ended);
    let stop = j
        .log
        .iter()
        .position(|o| *o == Output::Recording(Recording::Stop));
    let record = j.log.iter().position(|o| matches!(o, Output::Record(_)));
    assert!(
        stop.is_some() && stop < record,
        "Stop comes before the record"
    );
    j.assert_released();
    assert_eq!(j.recordings, 1);
}

#[test]
fn a_forgotten_pause_runs_out_after_the_limit_and_the_recording_resumes() {
    let mut j = bridged(RecordFrom::Bridge);
    j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    j.input(Input::Pause("agent: card number"));
    let limit = Config::default().pci_limit;
    assert_eq!(j.call.poll_timeout(), Some(j.now + limit));
    assert_eq!(
        recordings(&j.advance(limit - Duration::from_secs(1))),
        [],
        "still paused a second before the limit"
    );
    assert_eq!(j.recording, Some(true));
    assert_eq!(
        recordings(&j.advance(Duration::from_secs(1))),
        [Recording::Resume]
    );
    assert_eq!(j.recording, Some(false));
    assert_eq!(j.call.poll_timeout(), None, "no timer left after it");
    j.end();
}

#[test]
fn a_pause_asked_before_the_bridge_applies_from_the_recordings_start() {
    let mut j = bridged(RecordFrom::Bridge);
    assert_eq!(recordings(&j.input(Input::Pause("agent: early"))), []);
    let outs = j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    assert_eq!(
        recordings(&outs),
        [Recording::Start, Recording::Pause("agent: early".into())]
    );
    j.end();
}

#[test]
fn a_caller_who_hangs_up_while_paused_leaves_no_pause_timer_and_one_stop() {
    let mut j = bridged(RecordFrom::Bridge);
    j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    j.input(Input::Pause("agent: card number"));
    let outs = j.input(Input::Ended);
    assert_eq!(recordings(&outs), [Recording::Stop]);
    j.assert_released();
}

#[test]
fn recorded_from_the_answer_the_ivr_card_number_is_paused_and_marked_as_card_data() {
    let mut j = Journey::with_config(pay_start(), config(RecordFrom::Answer));
    let outs = j.input(Input::CallerUp { unix_secs: 0 });
    assert_eq!(
        recordings(&outs),
        [Recording::Start, Recording::Pause("card data (IVR)".into())],
        "the first node asks for the card: paused from its question on"
    );
    assert!(j.call.card_data());
    for k in "4111111111111111".chars() {
        let outs = j.input(Input::Key(k));
        assert_eq!(
            recordings(&outs),
            [],
            "no resume in the middle of the number"
        );
    }
    let outs = j.input(Input::Key('#'));
    assert_eq!(recordings(&outs), [Recording::Resume], "the ask is left");
    assert!(!j.call.card_data());
    assert_eq!(j.saying(), Some("Thank you."));
    // The caller goes on to an agent: the one recording goes on.
    j.prompt_done();
    j.input(Input::Acd(FromAcd::Admitted));
    let outs = j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    assert_eq!(recordings(&outs), [], "already recording since the answer");
    let r = j.end();
    assert_eq!(r.outcome, "answered");
    assert_eq!(j.recordings, 1);
}

#[test]
fn spoken_card_digits_are_taken_without_being_said_back() {
    let mut j = Journey::with_config(pay_start(), config(RecordFrom::Answer));
    j.input(Input::CallerUp { unix_secs: 0 });
    j.prompt_done();
    let outs = j.input(Input::Heard {
        text: "four one one one one one one one one one one one one one one one",
        confidence: 0.9,
    });
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Play { prompt: crest_call::Prompt::Say { text, .. }, .. } if text.contains('4') || text.contains("four"))),
        "the card number is not spoken back: {outs:?}"
    );
    assert_eq!(recordings(&outs), [Recording::Resume]);
    assert_eq!(j.saying(), Some("Thank you."));
    j.end();
}

#[test]
fn a_caller_who_hangs_up_while_keying_the_card_stops_the_paused_recording() {
    let mut j = Journey::with_config(pay_start(), config(RecordFrom::Answer));
    j.input(Input::CallerUp { unix_secs: 0 });
    j.input(Input::Key('4'));
    let outs = j.input(Input::Ended);
    assert_eq!(recordings(&outs), [Recording::Stop]);
    assert!(!j.call.card_data());
    let r = j.records[0].clone();
    assert_eq!(r.outcome, "abandoned-ivr");
    j.assert_released();
}

#[test]
fn a_transfer_is_recorded_from_its_answer() {
    let mut j = Journey::with_config(ivr_start(), config(RecordFrom::Bridge));
    j.input(Input::CallerUp { unix_secs: 0 });
    j.prompt_done();
    let outs = j.input(Input::Key('3'));
    assert!(Journey::saw(&outs, |o| matches!(
        o,
        Output::Connect {
            target: ConnectTarget::Uri(_),
            ..
        }
    )));
    assert_eq!(recordings(&j.input(Input::LegB(LegEvent::Ringing))), []);
    assert_eq!(
        recordings(&j.input(Input::LegB(LegEvent::Answered))),
        [Recording::Start]
    );
    assert_eq!(j.end().outcome, "transferred");
}

#[test]
fn a_call_not_recorded_never_speaks_to_the_recorder_even_when_paused() {
    let mut j = bridged(RecordFrom::Never);
    j.input(Input::Pause("agent: card number"));
    j.input(Input::Acd(FromAcd::Connected {
        agent: "alice".into(),
    }));
    j.input(Input::Resume);
    j.end();
    assert!(
        !j.log.iter().any(|o| matches!(o, Output::Recording(_))),
        "{:?}",
        j.log
    );
}
