//! An agent's browser leg, Crest's side: how long ICE-lite and the DTLS-SRTP handshake take,
//! and the CPU of one call-second of a G.711 caller talking with a browser through the bridge
//! (PCMU ↔ Opus transcoding, SRTP both ways, str0m's RTCP), beside the same call-second with
//! the agent on plain RTP Opus, in the same run. "Browser legs per core" = 1 s / the former.
//!
//! A custom harness: a str0m "browser" (full ICE, DTLS client, Opus sender) runs in the same
//! loop, in virtual time, and only Crest's calls are timed.
//!
//! `cargo bench -p crest-media --bench webrtc_leg [-- SECONDS]` (default 30 call-seconds).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crest_media::bridge::{CallMedia, LegSetup, MediaConfig, Side};
use crest_media::codec::{CodecKind, Encoder};
use crest_media::rtp::RtpPacket;
use crest_media::sdp::Direction;
use crest_media::webrtc::{WebRtcEvent, WebRtcLeg};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

const CREST: &str = "127.0.0.1:40000";
const BROWSER: &str = "127.0.0.1:50000";
const CALLER: &str = "127.0.0.1:4000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The browser: full ICE, DTLS client, one audio track of Opus.
struct Browser {
    rtc: Rtc,
    mid: Mid,
}

impl Browser {
    fn offer(now: Instant) -> (Self, String, str0m::change::SdpPendingOffer) {
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr(BROWSER), "udp").unwrap())
            .unwrap();
        let mut change = rtc.sdp_api();
        let mid = change.add_media(
            MediaKind::Audio,
            str0m::media::Direction::SendRecv,
            None,
            None,
            None,
        );
        let (offer, pending) = change.apply().unwrap();
        (Self { rtc, mid }, offer.to_sdp_string(), pending)
    }

    /// Its datagrams for Crest, and whether it is connected.
    fn drain(&mut self, out: &mut Vec<Vec<u8>>) -> bool {
        let mut connected = false;
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(_) => return connected,
                Output::Transmit(t) => out.push(t.contents.to_vec()),
                Output::Event(Event::Connected) => connected = true,
                Output::Event(_) => {}
            }
        }
    }

    fn take(&mut self, now: Instant, data: &[u8]) {
        let _ = self.rtc.handle_input(Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: addr(CREST),
                destination: addr(BROWSER),
                contents: data.try_into().unwrap(),
            },
        ));
    }
}

/// A browser and Crest's leg, connected; the time Crest's own calls took.
fn connect(t0: Instant) -> (Browser, WebRtcLeg, Instant, Duration) {
    let mut crest = Duration::ZERO;
    let (mut b, offer, pending) = Browser::offer(t0);
    let t = Instant::now();
    let (mut leg, answer) = WebRtcLeg::answer(t0, addr(CREST), &offer).unwrap();
    crest += t.elapsed();
    b.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let mut now = t0;
    let mut out = Vec::new();
    for _ in 0..2000 {
        out.clear();
        b.drain(&mut out);
        let t = Instant::now();
        for d in &out {
            leg.handle_receive(now, addr(BROWSER), d);
        }
        let mut to_browser = Vec::new();
        while let Some(d) = leg.poll_transmit() {
            to_browser.push(d.data);
        }
        let mut up = false;
        while let Some(e) = leg.poll_event() {
            up |= e == WebRtcEvent::Connected;
        }
        crest += t.elapsed();
        for d in &to_browser {
            b.take(now, d);
        }
        if up {
            return (b, leg, now, crest);
        }
        now += Duration::from_millis(1);
        b.rtc.handle_input(Input::Timeout(now)).unwrap();
        let t = Instant::now();
        leg.handle_timeout(now);
        crest += t.elapsed();
    }
    panic!("no connection");
}

/// 50 PCMU packets (1 s) of two tones, and the same second as Opus frames.
fn audio() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let tone = |rate: u32, n: usize| -> Vec<i16> {
        (0..rate as usize / 50)
            .map(|i| {
                let t = (n * rate as usize / 50 + i) as f64 / f64::from(rate);
                (6000.0 * (std::f64::consts::TAU * 300.0 * t).sin()
                    + 3000.0 * (std::f64::consts::TAU * 1200.0 * t).sin()) as i16
            })
            .collect()
    };
    let (mut pcmu, mut opus) = (
        Encoder::new(CodecKind::Pcmu).unwrap(),
        Encoder::new(CodecKind::Opus).unwrap(),
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for n in 0..50 {
        let mut p = Vec::new();
        pcmu.encode(&tone(8000, n), &mut p).unwrap();
        a.push(p);
        let mut p = Vec::new();
        opus.encode(&tone(48_000, n), &mut p).unwrap();
        b.push(p);
    }
    (a, b)
}

fn rtp(pt: u8, n: u32, ticks: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    RtpPacket {
        marker: false,
        payload_type: pt,
        sequence: n as u16,
        timestamp: n * ticks,
        ssrc: 77,
        payload,
    }
    .write(&mut v);
    v
}

