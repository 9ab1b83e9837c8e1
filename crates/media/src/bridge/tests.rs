//! The call bridge in virtual time: forwarding, transcoding, DTMF, prompts, hold, listeners.

use super::*;
use crate::dtmf::{TelephoneEvent, goertzel_power};
use crate::g711;

const A_PEER: &str = "192.0.2.10:4000";
const B_PEER: &str = "198.51.100.20:6000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn setup(remote: &str, codec: CodecKind, pt: u8, te: Option<u8>) -> LegSetup {
    LegSetup {
        remote: addr(remote),
        codec,
        pt,
        telephone_event: te,
        ptime: 20,
        direction: Direction::SendRecv,
    }
}

fn call(t0: Instant, a: LegSetup, b: LegSetup) -> CallMedia {
    let mut m = CallMedia::new(MediaConfig::default(), 0xAAAA_0001, 0xBBBB_0002);
    m.configure(t0, Side::A, a);
    m.configure(t0, Side::B, b);
    m
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    RtpPacket {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: ts,
        ssrc,
        payload,
    }
    .write(&mut v);
    v
}

fn sine(rate: u32, freq: f64, start: usize, n: usize) -> Vec<i16> {
    (start..start + n)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16
        })
        .collect()
}

fn drain(m: &mut CallMedia) -> (Vec<Datagram>, Vec<MediaEvent>) {
    (
        std::iter::from_fn(|| m.poll_transmit()).collect(),
        std::iter::from_fn(|| m.poll_event()).collect(),
    )
}

/// Runs the call's timers up to `until`.
fn run_until(m: &mut CallMedia, until: Instant) {
    while let Some(t) = m.poll_timeout().filter(|&t| t <= until) {
        m.handle_timeout(t);
    }
}

#[test]
fn same_codec_is_forwarded_with_crest_header_and_no_decoding() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, Some(101)),
        setup(B_PEER, CodecKind::Pcmu, 0, Some(101)),
    );
    assert!(m.forwarding());
    assert!(
        m.legs[0].jitter.is_none() && m.legs[1].encoder.is_none(),
        "no codec work"
    );
    let mut seqs = Vec::new();
    for n in 0..5u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        // The caller is behind NAT: its packets come from another port than its SDP said.
        let mut buf = rtp(
            0,
            65534u16.wrapping_add(n),
            1000 + 160 * u32::from(n),
            77,
            &[0x55; 160],
        );
        let (to, len) = m
            .handle_rtp(now, Side::A, addr("192.0.2.10:40000"), &mut buf)
            .unwrap();
        assert_eq!(to, addr(B_PEER));
        let p = RtpPacket::parse(&buf[..len]).unwrap();
        assert_eq!(
            (p.ssrc, p.payload_type, p.payload),
            (0xBBBB_0002, 0, &[0x55; 160][..])
        );
        seqs.push((p.sequence, p.timestamp));
    }
    for w in seqs.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "Crest's own sequence on leg B"
        );
        assert_eq!(w[1].1.wrapping_sub(w[0].1), 160, "the caller's timing kept");
    }
    let (_, events) = drain(&mut m);
    assert_eq!(
        events,
        [MediaEvent::Latched {
            side: Side::A,
            addr: addr("192.0.2.10:40000")
        }]
    );
    // B answers; its packets go to where A's came from (symmetric RTP).
    let mut buf = rtp(0, 9, 9, 88, &[0xAA; 160]);
    let (to, _) = m.handle_rtp(t0, Side::B, addr(B_PEER), &mut buf).unwrap();
    assert_eq!(to, addr("192.0.2.10:40000"));
}

#[test]
fn csrcs_extensions_and_payload_type_mapping_are_rewritten() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Opus, 111, None),
        setup(B_PEER, CodecKind::Opus, 96, None),
    );
    // V=2, X=1, CC=1, PT 111; one CSRC, a one-word extension, 3 bytes payload.
    let mut buf = vec![
        0x91, 111, 0, 1, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, 7, 0xBE, 0xDE, 0, 1, 1, 2, 3, 4,
    ];
    buf.extend([9, 8, 7]);
    let (_, len) = m.handle_rtp(t0, Side::A, addr(A_PEER), &mut buf).unwrap();
    let p = RtpPacket::parse(&buf[..len]).unwrap();
    assert_eq!((p.payload_type, p.payload), (96, &[9, 8, 7][..]));
    assert_eq!(len, 15);
}

