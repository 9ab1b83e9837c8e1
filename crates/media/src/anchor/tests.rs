//! Offer/answer across the two legs of an anchored call.

use super::*;

const PHONE: &str = "v=0\r\no=phone 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n";
const AGENT_PCMA: &str = "v=0\r\no=agent 5 5 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
const AGENT_OPUS: &str = "v=0\no=- 7 2 IN IP4 198.51.100.21\ns=-\nc=IN IP4 198.51.100.21\nt=0 0\n\
m=audio 6002 RTP/AVP 111 110\na=rtpmap:111 opus/48000/2\na=rtpmap:110 telephone-event/48000\n";

fn cfg() -> AnchorConfig {
    AnchorConfig {
        address: "203.0.113.1".parse().unwrap(),
        codecs: vec![
            CodecKind::Opus,
            CodecKind::G722,
            CodecKind::Pcmu,
            CodecKind::Pcma,
        ],
        ptime: 20,
    }
}

fn m_line(sdp: &str) -> &str {
    sdp.lines().find(|l| l.starts_with("m=")).unwrap()
}

#[test]
fn the_callers_codecs_are_offered_first_and_the_legs_agree() {
    let mut a = CallAnchor::new(30000, 30002, 42);
    let ex = a
        .exchange(&cfg(), Side::A, Role::Offer, Some(PHONE))
        .unwrap();
    let offer = ex.body.unwrap();
    assert!(ex.setups.is_empty());
    assert_eq!(m_line(&offer), "m=audio 30002 RTP/AVP 8 0 111 9 101 110");
    assert!(offer.contains("c=IN IP4 203.0.113.1\r\n"));
    assert!(offer.contains("a=rtpmap:110 telephone-event/48000\r\n"));
    let ex = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_PCMA))
        .unwrap();
    let answer = ex.body.unwrap();
    assert_eq!(m_line(&answer), "m=audio 30000 RTP/AVP 8 101");
    assert!(
        answer.starts_with("v=0\r\no=crest 42 1 IN IP4 203.0.113.1\r\n"),
        "{answer}"
    );
    let [(Side::B, b), (Side::A, caller)] = &ex.setups[..] else {
        panic!("{:?}", ex.setups)
    };
    assert_eq!(b.remote, "198.51.100.20:6000".parse().unwrap());
    assert_eq!(
        (b.codec, b.pt, b.telephone_event),
        (CodecKind::Pcma, 8, Some(101))
    );
    assert_eq!(caller.remote, "192.0.2.10:4000".parse().unwrap());
    assert_eq!(
        (caller.codec, caller.direction),
        (CodecKind::Pcma, Direction::SendRecv)
    );
    // The 200 repeats the 183's answer: the caller gets the same SDP, nothing changes.
    let again = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_PCMA))
        .unwrap();
    assert_eq!(again.body.as_deref(), Some(answer.as_str()));
    assert!(again.setups.is_empty());
    let bare = a.exchange(&cfg(), Side::B, Role::Answer, None).unwrap();
    assert_eq!(
        bare.body.as_deref(),
        Some(answer.as_str()),
        "a 2xx without SDP"
    );
}

#[test]
fn an_opus_agent_and_a_g711_caller_are_transcoded() {
    let mut a = CallAnchor::new(30000, 30002, 1);
    a.exchange(&cfg(), Side::A, Role::Offer, Some(PHONE))
        .unwrap();
    let ex = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_OPUS))
        .unwrap();
    let kinds: Vec<_> = ex
        .setups
        .iter()
        .map(|(s, l)| (*s, l.codec, l.telephone_event))
        .collect();
    assert_eq!(
        kinds,
        [
            (Side::B, CodecKind::Opus, Some(110)),
            (Side::A, CodecKind::Pcma, Some(101))
        ]
    );
}

#[test]
fn a_late_offer_gets_crests_offer_in_the_response_and_its_answer_in_the_ack() {
    let mut a = CallAnchor::new(30000, 30002, 1);
    let offer_b = a
        .exchange(&cfg(), Side::A, Role::Offer, None)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(m_line(&offer_b), "m=audio 30002 RTP/AVP 111 9 0 8 101 110");
    let ex = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_PCMA))
        .unwrap();
    assert_eq!(ex.setups.len(), 1, "only B is known yet");
    let offer_a = ex.body.unwrap();
    assert_eq!(
        m_line(&offer_a),
        "m=audio 30000 RTP/AVP 8 111 9 0 101 110",
        "B's codec first"
    );
    let ack = PHONE.replace("RTP/AVP 8 0 101", "RTP/AVP 8 101");
    let ex = a
        .exchange(&cfg(), Side::A, Role::Answer, Some(&ack))
        .unwrap();
    assert_eq!(ex.body, None, "the ACK to B carries nothing");
    assert_eq!(ex.setups[0].0, Side::A);
    assert_eq!(ex.setups[0].1.codec, CodecKind::Pcma);
}

