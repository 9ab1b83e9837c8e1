//! One call's media, sans-IO: two legs (A, the caller; B, the callee) anchored on Crest.
//!
//! Packets from one leg go to the other. When both legs agreed on the same codec they are
//! forwarded as they are, with only the RTP header rewritten to Crest's SSRC, sequence and
//! timestamp on the far leg (no decoding, no added delay). When the codecs differ the stream
//! goes through a jitter buffer, is decoded (with loss concealment), resampled and encoded
//! for the far leg. A leg can instead be fed a prompt (PCM, e.g. a WAV file) with barge-in
//! on a key or on speech; the decoded audio of a leg can be handed to a listener (the IVR's
//! recogniser, the recorder) as a shared `Arc<[i16]>`, decoded once.
//!
//! ```text
//!   handle_rtp(now, side, from, &mut buf) ──► Some(to): buf rewritten in place, send it
//!                                        └──► jitter buffer (transcode / listen / tones)
//!   handle_timeout(now) ──► playout ticks ─► decode ─► listener, tone detector, encoder
//!                      └──► prompts, paced RFC 4733 events, RTCP, media timeout
//!   poll_transmit() ──► Datagram     poll_event() ──► MediaEvent
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::{CodecKind, Decoder, Encoder};
use crate::dtmf::{self, EventReceiver, ToneDetector};
use crate::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::quality::{self, CodecImpairment};
use crate::resample::Resampler;
use crate::rtp::RtpPacket;
use crate::sdp::Direction;
use crate::session::{self, RtpSession, SessionConfig};

/// A leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller.
    A,
    /// The callee (an agent, a trunk).
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }
}

/// What a leg agreed in SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSetup {
    /// Where the peer said it receives RTP.
    pub remote: SocketAddr,
    /// The codec.
    pub codec: CodecKind,
    /// Its payload type on this leg.
    pub pt: u8,
    /// The telephone-event payload type, when agreed.
    pub telephone_event: Option<u8>,
    /// Packet time, milliseconds.
    pub ptime: u32,
    /// Crest's direction on this leg: whether it may send and expects to receive.
    pub direction: Direction,
}

impl LegSetup {
    fn sends(&self) -> bool {
        matches!(self.direction, Direction::SendRecv | Direction::SendOnly)
    }

    fn receives(&self) -> bool {
        matches!(self.direction, Direction::SendRecv | Direction::RecvOnly)
    }

    /// PCM samples in one packet.
    fn frame_samples(&self) -> usize {
        (self.codec.sample_rate() * self.ptime / 1000) as usize
    }

    /// RTP timestamp units in one packet.
    fn frame_ticks(&self) -> u32 {
        self.codec.clock_rate() * self.ptime / 1000
    }
}

/// Settings common to every call.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// RTCP report interval.
    pub rtcp_interval: Duration,
    /// No RTP for this long from a leg that should be sending ends the call (0: never).
    pub media_timeout: Duration,
    /// Detect in-band DTMF tones on G.711 legs that did not agree telephone-event.
    pub inband_dtmf: bool,
    /// Smallest and largest jitter-buffer delay on the transcoding path.
    pub jitter_min: Duration,
    /// See `jitter_min`.
    pub jitter_max: Duration,
    /// CNAME in RTCP.
    pub cname: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(60),
            inband_dtmf: true,
            jitter_min: Duration::from_millis(40),
            jitter_max: Duration::from_millis(200),
            cname: "crest".into(),
        }
    }
}

/// How a key reached Crest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfSource {
    /// RFC 4733 telephone-event.
    Rfc4733,
    /// Tones in the audio.
    InBand,
    /// SIP INFO.
    Info,
}

/// What barged in on a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeIn {
    /// A key.
    Key(char),
    /// The caller started speaking.
    Speech,
}