/// Sends 1 s of a 1 kHz tone from `from` (encoded with `codec`) and returns the far leg's
/// decoded audio and the number of packets it got.
fn tone_across(
    m: &mut CallMedia,
    t0: Instant,
    from: Side,
    codec: CodecKind,
    pt: u8,
    far: CodecKind,
) -> (Vec<i16>, usize) {
    let mut enc = Encoder::new(codec).unwrap();
    let rate = codec.sample_rate();
    let frame = (rate / 50) as usize;
    let peer = if from == Side::A { A_PEER } else { B_PEER };
    let mut dec = Decoder::new(far).unwrap();
    let (mut out, mut packets) = (Vec::new(), 0);
    let mut payload = Vec::new();
    for n in 0..50u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        run_until(m, now);
        enc.encode(&sine(rate, 1000.0, n as usize * frame, frame), &mut payload)
            .unwrap();
        let mut buf = rtp(pt, n as u16, n * codec.clock_rate() / 50, 5, &payload);
        assert!(
            m.handle_rtp(now, from, addr(peer), &mut buf).is_none(),
            "not forwarded raw"
        );
        let far_side = from.other();
        for d in std::iter::from_fn(|| m.poll_transmit()).filter(|d| !d.rtcp && d.side == far_side)
        {
            let p = RtpPacket::parse(&d.data).unwrap();
            dec.decode(p.payload, &mut out).unwrap();
            packets += 1;
        }
    }
    (out, packets)
}

fn tone_ratio(pcm: &[i16], rate: u32) -> f64 {
    let tail: Vec<f64> = pcm[pcm.len() / 3..].iter().map(|&s| f64::from(s)).collect();
    goertzel_power(&tail, 1000.0, rate) / goertzel_power(&tail, 1700.0, rate).max(1.0)
}

#[test]
fn pcmu_and_opus_legs_are_transcoded_both_ways() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, Some(101)),
        setup(B_PEER, CodecKind::Opus, 111, Some(110)),
    );
    assert!(!m.forwarding());
    let (b_heard, packets) = tone_across(&mut m, t0, Side::A, CodecKind::Pcmu, 0, CodecKind::Opus);
    assert!(
        packets >= 45,
        "{packets} Opus packets for 50 sent (minus the jitter delay)"
    );
    assert!(tone_ratio(&b_heard, 48_000) > 1000.0, "1 kHz crossed A→B");
    let t1 = t0 + Duration::from_secs(2);
    let (a_heard, _) = tone_across(&mut m, t1, Side::B, CodecKind::Opus, 111, CodecKind::Pcmu);
    assert!(tone_ratio(&a_heard, 8000) > 100.0, "1 kHz crossed B→A");
}

#[test]
fn g722_and_pcma_legs_are_transcoded() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::G722, 9, None),
        setup(B_PEER, CodecKind::Pcma, 8, None),
    );
    let (heard, packets) = tone_across(&mut m, t0, Side::A, CodecKind::G722, 9, CodecKind::Pcma);
    assert!(packets >= 45);
    assert!(tone_ratio(&heard, 8000) > 100.0);
}

#[test]
fn lost_packets_are_concealed_on_the_transcoding_path() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, None),
        setup(B_PEER, CodecKind::Opus, 111, None),
    );
    let mut sent_to_b = 0;
    for n in 0..50u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        run_until(&mut m, now);
        if n % 10 == 5 {
            continue; // lost
        }
        let mut codes = Vec::new();
        g711::encode_ulaw(&sine(8000, 1000.0, n as usize * 160, 160), &mut codes);
        let mut buf = rtp(0, n as u16, n * 160, 5, &codes);
        m.handle_rtp(now, Side::A, addr(A_PEER), &mut buf);
        sent_to_b += std::iter::from_fn(|| m.poll_transmit())
            .filter(|d| !d.rtcp)
            .count();
    }
    // Every 20 ms frame reaches B although 5 were lost, less the playout delay.
    assert!(sent_to_b >= 46, "{sent_to_b}");
    assert_eq!(m.quality(Side::A).unwrap().lost, 5);
}

