//! Telephone speech for the IVR's tests and benchmark: espeak-ng says it, sox band-limits it to
//! 300–3400 Hz and codes it as 8 kHz G.711 μ-law, as a call carries it (ASR.md's recipe).
#![allow(dead_code)] // each user takes what it needs

use std::path::Path;
use std::process::Command;

use crest_ivr::Grammar;
use crest_ivr::asr::Recognizer;

/// 8 kHz 16-bit telephone audio of `text` spoken by espeak-ng `voice` at `speed` wpm.
pub(crate) fn telephone_speech(dir: &Path, text: &str, voice: &str, speed: u32) -> Vec<i16> {
    let raw = dir.join(format!("{}-{voice}-{speed}.wav", text.replace(' ', "_")));
    let tel = raw.with_extension("ulaw.wav");
    let pcm = raw.with_extension("raw");
    let run = |c: &mut Command| {
        let out = c
            .output()
            .expect("espeak-ng and sox (scripts/setup.sh installs them)");
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-w"])
        .arg(&raw)
        .arg(text));
    run(Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-e", "u-law"])
        .arg(&tel)
        .args(["sinc", "300-3400"]));
    run(Command::new("sox")
        .arg(&tel)
        .args([
            "-t", "raw", "-r", "8000", "-b", "16", "-e", "signed", "-c", "1",
        ])
        .arg(&pcm));
    let b = std::fs::read(&pcm).unwrap();
    b.chunks(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Feeds `pcm` (and 1 s of silence) in 20 ms frames until the recogniser hears an utterance.
pub(crate) fn hear(r: &mut dyn Recognizer, grammar: &Grammar, pcm: &[i16]) -> String {
    r.start(grammar).unwrap();
    let mut audio = pcm.to_vec();
    audio.extend(std::iter::repeat_n(0i16, 8000));
    for f in audio.chunks(160) {
        if let Some(h) = r.feed(f, 8000).unwrap() {
            return h.text;
        }
    }
    r.finish().unwrap().text
}
