//! Crest's WebRTC leg against a "browser twin" in virtual time: a str0m peer with full ICE and
//! the DTLS client role offers audio as Chromium does; the datagrams go between them by hand.

use super::*;
use std::time::Duration;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};

const CREST: &str = "127.0.0.1:40000";
const BROWSER: &str = "127.0.0.1:50000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The browser: full ICE, offers one audio m-line (Opus, and telephone-event at 48 kHz as
/// Chromium does).
struct Browser {
    rtc: Rtc,
    mid: Mid,
    pending: Option<str0m::change::SdpPendingOffer>,
    heard: Vec<Vec<u8>>,
    connected: bool,
}

impl Browser {
    fn new(now: Instant) -> (Self, String) {
        let mut cfg = Rtc::builder().clear_codecs().enable_opus(true, false);
        cfg.codec_config().add_config(
            126.into(),
            None,
            Codec::Tele,
            Frequency::FORTY_EIGHT_KHZ,
            None,
            FormatParams::default(),
        );
        let mut rtc = cfg.build(now);
        rtc.add_local_candidate(Candidate::host(addr(BROWSER), "udp").unwrap())
            .unwrap();
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().unwrap();
        (
            Self {
                rtc,
                mid,
                pending: Some(pending),
                heard: Vec::new(),
                connected: false,
            },
            offer.to_sdp_string(),
        )
    }

    fn take_answer(&mut self, answer: &str) {
        let a = SdpAnswer::from_sdp_string(answer).unwrap();
        self.rtc
            .sdp_api()
            .accept_answer(self.pending.take().unwrap(), a)
            .unwrap();
    }

    /// Drains the browser: its datagrams for Crest, and when it wants to run next.
    fn drive(&mut self) -> (Vec<Vec<u8>>, Instant) {
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => return (out, t),
                Output::Transmit(t) => out.push(t.contents.to_vec()),
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(d)) => self.heard.push(d.data.to_vec()),
                Output::Event(_) => {}
            }
        }
    }

    fn send(&mut self, now: Instant, pt: u8, data: &[u8], time: u64) {
        let w = self.rtc.writer(self.mid).unwrap();
        w.write(
            pt.into(),
            now,
            MediaTime::new(time, Frequency::FORTY_EIGHT_KHZ),
            data.to_vec(),
        )
        .unwrap();
    }
}

/// Runs both ends until `until`, passing datagrams both ways; what Crest's leg reported.
fn run(
    now: &mut Instant,
    until: Instant,
    b: &mut Browser,
    leg: &mut WebRtcLeg,
) -> Vec<WebRtcEvent> {
    let mut events = Vec::new();
    for _ in 0..100_000 {
        let (to_crest, b_next) = b.drive();
        for d in to_crest {
            leg.handle_receive(*now, addr(BROWSER), &d);
        }
        while let Some(d) = leg.poll_transmit() {
            assert_eq!(d.to, addr(BROWSER), "Crest answers where the browser is");
            let input = Input::Receive(
                *now,
                Receive {
                    proto: Protocol::Udp,
                    source: addr(CREST),
                    destination: addr(BROWSER),
                    contents: d.data.as_slice().try_into().unwrap(),
                },
            );
            b.rtc.handle_input(input).unwrap();
        }
        events.extend(std::iter::from_fn(|| leg.poll_event()));
        let (more, b_next2) = b.drive();
        if !more.is_empty() {
            for d in more {
                leg.handle_receive(*now, addr(BROWSER), &d);
            }
            continue;
        }
        let next = [Some(b_next.min(b_next2)), leg.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(until)
            .max(*now);
        if next > until {
            *now = until;
            break;
        }
        *now = next.max(*now + Duration::from_micros(1));
        b.rtc.handle_input(Input::Timeout(*now)).unwrap();
        leg.handle_timeout(*now);
    }
    events.extend(std::iter::from_fn(|| leg.poll_event()));
    events
}

fn connected() -> (Instant, Browser, WebRtcLeg) {
    let t0 = Instant::now();
    let (mut b, offer) = Browser::new(t0);
    let (mut leg, answer) = WebRtcLeg::answer(t0, addr(CREST), &offer).unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains("a=setup:passive"),
        "the browser is the DTLS client: {answer}"
    );
    assert!(answer.contains("a=rtcp-mux"), "{answer}");
    assert!(answer.contains("opus/48000/2"), "{answer}");
    assert!(answer.contains("127.0.0.1 40000 typ host"), "{answer}");
    b.take_answer(&answer);
    let mut now = t0;
    let events = run(&mut now, t0 + Duration::from_secs(3), &mut b, &mut leg);
    assert!(events.contains(&WebRtcEvent::Connected), "{events:?}");
    assert!(b.connected, "the browser is connected too");
    (now, b, leg)
}

