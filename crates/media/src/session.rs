//! One leg's RTP/RTCP session, sans-IO: symmetric RTP (send to where the peer's packets come
//! from, so callers behind NAT work), reception statistics, RTCP reports on a timer, and the
//! media timeout that ends a call whose peer went silent.
//!
//! ```text
//!   handle_rtp(now, from, bytes) ──► Event::Media(payload…) / latch
//!   handle_rtcp(now, from, bytes) ──► round-trip time
//!   poll_timeout() / handle_timeout(now) ──► Transmit(RTCP) / Event::MediaTimeout
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::rtcp::{self, Report, ReportBlock, SenderInfo};
use crate::rtp::RtpPacket;
use crate::stats::{Arrival, ReceiveStats};

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Crest's SSRC on this leg.
    pub ssrc: u32,
    /// The RTP clock rate of the negotiated codec.
    pub clock_rate: u32,
    /// Where SDP said the peer receives; replaced by the source of its first packet.
    pub remote: SocketAddr,
    /// Interval between RTCP reports (RFC 3550 recommends 5 s).
    pub rtcp_interval: Duration,
    /// No RTP for this long ends the leg (0: never).
    pub media_timeout: Duration,
    /// CNAME for SDES.
    pub cname: String,
}

/// What the session reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer's packets come from a new address; RTP and RTCP now go there.
    Latched(SocketAddr),
    /// No RTP for the configured time: end the call, with this reason logged.
    MediaTimeout(Duration),
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination (the RTCP port is the RTP port + 1).
    pub to: SocketAddr,
    /// Whether it goes out of the RTCP socket.
    pub rtcp: bool,
    /// The datagram.
    pub data: Vec<u8>,
}

/// The RTP/RTCP state of one leg.
#[derive(Debug)]
pub struct RtpSession {
    cfg: SessionConfig,
    remote: SocketAddr,
    latched: bool,
    stats: ReceiveStats,
    last_rtp: Option<Instant>,
    started: Instant,
    next_rtcp: Instant,
    /// Draws the RTCP intervals (xorshift32, seeded from the SSRC).
    rng: u32,
    timed_out: bool,
    /// Last SR from the peer: its NTP middle bits and when it arrived.
    last_sr: Option<(u32, Instant)>,
    rtt: Option<f64>,
    sent_packets: u32,
    sent_octets: u32,
    last_sent_ts: u32,
    events: VecDeque<Event>,
    out: VecDeque<Transmit>,
}

