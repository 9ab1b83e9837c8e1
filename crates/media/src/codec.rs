//! The audio codecs Crest decodes and encodes when two legs differ: G.711 μ-law and A-law
//! (own tables), G.722 (`audio-codec`, pure Rust) and Opus (`opus`, libopus 1.6).
//!
//! PCM is 16-bit mono at the codec's own sample rate ([`CodecKind::sample_rate`]); the RTP
//! clock can differ from it (G.722 counts 8 kHz on the wire for 16 kHz audio, RFC 3551).

use audio_codec::{Decoder as _, Encoder as _};

use crate::g711;
use crate::sdp::Codec;

/// Why a payload could not be coded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec library refused the data or the settings.
    #[error("{codec}: {message}")]
    Library {
        /// The codec.
        codec: CodecKind,
        /// The library's message.
        message: String,
    },
}

/// An audio codec Crest can code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecKind {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 at 64 kbit/s.
    G722,
    /// Opus, mono, 48 kHz.
    Opus,
}

impl std::fmt::Display for CodecKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The Opus bitrate Crest encodes at: wideband speech at a third of G.711's.
pub const OPUS_BITRATE: u32 = 24_000;

impl CodecKind {
    /// Every codec, in Crest's default order of preference.
    pub const ALL: [Self; 4] = [Self::Opus, Self::G722, Self::Pcmu, Self::Pcma];

    /// The codec an SDP `rtpmap` names, if Crest has it.
    pub fn from_sdp(c: &Codec) -> Option<Self> {
        Self::from_name(&c.name).filter(|k| k.clock_rate() == c.rate)
    }

    /// The codec of an encoding name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// The encoding name in SDP.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::G722 => "G722",
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 8000,
            Self::Opus => 48_000,
        }
    }

    /// The PCM sample rate the codec codes.
    pub fn sample_rate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma => 8000,
            Self::G722 => 16_000,
            Self::Opus => 48_000,
        }
    }

    /// The payload bitrate, bits per second.
    pub fn bitrate(self) -> u32 {
        match self {
            Self::Pcmu | Self::Pcma | Self::G722 => 64_000,
            Self::Opus => OPUS_BITRATE,
        }
    }

    /// The static payload type, or Crest's dynamic one for Opus.
    pub fn default_pt(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
            Self::G722 => 9,
            Self::Opus => 111,
        }
    }

    /// The SDP description with payload type `pt`.
    pub fn sdp(self, pt: u8) -> Codec {
        Codec {
            pt,
            name: self.name().into(),
            rate: self.clock_rate(),
            channels: if self == Self::Opus { 2 } else { 1 },
            fmtp: (self == Self::Opus).then(|| "minptime=10;useinbandfec=1".into()),
        }
    }

    /// RTP timestamp units per PCM sample, as (numerator, denominator).
    pub fn ticks_per_sample(self) -> (u32, u32) {
        (self.clock_rate(), self.sample_rate())
    }
}

fn lib_error(codec: CodecKind, e: impl std::fmt::Display) -> CodecError {
    CodecError::Library {
        codec,
        message: e.to_string(),
    }
}

/// The state of a coder: none for G.711, the library's for G.722 and Opus.
enum Coder<G, O> {
    Pcmu,
    Pcma,
    G722(Box<G>),
    Opus(Box<O>),
}

impl<G, O> Coder<G, O> {
    fn kind(&self) -> CodecKind {
        match self {
            Self::Pcmu => CodecKind::Pcmu,
            Self::Pcma => CodecKind::Pcma,
            Self::G722(_) => CodecKind::G722,
            Self::Opus(_) => CodecKind::Opus,
        }
    }
}

/// A decoder for one incoming stream.
pub struct Decoder(Coder<audio_codec::g722::G722Decoder, opus::Decoder>);

/// An encoder for one outgoing stream.
pub struct Encoder(Coder<audio_codec::g722::G722Encoder, opus::Encoder>);

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoder({})", self.kind())
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoder({})", self.kind())
    }
}