fn caller_leg() -> LegSetup {
    LegSetup {
        remote: addr(CALLER),
        codec: CodecKind::Pcmu,
        pt: 0,
        telephone_event: Some(101),
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

/// `seconds` of a PCMU caller and a browser talking: Crest's CPU, and packets each way.
fn browser_call(seconds: u32) -> (Duration, u64, u64) {
    let t0 = Instant::now();
    let (mut b, mut leg, mut now, _) = connect(t0);
    let mut media = CallMedia::new(MediaConfig::default(), 1, 2);
    media.configure(now, Side::A, caller_leg());
    media.configure(now, Side::B, leg.leg_setup());
    let (pcmu, opus) = audio();
    let (mut crest, mut to_caller, mut to_browser) = (Duration::ZERO, 0u64, 0u64);
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    for n in 0..seconds * 50 {
        let i = (n % 50) as usize;
        // The browser's frame, encrypted by its own stack (not timed).
        let w = b.rtc.writer(b.mid).unwrap();
        let pt = w
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .unwrap()
            .pt();
        w.write(
            pt,
            now,
            MediaTime::new(u64::from(n) * 960, Frequency::FORTY_EIGHT_KHZ),
            opus[i].clone(),
        )
        .unwrap();
        out.clear();
        b.drain(&mut out);
        let mut caller = rtp(0, n, 160, &pcmu[i]);
        let t = Instant::now();
        media.handle_rtp(now, Side::A, addr(CALLER), &mut caller);
        for d in &out {
            leg.handle_receive(now, addr(BROWSER), d);
        }
        if leg.poll_timeout().is_some_and(|d| d <= now) {
            leg.handle_timeout(now);
        }
        while let Some(e) = leg.poll_event() {
            if let WebRtcEvent::Audio { data, rtp_time } = e {
                leg.rtp_from_browser(&data, rtp_time, &mut buf);
                media.handle_rtp(now, Side::B, addr(BROWSER), &mut buf);
            }
        }
        while let Some(d) = media.poll_timeout().filter(|&d| d <= now) {
            media.handle_timeout(d);
        }
        while let Some(d) = media.poll_transmit() {
            match (d.side, d.rtcp) {
                (Side::B, false) => {
                    leg.send_rtp(now, &d.data);
                    to_browser += 1;
                }
                (Side::A, false) => to_caller += 1,
                _ => {}
            }
        }
        let mut sent = Vec::new();
        while let Some(d) = leg.poll_transmit() {
            sent.push(d.data);
        }
        crest += t.elapsed();
        for d in &sent {
            b.take(now, d);
        }
        now += Duration::from_millis(20);
        b.rtc.handle_input(Input::Timeout(now)).unwrap();
    }
    (crest, to_caller, to_browser)
}

/// The same call with the agent on plain RTP Opus (no SRTP, no WebRTC).
fn rtp_call(seconds: u32) -> Duration {
    let t0 = Instant::now();
    let mut media = CallMedia::new(MediaConfig::default(), 1, 2);
    media.configure(t0, Side::A, caller_leg());
    media.configure(
        t0,
        Side::B,
        LegSetup {
            remote: addr(BROWSER),
            codec: CodecKind::Opus,
            pt: 111,
            telephone_event: None,
            ptime: 20,
            direction: Direction::SendRecv,
        },
    );
    let (pcmu, opus) = audio();
    let mut crest = Duration::ZERO;
    let mut now = t0;
    for n in 0..seconds * 50 {
        let i = (n % 50) as usize;
        let (mut a, mut b) = (rtp(0, n, 160, &pcmu[i]), rtp(111, n, 960, &opus[i]));
        let t = Instant::now();
        media.handle_rtp(now, Side::A, addr(CALLER), &mut a);
        media.handle_rtp(now, Side::B, addr(BROWSER), &mut b);
        while let Some(d) = media.poll_timeout().filter(|&d| d <= now) {
            media.handle_timeout(d);
        }
        while media.poll_transmit().is_some() {}
        crest += t.elapsed();
        now += Duration::from_millis(20);
    }
    crest
}

fn main() {
    let seconds: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    // Handshakes: Crest's CPU from the offer to Connected (answer, ICE, DTLS, SRTP keys).
    let mut hs: Vec<f64> = (0..50)
        .map(|_| connect(Instant::now()).3.as_secs_f64() * 1e3)
        .collect();
    hs.sort_by(f64::total_cmp);
    println!(
        "browser leg set-up, Crest's CPU (answer + ICE + DTLS-SRTP), 50 runs: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        hs[25], hs[47], hs[49]
    );
    let (browser, to_caller, to_browser) = browser_call(seconds);
    let plain = rtp_call(seconds);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(seconds);
    println!(
        "{seconds} call-seconds, PCMU caller ↔ browser (SRTP, Opus): {:.0} µs CPU per call-second \
         → {:.0} browser legs per core ({to_caller} packets to the caller, {to_browser} to the browser)",
        per(browser),
        1e6 / per(browser)
    );
    println!(
        "{seconds} call-seconds, PCMU caller ↔ RTP Opus agent (same bridge, no WebRTC): {:.0} µs \
         CPU per call-second → {:.0} calls per core",
        per(plain),
        1e6 / per(plain)
    );
}
