//! Streaming sample-rate conversion between the rates telephony uses (8, 16, 48 kHz): a
//! polyphase windowed-sinc filter for the rational ratio L/M, state kept across calls so that
//! 20 ms frames convert without clicks at their edges.

/// Why a converter could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResampleError {
    /// A rate other than 8000, 16000, 24000 or 48000 Hz.
    #[error("unsupported rate {0} Hz")]
    Rate(u32),
}

const RATES: [u32; 4] = [8000, 16_000, 24_000, 48_000];
/// Filter taps per polyphase branch and per unit of the larger of L and M.
const TAPS_PER_PHASE: usize = 24;

/// A converter from one rate to another (identity when they are equal).
#[derive(Debug, Clone)]
pub struct Resampler {
    up: usize,
    down: usize,
    taps: usize,
    /// The prototype filter (`up * taps` coefficients, gain `up`) split by phase: row `p`
    /// holds phase `p`'s taps in reverse, so that an output sample is the dot product of a
    /// row with `taps` consecutive input samples (a loop the compiler vectorises).
    rows: Vec<f32>,
    buf: Vec<f32>,
    /// Position of the next output in the upsampled domain, relative to `buf[0]`.
    t: usize,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        for r in [from, to] {
            if !RATES.contains(&r) {
                return Err(ResampleError::Rate(r));
            }
        }
        let g = gcd(from, to);
        let (up, down) = ((to / g) as usize, (from / g) as usize);
        let taps = TAPS_PER_PHASE * down.max(1).div_ceil(up.max(1)).max(1);
        let n = up * taps;
        // Cut-off at 90 % of the lower Nyquist frequency, as a fraction of the upsampled rate.
        let fc = 0.45 * f64::from(from.min(to)) / (f64::from(from) * up as f64);
        let mid = (n as f64 - 1.0) / 2.0;
        let filter = (0..n)
            .map(|i| {
                let x = i as f64 - mid;
                let sinc = if x == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
                };
                let w = 2.0 * std::f64::consts::PI * i as f64 / (n as f64 - 1.0);
                let blackman = 0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
                (sinc * blackman * up as f64) as f32
            })
            .collect::<Vec<f32>>();
        let rows = (0..up)
            .flat_map(|p| (0..taps).rev().map(move |j| (p, j)))
            .map(|(p, j)| filter[p + j * up])
            .collect();
        Ok(Self {
            up,
            down,
            taps,
            rows,
            buf: vec![0.0; taps - 1],
            t: (taps - 1) * up,
        })
    }

    /// Converts `input`, appending to `out`; a partial frame's remainder waits for the next
    /// call.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.up == self.down {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend(input.iter().map(|&s| f32::from(s)));
        loop {
            let (n, phase) = (self.t / self.up, self.t % self.up);
            if n >= self.buf.len() {
                break;
            }
            let row = &self.rows[phase * self.taps..(phase + 1) * self.taps];
            let acc = dot(row, &self.buf[n + 1 - self.taps..=n]);
            out.push(acc.round().clamp(-32768.0, 32767.0) as i16);
            self.t += self.down;
        }
        let keep_from = (self.t / self.up)
            .saturating_sub(self.taps - 1)
            .min(self.buf.len());
        self.buf.drain(..keep_from);
        self.t -= keep_from * self.up;
    }
}

/// A dot product in eight lanes (independent sums the compiler can keep in one SIMD register).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    fn power(x: &[i16], freq: f64, rate: u32) -> f64 {
        let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coeff * s1 * s2
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Converts in 20 ms frames, as calls do.
    fn convert(r: &mut Resampler, x: &[i16], from: u32) -> Vec<i16> {
        let mut out = Vec::new();
        for frame in x.chunks(from as usize / 50) {
            r.process(frame, &mut out);
        }
        out
    }

    #[test]
    fn upsampling_keeps_the_tone_and_suppresses_images() {
        let x = sine(1000.0, 8000, 8000, 10_000.0);
        let y = convert(&mut Resampler::new(8000, 48_000).unwrap(), &x, 8000);
        assert!(
            y.len().abs_diff(48_000) <= 6 * TAPS_PER_PHASE,
            "{}",
            y.len()
        );
        let tail = &y[2000..];
        let ratio = rms(tail) / rms(&x[400..]);
        assert!((ratio - 1.0).abs() < 0.06, "gain {ratio}");
        let image = 10.0 * (power(tail, 1000.0, 48_000) / power(tail, 7000.0, 48_000)).log10();
        assert!(image > 50.0, "image rejection {image} dB");
    }

    #[test]
    fn downsampling_removes_what_does_not_fit() {
        let mut r = Resampler::new(48_000, 8000).unwrap();
        let in_band = convert(&mut r, &sine(1000.0, 48_000, 48_000, 10_000.0), 48_000);
        let mut r = Resampler::new(48_000, 8000).unwrap();
        let alias = convert(&mut r, &sine(5000.0, 48_000, 48_000, 10_000.0), 48_000);
        assert!(
            in_band.len().abs_diff(8000) <= TAPS_PER_PHASE,
            "{}",
            in_band.len()
        );
        let suppression = 20.0 * (rms(&in_band[500..]) / rms(&alias[500..]).max(1e-9)).log10();
        assert!(
            suppression > 40.0,
            "5 kHz at 8 kHz output: {suppression} dB below the 1 kHz tone"
        );
    }

    #[test]
    fn round_trip_through_16_khz_is_clean() {
        let x = sine(440.0, 8000, 16_000, 8000.0);
        let mut up = Resampler::new(8000, 16_000).unwrap();
        let mut down = Resampler::new(16_000, 8000).unwrap();
        let y = convert(&mut down, &convert(&mut up, &x, 8000), 16_000);
        // Noise and distortion: what is left after the best-fitting 440 Hz sinusoid (any
        // phase, so the filters' fractional group delay does not count as error).
        let w = &y[2000..14_000];
        let (mut a, mut b) = (0.0f64, 0.0f64);
        let arg = |i: usize| 2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0;
        for (i, &v) in w.iter().enumerate() {
            a += f64::from(v) * arg(i).sin();
            b += f64::from(v) * arg(i).cos();
        }
        let (a, b) = (2.0 * a / w.len() as f64, 2.0 * b / w.len() as f64);
        let (mut fit, mut residual) = (0.0f64, 0.0f64);
        for (i, &v) in w.iter().enumerate() {
            let f = a * arg(i).sin() + b * arg(i).cos();
            fit += f * f;
            residual += (f64::from(v) - f).powi(2);
        }
        let snr = 10.0 * (fit / residual).log10();
        assert!(snr > 45.0, "SNR {snr} dB");
        assert!(
            ((a * a + b * b).sqrt() / 8000.0 - 1.0).abs() < 0.03,
            "amplitude kept"
        );
        assert_eq!(
            Resampler::new(8000, 44_100).unwrap_err(),
            ResampleError::Rate(44_100)
        );
        let mut same = Resampler::new(8000, 8000).unwrap();
        let mut out = Vec::new();
        same.process(&x[..160], &mut out);
        assert_eq!(out, x[..160]);
    }
}