impl Decoder {
    /// A decoder for `kind`.
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        Ok(Self(match kind {
            CodecKind::Pcmu => Coder::Pcmu,
            CodecKind::Pcma => Coder::Pcma,
            CodecKind::G722 => Coder::G722(Box::default()),
            CodecKind::Opus => Coder::Opus(Box::new(
                opus::Decoder::new(48_000, opus::Channels::Mono).map_err(|e| lib_error(kind, e))?,
            )),
        }))
    }

    /// The codec.
    pub fn kind(&self) -> CodecKind {
        self.0.kind()
    }

    /// Decodes a payload, appending the samples to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        match &mut self.0 {
            Coder::Pcmu => out.extend(payload.iter().map(|&c| g711::ulaw_to_linear(c))),
            Coder::Pcma => out.extend(payload.iter().map(|&c| g711::alaw_to_linear(c))),
            Coder::G722(d) => {
                let start = out.len();
                out.resize(start + payload.len() * 2, 0);
                let n = d
                    .decode_into(payload, &mut out[start..])
                    .map_err(|e| lib_error(CodecKind::G722, format!("{e:?}")))?;
                out.truncate(start + n);
            }
            Coder::Opus(d) => {
                let start = out.len();
                out.resize(start + 5760, 0); // 120 ms, the longest Opus frame
                let n = d
                    .decode(payload, &mut out[start..], false)
                    .map_err(|e| lib_error(CodecKind::Opus, e));
                out.truncate(start + n.as_ref().copied().unwrap_or(0));
                n?;
            }
        }
        Ok(())
    }

    /// Appends `samples` of concealment for a lost frame: Opus runs its own loss
    /// concealment; the waveform codecs repeat the last `samples` attenuated by 6 dB (or
    /// play silence when there is nothing to repeat).
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let start = out.len();
        if let Coder::Opus(d) = &mut self.0 {
            out.resize(start + samples, 0);
            let n = d.decode(&[], &mut out[start..], false).unwrap_or(0);
            out.truncate(start + n);
            out.resize(start + samples, 0);
        } else if start >= samples {
            out.extend_from_within(start - samples..start);
            for s in &mut out[start..] {
                *s /= 2;
            }
        } else {
            out.resize(start + samples, 0);
        }
    }
}

impl Encoder {
    /// An encoder for `kind`.
    pub fn new(kind: CodecKind) -> Result<Self, CodecError> {
        Ok(Self(match kind {
            CodecKind::Pcmu => Coder::Pcmu,
            CodecKind::Pcma => Coder::Pcma,
            CodecKind::G722 => Coder::G722(Box::default()),
            CodecKind::Opus => {
                let mut e =
                    opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
                        .map_err(|e| lib_error(kind, e))?;
                // Crest encodes Opus only to transcode from G.711 or G.722: speech at most
                // wideband; complexity 3 skips SILK's delayed-decision quantiser, the
                // encoder's largest cost, for a small loss that the far G.711 leg hides.
                e.set_bitrate(opus::Bitrate::Bits(OPUS_BITRATE as i32))
                    .and_then(|()| e.set_complexity(3))
                    .and_then(|()| e.set_signal(opus::Signal::Voice))
                    .and_then(|()| e.set_max_bandwidth(opus::Bandwidth::Wideband))
                    .and_then(|()| e.set_inband_fec(true))
                    .map_err(|e| lib_error(kind, e))?;
                Coder::Opus(Box::new(e))
            }
        }))
    }

    /// The codec.
    pub fn kind(&self) -> CodecKind {
        self.0.kind()
    }

