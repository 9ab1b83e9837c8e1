//! Intent accuracy of the IVR's recogniser on telephone speech, and how fast it decides.
//!
//! 11 phrases of the main menu's three intents × 5 espeak-ng voices × 2 speeds = 110
//! utterances, band-limited to 300–3400 Hz and coded as 8 kHz G.711 μ-law by sox, then 1 % of
//! the 20 ms frames lost (seeded) and concealed by repeating the previous frame, as the media
//! plane's G.711 path does. Each goes through PocketSphinx with the `ask`'s grammar in 20 ms
//! frames, as in a call. Also: off-topic sentences (rejection), digit strings, latency from the
//! end of the speech to the decision (stream time + compute), and the real-time factor.
//!
//! `cargo bench -p crest-ivr --bench intent_accuracy [-- END_OF_SPEECH_MS...]`

#[path = "../tests/common/speech.rs"]
mod speech;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crest_ivr::asr::Recognizer;
use crest_ivr::intent::{classify, spoken_digits};
use crest_ivr::model::Intent;
use crest_ivr::pocketsphinx::{DEBIAN_MODEL, Model, PocketSphinx};
use crest_ivr::{Context, Grammar, load};
use speech::telephone_speech;

const VOICES: [&str; 5] = ["en-us", "en-us+m3", "en-us+f2", "en-gb", "en-us+f4"];
const SPEEDS: [u32; 2] = [150, 185];
const PHRASES: [(&str, &str); 11] = [
    ("where is my order", "order"),
    ("where is my package", "order"),
    ("track my order", "order"),
    ("check my order status", "order"),
    ("i want a refund", "refund"),
    ("i would like a refund please", "refund"),
    ("i want my money back", "refund"),
    ("talk to an agent", "agent"),
    ("speak to a representative", "agent"),
    ("talk to a person", "agent"),
    ("operator", "agent"),
];
const OFF_TOPIC: [&str; 4] = [
    "what time do you close",
    "i forgot my password",
    "do you sell bicycles",
    "how is the weather today",
];
/// The off-topic rejection margin Crest uses (`crest_ivr::pocketsphinx::OFF_TOPIC_MARGIN`).
const MARGIN: f32 = crest_ivr::pocketsphinx::OFF_TOPIC_MARGIN;
const DIGITS: [&str; 2] = ["one two three four", "five six seven eight"];

/// 1 % of 20 ms frames lost and concealed by repeating the last good frame (seeded).
fn lossy(pcm: &[i16], seed: &mut u64) -> (Vec<i16>, usize) {
    let mut out = Vec::with_capacity(pcm.len());
    let mut last = vec![0i16; 160];
    let mut lost = 0;
    for f in pcm.chunks(160) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        if (*seed).is_multiple_of(100) {
            out.extend_from_slice(&last[..f.len()]);
            lost += 1;
        } else {
            out.extend_from_slice(f);
            last[..f.len()].copy_from_slice(f);
        }
    }
    (out, lost)
}

struct Heard {
    text: String,
    /// From the last speech sample to the decision: stream time plus compute.
    latency: Duration,
    cpu: Duration,
}

fn recognise(r: &mut PocketSphinx, grammar: &Grammar, pcm: &[i16]) -> Heard {
    let speech_end = pcm
        .iter()
        .rposition(|s| s.unsigned_abs() > 300)
        .unwrap_or(0);
    let mut audio = pcm.to_vec();
    audio.extend(std::iter::repeat_n(0i16, 16_000));
    let t0 = Instant::now();
    r.start(grammar).unwrap();
    let mut fed = 0usize;
    for f in audio.chunks(160) {
        let t = Instant::now();
        let h = r.feed(f, 8000).unwrap();
        fed += f.len();
        if let Some(h) = h {
            let stream = Duration::from_secs_f64((fed.saturating_sub(speech_end)) as f64 / 8000.0);
            return Heard {
                text: h.text,
                latency: stream + t.elapsed(),
                cpu: t0.elapsed(),
            };
        }
    }
    let h = r.finish().unwrap();
    Heard {
        text: h.text,
        latency: Duration::from_secs(2),
        cpu: t0.elapsed(),
    }
}

