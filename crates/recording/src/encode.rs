//! Audio container encoders: WAV (16-bit PCM, G.711 μ-law or A-law) and Opus in Ogg, mono or
//! stereo, written as a stream (the plaintext the sealer encrypts chunk by chunk).
//!
//! A streamed WAV cannot know its length when its header is written, so the sizes are
//! written as `0xFFFFFFFF` (the streaming convention) and [`finalize_wav`] puts the real ones
//! into the decrypted copy an operator gets.

use std::borrow::Cow;

use crest_media::g711;
use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// The container and coding of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// WAV, 16-bit linear PCM.
    WavPcm,
    /// WAV, G.711 μ-law (8 kHz).
    WavPcmu,
    /// WAV, G.711 A-law (8 kHz).
    WavPcma,
    /// Opus in Ogg (RFC 7845).
    OggOpus,
}

impl Format {
    /// The configuration name: `wav`, `wav-pcmu`, `wav-pcma`, `opus`.
    pub fn name(self) -> &'static str {
        match self {
            Self::WavPcm => "wav",
            Self::WavPcmu => "wav-pcmu",
            Self::WavPcma => "wav-pcma",
            Self::OggOpus => "opus",
        }
    }

    /// The format of a configuration name.
    pub fn from_name(s: &str) -> Option<Self> {
        [Self::WavPcm, Self::WavPcmu, Self::WavPcma, Self::OggOpus]
            .into_iter()
            .find(|f| f.name() == s)
    }

    /// The file extension of a decrypted copy.
    pub fn extension(self) -> &'static str {
        match self {
            Self::OggOpus => "opus",
            _ => "wav",
        }
    }

    /// Whether the format can be written at `rate`.
    pub fn check_rate(self, rate: u32) -> Result<(), EncodeError> {
        let ok = match self {
            Self::WavPcmu | Self::WavPcma => rate == 8000,
            Self::WavPcm | Self::OggOpus => matches!(rate, 8000 | 16000 | 48000),
        };
        if ok {
            Ok(())
        } else {
            Err(EncodeError::Rate {
                format: self.name(),
                rate,
            })
        }
    }

    fn wav_tag(self) -> u16 {
        match self {
            Self::WavPcmu => 7,
            Self::WavPcma => 6,
            _ => 1,
        }
    }

    fn bytes_per_sample(self) -> usize {
        if self == Self::WavPcm { 2 } else { 1 }
    }
}

/// Why an encoder could not be made or could not encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The sample rate does not suit the format.
    #[error(
        "{format} cannot be written at {rate} Hz (G.711: 8000; PCM and Opus: 8000, 16000 or 48000)"
    )]
    Rate {
        /// The format's name.
        format: &'static str,
        /// The rate asked for.
        rate: u32,
    },
    /// libopus refused.
    #[error("opus: {0}")]
    Opus(String),
}

const OPUS_FRAME_MS: u32 = 20;
/// Opus packets per Ogg page: a page every 200 ms.
const PACKETS_PER_PAGE: u32 = 10;

struct OpusState {
    enc: opus::Encoder,
    writer: PacketWriter<'static, Vec<u8>>,
    serial: u32,
    pending: Vec<i16>,
    packet: Vec<u8>,
    /// Granule position (48 kHz samples, pre-skip included).
    granule: u64,
    packets: u32,
}

impl std::fmt::Debug for OpusState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusState")
            .field("granule", &self.granule)
            .finish()
    }
}

/// Encodes interleaved 16-bit samples into a container stream.
#[derive(Debug)]
pub struct Encoder {
    format: Format,
    channels: u16,
    rate: u32,
    opus: Option<Box<OpusState>>,
}

impl Encoder {
    /// An encoder for `channels` (1 or 2) at `rate`; `serial` names the Ogg stream.
    pub fn new(format: Format, channels: u16, rate: u32, serial: u32) -> Result<Self, EncodeError> {
        format.check_rate(rate)?;
        let opus = if format == Format::OggOpus {
            let ch = if channels == 2 {
                opus::Channels::Stereo
            } else {
                opus::Channels::Mono
            };
            let e = |e: opus::Error| EncodeError::Opus(e.to_string());
            let mut enc = opus::Encoder::new(rate, ch, opus::Application::Voip).map_err(e)?;
            enc.set_bitrate(opus::Bitrate::Bits(24_000 * i32::from(channels)))
                .map_err(e)?;
            enc.set_complexity(0).map_err(e)?;
            Some(Box::new(OpusState {
                enc,
                writer: PacketWriter::new(Vec::new()),
                serial,
                pending: Vec::new(),
                packet: vec![0; 4000],
                granule: 0,
                packets: 0,
            }))
        } else {
            None
        };
        Ok(Self {
            format,
            channels,
            rate,
            opus,
        })
    }

