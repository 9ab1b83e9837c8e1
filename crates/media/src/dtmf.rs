//! DTMF: RFC 4733 telephone-events (parse, generate, report each key once despite the
//! end-of-event redundancy and duplicates) and in-band tone detection with the Goertzel
//! algorithm for trunks that send keys as audio.

use crate::rtp::RtpPacket;

/// The keys of event codes 0–15 (RFC 4733 §3.2).
const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];

/// The key of an event code (none for flash and line events).
pub fn key(code: u8) -> Option<char> {
    KEYS.get(usize::from(code)).copied()
}

/// The event code of a key.
pub fn event_code(key: char) -> Option<u8> {
    KEYS.iter()
        .position(|&k| k == key.to_ascii_uppercase())
        .map(|i| i as u8)
}

/// Why a telephone-event payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtmfError {
    /// Fewer than 4 bytes.
    #[error("telephone-event payload shorter than 4 bytes")]
    Truncated,
    /// An event code that is not a DTMF key (16 and up: flash and line events).
    #[error("event {0} is not a DTMF key")]
    NotDtmf(u8),
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The key.
    pub key: char,
    /// The E bit: the last packets of the event.
    pub end: bool,
    /// Volume, −dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first 4 bytes of a payload (redundant blocks after them are ignored).
    pub fn parse(b: &[u8]) -> Result<Self, DtmfError> {
        let [event, flags, d0, d1] = *b.first_chunk::<4>().ok_or(DtmfError::Truncated)?;
        let key = *KEYS
            .get(usize::from(event))
            .ok_or(DtmfError::NotDtmf(event))?;
        Ok(Self {
            key,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The 4-byte payload.
    pub fn to_bytes(self) -> [u8; 4] {
        let code = event_code(self.key).unwrap_or(0);
        let d = self.duration.to_be_bytes();
        [
            code,
            u8::from(self.end) << 7 | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// The payloads that send `key` for `duration` timestamp units, one every `step` units
/// (160 at 8 kHz and 20 ms), the last one three times with the E bit (RFC 4733 §2.5.1.4).
/// All share the event's RTP timestamp; the first goes with the marker bit.
pub fn event_payloads(key: char, duration: u16, step: u16) -> Vec<[u8; 4]> {
    let step = step.max(1);
    let mut out = Vec::new();
    let mut d = step.min(duration);
    loop {
        let done = d >= duration;
        let ev = TelephoneEvent {
            key,
            end: done,
            volume: 10,
            duration: d,
        };
        out.push(ev.to_bytes());
        if done {
            out.push(ev.to_bytes());
            out.push(ev.to_bytes());
            return out;
        }
        d = d.saturating_add(step).min(duration);
    }
}

/// Reports each received telephone-event once: an event is identified by its RTP timestamp,
/// so repeats, the redundant end packets and duplicates are not reported again, and a lost
/// first packet does not lose the key.
#[derive(Debug, Default)]
pub struct EventReceiver {
    last: Option<(u32, u32)>,
}

impl EventReceiver {
    /// A receiver with no event seen.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key, the first time an event's packet arrives; `None` otherwise.
    pub fn handle(&mut self, p: &RtpPacket<'_>) -> Option<char> {
        let ev = TelephoneEvent::parse(p.payload).ok()?;
        let id = (p.ssrc, p.timestamp);
        if self.last == Some(id) {
            return None;
        }
        self.last = Some(id);
        Some(ev.key)
    }
}

/// The key of a SIP INFO body, the fallback when neither RFC 4733 nor in-band tones get
/// through: `application/dtmf-relay` (`Signal=5` and `Duration=160` lines) or
/// `application/dtmf` (the key alone).
pub fn parse_info_body(content_type: &str, body: &str) -> Option<char> {
    let ctype = content_type.split(';').next().unwrap_or("").trim();
    let key = if ctype.eq_ignore_ascii_case("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (name, value) = l.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim())
        })?
    } else if ctype.eq_ignore_ascii_case("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = key.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        // Some phones send event codes (10 for *, 11 for #).
        return key
            .parse::<u8>()
            .ok()
            .and_then(|n| KEYS.get(usize::from(n)).copied());
    };
    event_code(c).map(|_| c.to_ascii_uppercase())
}

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The event codes of the keypad, row by row (1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D).
const PAD: [u8; 16] = [1, 2, 3, 12, 4, 5, 6, 13, 7, 8, 9, 14, 10, 0, 11, 15];
const BLOCK: usize = 205; // 25.6 ms at 8 kHz: the classic size for DTMF bins

/// `samples` of the dual tone of `key` at `rate` Hz, each tone at -10 dBFS: in-band DTMF for a
/// leg that has no telephone-event. `None` for a key that is not a DTMF key.
pub fn tone_pcm(key: char, rate: u32, samples: usize) -> Option<Vec<i16>> {
    let code = event_code(key)?;
    let idx = PAD.iter().position(|&c| c == code)?;
    let (row, col) = (ROWS[idx / 4], COLS[idx % 4]);
    let w = |f: f64, i: usize| (2.0 * std::f64::consts::PI * f * i as f64 / f64::from(rate)).sin();
    Some(
        (0..samples)
            .map(|i| (5000.0 * (w(row, i) + w(col, i))) as i16)
            .collect(),
    )
}

/// The power of one frequency in a block of samples (the Goertzel algorithm): the detector's
/// filter, also used by tests and tools that check a tone crossed a call.
pub fn goertzel_power(samples: &[f64], freq: f64, rate: u32) -> f64 {
    let rate = f64::from(rate);
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// In-band DTMF detector for 8 kHz PCM: a key is reported once when two consecutive blocks
/// hold the same row and column tones, strong against the rest of the signal and within the
/// twist limits; it can repeat only after a block without it.
#[derive(Debug, Default)]
pub struct ToneDetector {
    buf: Vec<f64>,
    candidate: Option<char>,
    reported: Option<char>,
}

impl ToneDetector {
    /// A detector for 8 kHz audio.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds samples; the keys recognised in them.
    pub fn push(&mut self, pcm: &[i16]) -> Vec<char> {
        let mut keys = Vec::new();
        for &s in pcm {
            self.buf.push(f64::from(s));
            if self.buf.len() == BLOCK {
                let key = Self::classify(&self.buf);
                self.buf.clear();
                match key {
                    Some(k) if self.candidate == Some(k) && self.reported != Some(k) => {
                        self.reported = Some(k);
                        keys.push(k);
                    }
                    Some(k) => self.candidate = Some(k),
                    None => {
                        self.candidate = None;
                        self.reported = None;
                    }
                }
            }
        }
        keys
    }

    fn classify(block: &[f64]) -> Option<char> {
        let energy: f64 = block.iter().map(|x| x * x).sum();
        // Below about −40 dBFS: silence.
        if energy < (BLOCK as f64) * 330.0 * 330.0 / 2.0 {
            return None;
        }
        let power = |f: f64| goertzel_power(block, f, 8000);
        let rows: Vec<f64> = ROWS.iter().map(|&f| power(f)).collect();
        let cols: Vec<f64> = COLS.iter().map(|&f| power(f)).collect();
        let best = |v: &[f64]| {
            v.iter().enumerate().fold(
                (0, 0.0f64),
                |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) },
            )
        };
        let ((r, rp), (c, cp)) = (best(&rows), best(&cols));
        // Each tone clearly above the other candidates of its group.
        let second = |v: &[f64], b: usize| {
            v.iter()
                .enumerate()
                .filter(|&(i, _)| i != b)
                .map(|(_, &x)| x)
                .fold(0.0, f64::max)
        };
        if rp < 4.0 * second(&rows, r) || cp < 4.0 * second(&cols, c) {
            return None;
        }
        // Twist: the two tones within 8 dB of each other (6.3× in power).
        if rp > 6.3 * cp || cp > 6.3 * rp {
            return None;
        }
        // The two tones carry most of the energy (Goertzel power of a pure tone is about
        // N/2 · energy, so compare against that).
        if (rp + cp) < 0.5 * (BLOCK as f64 / 2.0) * energy {
            return None;
        }
        Some(KEYS[usize::from(PAD[r * 4 + c])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711;

    fn tone(key: char, ms: usize) -> Vec<i16> {
        tone_pcm(key, 8000, ms * 8).unwrap()
    }

    #[test]
    fn rfc4733_event_is_reported_once_despite_repeats_and_end_redundancy() {
        let payloads = event_payloads('5', 800, 160);
        assert_eq!(
            payloads.len(),
            5 + 2,
            "160..800 in steps, then two more end packets"
        );
        let mut rx = EventReceiver::new();
        let mut got = Vec::new();
        for (i, pl) in payloads.iter().enumerate().skip(1) {
            // The first packet is lost; one is duplicated.
            for _ in 0..if i == 3 { 2 } else { 1 } {
                let p = RtpPacket {
                    marker: i == 0,
                    payload_type: 101,
                    sequence: i as u16,
                    timestamp: 8000,
                    ssrc: 1,
                    payload: pl,
                };
                got.extend(rx.handle(&p));
            }
        }
        let second = RtpPacket {
            marker: true,
            payload_type: 101,
            sequence: 20,
            timestamp: 9600,
            ssrc: 1,
            payload: &payloads[0],
        };
        got.extend(rx.handle(&second));
        assert_eq!(
            got,
            ['5', '5'],
            "one report per event (the second is a new press)"
        );
        let ev = TelephoneEvent::parse(&payloads[6]).unwrap();
        assert!(ev.end && ev.duration == 800 && ev.key == '5');
        assert_eq!(
            TelephoneEvent::parse(&[16, 0, 0, 0]),
            Err(DtmfError::NotDtmf(16))
        );
        assert_eq!(TelephoneEvent::parse(&[1, 2]), Err(DtmfError::Truncated));
    }

    #[test]
    fn sip_info_bodies() {
        assert_eq!(
            parse_info_body("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Some('5')
        );
        assert_eq!(
            parse_info_body("Application/DTMF-Relay", "signal= #\nDuration=100"),
            Some('#')
        );
        assert_eq!(
            parse_info_body("application/dtmf-relay", "Signal=11\r\n"),
            Some('#'),
            "event code form"
        );
        assert_eq!(parse_info_body("application/dtmf", "a"), Some('A'));
        assert_eq!(
            parse_info_body("application/dtmf-relay", "Duration=160"),
            None
        );
        assert_eq!(parse_info_body("application/dtmf-relay", "Signal=X"), None);
        assert_eq!(parse_info_body("text/plain", "Signal=5"), None);
    }

    #[test]
    fn every_key_is_detected_in_band_once_even_through_ulaw() {
        for key in "0123456789*#ABCD".chars() {
            let mut pcm = tone(key, 60);
            pcm.extend(std::iter::repeat_n(0, 400));
            let mut det = ToneDetector::new();
            assert_eq!(det.push(&pcm), [key], "{key}");
            let mut codes = Vec::new();
            g711::encode_ulaw(&pcm, &mut codes);
            let mut back = Vec::new();
            g711::decode_ulaw(&codes, &mut back);
            assert_eq!(ToneDetector::new().push(&back), [key], "{key} via μ-law");
        }
    }

    #[test]
    fn digits_in_a_row_single_tones_and_noise_are_not_confused() {
        let mut pcm = Vec::new();
        for key in "1234".chars() {
            pcm.extend(tone(key, 60));
            pcm.extend(std::iter::repeat_n(0, 400));
        }
        assert_eq!(ToneDetector::new().push(&pcm), ['1', '2', '3', '4']);
        let one_khz: Vec<i16> = (0..4000)
            .map(|n| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        assert!(ToneDetector::new().push(&one_khz).is_empty());
        let mut x: u32 = 1;
        let noise: Vec<i16> = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 20) as i16 - 2048
            })
            .collect();
        assert!(ToneDetector::new().push(&noise).is_empty());
    }
}
