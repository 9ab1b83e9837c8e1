//! The ACD core in virtual time: scoring, ties, priority with ageing, overflow steps, misses,
//! wrap-up, abandons, and random event sequences that must never offer two calls to an agent
//! or one call to two agents.

use super::*;
use crate::model::{AcdConfig, AgentConfig, PoolConfig, QueueConfig, Weights};
use proptest::prelude::{ProptestConfig, prop_assert, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as _;

fn agent(name: &str, pool: &str, skills: &[(&str, f64)], rating: f64) -> AgentConfig {
    AgentConfig {
        name: name.into(),
        pool: pool.into(),
        skills: skills.iter().map(|(s, l)| ((*s).into(), *l)).collect(),
        rating,
        languages: Vec::new(),
    }
}

/// Two pools (north overflows to south after 30 s), a refund queue homed in north.
fn config(agents: Vec<AgentConfig>) -> AcdConfig {
    AcdConfig {
        pools: vec![
            PoolConfig {
                name: "north".into(),
                neighbours: vec!["south".into()],
                overflow_after_secs: 30,
                standby: false,
            },
            PoolConfig {
                name: "south".into(),
                neighbours: vec![],
                overflow_after_secs: 30,
                standby: false,
            },
        ],
        queues: vec![QueueConfig {
            name: "refund".into(),
            skill: "refund".into(),
            pool: "north".into(),
            weights: Weights::default(),
            aht_secs: 180,
        }],
        agents,
        ..AcdConfig::default()
    }
}

fn acd(t0: Instant, agents: Vec<AgentConfig>) -> Acd {
    Acd::new(t0, Model::new(&config(agents)).unwrap())
}

fn caller(n: u64, tier: u8) -> Caller {
    Caller {
        call: CallId(n),
        queue: QueueId(0),
        tier,
        number: format!("+86138000{n:05}"),
        language: None,
        agent: None,
    }
}

fn outputs(a: &mut Acd) -> Vec<Output> {
    std::iter::from_fn(|| a.poll_output()).collect()
}

/// The outputs without overflow steps (which tests about other things need not spell out).
fn routing(a: &mut Acd) -> Vec<Output> {
    outputs(a)
        .into_iter()
        .filter(|o| !matches!(o, Output::Overflow { .. }))
        .collect()
}

fn offer(call: u64, agent: u32) -> Output {
    Output::Offer {
        call: CallId(call),
        agent: AgentId(agent),
    }
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn the_best_scoring_agent_gets_the_call_and_ties_go_to_the_longest_idle() {
    let t0 = Instant::now();
    let mut a = acd(
        t0,
        vec![
            agent("weak", "north", &[("refund", 0.3)], 0.9),
            agent("expert", "north", &[("refund", 1.0)], 0.5),
            agent("twin-late", "north", &[("refund", 0.6)], 0.5),
            agent("twin-early", "north", &[("refund", 0.6)], 0.5),
        ],
    );
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::AgentLogin(AgentId(1)));
    a.handle(secs(t0, 5), Input::AgentLogin(AgentId(2)));
    a.handle(secs(t0, 1), Input::AgentLogin(AgentId(3)));
    // expert: 0.4·1.0 + 0.2·1 + 0.1·0.5 = 0.65; weak: 0.12 + 0.2 + 0.09 = 0.41.
    a.handle(secs(t0, 10), Input::CallArrived(caller(1, 0)));
    assert_eq!(outputs(&mut a), [offer(1, 1)]);
    // The twins score the same: the one idle longer (since 1 s) wins.
    a.handle(secs(t0, 10), Input::CallArrived(caller(2, 0)));
    assert_eq!(outputs(&mut a), [offer(2, 3)]);
    a.check_invariants().unwrap();
}

#[test]
fn a_busy_agents_load_lowers_its_score() {
    let t0 = Instant::now();
    let mut a = acd(
        t0,
        vec![
            agent("a", "north", &[("refund", 0.8)], 0.5),
            agent("b", "north", &[("refund", 0.8)], 0.5),
        ],
    );
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(secs(t0, 1), Input::AgentLogin(AgentId(1)));
    // Agent 0 (idle longer) takes a 20-minute call, then both are free.
    a.handle(secs(t0, 2), Input::CallArrived(caller(1, 0)));
    a.handle(secs(t0, 3), Input::Answered(AgentId(0), CallId(1)));
    a.handle(secs(t0, 1203), Input::CallEnded(AgentId(0), CallId(1)));
    a.handle_timeout(secs(t0, 1213));
    assert!(
        a.agent_load(AgentId(0)) > 0.4,
        "{}",
        a.agent_load(AgentId(0))
    );
    let _ = outputs(&mut a);
    // Agent 1 has been idle since 1 s but agent 0 since 1213 s; load decides, not idle time.
    a.handle(secs(t0, 1214), Input::CallArrived(caller(2, 0)));
    assert_eq!(outputs(&mut a), [offer(2, 1)]);
}

#[test]
fn vips_go_first_but_a_long_wait_beats_a_tier() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    a.handle(secs(t0, 100), Input::CallArrived(caller(2, 0)));
    a.handle(secs(t0, 130), Input::CallArrived(caller(3, 2))); // VIP, 60 s credit
    // Call 1 waited 150 s: ahead of the VIP (virtual arrival 70 s); the VIP is ahead of call 2.
    let mut order = Vec::new();
    a.handle(secs(t0, 150), Input::AgentLogin(AgentId(0)));
    for n in 0..3u64 {
        let now = secs(t0, 151 + 100 * n);
        let Some(Output::Offer { call, agent }) = outputs(&mut a)
            .into_iter()
            .find(|o| matches!(o, Output::Offer { .. }))
        else {
            panic!("no offer");
        };
        order.push(call.0);
        a.handle(now, Input::Answered(agent, call));
        a.handle(now + Duration::from_secs(60), Input::CallEnded(agent, call));
        a.handle_timeout(now + Duration::from_secs(70));
    }
    assert_eq!(order, [1, 3, 2]);
}

