//! WAV prompts: 16-bit PCM (mono, or stereo mixed down) at 8, 16, 24 or 48 kHz, read into a
//! [`Prompt`] that any number of calls can play. A file that is not such a WAV gets an error
//! that says what is wrong with it, never a panic.

use crate::bridge::Prompt;

/// Why bytes are not a playable WAV file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// No `RIFF....WAVE` header.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A chunk runs past the end of the file.
    #[error("truncated: the {0} chunk runs past the end of the file")]
    Truncated(&'static str),
    /// No `fmt ` chunk before the data.
    #[error("no fmt chunk before the data")]
    NoFormat,
    /// No `data` chunk.
    #[error("no data chunk")]
    NoData,
    /// A format other than 16-bit PCM, mono or stereo.
    #[error("unsupported format: {0} (use 16-bit PCM, mono or stereo)")]
    Format(String),
    /// A sample rate Crest does not play.
    #[error("unsupported sample rate {0} Hz (use 8000, 16000, 24000 or 48000)")]
    Rate(u32),
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Reads a WAV file's bytes into a prompt (at a rate the media plane plays: 8, 16, 24 or
/// 48 kHz).
pub fn read(bytes: &[u8]) -> Result<Prompt, WavError> {
    let (rate, pcm) = read_pcm(bytes)?;
    if ![8000, 16_000, 24_000, 48_000].contains(&rate) {
        return Err(WavError::Rate(rate));
    }
    Ok(Prompt {
        rate,
        pcm: pcm.into(),
    })
}

/// Reads a 16-bit PCM WAV file (mono, or stereo mixed to mono) at whatever rate it has.
pub fn read_pcm(bytes: &[u8]) -> Result<(u32, Vec<i16>), WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32_at(bytes, at + 4) as usize;
        let body = at + 8;
        let end = body.checked_add(len).filter(|&e| e <= bytes.len());
        match id {
            b"fmt " => {
                let end = end.ok_or(WavError::Truncated("fmt"))?;
                if len < 16 {
                    return Err(WavError::Truncated("fmt"));
                }
                let b = &bytes[body..end];
                format = Some((u16_at(b, 0), u16_at(b, 2), u32_at(b, 4), u16_at(b, 14)));
            }
            b"data" => {
                let (tag, channels, rate, bits) = format.ok_or(WavError::NoFormat)?;
                // WAVE_FORMAT_PCM, or WAVE_FORMAT_EXTENSIBLE carrying PCM.
                if !(tag == 1 || tag == 0xFFFE) || bits != 16 || !(1..=2).contains(&channels) {
                    return Err(WavError::Format(format!(
                        "format tag {tag}, {bits}-bit, {channels} channel(s)"
                    )));
                }
                // A writer that never fixed up the length leaves 0 or 0xFFFFFFFF: take the rest.
                let end = end.unwrap_or(bytes.len());
                let data = &bytes[body..end];
                let frame = 2 * usize::from(channels);
                let pcm: Vec<i16> = data
                    .chunks_exact(frame)
                    .map(|f| {
                        let l = i32::from(i16::from_le_bytes([f[0], f[1]]));
                        if channels == 2 {
                            ((l + i32::from(i16::from_le_bytes([f[2], f[3]]))) / 2) as i16
                        } else {
                            l as i16
                        }
                    })
                    .collect();
                return Ok((rate, pcm));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(len + (len & 1));
    }
    Err(if format.is_some() {
        WavError::NoData
    } else {
        WavError::NoFormat
    })
}

/// Writes mono 16-bit PCM as a WAV file (for tests and tools that make prompts).
pub fn write(rate: u32, pcm: &[i16]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + pcm.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_mixes_stereo_down() {
        let pcm: Vec<i16> = (0..800).map(|i| (i * 40 - 16000) as i16).collect();
        let p = read(&write(16_000, &pcm)).unwrap();
        assert_eq!((p.rate, &p.pcm[..]), (16_000, &pcm[..]));
        // Stereo, with a LIST chunk of odd length before the data.
        let mut w = write(8000, &[]);
        w[22] = 2; // channels
        let data_at = w.len() - 8;
        let mut tail = w.split_off(data_at);
        w.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        tail.truncate(4);
        tail.extend_from_slice(&8u32.to_le_bytes());
        for s in [100i16, 300, -50, 50] {
            tail.extend_from_slice(&s.to_le_bytes());
        }
        w.extend_from_slice(&tail);
        let p = read(&w).unwrap();
        assert_eq!(&p.pcm[..], &[200, 0]);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let good = write(8000, &[1, 2, 3]);
        assert_eq!(read(b"hello").unwrap_err(), WavError::NotWav);
        let mut eight_bit = good.clone();
        eight_bit[34] = 8;
        assert!(matches!(read(&eight_bit), Err(WavError::Format(_))));
        let mut odd_rate = good.clone();
        odd_rate[24..28].copy_from_slice(&44_100u32.to_le_bytes());
        assert_eq!(read(&odd_rate).unwrap_err(), WavError::Rate(44_100));
        assert_eq!(read(&good[..30]).unwrap_err(), WavError::Truncated("fmt"));
        assert_eq!(read(&good[..36]).unwrap_err(), WavError::NoData);
        let mut no_fmt = good.clone();
        no_fmt[12..16].copy_from_slice(b"junk");
        assert_eq!(read(&no_fmt).unwrap_err(), WavError::NoFormat);
        // A streaming writer's unset data length: the rest of the file is the data.
        let mut open = good;
        open[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(&read(&open).unwrap().pcm[..], &[1, 2, 3]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read(&bytes);
        }

        #[test]
        fn mutated_files_never_panic(i in 0usize..50, b in any::<u8>()) {
            let mut w = write(8000, &[5; 3]);
            let i = i % w.len();
            w[i] = b;
            let _ = read(&w);
        }
    }
}
