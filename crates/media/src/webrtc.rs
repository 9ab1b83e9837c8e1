//! A browser's audio leg (the agent desktop, issue 13): WebRTC through str0m 0.25 as an
//! ICE-lite peer, sans-IO. The browser offers (Crest sends its INVITE without SDP); the leg
//! answers `setup:passive` with one host candidate on Crest's shared WebRTC socket, completes
//! ICE and DTLS-SRTP (rtcp-mux, BUNDLE), and carries Opus both ways and RFC 4733 keys in. A
//! re-offer (hold, resume) is answered on the same session: ICE and DTLS go on.
//!
//! ```text
//!   offer ─► WebRtcLeg::answer ─► answer SDP
//!   datagram from the browser ─► handle_receive ─► poll_transmit (to the browser)
//!                                               └► poll_event: Connected · Audio · Key · Closed
//!   Opus frame for the browser ─► send_audio (only while the browser receives)
//! ```
//!
//! Not yet wired into calls: the media plane still gives agents' phones plain RTP; see
//! docs/agent.md and docs/research/str0m-ice-lite-with-chromium.md.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecExtra, FormatParams};
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// Why an offer was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The SDP does not parse.
    #[error("unreadable WebRTC offer: {0}")]
    Sdp(String),
    /// str0m refused it (no audio it can take, bad fingerprint…).
    #[error("WebRTC offer refused: {0}")]
    Refused(String),
}

/// What the leg reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE and DTLS are up: media may flow.
    Connected,
    /// An Opus frame from the browser and its RTP time (48 kHz).
    Audio {
        /// The Opus frame.
        data: Vec<u8>,
        /// Its RTP timestamp.
        rtp_time: u64,
    },
    /// A key (RFC 4733), once per press.
    Key(char),
    /// The browser went (DTLS closed, or ICE lost it).
    Closed,
}

/// A datagram for the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Where.
    pub to: SocketAddr,
    /// What.
    pub data: Vec<u8>,
}

/// One browser's audio leg (see the module docs).
#[derive(Debug)]
pub struct WebRtcLeg {
    rtc: Rtc,
    local: SocketAddr,
    mid: Option<Mid>,
    out: VecDeque<Datagram>,
    events: VecDeque<WebRtcEvent>,
    next: Option<Instant>,
    /// Our RTP clock for what we send (48 kHz).
    sent_time: u64,
    /// The RTP time of the last key reported (a key's packets share it).
    last_key: Option<u64>,
    closed: bool,
}

/// The telephone-event payload types Crest answers with, per clock rate.
const TELEPHONE_EVENTS: [(u8, Frequency); 2] = [
    (101, Frequency::EIGHT_KHZ),
    (110, Frequency::FORTY_EIGHT_KHZ),
];

/// Samples of one 20 ms Opus frame at 48 kHz.
const FRAME: u64 = 960;

impl WebRtcLeg {
    /// Answers the browser's `offer` on `local` (Crest's WebRTC socket): the leg and the SDP
    /// answer.
    pub fn answer(
        now: Instant,
        local: SocketAddr,
        offer: &str,
    ) -> Result<(Self, String), WebRtcError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Sdp(e.to_string()))?;
        let mut cfg = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false);
        for (pt, rate) in TELEPHONE_EVENTS {
            cfg.codec_config().add_config(
                pt.into(),
                None,
                Codec::Tele,
                rate,
                None,
                FormatParams::default(),
            );
        }
        let mut rtc = cfg.build(now);
        let candidate = Candidate::host(local, "udp")
            .map_err(|e| WebRtcError::Refused(format!("host candidate {local}: {e}")))?;
        rtc.add_local_candidate(candidate)
            .ok_or_else(|| WebRtcError::Refused(format!("host candidate {local} not taken")))?;
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Refused(e.to_string()))?;
        let mut leg = Self {
            rtc,
            local,
            mid: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            next: None,
            sent_time: 0,
            last_key: None,
            closed: false,
        };
        leg.drive();
        Ok((leg, answer.to_sdp_string()))
    }

    /// Answers a re-offer (hold, resume) on the same session.
    pub fn reoffer(&mut self, offer: &str) -> Result<String, WebRtcError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Sdp(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Refused(e.to_string()))?;
        self.drive();
        Ok(answer.to_sdp_string())
    }

    /// A datagram from the browser at `from`.
    pub fn handle_receive(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        if self.closed {
            return;
        }
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            let _ = self.rtc.handle_input(input);
            self.drive();
        }
    }

    /// Runs the timers due at `now` (ICE consent, DTLS, RTCP).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let _ = self.rtc.handle_input(Input::Timeout(now));
        self.drive();
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// The next datagram for the browser.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<WebRtcEvent> {
        self.events.pop_front()
    }

    /// Whether the browser receives audio now (not on hold).
    pub fn receiving(&self) -> bool {
        self.mid
            .and_then(|m| self.rtc.media(m))
            .is_some_and(|m| m.direction().is_sending())
    }

    /// Sends one 20 ms Opus frame to the browser; dropped while it does not receive (on hold:
    /// str0m would send it anyway).
    pub fn send_audio(&mut self, now: Instant, opus: &[u8]) {
        let Some(mid) = self.mid.filter(|_| self.receiving()) else {
            return;
        };
        let Some(pt) = self
            .rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
        else {
            return;
        };
        let time = MediaTime::new(self.sent_time, Frequency::FORTY_EIGHT_KHZ);
        self.sent_time += FRAME;
        if let Some(w) = self.rtc.writer(mid) {
            let _ = w.write(pt, now, time, opus.to_vec());
        }
        self.drive();
    }

    /// Drains str0m's outputs until it waits.
    fn drive(&mut self) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next = Some(t);
                    break;
                }
                Ok(Output::Transmit(t)) => self.out.push_back(Datagram {
                    to: t.destination,
                    data: t.contents.to_vec(),
                }),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(_) => {
                    self.close();
                    break;
                }
            }
        }
        if !self.rtc.is_alive() {
            self.close();
        }
        if self.closed {
            self.next = None;
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.events.push_back(WebRtcEvent::Connected),
            Event::MediaAdded(m) => self.mid = Some(m.mid),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => self.close(),
            Event::MediaData(d) => match d.codec_extra {
                CodecExtra::Tele(ev) => {
                    // A key's packets (start, updates, three ends) share one RTP time.
                    let at = d.time.numer();
                    if self.last_key != Some(at)
                        && let Some(k) = crate::dtmf::key(ev.event)
                    {
                        self.last_key = Some(at);
                        self.events.push_back(WebRtcEvent::Key(k));
                    }
                }
                _ => self.events.push_back(WebRtcEvent::Audio {
                    data: d.data.to_vec(),
                    rtp_time: d.time.numer(),
                }),
            },
            _ => {}
        }
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.next = None;
            self.events.push_back(WebRtcEvent::Closed);
        }
    }
}

#[cfg(test)]
mod tests;
