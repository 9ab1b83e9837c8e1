//! SDP (RFC 4566) as the media plane needs it, and the answerer side of offer/answer
//! (RFC 3264): pick a codec both sides have, keep telephone-event, answer hold directions, and
//! reject what cannot be served (port 0 for other media, 488 when no audio codec matches).

use std::fmt::{self, Write as _};
use std::net::IpAddr;

/// Why a description was refused; [`SdpError::status`] is the SIP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// A line that is not `x=value`, or a malformed m=, c= or a=rtpmap line.
    #[error("malformed SDP line {0}")]
    Syntax(usize),
    /// No m=audio line.
    #[error("no audio stream offered")]
    NoAudio,
    /// No audio codec in common.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// A transport profile other than plain RTP (SRTP, DTLS-SRTP for WebRTC).
    #[error("media transport {0} not supported (plain RTP/AVP)")]
    Transport(String),
}

impl SdpError {
    /// The SIP status for a request carrying such an offer.
    pub fn status(&self) -> u16 {
        match self {
            Self::Syntax(_) => 400,
            Self::NoAudio | Self::NoCommonCodec | Self::Transport(_) => 488,
        }
    }
}

/// The direction attribute of a media stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// The description's owner only sends (it puts the other side on hold).
    SendOnly,
    /// The owner only receives.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The direction an answer takes to this offered one (RFC 3264 §6.1).
    pub fn answer(self) -> Self {
        match self {
            Self::SendOnly => Self::RecvOnly,
            Self::RecvOnly => Self::SendOnly,
            d => d,
        }
    }

    fn attr(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }
}

/// A codec as `a=rtpmap` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// The payload type.
    pub pt: u8,
    /// Encoding name, as written (compared case-insensitively).
    pub name: String,
    /// Clock rate.
    pub rate: u32,
    /// Channels (audio), 1 when not written.
    pub channels: u8,
    /// The a=fmtp parameters, if any.
    pub fmtp: Option<String>,
}

impl Codec {
    fn same_as(&self, other: &Self) -> bool {
        self.name.eq_ignore_ascii_case(&other.name) && self.rate == other.rate
    }
}

/// One m= section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, ...
    pub kind: String,
    /// The transport port (0: rejected or disabled).
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub proto: String,
    /// Formats in order of preference, with their rtpmap (static types filled in).
    pub codecs: Vec<Codec>,
    /// The format tokens as written (for non-RTP media).
    pub formats: Vec<String>,
    /// a=ptime, milliseconds.
    pub ptime: Option<u32>,
    /// The direction (sendrecv when not written).
    pub direction: Direction,
    /// A media-level c= address.
    pub address: Option<IpAddr>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// The o= line value.
    pub origin: String,
    /// The session-level c= address.
    pub address: Option<IpAddr>,
    /// The m= sections in order.
    pub media: Vec<Media>,
}

fn static_codec(pt: u8) -> Option<Codec> {
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        _ => return None,
    };
    Some(Codec {
        pt,
        name: name.into(),
        rate,
        channels: 1,
        fmtp: None,
    })
}

fn parse_connection(v: &str) -> Option<IpAddr> {
    // c=IN IP4 192.0.2.1[/ttl]
    let addr = v.split_whitespace().nth(2)?;
    addr.split('/').next()?.parse().ok()
}