#[test]
fn hold_and_resume_pass_through() {
    let mut a = CallAnchor::new(30000, 30002, 1);
    a.exchange(&cfg(), Side::A, Role::Offer, Some(PHONE))
        .unwrap();
    a.exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_PCMA))
        .unwrap();
    // The caller holds: sendonly (music from its side), then old-style c=0.0.0.0.
    let hold = PHONE.replace("a=ptime:20", "a=ptime:20\r\na=sendonly");
    let offer = a
        .exchange(&cfg(), Side::A, Role::Offer, Some(&hold))
        .unwrap()
        .body
        .unwrap();
    assert!(offer.contains("a=sendonly"), "{offer}");
    assert!(
        offer.contains("o=crest 1 2 "),
        "version bumped on leg B: {offer}"
    );
    let held = AGENT_PCMA.replace("t=0 0", "t=0 0\r\na=recvonly");
    let held = held.replace(
        "a=recvonly\r\nm=audio 6000 RTP/AVP 8 101\r\n",
        "m=audio 6000 RTP/AVP 8 101\r\na=recvonly\r\n",
    );
    let ex = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(&held))
        .unwrap();
    let dirs: Vec<_> = ex.setups.iter().map(|(s, l)| (*s, l.direction)).collect();
    assert_eq!(
        dirs,
        [
            (Side::B, Direction::SendOnly),
            (Side::A, Direction::RecvOnly)
        ]
    );
    assert!(ex.body.unwrap().contains("a=recvonly"));
    let old = PHONE.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
    let offer = a
        .exchange(&cfg(), Side::A, Role::Offer, Some(&old))
        .unwrap()
        .body
        .unwrap();
    assert!(offer.contains("a=inactive"), "{offer}");
    a.exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_PCMA))
        .unwrap();
    // Resume from the callee's side this time.
    let offer = a
        .exchange(&cfg(), Side::B, Role::Offer, Some(AGENT_PCMA))
        .unwrap()
        .body
        .unwrap();
    assert!(
        offer.contains("a=sendrecv") && offer.contains("m=audio 30000 "),
        "{offer}"
    );
    let ex = a
        .exchange(&cfg(), Side::A, Role::Answer, Some(PHONE))
        .unwrap();
    let dirs: Vec<_> = ex.setups.iter().map(|(s, l)| (*s, l.direction)).collect();
    assert_eq!(
        dirs,
        [
            (Side::A, Direction::SendRecv),
            (Side::B, Direction::SendRecv)
        ]
    );
}

#[test]
fn unusable_sdp_gets_the_right_status() {
    let mut a = CallAnchor::new(30000, 30002, 1);
    let video_only = PHONE.replace("m=audio 4000 RTP/AVP 8 0 101", "m=video 4000 RTP/AVP 31");
    let e = a
        .exchange(&cfg(), Side::A, Role::Offer, Some(&video_only))
        .unwrap_err();
    assert_eq!(e.status(), 488);
    let g729 = PHONE.replace("RTP/AVP 8 0 101", "RTP/AVP 18");
    assert_eq!(
        a.exchange(&cfg(), Side::A, Role::Offer, Some(&g729))
            .unwrap_err()
            .status(),
        488
    );
    let e = a
        .exchange(&cfg(), Side::A, Role::Offer, Some("v=0\r\nm=audio x\r\n"))
        .unwrap_err();
    assert_eq!(e.status(), 400);
    // A callee answering with the stream rejected.
    a.exchange(&cfg(), Side::A, Role::Offer, Some(PHONE))
        .unwrap();
    let rejected = AGENT_PCMA.replace("m=audio 6000", "m=audio 0");
    let e = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(&rejected))
        .unwrap_err();
    assert_eq!(e.status(), 488);
}

#[test]
fn ports_are_even_and_reused_last() {
    let mut p = PortPool::new(30001, 30010);
    assert_eq!(p.available(), 4);
    let (x, y) = (p.take().unwrap(), p.take().unwrap());
    assert_eq!((x, y), (30002, 30004));
    p.release(x);
    assert_eq!(p.take(), Some(30006));
    assert_eq!(p.take(), Some(30008));
    assert_eq!(p.take(), Some(30002));
    assert_eq!(p.take(), None);
}

#[test]
fn crest_answers_the_caller_alone_then_offers_an_agent_the_callers_codec() {
    let mut a = CallAnchor::new(30000, 30002, 9);
    let ex = a.answer_alone(&cfg(), Side::A, Some(PHONE)).unwrap();
    let answer = ex.body.unwrap();
    assert_eq!(
        m_line(&answer),
        "m=audio 30000 RTP/AVP 8 101",
        "the caller's first codec"
    );
    let [(Side::A, caller)] = &ex.setups[..] else {
        panic!("{:?}", ex.setups)
    };
    assert_eq!(caller.remote, "192.0.2.10:4000".parse().unwrap());
    assert_eq!(
        (caller.codec, caller.telephone_event),
        (CodecKind::Pcma, Some(101))
    );
    // Later the caller is connected to an agent: Crest offers the caller's codec first.
    let offer = a.offer_far(&cfg(), Side::B);
    assert_eq!(m_line(&offer), "m=audio 30002 RTP/AVP 8 111 9 0 101 110");
    let ex = a
        .exchange(&cfg(), Side::B, Role::Answer, Some(AGENT_OPUS))
        .unwrap();
    let [(Side::B, agent)] = &ex.setups[..] else {
        panic!("{:?}", ex.setups)
    };
    assert_eq!(
        agent.codec,
        CodecKind::Opus,
        "transcoded to the caller's PCMA"
    );
    // A caller without SDP (late offer) gets Crest's offer and answers in the ACK.
    let mut late = CallAnchor::new(30004, 30006, 9);
    let offer = late
        .answer_alone(&cfg(), Side::A, None)
        .unwrap()
        .body
        .unwrap();
    assert_eq!(m_line(&offer), "m=audio 30004 RTP/AVP 111 9 0 8 101 110");
    let ack = PHONE.replace("RTP/AVP 8 0 101", "RTP/AVP 0 101");
    let ex = late
        .exchange(&cfg(), Side::A, Role::Answer, Some(&ack))
        .unwrap();
    assert_eq!(ex.setups[0].1.codec, CodecKind::Pcmu);
    // An offer without a codec Crest has is refused.
    let g729 = PHONE.replace("RTP/AVP 8 0 101", "RTP/AVP 18");
    assert_eq!(
        a.answer_alone(&cfg(), Side::A, Some(&g729))
            .unwrap_err()
            .status(),
        488
    );
}
