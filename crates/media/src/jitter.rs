//! An adaptive jitter buffer, sans-IO: packets go in with their arrival instant, and the
//! playout clock takes one frame out every packet time. Reordered packets are put back in
//! order, duplicates and packets too late to play are dropped, a missing frame is reported as
//! [`Playout::Conceal`] so the decoder can run its loss concealment, and the playout delay
//! follows the measured jitter between `min_delay` and `max_delay`.
//!
//! ```text
//!  push(now, packet) ──► [ seq-ordered frames ] ──► pop(now) every ptime ──► Frame | Conceal | Waiting
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::rtp::RtpPacket;

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Buffered for playout.
    Buffered,
    /// Its frame was already played or concealed: dropped.
    TooLate,
    /// Already buffered: dropped.
    Duplicate,
    /// A new source (SSRC change): the buffer was flushed and starts again with this packet.
    Reset,
}

/// What the playout clock gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Still filling up to the playout delay (or nothing received yet): play silence.
    Waiting,
    /// The next frame's payload.
    Frame(Vec<u8>),
    /// The next frame is missing: conceal it (PLC).
    Conceal,
}

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Packet time (20 ms for G.711 and Opus by default).
    pub ptime: Duration,
    /// The smallest playout delay.
    pub min_delay: Duration,
    /// The largest playout delay; frames beyond it are dropped to catch up.
    pub max_delay: Duration,
    /// The RTP clock rate of the payload (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            ptime: Duration::from_millis(20),
            min_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(200),
            clock_rate: 8000,
        }
    }
}

/// Counters for quality reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames played.
    pub played: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Packets dropped as too late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Frames dropped to shrink the delay.
    pub dropped_for_delay: u64,
    /// Concealment frames inserted to grow the delay.
    pub stretched: u64,
}