#[test]
fn overflow_widens_to_the_neighbour_pool_as_a_logged_step() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("s", "south", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    assert!(
        outputs(&mut a).is_empty(),
        "south does not take north's calls yet"
    );
    assert_eq!(a.poll_timeout(), Some(secs(t0, 30)));
    a.handle_timeout(secs(t0, 30));
    assert_eq!(
        outputs(&mut a),
        [
            Output::Overflow {
                call: CallId(1),
                step: 1,
                pool: PoolId(1)
            },
            offer(1, 0)
        ]
    );
    assert_eq!(a.counters().overflows, 1);
    a.check_invariants().unwrap();
}

#[test]
fn an_agent_who_lets_calls_ring_out_is_skipped_then_set_away() {
    let t0 = Instant::now();
    let mut a = acd(
        t0,
        vec![
            agent("sleepy", "north", &[("refund", 1.0)], 0.5),
            agent("awake", "north", &[("refund", 0.5)], 0.5),
        ],
    );
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    assert_eq!(outputs(&mut a), [offer(1, 0)]);
    a.handle(t0, Input::AgentLogin(AgentId(1)));
    // 15 s ring time: retracted, offered to the other agent; sleepy is free again but not
    // for call 1.
    a.handle_timeout(secs(t0, 15));
    assert_eq!(
        outputs(&mut a),
        [
            Output::Retract {
                call: CallId(1),
                agent: AgentId(0)
            },
            offer(1, 1)
        ]
    );
    assert!(matches!(
        a.agent_state(AgentId(0)),
        AgentState::Available(_)
    ));
    // Two more misses in a row: away.
    for n in 2..=3 {
        a.handle(secs(t0, 20 * n), Input::CallArrived(caller(n, 0)));
        assert_eq!(outputs(&mut a), [offer(n, 0)]);
        a.handle(secs(t0, 20 * n + 1), Input::NoAnswer(AgentId(0), CallId(n)));
        a.check_invariants().unwrap();
        let _ = outputs(&mut a);
    }
    assert_eq!(
        a.agent_state(AgentId(0)),
        &AgentState::Away("missed 3 calls in a row".into())
    );
    assert_eq!(a.counters().set_away, 1);
    assert_eq!(
        a.waiting(QueueId(0)),
        2,
        "calls 2 and 3 wait for someone else"
    );
}