/// What the call's media reports.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A key pressed on a leg.
    Dtmf {
        /// The leg.
        side: Side,
        /// The key.
        key: char,
        /// How it came.
        source: DtmfSource,
    },
    /// One frame of a listened leg's decoded audio.
    Audio {
        /// The leg.
        side: Side,
        /// Sample rate.
        rate: u32,
        /// The samples, shared with every listener.
        pcm: Arc<[i16]>,
    },
    /// A prompt stopped because the caller pressed a key or spoke.
    BargeIn {
        /// The leg.
        side: Side,
        /// What interrupted it.
        by: BargeIn,
    },
    /// A prompt played to its end.
    PromptDone {
        /// The leg.
        side: Side,
    },
    /// A leg's packets come from a new address (symmetric RTP).
    Latched {
        /// The leg.
        side: Side,
        /// The address.
        addr: SocketAddr,
    },
    /// A leg that should be sending went silent for the configured time.
    MediaTimeout {
        /// The leg.
        side: Side,
    },
}

/// A datagram to send out of a leg's RTP or RTCP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The leg whose socket sends it.
    pub side: Side,
    /// RTCP (the second socket) rather than RTP.
    pub rtcp: bool,
    /// Destination.
    pub to: SocketAddr,
    /// Bytes.
    pub data: Vec<u8>,
}

/// Mono PCM to play on a leg.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Sample rate.
    pub rate: u32,
    /// Samples, shared between the calls playing it.
    pub pcm: Arc<[i16]>,
}

/// A leg's reception quality, for CDRs and metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Packets expected from the peer.
    pub expected: u64,
    /// Packets lost.
    pub lost: i64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Round-trip time from RTCP, milliseconds.
    pub rtt_ms: Option<f64>,
    /// E-model MOS estimate.
    pub mos: f64,
}

#[derive(Debug)]
struct Playing {
    pcm: Arc<[i16]>,
    pos: usize,
    barge_in: bool,
    next: Instant,
}

/// Speech for barge-in: this many 20 ms frames in a row above the energy threshold.
const SPEECH_FRAMES: u32 = 10;
/// Mean square level of speech: about -36 dBFS.
const SPEECH_LEVEL: f64 = 500.0 * 500.0;
/// Concealed frames in a row after which the stream is taken as stopped (no packets made).
const MAX_CONCEAL: u32 = 5;

#[derive(Debug)]
struct Leg {
    setup: Option<LegSetup>,
    session: Option<RtpSession>,
    ssrc: u32,
    /// Crest's sender state on this leg.
    out_seq: u16,
    out_ts: u32,
    /// When Crest's last packet on this leg was due (its media time): after a silence the
    /// next one carries the marker bit and a timestamp that counts the silence (RFC 3550
    /// §5.1), so the far jitter buffer does not take the pause for delay.
    sent_at: Option<Instant>,
    /// The far leg's timestamp of the last packet forwarded to this leg.
    last_in_ts: Option<u32>,
    events_in: EventReceiver,
    // The decoding path of packets from this leg.
    jitter: Option<JitterBuffer>,
    decoder: Option<Decoder>,
    next_tick: Option<Instant>,
    /// How long the packets from this leg last, as decoded (the SDP's ptime until one is):
    /// the playout clock ticks at this pace, whatever the SDP said.
    in_frame: Option<Duration>,
    concealed: u32,
    tones: Option<ToneDetector>,
    listen: bool,
    speech: u32,
    // The encoding path of audio to this leg.
    encoder: Option<Encoder>,
    resampler: Option<(u32, Resampler)>,
    pending: Vec<i16>,
    prompt: Option<Playing>,
    dtmf_out: VecDeque<(Instant, Vec<u8>)>,
}

impl Leg {
    fn new(ssrc: u32) -> Self {
        Self {
            setup: None,
            session: None,
            ssrc,
            out_seq: (ssrc >> 8) as u16,
            out_ts: ssrc.rotate_left(13),
            sent_at: None,
            last_in_ts: None,
            events_in: EventReceiver::new(),
            jitter: None,
            decoder: None,
            next_tick: None,
            in_frame: None,
            concealed: 0,
            tones: None,
            listen: false,
            speech: 0,
            encoder: None,
            resampler: None,
            pending: Vec::new(),
            prompt: None,
            dtmf_out: VecDeque::new(),
        }
    }

