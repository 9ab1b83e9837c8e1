#![allow(dead_code, unreachable_pub)] // each test file uses a part of the harness

//! Many calls and the center in one virtual-time loop, like quinn's `Pair`: the calls'
//! controllers, crest-call's [`Center`], and a model of the SIP core between them that
//! rings agents' phones, cancels them, bridges, places callbacks and ends calls. Every test
//! can ask what each party got and check that nothing of an ended call remains.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crest_acd::admission::AdmissionConfig;
use crest_acd::{AcdConfig, AgentState, Counters, Model, SurgeConfig};
use crest_call::{
    Call, CallId, Center, CenterConfig, CenterInput, CenterOutput, Config, FromAcd, Input,
    LegEvent, Output, Record, Start,
};

/// Two agents in one pool; alice is the better at refunds. Ring 10 s, wrap-up 5 s, away after
/// two misses in a row.
pub const ACD: &str = "ring_secs: 10\nwrap_up_secs: 5\nmax_misses: 2\n\
pools:\n  - {name: office, neighbours: []}\n\
queues:\n  - {name: refund, skill: refund, pool: office}\n  - {name: order-status, skill: order_status, pool: office}\n\
agents:\n  - {name: alice, pool: office, skills: {refund: 0.9, order_status: 0.5}, rating: 0.9}\n  - {name: bob, pool: office, skills: {refund: 0.6, order_status: 0.9}, rating: 0.8}\n";

/// What the SIP core did, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sip {
    /// INVITE to an agent's phone for a call.
    Ring(CallId, String),
    /// CANCEL of that INVITE (the caller stays).
    Cancel(CallId, String),
    /// BYE to the agent's leg of a call (a transfer; the caller stays).
    Disconnect(CallId, String),
    /// 200 to a queue caller in early media.
    Accept(CallId),
    /// 503 with Retry-After.
    Refuse(CallId, u64),
    /// BYE (or CANCEL) of every leg of the call.
    End(CallId, String),
    /// A callback placed to a number.
    Originate(CallId, String),
    /// A leg to an agent not placed by the core: the call is not answered yet (481), or the
    /// agent's phone is not registered (480).
    NotPlaced(CallId, String),
}

pub struct Switch {
    pub now: Instant,
    pub center: Center,
    pub calls: BTreeMap<CallId, Call>,
    pub records: BTreeMap<CallId, Record>,
    pub sip: Vec<Sip>,
    /// Agent ringing or talking for each call.
    pub agent_leg: BTreeMap<CallId, (String, bool)>,
    /// `queue:` callers in early media (not answered yet): like the real SIP core, no leg to
    /// an agent can be placed for them.
    pub early: BTreeSet<CallId>,
    /// Agents whose phones are gone without unregistering: the core answers 480.
    pub unreachable: BTreeSet<String>,
    /// What each caller was told by the center (place in line, goodbye, refusal).
    pub told: BTreeMap<CallId, Vec<FromAcd>>,
    next: u64,
    /// Center inputs produced while routing (fed in order).
    pending: VecDeque<(CallId, Output)>,
}

impl Switch {
    pub fn new(admission: AdmissionConfig, callbacks: bool) -> Self {
        Self::with_surge(admission, callbacks, SurgeConfig::default())
    }

    pub fn with_surge(admission: AdmissionConfig, callbacks: bool, surge: SurgeConfig) -> Self {
        let now = Instant::now();
        let cfg: AcdConfig = serde_saphyr::from_str(ACD).expect("the test ACD parses");
        let model = Model::new(&cfg).expect("the test ACD is valid");
        let config = CenterConfig {
            announce_every: Duration::from_secs(30),
            surge,
            admission,
            callback_uri: callbacks.then(|| "sip:{number}@192.0.2.1".to_owned()),
        };
        Self {
            now,
            center: Center::new(now, model, config),
            calls: BTreeMap::new(),
            records: BTreeMap::new(),
            sip: Vec::new(),
            agent_leg: BTreeMap::new(),
            early: BTreeSet::new(),
            unreachable: BTreeSet::new(),
            told: BTreeMap::new(),
            next: 100,
            pending: VecDeque::new(),
        }
    }