#[test]
fn wrap_up_then_available_and_abandons_leave_at_once() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    a.handle(secs(t0, 1), Input::Answered(AgentId(0), CallId(1)));
    a.handle(secs(t0, 2), Input::CallArrived(caller(2, 0)));
    a.handle(secs(t0, 3), Input::CallArrived(caller(3, 0)));
    a.handle(secs(t0, 4), Input::CallAbandoned(CallId(2)));
    assert_eq!(a.waiting(QueueId(0)), 1);
    a.handle(secs(t0, 60), Input::CallEnded(AgentId(0), CallId(1)));
    let _ = outputs(&mut a);
    a.handle_timeout(secs(t0, 69));
    assert!(
        !outputs(&mut a)
            .iter()
            .any(|o| matches!(o, Output::Offer { .. })),
        "still wrapping up"
    );
    a.handle_timeout(secs(t0, 70));
    assert_eq!(outputs(&mut a), [offer(3, 0)]);
    // The caller hangs up while the agent's phone rings: retracted, agent free.
    a.handle(secs(t0, 71), Input::CallAbandoned(CallId(3)));
    assert_eq!(
        outputs(&mut a),
        [Output::Retract {
            call: CallId(3),
            agent: AgentId(0)
        }]
    );
    assert!(matches!(
        a.agent_state(AgentId(0)),
        AgentState::Available(_)
    ));
    assert_eq!(a.counters().abandoned, 2);
}

#[test]
fn wait_estimates_follow_position_staffing_and_measured_handle_time() {
    let t0 = Instant::now();
    let mut a = acd(
        t0,
        vec![
            agent("x", "north", &[("refund", 1.0)], 0.5),
            agent("y", "north", &[("refund", 1.0)], 0.5),
        ],
    );
    assert_eq!(a.ewt(CallId(9)), None, "unknown call");
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    assert_eq!(a.ewt(CallId(1)), None, "nobody staffed");
    for i in 0..2 {
        a.handle(t0, Input::AgentLogin(AgentId(i)));
    }
    let _ = outputs(&mut a);
    a.handle(t0, Input::Answered(AgentId(0), CallId(1)));
    a.handle(t0, Input::CallArrived(caller(2, 0)));
    assert_eq!(outputs(&mut a), [offer(2, 1)]);
    a.handle(t0, Input::Answered(AgentId(1), CallId(2)));
    for n in 3..=5 {
        a.handle(t0, Input::CallArrived(caller(n, 0)));
    }
    // Call 5 is third in line: 3 × 180 s / 2 agents.
    assert_eq!(a.ewt(CallId(5)), Some(Duration::from_secs(270)));
    assert_eq!(a.ewt(CallId(3)), Some(Duration::from_secs(90)));
    // Both calls last 60 s (+10 s wrap-up): the measured handle time moves toward 70 s.
    for i in 0..2 {
        a.handle(
            secs(t0, 60),
            Input::CallEnded(AgentId(i), CallId(u64::from(i) + 1)),
        );
    }
    assert!(a.aht(QueueId(0)) < Duration::from_secs(180));
    a.handle_timeout(secs(t0, 70));
    let offered: Vec<_> = outputs(&mut a)
        .into_iter()
        .filter(|o| matches!(o, Output::Offer { .. }))
        .collect();
    assert_eq!(offered, [offer(3, 0), offer(4, 1)]);
    a.handle(secs(t0, 71), Input::Answered(AgentId(0), CallId(3)));
    // Call 3 waited 71 s against 90 s predicted.
    let c = a.counters();
    assert_eq!(
        c.ewt_samples, 2,
        "calls 2 (no wait, none predicted) and 3; call 1 had no estimate"
    );
    assert!((c.ewt_bias_secs - (71.0 - 90.0)).abs() < 1e-6, "{c:?}");
    assert!((c.ewt_abs_error_secs - 19.0).abs() < 1e-6, "{c:?}");
}

