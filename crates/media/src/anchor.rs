//! SDP for an anchored call, sans-IO: each leg negotiates with Crest on its own (RFC 3264),
//! so that the caller's RTP ends on Crest and Crest's own RTP goes to the callee.
//!
//! Crest always offers to the far leg (its own address and port, the near leg's codecs first
//! so that the legs usually agree and packets are forwarded, then the codecs it can
//! transcode to); the far leg's answer picks that leg's codec, and Crest answers the near
//! leg preferring the same codec. A request without SDP (late offer) gets Crest's offer in
//! its response and the answer in the ACK. Hold directions and `c=0.0.0.0` pass through.
//!
//! ```text
//!   INVITE(offer A) ─► exchange(A, Offer) ─► Crest offer ─► B
//!   200(answer B)   ─► exchange(B, Answer) ─► LegSetup B, Crest answer ─► A, LegSetup A
//! ```

use std::net::{IpAddr, SocketAddr};

use crate::bridge::{LegSetup, Side};
use crate::codec::CodecKind;
use crate::sdp::{self, AnswerParams, Codec, Direction, Media, Sdp, SdpError};

/// The offer/answer role of an SDP body (or of its absence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An INVITE, re-INVITE or UPDATE: an offer, or none (late offer).
    Offer,
    /// A response or an ACK: the answer to Crest's offer.
    Answer,
}

/// Settings for Crest's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorConfig {
    /// The media address Crest advertises.
    pub address: IpAddr,
    /// Codecs Crest accepts and offers, best first.
    pub codecs: Vec<CodecKind>,
    /// Packet time Crest asks for, milliseconds.
    pub ptime: u32,
}

/// What one exchange produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// The SDP to send on the other leg (or, for an answer after a late offer, none).
    pub body: Option<String>,
    /// Legs whose media settings were (re)negotiated.
    pub setups: Vec<(Side, LegSetup)>,
}

#[derive(Debug, Default)]
struct Negotiation {
    /// An offer from this leg that Crest has still to answer.
    remote_offer: Option<Sdp>,
    /// Crest's last answer to this leg (a 2xx repeats a 183's answer).
    last_answer: Option<String>,
    /// Crest offered to this leg and waits for its answer.
    offered: bool,
    /// This leg sent a request without SDP: it gets Crest's offer in the response.
    needs_offer: bool,
    /// The codec this leg last agreed on.
    codec: Option<CodecKind>,
    version: u64,
}

/// The offer/answer state of one call.
#[derive(Debug)]
pub struct CallAnchor {
    ports: [u16; 2],
    session_id: u64,
    legs: [Negotiation; 2],
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// Crest's telephone-event payload types: 8 kHz for narrowband codecs, 48 kHz for Opus.
const TE_8K: u8 = 101;
const TE_48K: u8 = 110;

impl CallAnchor {
    /// A call whose legs receive RTP on Crest's ports `port_a` and `port_b`.
    pub fn new(port_a: u16, port_b: u16, session_id: u64) -> Self {
        Self {
            ports: [port_a, port_b],
            session_id,
            legs: Default::default(),
        }
    }

    /// Crest's RTP port on `side`.
    pub fn port(&self, side: Side) -> u16 {
        self.ports[index(side)]
    }

    /// Handles the SDP (or its absence) of a message from `from`.
    pub fn exchange(
        &mut self,
        cfg: &AnchorConfig,
        from: Side,
        role: Role,
        sdp: Option<&str>,
    ) -> Result<Exchange, SdpError> {
        let to = from.other();
        match (role, sdp) {
            (Role::Offer, Some(text)) => {
                let offer = Sdp::parse(text)?;
                let audio = plain_audio(&offer)?;
                let near: Vec<CodecKind> = audio
                    .codecs
                    .iter()
                    .filter_map(CodecKind::from_sdp)
                    .filter(|k| cfg.codecs.contains(k))
                    .collect();
                if near.is_empty() {
                    return Err(SdpError::NoCommonCodec);
                }
                let direction = offered_direction(&offer, audio);
                self.legs[index(from)].remote_offer = Some(offer);
                self.legs[index(from)].needs_offer = false;
                Ok(Exchange {
                    body: Some(self.offer_to(cfg, to, &near, direction)),
                    setups: Vec::new(),
                })
            }
            (Role::Offer, None) => {
                self.legs[index(from)].needs_offer = true;
                self.legs[index(from)].remote_offer = None;
                Ok(Exchange {
                    body: Some(self.offer_to(cfg, to, &[], Direction::SendRecv)),
                    setups: Vec::new(),
                })
            }
            (Role::Answer, Some(text)) if self.legs[index(from)].offered => {
                let answer = Sdp::parse(text)?;
                let setup = answered(cfg, &answer)?;
                self.legs[index(from)].offered = false;
                self.legs[index(from)].codec = Some(setup.codec);
                let mut ex = Exchange {
                    body: None,
                    setups: vec![(from, setup.clone())],
                };
                let far = &self.legs[index(to)];
                if let Some(offer) = far.remote_offer.clone() {
                    let (body, far_setup) = self.answer_to(cfg, to, &offer, setup.codec)?;
                    ex.body = Some(body);
                    ex.setups.push((to, far_setup));
                } else if far.needs_offer {
                    self.legs[index(to)].needs_offer = false;
                    ex.body = Some(self.offer_to(cfg, to, &[setup.codec], Direction::SendRecv));
                } else {
                    ex.body = far.last_answer.clone();
                }
                Ok(ex)
            }
            // A repeated answer (a 2xx after a 183 with SDP, or without SDP at all): the
            // near leg gets Crest's answer again.
            (Role::Answer, _) => Ok(Exchange {
                body: self.legs[index(to)].last_answer.clone(),
                setups: Vec::new(),
            }),
        }
    }

