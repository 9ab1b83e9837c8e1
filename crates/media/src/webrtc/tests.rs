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