#[test]
fn a_callback_keeps_its_place_one_per_number_and_reserves_the_agent_while_dialling() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    a.handle(t0, Input::Answered(AgentId(0), CallId(1)));
    let _ = routing(&mut a);
    a.handle(secs(t0, 1), Input::CallArrived(caller(2, 0)));
    a.handle(secs(t0, 2), Input::CallArrived(caller(3, 0)));
    a.handle(secs(t0, 3), Input::CallbackRequested(CallId(2)));
    // The same number again (call 4 from call 2's number) is refused: one pending each.
    let mut again = caller(4, 0);
    again.number = caller(2, 0).number;
    a.handle(secs(t0, 4), Input::CallArrived(again));
    a.handle(secs(t0, 4), Input::CallbackRequested(CallId(4)));
    assert_eq!(
        routing(&mut a),
        [
            Output::CallbackScheduled { call: CallId(2) },
            Output::CallbackRefused { call: CallId(4) }
        ]
    );
    // Call 2 kept its place ahead of call 3: its turn comes first, as a dial-out.
    a.handle(secs(t0, 100), Input::CallEnded(AgentId(0), CallId(1)));
    a.handle_timeout(secs(t0, 110));
    assert_eq!(
        routing(&mut a),
        [Output::Dial {
            call: CallId(2),
            agent: AgentId(0),
            number: caller(2, 0).number
        }]
    );
    a.handle(secs(t0, 111), Input::NoAnswer(AgentId(0), CallId(2)));
    assert!(
        matches!(a.agent_state(AgentId(0)), AgentState::Ringing(..)),
        "held for the dial"
    );
    a.handle(secs(t0, 120), Input::CallbackAnswered(CallId(2)));
    assert_eq!(a.agent_state(AgentId(0)), &AgentState::OnCall(CallId(2)));
    // The number is free again; a callback for call 3 whose customer never answers frees
    // the agent after the dial window.
    a.handle(secs(t0, 121), Input::CallbackRequested(CallId(3)));
    a.handle(secs(t0, 200), Input::CallEnded(AgentId(0), CallId(2)));
    a.handle_timeout(secs(t0, 210));
    let _ = routing(&mut a);
    a.handle_timeout(secs(t0, 270));
    assert_eq!(
        routing(&mut a),
        [
            Output::Retract {
                call: CallId(3),
                agent: AgentId(0)
            },
            offer(4, 0)
        ]
    );
    let c = a.counters();
    assert_eq!((c.callbacks, c.callbacks_unanswered), (2, 1));
    a.check_invariants().unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Login(u32),
    Logout(u32),
    Away(u32),
    Arrive(u64, u8),
    Abandon(u64),
    Answer(u32),
    NoAnswer(u32),
    End(u32),
    Wait(u64),
    Callback(u64),
    CallbackAnswer(u32),
    CallbackFail(u32),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        (0u32..6).prop_map(Op::Login),
        (0u32..6).prop_map(Op::Logout),
        (0u32..6).prop_map(Op::Away),
        ((0u64..20), 0u8..4).prop_map(|(c, t)| Op::Arrive(c, t)),
        (0u64..20).prop_map(Op::Abandon),
        (0u32..6).prop_map(Op::Answer),
        (0u32..6).prop_map(Op::NoAnswer),
        (0u32..6).prop_map(Op::End),
        (0u64..40).prop_map(Op::Wait),
        (0u64..20).prop_map(Op::Callback),
        (0u32..6).prop_map(Op::CallbackAnswer),
        (0u32..6).prop_map(Op::CallbackFail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn no_agent_gets_two_calls_and_no_call_two_agents(ops in proptest::collection::vec(op(), 1..80)) {
        let t0 = Instant::now();
        let agents = (0..6)
            .map(|i| agent(&format!("a{i}"), if i % 2 == 0 { "north" } else { "south" }, &[("refund", 0.2 + 0.1 * f64::from(i))], 0.5))
            .collect();
        let mut a = acd(t0, agents);
        let mut now = t0;
        // What each agent's phone is doing according to the outputs (the driver's view).
        let mut ringing: HashMap<AgentId, CallId> = HashMap::new();
        let mut on_call: HashMap<AgentId, CallId> = HashMap::new();
        let mut dialing: std::collections::HashSet<AgentId> = std::collections::HashSet::new();
        for op in ops {
            match op {
                Op::Login(i) => a.handle(now, Input::AgentLogin(AgentId(i))),
                Op::Logout(i) => a.handle(now, Input::AgentLogout(AgentId(i))),
                Op::Away(i) => a.handle(now, Input::AgentAway(AgentId(i), "break".into())),
                Op::Arrive(c, t) => a.handle(now, Input::CallArrived(caller(c, t))),
                Op::Abandon(c) => a.handle(now, Input::CallAbandoned(CallId(c))),
                Op::Answer(i) => if let Some(c) = ringing.get(&AgentId(i)).copied() {
                    a.handle(now, Input::Answered(AgentId(i), c));
                    if a.agent_state(AgentId(i)) == &AgentState::OnCall(c) {
                        ringing.remove(&AgentId(i));
                        on_call.insert(AgentId(i), c);
                    }
                },
                Op::NoAnswer(i) => if !dialing.contains(&AgentId(i)) && let Some(c) = ringing.remove(&AgentId(i)) {
                    a.handle(now, Input::NoAnswer(AgentId(i), c));
                },
                Op::Callback(c) => a.handle(now, Input::CallbackRequested(CallId(c))),
                Op::CallbackAnswer(i) => if dialing.contains(&AgentId(i)) && let Some(c) = ringing.get(&AgentId(i)).copied() {
                    a.handle(now, Input::CallbackAnswered(c));
                    if a.agent_state(AgentId(i)) == &AgentState::OnCall(c) {
                        ringing.remove(&AgentId(i));
                        dialing.remove(&AgentId(i));
                        on_call.insert(AgentId(i), c);
                    }
                },
                Op::CallbackFail(i) => if dialing.remove(&AgentId(i)) && let Some(c) = ringing.remove(&AgentId(i)) {
                    a.handle(now, Input::CallbackUnanswered(c));
                },
                Op::End(i) => if let Some(c) = on_call.remove(&AgentId(i)) {
                    a.handle(now, Input::CallEnded(AgentId(i), c));
                },
                Op::Wait(s) => {
                    now += Duration::from_secs(s);
                    a.handle_timeout(now);
                }
            }
            for o in std::iter::from_fn(|| a.poll_output()) {
                match o {
                    Output::Offer { call, agent } | Output::Dial { call, agent, .. } => {
                        prop_assert!(!ringing.contains_key(&agent) && !on_call.contains_key(&agent), "{agent:?} offered {call:?} while busy");
                        prop_assert!(!ringing.values().any(|c| *c == call) && !on_call.values().any(|c| *c == call), "{call:?} offered twice");
                        ringing.insert(agent, call);
                        if matches!(o, Output::Dial { .. }) {
                            dialing.insert(agent);
                        }
                    }
                    Output::Retract { agent, call } => {
                        prop_assert_eq!(ringing.remove(&agent), Some(call));
                        dialing.remove(&agent);
                    }
                    Output::Overflow { .. }
                    | Output::AgentAway { .. }
                    | Output::CallbackScheduled { .. }
                    | Output::CallbackRefused { .. } => {}
                }
            }
            // A NoAnswer that the ACD took ends that ringing too.
            ringing.retain(|ag, c| a.agent_state(*ag).ringing_for() == Some(*c));
            dialing.retain(|ag| ringing.contains_key(ag));
            if let Err(e) = a.check_invariants() {
                prop_assert!(false, "{}", e);
            }
        }
    }
}

