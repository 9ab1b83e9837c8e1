//! Fuzzing on the stable toolchain: random and mutated RTP, RTCP, telephone-event and SDP
//! input through the parsers and through a live call's media (the same entry points as the
//! cargo-fuzz targets in `fuzz/`). Nothing may panic; what parses must write back the same.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crest_media::anchor::{AnchorConfig, CallAnchor, Role};
use crest_media::bridge::{CallMedia, LegSetup, MediaConfig, Side};
use crest_media::codec::CodecKind;
use crest_media::dtmf::TelephoneEvent;
use crest_media::rtcp::{self, Report, ReportBlock, SenderInfo};
use crest_media::rtp::RtpPacket;
use crest_media::sdp::Direction;
use crest_media::stats::ReceptionReport;
use proptest::prelude::*;

const WEBRTC_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:efghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\na=ssrc:1 cname:x\r\n";

fn rtp_bytes(pt: u8, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    RtpPacket {
        marker: seq.is_multiple_of(7),
        payload_type: pt,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: 0xABCD,
        payload,
    }
    .write(&mut v);
    v
}

fn compound() -> Vec<u8> {
    let mut v = Vec::new();
    Report {
        ssrc: 7,
        sender: Some(SenderInfo {
            ntp: 1 << 32,
            rtp_ts: 160,
            packets: 10,
            octets: 1600,
        }),
        blocks: vec![ReportBlock {
            reception: ReceptionReport {
                ssrc: 9,
                fraction_lost: 3,
                cumulative_lost: 4,
                extended_highest_seq: 100,
                jitter: 12,
            },
            lsr: 5,
            dlsr: 6,
        }],
    }
    .write_compound("crest@fuzz", &mut v);
    v
}

fn live_call(t0: Instant) -> CallMedia {
    let leg = |remote: &str, codec, pt| LegSetup {
        remote: remote.parse().unwrap(),
        codec,
        pt,
        telephone_event: Some(101),
        ptime: 20,
        direction: Direction::SendRecv,
    };
    let mut m = CallMedia::new(MediaConfig::default(), 1, 2);
    m.configure(t0, Side::A, leg("127.0.0.1:4000", CodecKind::Pcmu, 0));
    m.configure(t0, Side::B, leg("127.0.0.1:6000", CodecKind::Opus, 111));
    m.listen(t0, Side::A, true);
    m
}

fn mutate(mut v: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for &(i, b) in edits {
        if !v.is_empty() {
            let n = v.len();
            v[i % n] = b;
        }
    }
    v.truncate(cut.max(1));
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rtp_parses_or_errs_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(p) = RtpPacket::parse(&bytes) {
            let mut out = Vec::new();
            p.write(&mut out);
            let q = RtpPacket::parse(&out).unwrap();
            prop_assert_eq!((q.marker, q.payload_type, q.sequence, q.timestamp, q.ssrc, q.payload),
                (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc, p.payload));
        }
    }

    #[test]
    fn rtcp_and_events_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in 0usize..200,
        raw in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let _ = rtcp::parse_compound(&mutate(compound(), &edits, cut));
        let _ = rtcp::parse_compound(&raw);
        let _ = TelephoneEvent::parse(&raw);
    }

    #[test]
    fn a_live_call_survives_any_datagram(
        packets in proptest::collection::vec(
            (0u8..3, any::<u16>(), proptest::collection::vec(any::<u8>(), 0..200),
             proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3)),
            1..20),
    ) {
        let t0 = Instant::now();
        let mut m = live_call(t0);
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        for (n, (kind, seq, payload, edits)) in packets.into_iter().enumerate() {
            let now = t0 + Duration::from_millis(20 * n as u64);
            let pt = [0u8, 101, 111][usize::from(kind)];
            let mut bytes = mutate(rtp_bytes(pt, seq, &payload), &edits, usize::MAX);
            m.handle_rtp(now, Side::A, from, &mut bytes);
            m.handle_rtp(now, Side::B, "127.0.0.1:6000".parse().unwrap(), &mut bytes);
            m.handle_rtcp(now, Side::A, &bytes);
            while let Some(t) = m.poll_timeout().filter(|&t| t <= now) {
                m.handle_timeout(t);
            }
            while m.poll_transmit().is_some() {}
            while m.poll_event().is_some() {}
        }
    }

    #[test]
    fn mutated_offers_and_answers_never_panic_the_anchor(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        cut in 1usize..2000,
    ) {
        let cfg = AnchorConfig {
            address: "192.0.2.1".parse().unwrap(),
            codecs: CodecKind::ALL.to_vec(),
            ptime: 20,
        };
        let text = String::from_utf8_lossy(&mutate(WEBRTC_OFFER.as_bytes().to_vec(), &edits, cut)).into_owned();
        let mut a = CallAnchor::new(30000, 30002, 1);
        if a.exchange(&cfg, Side::A, Role::Offer, Some(&text)).is_ok() {
            let _ = a.exchange(&cfg, Side::B, Role::Answer, Some(&text));
        }
        let _ = a.exchange(&cfg, Side::B, Role::Offer, Some(&text));
        let _ = a.exchange(&cfg, Side::A, Role::Answer, None);
    }
}

#[test]
fn the_webrtc_offer_itself_gets_488_and_its_plain_rtp_form_is_accepted_with_opus() {
    let cfg = AnchorConfig {
        address: "192.0.2.1".parse().unwrap(),
        codecs: vec![CodecKind::Pcmu, CodecKind::Opus],
        ptime: 20,
    };
    let mut a = CallAnchor::new(30000, 30002, 1);
    let e = a
        .exchange(&cfg, Side::A, Role::Offer, Some(WEBRTC_OFFER))
        .unwrap_err();
    assert_eq!(e.status(), 488, "DTLS-SRTP is not plain RTP: {e}");
    let plain = WEBRTC_OFFER.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP");
    let offer = a
        .exchange(&cfg, Side::A, Role::Offer, Some(&plain))
        .unwrap()
        .body
        .unwrap();
    assert!(
        offer.contains("m=audio 30002 RTP/AVP 111 0 101 110"),
        "{offer}"
    );
}
