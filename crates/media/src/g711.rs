//! G.711 μ-law and A-law (ITU-T G.711): 16-bit linear PCM ⇄ 8-bit codes, 8 kHz.
//!
//! Encoding follows the segment/quantisation rules of the recommendation (the same bit-exact
//! results as the reference `g711.c`); decoding uses 256-entry tables built once.

use std::sync::OnceLock;

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Encodes one linear sample as μ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    // s is in 132..=32767: its top bit (7..=14) gives the segment.
    let exponent = (31 - (s as u32).leading_zeros() - 7) as i32;
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Decodes one μ-law code.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ulaw_table()[usize::from(code)]
}

/// Encodes one linear sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let s = i32::from(sample);
    let (sign, mag) = if s >= 0 {
        (0xD5u8, s)
    } else {
        (0x55u8, -s - 1)
    };
    let mag = mag.min(32_767) >> 3; // 13-bit magnitude
    let code = if mag < 32 {
        (mag >> 1) as u8
    } else {
        let exponent = 31 - (mag as u32).leading_zeros() - 4; // 1..=7
        let mantissa = (mag >> exponent) & 0x0F;
        ((exponent as u8) << 4) | mantissa as u8
    };
    code ^ sign
}

/// Decodes one A-law code.
pub fn alaw_to_linear(code: u8) -> i16 {
    alaw_table()[usize::from(code)]
}

fn ulaw_table() -> &'static [i16; 256] {
    static T: OnceLock<[i16; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0i16; 256];
        for (code, slot) in t.iter_mut().enumerate() {
            let u = !(code as u8);
            let exponent = i32::from((u >> 4) & 0x07);
            let mantissa = i32::from(u & 0x0F);
            let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
            *slot = if u & 0x80 != 0 { -magnitude } else { magnitude } as i16;
        }
        t
    })
}

fn alaw_table() -> &'static [i16; 256] {
    static T: OnceLock<[i16; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0i16; 256];
        for (code, slot) in t.iter_mut().enumerate() {
            let a = (code as u8) ^ 0x55;
            let exponent = i32::from((a >> 4) & 0x07);
            let mantissa = i32::from(a & 0x0F);
            let magnitude = match exponent {
                0 => (mantissa << 4) + 8,
                e => ((mantissa << 4) + 0x108) << (e - 1),
            };
            *slot = if a & 0x80 != 0 { magnitude } else { -magnitude } as i16;
        }
        t
    })
}

/// Encodes a block of samples as μ-law into `out` (cleared first).
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Decodes a block of μ-law codes into `out` (cleared first).
pub fn decode_ulaw(codes: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(codes.iter().map(|&c| ulaw_to_linear(c)));
}

/// Encodes a block of samples as A-law into `out` (cleared first).
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.clear();
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Decodes a block of A-law codes into `out` (cleared first).
pub fn decode_alaw(codes: &[u8], out: &mut Vec<i16>) {
    out.clear();
    out.extend(codes.iter().map(|&c| alaw_to_linear(c)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_values() {
        // Values of the ITU-T reference implementation.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
    }

    #[test]
    fn codes_round_trip_through_linear() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                code | if code == 0x7F { 0x80 } else { 0 },
                "μ {code:#x}"
            );
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A {code:#x}");
        }
    }

    fn snr_db(law: fn(i16) -> u8, inv: fn(u8) -> i16) -> f64 {
        let (mut sig, mut noise) = (0.0f64, 0.0f64);
        for n in 0..8000 {
            let x = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(n) / 8000.0).sin())
                as i16;
            let y = inv(law(x));
            sig += f64::from(x).powi(2);
            noise += (f64::from(x) - f64::from(y)).powi(2);
        }
        10.0 * (sig / noise).log10()
    }

    #[test]
    fn a_tone_keeps_its_signal_to_noise_ratio() {
        assert!(snr_db(linear_to_ulaw, ulaw_to_linear) > 35.0);
        assert!(snr_db(linear_to_alaw, alaw_to_linear) > 35.0);
    }

    proptest! {
        #[test]
        fn quantisation_error_is_bounded(x in any::<i16>()) {
            // The step of the segment a sample falls in bounds the error (half a step each way
            // plus the bias rounding at the top segment).
            let e_u = (i32::from(x) - i32::from(ulaw_to_linear(linear_to_ulaw(x)))).abs();
            let e_a = (i32::from(x) - i32::from(alaw_to_linear(linear_to_alaw(x)))).abs();
            let step = (i32::from(x).abs() / 16).max(16);
            prop_assert!(e_u <= step + 132, "μ-law {x}: error {e_u}");
            prop_assert!(e_a <= step + 16, "A-law {x}: error {e_a}");
        }
    }
}