#[test]
fn rfc4733_keys_are_reported_once_and_passed_on_with_the_far_payload_type() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, Some(101)),
        setup(B_PEER, CodecKind::Pcmu, 0, Some(96)),
    );
    let mut forwarded = 0;
    let payloads = dtmf::event_payloads('5', 800, 160);
    for (i, payload) in payloads.iter().enumerate() {
        let mut buf = rtp(101, i as u16, 4000, 5, payload);
        if let Some((_, len)) = m.handle_rtp(t0, Side::A, addr(A_PEER), &mut buf) {
            assert_eq!(RtpPacket::parse(&buf[..len]).unwrap().payload_type, 96);
            forwarded += 1;
        }
    }
    assert_eq!(
        forwarded,
        payloads.len(),
        "every packet, end redundancy included"
    );
    let (_, events) = drain(&mut m);
    let keys: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, MediaEvent::Dtmf { .. }))
        .collect();
    assert_eq!(
        keys,
        [&MediaEvent::Dtmf {
            side: Side::A,
            key: '5',
            source: DtmfSource::Rfc4733
        }]
    );
}

#[test]
fn inband_tones_on_a_leg_without_telephone_event_are_detected() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, None),
        setup(B_PEER, CodecKind::Pcmu, 0, None),
    );
    let mut pcm = dtmf::tone_pcm('#', 8000, 640).unwrap();
    pcm.extend(vec![0; 1600]);
    let mut keys = Vec::new();
    for (n, chunk) in pcm.chunks(160).enumerate() {
        let now = t0 + Duration::from_millis(20 * n as u64);
        run_until(&mut m, now);
        let mut codes = Vec::new();
        g711::encode_ulaw(chunk, &mut codes);
        let mut buf = rtp(0, n as u16, n as u32 * 160, 5, &codes);
        assert!(
            m.handle_rtp(now, Side::A, addr(A_PEER), &mut buf).is_some(),
            "still forwarded"
        );
        keys.extend(
            std::iter::from_fn(|| m.poll_event()).filter_map(|e| match e {
                MediaEvent::Dtmf { key, source, .. } => Some((key, source)),
                _ => None,
            }),
        );
    }
    assert_eq!(keys, [('#', DtmfSource::InBand)]);
}

#[test]
fn keys_go_out_as_paced_events_or_as_tones() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, Some(101)),
        setup(B_PEER, CodecKind::Pcmu, 0, None),
    );
    m.send_dtmf(t0, Side::A, '7');
    run_until(&mut m, t0 + Duration::from_millis(500));
    let sent: Vec<_> = std::iter::from_fn(|| m.poll_transmit())
        .filter(|d| !d.rtcp)
        .collect();
    assert_eq!(sent.len(), 10, "8 updates + 2 more end packets");
    let ev: Vec<_> = sent
        .iter()
        .map(|d| RtpPacket::parse(&d.data).unwrap())
        .map(|p| {
            (
                p.payload_type,
                p.timestamp,
                TelephoneEvent::parse(p.payload).unwrap(),
            )
        })
        .collect();
    assert!(
        ev.iter()
            .all(|e| e.0 == 101 && e.1 == ev[0].1 && e.2.key == '7')
    );
    assert!(ev[9].2.end && !ev[0].2.end);
    // Leg B has no telephone-event: the key is played as a tone the detector hears.
    m.send_dtmf(t0, Side::B, '9');
    run_until(&mut m, t0 + Duration::from_secs(1));
    let mut pcm = Vec::new();
    let sent: Vec<_> = std::iter::from_fn(|| m.poll_transmit()).collect();
    for d in sent.iter().filter(|d| d.side == Side::B && !d.rtcp) {
        Decoder::new(CodecKind::Pcmu)
            .unwrap()
            .decode(RtpPacket::parse(&d.data).unwrap().payload, &mut pcm)
            .unwrap();
    }
    assert_eq!(ToneDetector::new().push(&pcm), ['9']);
}

fn prompt_call(t0: Instant) -> CallMedia {
    call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, Some(101)),
        setup(B_PEER, CodecKind::Pcmu, 0, Some(101)),
    )
}