#[test]
fn a_caller_with_a_language_reaches_only_agents_who_take_it() {
    let t0 = Instant::now();
    let mut zh = agent("li", "north", &[("refund", 0.4)], 0.5);
    zh.languages = vec!["zh".into(), "en".into()];
    let mut en = agent("ann", "north", &[("refund", 1.0)], 0.9);
    en.languages = vec!["en".into()];
    let any = agent("max", "north", &[("refund", 0.2)], 0.1);
    let mut a = acd(t0, vec![en, zh, any]);
    for i in 0..3 {
        a.handle(t0, Input::AgentLogin(AgentId(i)));
    }
    let speaking = |n: u64, lang: Option<&str>| Caller {
        language: lang.map(Into::into),
        ..caller(n, 0)
    };
    // Chinese (any region): li, though ann scores better; max lists no language, so takes any.
    a.handle(secs(t0, 1), Input::CallArrived(speaking(1, Some("zh-CN"))));
    assert_eq!(outputs(&mut a), [offer(1, 1)]);
    a.handle(secs(t0, 1), Input::CallArrived(speaking(2, Some("zh"))));
    assert_eq!(outputs(&mut a), [offer(2, 2)]);
    // Nobody left who takes Chinese: the next waits, and ann is not offered it.
    a.handle(secs(t0, 2), Input::CallArrived(speaking(3, Some("zh"))));
    assert_eq!(routing(&mut a), []);
    // An English caller (or one whose language is unknown) still reaches ann.
    a.handle(secs(t0, 3), Input::CallArrived(speaking(4, Some("en-US"))));
    assert_eq!(routing(&mut a), [offer(4, 0)]);
    // Li is free again: the waiting Chinese caller is hers.
    a.handle(secs(t0, 4), Input::NoAnswer(AgentId(1), CallId(1)));
    assert!(
        routing(&mut a).contains(&offer(3, 1)),
        "li takes the waiting caller"
    );
    a.check_invariants().unwrap();
}

