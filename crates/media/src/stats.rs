//! Reception statistics of one RTP source (RFC 3550 appendix A.1, A.3, A.8): extended
//! sequence numbers across wrap-around, loss, duplicates, reordering, interarrival jitter, and
//! the values of an RTCP reception report block. Sans-IO: arrival instants are inputs.

use std::time::Instant;

use crate::rtp::RtpPacket;

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// What became of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next packet, or one after a gap (the gap counts as loss until it is filled).
    InOrder,
    /// A packet older than the highest seen that fills a gap.
    Late,
    /// Seen before: drop it.
    Duplicate,
    /// A jump too large to be a gap; dropped unless the next packet confirms it (A.1).
    Jump,
    /// The source restarted (new SSRC, or a confirmed jump): statistics start again.
    Restart,
}

/// The values of one RTCP reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptionReport {
    /// The source reported on.
    pub ssrc: u32,
    /// Lost fraction since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed in the report).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
}

/// Statistics of the source an RTP session receives from.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    bad_seq: Option<u16>,
    /// Bit i set: extended sequence (highest − i) was received.
    window: u64,
    received: u64,
    duplicates: u64,
    reordered: u64,
    restarts: u32,
    /// Expected and received packets of the sources before this one (a leg's totals over
    /// SSRC changes and restarts: a phone's DTMF or a second recording on a new SSRC).
    before: (u64, i64),
    expected_prior: u64,
    received_prior: u64,
    epoch: Option<Instant>,
    transit: Option<i32>,
    jitter: f64,
}