impl Sdp {
    /// Parses a description; CRLF or bare LF line ends; unknown lines are ignored.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut sdp = Self {
            origin: String::new(),
            address: None,
            media: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (kind, value) = line
                .split_once('=')
                .filter(|(k, _)| k.len() == 1)
                .ok_or(SdpError::Syntax(i + 1))?;
            match (kind, sdp.media.last_mut()) {
                ("o", _) => sdp.origin = value.to_owned(),
                ("c", None) => {
                    sdp.address = Some(parse_connection(value).ok_or(SdpError::Syntax(i + 1))?)
                }
                ("c", Some(m)) => {
                    m.address = Some(parse_connection(value).ok_or(SdpError::Syntax(i + 1))?)
                }
                ("m", _) => {
                    let mut it = value.split_whitespace();
                    let (Some(kind), Some(port), Some(proto)) = (it.next(), it.next(), it.next())
                    else {
                        return Err(SdpError::Syntax(i + 1));
                    };
                    let port = port
                        .split('/')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or(SdpError::Syntax(i + 1))?;
                    let formats: Vec<String> = it.map(str::to_owned).collect();
                    let codecs = formats
                        .iter()
                        .filter_map(|f| f.parse().ok())
                        .filter_map(static_codec)
                        .collect();
                    sdp.media.push(Media {
                        kind: kind.to_owned(),
                        port,
                        proto: proto.to_owned(),
                        codecs,
                        formats,
                        ptime: None,
                        direction: Direction::SendRecv,
                        address: None,
                    });
                }
                ("a", Some(m)) => parse_attribute(m, value).ok_or(SdpError::Syntax(i + 1))?,
                _ => {}
            }
        }
        Ok(sdp)
    }

    /// The address and port of the first audio stream, and whether it is on hold
    /// (`c=0.0.0.0`, RFC 2543 style, or a direction other than sendrecv).
    pub fn audio_target(&self) -> Option<(IpAddr, u16, bool)> {
        let m = self
            .media
            .iter()
            .find(|m| m.kind == "audio" && m.port != 0)?;
        let addr = m.address.or(self.address)?;
        let hold = addr.is_unspecified() || m.direction != Direction::SendRecv;
        Some((addr, m.port, hold))
    }
}

fn parse_attribute(m: &mut Media, value: &str) -> Option<()> {
    let (name, rest) = value.split_once(':').unwrap_or((value, ""));
    match name {
        "rtpmap" => {
            let (pt, enc) = rest.split_once(' ')?;
            let pt: u8 = pt.parse().ok()?;
            let mut parts = enc.trim().split('/');
            let name = parts.next()?.to_owned();
            let rate = parts.next()?.parse().ok()?;
            let channels = parts.next().and_then(|c| c.parse().ok()).unwrap_or(1);
            let codec = Codec {
                pt,
                name,
                rate,
                channels,
                fmtp: None,
            };
            match m.codecs.iter_mut().find(|c| c.pt == pt) {
                Some(c) => {
                    *c = Codec {
                        fmtp: c.fmtp.take(),
                        ..codec
                    }
                }
                None => m.codecs.push(codec),
            }
            // Keep the m= line's order of preference.
            let order = |c: &Codec| {
                m.formats
                    .iter()
                    .position(|f| *f == c.pt.to_string())
                    .unwrap_or(usize::MAX)
            };
            m.codecs.sort_by_key(order);
        }
        "fmtp" => {
            let (pt, params) = rest.split_once(' ')?;
            let pt: u8 = pt.parse().ok()?;
            if let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt) {
                c.fmtp = Some(params.trim().to_owned());
            }
        }
        "ptime" => m.ptime = rest.trim().parse().ok(),
        "sendrecv" => m.direction = Direction::SendRecv,
        "sendonly" => m.direction = Direction::SendOnly,
        "recvonly" => m.direction = Direction::RecvOnly,
        "inactive" => m.direction = Direction::Inactive,
        _ => {}
    }
    Some(())
}

/// What the answerer can do and where it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerParams {
    /// Crest's media address.
    pub address: IpAddr,
    /// Crest's RTP port for this leg.
    pub port: u16,
    /// Codecs Crest can send and receive, best first (payload types are taken from the offer).
    pub codecs: Vec<Codec>,
    /// Session version for the o= line.
    pub session_version: u64,
}

/// The answer and what was agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer to send.
    pub sdp: Sdp,
    /// The audio codec agreed (with the offer's payload type).
    pub codec: Codec,
    /// The telephone-event payload type, when both sides have it.
    pub telephone_event: Option<u8>,
    /// The packet time, milliseconds.
    pub ptime: u32,
    /// The direction of the answer.
    pub direction: Direction,
}