    /// Crest answers `side` itself (a call Crest takes: the IVR, a queue), with no far leg to
    /// ask: the offer's first codec Crest has. Without an offer (late offer) Crest offers,
    /// and the answer comes through [`Self::exchange`].
    pub fn answer_alone(
        &mut self,
        cfg: &AnchorConfig,
        side: Side,
        sdp: Option<&str>,
    ) -> Result<Exchange, SdpError> {
        let Some(text) = sdp else {
            self.legs[index(side)].remote_offer = None;
            return Ok(Exchange {
                body: Some(self.offer_to(cfg, side, &[], Direction::SendRecv)),
                setups: Vec::new(),
            });
        };
        let offer = Sdp::parse(text)?;
        let audio = plain_audio(&offer)?;
        let first = audio
            .codecs
            .iter()
            .filter_map(CodecKind::from_sdp)
            .find(|k| cfg.codecs.contains(k))
            .ok_or(SdpError::NoCommonCodec)?;
        let (body, setup) = self.answer_to(cfg, side, &offer, first)?;
        Ok(Exchange {
            body: Some(body),
            setups: vec![(side, setup)],
        })
    }

    /// Crest's offer to a new far leg `side` of a call whose other leg Crest answered itself
    /// (the caller's codec first, so that the legs usually agree and packets are forwarded).
    pub fn offer_far(&mut self, cfg: &AnchorConfig, side: Side) -> String {
        let near: Vec<CodecKind> = self.legs[index(side.other())].codec.into_iter().collect();
        let n = &mut self.legs[index(side)];
        n.remote_offer = None;
        n.needs_offer = false;
        self.offer_to(cfg, side, &near, Direction::SendRecv)
    }

    fn origin(&mut self, cfg: &AnchorConfig, side: Side) -> String {
        let n = &mut self.legs[index(side)];
        n.version += 1;
        format!(
            "crest {} {} IN {} {}",
            self.session_id,
            n.version,
            if cfg.address.is_ipv4() { "IP4" } else { "IP6" },
            cfg.address
        )
    }

    /// Crest's offer to `side`: `first` codecs, then the rest of Crest's, telephone-event.
    fn offer_to(
        &mut self,
        cfg: &AnchorConfig,
        side: Side,
        first: &[CodecKind],
        direction: Direction,
    ) -> String {
        let mut kinds: Vec<CodecKind> = first.to_vec();
        kinds.extend(cfg.codecs.iter().filter(|k| !first.contains(k)));
        let mut codecs: Vec<Codec> = kinds.iter().map(|k| k.sdp(k.default_pt())).collect();
        codecs.push(telephone_event(TE_8K, 8000));
        if kinds.contains(&CodecKind::Opus) {
            codecs.push(telephone_event(TE_48K, 48_000));
        }
        let sdp = Sdp {
            origin: self.origin(cfg, side),
            address: Some(cfg.address),
            media: vec![Media {
                kind: "audio".into(),
                port: self.port(side),
                proto: "RTP/AVP".into(),
                formats: codecs.iter().map(|c| c.pt.to_string()).collect(),
                codecs,
                ptime: Some(cfg.ptime),
                direction,
                address: None,
            }],
        };
        self.legs[index(side)].offered = true;
        sdp.to_string()
    }

