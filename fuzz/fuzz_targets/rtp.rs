//! RTP packets: parse, and whatever parses writes back to the same packet.
#![no_main]
use crest_media::rtp::RtpPacket;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RtpPacket::parse(data) {
        let mut out = Vec::new();
        p.write(&mut out);
        let q = RtpPacket::parse(&out).expect("own output parses");
        assert_eq!(
            (q.sequence, q.timestamp, q.ssrc, q.payload),
            (p.sequence, p.timestamp, p.ssrc, p.payload)
        );
    }
});
