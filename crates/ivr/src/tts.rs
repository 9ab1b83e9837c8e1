//! Text to speech behind a trait: espeak-ng (Debian) by default, rendered at the call's
//! sample rate and cached by text, voice and rate; recorded prompts come from WAV files.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// Why a prompt could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsError(pub String);

impl std::fmt::Display for TtsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "text to speech: {}", self.0)
    }
}

impl std::error::Error for TtsError {}

/// A speech synthesiser.
pub trait Tts: Send + Sync + std::fmt::Debug {
    /// `text` in `voice` as 16-bit mono PCM at `rate`.
    fn render(&self, text: &str, voice: &str, rate: u32) -> Result<Arc<[i16]>, TtsError>;
}

type Key = (String, String, u32);

/// Prompts kept at most (about 3 s of 8 kHz audio each: ~100 MB at the cap).
const CACHE_CAP: usize = 2048;

/// espeak-ng as a subprocess, with a cache of what it rendered.
#[derive(Debug, Default)]
pub struct EspeakNg {
    /// Words per minute.
    pub speed: u32,
    cache: Mutex<HashMap<Key, Arc<[i16]>>>,
    voices: std::sync::OnceLock<Vec<String>>,
}

impl EspeakNg {
    /// espeak-ng at `speed` words per minute.
    pub fn new(speed: u32) -> Self {
        Self {
            speed,
            cache: Mutex::default(),
            voices: std::sync::OnceLock::new(),
        }
    }

    /// Whether espeak-ng has `voice` (`en-us`, `en-us+m3` for a variant, or a voice file):
    /// espeak-ng itself falls back to its default voice without a word.
    pub fn has_voice(&self, voice: &str) -> bool {
        let base = voice.split('+').next().unwrap_or(voice).to_lowercase();
        self.voices().contains(&base)
    }

    /// espeak-ng's voices: languages, names and files, lower case (empty without espeak-ng).
    pub fn voices(&self) -> &Vec<String> {
        self.voices.get_or_init(|| {
            let out = Command::new("espeak-ng").arg("--voices").output();
            let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            text.unwrap_or_default()
                .lines()
                .skip(1)
                .flat_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    [f.get(1), f.get(3), f.get(4)]
                        .into_iter()
                        .flatten()
                        .map(|s| s.to_lowercase())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
    }

    /// Prompts rendered and kept.
    pub fn cached_count(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.len())
    }

    /// `text` in `voice` at `rate` if it was rendered before (never runs espeak-ng: a media
    /// thread may ask).
    pub fn cached(&self, text: &str, voice: &str, rate: u32) -> Option<Arc<[i16]>> {
        let key = (text.to_owned(), voice.to_owned(), rate);
        self.cache.lock().ok()?.get(&key).cloned()
    }
}

impl Tts for EspeakNg {
    fn render(&self, text: &str, voice: &str, rate: u32) -> Result<Arc<[i16]>, TtsError> {
        let key = (text.to_owned(), voice.to_owned(), rate);
        if let Some(p) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(p);
        }
        if !self.has_voice(voice) {
            return Err(TtsError(format!(
                "espeak-ng has no voice {voice:?} (espeak-ng --voices)"
            )));
        }
        let mut child = Command::new("espeak-ng")
            .args([
                "-v",
                voice,
                "-s",
                &self.speed.to_string(),
                "--stdout",
                "--stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TtsError(format!("espeak-ng: {e} (install espeak-ng)")))?;
        if let Some(mut i) = child.stdin.take() {
            // The text goes on standard input, so nothing in it is read as an option.
            i.write_all(text.as_bytes())
                .map_err(|e| TtsError(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| TtsError(e.to_string()))?;
        if !out.status.success() {
            return Err(TtsError(format!(
                "espeak-ng voice {voice:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let (from, pcm) = crest_media::wav::read_pcm(&out.stdout)
            .map_err(|e| TtsError(format!("espeak-ng's output: {e}")))?;
        let pcm: Arc<[i16]> = resample(&pcm, from, rate).into();
        if let Ok(mut c) = self.cache.lock() {
            // Prompts with a caller's details in them (order numbers) would grow it without
            // end: past the cap, one prompt is forgotten for each new one.
            if c.len() >= CACHE_CAP
                && let Some(old) = c.keys().next().cloned()
            {
                c.remove(&old);
            }
            c.insert(key, pcm.clone());
        }
        Ok(pcm)
    }
}

/// Any rate to any rate with a windowed-sinc low-pass (prompts are rendered once and cached,
/// so clarity matters more than speed here).
pub fn resample(pcm: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || pcm.is_empty() {
        return pcm.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let cutoff = ratio.min(1.0) * 0.95;
    let half = 16i64;
    let n = (pcm.len() as f64 * ratio) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / ratio;
            let c = t.floor() as i64;
            let mut acc = 0.0;
            for k in c - half + 1..=c + half {
                let Some(&s) = usize::try_from(k).ok().and_then(|k| pcm.get(k)) else {
                    continue;
                };
                let x = t - k as f64;
                let sinc = if x.abs() < 1e-9 {
                    cutoff
                } else {
                    (std::f64::consts::PI * x * cutoff).sin() / (std::f64::consts::PI * x)
                };
                let w = 0.5 + 0.5 * (std::f64::consts::PI * x / half as f64).cos();
                acc += f64::from(s) * sinc * w;
            }
            acc.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_a_tone() {
        let x: Vec<i16> = (0..22050)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 22050.0).sin())
                    as i16
            })
            .collect();
        let y = resample(&x, 22050, 8000);
        assert_eq!(y.len(), 8000);
        let peak = y[1000..7000].iter().map(|v| v.abs()).max().unwrap();
        assert!((7000..=8400).contains(&peak), "{peak}");
    }
}
