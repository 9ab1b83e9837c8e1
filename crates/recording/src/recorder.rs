//! The recorder of one call (sans-IO): decoded frames of both legs in, sealed bytes out.
//!
//! ```text
//!  handle_audio(now, side, rate, pcm) ─► resample ─► align A|B ─► encoder ─► plaintext
//!  pause / resume (PCI) ─► silence + a mark                          │ chunk full, or interval
//!  poll_write() ◄── header, sealed chunks (each a durable point) ◄── Sealer
//! ```
//!
//! Legs are aligned by their samples: each leg's audio waits until the other leg's arrives,
//! and a leg that stays silent for longer than [`MAX_SKEW_MS`] (held, or a one-way call) is
//! filled with silence, so caller and agent stay in step in a stereo file.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crest_media::bridge::Side;
use crest_media::resample::Resampler;

use crate::encode::{EncodeError, Encoder, Format};
use crate::keys::{DataKey, KeyError};
use crate::seal::Sealer;
use crate::{Layout, RecordingId};

/// How far one leg may run ahead of the other before the other is filled with silence.
pub const MAX_SKEW_MS: u32 = 200;

/// A recorder's settings.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Container and coding.
    pub format: Format,
    /// Stereo (caller left, agent right) or mixed mono.
    pub layout: Layout,
    /// Sample rate of the file.
    pub rate: u32,
    /// Seal a chunk when this much plaintext waits.
    pub chunk_bytes: usize,
    /// Seal a chunk at least this often while audio flows (the most a crash can lose).
    pub chunk_interval: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            format: Format::WavPcm,
            layout: Layout::Stereo,
            rate: 8000,
            chunk_bytes: 64 * 1024,
            chunk_interval: Duration::from_secs(1),
        }
    }
}

/// A stretch of the recording replaced by silence (PCI pause), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Where it starts, milliseconds from the start of the recording.
    pub offset_ms: u64,
    /// How long it lasts.
    pub duration_ms: u64,
    /// Why (e.g. "card number").
    pub reason: String,
}

/// Why a recorder could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The format and rate do not fit.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// No random nonce base.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Length of the audio.
    pub duration_ms: u64,
    /// Chunks sealed.
    pub chunks: u64,
    /// Bytes of the sealed file.
    pub bytes: u64,
    /// PCI pauses.
    pub marks: Vec<Mark>,
}

/// Records one call.
#[derive(Debug)]
pub struct Recorder {
    cfg: RecorderConfig,
    sealer: Sealer,
    encoder: Encoder,
    queues: [VecDeque<i16>; 2],
    resamplers: [Option<(u32, Resampler)>; 2],
    plain: Vec<u8>,
    sealed: Vec<u8>,
    mix: Vec<i16>,
    /// Frames (samples per channel) handed to the encoder.
    frames: u64,
    last_seal: Instant,
    paused: Option<(u64, String)>,
    marks: Vec<Mark>,
    bytes: u64,
    finished: bool,
}

fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl Recorder {
    /// A recorder for recording `id` sealed under `dk`; the file's header is the first write.
    pub fn new(
        now: Instant,
        id: &RecordingId,
        dk: &DataKey,
        cfg: RecorderConfig,
    ) -> Result<Self, RecorderError> {
        let channels = match cfg.layout {
            Layout::Stereo => 2,
            Layout::Mono => 1,
        };
        let serial = u32::from_be_bytes([
            id.as_bytes()[0],
            id.as_bytes()[1],
            id.as_bytes()[2],
            id.as_bytes()[3],
        ]);
        let mut encoder = Encoder::new(cfg.format, channels, cfg.rate, serial)?;
        let sealer = Sealer::new(id, dk)?;
        let mut plain = Vec::with_capacity(cfg.chunk_bytes + 4096);
        encoder.header(&mut plain)?;
        let sealed = sealer.header().to_vec();
        Ok(Self {
            cfg,
            sealer,
            encoder,
            queues: [VecDeque::new(), VecDeque::new()],
            resamplers: [None, None],
            plain,
            sealed,
            mix: Vec::new(),
            frames: 0,
            last_seal: now,
            paused: None,
            marks: Vec::new(),
            bytes: 0,
            finished: false,
        })
    }

    /// One decoded frame of `side` at `rate`.
    pub fn handle_audio(&mut self, now: Instant, side: Side, rate: u32, pcm: &[i16]) {
        if self.finished {
            return;
        }
        let i = index(side);
        let q = &mut self.queues[i];
        let start = q.len();
        if rate == self.cfg.rate {
            q.extend(pcm);
        } else {
            let r = match &mut self.resamplers[i] {
                Some((from, r)) if *from == rate => r,
                slot => {
                    let Ok(r) = Resampler::new(rate, self.cfg.rate) else {
                        return;
                    };
                    &mut slot.insert((rate, r)).1
                }
            };
            let mut out = Vec::with_capacity(pcm.len() * self.cfg.rate as usize / rate as usize);
            r.process(pcm, &mut out);
            q.extend(out);
        }
        if self.paused.is_some() {
            // PCI: what was said meanwhile is never kept, only its length.
            q.range_mut(start..).for_each(|s| *s = 0);
        }
        self.drain(false);
        if self.plain.len() >= self.cfg.chunk_bytes {
            self.seal(now, false);
        }
    }

    /// Replaces the audio with silence from now until [`resume`](Self::resume).
    pub fn pause(&mut self, reason: &str) {
        if self.paused.is_none() && !self.finished {
            self.paused = Some((self.position(), reason.to_owned()));
        }
    }

    /// Ends a pause; the silent stretch is kept as a [`Mark`].
    pub fn resume(&mut self) {
        if let Some((start, reason)) = self.paused.take() {
            let end = self.position();
            let ms = |f: u64| f * 1000 / u64::from(self.cfg.rate);
            self.marks.push(Mark {
                offset_ms: ms(start),
                duration_ms: ms(end - start),
                reason,
            });
        }
    }

    /// Whether a pause is in force.
    pub fn paused(&self) -> bool {
        self.paused.is_some()
    }

    /// The recording's position in frames: what was encoded and what waits.
    fn position(&self) -> u64 {
        self.frames + self.queues.iter().map(VecDeque::len).max().unwrap_or(0) as u64
    }

    /// Encodes the frames both legs have (or all of them, `flush`).
    fn drain(&mut self, flush: bool) {
        let skew = (self.cfg.rate * MAX_SKEW_MS / 1000) as usize;
        let [a, b] = &mut self.queues;
        let (long, short) = if a.len() >= b.len() {
            (&*a, &mut *b)
        } else {
            (&*b, &mut *a)
        };
        let behind = long.len() - short.len();
        let fill = if flush {
            behind
        } else {
            behind.saturating_sub(skew)
        };
        short.extend(std::iter::repeat_n(0, fill));
        let n = a.len().min(b.len());
        if n == 0 {
            return;
        }
        self.mix.clear();
        match self.cfg.layout {
            Layout::Stereo => {
                self.mix
                    .extend(a.drain(..n).zip(b.drain(..n)).flat_map(|(l, r)| [l, r]));
            }
            Layout::Mono => {
                self.mix.extend(
                    a.drain(..n)
                        .zip(b.drain(..n))
                        .map(|(l, r)| l.saturating_add(r)),
                );
            }
        }
        // The format and rate were accepted when the encoder was made.
        if self.encoder.encode(&self.mix, &mut self.plain).is_ok() {
            self.frames += n as u64;
        }
    }

    fn seal(&mut self, now: Instant, last: bool) {
        self.sealer.seal(&self.plain, last, &mut self.sealed);
        self.plain.clear();
        self.last_seal = now;
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.finished).then(|| self.last_seal + self.cfg.chunk_interval)
    }

    /// Seals what waits once the chunk interval has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.finished
            && now >= self.last_seal + self.cfg.chunk_interval
            && !self.plain.is_empty()
        {
            self.seal(now, false);
        }
    }

    /// Bytes to append to the file; each batch ends at a chunk boundary, so it is a point to
    /// sync the file at.
    pub fn poll_write(&mut self) -> Option<Vec<u8>> {
        if self.sealed.is_empty() {
            return None;
        }
        self.bytes += self.sealed.len() as u64;
        Some(std::mem::take(&mut self.sealed))
    }

    /// Ends the recording: what waits is encoded and sealed as the final chunk. Returns the
    /// summary once; take the last bytes with [`poll_write`](Self::poll_write).
    pub fn finish(&mut self, now: Instant) -> Summary {
        if !self.finished {
            self.resume();
            self.drain(true);
            // The encoder's format was accepted at start; finishing only writes.
            let _ = self.encoder.finish(&mut self.plain);
            self.seal(now, true);
            self.finished = true;
        }
        Summary {
            duration_ms: self.frames * 1000 / u64::from(self.cfg.rate),
            chunks: self.sealer.chunks(),
            bytes: self.bytes + self.sealed.len() as u64,
            marks: self.marks.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::open;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    fn run(cfg: RecorderConfig, frames: &[(Side, u32, Vec<i16>)]) -> (Vec<u8>, Summary, u64) {
        let t0 = Instant::now();
        let id = RecordingId::from_bytes([3; 16]);
        let dk = DataKey::generate().unwrap();
        let mut r = Recorder::new(t0, &id, &dk, cfg).unwrap();
        let mut file = Vec::new();
        let mut writes = 0;
        for (i, (side, rate, pcm)) in frames.iter().enumerate() {
            let now = ms(t0, i as u64 * 10);
            r.handle_timeout(now);
            r.handle_audio(now, *side, *rate, pcm);
            while let Some(w) = r.poll_write() {
                file.extend_from_slice(&w);
                writes += 1;
            }
        }
        let s = r.finish(ms(t0, frames.len() as u64 * 10));
        file.extend_from_slice(&r.poll_write().unwrap());
        let plain = open(&file, &id, &dk).unwrap().complete().unwrap();
        assert_eq!(s.bytes, file.len() as u64);
        (plain, s, writes)
    }

    fn samples(plain: &[u8]) -> Vec<i16> {
        let mut w = plain.to_vec();
        crate::encode::finalize_wav(&mut w);
        let data = w.windows(4).position(|x| x == b"data").unwrap() + 8;
        w[data..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn stereo_keeps_caller_left_and_agent_right_bit_exact() {
        let mut frames = Vec::new();
        for k in 0..100i16 {
            frames.push((Side::A, 8000, vec![k; 160]));
            frames.push((Side::B, 8000, vec![-k; 160]));
        }
        let (plain, s, writes) = run(RecorderConfig::default(), &frames);
        assert_eq!(s.duration_ms, 2000);
        let pcm = samples(&plain);
        assert_eq!(pcm.len(), 2 * 16_000);
        for (f, pair) in pcm.chunks(2).enumerate() {
            let k = (f / 160) as i16;
            assert_eq!(pair, [k, -k], "frame {f}");
        }
        // One chunk a second of audio (a 2 s call spans a 1 s interval, then the final).
        assert!(s.chunks >= 2, "{s:?}");
        assert!(writes >= 2);
    }

    #[test]
    fn a_silent_leg_is_filled_and_mono_mixes() {
        // Only the caller talks for a second (the agent is on hold).
        let frames: Vec<_> = (0..50).map(|_| (Side::A, 8000, vec![1000; 160])).collect();
        let (plain, s, _) = run(RecorderConfig::default(), &frames);
        assert_eq!(s.duration_ms, 1000);
        let pcm = samples(&plain);
        assert!(pcm.chunks(2).all(|p| p == [1000, 0]));
        let mut frames = Vec::new();
        for _ in 0..50 {
            frames.push((Side::A, 8000, vec![1000; 160]));
            frames.push((Side::B, 8000, vec![500; 160]));
        }
        let cfg = RecorderConfig {
            layout: Layout::Mono,
            ..RecorderConfig::default()
        };
        let (plain, _, _) = run(cfg, &frames);
        assert!(samples(&plain).iter().all(|&s| s == 1500));
    }

    #[test]
    fn legs_at_other_rates_are_resampled() {
        let mut frames = Vec::new();
        for _ in 0..50 {
            frames.push((Side::A, 8000, vec![0; 160]));
            frames.push((Side::B, 48000, vec![0; 960]));
        }
        let cfg = RecorderConfig {
            rate: 16000,
            ..RecorderConfig::default()
        };
        let (plain, s, _) = run(cfg, &frames);
        assert_eq!(s.duration_ms, 1000);
        assert_eq!(samples(&plain).len(), 2 * 16000);
    }

    #[test]
    fn pci_pause_keeps_marked_silence_never_the_audio() {
        let t0 = Instant::now();
        let id = RecordingId::from_bytes([4; 16]);
        let dk = DataKey::generate().unwrap();
        let mut r = Recorder::new(t0, &id, &dk, RecorderConfig::default()).unwrap();
        let mut file = Vec::new();
        for k in 0..150u64 {
            let now = ms(t0, k * 20);
            if k == 50 {
                r.pause("card number");
            }
            if k == 100 {
                r.resume();
            }
            r.handle_audio(now, Side::A, 8000, &[7777; 160]);
            r.handle_audio(now, Side::B, 8000, &[-7777; 160]);
            r.handle_timeout(now);
            while let Some(w) = r.poll_write() {
                file.extend_from_slice(&w);
            }
        }
        let s = r.finish(ms(t0, 3000));
        file.extend_from_slice(&r.poll_write().unwrap());
        assert_eq!(
            s.marks,
            [Mark {
                offset_ms: 1000,
                duration_ms: 1000,
                reason: "card number".into()
            }]
        );
        let pcm = samples(&open(&file, &id, &dk).unwrap().complete().unwrap());
        assert_eq!(pcm.len(), 2 * 24_000);
        let (before, rest) = pcm.split_at(2 * 8000);
        let (gap, after) = rest.split_at(2 * 8000);
        assert!(before.iter().all(|s| s.abs() == 7777));
        assert!(gap.iter().all(|&s| s == 0));
        assert!(after.iter().all(|s| s.abs() == 7777));
        // Not one sample of the paused audio is in the sealed file's plaintext.
        assert!(!file.is_empty());
    }

    #[test]
    fn opus_recording_opens() {
        let mut frames = Vec::new();
        for _ in 0..100 {
            frames.push((Side::A, 8000, vec![3000; 160]));
            frames.push((Side::B, 8000, vec![-3000; 160]));
        }
        let cfg = RecorderConfig {
            format: Format::OggOpus,
            rate: 16000,
            ..RecorderConfig::default()
        };
        let (plain, s, _) = run(cfg, &frames);
        assert!(plain.starts_with(b"OggS"));
        assert_eq!(s.duration_ms, 2000);
        assert_eq!(crate::encode::duration_ms(Format::OggOpus, &plain), 2000);
    }
}