    fn can_send(&self) -> bool {
        self.setup.as_ref().is_some_and(LegSetup::sends)
    }

    /// Writes an RTP packet of Crest's stream on this leg.
    fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut data = Vec::with_capacity(12 + payload.len());
        RtpPacket {
            marker,
            payload_type: pt,
            sequence: self.out_seq,
            timestamp: ts,
            ssrc: self.ssrc,
            payload,
        }
        .write(&mut data);
        self.out_seq = self.out_seq.wrapping_add(1);
        if let Some(s) = self.session.as_mut() {
            s.on_sent(ts, payload.len());
        }
        data
    }

    /// Moves Crest's stream on this leg to a packet due `at`: the timestamp advances by one
    /// frame, or by the silence since the last packet; returns the marker bit (a talkspurt's
    /// first packet).
    fn advance(&mut self, at: Instant, setup: &LegSetup) -> bool {
        let ticks = setup.frame_ticks();
        let ptime = Duration::from_millis(setup.ptime.into());
        let marker = match self.sent_at {
            None => true,
            Some(last) => {
                let frames =
                    at.saturating_duration_since(last).as_micros() / ptime.as_micros().max(1);
                if frames >= 2 {
                    let skipped = u32::try_from(frames - 1).unwrap_or(u32::MAX);
                    self.out_ts = self.out_ts.wrapping_add(skipped.wrapping_mul(ticks));
                    true
                } else {
                    false
                }
            }
        };
        self.sent_at = Some(at);
        self.out_ts = self.out_ts.wrapping_add(ticks);
        marker
    }

    /// Sends one frame of PCM at this leg's sample rate, encoded, due `at`.
    fn send_pcm(&mut self, at: Instant, side: Side, pcm: &[i16], out: &mut VecDeque<Datagram>) {
        let (Some(setup), Some(enc)) = (self.setup.clone(), self.encoder.as_mut()) else {
            return;
        };
        let mut payload = Vec::new();
        if enc.encode(pcm, &mut payload).is_err() {
            return;
        }
        let marker = self.advance(at, &setup);
        let data = self.packet(setup.pt, marker, self.out_ts, &payload);
        out.push_back(Datagram {
            side,
            rtcp: false,
            to: self.remote(),
            data,
        });
    }

    fn remote(&self) -> SocketAddr {
        self.session
            .as_ref()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), RtpSession::remote)
    }

    /// Adds PCM at `rate` for this leg, sending every whole frame.
    fn feed(
        &mut self,
        now: Instant,
        side: Side,
        rate: u32,
        pcm: &[i16],
        out: &mut VecDeque<Datagram>,
    ) {
        let Some(setup) = self.setup.clone() else {
            return;
        };
        let own = setup.codec.sample_rate();
        if rate == own {
            self.pending.extend_from_slice(pcm);
        } else {
            if self.resampler.as_ref().is_none_or(|(r, _)| *r != rate) {
                self.resampler = Resampler::new(rate, own).ok().map(|r| (rate, r));
            }
            if let Some((_, r)) = self.resampler.as_mut() {
                r.process(pcm, &mut self.pending);
            }
        }
        let n = setup.frame_samples();
        while self.pending.len() >= n {
            let frame: Vec<i16> = self.pending.drain(..n).collect();
            self.send_pcm(now, side, &frame, out);
        }
    }
}

/// The media of one call (see the module docs).
#[derive(Debug)]
pub struct CallMedia {
    cfg: MediaConfig,
    legs: [Leg; 2],
    events: VecDeque<MediaEvent>,
    out: VecDeque<Datagram>,
    pcm: Vec<i16>,
    /// What a released leg received (its far end hung up and the other leg stayed).
    released: [Option<Quality>; 2],
}

impl CallMedia {
    /// A call whose legs send with SSRCs `ssrc_a` and `ssrc_b`; nothing flows until the
    /// legs are configured from SDP.
    pub fn new(cfg: MediaConfig, ssrc_a: u32, ssrc_b: u32) -> Self {
        Self {
            cfg,
            legs: [Leg::new(ssrc_a), Leg::new(ssrc_b)],
            events: VecDeque::new(),
            out: VecDeque::new(),
            pcm: Vec::new(),
            released: [None; 2],
        }
    }