#[test]
fn a_caller_transferred_to_one_agent_waits_for_them_and_nobody_else_takes_them() {
    let t0 = Instant::now();
    let ann = agent("ann", "north", &[("refund", 1.0)], 0.9);
    let bob = agent("bob", "north", &[("refund", 0.3)], 0.2);
    let mut a = acd(t0, vec![ann, bob]);
    for i in 0..2 {
        a.handle(t0, Input::AgentLogin(AgentId(i)));
    }
    let for_bob = |n: u64| Caller {
        agent: Some(AgentId(1)),
        ..caller(n, 0)
    };
    // Bob, though ann scores better and is free.
    a.handle(secs(t0, 1), Input::CallArrived(for_bob(1)));
    assert_eq!(outputs(&mut a), [offer(1, 1)]);
    // Bob is ringing: the next caller for him waits, and ann is not offered them.
    a.handle(secs(t0, 2), Input::CallArrived(for_bob(2)));
    assert_eq!(routing(&mut a), []);
    // An ordinary caller still reaches ann.
    a.handle(secs(t0, 3), Input::CallArrived(caller(3, 0)));
    assert_eq!(routing(&mut a), [offer(3, 0)]);
    a.handle(secs(t0, 4), Input::Answered(AgentId(0), CallId(3)));
    a.handle(secs(t0, 5), Input::CallEnded(AgentId(0), CallId(3)));
    let freed = routing(&mut a);
    assert!(
        !freed.contains(&offer(2, 0)),
        "ann never takes bob's caller: {freed:?}"
    );
    // Bob is free again: his waiting caller is his.
    a.handle(secs(t0, 6), Input::Answered(AgentId(1), CallId(1)));
    a.handle(secs(t0, 7), Input::CallEnded(AgentId(1), CallId(1)));
    let mut later = secs(t0, 7);
    let mut offered = Vec::new();
    for _ in 0..120 {
        later += Duration::from_secs(1);
        a.handle_timeout(later);
        offered.extend(routing(&mut a));
        if offered.contains(&offer(2, 1)) {
            break;
        }
    }
    assert!(
        offered.contains(&offer(2, 1)),
        "bob takes his caller: {offered:?}"
    );
    a.check_invariants().unwrap();
}

#[test]
fn a_callback_asked_from_the_start_reserves_a_free_agent_and_dials_never_rings() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::CallbackArrived(caller(1, 0)));
    assert_eq!(
        routing(&mut a),
        [
            Output::CallbackScheduled { call: CallId(1) },
            Output::Dial {
                call: CallId(1),
                agent: AgentId(0),
                number: caller(1, 0).number
            }
        ],
        "scheduled first, then the free agent is reserved and the customer dialled"
    );
    // The same number again while that callback is pending: refused, never queued.
    a.handle(
        secs(t0, 1),
        Input::CallbackArrived(Caller {
            call: CallId(2),
            ..caller(1, 0)
        }),
    );
    assert_eq!(
        routing(&mut a),
        [Output::CallbackRefused { call: CallId(2) }]
    );
    assert_eq!(a.position(CallId(2)), None);
    assert_eq!(a.ewt(CallId(2)), None, "the ACD does not know the call");
}

#[test]
fn a_logout_or_break_during_a_call_is_taken_when_the_call_ends() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    a.handle(secs(t0, 1), Input::Answered(AgentId(0), CallId(1)));
    a.handle(secs(t0, 2), Input::AgentLogout(AgentId(0)));
    assert_eq!(a.agent_state(AgentId(0)), &AgentState::OnCall(CallId(1)));
    a.handle(secs(t0, 3), Input::CallArrived(caller(2, 0)));
    a.handle(secs(t0, 60), Input::CallEnded(AgentId(0), CallId(1)));
    assert_eq!(a.agent_state(AgentId(0)), &AgentState::Offline);
    a.handle_timeout(secs(t0, 600));
    assert!(
        !routing(&mut a).iter().any(|o| matches!(
            o,
            Output::Offer {
                call: CallId(2),
                ..
            }
        )),
        "the logged-out agent is not offered the waiting caller"
    );
    // A break asked during a call, then taken back by Ready before it ends: no break.
    a.handle(secs(t0, 601), Input::AgentLogin(AgentId(0)));
    let _ = routing(&mut a);
    a.handle(secs(t0, 602), Input::Answered(AgentId(0), CallId(2)));
    a.handle(secs(t0, 603), Input::AgentAway(AgentId(0), "lunch".into()));
    a.handle(secs(t0, 604), Input::AgentReady(AgentId(0)));
    a.handle(secs(t0, 650), Input::CallEnded(AgentId(0), CallId(2)));
    assert!(matches!(a.agent_state(AgentId(0)), AgentState::WrapUp(_)));
}

