//! Sealing throughput next to the machine's raw AES-256-GCM speed (the limit): the raw
//! cipher on 64 KiB, the chunk sealer on 64 KiB, sealing plus writing to a file (without and
//! with the per-chunk fdatasync), and one second of a stereo call through the whole recorder
//! (align, encode, seal).
use std::io::Write as _;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use crest_media::bridge::Side;
use crest_recording::{DataKey, Format, Recorder, RecorderConfig, RecordingId, Sealer};
use divan::counter::BytesCount;

fn main() {
    divan::main();
}

const CHUNK: usize = 64 * 1024;

#[divan::bench]
fn raw_aes_256_gcm_64k(b: divan::Bencher<'_, '_>) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    b.counter(BytesCount::new(CHUNK)).bench_local(|| {
        n += 1;
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&n.to_be_bytes());
        buf.truncate(CHUNK);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&[0u8; 46][..]),
            &mut buf,
        )
        .unwrap();
    });
}

/// A sealer for a new recording, a chunk of plaintext and an output buffer.
fn sealer() -> (Sealer, Vec<u8>, Vec<u8>) {
    let id = RecordingId::from_bytes([1; 16]);
    let dk = DataKey::generate().unwrap();
    let s = Sealer::new(&id, &dk).unwrap();
    (s, vec![0x55u8; CHUNK], Vec::with_capacity(CHUNK + 64))
}

#[divan::bench]
fn seal_chunk_64k(b: divan::Bencher<'_, '_>) {
    let (mut s, plain, mut out) = sealer();
    b.counter(BytesCount::new(CHUNK)).bench_local(|| {
        out.clear();
        s.seal(&plain, false, &mut out);
    });
}

fn seal_and_write(b: divan::Bencher<'_, '_>, sync: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("bench.crec")).unwrap();
    let (mut s, plain, mut out) = sealer();
    b.counter(BytesCount::new(CHUNK)).bench_local(|| {
        out.clear();
        s.seal(&plain, false, &mut out);
        f.write_all(&out).unwrap();
        if sync {
            f.sync_data().unwrap();
        }
    });
}

#[divan::bench]
fn seal_and_write_64k(b: divan::Bencher<'_, '_>) {
    seal_and_write(b, false);
}

#[divan::bench]
fn seal_write_and_fdatasync_64k(b: divan::Bencher<'_, '_>) {
    seal_and_write(b, true);
}

/// One second of a stereo 8 kHz call (50 frames per leg) through the recorder: 32 KB of PCM.
#[divan::bench(args = ["wav", "wav-pcmu", "opus"])]
fn recorder_call_second(b: divan::Bencher<'_, '_>, format: &str) {
    let format = Format::from_name(format).unwrap();
    let rate = if format == Format::OggOpus {
        16000
    } else {
        8000
    };
    let id = RecordingId::from_bytes([1; 16]);
    let dk = DataKey::generate().unwrap();
    let t0 = Instant::now();
    let cfg = RecorderConfig {
        format,
        rate,
        ..RecorderConfig::default()
    };
    let mut r = Recorder::new(t0, &id, &dk, cfg).unwrap();
    let a: Vec<i16> = (0..160).map(|i| (i * 97 % 4000) as i16).collect();
    let bb: Vec<i16> = (0..160).map(|i| (i * 31 % 3000) as i16).collect();
    let mut t = t0;
    b.counter(BytesCount::new(32_000usize)).bench_local(|| {
        for _ in 0..50 {
            t += Duration::from_millis(20);
            r.handle_audio(t, Side::A, 8000, &a);
            r.handle_audio(t, Side::B, 8000, &bb);
            r.handle_timeout(t);
            while let Some(w) = r.poll_write() {
                divan::black_box(w);
            }
        }
    });
}
