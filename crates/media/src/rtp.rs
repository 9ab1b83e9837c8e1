//! RTP packets (RFC 3550 §5.1): zero-copy parsing that never panics, and writing.

use std::fmt;

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header, its CSRC list or its extension.
    #[error("packet truncated")]
    Truncated,
    /// Version other than 2.
    #[error("RTP version {0}")]
    Version(u8),
    /// The padding count is zero or larger than the payload.
    #[error("bad padding")]
    Padding,
}

/// A parsed RTP packet borrowing the datagram.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit.
    pub marker: bool,
    /// The payload type (0..=127).
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// The synchronization source.
    pub ssrc: u32,
    /// The payload, without padding.
    pub payload: &'a [u8],
}

impl fmt::Debug for RtpPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpPacket")
            .field("pt", &self.payload_type)
            .field("seq", &self.sequence)
            .field("ts", &self.timestamp)
            .field("ssrc", &format_args!("{:08x}", self.ssrc))
            .field("len", &self.payload.len())
            .finish()
    }
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram; CSRCs and a header extension are skipped.
    pub fn parse(b: &'a [u8]) -> Result<Self, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::Truncated);
        }
        let version = b[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let padding = b[0] & 0x20 != 0;
        let extension = b[0] & 0x10 != 0;
        let csrc_count = usize::from(b[0] & 0x0F);
        let mut start = 12 + 4 * csrc_count;
        if extension {
            let words = b.get(start + 2..start + 4).ok_or(RtpError::Truncated)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        if start > b.len() {
            return Err(RtpError::Truncated);
        }
        let mut end = b.len();
        if padding {
            let pad = usize::from(b[end - 1]);
            if pad == 0 || start + pad > end {
                return Err(RtpError::Padding);
            }
            end -= pad;
        }
        Ok(Self {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7F,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            payload: &b[start..end],
        })
    }

    /// Writes the packet (no CSRCs, no extension, no padding) to `out` (cleared first).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut b = vec![0xB1, 0x80 | 8, 0, 7, 0, 0, 0, 160, 1, 2, 3, 4];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension, one word
        b.extend_from_slice(b"abc");
        b.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let p = RtpPacket::parse(&b).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (8, 7, 160, 0x0102_0304)
        );
        assert_eq!(p.payload, b"abc");
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut pad = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        pad.push(9);
        assert_eq!(RtpPacket::parse(&pad), Err(RtpError::Padding));
        assert_eq!(
            RtpPacket::parse(&[0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn write_then_parse(marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32, payload in prop::collection::vec(any::<u8>(), 0..200)) {
            let p = RtpPacket { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc, payload: &payload };
            let mut out = Vec::new();
            p.write(&mut out);
            prop_assert_eq!(RtpPacket::parse(&out).unwrap(), p);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = RtpPacket::parse(&b);
        }
    }
}
