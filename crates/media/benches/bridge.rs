//! The call bridge's CPU per packet: forwarding (same codec: header rewrite only) and one
//! second of a transcoded call (PCMU ↔ Opus both ways: jitter buffer, decode, resample,
//! encode), from which "transcoded calls per core" = 1 s / the time for one call-second.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crest_media::bridge::{CallMedia, LegSetup, MediaConfig, Side};
use crest_media::codec::{CodecKind, Encoder};
use crest_media::rtp::RtpPacket;
use crest_media::sdp::Direction;

fn main() {
    divan::main();
}

const A: &str = "127.0.0.1:4000";
const B: &str = "127.0.0.1:6000";

fn leg(remote: &str, codec: CodecKind, pt: u8) -> LegSetup {
    LegSetup {
        remote: remote.parse().unwrap(),
        codec,
        pt,
        telephone_event: Some(101),
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

fn call(t0: Instant, b: CodecKind, b_pt: u8) -> CallMedia {
    let mut m = CallMedia::new(MediaConfig::default(), 1, 2);
    m.configure(t0, Side::A, leg(A, CodecKind::Pcmu, 0));
    m.configure(t0, Side::B, leg(B, b, b_pt));
    m
}

/// 50 packets (1 s) of speech-like audio (two tones) encoded with `codec`.
fn packets(codec: CodecKind, pt: u8) -> Vec<Vec<u8>> {
    let rate = codec.sample_rate();
    let frame = (rate / 50) as usize;
    let mut enc = Encoder::new(codec).unwrap();
    let mut payload = Vec::new();
    (0..50u32)
        .map(|n| {
            let pcm: Vec<i16> = (0..frame)
                .map(|i| {
                    let t = (n as usize * frame + i) as f64 / f64::from(rate);
                    (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                        + 3000.0 * (2.0 * std::f64::consts::PI * 1200.0 * t).sin())
                        as i16
                })
                .collect();
            enc.encode(&pcm, &mut payload).unwrap();
            let mut v = Vec::new();
            RtpPacket {
                marker: false,
                payload_type: pt,
                sequence: n as u16,
                timestamp: n * codec.clock_rate() / 50,
                ssrc: 77,
                payload: &payload,
            }
            .write(&mut v);
            v
        })
        .collect()
}

/// One packet forwarded A → B: session bookkeeping and the header rewrite.
#[divan::bench]
fn forward_packet(bencher: divan::Bencher) {
    let t0 = Instant::now();
    let mut m = call(t0, CodecKind::Pcmu, 0);
    let from: SocketAddr = A.parse().unwrap();
    let template = packets(CodecKind::Pcmu, 0).remove(0);
    let mut buf = template.clone();
    let mut seq = 0u16;
    bencher.bench_local(|| {
        seq = seq.wrapping_add(1);
        buf.copy_from_slice(&template);
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        m.handle_rtp(t0, Side::A, from, divan::black_box(&mut buf))
    });
}

/// One second of a PCMU ↔ Opus call: 50 packets each way, the playout ticks, the encoded
/// packets drained.
#[divan::bench(sample_count = 30)]
fn transcode_call_second_pcmu_opus(bencher: divan::Bencher) {
    let a_pkts = packets(CodecKind::Pcmu, 0);
    let b_pkts = packets(CodecKind::Opus, 111);
    let (a, b): (SocketAddr, SocketAddr) = (A.parse().unwrap(), B.parse().unwrap());
    bencher
        .with_inputs(|| {
            let t0 = Instant::now();
            (
                t0,
                call(t0, CodecKind::Opus, 111),
                a_pkts.clone(),
                b_pkts.clone(),
            )
        })
        .bench_local_values(|(t0, mut m, mut ap, mut bp)| {
            let mut sent = 0;
            for n in 0..50 {
                let now = t0 + Duration::from_millis(20 * n as u64);
                m.handle_rtp(now, Side::A, a, &mut ap[n]);
                m.handle_rtp(now, Side::B, b, &mut bp[n]);
                while let Some(t) = m.poll_timeout().filter(|&t| t <= now) {
                    m.handle_timeout(t);
                }
                while m.poll_transmit().is_some() {
                    sent += 1;
                }
            }
            sent
        });
}