impl ReceiveStats {
    /// Statistics for a payload clocked at `clock_rate` Hz (8000 for G.711, 48000 for Opus).
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate,
            ssrc: None,
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            bad_seq: None,
            window: 0,
            received: 0,
            duplicates: 0,
            reordered: 0,
            restarts: 0,
            before: (0, 0),
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            transit: None,
            jitter: 0.0,
        }
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        let (clock, restarts) = (
            self.clock_rate,
            self.restarts + u32::from(self.ssrc.is_some()),
        );
        let before = (self.before.0 + self.expected(), self.before.1 + self.lost());
        *self = Self::new(clock);
        self.restarts = restarts;
        self.before = before;
        self.ssrc = Some(ssrc);
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.window = 1;
        self.received = 1;
    }

    /// Accounts for one packet arriving at `now`.
    pub fn handle_packet(&mut self, now: Instant, p: &RtpPacket<'_>) -> Arrival {
        let verdict = self.sequence(p);
        if matches!(verdict, Arrival::InOrder | Arrival::Late | Arrival::Restart) {
            self.update_jitter(now, p.timestamp);
        }
        verdict
    }

    fn sequence(&mut self, p: &RtpPacket<'_>) -> Arrival {
        let seq = p.sequence;
        if self.ssrc != Some(p.ssrc) {
            self.restart(p.ssrc, seq);
            return Arrival::Restart;
        }
        let ahead = seq.wrapping_sub(self.max_seq);
        if ahead == 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        if ahead < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
            self.window = if ahead >= 64 {
                1
            } else {
                (self.window << ahead) | 1
            };
            self.received += 1;
            self.bad_seq = None;
            return Arrival::InOrder;
        }
        if ahead <= u16::MAX - MAX_MISORDER {
            // A very large jump: the sender restarted, or a stray packet. Believe it when the
            // next packet follows it (A.1).
            if self.bad_seq == Some(seq) {
                self.restart(p.ssrc, seq);
                return Arrival::Restart;
            }
            self.bad_seq = Some(seq.wrapping_add(1));
            return Arrival::Jump;
        }
        // Older than the highest: late or a duplicate.
        let behind = u32::from(self.max_seq.wrapping_sub(seq));
        if behind < 64 {
            let bit = 1u64 << behind;
            if self.window & bit != 0 {
                self.duplicates += 1;
                return Arrival::Duplicate;
            }
            self.window |= bit;
        }
        self.received += 1;
        self.reordered += 1;
        Arrival::Late
    }

    fn update_jitter(&mut self, now: Instant, rtp_ts: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = (now.saturating_duration_since(epoch).as_secs_f64()
            * f64::from(self.clock_rate)) as u64 as u32;
        let transit = arrival.wrapping_sub(rtp_ts) as i32;
        if let Some(prev) = self.transit {
            let d = f64::from(transit.wrapping_sub(prev).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }

    /// The extended highest sequence number.
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles + u32::from(self.max_seq)
    }

    /// Packets expected since the start.
    pub fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        u64::from(self.extended_highest_seq() - self.base_seq) + 1
    }

    /// Packets lost since the start (expected minus received, duplicates not counted).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Duplicates dropped.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Packets that arrived after a later one.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Packets expected from every source so far (the current one and those before a
    /// restart): the leg's figure for the call's record.
    pub fn total_expected(&self) -> u64 {
        self.before.0 + self.expected()
    }

    /// Packets lost from every source so far.
    pub fn total_lost(&self) -> i64 {
        self.before.1 + self.lost()
    }

    /// Times the source restarted (SSRC change or confirmed jump).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }

    /// A reception report block; the interval for `fraction_lost` starts again (A.3).
    pub fn report(&mut self) -> Option<ReceptionReport> {
        let ssrc = self.ssrc?;
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        Some(ReceptionReport {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pkt(seq: u16, ts: u32, ssrc: u32) -> RtpPacket<'static> {
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: ts,
            ssrc,
            payload: &[],
        }
    }

    /// Feeds sequence numbers at 20 ms spacing with matching timestamps.
    fn feed(s: &mut ReceiveStats, t0: Instant, seqs: &[u16]) -> Vec<Arrival> {
        seqs.iter()
            .map(|&q| {
                let n = u32::from(q.wrapping_sub(seqs[0]));
                s.handle_packet(
                    t0 + Duration::from_millis(20 * u64::from(n)),
                    &pkt(q, 160 * n, 7),
                )
            })
            .collect()
    }

    #[test]
    fn sequence_wrap_extends_and_counts_nothing_lost() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        let seqs: Vec<u16> = (65530..=65535).chain(0..=5).collect();
        feed(&mut s, t0, &seqs);
        assert_eq!(s.extended_highest_seq(), 65536 + 5);
        assert_eq!((s.expected(), s.lost()), (12, 0));
        assert_eq!(s.jitter_ms(), 0.0, "perfect pacing");
    }

    #[test]
    fn loss_reordering_duplicates_and_fraction_lost() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        let v = feed(&mut s, t0, &[1, 2, 4, 3, 3, 5, 8, 9, 10]);
        assert_eq!(v[3], Arrival::Late);
        assert_eq!(v[4], Arrival::Duplicate);
        assert_eq!(
            (s.expected(), s.lost(), s.duplicates(), s.reordered()),
            (10, 2, 1, 1)
        );
        let r = s.report().unwrap();
        assert_eq!(
            (r.fraction_lost, r.cumulative_lost, r.extended_highest_seq),
            (51, 2, 10)
        ); // 2/10·256
        feed(&mut s, t0, &[11, 12, 13, 14]);
        assert_eq!(
            s.report().unwrap().fraction_lost,
            0,
            "no loss in the second interval"
        );
    }

    #[test]
    fn ssrc_switch_and_confirmed_jump_restart() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, t0, &[100, 101, 102]);
        assert_eq!(s.handle_packet(t0, &pkt(9000, 0, 99)), Arrival::Restart);
        assert_eq!((s.expected(), s.lost(), s.restarts()), (1, 0, 1));
        assert_eq!(s.handle_packet(t0, &pkt(40000, 0, 99)), Arrival::Jump);
        assert_eq!(s.handle_packet(t0, &pkt(40001, 160, 99)), Arrival::Restart);
        assert_eq!((s.expected(), s.lost(), s.restarts()), (1, 0, 2));
        // The leg's totals keep the sources before: 3 + 1 + 1 packets, none lost.
        assert_eq!((s.total_expected(), s.total_lost()), (5, 0));
    }

    #[test]
    fn jitter_follows_alternating_delay_across_timestamp_wrap() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(8000);
        let ts0 = u32::MAX - 160 * 50; // wraps half way
        for n in 0..400u32 {
            let delay = if n % 2 == 0 { 0 } else { 10 };
            let at = t0 + Duration::from_millis(20 * u64::from(n) + delay);
            s.handle_packet(at, &pkt(n as u16, ts0.wrapping_add(160 * n), 1));
        }
        // |D| is 10 ms every packet, so the estimate converges to 10 ms.
        assert!(
            (s.jitter_ms() - 10.0).abs() < 0.5,
            "jitter {} ms",
            s.jitter_ms()
        );
        assert_eq!(s.lost(), 0);
    }
}