/// The buffer of one incoming stream.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    ssrc: Option<u32>,
    frames: BTreeMap<u64, Vec<u8>>,
    /// Extended sequence number of the next frame to play.
    next: Option<u64>,
    highest: u64,
    /// Playout starts when this instant is reached.
    start_at: Option<Instant>,
    /// Arrival instant and RTP timestamp of the previous packet.
    last_arrival: Option<(Instant, u32)>,
    /// Interarrival jitter (RFC 3550 §6.4.1: smoothed |transit difference|), seconds.
    jitter: f64,
    /// Ticks until the delay may grow again by one inserted frame.
    stretch_cooldown: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        Self {
            cfg,
            ssrc: None,
            frames: BTreeMap::new(),
            next: None,
            highest: 0,
            start_at: None,
            last_arrival: None,
            jitter: 0.0,
            stretch_cooldown: 0,
            stats: JitterStats::default(),
        }
    }

    /// The packets turned out to last `ptime` (the playout clock follows them): the delay
    /// targets are counted in frames of that length from now on.
    pub fn set_ptime(&mut self, ptime: Duration) {
        self.cfg.ptime = ptime;
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The playout delay the buffer aims for now.
    pub fn target_delay(&self) -> Duration {
        let j = Duration::from_secs_f64(self.jitter * 3.0);
        (self.cfg.ptime + j).clamp(self.cfg.min_delay, self.cfg.max_delay)
    }

    fn extend(&self, seq: u16) -> u64 {
        // The extended number closest to the highest seen.
        let base = self.highest & !0xFFFF;
        let candidates = [base.wrapping_sub(0x1_0000), base, base + 0x1_0000];
        candidates
            .into_iter()
            .map(|b| b + u64::from(seq))
            .min_by_key(|c| c.abs_diff(self.highest))
            .unwrap_or(u64::from(seq))
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, p: &RtpPacket<'_>) -> Push {
        let mut verdict = Push::Buffered;
        if self.ssrc != Some(p.ssrc) {
            if self.ssrc.is_some() {
                verdict = Push::Reset;
            }
            let (cfg, stats) = (self.cfg, self.stats);
            *self = Self::new(cfg);
            self.stats = stats;
            self.ssrc = Some(p.ssrc);
            self.highest = 0x1_0000 + u64::from(p.sequence); // room below for wrap-back
            self.next = Some(self.highest);
            self.start_at = Some(now + self.target_delay());
        }
        if let Some((at, ts)) = self.last_arrival {
            // D = (Rj − Ri) − (Sj − Si): arrival spacing against media-time spacing.
            let arrival = if now >= at {
                now.duration_since(at).as_secs_f64()
            } else {
                -at.duration_since(now).as_secs_f64()
            };
            let media =
                f64::from(p.timestamp.wrapping_sub(ts) as i32) / f64::from(self.cfg.clock_rate);
            let d = (arrival - media).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_arrival = Some((now, p.timestamp));
        let ext = self.extend(p.sequence);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return Push::TooLate;
        }
        if self.frames.contains_key(&ext) {
            self.stats.duplicates += 1;
            return Push::Duplicate;
        }
        self.highest = self.highest.max(ext);
        self.frames.insert(ext, p.payload.to_vec());
        verdict
    }

    /// The frame for the playout tick at `now` (call once per `ptime`).
    pub fn pop(&mut self, now: Instant) -> Playout {
        match self.start_at {
            Some(at) if now >= at => {}
            _ => return Playout::Waiting,
        }
        let Some(next) = self.next else {
            return Playout::Waiting;
        };
        // Too much buffered (the delay grew past the target after a burst): drop the oldest
        // frames to catch up, at most one per tick so that the skip is not heard as a gap.
        let buffered = self.highest.saturating_sub(next) + 1;
        let target_frames =
            (self.target_delay().as_secs_f64() / self.cfg.ptime.as_secs_f64()).ceil() as u64;
        let max_frames = (self.cfg.max_delay.as_secs_f64() / self.cfg.ptime.as_secs_f64()) as u64;
        // Too little buffered for the jitter seen: insert one concealment frame (grows the
        // delay by a frame), at most every fifth tick so that it is not heard.
        self.stretch_cooldown = self.stretch_cooldown.saturating_sub(1);
        if buffered < target_frames && self.stretch_cooldown == 0 {
            self.stretch_cooldown = 5;
            self.stats.stretched += 1;
            return Playout::Conceal;
        }
        let mut next = next;
        if buffered > max_frames.max(target_frames + 2) && self.frames.contains_key(&(next + 1)) {
            self.frames.remove(&next);
            self.stats.dropped_for_delay += 1;
            next += 1;
        }
        self.next = Some(next + 1);
        match self.frames.remove(&next) {
            Some(payload) => {
                self.stats.played += 1;
                Playout::Frame(payload)
            }
            None => {
                self.stats.concealed += 1;
                Playout::Conceal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u16, timestamp: u32, ssrc: u32) -> RtpPacket<'static> {
        // The payload names the packet, so the playout order can be checked.
        static PAYLOADS: std::sync::OnceLock<Vec<[u8; 2]>> = std::sync::OnceLock::new();
        let p = PAYLOADS.get_or_init(|| (0..=u16::MAX).map(u16::to_be_bytes).collect());
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp,
            ssrc,
            payload: &p[usize::from(seq)],
        }
    }

    /// Runs a stream in virtual time: `arrivals` (seq, arrival ms), pops every 20 ms for
    /// `ms`; returns the sequence numbers played (None for concealed), Waiting skipped.
    fn run(
        arrivals: &[(u16, u64)],
        ssrc_of: impl Fn(u16) -> u32,
        ms: u64,
    ) -> (Vec<Option<u16>>, JitterBuffer) {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut out = Vec::new();
        let mut events: Vec<(u64, Option<u16>)> =
            arrivals.iter().map(|&(s, t)| (t, Some(s))).collect();
        events.extend((0..ms / 20).map(|k| (k * 20, None)));
        events.sort_by_key(|&(t, e)| (t, e.is_none())); // arrivals before the tick at the same ms
        for (t, e) in events {
            let now = t0 + Duration::from_millis(t);
            match e {
                Some(seq) => {
                    // Media time follows the sequence (and wraps with it at 2^32, not 2^16).
                    let ts = 160 * u32::from(seq.wrapping_sub(arrivals[0].0));
                    jb.push(now, &pkt(seq, ts, ssrc_of(seq)));
                }
                None => match jb.pop(now) {
                    Playout::Waiting => {}
                    Playout::Frame(p) => out.push(Some(u16::from_be_bytes([p[0], p[1]]))),
                    Playout::Conceal => out.push(None),
                },
            }
        }
        (out, jb)
    }

    #[test]
    fn steady_stream_plays_in_order_after_the_delay() {
        let arrivals: Vec<_> = (0..50u16).map(|s| (s, u64::from(s) * 20)).collect();
        let (out, jb) = run(&arrivals, |_| 1, 1000);
        assert_eq!(out[..45], (0..45).map(Some).collect::<Vec<_>>());
        assert_eq!(jb.stats().concealed, 0);
    }

    #[test]
    fn reordering_and_duplicates_are_repaired() {
        let mut arrivals: Vec<_> = (0..50u16).map(|s| (s, u64::from(s) * 20)).collect();
        arrivals.swap(10, 11);
        arrivals[10].1 = 200; // 11 before 10, both in time
        arrivals[11].1 = 205;
        arrivals.push((20, 410)); // a duplicate
        let (out, jb) = run(&arrivals, |_| 1, 1000);
        assert_eq!(out[..45], (0..45).map(Some).collect::<Vec<_>>());
        assert_eq!(jb.stats().duplicates, 1);
    }

    #[test]
    fn lost_packets_are_concealed_and_late_ones_dropped() {
        let mut arrivals: Vec<_> = (0..50u16)
            .filter(|s| s % 10 != 5)
            .map(|s| (s, u64::from(s) * 20))
            .collect();
        arrivals.push((15, 15 * 20 + 300)); // far too late
        // Stop before the stream ends, so that no underrun concealment follows the last frame.
        let (out, jb) = run(&arrivals, |_| 1, 900);
        let played: Vec<u16> = out.iter().flatten().copied().collect();
        let expected: Vec<u16> = (0..40).filter(|s| s % 10 != 5).collect();
        assert_eq!(played[..expected.len()], expected[..]);
        assert_eq!(jb.stats().concealed, 4, "5, 15, 25, 35 concealed");
        assert_eq!(jb.stats().late, 1);
    }

    #[test]
    fn sequence_wrap_and_ssrc_switch() {
        let seqs: Vec<u16> = (65520..=65535).chain(0..20).collect();
        let arrivals: Vec<_> = seqs
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i as u64 * 20))
            .collect();
        let (out, _) = run(&arrivals, |_| 1, 700);
        let played: Vec<u16> = out.iter().flatten().copied().collect();
        assert_eq!(played[..30], seqs[..30]);
        // A new SSRC half way: the buffer restarts and plays the new stream.
        let arrivals: Vec<_> = (0..60u16)
            .map(|s| (if s < 30 { s } else { s + 5000 }, u64::from(s) * 20))
            .collect();
        let (out, jb) = run(&arrivals, |s| if s < 5000 { 1 } else { 2 }, 1300);
        let played: Vec<u16> = out.iter().flatten().copied().collect();
        // Frames of the old source still buffered at the switch are flushed (at most the
        // playout delay); the new source plays from its first packet.
        assert!(
            played.contains(&27) && played.contains(&5030) && played.contains(&5050),
            "{played:?}"
        );
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn delay_adapts_to_jitter_so_that_few_packets_are_late() {
        // Deterministic pseudo-random network delay 0..80 ms per packet (a bad Wi-Fi caller).
        let mut x: u64 = 42;
        let arrivals: Vec<_> = (0..1500u16)
            .map(|s| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s, u64::from(s) * 20 + (x >> 33) % 80)
            })
            .collect();
        let (_, jb) = run(&arrivals, |_| 1, 31_000);
        let st = jb.stats();
        assert!(
            jb.target_delay() > Duration::from_millis(60),
            "target {:?}",
            jb.target_delay()
        );
        assert!(st.late * 100 < 1500 * 3, "late {} of 1500", st.late);
        assert!(st.played > 1400, "{st:?}");
    }
}