/// Answers an offer (RFC 3264 §6): the first offered audio codec Crest supports (the
/// offerer's preference), telephone-event at the same rate if offered, the answer direction;
/// every other stream is rejected with port 0.
pub fn answer(offer: &Sdp, params: &AnswerParams) -> Result<Answer, SdpError> {
    let audio_index = offer
        .media
        .iter()
        .position(|m| m.kind == "audio" && m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let audio = &offer.media[audio_index];
    let codec = audio
        .codecs
        .iter()
        .find(|c| {
            !c.name.eq_ignore_ascii_case("telephone-event")
                && params.codecs.iter().any(|s| s.same_as(c))
        })
        .cloned()
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event = audio
        .codecs
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case("telephone-event") && c.rate == codec.rate)
        .map(|c| c.pt);
    let on_hold = audio
        .address
        .or(offer.address)
        .is_some_and(|a| a.is_unspecified());
    let direction = if on_hold {
        Direction::Inactive.answer()
    } else {
        audio.direction.answer()
    };
    let ptime = audio.ptime.unwrap_or(20);
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i != audio_index {
                return Media {
                    port: 0,
                    codecs: Vec::new(),
                    ptime: None,
                    address: None,
                    direction: Direction::Inactive,
                    ..m.clone()
                };
            }
            let mut codecs = vec![codec.clone()];
            if let Some(pt) = telephone_event {
                codecs.extend(audio.codecs.iter().find(|c| c.pt == pt).cloned());
            }
            Media {
                kind: "audio".into(),
                port: params.port,
                proto: m.proto.clone(),
                formats: codecs.iter().map(|c| c.pt.to_string()).collect(),
                codecs,
                ptime: Some(ptime),
                direction,
                address: None,
            }
        })
        .collect();
    let sdp = Sdp {
        origin: format!(
            "crest 1 {} IN {} {}",
            params.session_version,
            ip_kind(params.address),
            params.address
        ),
        address: Some(params.address),
        media,
    };
    Ok(Answer {
        sdp,
        codec,
        telephone_event,
        ptime,
        direction,
    })
}

fn ip_kind(a: IpAddr) -> &'static str {
    if a.is_ipv4() { "IP4" } else { "IP6" }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(256);
        let _ = write!(out, "v=0\r\no={}\r\ns=-\r\n", self.origin);
        if let Some(a) = self.address {
            let _ = write!(out, "c=IN {} {a}\r\n", ip_kind(a));
        }
        out.push_str("t=0 0\r\n");
        for m in &self.media {
            let _ = write!(
                out,
                "m={} {} {} {}\r\n",
                m.kind,
                m.port,
                m.proto,
                m.formats.join(" ")
            );
            if let Some(a) = m.address {
                let _ = write!(out, "c=IN {} {a}\r\n", ip_kind(a));
            }
            if m.port == 0 {
                continue;
            }
            for c in &m.codecs {
                let _ = write!(out, "a=rtpmap:{} {}/{}", c.pt, c.name, c.rate);
                if c.channels > 1 {
                    let _ = write!(out, "/{}", c.channels);
                }
                out.push_str("\r\n");
                if let Some(p) = &c.fmtp {
                    let _ = write!(out, "a=fmtp:{} {p}\r\n", c.pt);
                }
            }
            if let Some(p) = m.ptime {
                let _ = write!(out, "a=ptime:{p}\r\n");
            }
            let _ = write!(out, "a={}\r\n", m.direction.attr());
        }
        f.write_str(&out)
    }
}