#[test]
fn per_queue_waits_give_service_level_and_speed_of_answer() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    // Waits of 4 s, 18 s and 45 s; one caller gives up.
    for (n, arrive, answer) in [(1, 0, 4), (2, 100, 118), (3, 200, 245)] {
        a.handle(secs(t0, arrive), Input::CallArrived(caller(n, 0)));
        let _ = routing(&mut a);
        assert!(matches!(a.agent_state(AgentId(0)), AgentState::Ringing(c, _) if *c == CallId(n)));
        a.handle(secs(t0, answer), Input::Answered(AgentId(0), CallId(n)));
        a.handle(
            secs(t0, answer + 1),
            Input::CallEnded(AgentId(0), CallId(n)),
        );
        a.handle_timeout(secs(t0, answer + 60));
    }
    a.handle(secs(t0, 400), Input::AgentLogout(AgentId(0)));
    a.handle(secs(t0, 400), Input::CallArrived(caller(4, 0)));
    a.handle(secs(t0, 430), Input::CallAbandoned(CallId(4)));
    let q = a.queue_stats(QueueId(0)).unwrap().clone();
    assert_eq!((q.answered, q.abandoned), (3, 1));
    assert_eq!(
        q.asa(),
        Some(Duration::from_secs_f64(67.0 / 3.0)),
        "(4 + 18 + 45) / 3"
    );
    assert_eq!(q.service_level(20), Some(2.0 / 3.0));
    assert_eq!(q.service_level(5), Some(1.0 / 3.0));
    assert_eq!(q.service_level(21), None, "not a bucket");
    assert_eq!(q.waited_at_most, [1, 1, 1, 2, 2, 3, 3, 3]);
    assert_eq!(a.queue_stats(QueueId(9)), None);
}

#[test]
fn an_agent_edited_live_keeps_its_state_and_takes_waiting_callers_its_new_skills_allow() {
    let t0 = Instant::now();
    let mut a = acd(
        t0,
        vec![
            agent("talker", "north", &[("refund", 1.0)], 0.5),
            agent("learner", "north", &[("sales", 1.0)], 0.5),
        ],
    );
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(t0, Input::AgentLogin(AgentId(1)));
    a.handle(secs(t0, 1), Input::CallArrived(caller(1, 0)));
    a.handle(secs(t0, 2), Input::Answered(AgentId(0), CallId(1)));
    a.handle(secs(t0, 3), Input::CallArrived(caller(2, 0)));
    assert_eq!(outputs(&mut a), [offer(1, 0)]);
    assert_eq!(a.waiting(QueueId(0)), 1, "nobody free can take refunds");
    // The talker's rating changes mid-call: the call goes on.
    let talker = agent("talker", "north", &[("refund", 1.0)], 0.9);
    assert_eq!(a.put_agent(secs(t0, 4), &talker), Ok(AgentId(0)));
    assert_eq!(*a.agent_state(AgentId(0)), AgentState::OnCall(CallId(1)));
    // The learner gains refunds while available: the waiting caller rings them at once.
    let learner = agent("learner", "north", &[("refund", 0.5), ("sales", 1.0)], 0.5);
    assert_eq!(a.put_agent(secs(t0, 5), &learner), Ok(AgentId(1)));
    assert_eq!(outputs(&mut a), [offer(2, 1)]);
    assert_eq!(a.model().agent_config(AgentId(1)), learner);
    a.check_invariants().unwrap();
    // Estimates count the learner as staffed for refunds now.
    a.handle(secs(t0, 6), Input::CallArrived(caller(3, 0)));
    assert_eq!(a.staffed[0][0], 2);
    a.check_invariants().unwrap();
}

