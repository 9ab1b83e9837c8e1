//! Callers, agents and the center together in virtual time: who rings, who gets a CANCEL or
//! a BYE, which agent is freed, what the ACD counts, and that nothing of a call remains once
//! it has ended — whoever ends it, in whatever state.

mod common;
#[path = "common/switch.rs"]
mod switch;

use std::time::Duration;

use crest_acd::admission::AdmissionConfig;
use crest_acd::{AgentConfig, AgentState, SurgeConfig};
use crest_call::{ALREADY_BOOKED, AgentChange, CallId, FromAcd, Input, Stage, Start, UnknownAgent};
use switch::{Sip, Switch};

fn queued(sw: &mut Switch) -> CallId {
    let id = sw.arrive(common::ivr_start());
    sw.prompt_done(id); // "Welcome."
    sw.input(id, Input::Key('2')); // refund
    id
}

/// An IVR caller books a callback and hangs up; alice logs in and Crest dials the customer:
/// the call it placed.
fn callback_placed() -> (Switch, CallId) {
    let mut sw = Switch::new(AdmissionConfig::default(), true);
    let id = sw.arrive(common::ivr_start());
    sw.prompt_done(id);
    sw.input(id, Input::Key('4'));
    sw.prompt_done(id);
    sw.register("alice");
    let Some(Sip::Originate(placed, _)) = sw.sip.last().cloned() else {
        panic!("no callback placed")
    };
    (sw, placed)
}