fn p(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

fn main() {
    // Arguments: end-of-speech silences in ms, and `m=N` rejection margins.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ends: Vec<u32> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let ends = if ends.is_empty() {
        vec![crest_ivr::pocketsphinx::END_OF_SPEECH_MS]
    } else {
        ends
    };
    let margins: Vec<Option<f32>> = args
        .iter()
        .filter_map(|a| a.strip_prefix("m="))
        .map(|m| m.parse().ok())
        .collect();
    let margins = if margins.is_empty() {
        vec![Some(MARGIN)]
    } else {
        margins
    };
    let flow = load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/flows/main.yaml"),
        &Context::default(),
    )
    .unwrap();
    let Some(crest_ivr::model::Node::Ask(menu)) = flow.node("main_menu").cloned() else {
        panic!("main_menu is an ask");
    };
    let intents: BTreeMap<String, Intent> = menu.intents;
    let grammar = Grammar::Intents(
        intents
            .iter()
            .map(|(k, i)| (k.clone(), i.examples.clone()))
            .collect(),
    );
    let dir = std::env::temp_dir().join(format!("crest-intent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut cases = Vec::new();
    let mut lost_frames = 0;
    let mut frames = 0;
    for v in VOICES {
        for s in SPEEDS {
            for (text, want) in PHRASES {
                let (pcm, lost) = lossy(&telephone_speech(&dir, text, v, s), &mut seed);
                lost_frames += lost;
                frames += pcm.len() / 160;
                cases.push((text, Some(want), v, s, pcm));
            }
            for text in OFF_TOPIC {
                let (pcm, _) = lossy(&telephone_speech(&dir, text, v, s), &mut seed);
                cases.push((text, None, v, s, pcm));
            }
        }
    }
    println!(
        "intent accuracy: {} utterances in grammar ({} phrases × {} voices × {} speeds), {} off-topic; {lost_frames} of {frames} frames lost ({:.2} %)",
        PHRASES.len() * VOICES.len() * SPEEDS.len(),
        PHRASES.len(),
        VOICES.len(),
        SPEEDS.len(),
        OFF_TOPIC.len() * VOICES.len() * SPEEDS.len(),
        100.0 * lost_frames as f64 / frames as f64
    );
    let model = Model::load(Path::new(DEBIAN_MODEL)).unwrap();
    for (end_ms, margin) in ends
        .iter()
        .flat_map(|e| margins.iter().map(move |m| (*e, *m)))
    {
        let mut r = PocketSphinx::new(model.clone(), margin).with_end_of_speech(end_ms);
        let (mut right, mut n, mut rejected, mut off, mut misrouted) = (0, 0, 0, 0, 0);
        let mut lat = Vec::new();
        let (mut cpu, mut audio) = (Duration::ZERO, 0.0);
        let mut wrong = Vec::new();
        for (text, want, v, s, pcm) in &cases {
            let h = recognise(&mut r, &grammar, pcm);
            let got = classify(&intents, &h.text).map(|(i, _)| i);
            cpu += h.cpu;
            audio += pcm.len() as f64 / 8000.0 + 2.0;
            match want {
                Some(w) => {
                    n += 1;
                    lat.push(h.latency);
                    if got == Some(*w) {
                        right += 1;
                    } else {
                        wrong.push(format!("{text:?} ({v} {s}) → {:?}", h.text));
                    }
                }
                None => {
                    off += 1;
                    if got.is_none() {
                        rejected += 1;
                    } else {
                        misrouted += 1;
                    }
                }
            }
        }
        let mut digits_ok = 0;
        for v in VOICES {
            for s in SPEEDS {
                for d in DIGITS {
                    let (pcm, _) = lossy(&telephone_speech(&dir, d, v, s), &mut seed);
                    let h = recognise(&mut r, &Grammar::Digits, &pcm);
                    let want: String = spoken_digits(d).unwrap_or_default();
                    digits_ok += usize::from(spoken_digits(&h.text).as_deref() == Some(&want));
                }
            }
        }
        let rtf = cpu.as_secs_f64() / audio;
        println!("\nend of speech after {end_ms} ms of silence, off-topic margin {margin:?}:");
        println!(
            "  in grammar: {right}/{n} right = {:.1} % (target ≥ 95 %)",
            100.0 * f64::from(right) / f64::from(n)
        );
        println!(
            "  off-topic: {rejected}/{off} rejected (asked again), {misrouted} sent to an intent"
        );
        println!(
            "  digit strings exact: {digits_ok}/{} (read back to the caller for confirmation)",
            VOICES.len() * SPEEDS.len() * DIGITS.len()
        );
        println!(
            "  end of speech → decision: p50 {:?}, p95 {:?}, max {:?} (target p95 < 300 ms)",
            p(&mut lat, 0.5),
            p(&mut lat, 0.95),
            p(&mut lat, 1.0)
        );
        println!(
            "  real-time factor (CPU ÷ audio, both decoders, one core): {rtf:.4} → ≈ {:.0} recognitions at once per core, {:.0} on this machine's 2 cores",
            1.0 / rtf,
            2.0 / rtf
        );
        for w in wrong {
            println!("  wrong: {w}");
        }
    }
}