    /// Crest's answer to `side`'s offer, preferring `prefer` (the far leg's codec).
    fn answer_to(
        &mut self,
        cfg: &AnchorConfig,
        side: Side,
        offer: &Sdp,
        prefer: CodecKind,
    ) -> Result<(String, LegSetup), SdpError> {
        let mut params = AnswerParams {
            address: cfg.address,
            port: self.port(side),
            codecs: vec![prefer.sdp(prefer.default_pt())],
            session_version: 0,
        };
        let answer = match sdp::answer(offer, &params) {
            Ok(a) => a,
            Err(SdpError::NoCommonCodec) => {
                params.codecs = cfg.codecs.iter().map(|k| k.sdp(k.default_pt())).collect();
                sdp::answer(offer, &params)?
            }
            Err(e) => return Err(e),
        };
        let codec = CodecKind::from_sdp(&answer.codec).ok_or(SdpError::NoCommonCodec)?;
        let audio = audio(offer).ok_or(SdpError::NoAudio)?;
        let ip = audio.address.or(offer.address).ok_or(SdpError::NoAudio)?;
        let setup = LegSetup {
            remote: SocketAddr::new(ip, audio.port),
            codec,
            pt: answer.codec.pt,
            telephone_event: answer.telephone_event,
            ptime: answer.ptime,
            direction: answer.direction,
        };
        let mut sdp = answer.sdp;
        sdp.origin = self.origin(cfg, side);
        let text = sdp.to_string();
        let n = &mut self.legs[index(side)];
        n.remote_offer = None;
        n.last_answer = Some(text.clone());
        n.codec = Some(setup.codec);
        Ok((text, setup))
    }
}

fn telephone_event(pt: u8, rate: u32) -> Codec {
    Codec {
        pt,
        name: "telephone-event".into(),
        rate,
        channels: 1,
        fmtp: Some("0-16".into()),
    }
}

fn audio(sdp: &Sdp) -> Option<&Media> {
    sdp.media.iter().find(|m| m.kind == "audio" && m.port != 0)
}

/// The audio stream, refused unless it is plain RTP (Crest's anchor speaks RTP/AVP; secure
/// profiles, and WebRTC's DTLS-SRTP, would get an answer they cannot use).
fn plain_audio(sdp: &Sdp) -> Result<&Media, SdpError> {
    let m = audio(sdp).ok_or(SdpError::NoAudio)?;
    if matches!(m.proto.as_str(), "RTP/AVP" | "RTP/AVPF") {
        Ok(m)
    } else {
        Err(SdpError::Transport(m.proto.clone()))
    }
}

/// The direction an offer asks for, `c=0.0.0.0` (RFC 2543 hold) read as inactive.
fn offered_direction(sdp: &Sdp, audio: &Media) -> Direction {
    if audio
        .address
        .or(sdp.address)
        .is_some_and(|a| a.is_unspecified())
    {
        Direction::Inactive
    } else {
        audio.direction
    }
}

/// The leg settings a peer's answer to Crest's offer gives.
fn answered(cfg: &AnchorConfig, answer: &Sdp) -> Result<LegSetup, SdpError> {
    let audio = plain_audio(answer)?;
    let chosen = audio
        .codecs
        .iter()
        .find_map(|c| {
            CodecKind::from_sdp(c)
                .filter(|k| cfg.codecs.contains(k))
                .map(|k| (k, c.pt))
        })
        .ok_or(SdpError::NoCommonCodec)?;
    let te = audio
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event") && c.rate == chosen.0.clock_rate())
        .map(|c| c.pt);
    let ip = audio.address.or(answer.address).ok_or(SdpError::NoAudio)?;
    Ok(LegSetup {
        remote: SocketAddr::new(ip, audio.port),
        codec: chosen.0,
        pt: chosen.1,
        telephone_event: te,
        ptime: audio.ptime.unwrap_or(cfg.ptime),
        // The peer's direction seen from Crest.
        direction: offered_direction(answer, audio).answer(),
    })
}

/// RTP ports for legs: even numbers (RTCP on the odd one above) from a range, handed out
/// round-robin so that a port just released is not reused at once (late packets of the old
/// call would land in the new one).
#[derive(Debug)]
pub struct PortPool {
    free: std::collections::VecDeque<u16>,
}

impl PortPool {
    /// The even ports in `min..=max` (RTCP uses the port above each).
    pub fn new(min: u16, max: u16) -> Self {
        let start = min + (min % 2);
        Self {
            free: (start..max).step_by(2).collect(),
        }
    }

    /// Ports left.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// The next free port.
    pub fn take(&mut self) -> Option<u16> {
        self.free.pop_front()
    }

    /// Gives a port back.
    pub fn release(&mut self, port: u16) {
        self.free.push_back(port);
    }
}

#[cfg(test)]
mod tests;