/// NTP time (64-bit fixed point) of an instant, relative to the session start plus 1 s so that
/// it is never zero (the session does not know wall-clock time; RTT needs only differences).
fn ntp(started: Instant, now: Instant) -> u64 {
    let d = now.saturating_duration_since(started) + Duration::from_secs(1);
    (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

impl RtpSession {
    /// A session that starts at `now`.
    pub fn new(now: Instant, cfg: SessionConfig) -> Self {
        let mut s = Self {
            remote: cfg.remote,
            latched: false,
            stats: ReceiveStats::new(cfg.clock_rate),
            last_rtp: None,
            started: now,
            next_rtcp: now,
            rng: cfg.ssrc | 1,
            timed_out: false,
            last_sr: None,
            rtt: None,
            sent_packets: 0,
            sent_octets: 0,
            last_sent_ts: 0,
            events: VecDeque::new(),
            out: VecDeque::new(),
            cfg,
        };
        s.next_rtcp = now + s.rtcp_interval();
        s
    }

    /// The next RTCP interval: the configured one times a random factor in [0.5, 1.5)
    /// (RFC 3550 §6.3.1), so that thousands of calls set up together do not all report in
    /// the same instant.
    fn rtcp_interval(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        self.cfg
            .rtcp_interval
            .mul_f64(0.5 + f64::from(self.rng) / f64::from(u32::MAX))
    }

    /// Where RTP for the peer goes now.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// A new address from a renegotiation (re-INVITE): packets go there until the peer's
    /// own packets show where it really is.
    pub fn set_remote(&mut self, remote: SocketAddr) {
        if remote != self.cfg.remote {
            self.cfg.remote = remote;
            self.remote = remote;
            self.latched = false;
        }
    }

    /// Restarts the media-timeout clock at `now` (after a hold, or while no media is due).
    pub fn rearm_timeout(&mut self, now: Instant) {
        self.timed_out = false;
        self.last_rtp = Some(now);
    }

    /// Reception statistics.
    pub fn stats(&self) -> &ReceiveStats {
        &self.stats
    }

    /// The last round-trip time measured from RTCP, seconds.
    pub fn rtt(&self) -> Option<f64> {
        self.rtt
    }

    /// Takes an RTP datagram from `from`; the packet when it is to be passed on (the bridge,
    /// the jitter buffer, a listener), `None` for strays, duplicates and non-RTP bytes.
    pub fn handle_rtp<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &'a [u8],
    ) -> Option<RtpPacket<'a>> {
        let p = RtpPacket::parse(data).ok()?;
        let quiet = self
            .last_rtp
            .is_none_or(|t| now.saturating_duration_since(t) > Duration::from_secs(2));
        if from != self.remote && (!self.latched || quiet) {
            // Symmetric RTP: follow the source (first packet, or after 2 s of silence from the
            // old address, so a stray packet cannot hijack a live stream).
            self.remote = from;
            self.events.push_back(Event::Latched(from));
        }
        if from != self.remote {
            return None;
        }
        self.latched = true;
        self.last_rtp = Some(now);
        // A jump (a peer that restarted its sequence numbers) stays out of the statistics until
        // confirmed (RFC 3550 A.1) but its media is passed on; only duplicates are dropped.
        if self.stats.handle_packet(now, &p) == Arrival::Duplicate {
            return None;
        }
        Some(p)
    }

    /// Takes an RTCP datagram: learns the peer's last SR and the round-trip time.
    pub fn handle_rtcp(&mut self, now: Instant, data: &[u8]) {
        let Ok(reports) = rtcp::parse_compound(data) else {
            return;
        };
        for r in reports {
            if let Some(s) = r.sender {
                self.last_sr = Some(((s.ntp >> 16) as u32, now));
            }
            for b in r
                .blocks
                .iter()
                .filter(|b| b.reception.ssrc == self.cfg.ssrc)
            {
                let middle = (ntp(self.started, now) >> 16) as u32;
                if let Some(rtt) = rtcp::round_trip(b, middle) {
                    self.rtt = Some(rtt);
                }
            }
        }
    }

    /// Accounts for a packet Crest sent on this leg (for the sender report).
    pub fn on_sent(&mut self, timestamp: u32, payload_len: usize) {
        self.sent_packets = self.sent_packets.wrapping_add(1);
        self.sent_octets = self.sent_octets.wrapping_add(payload_len as u32);
        self.last_sent_ts = timestamp;
    }

    /// When [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.next_rtcp;
        if !self.timed_out && !self.cfg.media_timeout.is_zero() {
            t = t.min(self.last_rtp.unwrap_or(self.started) + self.cfg.media_timeout);
        }
        t
    }

    /// Fires the RTCP and media-timeout timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_rtcp {
            self.next_rtcp = now + self.rtcp_interval();
            self.send_report(now);
        }
        let silent_since = self.last_rtp.unwrap_or(self.started);
        if !self.timed_out
            && !self.cfg.media_timeout.is_zero()
            && now >= silent_since + self.cfg.media_timeout
        {
            self.timed_out = true;
            self.events
                .push_back(Event::MediaTimeout(now - silent_since));
        }
    }

    fn send_report(&mut self, now: Instant) {
        let blocks = self
            .stats
            .report()
            .map(|reception| {
                let (lsr, dlsr) = match self.last_sr {
                    Some((lsr, at)) => (lsr, ((now - at).as_secs_f64() * 65536.0) as u32),
                    None => (0, 0),
                };
                ReportBlock {
                    reception,
                    lsr,
                    dlsr,
                }
            })
            .into_iter()
            .collect();
        let sender = (self.sent_packets > 0).then(|| SenderInfo {
            ntp: ntp(self.started, now),
            rtp_ts: self.last_sent_ts,
            packets: self.sent_packets,
            octets: self.sent_octets,
        });
        let mut data = Vec::new();
        Report {
            ssrc: self.cfg.ssrc,
            sender,
            blocks,
        }
        .write_compound(&self.cfg.cname, &mut data);
        let to = SocketAddr::new(self.remote.ip(), self.remote.port().wrapping_add(1));
        self.out.push_back(Transmit {
            to,
            rtcp: true,
            data,
        });
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ssrc: u32, remote: &str) -> SessionConfig {
        SessionConfig {
            ssrc,
            clock_rate: 8000,
            remote: remote.parse().unwrap(),
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(30),
            cname: format!("leg{ssrc}"),
        }
    }

    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut v = Vec::new();
        RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: 160 * u32::from(seq),
            ssrc,
            payload: &[0xFF; 160],
        }
        .write(&mut v);
        v
    }

    fn events(s: &mut RtpSession) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    #[test]
    fn latches_to_the_source_behind_nat_and_ignores_strays() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(t0, cfg(1, "10.0.0.5:4000"));
        let nat: SocketAddr = "203.0.113.7:61000".parse().unwrap();
        let first = rtp(1, 9);
        assert_eq!(s.handle_rtp(t0, nat, &first).map(|p| p.sequence), Some(1));
        assert_eq!(events(&mut s), [Event::Latched(nat)]);
        assert_eq!(s.remote(), nat);
        // A stray source while the stream is live is ignored.
        let stray = rtp(2, 666);
        let t1 = t0 + Duration::from_millis(20);
        assert!(
            s.handle_rtp(t1, "198.51.100.66:5000".parse().unwrap(), &stray)
                .is_none()
        );
        assert!(events(&mut s).is_empty());
        let second = rtp(2, 9);
        assert!(s.handle_rtp(t1, nat, &second).is_some());
        assert!(
            s.handle_rtp(t1, nat, &second).is_none(),
            "duplicate dropped"
        );
        assert_eq!(s.stats().expected(), 2);
    }

    #[test]
    fn reports_about_every_5_s_and_measures_round_trip_between_two_sessions() {
        let t0 = Instant::now();
        let mut a = RtpSession::new(t0, cfg(1, "127.0.0.1:6002"));
        let mut b = RtpSession::new(t0, cfg(2, "127.0.0.1:6000"));
        for n in 0..250u16 {
            let at = t0 + Duration::from_millis(20 * u64::from(n));
            a.on_sent(160 * u32::from(n), 160);
            let p = rtp(n, 1);
            b.handle_rtp(at, "127.0.0.1:6000".parse().unwrap(), &p);
        }
        // Each reports within 2.5–7.5 s: A's report is an SR (it sent media) and reaches B
        // 30 ms later; B's next report (before 15.5 s) echoes it and reaches A 30 ms later.
        a.handle_timeout(t0 + Duration::from_secs(8));
        let sr = a.poll_transmit().unwrap();
        assert_eq!(
            sr.to,
            "127.0.0.1:6003".parse().unwrap(),
            "RTCP port = RTP port + 1"
        );
        assert!(rtcp::parse_compound(&sr.data).unwrap()[0].sender.is_some());
        b.handle_timeout(t0 + Duration::from_secs(8));
        assert!(b.poll_transmit().is_some());
        b.handle_rtcp(t0 + Duration::from_millis(8030), &sr.data);
        b.handle_timeout(t0 + Duration::from_secs(16));
        let rr = b.poll_transmit().unwrap();
        a.handle_rtcp(t0 + Duration::from_millis(16_030), &rr.data);
        let rtt = a.rtt().unwrap();
        assert!((rtt - 0.060).abs() < 0.002, "rtt {rtt}");
        let reports = rtcp::parse_compound(&rr.data).unwrap();
        assert_eq!(reports[0].blocks[0].reception.extended_highest_seq, 249);
    }

    #[test]
    fn report_times_are_spread_over_half_to_one_and_a_half_intervals() {
        let t0 = Instant::now();
        let firsts: Vec<Duration> = (1..=200)
            .map(|ssrc| RtpSession::new(t0, cfg(ssrc * 7919, "127.0.0.1:7000")).poll_timeout() - t0)
            .collect();
        let (lo, hi) = (firsts.iter().min().unwrap(), firsts.iter().max().unwrap());
        assert!(*lo >= Duration::from_millis(2500) && *hi < Duration::from_millis(7500));
        assert!(*hi - *lo > Duration::from_secs(4), "spread {lo:?}..{hi:?}");
    }

    #[test]
    fn silence_ends_the_leg_once() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(t0, cfg(1, "127.0.0.1:7000"));
        let p = rtp(1, 3);
        s.handle_rtp(
            t0 + Duration::from_secs(1),
            "127.0.0.1:7000".parse().unwrap(),
            &p,
        );
        let _ = events(&mut s);
        let first = s.poll_timeout() - t0;
        assert!(
            first >= Duration::from_millis(2500) && first < Duration::from_millis(7500),
            "RTCP first: {first:?}"
        );
        let mut now = t0;
        while now < t0 + Duration::from_secs(40) {
            now = s.poll_timeout();
            s.handle_timeout(now);
        }
        let ev = events(&mut s);
        assert_eq!(ev, [Event::MediaTimeout(Duration::from_secs(30))]);
    }
}