#[test]
fn a_browser_connects_and_opus_crosses_both_ways() {
    let (mut now, mut b, mut leg) = connected();
    let t1 = now;
    let mut events = Vec::new();
    for i in 0..50u64 {
        b.send(now, 111, &[0xf8, i as u8, 0xaa], i * 960);
        leg.send_audio(now, &[0xf8, 0x10, i as u8]);
        let until = t1 + Duration::from_millis(20 * (i + 1));
        events.extend(run(&mut now, until, &mut b, &mut leg));
    }
    let until = now + Duration::from_millis(200);
    events.extend(run(&mut now, until, &mut b, &mut leg));
    let heard: Vec<&Vec<u8>> = events
        .iter()
        .filter_map(|e| match e {
            WebRtcEvent::Audio { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert!(
        heard.len() >= 45,
        "Crest heard {} of 50 frames",
        heard.len()
    );
    assert_eq!(heard[0], &vec![0xf8, 0, 0xaa]);
    assert!(
        b.heard.len() >= 45,
        "the browser heard {} of 50 frames",
        b.heard.len()
    );
    assert_eq!(b.heard[0], [0xf8, 0x10, 0]);
    assert!(!events.contains(&WebRtcEvent::Closed), "{events:?}");
}

#[test]
fn a_key_is_reported_once_and_an_unreadable_offer_is_refused() {
    let (mut now, mut b, mut leg) = connected();
    // '5' as Chromium sends it: start, an update, three ends, all at one RTP time.
    for (i, (dur, end)) in [
        (160u16, false),
        (320, false),
        (480, true),
        (480, true),
        (480, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = vec![5u8, 10, 0, 0];
        if end {
            p[1] |= 0x80;
        }
        p[2..4].copy_from_slice(&dur.to_be_bytes());
        b.send(now, 126, &p, 48_000);
        let until = now + Duration::from_millis(20 * (i as u64 + 1));
        let events = run(&mut now, until, &mut b, &mut leg);
        let keys: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, WebRtcEvent::Key(_)))
            .collect();
        if i == 0 {
            assert_eq!(keys, [&WebRtcEvent::Key('5')]);
        } else {
            assert!(keys.is_empty(), "reported once: {keys:?}");
        }
    }
    assert!(matches!(
        WebRtcLeg::answer(now, addr(CREST), "v=0 nonsense"),
        Err(WebRtcError::Sdp(_))
    ));
}

#[test]
fn a_held_browser_gets_no_audio_and_resumes_on_the_same_session() {
    let (mut now, mut b, mut leg) = connected();
    assert!(leg.receiving());
    // Hold: the browser re-offers sendonly (it stops receiving).
    let mut change = b.rtc.sdp_api();
    change.set_direction(b.mid, Direction::SendOnly);
    let (offer, pending) = change.apply().unwrap();
    b.pending = Some(pending);
    let answer = leg.reoffer(&offer.to_sdp_string()).unwrap();
    b.take_answer(&answer);
    let until = now + Duration::from_millis(100);
    run(&mut now, until, &mut b, &mut leg);
    assert!(!leg.receiving(), "on hold");
    let before = b.heard.len();
    for _ in 0..10 {
        leg.send_audio(now, &[0xf8, 1, 2]);
        let until = now + Duration::from_millis(20);
        run(&mut now, until, &mut b, &mut leg);
    }
    assert_eq!(b.heard.len(), before, "nothing sent on hold");
    // Resume: sendrecv again, the same ICE and DTLS (no new Connected).
    let mut change = b.rtc.sdp_api();
    change.set_direction(b.mid, Direction::SendRecv);
    let (offer, pending) = change.apply().unwrap();
    b.pending = Some(pending);
    let answer = leg.reoffer(&offer.to_sdp_string()).unwrap();
    b.take_answer(&answer);
    let until = now + Duration::from_millis(100);
    let mut events = run(&mut now, until, &mut b, &mut leg);
    for _ in 0..10 {
        leg.send_audio(now, &[0xf8, 3, 4]);
        let until = now + Duration::from_millis(20);
        events.extend(run(&mut now, until, &mut b, &mut leg));
    }
    assert!(
        b.heard.len() >= before + 8,
        "audio again: {}",
        b.heard.len() - before
    );
    assert!(
        !events.contains(&WebRtcEvent::Connected),
        "no new handshake"
    );
    assert!(!events.contains(&WebRtcEvent::Closed));
}

#[test]
fn a_browser_that_goes_silent_is_closed() {
    let (mut now, mut b, mut leg) = connected();
    // The browser vanishes: nothing more from it; ICE consent lapses.
    let mut events = Vec::new();
    let end = now + Duration::from_secs(60);
    while now < end {
        now += Duration::from_millis(500);
        leg.handle_timeout(now);
        while leg.poll_transmit().is_some() {}
        events.extend(std::iter::from_fn(|| leg.poll_event()));
        if events.contains(&WebRtcEvent::Closed) {
            break;
        }
    }
    let _ = &mut b;
    assert!(events.contains(&WebRtcEvent::Closed), "{events:?}");
    assert_eq!(leg.poll_timeout(), None, "a closed leg has no timers");
}

/// The browser twin's datagrams for Crest over its first 100 ms, without passing them on.
fn browser_datagrams(b: &mut Browser, t0: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for ms in 0..100 {
        b.rtc
            .handle_input(Input::Timeout(t0 + Duration::from_millis(ms)))
            .unwrap();
        out.extend(b.drive().0);
    }
    out
}

#[test]
fn the_shared_socket_routes_by_ice_fragment_then_by_address() {
    let t0 = Instant::now();
    let (mut b, offer) = Browser::new(t0);
    let (leg, answer) = WebRtcLeg::answer(t0, addr(CREST), &offer).unwrap();
    assert!(answer.contains(&format!("a=ice-ufrag:{}", leg.ufrag())));
    b.take_answer(&answer);
    let mut demux = Demux::default();
    demux.insert("someone-else", 2u32);
    demux.insert(leg.ufrag(), 1u32);
    // The browser's first datagram is its STUN binding request naming Crest's fragment.
    let stun = browser_datagrams(&mut b, t0)
        .into_iter()
        .find(|d| stun_username(d).is_some())
        .expect("a binding request");
    let user = stun_username(&stun).unwrap();
    assert!(user.starts_with(&format!("{}:", leg.ufrag())), "{user}");
    let other: SocketAddr = "127.0.0.1:50001".parse().unwrap();
    assert_eq!(demux.route(other, b"\x80\x6f not stun"), None, "unknown");
    assert_eq!(demux.route(addr(BROWSER), &stun), Some(1));
    // DTLS and SRTP from the address the request came from go to the same leg.
    assert_eq!(demux.route(addr(BROWSER), &[22, 254, 253, 0]), Some(1));
    assert_eq!(demux.route(addr(BROWSER), b"\x80\x6f srtp"), Some(1));
    // A request naming nobody's fragment teaches nothing.
    let mut stranger = stun.clone();
    let at = stranger
        .windows(leg.ufrag().len())
        .position(|w| w == leg.ufrag().as_bytes())
        .unwrap();
    stranger[at] ^= 0x01;
    assert_eq!(demux.route(other, &stranger), None);
    assert_eq!(demux.addresses(), 1);
    // Cut anywhere, a request is not a panic.
    for n in 0..stun.len() {
        let _ = stun_username(&stun[..n]);
    }
    demux.remove(1);
    assert_eq!(
        (demux.len(), demux.addresses()),
        (1, 0),
        "leg 1 left nothing"
    );
    assert_eq!(demux.route(addr(BROWSER), b"\x80\x6f srtp"), None);
}

#[test]
fn a_pcmu_caller_and_the_browser_hear_each_other_through_the_bridge() {
    use crate::bridge::{CallMedia, MediaConfig, Side};
    use crate::codec::{Decoder, Encoder};
    use crate::dtmf::goertzel_power;
    use crate::g711;

    let (mut now, mut b, mut leg) = connected();
    let caller: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let mut media = CallMedia::new(MediaConfig::default(), 0xA, 0xB);
    media.configure(
        now,
        Side::A,
        LegSetup {
            remote: caller,
            codec: CodecKind::Pcmu,
            pt: 0,
            telephone_event: Some(101),
            ptime: 20,
            direction: crate::sdp::Direction::SendRecv,
        },
    );
    media.configure(now, Side::B, leg.leg_setup());
    assert!(!media.forwarding(), "G.711 ↔ Opus is transcoded");
    let tone = |freq: f64, rate: u32, start: usize, n: usize| -> Vec<i16> {
        (start..start + n)
            .map(|i| {
                (8000.0 * (std::f64::consts::TAU * freq * i as f64 / f64::from(rate)).sin()) as i16
            })
            .collect()
    };
    let mut browser_enc = Encoder::new(CodecKind::Opus).unwrap();
    let mut browser_dec = Decoder::new(CodecKind::Opus).unwrap();
    let (mut caller_heard, mut browser_heard) = (Vec::new(), Vec::new());
    let (mut payload, mut rtp) = (Vec::new(), Vec::new());
    for n in 0..100u32 {
        // The caller's 1 kHz in PCMU, the browser's 2 kHz in Opus, 20 ms each.
        let pcmu: Vec<u8> = tone(1000.0, 8000, n as usize * 160, 160)
            .into_iter()
            .map(g711::linear_to_ulaw)
            .collect();
        let mut pkt = Vec::new();
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: n as u16,
            timestamp: n * 160,
            ssrc: 7,
            payload: &pcmu,
        }
        .write(&mut pkt);
        media.handle_rtp(now, Side::A, caller, &mut pkt);
        browser_enc
            .encode(&tone(2000.0, 48_000, n as usize * 960, 960), &mut payload)
            .unwrap();
        b.send(now, 111, &payload, u64::from(n) * 960);
        let until = now + Duration::from_millis(20);
        for e in run(&mut now, until, &mut b, &mut leg) {
            if let WebRtcEvent::Audio { data, rtp_time } = e {
                leg.rtp_from_browser(&data, rtp_time, &mut rtp);
                assert!(
                    media
                        .handle_rtp(now, Side::B, addr(BROWSER), &mut rtp)
                        .is_none()
                );
            }
        }
        media.handle_timeout(now);
        while let Some(d) = media.poll_transmit() {
            match (d.side, d.rtcp) {
                (Side::B, false) => leg.send_rtp(now, &d.data),
                (Side::A, false) => {
                    let p = RtpPacket::parse(&d.data).unwrap();
                    caller_heard.extend(p.payload.iter().map(|&u| g711::ulaw_to_linear(u)));
                }
                _ => {}
            }
        }
        for frame in b.heard.drain(..) {
            browser_dec.decode(&frame, &mut browser_heard).unwrap();
        }
    }
    let ratio = |pcm: &[i16], rate: u32, want: f64, other: f64| {
        let tail: Vec<f64> = pcm[pcm.len() / 3..].iter().map(|&s| f64::from(s)).collect();
        goertzel_power(&tail, want, rate) / goertzel_power(&tail, other, rate).max(1.0)
    };
    assert!(
        caller_heard.len() >= 8000 * 3 / 2,
        "{} samples",
        caller_heard.len()
    );
    assert!(
        browser_heard.len() >= 48_000 * 3 / 2,
        "{} samples",
        browser_heard.len()
    );
    let (to_caller, to_browser) = (
        ratio(&caller_heard, 8000, 2000.0, 1000.0),
        ratio(&browser_heard, 48_000, 1000.0, 2000.0),
    );
    assert!(
        to_caller > 100.0,
        "the caller hears the browser's 2 kHz: {to_caller}"
    );
    assert!(
        to_browser > 100.0,
        "the browser hears the caller's 1 kHz: {to_browser}"
    );
}

/// The offer Chromium 156 (Debian's, headless, fake microphone) makes for one audio track,
/// with its host candidates gathered.
const CHROMIUM_OFFER: &str = include_str!("chromium-156-offer.sdp");

#[test]
fn chromiums_own_offer_is_answered_for_opus_and_its_hold_is_read() {
    let t0 = Instant::now();
    let (leg, answer) = WebRtcLeg::answer(t0, addr(CREST), CHROMIUM_OFFER).unwrap();
    let m = answer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    let formats: Vec<&str> = m.split_whitespace().skip(3).collect();
    assert!(formats.contains(&"111"), "Opus: {m}");
    for refused in ["0", "8", "9", "63", "13"] {
        assert!(!formats.contains(&refused), "{refused} not answered: {m}");
    }
    assert!(
        formats.contains(&"110") || formats.contains(&"126"),
        "telephone-event: {m}"
    );
    for line in [
        "a=ice-lite",
        "a=setup:passive",
        "a=rtcp-mux",
        "a=group:BUNDLE 0",
        "a=mid:0",
    ] {
        assert!(answer.contains(line), "{line}: {answer}");
    }
    assert_eq!(
        answer.matches("a=candidate").count(),
        1,
        "one host candidate: Crest's shared socket"
    );
    assert!(!leg.ufrag().is_empty());
    assert!(leg.same_session(CHROMIUM_OFFER));
    assert!(!leg.same_session(&CHROMIUM_OFFER.replace("a=ice-ufrag:M1qe", "a=ice-ufrag:Zz9y")));
    let setup = leg.leg_setup();
    assert_eq!((setup.codec, setup.ptime), (CodecKind::Opus, 20));
    assert_eq!(setup.direction, crate::sdp::Direction::SendRecv);

    // Chromium puts the call on hold: the same session re-offered sendonly.
    let mut leg = leg;
    let held = CHROMIUM_OFFER.replace("a=sendrecv", "a=sendonly");
    let answer = leg.reoffer(&held).unwrap();
    assert!(answer.contains("a=recvonly"), "{answer}");
    assert!(!leg.receiving(), "nothing sent to a held browser");
    assert_eq!(leg.leg_setup().direction, crate::sdp::Direction::RecvOnly);
    let answer = leg.reoffer(CHROMIUM_OFFER).unwrap();
    assert!(answer.contains("a=sendrecv"), "{answer}");
    assert_eq!(leg.leg_setup().direction, crate::sdp::Direction::SendRecv);
}

/// The offer Firefox ESR 153 (Debian's, headless, fake microphone) makes through JsSIP:
/// Opus on payload type 109, telephone-event only at 8 kHz.
const FIREFOX_OFFER: &str = include_str!("firefox-153-offer.sdp");

#[test]
fn firefoxs_own_offer_is_answered_on_its_opus_payload_type() {
    let t0 = Instant::now();
    let (mut leg, answer) = WebRtcLeg::answer(t0, addr(CREST), FIREFOX_OFFER).unwrap();
    let m = answer.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(m.ends_with(" 109 101"), "Opus as Firefox numbers it: {m}");
    assert!(leg.receiving(), "Firefox receives");
    assert_eq!(leg.leg_setup().direction, crate::sdp::Direction::SendRecv);
    assert!(leg.same_session(FIREFOX_OFFER));
    // Before ICE, nothing goes out, and nothing breaks.
    leg.send_audio(t0, &[0xf8, 1, 2]);
    while leg.poll_transmit().is_some() {}
}
