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
//! In a call the leg stands in for an RTP leg of [`crate::bridge::CallMedia`]: the browser's
//! Opus frames become RTP packets of that leg ([`WebRtcLeg::rtp_from_browser`]), and what the
//! bridge sends that leg goes to the browser ([`WebRtcLeg::send_rtp`]), so transcoding to
//! and from the caller's codec, recording and DTMF stay the bridge's. All browser legs share
//! one UDP socket: [`Demux`] tells whose a datagram is, by the ICE username fragment of its
//! STUN binding requests, then by the source address ICE found.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::SdpOffer;
use str0m::format::{Codec, CodecExtra, FormatParams};
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::bridge::LegSetup;
use crate::codec::CodecKind;
use crate::rtp::RtpPacket;
use crate::sdp::Direction;

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
    /// Crest's ICE username fragment in the answer (what [`Demux`] routes by).
    ufrag: String,
    /// The browser's fragment in its offer: a re-offer of the same session keeps it.
    remote_ufrag: Option<String>,
    /// The browser's address once ICE chose it.
    remote: Option<SocketAddr>,
    /// The sequence number of the next RTP packet made of a browser's frame.
    rtp_seq: u16,
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
        let remote_ufrag = ice_ufrag(offer).map(str::to_owned);
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
        let answer = answer.to_sdp_string();
        let ufrag = ice_ufrag(&answer)
            .map(str::to_owned)
            .ok_or_else(|| WebRtcError::Refused("the answer has no ICE ufrag".into()))?;
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
            ufrag,
            remote_ufrag,
            remote: None,
            rtp_seq: 0,
        };
        leg.drive();
        // The audio's mid, before str0m reports it added (at its first poll after this).
        if leg.mid.is_none() {
            leg.mid = answer
                .lines()
                .find_map(|l| l.strip_prefix("a=mid:"))
                .map(|m| Mid::from(m.trim()));
        }
        Ok((leg, answer))
    }

    /// Crest's ICE username fragment: the browser's STUN requests name it.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether `offer` re-offers this session (the same ICE credentials: hold, resume, a
    /// session refresh) rather than starting a new one.
    pub fn same_session(&self, offer: &str) -> bool {
        self.remote_ufrag.is_some() && ice_ufrag(offer) == self.remote_ufrag.as_deref()
    }

    /// What the bridge's leg toward this browser agrees: Opus at 20 ms in the direction the
    /// last offer and answer agreed (a held browser neither gets audio nor is expected to
    /// send it). The remote address is the browser's once known, for the records: the
    /// bridge's packets for this leg go through [`Self::send_rtp`].
    pub fn leg_setup(&self) -> LegSetup {
        let (send, recv) = self
            .mid
            .and_then(|m| self.rtc.media(m))
            .map_or((true, true), |m| {
                (m.direction().is_sending(), m.direction().is_receiving())
            });
        LegSetup {
            remote: self.source(),
            codec: CodecKind::Opus,
            pt: CodecKind::Opus.default_pt(),
            telephone_event: None,
            ptime: 20,
            direction: match (send, recv) {
                (true, true) => Direction::SendRecv,
                (true, false) => Direction::SendOnly,
                (false, true) => Direction::RecvOnly,
                (false, false) => Direction::Inactive,
            },
        }
    }

    /// The browser's address, once it sent from one ICE accepted.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// Where the bridge's leg says the browser's packets come from: its address once known,
    /// else Crest's own.
    pub fn source(&self) -> SocketAddr {
        self.remote.unwrap_or(self.local)
    }

    /// An RTP packet of the bridge's leg made of the browser's Opus `frame` sent at
    /// `rtp_time` (an [`WebRtcEvent::Audio`]), written into `out`.
    pub fn rtp_from_browser(&mut self, frame: &[u8], rtp_time: u64, out: &mut Vec<u8>) {
        let seq = self.rtp_seq;
        self.rtp_seq = seq.wrapping_add(1);
        RtpPacket {
            marker: false,
            payload_type: CodecKind::Opus.default_pt(),
            sequence: seq,
            // The RTP clock wraps at 32 bits; str0m extends it to 64.
            timestamp: rtp_time as u32,
            ssrc: 0x0B0B_0B0B,
            payload: frame,
        }
        .write(out);
    }

    /// Sends the browser what the bridge sent this leg: an RTP packet whose Opus payload goes
    /// out as one frame. Other payloads (keys, comfort noise) and RTCP (str0m makes its own)
    /// are dropped.
    pub fn send_rtp(&mut self, now: Instant, packet: &[u8]) {
        if let Ok(p) = RtpPacket::parse(packet)
            && p.payload_type == CodecKind::Opus.default_pt()
        {
            self.send_audio(now, p.payload);
        }
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
            if self.remote.is_none() && !self.closed && self.rtc.is_connected() {
                self.remote = Some(from);
            }
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
        let time = MediaTime::new(self.sent_time, Frequency::FORTY_EIGHT_KHZ);
        self.sent_time += FRAME;
        if let Some(w) = self.rtc.writer(mid) {
            // The payload type the browser offered (Chromium 111, Firefox 109).
            let pt = w
                .payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt());
            if let Some(pt) = pt {
                let _ = w.write(pt, now, time, opus.to_vec());
            }
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

/// Which leg a datagram on the shared WebRTC socket belongs to (see the module docs). `K`
/// names a leg (the call's id).
#[derive(Debug)]
pub struct Demux<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Demux<K> {
    /// Routes STUN requests naming `ufrag` (Crest's fragment of a leg's answer) to `leg`.
    pub fn insert(&mut self, ufrag: &str, leg: K) {
        self.by_ufrag.insert(ufrag.to_owned(), leg);
    }

    /// Forgets `leg`: its fragment and every address learnt for it.
    pub fn remove(&mut self, leg: K) {
        self.by_ufrag.retain(|_, k| *k != leg);
        self.by_addr.retain(|_, k| *k != leg);
    }

    /// The leg a datagram `from` belongs to: a STUN request names its leg by fragment and
    /// teaches its source address (what DTLS, SRTP and later requests come from); anything
    /// else goes by that address. None: nobody's (dropped).
    pub fn route(&mut self, from: SocketAddr, data: &[u8]) -> Option<K> {
        if let Some(user) = stun_username(data) {
            let ours = user.split(':').next().unwrap_or_default();
            let leg = *self.by_ufrag.get(ours)?;
            self.by_addr.insert(from, leg);
            return Some(leg);
        }
        self.by_addr.get(&from).copied()
    }

    /// Legs routed by fragment.
    pub fn len(&self) -> usize {
        self.by_ufrag.len()
    }

    /// Whether no leg is routed.
    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty()
    }

    /// Source addresses learnt (each leg's browser, and any it tried).
    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

/// The `a=ice-ufrag` of an SDP.
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(str::trim)
}

/// The USERNAME of a STUN message (RFC 8489 §14.3), when `data` is one.
pub fn stun_username(data: &[u8]) -> Option<&str> {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    const USERNAME: u16 = 0x0006;
    // A STUN message starts with two zero bits and carries the magic cookie (RFC 7983).
    if data.len() < 20 || data[0] > 3 || data[4..8] != MAGIC {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let n = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + n)?;
        if kind == USERNAME {
            return std::str::from_utf8(value).ok();
        }
        at += 4 + n.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests;