/// The codecs Crest offers and accepts, best first: Opus, G.722, PCMU, PCMA.
pub fn supported_codecs() -> Vec<Codec> {
    let c = |pt, name: &str, rate, channels| Codec {
        pt,
        name: name.into(),
        rate,
        channels,
        fmtp: None,
    };
    vec![
        c(111, "opus", 48000, 2),
        c(9, "G722", 8000, 1),
        c(0, "PCMU", 8000, 1),
        c(8, "PCMA", 8000, 1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(([vocmta]=[ -~]{0,40})?\r?\n){0,12}") {
            if let Ok(sdp) = Sdp::parse(&text) {
                let _ = answer(&sdp, &params());
                let _ = Sdp::parse(&sdp.to_string());
            }
        }

        #[test]
        fn mutated_offers_never_panic(i in 0..PHONE.len(), c in any::<char>()) {
            let mut t: Vec<char> = PHONE.chars().collect();
            let i = i.min(t.len() - 1);
            t[i] = c;
            let text: String = t.into_iter().collect();
            if let Ok(sdp) = Sdp::parse(&text) {
                let _ = answer(&sdp, &params());
            }
        }
    }

    const PHONE: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
        m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n";

    fn params() -> AnswerParams {
        AnswerParams {
            address: "198.51.100.1".parse().unwrap(),
            port: 30000,
            codecs: supported_codecs(),
            session_version: 1,
        }
    }

    #[test]
    fn answers_the_offerers_first_codec_with_telephone_event_and_rejects_video() {
        let offer = Sdp::parse(PHONE).unwrap();
        let a = answer(&offer, &params()).unwrap();
        assert_eq!(
            (a.codec.name.as_str(), a.codec.pt),
            ("PCMA", 8),
            "offerer's preference"
        );
        assert_eq!(a.telephone_event, Some(101));
        assert_eq!(a.direction, Direction::SendRecv);
        let text = a.sdp.to_string();
        assert!(text.contains("m=audio 30000 RTP/AVP 8 101\r\n"), "{text}");
        assert!(text.contains("a=fmtp:101 0-16\r\n"));
        assert!(text.contains("m=video 0 RTP/AVP 31\r\n"), "{text}");
        let again = Sdp::parse(&text).unwrap();
        assert_eq!(
            again.audio_target(),
            Some(("198.51.100.1".parse().unwrap(), 30000, false))
        );
    }

    #[test]
    fn hold_offers_get_hold_answers() {
        let sendonly = PHONE.replace("a=ptime:20", "a=ptime:20\r\na=sendonly");
        let a = answer(&Sdp::parse(&sendonly).unwrap(), &params()).unwrap();
        assert_eq!(a.direction, Direction::RecvOnly);
        assert!(a.sdp.to_string().contains("a=recvonly"));
        let old_style = PHONE.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0");
        let offer = Sdp::parse(&old_style).unwrap();
        assert!(offer.audio_target().unwrap().2, "c=0.0.0.0 is hold");
        assert_eq!(
            answer(&offer, &params()).unwrap().direction,
            Direction::Inactive
        );
        let inactive = PHONE.replace("a=ptime:20", "a=inactive");
        assert_eq!(
            answer(&Sdp::parse(&inactive).unwrap(), &params())
                .unwrap()
                .direction,
            Direction::Inactive
        );
    }

    #[test]
    fn webrtc_opus_offer_with_bare_lf_and_no_common_codec_is_488() {
        let chrome = "v=0\no=- 46117 2 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\n\
            c=IN IP4 0.0.0.0\na=rtpmap:111 opus/48000/2\na=fmtp:111 minptime=10;useinbandfec=1\na=rtpmap:63 red/48000/2\n\
            a=rtpmap:9 G722/8000\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\na=rtpmap:13 CN/8000\na=rtpmap:110 telephone-event/48000\n\
            a=rtpmap:126 telephone-event/8000\na=sendrecv\n";
        let offer = Sdp::parse(chrome).unwrap();
        let a = answer(&offer, &params()).unwrap();
        assert_eq!((a.codec.name.as_str(), a.codec.channels), ("opus", 2));
        assert_eq!(a.codec.fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
        assert_eq!(
            a.telephone_event,
            Some(110),
            "telephone-event at the codec's rate"
        );
        let g729 = "v=0\r\no=x 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        let e = answer(&Sdp::parse(g729).unwrap(), &params()).unwrap_err();
        assert_eq!((e.clone(), e.status()), (SdpError::NoCommonCodec, 488));
        assert_eq!(
            Sdp::parse("v=0\r\nnonsense\r\n").unwrap_err(),
            SdpError::Syntax(2)
        );
        assert_eq!(
            answer(&Sdp::parse("v=0\r\n").unwrap(), &params())
                .unwrap_err()
                .status(),
            488
        );
    }
}
