//! RTCP sender and receiver reports (RFC 3550 §6.4), compound packets with SDES CNAME, and
//! round-trip time from LSR/DLSR. Parsing never panics; unknown packet types are skipped.

use crate::stats::ReceptionReport;

/// Why bytes are not an RTCP compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header, or a length field past the end.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version other than 2.
    #[error("RTCP version {0}")]
    Version(u8),
}

/// A sender report's sender info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp (64-bit fixed point).
    pub ntp: u64,
    /// The RTP timestamp of the same instant.
    pub rtp_ts: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// A report block with the round-trip fields (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// Reception statistics.
    pub reception: ReceptionReport,
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source.
    pub lsr: u32,
    /// Delay since that SR, 1/65536 s.
    pub dlsr: u32,
}

/// An SR or RR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The reporter.
    pub ssrc: u32,
    /// Present in a sender report.
    pub sender: Option<SenderInfo>,
    /// Report blocks.
    pub blocks: Vec<ReportBlock>,
}

impl Report {
    /// Writes this report and an SDES CNAME chunk as one compound packet.
    pub fn write_compound(&self, cname: &str, out: &mut Vec<u8>) {
        out.clear();
        let pt = if self.sender.is_some() { 200 } else { 201 };
        let count = self.blocks.len().min(31);
        let words = 1 + if self.sender.is_some() { 5 } else { 0 } + 6 * count;
        out.push(0x80 | count as u8);
        out.push(pt);
        out.extend_from_slice(&(words as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        if let Some(s) = &self.sender {
            out.extend_from_slice(&s.ntp.to_be_bytes());
            out.extend_from_slice(&s.rtp_ts.to_be_bytes());
            out.extend_from_slice(&s.packets.to_be_bytes());
            out.extend_from_slice(&s.octets.to_be_bytes());
        }
        for b in &self.blocks[..count] {
            let r = &b.reception;
            out.extend_from_slice(&r.ssrc.to_be_bytes());
            out.push(r.fraction_lost);
            out.extend_from_slice(&r.cumulative_lost.to_be_bytes()[1..]);
            out.extend_from_slice(&r.extended_highest_seq.to_be_bytes());
            out.extend_from_slice(&r.jitter.to_be_bytes());
            out.extend_from_slice(&b.lsr.to_be_bytes());
            out.extend_from_slice(&b.dlsr.to_be_bytes());
        }
        // SDES: one chunk, CNAME item, null-terminated and padded to a word.
        let name = &cname.as_bytes()[..cname.len().min(255)];
        let chunk = 4 + 2 + name.len() + 1;
        let padded = chunk.div_ceil(4) * 4;
        out.push(0x81);
        out.push(202);
        out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(1);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.resize(out.len() + padded - (chunk - 1), 0);
    }
}

/// The SR and RR packets of a compound packet, in order (other types skipped).
pub fn parse_compound(mut b: &[u8]) -> Result<Vec<Report>, RtcpError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        if b[0] >> 6 != 2 {
            return Err(RtcpError::Version(b[0] >> 6));
        }
        let count = usize::from(b[0] & 0x1F);
        let len = 4 * (usize::from(u16::from_be_bytes([b[2], b[3]])) + 1);
        let pkt = b.get(..len).ok_or(RtcpError::Truncated)?;
        let sender_len = match pkt[1] {
            200 => 20,
            201 => 0,
            _ => {
                b = &b[len..];
                continue;
            }
        };
        let word = |at: usize| -> Result<u32, RtcpError> {
            pkt.get(at..at + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .ok_or(RtcpError::Truncated)
        };
        let ssrc = word(4)?;
        let sender = if sender_len > 0 {
            Some(SenderInfo {
                ntp: (u64::from(word(8)?) << 32) | u64::from(word(12)?),
                rtp_ts: word(16)?,
                packets: word(20)?,
                octets: word(24)?,
            })
        } else {
            None
        };
        let mut blocks = Vec::with_capacity(count);
        for i in 0..count {
            let at = 8 + sender_len + 24 * i;
            let lost = word(at + 4)?;
            let cumulative = ((lost & 0x00FF_FFFF) as i32) << 8 >> 8; // sign-extend 24 bits
            blocks.push(ReportBlock {
                reception: ReceptionReport {
                    ssrc: word(at)?,
                    fraction_lost: (lost >> 24) as u8,
                    cumulative_lost: cumulative,
                    extended_highest_seq: word(at + 8)?,
                    jitter: word(at + 12)?,
                },
                lsr: word(at + 16)?,
                dlsr: word(at + 20)?,
            });
        }
        out.push(Report {
            ssrc,
            sender,
            blocks,
        });
        b = &b[len..];
    }
    Ok(out)
}

/// Round-trip time from a report block received at `arrival_ntp_middle` (the middle 32 bits
/// of the NTP time of its arrival): A − LSR − DLSR, in seconds; `None` without an SR.
pub fn round_trip(block: &ReportBlock, arrival_ntp_middle: u32) -> Option<f64> {
    if block.lsr == 0 {
        return None;
    }
    let rtt = arrival_ntp_middle
        .wrapping_sub(block.lsr)
        .wrapping_sub(block.dlsr);
    (rtt < 0x8000_0000).then(|| f64::from(rtt) / 65536.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block(cumulative_lost: i32) -> ReportBlock {
        ReportBlock {
            reception: ReceptionReport {
                ssrc: 0xCAFE,
                fraction_lost: 13,
                cumulative_lost,
                extended_highest_seq: 70_000,
                jitter: 42,
            },
            lsr: 0x1234_0000,
            dlsr: 0x0001_0000,
        }
    }

    #[test]
    fn sender_and_receiver_reports_round_trip_with_sdes() {
        let sr = Report {
            ssrc: 7,
            sender: Some(SenderInfo {
                ntp: 0x0123_4567_89AB_CDEF,
                rtp_ts: 160,
                packets: 50,
                octets: 8000,
            }),
            blocks: vec![block(3), block(-2)],
        };
        let mut out = Vec::new();
        sr.write_compound("crest@node1", &mut out);
        assert_eq!(out.len() % 4, 0);
        assert_eq!(parse_compound(&out).unwrap(), vec![sr]);
        let rr = Report {
            ssrc: 8,
            sender: None,
            blocks: vec![block(0)],
        };
        rr.write_compound("x", &mut out);
        assert_eq!(parse_compound(&out).unwrap(), vec![rr]);
    }

    #[test]
    fn round_trip_time_from_lsr_and_dlsr() {
        // The SR left at 0x1234.0000, was held 1 s by the peer; the RR arrives 1.25 s later.
        let rtt = round_trip(&block(0), 0x1234_0000 + 0x0001_4000).unwrap();
        assert!((rtt - 0.25).abs() < 1e-9, "{rtt}");
        let no_sr = ReportBlock { lsr: 0, ..block(0) };
        assert_eq!(round_trip(&no_sr, 5), None);
    }

    #[test]
    fn malformed_compounds_are_refused() {
        assert_eq!(parse_compound(&[0x80, 200, 0]), Err(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]),
            Err(RtcpError::Version(1))
        );
        assert_eq!(
            parse_compound(&[0x81, 201, 0, 1, 0, 0, 0, 1]),
            Err(RtcpError::Truncated),
            "count says one block"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse_compound(&b);
        }
    }
}
