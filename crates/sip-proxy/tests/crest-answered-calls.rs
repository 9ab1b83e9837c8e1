//! Calls Crest answers itself (an `ivr:` or `queue:` route) in virtual time: the caller gets
//! Crest's 200 at once, and later the application connects them to an agent's registered phone
//! (ringing out to the next attempt, CANCEL, bridging, hang-ups from either side).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use crest_sip_proxy::config::RouteConfig;
use crest_sip_proxy::{CallId, CallInfo, ConnectTarget, LegEvent, MediaHook, SdpRole, Side};

/// A media layer that writes down what the SIP core asks of it.
#[derive(Debug, Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

impl MediaHook for Log {
    fn exchange(
        &mut self,
        _: Instant,
        call: &CallInfo<'_>,
        from: Side,
        role: SdpRole,
        sdp: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, u16> {
        self.push(format!("exchange {} {from:?} {role:?}", call.key.0));
        Ok(sdp.map(<[u8]>::to_vec))
    }
    fn info(&mut self, _: Instant, call: CallId, from: Side, _: &str, _: &[u8]) -> bool {
        self.push(format!("info {} {from:?}", call.0));
        true
    }
    fn answer(
        &mut self,
        _: Instant,
        call: &CallInfo<'_>,
        sdp: Option<&[u8]>,
    ) -> Result<Vec<u8>, u16> {
        let app = call.app.map(ToString::to_string).unwrap_or_default();
        self.push(format!(
            "answer {} {app} from {} offer {}",
            call.key.0,
            call.caller,
            sdp.is_some()
        ));
        Ok(b"v=0\r\ns=crest-answer\r\n".to_vec())
    }
    fn offer_b(&mut self, _: Instant, call: CallId) -> Result<Vec<u8>, u16> {
        self.push(format!("offer_b {}", call.0));
        Ok(b"v=0\r\ns=crest-offer\r\n".to_vec())
    }
    fn leg_b(&mut self, _: Instant, call: CallId, event: LegEvent) {
        self.push(format!("leg_b {} {event:?}", call.0));
    }
    fn originate(&mut self, _: Instant, call: &CallInfo<'_>) -> Result<Vec<u8>, u16> {
        let app = call.app.map(ToString::to_string).unwrap_or_default();
        self.push(format!("originate {} {app} to {}", call.key.0, call.number));
        Ok(b"v=0\r\ns=crest-offer\r\n".to_vec())
    }
    fn leg_a(&mut self, _: Instant, call: CallId, event: LegEvent) {
        self.push(format!("leg_a {} {event:?}", call.0));
    }
    fn ended(&mut self, _: Instant, call: CallId) {
        self.push(format!("ended {}", call.0));
    }
}

fn harness() -> (Harness, Log) {
    let mut sip = default_sip();
    sip.routes.push(RouteConfig {
        number: "400".into(),
        ivr: Some("main".into()),
        public: true,
        ..RouteConfig::default()
    });
    sip.routes.push(RouteConfig {
        number: "401".into(),
        queue: Some("refund".into()),
        public: true,
        ..RouteConfig::default()
    });
    let mut h = Harness::new(sip);
    let log = Log::default();
    h.ep.set_media(Box::new(log.clone()));
    (h, log)
}

/// A call to the IVR route, answered and ACKed; returns Crest's 200.
fn answered(h: &mut Harness, log: &Log) -> crest_sip_proxy::Message {
    h.recv(CALLER, &invite("400", "ivr1", ""));
    let ok = h.take(CALLER).remove(0);
    assert_eq!(ok.status(), Some(200), "Crest answers at once");
    assert_eq!(&ok.body()[..], b"v=0\r\ns=crest-answer\r\n");
    assert_eq!(log.take(), ["answer 1 ivr:main from carol offer true"]);
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));
    ok
}