    /// Samples per channel in one Opus frame.
    fn frame(&self) -> usize {
        (self.rate * OPUS_FRAME_MS / 1000) as usize
    }

    /// Appends the container's header to `out`.
    pub fn header(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (channels, rate) = (self.channels, self.rate);
        let Some(o) = self.opus.as_mut() else {
            wav_header(self.format, channels, rate, out);
            return Ok(());
        };
        let lookahead = o
            .enc
            .get_lookahead()
            .map_err(|e| EncodeError::Opus(e.to_string()))?;
        let pre_skip = u16::try_from(lookahead as u32 * 48_000 / rate).unwrap_or(u16::MAX);
        let mut head = b"OpusHead".to_vec();
        head.push(1);
        head.push(channels as u8);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&rate.to_le_bytes());
        head.extend_from_slice(&0u16.to_le_bytes());
        head.push(0);
        let mut tags = b"OpusTags".to_vec();
        let vendor = b"crest";
        tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
        tags.extend_from_slice(vendor);
        tags.extend_from_slice(&0u32.to_le_bytes());
        o.granule = u64::from(pre_skip);
        let serial = o.serial;
        // Writes into a Vec cannot fail.
        o.writer
            .write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)
            .expect("write to Vec");
        o.writer
            .write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)
            .expect("write to Vec");
        out.append(o.writer.inner_mut());
        Ok(())
    }

    /// Encodes interleaved samples (`channels` per frame) and appends the bytes to `out`.
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self.format {
            Format::WavPcm => {
                out.reserve(samples.len() * 2);
                for s in samples {
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
            Format::WavPcmu => out.extend(samples.iter().map(|&s| g711::linear_to_ulaw(s))),
            Format::WavPcma => out.extend(samples.iter().map(|&s| g711::linear_to_alaw(s))),
            Format::OggOpus => {
                let step = self.frame() * usize::from(self.channels);
                let scale = u64::from(48_000 / self.rate);
                let per_frame = self.frame() as u64 * scale;
                let Some(o) = self.opus.as_mut() else {
                    return Ok(());
                };
                o.pending.extend_from_slice(samples);
                let mut at = 0;
                while o.pending.len() - at >= step {
                    o.granule += per_frame;
                    o.packets += 1;
                    let end = if o.packets.is_multiple_of(PACKETS_PER_PAGE) {
                        PacketWriteEndInfo::EndPage
                    } else {
                        PacketWriteEndInfo::NormalPacket
                    };
                    o.write(at, step, end)?;
                    at += step;
                }
                o.pending.drain(..at);
                out.append(o.writer.inner_mut());
            }
        }
        Ok(())
    }

    /// Ends the stream: the last Opus samples, padded to a frame, close the Ogg stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let step = self.frame() * usize::from(self.channels);
        let scale = u64::from(48_000 / self.rate.max(1));
        let channels = usize::from(self.channels);
        let Some(o) = self.opus.as_mut() else {
            return Ok(());
        };
        let real = (o.pending.len() / channels) as u64;
        o.pending.resize(step, 0);
        o.granule += real * scale;
        o.write(0, step, PacketWriteEndInfo::EndStream)?;
        o.pending.clear();
        out.append(o.writer.inner_mut());
        Ok(())
    }
}

impl OpusState {
    fn write(
        &mut self,
        at: usize,
        step: usize,
        end: PacketWriteEndInfo,
    ) -> Result<(), EncodeError> {
        let n = self
            .enc
            .encode(&self.pending[at..at + step], &mut self.packet)
            .map_err(|e| EncodeError::Opus(e.to_string()))?;
        let data: Cow<'static, [u8]> = Cow::Owned(self.packet[..n].to_vec());
        // Writes into a Vec cannot fail.
        self.writer
            .write_packet(data, self.serial, end, self.granule)
            .expect("write to Vec");
        Ok(())
    }
}

const WAV_STREAMING: u32 = u32::MAX;

fn wav_header(format: Format, channels: u16, rate: u32, out: &mut Vec<u8>) {
    let bps = format.bytes_per_sample() as u16;
    let block = channels * bps;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&WAV_STREAMING.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    let pcm = format == Format::WavPcm;
    out.extend_from_slice(&(if pcm { 16u32 } else { 18 }).to_le_bytes());
    out.extend_from_slice(&format.wav_tag().to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&(bps * 8).to_le_bytes());
    if !pcm {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"fact");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&WAV_STREAMING.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&WAV_STREAMING.to_le_bytes());
}