#[test]
fn a_prompt_plays_in_real_time_pauses_the_far_audio_and_reports_its_end() {
    let t0 = Instant::now();
    let mut m = prompt_call(t0);
    // 0.5 s at 16 kHz, resampled for the 8 kHz leg.
    let prompt = Prompt {
        rate: 16_000,
        pcm: sine(16_000, 1000.0, 0, 8000).into(),
    };
    m.play(t0, Side::A, &prompt, false);
    let mut buf = rtp(0, 1, 160, 5, &[0x7F; 160]);
    assert!(
        m.handle_rtp(t0, Side::B, addr(B_PEER), &mut buf).is_none(),
        "B is not heard meanwhile"
    );
    run_until(&mut m, t0 + Duration::from_millis(440));
    assert!(m.playing(Side::A));
    run_until(&mut m, t0 + Duration::from_secs(1));
    let (sent, events) = drain(&mut m);
    let audio: Vec<_> = sent.iter().filter(|d| !d.rtcp).collect();
    assert_eq!(audio.len(), 25, "0.5 s in 20 ms packets");
    let mut pcm = Vec::new();
    for d in &audio {
        assert_eq!(d.to, addr(A_PEER));
        Decoder::new(CodecKind::Pcmu)
            .unwrap()
            .decode(RtpPacket::parse(&d.data).unwrap().payload, &mut pcm)
            .unwrap();
    }
    assert!(tone_ratio(&pcm, 8000) > 100.0);
    assert_eq!(events, [MediaEvent::PromptDone { side: Side::A }]);
    let mut buf = rtp(0, 2, 320, 5, &[0x7F; 160]);
    assert!(
        m.handle_rtp(t0 + Duration::from_secs(1), Side::B, addr(B_PEER), &mut buf)
            .is_some()
    );
}

#[test]
fn a_key_or_speech_barges_in() {
    let t0 = Instant::now();
    let prompt = Prompt {
        rate: 8000,
        pcm: vec![0i16; 8000 * 5].into(),
    };
    let mut m = prompt_call(t0);
    m.play(t0, Side::A, &prompt, true);
    run_until(&mut m, t0 + Duration::from_millis(300));
    m.info_dtmf(Side::A, '3');
    assert!(!m.playing(Side::A));
    let (_, events) = drain(&mut m);
    assert_eq!(
        events,
        [
            MediaEvent::Dtmf {
                side: Side::A,
                key: '3',
                source: DtmfSource::Info
            },
            MediaEvent::BargeIn {
                side: Side::A,
                by: BargeIn::Key('3')
            },
        ]
    );
    // Speech: the caller talks over the prompt for 200 ms and more.
    let mut m = prompt_call(t0);
    m.play(t0, Side::A, &prompt, true);
    let mut barged = None;
    for n in 0..40u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        run_until(&mut m, now);
        let mut codes = Vec::new();
        g711::encode_ulaw(&sine(8000, 300.0, n as usize * 160, 160), &mut codes);
        let mut buf = rtp(0, n as u16, n * 160, 5, &codes);
        m.handle_rtp(now, Side::A, addr(A_PEER), &mut buf);
        if std::iter::from_fn(|| m.poll_event()).any(|e| {
            e == MediaEvent::BargeIn {
                side: Side::A,
                by: BargeIn::Speech,
            }
        }) {
            barged = Some(n);
            break;
        }
    }
    let n = barged.expect("speech barged in");
    assert!(
        (10..=16).contains(&n),
        "after ~200 ms of speech plus the jitter delay: {n}"
    );
    assert!(!m.playing(Side::A));
}

#[test]
fn hold_stops_the_media_without_a_timeout_and_resume_restarts_it() {
    let t0 = Instant::now();
    let mut m = prompt_call(t0);
    // B put on hold: Crest's direction toward B is inactive (B offered inactive).
    let mut held = setup(B_PEER, CodecKind::Pcmu, 0, Some(101));
    held.direction = Direction::Inactive;
    m.configure(t0, Side::B, held.clone());
    let mut buf = rtp(0, 1, 160, 5, &[0x7F; 160]);
    assert!(
        m.handle_rtp(t0, Side::A, addr(A_PEER), &mut buf).is_none(),
        "nothing sent to B"
    );
    run_until(&mut m, t0 + Duration::from_secs(120));
    let (_, events) = drain(&mut m);
    assert!(
        events
            .iter()
            .all(|e| *e != MediaEvent::MediaTimeout { side: Side::B }),
        "a held leg may be silent: {events:?}"
    );
    // A went silent although it should send: that is a timeout.
    assert!(events.contains(&MediaEvent::MediaTimeout { side: Side::A }));
    held.direction = Direction::SendRecv;
    let t1 = t0 + Duration::from_secs(120);
    m.configure(t1, Side::B, held);
    let mut buf = rtp(0, 2, 320, 5, &[0x7F; 160]);
    assert!(
        m.handle_rtp(t1, Side::A, addr(A_PEER), &mut buf).is_some(),
        "resumed"
    );
}