#[test]
fn crest_answers_then_rings_an_agent_who_lets_it_ring_out_then_one_who_answers() {
    let (mut h, log) = harness();
    let ok = answered(&mut h, &log);
    h.advance(Duration::from_secs(5));
    assert!(
        h.take(CALLER).is_empty(),
        "no 200 retransmission after the ACK"
    );
    assert!(h.take(CALLEE).is_empty(), "nothing goes anywhere else");
    // A key by INFO goes to the media layer; other requests are answered by Crest.
    h.recv(
        CALLER,
        &caller_request(&ok, "INFO", 2, "Content-Type: application/dtmf-relay\n"),
    );
    assert_eq!(h.take_summary(CALLER), ["200"]);
    assert_eq!(log.take(), ["info 1 A"]);
    h.recv(CALLER, &caller_request(&ok, "OPTIONS", 3, ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);

    let ring = Duration::from_secs(15);
    assert_eq!(
        h.connect(CallId(1), ConnectTarget::User("alice".into()), ring),
        Err(480),
        "alice is not registered"
    );
    h.register_alice();
    h.connect(CallId(1), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    assert_eq!(
        h.connect(CallId(1), ConnectTarget::User("alice".into()), ring),
        Err(491),
        "one leg B at a time"
    );
    let inv = h.take(CALLEE).remove(0);
    assert_eq!(inv.method(), Some("INVITE"));
    assert_eq!(&inv.body()[..], b"v=0\r\ns=crest-offer\r\n");
    assert!(
        inv.from_hdr()
            .unwrap()
            .uri
            .to_string()
            .starts_with("sip:carol@"),
        "the caller's number"
    );
    h.recv(CALLEE, &reply(&inv, 180, "a1", "", ""));
    assert_eq!(log.take(), ["offer_b 1", "leg_b 1 Ringing"]);
    assert!(
        h.take(CALLER).is_empty(),
        "the caller hears Crest, not the agent's ringing"
    );
    h.advance(ring);
    assert_eq!(h.take_summary(CALLEE), ["CANCEL"]);
    assert_eq!(log.take(), ["leg_b 1 Failed(480)"]);
    h.recv(CALLEE, &reply(&inv, 487, "a1", "", ""));
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    assert!(
        log.take().is_empty(),
        "the 487 of a cancelled attempt is not news"
    );

    // The next attempt is answered: ACK, the agent's answer to the media layer, bridged.
    h.connect(CallId(1), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let inv2 = h.take(CALLEE).remove(0);
    assert_ne!(inv2.call_id(), inv.call_id(), "a new dialog");
    h.recv(CALLEE, &reply(&inv2, 200, "a2", "", "v=0\r\ns=agent\r\n"));
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    assert_eq!(
        log.take(),
        ["offer_b 1", "exchange 1 B Answer", "leg_b 1 Answered"]
    );
    assert!(h.take(CALLER).is_empty());
    // Bridged: the caller's INFO goes to the media layer, their BYE ends both legs.
    h.recv(CALLER, &caller_request(&ok, "BYE", 4, ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
    let bye = h.take(CALLEE).remove(0);
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.call_id(), inv2.call_id());
    assert_eq!(log.take(), ["ended 1"]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn the_caller_hanging_up_cancels_the_ringing_agent_and_an_agent_hang_up_leaves_the_caller_to_crest()
{
    let (mut h, log) = harness();
    h.register_alice();
    let ok = answered(&mut h, &log);
    let ring = Duration::from_secs(15);
    h.connect(CallId(1), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let inv = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&inv, 180, "a1", "", ""));
    h.recv(CALLER, &caller_request(&ok, "BYE", 2, ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
    assert_eq!(h.take_summary(CALLEE), ["CANCEL"]);
    assert_eq!(log.take(), ["offer_b 1", "leg_b 1 Ringing", "ended 1"]);
    assert_eq!(h.ep.active_calls(), 0);

    // A second call: bridged, then the agent hangs up.
    h.recv(CALLER, &invite("400", "ivr2", ""));
    let ok = h.take(CALLER).remove(0);
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));
    log.take();
    h.connect(CallId(2), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let inv = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&inv, 200, "a2", "", "v=0\r\ns=agent\r\n"));
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    log.take();
    h.recv(CALLEE, &callee_request(&inv, "a2", "BYE", 1, ""));
    assert_eq!(h.take_summary(CALLEE), ["200"]);
    // The caller stays with the application (a survey, or its hang-up), told of the end.
    assert!(h.take(CALLER).is_empty());
    assert_eq!(log.take(), ["leg_b 2 Ended"]);
    assert_eq!(h.ep.active_calls(), 1);
    // The agent's leg is gone: a disconnect sends nothing.
    let now = h.now;
    h.ep.disconnect(now, CallId(2));
    h.collect();
    assert!(h.take(CALLEE).is_empty());
    h.hang_up(CallId(2), "survey done");
    let bye = h.take(CALLER).remove(0);
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.call_id(), Some("ivr2".into()));
    assert!(h.take(CALLEE).is_empty(), "no second BYE to the agent");
}

#[test]
fn a_busy_agent_and_a_silent_one_are_reported_and_the_caller_stays() {
    let (mut h, log) = harness();
    h.register_alice();
    let ok = answered(&mut h, &log);
    let ring = Duration::from_secs(15);
    h.connect(CallId(1), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let inv = h.take(CALLEE).remove(0);
    h.recv(CALLEE, &reply(&inv, 486, "a1", "", ""));
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    assert_eq!(log.take(), ["offer_b 1", "leg_b 1 Failed(486)"]);
    // A transfer target that never answers: Timer B, 408.
    h.connect(
        CallId(1),
        ConnectTarget::Uri("sip:desk@127.0.0.1:6009".into()),
        Duration::from_secs(60),
    )
    .unwrap();
    h.advance(Duration::from_secs(40));
    assert_eq!(log.take(), ["offer_b 1", "leg_b 1 Failed(408)"]);
    assert_eq!(
        h.connect(
            CallId(1),
            ConnectTarget::Uri("sip:desk@example.com".into()),
            ring
        ),
        Err(416),
        "no DNS in the core: an IP address"
    );
    // The caller is still with Crest: a re-INVITE (hold, a session refresh) gets Crest's answer.
    let reinvite = caller_request(&ok, "INVITE", 2, "").replace(
        "Content-Length: 0\n\n",
        "Content-Type: application/sdp\nContent-Length: 15\n\nv=0\r\ns=caller\r\n",
    );
    h.recv(CALLER, &reinvite);
    let ok2 = h.take(CALLER).remove(0);
    assert_eq!(ok2.status(), Some(200));
    assert_eq!(&ok2.body()[..], b"v=0\r\ns=crest-answer\r\n");
    assert_eq!(log.take(), ["answer 1 ivr:main from carol offer true"]);
    h.hang_up(CallId(1), "flow ended");
    assert_eq!(h.take_summary(CALLER), ["BYE"]);
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn a_queue_caller_hears_early_media_until_admitted_or_refused_with_retry_after() {
    let (mut h, log) = harness();
    h.recv(CALLER, &invite("401", "q1", ""));
    let early = h.take(CALLER).remove(0);
    assert_eq!(
        early.status(),
        Some(183),
        "early media until the queue decides"
    );
    assert_eq!(&early.body()[..], b"v=0\r\ns=crest-answer\r\n");
    assert_eq!(log.take(), ["answer 1 queue:refund from carol offer true"]);
    h.ep.accept(h.now, CallId(1));
    h.collect();
    let ok = h.take(CALLER).remove(0);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        &ok.body()[..],
        b"v=0\r\ns=crest-answer\r\n",
        "the 183's answer again"
    );
    h.recv(CALLER, &caller_request(&ok, "ACK", 1, ""));

    // Refused after its announcement: 503 with Retry-After.
    h.recv(CALLER, &invite("401", "q2", ""));
    assert_eq!(h.take_summary(CALLER), ["183"]);
    h.ep.refuse(h.now, CallId(2), 503, Some(300));
    h.collect();
    let refused = h.take(CALLER).remove(0);
    assert_eq!(refused.status(), Some(503));
    assert_eq!(raw_header(&refused, "Retry-After").as_deref(), Some("300"));
    assert_eq!(
        log.take(),
        ["answer 2 queue:refund from carol offer true", "ended 2"]
    );

    // No decision within a minute: refused all the same.
    h.recv(CALLER, &invite("401", "q3", ""));
    assert_eq!(h.take_summary(CALLER), ["183"]);
    h.advance(Duration::from_secs(61));
    assert_eq!(h.take_distinct(CALLER), ["503"]);
    assert_eq!(h.ep.active_calls(), 1, "only the admitted caller is left");
}

#[test]
fn crest_places_a_callback_then_bridges_it_to_an_agent_and_a_silent_customer_is_reported() {
    use crest_sip_proxy::App;
    let (mut h, log) = harness();
    h.register_alice();
    let customer = ConnectTarget::Uri(format!("sip:+8613800000001@{CALLER}"));
    let ring = Duration::from_secs(20);
    let key =
        h.ep.originate(
            h.now,
            &customer,
            "crest",
            App::Callback("refund".into()),
            ring,
        )
        .unwrap();
    h.collect();
    let inv = h.take(CALLER).remove(0);
    assert_eq!(inv.method(), Some("INVITE"));
    assert_eq!(&inv.body()[..], b"v=0\r\ns=crest-offer\r\n");
    assert_eq!(
        log.take(),
        [format!(
            "originate {} callback:refund to +8613800000001",
            key.0
        )]
    );
    h.recv(CALLER, &reply(&inv, 180, "c1", "", ""));
    h.recv(CALLER, &reply(&inv, 200, "c1", "", "v=0\r\ns=customer\r\n"));
    assert_eq!(h.take_summary(CALLER), ["ACK"]);
    assert_eq!(
        log.take(),
        [
            format!("exchange {} A Answer", key.0),
            format!("leg_a {} Answered", key.0)
        ]
    );
    // Answered: the reserved agent is connected like any caller Crest answered.
    h.connect(key, ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let to_alice = h.take(CALLEE).remove(0);
    h.recv(
        CALLEE,
        &reply(&to_alice, 200, "a1", "", "v=0\r\ns=agent\r\n"),
    );
    assert_eq!(h.take_summary(CALLEE), ["ACK"]);
    // The customer hangs up: BYE to the agent.
    h.recv(CALLER, &callee_request(&inv, "c1", "BYE", 1, ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
    assert_eq!(h.take_summary(CALLEE), ["BYE"]);
    assert_eq!(h.ep.active_calls(), 0);
    log.take();

    // A customer who does not answer: CANCEL when the ring time is up, reported.
    let key =
        h.ep.originate(
            h.now,
            &customer,
            "crest",
            App::Callback("refund".into()),
            ring,
        )
        .unwrap();
    h.collect();
    let inv = h.take(CALLER).remove(0);
    h.recv(CALLER, &reply(&inv, 180, "c2", "", ""));
    h.advance(ring);
    assert_eq!(h.take_summary(CALLER), ["CANCEL"]);
    assert_eq!(
        log.take(),
        [
            format!("originate {} callback:refund to +8613800000001", key.0),
            format!("ended {}", key.0),
            format!("leg_a {} Failed(480)", key.0)
        ]
    );
    assert_eq!(h.ep.active_calls(), 0);
}

#[test]
fn a_phone_that_stops_refreshing_is_reported_gone_when_its_binding_lapses() {
    let (mut h, _log) = harness();
    h.register_alice();
    assert_eq!(h.ep.poll_registration(), Some(("alice".into(), true)));
    // Registered for an hour; nothing refreshes it.
    h.advance(Duration::from_secs(3_590));
    assert_eq!(h.ep.poll_registration(), None);
    h.advance(Duration::from_secs(60));
    assert_eq!(h.ep.poll_registration(), Some(("alice".into(), false)));
    assert_eq!(h.ep.registered_users(), 0);
}

#[test]
fn a_browser_agent_is_invited_without_sdp_and_crest_answers_its_offers_itself() {
    let (mut h, log) = harness();
    let browser = h.register_alice_in_a_browser(9);
    let ok = answered(&mut h, &log);
    let ring = Duration::from_secs(15);
    h.connect(CallId(1), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let inv = h.take(CALLEE).remove(0);
    assert_eq!(inv.method(), Some("INVITE"));
    assert!(
        inv.body().is_empty(),
        "late offer: the browser offers WebRTC"
    );
    assert!(log.take().is_empty(), "no RTP offer made for a browser");
    // The browser offers in its 200; Crest's answer goes in the ACK.
    h.recv_on(
        browser,
        &reply(&inv, 200, "w1", "", "v=0\r\ns=browser-offer\r\n"),
    );
    let ack = h.take(CALLEE).remove(0);
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(
        &ack.body()[..],
        b"v=0\r\ns=browser-offer\r\n",
        "the media's answer"
    );
    assert_eq!(log.take(), ["exchange 1 B Offer", "leg_b 1 Answered"]);
    // A 2xx retransmission gets the same ACK, answer and all.
    h.recv_on(
        browser,
        &reply(&inv, 200, "w1", "", "v=0\r\ns=browser-offer\r\n"),
    );
    let again = h.take(CALLEE);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].method(), Some("ACK"));
    assert_eq!(again[0].body(), ack.body());
    assert!(log.take().is_empty());

    // Hold from the page: the browser's re-INVITE is answered by Crest, not relayed.
    let hold = callee_request(&inv, "w1", "INVITE", 1, "Content-Type: application/sdp\n");
    let held = "v=0\r\ns=held-offer\r\n";
    let hold = hold.replace(
        "Content-Length: 0\n\n",
        &format!("Content-Length: {}\n\n{held}", held.len()),
    );
    h.recv_on(browser, &hold);
    let answer = h.take(CALLEE).remove(0);
    assert_eq!(answer.status(), Some(200));
    assert_eq!(&answer.body()[..], b"v=0\r\ns=held-offer\r\n");
    assert!(h.take(CALLER).is_empty(), "the caller hears nothing of it");
    assert_eq!(log.take(), ["exchange 1 B Offer"]);
    // A session refresh (UPDATE without SDP) too.
    h.recv_on(browser, &callee_request(&inv, "w1", "UPDATE", 2, ""));
    assert_eq!(h.take_summary(CALLEE), ["200"]);
    assert!(log.take().is_empty());
    // The caller's re-INVITE is answered by Crest for leg A: nothing reaches the browser.
    h.recv(CALLER, &caller_request(&ok, "INVITE", 2, ""));
    assert_eq!(h.take_summary(CALLER), ["200"]);
    assert!(h.take(CALLEE).is_empty());
    assert_eq!(log.take(), ["answer 1 ivr:main from carol offer false"]);

    // The agent hangs up on the page: the caller stays with Crest.
    h.recv_on(browser, &callee_request(&inv, "w1", "BYE", 3, ""));
    assert_eq!(h.take_summary(CALLEE), ["200"]);
    assert_eq!(log.take(), ["leg_b 1 Ended"]);

    // A browser whose 200 has no offer: ACKed, hung up, reported failed.
    h.connect(CallId(1), ConnectTarget::User("alice".into()), ring)
        .unwrap();
    let inv = h.take(CALLEE).remove(0);
    h.recv_on(browser, &reply(&inv, 200, "w2", "", ""));
    assert_eq!(h.take_summary(CALLEE), ["ACK", "BYE"]);
    assert_eq!(log.take(), ["leg_b 1 Failed(488)"]);
    h.hang_up(CallId(1), "done");
    assert_eq!(h.take_summary(CALLER), ["BYE"]);
}