/// Where a streamed WAV's `data` chunk starts, its block size and rate.
fn wav_layout(wav: &[u8]) -> Option<(usize, usize, u32)> {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut block = 0;
    let mut rate = 0;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes(wav[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"data" {
            return (block > 0).then_some((at + 8, block, rate));
        }
        if id == b"fmt " && at + 8 + 16 <= wav.len() {
            let f = &wav[at + 8..];
            rate = u32::from_le_bytes(f[4..8].try_into().ok()?);
            block = usize::from(u16::from_le_bytes(f[12..14].try_into().ok()?));
        }
        at += 8 + len + (len & 1);
    }
    None
}

/// Writes the real sizes into a streamed WAV (RIFF, `fact`, `data`).
pub fn finalize_wav(wav: &mut [u8]) {
    let Some((data, block, _)) = wav_layout(wav) else {
        return;
    };
    let total = wav.len();
    let data_len = (total - data) as u32;
    wav[4..8].copy_from_slice(&((total - 8) as u32).to_le_bytes());
    wav[data - 4..data].copy_from_slice(&data_len.to_le_bytes());
    if let Some(p) = wav.windows(4).position(|w| w == b"fact")
        && p + 12 <= data
    {
        let frames = data_len / block as u32;
        wav[p + 8..p + 12].copy_from_slice(&frames.to_le_bytes());
    }
}

/// The length in milliseconds of a recording's plaintext.
pub fn duration_ms(format: Format, plain: &[u8]) -> u64 {
    if format != Format::OggOpus {
        return wav_layout(plain).map_or(0, |(data, block, rate)| {
            ((plain.len() - data) / block) as u64 * 1000 / u64::from(rate.max(1))
        });
    }
    // The granule position of the last page, less the pre-skip of the header.
    let pre_skip = plain
        .windows(8)
        .position(|w| w == b"OpusHead")
        .and_then(|p| plain.get(p + 10..p + 12))
        .map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])));
    let granule = plain
        .windows(4)
        .rposition(|w| w == b"OggS")
        .and_then(|p| plain.get(p + 6..p + 14))
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    granule.saturating_sub(pre_skip) / 48
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, rate: u32) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn wav_pcm_is_bit_exact_and_finalized() {
        let mut e = Encoder::new(Format::WavPcm, 1, 8000, 1).unwrap();
        let mut out = Vec::new();
        e.header(&mut out).unwrap();
        let pcm = tone(8000, 8000);
        e.encode(&pcm, &mut out).unwrap();
        e.finish(&mut out).unwrap();
        assert_eq!(duration_ms(Format::WavPcm, &out), 1000);
        finalize_wav(&mut out);
        let p = crest_media::wav::read(&out).unwrap();
        assert_eq!(p.rate, 8000);
        assert_eq!(&p.pcm[..], &pcm[..]);
    }

    #[test]
    fn g711_wav_has_fact_and_sizes() {
        let mut e = Encoder::new(Format::WavPcmu, 2, 8000, 1).unwrap();
        let mut out = Vec::new();
        e.header(&mut out).unwrap();
        e.encode(&vec![100; 1600], &mut out).unwrap();
        finalize_wav(&mut out);
        let (data, block, rate) = wav_layout(&out).unwrap();
        assert_eq!((block, rate), (2, 8000));
        assert_eq!(out.len() - data, 1600);
        let fact = out.windows(4).position(|w| w == b"fact").unwrap();
        assert_eq!(
            u32::from_le_bytes(out[fact + 8..fact + 12].try_into().unwrap()),
            800
        );
        assert_eq!(duration_ms(Format::WavPcmu, &out), 100);
        assert!(Encoder::new(Format::WavPcma, 1, 16000, 1).is_err());
    }

    #[test]
    fn ogg_opus_stream_reads_back() {
        let mut e = Encoder::new(Format::OggOpus, 2, 16000, 42).unwrap();
        let mut out = Vec::new();
        e.header(&mut out).unwrap();
        let mono = tone(16000, 16000);
        let stereo: Vec<i16> = mono.iter().flat_map(|&s| [s, s / 2]).collect();
        for c in stereo.chunks(640) {
            e.encode(c, &mut out).unwrap();
        }
        e.finish(&mut out).unwrap();
        let mut r = ogg::PacketReader::new(std::io::Cursor::new(&out));
        let mut packets = Vec::new();
        while let Some(p) = r.read_packet().unwrap() {
            packets.push(p);
        }
        assert!(packets[0].data.starts_with(b"OpusHead"));
        assert!(packets[1].data.starts_with(b"OpusTags"));
        assert_eq!(packets.len(), 2 + 50 + 1);
        assert!(packets.last().unwrap().last_in_stream());
        let mut d = opus::Decoder::new(48000, opus::Channels::Stereo).unwrap();
        let mut pcm = vec![0i16; 5760 * 2];
        let n = d.decode(&packets[20].data, &mut pcm, false).unwrap();
        assert_eq!(n, 960);
        assert!(pcm.iter().any(|&s| s.abs() > 1000));
        assert_eq!(duration_ms(Format::OggOpus, &out), 1000);
    }
}
