//! Call quality: an E-model (ITU-T G.107) estimate of the listening MOS from packet loss,
//! one-way delay and the codec's impairment figures (ITU-T G.113 Appendix I).

/// A codec's equipment impairment (Ie) and packet-loss robustness (Bpl).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor.
    pub ie: f64,
    /// Packet-loss robustness factor.
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with packet-loss concealment (G.113: Ie 0, Bpl 25.1).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
    /// G.722 (wideband figures mapped to the narrowband scale: Ie 0, Bpl 20).
    pub const G722: Self = Self { ie: 0.0, bpl: 20.0 };
    /// Opus at speech bitrates with in-band FEC (no G.113 figure: Ie 0, Bpl 30, conservative).
    pub const OPUS: Self = Self { ie: 0.0, bpl: 30.0 };
}

/// The transmission rating R (0–100) for `loss` (fraction 0..1, random loss) and one-way
/// `delay_ms` (mouth to ear: network, jitter buffer, packetisation).
pub fn r_factor(codec: CodecImpairment, loss: f64, delay_ms: f64) -> f64 {
    let ppl = (loss * 100.0).clamp(0.0, 100.0);
    let ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl);
    let d = delay_ms.max(0.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    (93.2 - id - ie_eff).clamp(0.0, 100.0)
}

/// The MOS (1–4.5) for a transmission rating R (G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// The MOS estimate for a leg.
pub fn mos(codec: CodecImpairment, loss: f64, delay_ms: f64) -> f64 {
    mos_from_r(r_factor(codec, loss, delay_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_lossy_and_slow_calls_rank_as_expected() {
        let clean = mos(CodecImpairment::G711_PLC, 0.0, 40.0);
        assert!((4.3..=4.45).contains(&clean), "{clean}");
        let lossy = mos(CodecImpairment::G711_PLC, 0.05, 40.0);
        assert!((3.3..4.0).contains(&lossy), "5 % loss: {lossy}");
        let slow = mos(CodecImpairment::G711_PLC, 0.0, 400.0);
        assert!(slow < 3.8 && slow > 2.5, "400 ms: {slow}");
        assert!(
            mos(CodecImpairment::OPUS, 0.05, 40.0) > lossy,
            "Opus FEC holds up better"
        );
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
    }
}