#[test]
fn a_listener_gets_each_decoded_frame_once_and_forwarding_goes_on() {
    let t0 = Instant::now();
    let mut m = prompt_call(t0);
    m.listen(t0, Side::A, true);
    let mut frames = 0;
    for n in 0..20u32 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        run_until(&mut m, now);
        let mut buf = rtp(0, n as u16, n * 160, 5, &[0xFF; 160]);
        assert!(m.handle_rtp(now, Side::A, addr(A_PEER), &mut buf).is_some());
        for e in std::iter::from_fn(|| m.poll_event()) {
            if let MediaEvent::Audio {
                side: Side::A,
                rate: 8000,
                pcm,
            } = e
            {
                assert_eq!(pcm.len(), 160);
                frames += 1;
            }
        }
    }
    assert!(
        (16..=19).contains(&frames),
        "one frame per packet after the playout delay: {frames}"
    );
    m.listen(t0, Side::A, false);
    assert!(m.legs[0].jitter.is_none());
}

#[test]
fn quality_reflects_loss_and_jitter() {
    let t0 = Instant::now();
    let mut m = prompt_call(t0);
    for n in 0..100u32 {
        if n % 20 == 3 {
            continue;
        }
        let jitter = if n % 2 == 0 { 0 } else { 15 };
        let now = t0 + Duration::from_millis(20 * u64::from(n) + jitter);
        let mut buf = rtp(0, n as u16, n * 160, 5, &[0xFF; 160]);
        m.handle_rtp(now, Side::A, addr(A_PEER), &mut buf);
    }
    let q = m.quality(Side::A).unwrap();
    assert_eq!((q.expected, q.lost), (100, 5));
    assert!(q.jitter_ms > 5.0, "{q:?}");
    assert!(q.mos < 4.0 && q.mos > 3.0, "5 % loss: {q:?}");
    assert!(m.quality(Side::B).unwrap().mos > 4.3, "nothing lost on B");
}

#[test]
fn a_prompt_after_a_silence_starts_a_talkspurt_whose_timestamp_counts_the_silence() {
    let t0 = Instant::now();
    let mut m = prompt_call(t0);
    let prompt = Prompt {
        rate: 8000,
        pcm: sine(8000, 1000.0, 0, 800).into(),
    };
    let packets = |m: &mut CallMedia| -> Vec<(bool, u32)> {
        drain(m)
            .0
            .iter()
            .filter(|d| !d.rtcp)
            .map(|d| {
                let p = RtpPacket::parse(&d.data).unwrap();
                (p.marker, p.timestamp)
            })
            .collect()
    };
    m.play(t0, Side::A, &prompt, false);
    run_until(&mut m, t0 + Duration::from_secs(1));
    let first = packets(&mut m);
    assert_eq!(first.len(), 5, "0.1 s in 20 ms packets");
    assert!(first[0].0, "the stream's first packet starts a talkspurt");
    assert!(first[1..].iter().all(|(marker, _)| !marker));
    for w in first.windows(2) {
        assert_eq!(w[1].1.wrapping_sub(w[0].1), 160);
    }
    // 2.92 s after the last packet was due, the next prompt.
    let t1 = t0 + Duration::from_secs(3);
    m.play(t1, Side::A, &prompt, false);
    run_until(&mut m, t1 + Duration::from_millis(500));
    let second = packets(&mut m);
    assert_eq!(second.len(), 5);
    assert!(second[0].0, "a new talkspurt after the silence");
    assert_eq!(
        second[0].1.wrapping_sub(first[4].1),
        (3000 - 80) / 20 * 160,
        "the timestamp moved on by the silence"
    );
    assert!(!second[1].0);
}