fn rings(sw: &Switch, id: CallId) -> Vec<String> {
    sw.sip
        .iter()
        .filter_map(|s| match s {
            Sip::Ring(c, a) if *c == id => Some(a.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn answered_then_the_caller_hangs_up_the_agent_wraps_up_and_is_ready_again() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = queued(&mut sw);
    assert_eq!(rings(&sw, id), ["alice"]);
    assert!(matches!(sw.agent_state("alice"), AgentState::Ringing(c, _) if c == id));
    sw.advance(Duration::from_secs(3));
    sw.agent_answers(id);
    assert_eq!(sw.calls[&id].stage(), Stage::Bridged);
    assert!(matches!(sw.agent_state("alice"), AgentState::OnCall(c) if c == id));
    sw.advance(Duration::from_secs(60));
    sw.hang_up(id);
    assert!(matches!(sw.agent_state("alice"), AgentState::WrapUp(_)));
    sw.advance(Duration::from_secs(5));
    assert!(matches!(sw.agent_state("alice"), AgentState::Available(_)));
    let r = &sw.records[&id];
    assert_eq!(
        (r.outcome.as_str(), r.agent.as_deref()),
        ("answered", Some("alice"))
    );
    assert_eq!(r.wait, Some(Duration::from_secs(3)));
    let c = sw.counters();
    assert_eq!((c.offers, c.answered, c.missed, c.abandoned), (1, 1, 0, 0));
    sw.assert_idle();
}

#[test]
fn ring_out_cancels_the_first_agent_and_rings_the_next() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    sw.register("bob");
    let id = queued(&mut sw);
    assert_eq!(rings(&sw, id), ["alice"]);
    sw.advance(Duration::from_secs(10));
    assert!(sw.sip.contains(&Sip::Cancel(id, "alice".into())));
    assert_eq!(rings(&sw, id), ["alice", "bob"]);
    assert_eq!(
        sw.calls[&id].stage(),
        Stage::Queued,
        "the caller keeps holding"
    );
    sw.agent_answers(id);
    sw.hang_up(id);
    let c = sw.counters();
    assert_eq!((c.offers, c.answered, c.missed), (2, 1, 1));
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn an_agent_who_rejects_twice_is_set_away_and_the_callers_wait_for_the_next() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let first = queued(&mut sw);
    sw.agent_rejects(first);
    // The agent who missed a caller is not offered them again.
    assert_eq!(rings(&sw, first), ["alice"]);
    assert_eq!(sw.calls[&first].stage(), Stage::Queued);
    let second = queued(&mut sw);
    assert_eq!(rings(&sw, second), ["alice"]);
    sw.agent_rejects(second);
    // Two misses in a row: away.
    assert!(matches!(sw.agent_state("alice"), AgentState::Away(_)));
    assert_eq!(sw.counters().set_away, 1);
    sw.register("bob");
    assert_eq!(
        rings(&sw, first),
        ["alice", "bob"],
        "the longest waiting first"
    );
    sw.agent_answers(first);
    sw.hang_up(first);
    sw.hang_up(second);
    let c = sw.counters();
    assert_eq!((c.offers, c.missed, c.answered, c.abandoned), (3, 2, 1, 1));
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn the_caller_hangs_up_while_the_agent_rings_the_agent_is_freed_at_once() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = queued(&mut sw);
    sw.hang_up(id);
    assert!(matches!(sw.agent_state("alice"), AgentState::Available(_)));
    assert_eq!(sw.counters().abandoned, 1);
    assert_eq!(sw.records[&id].outcome, "abandoned-queued");
    // The next caller gets alice at once.
    let next = queued(&mut sw);
    assert_eq!(rings(&sw, next), ["alice"]);
    sw.hang_up(next);
    sw.assert_idle();
}

#[test]
fn the_agent_hangs_up_first_and_the_caller_gets_a_bye() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("bob");
    let id = queued(&mut sw);
    sw.agent_answers(id);
    // The agent's BYE ends the call: the SIP core sends the caller a BYE.
    sw.hang_up(id);
    assert!(
        sw.sip
            .iter()
            .any(|s| matches!(s, Sip::End(c, _) if *c == id))
    );
    assert!(matches!(sw.agent_state("bob"), AgentState::WrapUp(_)));
    sw.advance(Duration::from_secs(5));
    sw.assert_idle();
}

#[test]
fn queued_callers_move_up_and_are_told_their_place() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    let first = queued(&mut sw);
    let second = queued(&mut sw);
    assert_eq!(sw.center.acd().position(second), Some(2));
    let told = |sw: &Switch, id| -> Vec<String> {
        sw.told[&id]
            .iter()
            .filter_map(|t| match t {
                FromAcd::Announce(text) => Some(text.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(told(&sw, second).len(), 1);
    assert!(told(&sw, second)[0].starts_with("You are number 2 in line."));
    sw.hang_up(first);
    assert_eq!(sw.center.acd().position(second), Some(1));
    sw.advance(Duration::from_secs(29));
    assert_eq!(told(&sw, second).len(), 1, "every 30 s, not sooner");
    sw.advance(Duration::from_secs(1));
    assert!(told(&sw, second)[1].starts_with("You are next in line."));
    sw.hang_up(second);
    assert_eq!(sw.counters().abandoned, 2);
    sw.assert_idle();
}

#[test]
fn a_full_queue_refuses_at_the_door_with_503_and_holds_nothing() {
    let admission = AdmissionConfig {
        max_queue: 1,
        max_wait_secs: 100_000,
        callbacks: false,
        ..AdmissionConfig::default()
    };
    let mut sw = Switch::new(admission, false);
    sw.register("alice");
    let talking = sw.arrive(Start::Queue("refund".into()));
    assert!(sw.sip.contains(&Sip::Accept(talking)));
    sw.agent_answers(talking);
    let waiting = sw.arrive(Start::Queue("refund".into()));
    assert!(sw.sip.contains(&Sip::Accept(waiting)), "{:?}", sw.sip);
    let refused = sw.arrive(Start::Queue("refund".into()));
    assert!(!sw.sip.contains(&Sip::Accept(refused)));
    assert_eq!(sw.calls[&refused].stage(), Stage::Refusing);
    sw.prompt_done(refused);
    assert!(sw.sip.contains(&Sip::Refuse(refused, 300)));
    assert_eq!(sw.records[&refused].outcome, "refused");
    sw.hang_up(talking);
    sw.hang_up(waiting);
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn a_callback_keeps_the_place_then_crest_calls_back_and_bridges_the_reserved_agent() {
    let mut sw = Switch::new(AdmissionConfig::default(), true);
    let id = sw.arrive(common::ivr_start());
    sw.prompt_done(id);
    sw.input(id, Input::Key('4')); // call me back
    sw.prompt_done(id); // the goodbye
    assert!(sw.records.contains_key(&id), "the flow hung up");
    assert_eq!(sw.records[&id].outcome, "callback");
    assert_eq!(sw.center.callbacks_pending(), 1);
    // An agent logs in: Crest dials the customer with the agent reserved.
    sw.register("alice");
    let placed = match sw.sip.last() {
        Some(Sip::Originate(c, uri)) => {
            assert_eq!(uri, "sip:+8613800000000@192.0.2.1");
            *c
        }
        other => panic!("no callback placed: {other:?}"),
    };
    assert!(matches!(
        sw.agent_state("alice"),
        AgentState::Ringing(..) | AgentState::OnCall(_)
    ));
    sw.input(placed, Input::LegA(crest_call::LegEvent::Answered));
    assert_eq!(rings(&sw, placed), ["alice"]);
    sw.agent_answers(placed);
    assert_eq!(sw.calls[&placed].stage(), Stage::Bridged);
    sw.hang_up(placed);
    assert_eq!(sw.records[&placed].outcome, "answered");
    assert_eq!(sw.center.callbacks_pending(), 0);
    sw.advance(Duration::from_secs(5));
    sw.assert_idle();
}

#[test]
fn the_customer_rejects_the_callback_and_the_reserved_agent_is_freed() {
    let (mut sw, placed) = callback_placed();
    sw.input(placed, Input::LegA(crest_call::LegEvent::Failed(486)));
    assert_eq!(sw.counters().callbacks_unanswered, 1);
    sw.hang_up(placed);
    assert!(!matches!(
        sw.agent_state("alice"),
        AgentState::Ringing(..) | AgentState::OnCall(_)
    ));
    sw.advance(Duration::from_secs(30));
    sw.assert_idle();
}

#[test]
fn the_callbacks_dial_ends_before_any_answer_and_the_reserved_agent_is_freed() {
    let (mut sw, placed) = callback_placed();
    assert!(matches!(sw.agent_state("alice"), AgentState::Ringing(..)));
    // The dial ends (a CANCEL, the core's own timeout) with no answer or failure reported.
    sw.hang_up(placed);
    assert_eq!(sw.counters().callbacks_unanswered, 1);
    assert!(matches!(sw.agent_state("alice"), AgentState::Available(_)));
    assert_eq!(sw.center.callbacks_pending(), 0);
    sw.assert_idle();
}

#[test]
fn a_queue_caller_with_an_agent_free_is_answered_before_the_agent_rings() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = sw.arrive(Start::Queue("refund".into()));
    assert_eq!(
        sw.sip,
        [Sip::Accept(id), Sip::Ring(id, "alice".into())],
        "no leg can be placed for a caller not answered yet"
    );
    sw.agent_answers(id);
    assert_eq!(sw.calls[&id].stage(), Stage::Bridged);
    sw.hang_up(id);
    let c = sw.counters();
    assert_eq!((c.offers, c.answered, c.missed), (1, 1, 0));
    sw.advance(Duration::from_secs(5));
    sw.assert_idle();
}

#[test]
fn with_an_agent_free_a_caller_is_admitted_even_over_the_queue_cap() {
    let admission = AdmissionConfig {
        max_queue: 0,
        callbacks: false,
        ..AdmissionConfig::default()
    };
    let mut sw = Switch::new(admission, false);
    sw.register("alice");
    let id = sw.arrive(Start::Queue("refund".into()));
    assert_eq!(sw.sip, [Sip::Accept(id), Sip::Ring(id, "alice".into())]);
    // The next caller finds nobody free: refused, and nobody rang for them.
    let refused = sw.arrive(Start::Queue("refund".into()));
    assert_eq!(sw.calls[&refused].stage(), Stage::Refusing);
    assert!(rings(&sw, refused).is_empty());
    sw.prompt_done(refused);
    sw.hang_up(id);
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn an_ivr_callback_asked_while_an_agent_is_free_reserves_them_and_dials_after_the_goodbye() {
    let mut sw = Switch::new(AdmissionConfig::default(), true);
    sw.register("alice");
    let id = sw.arrive(common::ivr_start());
    sw.prompt_done(id);
    sw.input(id, Input::Key('4')); // call me back
    assert!(rings(&sw, id).is_empty(), "alice is not rung for it");
    assert!(matches!(sw.agent_state("alice"), AgentState::Ringing(c, _) if c == id));
    assert!(
        !sw.sip.iter().any(|s| matches!(s, Sip::Originate(..))),
        "the customer is still on the line: not dialled yet"
    );
    sw.prompt_done(id); // the goodbye; the flow hangs up
    assert_eq!(sw.records[&id].outcome, "callback");
    let Some(Sip::Originate(placed, uri)) = sw.sip.last().cloned() else {
        panic!("no callback placed: {:?}", sw.sip)
    };
    assert_eq!(uri, "sip:+8613800000000@192.0.2.1");
    sw.input(placed, Input::LegA(crest_call::LegEvent::Answered));
    assert_eq!(rings(&sw, placed), ["alice"]);
    sw.agent_answers(placed);
    sw.hang_up(placed);
    assert_eq!(sw.center.callbacks_pending(), 0);
    sw.advance(Duration::from_secs(5));
    sw.assert_idle();
}

#[test]
fn a_holding_caller_whose_number_has_a_callback_booked_keeps_their_place() {
    let admission = AdmissionConfig {
        self_service: false,
        ..AdmissionConfig::default()
    };
    // Two arrivals in a minute over a baseline of one every two minutes: the circuit breaker.
    let surge = SurgeConfig {
        baseline_per_min: 0.5,
        thresholds: [1.0, 1.5, 2.0],
        ..SurgeConfig::default()
    };
    let mut sw = Switch::with_surge(admission, true, surge);
    let first = sw.arrive(common::ivr_start());
    sw.prompt_done(first);
    sw.input(first, Input::Key('4'));
    sw.prompt_done(first);
    assert_eq!(sw.center.callbacks_pending(), 1);
    // The same customer calls the queue route, holds, and is offered a callback.
    let id = sw.arrive_from(Start::Queue("refund".into()), "+8613800000000");
    assert!(sw.sip.contains(&Sip::Accept(id)));
    sw.input(id, Input::Key('1'));
    assert!(
        sw.told[&id].contains(&FromAcd::Announce(ALREADY_BOOKED.into())),
        "{:?}",
        sw.told[&id]
    );
    assert_eq!(sw.calls[&id].stage(), Stage::Queued, "still holding");
    assert_eq!(
        sw.center.acd().position(id),
        Some(2),
        "in line, behind the booked callback"
    );
    // No second offer: another 1 does nothing.
    let told = sw.told[&id].len();
    sw.input(id, Input::Key('1'));
    assert_eq!(sw.told[&id].len(), told);
    sw.hang_up(id);
    assert_eq!(sw.center.callbacks_pending(), 1, "the first booking stands");
}

#[test]
fn an_agent_whose_phone_is_gone_is_logged_out_without_a_miss_and_the_next_agent_rings() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    sw.register("bob");
    sw.unreachable.insert("alice".into());
    let id = queued(&mut sw);
    assert!(sw.sip.contains(&Sip::NotPlaced(id, "alice".into())));
    assert_eq!(sw.agent_state("alice"), AgentState::Offline);
    assert_eq!(rings(&sw, id), ["bob"]);
    assert_eq!(sw.counters().missed, 0);
    sw.agent_answers(id);
    sw.hang_up(id);
    sw.advance(Duration::from_secs(5));
    sw.assert_idle();
}

#[test]
fn an_agent_who_unregisters_while_talking_is_not_rung_after_the_call() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = queued(&mut sw);
    sw.agent_answers(id);
    sw.center.handle_input(
        sw.now,
        crest_call::CenterInput::Registration {
            user: "alice",
            on: false,
        },
    );
    sw.settle();
    let waiting = queued(&mut sw);
    sw.hang_up(id);
    sw.advance(Duration::from_secs(60));
    assert_eq!(sw.agent_state("alice"), AgentState::Offline);
    assert!(rings(&sw, waiting).is_empty());
    sw.hang_up(waiting);
    sw.assert_idle();
}

#[test]
fn a_supervisor_brings_an_away_agent_back_and_a_forced_logout_outlasts_reregistration() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    // Two rejected calls set alice away (max_misses 2).
    for _ in 0..2 {
        let id = queued(&mut sw);
        sw.agent_rejects(id);
        sw.hang_up(id);
    }
    assert!(matches!(sw.agent_state("alice"), AgentState::Away(_)));
    let view = sw.center.agents();
    assert_eq!(
        (view[0].name.as_str(), view[0].state, view[0].registered),
        ("alice", "away", true)
    );
    // A registration refresh does not bring her back; the supervisor does.
    sw.register("alice");
    assert!(matches!(sw.agent_state("alice"), AgentState::Away(_)));
    let now = sw.now;
    sw.center
        .set_agent(now, "alice", AgentChange::Ready)
        .unwrap();
    sw.settle();
    let id = queued(&mut sw);
    assert_eq!(rings(&sw, id), ["alice"]);
    sw.agent_answers(id);
    sw.hang_up(id);
    // Logged out by the supervisor: her phone's next REGISTER does not log her in.
    let now = sw.now;
    sw.center
        .set_agent(now, "alice", AgentChange::Logout)
        .unwrap();
    sw.settle();
    sw.register("alice");
    sw.advance(Duration::from_secs(10));
    assert_eq!(sw.agent_state("alice"), AgentState::Offline);
    let waiting = queued(&mut sw);
    assert!(rings(&sw, waiting).is_empty());
    // Ready again: she takes the waiting caller.
    let now = sw.now;
    sw.center
        .set_agent(now, "alice", AgentChange::Ready)
        .unwrap();
    sw.settle();
    assert_eq!(rings(&sw, waiting), ["alice"]);
    sw.hang_up(waiting);
    assert_eq!(
        sw.center.set_agent(now, "mallory", AgentChange::Ready),
        Err(UnknownAgent("mallory".into()))
    );
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn an_agent_added_while_their_phone_is_registered_takes_the_waiting_caller_and_a_removed_one_stops()
{
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    // carol's phone registers before she is an agent: nothing happens yet.
    sw.register("carol");
    let waiting = queued(&mut sw);
    assert!(rings(&sw, waiting).is_empty());
    let carol = AgentConfig {
        name: "carol".into(),
        pool: "office".into(),
        skills: [("refund".to_owned(), 0.7)].into(),
        rating: 0.5,
        languages: vec!["en".into()],
    };
    let now = sw.now;
    assert_eq!(sw.center.put_agent(now, &carol), Ok(true));
    sw.settle();
    assert_eq!(
        rings(&sw, waiting),
        ["carol"],
        "logged in by her registration"
    );
    let view = sw.center.agents();
    let v = view.iter().find(|a| a.name == "carol").unwrap();
    assert_eq!(
        (
            v.state,
            v.registered,
            v.languages.clone(),
            v.skills["refund"]
        ),
        ("ringing", true, vec!["en".to_owned()], 0.7)
    );
    sw.agent_answers(waiting);
    // Removed while talking: the call goes on to its end, then she is logged out.
    let now = sw.now;
    sw.center.remove_agent(now, "carol").unwrap();
    sw.settle();
    assert!(sw.center.agents().iter().all(|a| a.name != "carol"));
    assert_eq!(sw.agent_state("carol"), AgentState::OnCall(waiting));
    sw.hang_up(waiting);
    assert_eq!(sw.agent_state("carol"), AgentState::Offline);
    sw.register("carol");
    let next = queued(&mut sw);
    assert!(rings(&sw, next).is_empty(), "a removed agent takes no call");
    // A bad edit changes nothing.
    let bad = AgentConfig {
        pool: "nowhere".into(),
        ..carol
    };
    let now = sw.now;
    assert_eq!(
        sw.center.put_agent(now, &bad).unwrap_err().key,
        "agent.pool"
    );
    assert_eq!(
        sw.center.remove_agent(now, "carol"),
        Err(UnknownAgent("carol".into()))
    );
    sw.hang_up(next);
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn a_supervisor_opens_the_circuit_breaker_by_hand_and_gives_it_back() {
    use crest_acd::SurgeLevel;
    let admission = AdmissionConfig {
        self_service: false,
        ..AdmissionConfig::default()
    };
    let mut sw = Switch::new(admission, true);
    let now = sw.now;
    assert_eq!(sw.center.surge_level(), SurgeLevel::Normal);
    sw.center.set_surge(now, Some(SurgeLevel::CircuitBreaker));
    assert_eq!(sw.center.surge_level(), SurgeLevel::CircuitBreaker);
    assert!(sw.center.surge_ratio(now) >= 8.0, "the flows see it too");
    assert_eq!(sw.center.surge_changes(), 1);
    // A caller is admitted under the breaker: the announcements offer a callback.
    let id = sw.arrive(Start::Queue("refund".into()));
    let offered = sw.told[&id].iter().any(|t| {
        matches!(t, FromAcd::Announce(text) if text.contains("To be called back instead, press 1."))
    });
    assert!(offered, "{:?}", sw.told[&id]);
    assert!(
        sw.center
            .admissions()
            .keys()
            .any(|(d, r)| *d == "admit_with_callback_offer" && r.contains("circuitbreaker")),
        "{:?}",
        sw.center.admissions()
    );
    sw.hang_up(id);
    // Given back to the measurement: one arrival over a minute is normal.
    sw.center.set_surge(now, None);
    assert_eq!(sw.center.surge_level(), SurgeLevel::Normal);
    assert!(sw.center.surge_ratio(now) < 3.0);
    assert_eq!(sw.center.surge_changes(), 2);
    sw.assert_idle();
}

/// The journey flow with a satisfaction survey after the refund queue's calls.
fn surveyed() -> crest_call::Start {
    use std::sync::Arc;
    const SURVEY: &str = r#"
flow: csat
version: "1"
language: en-US
voice: en-us
start: rate
nodes:
  - ask:
      name: rate
      prompt: "How satisfied were you with your agent? Press 1 to 5."
      digits: {min: 1, max: 1, into: csat, next: thanks}
      timeout_secs: 5
      no_input: {prompt: "", retries: 0, then: bye}
      no_match: {prompt: "Please press a key from 1 to 5.", retries: 1, then: bye}
  - say: {name: thanks, text: "Thank you. Goodbye.", next: bye}
  - hangup: {name: bye, reason: survey}
"#;
    let ctx = crest_ivr::Context::default();
    let check = |name: &str, yaml: &str| {
        Arc::new(crest_ivr::check(std::path::Path::new(name), yaml, &ctx).expect("checks"))
    };
    let main = common::FLOW.replace(
        "queue: {name: refund_queue, queue: refund, tier: gold}",
        "queue: {name: refund_queue, queue: refund, tier: gold, survey: csat}",
    );
    let flow = check("journey.yaml", &main);
    crest_call::Start::Ivr {
        library: Arc::new(crest_ivr::Library::new([
            flow.clone(),
            check("csat.yaml", SURVEY),
        ])),
        flow,
        vars: [("caller".to_owned(), "+8613800000000".to_owned())].into(),
    }
}

#[test]
fn when_the_agent_hangs_up_first_the_caller_rates_the_call_and_the_agent_wraps_up() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = sw.arrive(surveyed());
    sw.prompt_done(id); // "Welcome."
    sw.input(id, Input::Key('2')); // refund
    assert_eq!(rings(&sw, id), ["alice"]);
    sw.agent_answers(id);
    sw.advance(Duration::from_secs(30));
    sw.agent_hangs_up(id);
    // The agent's call is over for the ACD; the caller is not hung up on.
    assert!(matches!(sw.agent_state("alice"), AgentState::WrapUp(_)));
    assert_eq!(sw.calls[&id].stage(), Stage::Survey);
    assert!(
        !sw.sip
            .iter()
            .any(|s| matches!(s, Sip::End(c, _) if *c == id))
    );
    sw.input(id, Input::Key('4'));
    sw.prompt_done(id); // "Thank you. Goodbye."
    let r = &sw.records[&id];
    assert_eq!(
        (r.csat, r.outcome.as_str(), r.agent.as_deref(), r.ended_in),
        (Some(4), "answered", Some("alice"), Stage::Survey)
    );
    assert_eq!(
        r.path.first().map(String::as_str),
        Some("welcome"),
        "the journey's own path"
    );
    sw.advance(Duration::from_secs(10));
    assert!(matches!(sw.agent_state("alice"), AgentState::Available(_)));
    sw.assert_idle();
}

#[test]
fn without_a_survey_the_agents_hang_up_ends_the_call_and_a_bad_score_is_not_kept() {
    // No survey named: the caller is hung up on.
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = queued(&mut sw);
    sw.agent_answers(id);
    sw.agent_hangs_up(id);
    assert!(
        sw.sip
            .iter()
            .any(|s| matches!(s, Sip::End(c, _) if *c == id))
    );
    assert_eq!(
        (sw.records[&id].csat, sw.records[&id].outcome.as_str()),
        (None, "answered")
    );
    // A survey answered with 9, then the caller hangs up: no score.
    let id = sw.arrive(surveyed());
    sw.prompt_done(id);
    sw.input(id, Input::Key('2'));
    sw.advance(Duration::from_secs(5)); // alice's wrap-up
    sw.agent_answers(id);
    sw.agent_hangs_up(id);
    sw.input(id, Input::Key('9'));
    sw.hang_up(id);
    assert_eq!(sw.records[&id].csat, None);
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn the_ringing_agent_sees_what_the_ivr_learned_but_never_card_data() {
    use std::sync::Arc;
    const FLOW: &str = r#"
flow: ctx
version: "1"
language: en-US
voice: en-us
start: order_number
backends:
  orders: {url: "http://127.0.0.1:9", timeout_ms: 2000}
nodes:
  - ask:
      name: order_number
      prompt: "Key your order number."
      digits: {min: 4, max: 4, into: order.id, next: card}
      timeout_secs: 5
      no_input: {prompt: "", retries: 0, then: q}
      no_match: {prompt: "", retries: 0, then: q}
  - ask:
      name: card
      prompt: "Key your card number."
      digits: {min: 4, max: 4, into: order.card, next: lookup, pci: true}
      timeout_secs: 5
      no_input: {prompt: "", retries: 0, then: q}
      no_match: {prompt: "", retries: 0, then: q}
  - lookup: {name: lookup, backend: orders, path: "/orders/{order.id}", into: order, next: q, on_error: q}
  - queue: {name: q, queue: refund}
"#;
    let flow = Arc::new(
        crest_ivr::check(
            std::path::Path::new("ctx.yaml"),
            FLOW,
            &crest_ivr::Context::default(),
        )
        .expect("checks"),
    );
    let start = crest_call::Start::Ivr {
        library: Arc::new(crest_ivr::Library::new([flow.clone()])),
        flow,
        vars: [("caller".to_owned(), "+8613800000000".to_owned())].into(),
    };
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    let id = sw.arrive(start);
    for k in "12344242".chars() {
        sw.input(id, Input::Key(k));
    }
    sw.input(
        id,
        Input::LookupDone(Some((200, r#"{"status": "shipped", "eta": "tomorrow"}"#))),
    );
    assert_eq!(rings(&sw, id), ["alice"]);
    let now = sw.now;
    let offer = sw
        .center
        .offer(now, "alice")
        .expect("alice is offered the call");
    assert_eq!(offer.queue, "refund");
    assert_eq!(offer.number, "+8**********00");
    let ctx: std::collections::BTreeMap<_, _> = offer.context.into_iter().collect();
    assert_eq!(ctx["path"], "order_number>card>lookup>q");
    assert_eq!(ctx["order.id"], "1234");
    assert_eq!(ctx["order.status"], "shipped");
    assert!(
        !ctx.contains_key("order.card"),
        "card data stays in the call: {ctx:?}"
    );
    assert!(
        !ctx.values().any(|v| v.contains("4242")),
        "card data stays in the call: {ctx:?}"
    );
    assert_eq!(sw.center.offer(now, "bob"), None, "bob is not offered it");
    sw.hang_up(id);
    sw.advance(Duration::from_secs(10));
    sw.assert_idle();
}

#[test]
fn an_agent_transfers_to_a_colleague_by_name_then_to_a_queue_with_what_the_ivr_learned() {
    let mut sw = Switch::new(AdmissionConfig::default(), false);
    sw.register("alice");
    sw.register("bob");
    let id = queued(&mut sw);
    assert_eq!(rings(&sw, id), ["alice"], "alice is the better at refunds");
    sw.agent_answers(id);
    assert_eq!(sw.center.talking("alice"), Some(id));
    assert_eq!(sw.center.talking("bob"), None);
    // Checked before anything happens.
    use crest_call::Transfer;
    assert!(
        sw.center
            .check_transfer(&Transfer::Queue("nope".into()))
            .is_err()
    );
    assert!(
        sw.center
            .check_transfer(&Transfer::Agent("carol".into()))
            .is_err()
    );
    assert!(
        sw.center
            .check_transfer(&Transfer::Agent("bob".into()))
            .is_ok()
    );
    // Alice sends the caller to bob: her leg goes, she wraps up, bob rings (only bob).
    sw.input(id, Input::Transfer(Transfer::Agent("bob".into())));
    assert!(sw.sip.contains(&Sip::Disconnect(id, "alice".into())));
    assert!(matches!(sw.agent_state("alice"), AgentState::WrapUp(_)));
    assert_eq!(rings(&sw, id), ["alice", "bob"]);
    let offer = sw
        .center
        .offer(sw.now, "bob")
        .expect("bob is offered the caller");
    assert_eq!(offer.queue, "refund");
    assert!(
        offer
            .context
            .contains(&("transferred_by".into(), "alice".into())),
        "{:?}",
        offer.context
    );
    assert!(
        offer.context.iter().any(|(k, _)| k == "intent"),
        "what the IVR learned goes along: {:?}",
        offer.context
    );
    sw.agent_answers(id);
    assert_eq!(sw.call_stage(id), Stage::Bridged);
    // Bob sends them on to the order-status queue: alice is free by now and takes it.
    sw.advance(Duration::from_secs(6));
    assert!(matches!(sw.agent_state("alice"), AgentState::Available(_)));
    sw.input(id, Input::Transfer(Transfer::Queue("order-status".into())));
    assert!(sw.sip.contains(&Sip::Disconnect(id, "bob".into())));
    assert_eq!(rings(&sw, id), ["alice", "bob", "alice"]);
    // A transfer asked while nobody talks to the caller changes nothing.
    sw.input(id, Input::Transfer(Transfer::Queue("refund".into())));
    assert_eq!(rings(&sw, id), ["alice", "bob", "alice"]);
    sw.agent_answers(id);
    sw.hang_up(id);
    sw.advance(Duration::from_secs(6));
    let r = &sw.records[&id];
    assert_eq!(
        (r.outcome.as_str(), r.agent.as_deref(), r.queue.as_deref()),
        ("answered", Some("alice"), Some("order-status"))
    );
    let c = sw.counters();
    assert_eq!((c.answered, c.missed), (3, 0));
    sw.assert_idle();
}