    /// An agent's phone registers (they log in).
    pub fn register(&mut self, user: &str) {
        self.center
            .handle_input(self.now, CenterInput::Registration { user, on: true });
        self.settle();
    }

    /// A caller arrives on a route; their leg comes up at once.
    pub fn arrive(&mut self, start: Start) -> CallId {
        let number = format!("+86138{:08}", self.next);
        self.arrive_from(start, &number)
    }

    /// A caller from `number` arrives on a route.
    pub fn arrive_from(&mut self, start: Start, number: &str) -> CallId {
        let id = CallId(self.next);
        self.next += 1;
        if matches!(start, Start::Queue(_)) {
            self.early.insert(id);
        }
        let call = Call::new(id, "4000", number, start, Config::default());
        self.calls.insert(id, call);
        self.center.handle_input(self.now, CenterInput::Arrival);
        self.input(id, Input::CallerUp { unix_secs: 0 });
        id
    }

    /// Feeds call `id` and routes everything that follows.
    pub fn input(&mut self, id: CallId, input: Input<'_>) {
        if let Some(c) = self.calls.get_mut(&id) {
            c.handle_input(self.now, input);
        }
        self.settle();
    }

    /// The prompt playing to call `id` ends.
    pub fn prompt_done(&mut self, id: CallId) {
        self.input(id, Input::PromptDone);
    }

    /// The agent ringing for call `id` answers.
    pub fn agent_answers(&mut self, id: CallId) {
        let leg = self.agent_leg.get_mut(&id).expect("an agent rings");
        leg.1 = true;
        self.input(id, Input::LegB(LegEvent::Answered));
    }

    /// The agent ringing for call `id` rejects it (486).
    pub fn agent_rejects(&mut self, id: CallId) {
        self.agent_leg.remove(&id).expect("an agent rings");
        self.input(id, Input::LegB(LegEvent::Failed(486)));
    }

    /// The agent hangs up first (their BYE): the caller stays with Crest.
    pub fn agent_hangs_up(&mut self, id: CallId) {
        self.agent_leg.remove(&id).expect("an agent talks");
        self.input(id, Input::LegB(LegEvent::Ended));
    }

    /// The caller hangs up (both legs end).
    pub fn hang_up(&mut self, id: CallId) {
        self.end(id, "BYE".into());
    }