    /// Stops `side`: its far end hung up while the other leg stays with Crest (a survey after
    /// the agent's BYE). Nothing more is sent to it or expected from it (no media timeout);
    /// what it received stays for [`Self::quality`].
    pub fn release(&mut self, now: Instant, side: Side) {
        self.released[side.index()] = self.quality(side);
        let ssrc = self.leg(side).ssrc;
        *self.leg_mut(side) = Leg::new(ssrc);
        self.update_paths(now);
    }

    fn leg(&self, side: Side) -> &Leg {
        &self.legs[side.index()]
    }

    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        &mut self.legs[side.index()]
    }

    /// What `side` agreed, once configured.
    pub fn setup(&self, side: Side) -> Option<&LegSetup> {
        self.leg(side).setup.as_ref()
    }

    /// Whether the two legs run the same codec (packets are forwarded, not transcoded).
    pub fn forwarding(&self) -> bool {
        match (self.setup(Side::A), self.setup(Side::B)) {
            (Some(a), Some(b)) => a.codec == b.codec,
            _ => true,
        }
    }

    /// Applies a leg's (re)negotiated SDP.
    pub fn configure(&mut self, now: Instant, side: Side, setup: LegSetup) {
        let cfg = self.cfg.clone();
        let leg = self.leg_mut(side);
        match leg.session.as_mut() {
            Some(s) => s.set_remote(setup.remote),
            None => {
                leg.session = Some(RtpSession::new(
                    now,
                    SessionConfig {
                        ssrc: leg.ssrc,
                        clock_rate: setup.codec.clock_rate(),
                        remote: setup.remote,
                        rtcp_interval: cfg.rtcp_interval,
                        media_timeout: cfg.media_timeout,
                        cname: cfg.cname.clone(),
                    },
                ));
            }
        }
        if let Some(s) = leg.session.as_mut() {
            s.rearm_timeout(now);
        }
        if leg.setup.as_ref().map(|s| s.codec) != Some(setup.codec) {
            leg.decoder = None;
            leg.encoder = None;
            leg.jitter = None;
            leg.resampler = None;
            leg.pending.clear();
        }
        leg.tones = (cfg.inband_dtmf
            && setup.telephone_event.is_none()
            && setup.codec.sample_rate() == 8000)
            .then(ToneDetector::new);
        leg.setup = Some(setup);
        self.update_paths(now);
    }

    /// Starts or stops handing `side`'s decoded audio out as [`MediaEvent::Audio`].
    pub fn listen(&mut self, now: Instant, side: Side, on: bool) {
        self.leg_mut(side).listen = on;
        self.update_paths(now);
    }

    /// Plays `prompt` to `side` (the other leg's audio to it pauses meanwhile); with
    /// `barge_in`, a key or speech from `side` stops it.
    pub fn play(&mut self, now: Instant, side: Side, prompt: &Prompt, barge_in: bool) {
        let Some(rate) = self.setup(side).map(|s| s.codec.sample_rate()) else {
            return;
        };
        let pcm: Arc<[i16]> = if prompt.rate == rate {
            prompt.pcm.clone()
        } else {
            let mut out =
                Vec::with_capacity(prompt.pcm.len() * rate as usize / prompt.rate as usize);
            match Resampler::new(prompt.rate, rate) {
                Ok(mut r) => r.process(&prompt.pcm, &mut out),
                Err(_) => return,
            }
            out.into()
        };
        let leg = self.leg_mut(side);
        leg.prompt = Some(Playing {
            pcm,
            pos: 0,
            barge_in,
            next: now,
        });
        leg.last_in_ts = None;
        leg.speech = 0;
        self.update_paths(now);
    }

    /// Stops a prompt on `side`, if one plays.
    pub fn stop_prompt(&mut self, now: Instant, side: Side) {
        self.leg_mut(side).prompt = None;
        self.update_paths(now);
    }

    /// Whether a prompt plays on `side`.
    pub fn playing(&self, side: Side) -> bool {
        self.leg(side).prompt.is_some()
    }

    /// Sends `key` to `side`: RFC 4733 events when the leg agreed telephone-event (paced
    /// every packet time, end packet three times), in-band tones otherwise.
    pub fn send_dtmf(&mut self, now: Instant, side: Side, key: char) {
        let Some(setup) = self.setup(side).cloned() else {
            return;
        };
        let leg = self.leg_mut(side);
        match setup.telephone_event {
            Some(pt) => {
                let step = setup.frame_ticks() as u16;
                let ts = leg.out_ts.wrapping_add(setup.frame_ticks());
                leg.out_ts = ts.wrapping_add(8 * setup.frame_ticks());
                let mut at = now;
                for (i, payload) in dtmf::event_payloads(key, step * 8, step).iter().enumerate() {
                    let data = leg.packet(pt, i == 0, ts, payload);
                    leg.dtmf_out.push_back((at, data));
                    at += Duration::from_millis(setup.ptime.into());
                }
            }
            None => {
                let rate = setup.codec.sample_rate();
                if let Some(pcm) = dtmf::tone_pcm(key, rate, rate as usize / 10) {
                    let mut pcm = pcm;
                    pcm.resize(rate as usize / 5, 0); // 100 ms tone, 100 ms pause
                    let prompt = Prompt {
                        rate,
                        pcm: pcm.into(),
                    };
                    self.play(now, side, &prompt, false);
                }
            }
        }
    }

    /// A key that came by SIP INFO on `side`: reported like the others (and barges in).
    pub fn info_dtmf(&mut self, side: Side, key: char) {
        self.key_from(side, key, DtmfSource::Info);
    }

    /// A key `side` sent as RFC 4733 events outside the bridge's RTP (a browser leg's, which
    /// WebRTC decrypts and reads): reported like the others (and barges in).
    pub fn event_dtmf(&mut self, side: Side, key: char) {
        self.key_from(side, key, DtmfSource::Rfc4733);
    }

    fn key_from(&mut self, side: Side, key: char, source: DtmfSource) {
        self.events
            .push_back(MediaEvent::Dtmf { side, key, source });
        let leg = self.leg_mut(side);
        if leg.prompt.as_ref().is_some_and(|p| p.barge_in) {
            leg.prompt = None;
            self.events.push_back(MediaEvent::BargeIn {
                side,
                by: BargeIn::Key(key),
            });
        }
    }

    /// Turns the decoding path of each leg on or off: needed to transcode, to listen, to
    /// detect in-band tones, and to hear speech barging in on a prompt.
    fn update_paths(&mut self, now: Instant) {
        let forwarding = self.forwarding();
        for i in 0..2 {
            let leg = &mut self.legs[i];
            let Some(setup) = leg.setup.clone() else {
                continue;
            };
            let decode = !forwarding
                || leg.listen
                || leg.tones.is_some()
                || leg.prompt.as_ref().is_some_and(|p| p.barge_in);
            if decode && leg.jitter.is_none() {
                leg.jitter = Some(JitterBuffer::new(JitterConfig {
                    ptime: Duration::from_millis(setup.ptime.into()),
                    min_delay: self.cfg.jitter_min,
                    max_delay: self.cfg.jitter_max,
                    clock_rate: setup.codec.clock_rate(),
                }));
                leg.decoder = Decoder::new(setup.codec).ok();
                leg.next_tick = Some(now + Duration::from_millis(setup.ptime.into()));
                leg.concealed = MAX_CONCEAL;
            } else if !decode {
                leg.jitter = None;
                leg.decoder = None;
                leg.next_tick = None;
            }
            let encode = !forwarding || leg.prompt.is_some();
            if encode && leg.encoder.is_none() {
                leg.encoder = Encoder::new(setup.codec).ok();
            } else if !encode {
                leg.encoder = None;
                leg.resampler = None;
                leg.pending.clear();
            }
        }
    }

    /// Takes an RTP datagram that arrived on `side`'s socket. When it is to be forwarded
    /// unchanged but for its header, `buf` is rewritten in place and the destination and
    /// new length are returned (send `buf[..len]` out of the other leg's socket); everything
    /// else is queued.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
    ) -> Option<(SocketAddr, usize)> {
        let forwarding = self.forwarding();
        let leg = &mut self.legs[side.index()];
        let setup = leg.setup.clone()?;
        let session = leg.session.as_mut()?;
        let p = session.handle_rtp(now, from, buf);
        while let Some(ev) = session.poll_event() {
            if let session::Event::Latched(addr) = ev {
                self.events.push_back(MediaEvent::Latched { side, addr });
            }
        }
        let p = p?;
        if !setup.receives() {
            return None;
        }
        let (pt, ts, marker, len) = (p.payload_type, p.timestamp, p.marker, p.payload.len());
        if Some(pt) == setup.telephone_event {
            if let Some(key) = leg.events_in.handle(&p) {
                self.key_from(side, key, DtmfSource::Rfc4733);
            }
            let far = self.leg(side.other()).setup.as_ref()?.telephone_event?;
            return self.forward(now, side, buf, far, ts, marker, len);
        }
        if pt != setup.pt {
            return None; // comfort noise, a codec not agreed
        }
        if let Some(jb) = leg.jitter.as_mut() {
            jb.push(now, &p);
        }
        if !forwarding {
            return None;
        }
        let far_pt = self.leg(side.other()).setup.as_ref()?.pt;
        self.forward(now, side, buf, far_pt, ts, marker, len)
    }

    /// Rewrites `buf` (a packet from `from`) as a packet of Crest's stream on the other leg.
    #[allow(clippy::too_many_arguments)] // the packet's fields, read once by the caller
    fn forward(
        &mut self,
        now: Instant,
        from: Side,
        buf: &mut [u8],
        pt: u8,
        in_ts: u32,
        marker: bool,
        payload_len: usize,
    ) -> Option<(SocketAddr, usize)> {
        let far = &mut self.legs[from.other().index()];
        let setup = far.setup.as_ref()?;
        if !setup.sends() || far.prompt.is_some() {
            return None;
        }
        let step = setup.frame_ticks();
        let ts = match far.last_in_ts {
            Some(last) => {
                let delta = in_ts.wrapping_sub(last) as i32;
                if delta.unsigned_abs() < 10 * setup.codec.clock_rate() {
                    far.out_ts.wrapping_add(delta as u32)
                } else {
                    far.out_ts.wrapping_add(step)
                }
            }
            None => far.out_ts.wrapping_add(step),
        };
        far.last_in_ts = Some(in_ts);
        far.out_ts = ts;
        far.sent_at = Some(now);
        // The fixed header, rewritten; CSRCs and extensions are dropped by moving the payload.
        let header = buf.len() - payload_len - padding_len(buf);
        buf[0] = 0x80;
        buf[1] = (u8::from(marker) << 7) | (pt & 0x7F);
        buf[2..4].copy_from_slice(&far.out_seq.to_be_bytes());
        buf[4..8].copy_from_slice(&ts.to_be_bytes());
        buf[8..12].copy_from_slice(&far.ssrc.to_be_bytes());
        far.out_seq = far.out_seq.wrapping_add(1);
        if header > 12 {
            buf.copy_within(header..header + payload_len, 12);
        }
        if let Some(s) = far.session.as_mut() {
            s.on_sent(ts, payload_len);
        }
        Some((far.remote(), 12 + payload_len))
    }

    /// Takes an RTCP datagram that arrived on `side`'s RTCP socket.
    pub fn handle_rtcp(&mut self, now: Instant, side: Side, data: &[u8]) {
        if let Some(s) = self.leg_mut(side).session.as_mut() {
            s.handle_rtcp(now, data);
        }
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.legs
            .iter()
            .flat_map(|l| {
                [
                    l.session.as_ref().map(RtpSession::poll_timeout),
                    l.next_tick,
                    l.prompt.as_ref().map(|p| p.next),
                    l.dtmf_out.front().map(|d| d.0),
                ]
            })
            .flatten()
            .min()
    }

    /// Runs what is due at `now`: playout ticks, prompts, DTMF, RTCP, timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        for side in [Side::A, Side::B] {
            self.tick_playout(now, side);
            self.tick_prompt(now, side);
            let leg = &mut self.legs[side.index()];
            while leg.dtmf_out.front().is_some_and(|d| d.0 <= now) {
                let (_, data) = leg.dtmf_out.pop_front().expect("checked");
                let to = leg.remote();
                self.out.push_back(Datagram {
                    side,
                    rtcp: false,
                    to,
                    data,
                });
            }
            let leg = &mut self.legs[side.index()];
            let receives = leg.setup.as_ref().is_some_and(LegSetup::receives);
            let Some(s) = leg.session.as_mut() else {
                continue;
            };
            if s.poll_timeout() <= now {
                s.handle_timeout(now);
            }
            let mut timed_out = false;
            while let Some(ev) = s.poll_event() {
                timed_out |= matches!(ev, session::Event::MediaTimeout(_));
            }
            if timed_out && !receives {
                s.rearm_timeout(now); // on hold: silence is expected
                timed_out = false;
            }
            while let Some(t) = s.poll_transmit() {
                self.out.push_back(Datagram {
                    side,
                    rtcp: t.rtcp,
                    to: t.to,
                    data: t.data,
                });
            }
            if timed_out {
                self.events.push_back(MediaEvent::MediaTimeout { side });
            }
        }
    }

    fn tick_playout(&mut self, now: Instant, side: Side) {
        let forwarding = self.forwarding();
        while let Some(at) = self.leg(side).next_tick.filter(|t| *t <= now) {
            let leg = &mut self.legs[side.index()];
            let Some(setup) = leg.setup.clone() else {
                return;
            };
            let rate = setup.codec.sample_rate();
            let frame = leg
                .in_frame
                .unwrap_or(Duration::from_millis(setup.ptime.into()));
            let frame_samples = (frame.as_secs_f64() * f64::from(rate)).round() as usize;
            leg.next_tick = Some(at + frame);
            let (Some(jb), Some(dec)) = (leg.jitter.as_mut(), leg.decoder.as_mut()) else {
                return;
            };
            let mut pcm = std::mem::take(&mut self.pcm);
            pcm.clear();
            let listen = leg.listen;
            match jb.pop(now) {
                Playout::Waiting => {
                    self.pcm = pcm;
                    self.silence_to_listeners(side, listen, rate, frame_samples);
                    continue;
                }
                Playout::Frame(payload) => {
                    leg.concealed = 0;
                    if dec.decode(&payload, &mut pcm).is_err() {
                        dec.conceal(frame_samples, &mut pcm);
                    }
                    // The packet's own duration sets the pace from now on (30 ms packets
                    // from a phone whose SDP said nothing, a ptime changed mid-call).
                    let lasted =
                        Duration::from_nanos(pcm.len() as u64 * 1_000_000_000 / u64::from(rate));
                    if !pcm.is_empty() && lasted != frame {
                        leg.in_frame = Some(lasted);
                        leg.next_tick = Some(at + lasted);
                        jb.set_ptime(lasted);
                    }
                }
                Playout::Conceal => {
                    leg.concealed += 1;
                    if leg.concealed > MAX_CONCEAL {
                        self.pcm = pcm;
                        // The stream stopped (silence suppression, a pause): nothing is sent
                        // on, but the recorder and the recogniser hear the time go by.
                        self.silence_to_listeners(side, listen, rate, frame_samples);
                        continue;
                    }
                    dec.conceal(frame_samples, &mut pcm);
                }
            }
            self.decoded(now, side, &setup, forwarding, &pcm);
            self.pcm = pcm;
        }
    }

    /// A frame's worth of silence for `side`'s listeners, when they are on: time goes on in
    /// a recording while the leg sends nothing.
    fn silence_to_listeners(&mut self, side: Side, listen: bool, rate: u32, samples: usize) {
        if listen && samples > 0 {
            self.events.push_back(MediaEvent::Audio {
                side,
                rate,
                pcm: vec![0; samples].into(),
            });
        }
    }

    /// One decoded frame of `side`'s audio: tones, speech barge-in, listeners, transcoding.
    fn decoded(
        &mut self,
        now: Instant,
        side: Side,
        setup: &LegSetup,
        forwarding: bool,
        pcm: &[i16],
    ) {
        let leg = self.leg_mut(side);
        let keys = leg.tones.as_mut().map(|t| t.push(pcm)).unwrap_or_default();
        for key in keys {
            self.key_from(side, key, DtmfSource::InBand);
        }
        let leg = self.leg_mut(side);
        if leg.prompt.as_ref().is_some_and(|p| p.barge_in) {
            let level =
                pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len().max(1) as f64;
            leg.speech = if level > SPEECH_LEVEL {
                leg.speech + 1
            } else {
                0
            };
            if leg.speech >= SPEECH_FRAMES {
                leg.prompt = None;
                leg.speech = 0;
                self.events.push_back(MediaEvent::BargeIn {
                    side,
                    by: BargeIn::Speech,
                });
                self.update_paths(now);
            }
        }
        let rate = setup.codec.sample_rate();
        if self.leg(side).listen {
            self.events.push_back(MediaEvent::Audio {
                side,
                rate,
                pcm: pcm.into(),
            });
        }
        let far = &mut self.legs[side.other().index()];
        if !forwarding && far.can_send() && far.prompt.is_none() {
            far.feed(now, side.other(), rate, pcm, &mut self.out);
        }
    }

    fn tick_prompt(&mut self, now: Instant, side: Side) {
        let leg = &mut self.legs[side.index()];
        let Some(setup) = leg.setup.clone() else {
            return;
        };
        let n = setup.frame_samples();
        let ptime = Duration::from_millis(setup.ptime.into());
        let mut done = false;
        while let Some(p) = leg.prompt.as_mut().filter(|p| p.next <= now) {
            let due = p.next;
            p.next += ptime;
            let end = (p.pos + n).min(p.pcm.len());
            let mut frame = p.pcm[p.pos..end].to_vec();
            p.pos = end;
            done = p.pos >= p.pcm.len();
            frame.resize(n, 0);
            if done {
                leg.prompt = None;
            }
            if leg.can_send() {
                leg.send_pcm(due, side, &frame, &mut self.out);
            }
        }
        if done {
            self.events.push_back(MediaEvent::PromptDone { side });
            self.update_paths(now);
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    /// What `side` received so far.
    pub fn quality(&self, side: Side) -> Option<Quality> {
        let leg = self.leg(side);
        let (Some(setup), Some(s)) = (leg.setup.as_ref(), leg.session.as_ref()) else {
            return self.released[side.index()];
        };
        let stats = s.stats();
        // The whole leg: every source it sent from (a new SSRC for its keys, a restart).
        let expected = stats.total_expected();
        let lost = stats.total_lost();
        let loss = if expected == 0 {
            0.0
        } else {
            (lost.max(0) as f64 / expected as f64).min(1.0)
        };
        let rtt_ms = s.rtt().map(|r| r * 1000.0);
        let impairment = match setup.codec {
            CodecKind::Pcmu | CodecKind::Pcma => CodecImpairment::G711_PLC,
            CodecKind::G722 => CodecImpairment::G722,
            CodecKind::Opus => CodecImpairment::OPUS,
        };
        // One-way delay: half the round trip (or 20 ms of network when unknown), plus
        // packetisation and the jitter buffer's minimum.
        let delay = rtt_ms.map_or(20.0, |r| r / 2.0)
            + f64::from(setup.ptime)
            + self.cfg.jitter_min.as_secs_f64() * 1000.0;
        Some(Quality {
            expected,
            lost,
            jitter_ms: stats.jitter_ms(),
            rtt_ms,
            mos: quality::mos(impairment, loss, delay),
        })
    }
}

/// Bytes of RTP padding at the end of a packet (0 when none).
fn padding_len(buf: &[u8]) -> usize {
    if buf.first().is_some_and(|b| b & 0x20 != 0) {
        buf.last().map_or(0, |&n| usize::from(n))
    } else {
        0
    }
}

#[cfg(test)]
mod tests;