#[test]
fn a_new_agent_starts_logged_out_and_a_removed_one_finishes_its_call_then_takes_no_more() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("old", "north", &[("refund", 1.0)], 0.5)]);
    a.handle(t0, Input::AgentLogin(AgentId(0)));
    a.handle(secs(t0, 1), Input::CallArrived(caller(1, 0)));
    a.handle(secs(t0, 2), Input::Answered(AgentId(0), CallId(1)));
    let new = agent("new", "south", &[("refund", 1.0)], 0.5);
    assert_eq!(a.put_agent(secs(t0, 3), &new), Ok(AgentId(1)));
    assert_eq!(*a.agent_state(AgentId(1)), AgentState::Offline);
    a.handle(secs(t0, 3), Input::AgentLogin(AgentId(1)));
    assert_eq!(a.staffed[0][1], 1, "south is refund's overflow pool");
    // Removed mid-call: the call goes on; then logged out, no wrap-up, no next caller.
    a.retire_agent(secs(t0, 4), AgentId(0));
    assert_eq!(*a.agent_state(AgentId(0)), AgentState::OnCall(CallId(1)));
    assert_eq!(a.model().agent("old"), None);
    a.handle(secs(t0, 5), Input::CallEnded(AgentId(0), CallId(1)));
    assert_eq!(*a.agent_state(AgentId(0)), AgentState::Offline);
    a.handle(secs(t0, 6), Input::AgentLogin(AgentId(0)));
    assert_eq!(*a.agent_state(AgentId(0)), AgentState::Offline, "retired");
    a.handle(secs(t0, 7), Input::CallArrived(caller(2, 0)));
    a.handle_timeout(secs(t0, 40));
    assert_eq!(routing(&mut a), [offer(1, 0), offer(2, 1)]);
    // Put back: the same id, logged out until they log in.
    assert_eq!(
        a.put_agent(
            secs(t0, 41),
            &agent("old", "north", &[("refund", 1.0)], 0.5)
        ),
        Ok(AgentId(0))
    );
    assert_eq!(a.model().agent("old"), Some(AgentId(0)));
    a.check_invariants().unwrap();
}

#[test]
fn a_bad_agent_edit_names_the_key_and_changes_nothing() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    let before = a.model().clone();
    for (spec, key) in [
        (agent("x", "west", &[], 0.5), "agent.pool"),
        (
            agent("x", "north", &[("refund", 2.0)], 0.5),
            "agent.skills.refund",
        ),
        (agent("x", "north", &[], -1.0), "agent.rating"),
        (agent("two words", "north", &[], 0.5), "agent.name"),
    ] {
        assert_eq!(a.put_agent(t0, &spec).unwrap_err().key, key);
    }
    assert_eq!(*a.model(), before);
}

#[test]
fn the_last_fifteen_minutes_forget_older_callers() {
    let t0 = Instant::now();
    let mut a = acd(t0, vec![agent("x", "north", &[("refund", 1.0)], 0.5)]);
    // Minute 0: one caller answered after 30 s, one who gave up.
    a.handle(t0, Input::CallArrived(caller(1, 0)));
    a.handle(t0, Input::CallArrived(caller(2, 0)));
    a.handle(secs(t0, 10), Input::CallAbandoned(CallId(2)));
    a.handle(secs(t0, 30), Input::AgentLogin(AgentId(0)));
    a.handle(secs(t0, 30), Input::Answered(AgentId(0), CallId(1)));
    a.handle(secs(t0, 40), Input::CallEnded(AgentId(0), CallId(1)));
    // Minute 10 (the wrap-up long over): one answered at once.
    a.handle_timeout(secs(t0, 600));
    a.handle(secs(t0, 600), Input::CallArrived(caller(3, 0)));
    a.handle(secs(t0, 600), Input::Answered(AgentId(0), CallId(3)));
    let q = QueueId(0);
    let at_11 = a.recent_stats(secs(t0, 660), q).unwrap();
    assert_eq!((at_11.answered, at_11.abandoned), (2, 1));
    assert_eq!(at_11.service_level(20), Some(0.5));
    // At 15 minutes, minute 0 has left the window; the totals keep it.
    let at_15 = a.recent_stats(secs(t0, 900), q).unwrap();
    assert_eq!((at_15.answered, at_15.abandoned), (1, 0));
    assert_eq!(at_15.service_level(20), Some(1.0));
    assert_eq!(a.queue_stats(q).unwrap().answered, 2);
    // Nothing within the last 15 minutes: no service level to show.
    assert_eq!(
        a.recent_stats(secs(t0, 2000), q).unwrap().service_level(20),
        None
    );
}