    /// Encodes one frame of PCM (at the codec's sample rate) into `out` (cleared first).
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.clear();
        match &mut self.0 {
            Coder::Pcmu => g711::encode_ulaw(pcm, out),
            Coder::Pcma => g711::encode_alaw(pcm, out),
            Coder::G722(e) => {
                out.resize(pcm.len() / 2 + 1, 0);
                let n = e
                    .encode_into(pcm, out)
                    .map_err(|e| lib_error(CodecKind::G722, format!("{e:?}")))?;
                out.truncate(n);
            }
            Coder::Opus(e) => {
                out.resize(1500, 0);
                let n = e
                    .encode(pcm, out)
                    .map_err(|e| lib_error(CodecKind::Opus, e))?;
                out.truncate(n);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::goertzel_power;

    fn tone(rate: u32, freq: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// Encodes 1 s of a 1 kHz tone frame by frame, decodes it, and returns the decoded audio.
    fn round_trip(kind: CodecKind) -> Vec<i16> {
        let rate = kind.sample_rate();
        let frame = (rate / 50) as usize;
        let input = tone(rate, 1000.0, rate as usize);
        let mut enc = Encoder::new(kind).unwrap();
        let mut dec = Decoder::new(kind).unwrap();
        let (mut payload, mut out) = (Vec::new(), Vec::new());
        for f in input.chunks(frame) {
            enc.encode(f, &mut payload).unwrap();
            dec.decode(&payload, &mut out).unwrap();
        }
        assert_eq!(out.len(), input.len(), "{kind}: same length out");
        out
    }

    #[test]
    fn every_codec_carries_a_1khz_tone() {
        for kind in CodecKind::ALL {
            let out = round_trip(kind);
            let rate = kind.sample_rate();
            // Skip the codec's start-up; the tone dominates a neighbouring frequency.
            let tail: Vec<f64> = out[out.len() / 2..].iter().map(|&s| f64::from(s)).collect();
            let on = goertzel_power(&tail, 1000.0, rate);
            let off = goertzel_power(&tail, 1700.0, rate);
            assert!(
                on > 1000.0 * off,
                "{kind}: 1 kHz {on:.3e} vs 1.7 kHz {off:.3e}"
            );
        }
    }

    #[test]
    fn frame_sizes_and_bitrates_follow_the_codec() {
        let mut payload = Vec::new();
        for (kind, bytes) in [
            (CodecKind::Pcmu, 160),
            (CodecKind::Pcma, 160),
            (CodecKind::G722, 160),
        ] {
            let mut e = Encoder::new(kind).unwrap();
            e.encode(
                &tone(
                    kind.sample_rate(),
                    440.0,
                    (kind.sample_rate() / 50) as usize,
                ),
                &mut payload,
            )
            .unwrap();
            assert_eq!(payload.len(), bytes, "{kind}");
        }
        let mut e = Encoder::new(CodecKind::Opus).unwrap();
        let mut total = 0;
        for f in tone(48_000, 440.0, 48_000).chunks(960) {
            e.encode(f, &mut payload).unwrap();
            total += payload.len();
        }
        let kbps = total * 8 / 1000;
        assert!((16..=32).contains(&kbps), "opus {kbps} kbit/s");
    }

    #[test]
    fn concealment_fills_a_lost_frame() {
        for kind in CodecKind::ALL {
            let mut dec = Decoder::new(kind).unwrap();
            let mut out = Vec::new();
            dec.conceal(160, &mut out);
            assert_eq!(out.len(), 160, "{kind}: silence before any frame");
        }
        let mut dec = Decoder::new(CodecKind::Pcmu).unwrap();
        let mut out = vec![1000i16; 160];
        dec.conceal(160, &mut out);
        assert_eq!(out[160..], [500; 160], "repeated at half amplitude");
    }

    #[test]
    fn garbage_opus_is_an_error_not_a_panic() {
        let mut dec = Decoder::new(CodecKind::Opus).unwrap();
        let mut out = Vec::new();
        assert!(dec.decode(&[0xFF; 3], &mut out).is_err());
        assert!(out.is_empty());
        let mut g = Decoder::new(CodecKind::G722).unwrap();
        g.decode(&[0x55; 7], &mut out).unwrap();
        assert_eq!(out.len(), 14);
    }
}