#[test]
fn a_released_leg_takes_nothing_more_and_keeps_what_it_received() {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcmu, 0, Some(101)),
        setup(B_PEER, CodecKind::Pcmu, 0, Some(101)),
    );
    for n in 0..50u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        let mut buf = rtp(0, n, 160 * u32::from(n), 88, &[0xAA; 160]);
        m.handle_rtp(now, Side::B, addr(B_PEER), &mut buf).unwrap();
    }
    let before = m.quality(Side::B).expect("B received");
    assert_eq!(before.expected, 50);
    // The agent hangs up; the caller stays for a survey.
    let t1 = t0 + Duration::from_secs(1);
    m.release(t1, Side::B);
    drain(&mut m);
    assert_eq!(
        m.quality(Side::B),
        Some(before),
        "kept for the call's record"
    );
    // The caller's packets go nowhere, and B never times out.
    let mut buf = rtp(0, 1, 160, 77, &[0x55; 160]);
    assert_eq!(m.handle_rtp(t1, Side::A, addr(A_PEER), &mut buf), None);
    run_until(&mut m, t1 + Duration::from_secs(120));
    let (out, events) = drain(&mut m);
    assert!(out.iter().all(|d| d.side == Side::A), "{out:?}");
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, MediaEvent::MediaTimeout { side: Side::B })),
        "{events:?}"
    );
    // A prompt still reaches the caller.
    let prompt = Prompt {
        rate: 8000,
        pcm: vec![1000i16; 1600].into(),
    };
    m.play(t1, Side::A, &prompt, false);
    run_until(&mut m, t1 + Duration::from_millis(300));
    let (out, _) = drain(&mut m);
    assert!(out.iter().any(|d| d.side == Side::A && !d.rtcp), "{out:?}");
}

/// Sends `secs` of a 1 kHz tone from A in PCMA packets of `ptime_ms` (the SDP said 20 or
/// nothing); returns how many samples the far leg (PCMU) got and a listener on A got, and the
/// far leg's tone ratio.
fn pcma_packets_of(ptime_ms: u32, secs: u32) -> (usize, usize, f64) {
    let t0 = Instant::now();
    let mut m = call(
        t0,
        setup(A_PEER, CodecKind::Pcma, 8, Some(101)),
        setup(B_PEER, CodecKind::Pcmu, 0, Some(101)),
    );
    m.listen(t0, Side::A, true);
    let samples = (8 * ptime_ms) as usize;
    let (mut far, mut heard) = (Vec::new(), 0usize);
    // What came out since the last look: the far leg's audio, and the listener's samples.
    let mut collect = |m: &mut CallMedia| {
        let (out, events) = drain(m);
        for d in out.iter().filter(|d| d.side == Side::B && !d.rtcp) {
            let p = RtpPacket::parse(&d.data).unwrap();
            if p.payload_type == 0 {
                far.extend(p.payload.iter().map(|&u| g711::ulaw_to_linear(u)));
            }
        }
        for e in events {
            if let MediaEvent::Audio {
                side: Side::A, pcm, ..
            } = e
            {
                heard += pcm.len();
            }
        }
    };
    for n in 0..secs * 1000 / ptime_ms {
        let now = t0 + Duration::from_millis(u64::from(ptime_ms * n));
        run_until(&mut m, now);
        let pcm = sine(8000, 1000.0, n as usize * samples, samples);
        let payload: Vec<u8> = pcm.into_iter().map(g711::linear_to_alaw).collect();
        let mut buf = rtp(8, n as u16, n * samples as u32, 5, &payload);
        m.handle_rtp(now, Side::A, addr(A_PEER), &mut buf);
        collect(&mut m);
    }
    run_until(
        &mut m,
        t0 + Duration::from_secs(u64::from(secs)) + Duration::from_millis(300),
    );
    collect(&mut m);
    let ratio = tone_ratio(&far, 8000);
    (far.len(), heard, ratio)
}

#[test]
fn packets_longer_or_shorter_than_the_sdp_said_are_transcoded_and_heard_whole() {
    // sipp's g711a.pcap: 30 ms PCMA packets from a caller whose SDP said nothing of ptime.
    for ptime in [10, 20, 30, 40, 60] {
        let (far, heard, ratio) = pcma_packets_of(ptime, 3);
        // 3 s sent: the far leg gets all of it once the buffer has played out, and then the
        // few frames the decoder conceals after the stream stops (MAX_CONCEAL), nothing more.
        let frame = (8 * ptime) as usize;
        let whole = 24_000 - frame..=24_000 + (MAX_CONCEAL as usize + 1) * frame;
        assert!(
            whole.contains(&far),
            "{ptime} ms packets: the far leg got {far} samples for 24,000 sent"
        );
        // The listener (the recorder, the recogniser) hears the whole 3.3 s that went by:
        // the playout delay and the stream's end as silence, not dropped.
        assert!(
            (26_400 - 2 * frame..=26_400 + frame).contains(&heard),
            "{ptime} ms packets: the listener got {heard} samples for 3.3 s"
        );
        assert!(
            ratio > 100.0,
            "{ptime} ms packets: the tone is clean ({ratio:.0})"
        );
    }
}