    /// Moves virtual time on by `d`, running every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let next = self
                .calls
                .values()
                .filter_map(Call::poll_timeout)
                .chain(self.center.poll_timeout())
                .min()
                .filter(|t| *t <= until);
            let Some(t) = next else { break };
            self.now = t.max(self.now);
            for c in self.calls.values_mut() {
                if c.poll_timeout().is_some_and(|t| t <= self.now) {
                    c.handle_timeout(self.now);
                }
            }
            if self.center.poll_timeout().is_some_and(|t| t <= self.now) {
                self.center.handle_timeout(self.now);
            }
            self.settle();
        }
        self.now = until;
    }

    fn end(&mut self, id: CallId, why: String) {
        if !self.calls.contains_key(&id) {
            return;
        }
        self.sip.push(Sip::End(id, why));
        self.agent_leg.remove(&id);
        self.early.remove(&id);
        self.input(id, Input::Ended);
    }

    /// Routes outputs until everyone is quiet.
    pub fn settle(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<CallId> = self.calls.keys().copied().collect();
            for id in ids {
                while let Some(o) = self.calls.get_mut(&id).and_then(Call::poll_output) {
                    self.pending.push_back((id, o));
                    moved = true;
                }
            }
            while let Some((id, o)) = self.pending.pop_front() {
                self.call_output(id, o);
            }
            while let Some(o) = self.center.poll_output() {
                moved = true;
                self.center_output(o);
            }
            if !moved {
                return;
            }
        }
    }

    fn call_output(&mut self, id: CallId, o: Output) {
        let now = self.now;
        let c = &mut self.center;
        match o {
            Output::Acd(msg) => c.handle_input(now, CenterInput::FromCall(id, msg)),
            Output::Accept => {
                self.early.remove(&id);
                self.sip.push(Sip::Accept(id));
            }
            Output::Refuse { retry_after } => {
                self.sip.push(Sip::Refuse(id, retry_after));
                self.end(id, "503".into());
            }
            Output::HangUp(why) => self.end(id, why),
            Output::Disconnect => {
                if let Some((agent, _)) = self.agent_leg.remove(&id) {
                    self.sip.push(Sip::Disconnect(id, agent));
                }
            }
            Output::Record(r) => {
                self.records.insert(id, r);
                self.calls.remove(&id);
            }
            _ => {}
        }
    }

    fn center_output(&mut self, o: CenterOutput) {
        match o {
            CenterOutput::ToCall(id, ev) => {
                self.told.entry(id).or_default().push(ev.clone());
                if let Some(c) = self.calls.get_mut(&id) {
                    c.handle_input(self.now, Input::Acd(ev));
                }
            }
            CenterOutput::Ring { call, agent, .. } if self.early.contains(&call) => {
                self.sip.push(Sip::NotPlaced(call, agent));
                self.center
                    .handle_input(self.now, CenterInput::ConnectFailed { call, status: 481 });
            }
            CenterOutput::Ring { call, agent, .. } if self.unreachable.contains(&agent) => {
                self.sip.push(Sip::NotPlaced(call, agent));
                self.center
                    .handle_input(self.now, CenterInput::ConnectFailed { call, status: 480 });
            }
            CenterOutput::Ring { call, agent, .. } => {
                self.sip.push(Sip::Ring(call, agent.clone()));
                self.agent_leg.insert(call, (agent, false));
                if let Some(c) = self.calls.get_mut(&call) {
                    c.handle_input(self.now, Input::LegB(LegEvent::Ringing));
                }
            }
            CenterOutput::StopRinging(call) => {
                if let Some((agent, _)) = self.agent_leg.remove(&call) {
                    self.sip.push(Sip::Cancel(call, agent));
                }
            }
            CenterOutput::HangUp(call, why) => self.end(call, why),
            CenterOutput::Originate {
                callback,
                agent,
                queue,
                uri,
                ..
            } => {
                let id = CallId(self.next);
                self.next += 1;
                self.sip.push(Sip::Originate(id, uri));
                let call = Call::new(
                    id,
                    "callback",
                    "crest",
                    Start::Callback(queue),
                    Config::default(),
                );
                self.calls.insert(id, call);
                self.center.handle_input(
                    self.now,
                    CenterInput::Dialled {
                        call: id,
                        callback,
                        agent,
                    },
                );
            }
            CenterOutput::Released(_) => {}
        }
    }

    pub fn agent_state(&self, name: &str) -> AgentState {
        // Removed agents too: their last call may still be going.
        let i = self
            .center
            .acd()
            .model()
            .agents
            .iter()
            .position(|a| a.name == name)
            .expect("a known agent");
        self.center
            .acd()
            .agent_state(crest_acd::AgentId(i as u32))
            .clone()
    }

    /// Where call `id` is now.
    pub fn call_stage(&self, id: CallId) -> crest_call::Stage {
        self.calls[&id].stage()
    }

    pub fn counters(&self) -> Counters {
        self.center.acd().counters().clone()
    }

    /// Nothing of any call remains: no call, no agent leg, nothing in the center, every
    /// agent free of calls.
    pub fn assert_idle(&self) {
        assert!(self.calls.is_empty(), "calls left: {:?}", self.calls.keys());
        assert!(self.early.is_empty(), "early calls left: {:?}", self.early);
        assert!(
            self.agent_leg.is_empty(),
            "agent legs left: {:?}",
            self.agent_leg
        );
        assert_eq!(self.center.calls_held(), 0, "the center holds calls");
        for q in 0..self.center.acd().model().queues.len() {
            assert_eq!(self.center.acd().waiting(crest_acd::QueueId(q as u16)), 0);
        }
        for name in ["alice", "bob"] {
            let s = self.agent_state(name);
            assert!(
                !matches!(s, AgentState::Ringing(..) | AgentState::OnCall(_)),
                "{name} still {s:?}"
            );
        }
    }
}
