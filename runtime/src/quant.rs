//! Symmetric int4/int8 weight quantisation: the one definition of the layout
//! that the quantizer writes, bundles carry and the matmul kernels read.
//!
//! A weight `W` is `[N, K]` row-major (PyTorch `Linear`: `[out, in]`). Each
//! row is cut into groups of `group` values along K; a group's scale is
//! `s = max|w| / Q` (Q = 7 for q4, 127 for q8) and its values are
//! `q = clamp(round(w / s), -Q, Q)`, so `|w - q s| <= s / 2`.
//!
//! - q4 `values`: 8 per u32; element `k` of row `n` is the nibble at bits
//!   `4 * (k % 8)` of word `n * K/8 + k / 8`, stored as `q + 8` (1..=15).
//! - q8 `values`: 4 per u32; element `k` is the byte at bits `8 * (k % 4)` of
//!   word `n * K/4 + k / 4`, as two's-complement i8 (ready for `dot4I8Packed`).
//! - `scales`: f16 `[N, K / group]` row-major, two per u32 (even index in the
//!   low half), padded with a zero half to whole words.

use half::f16;
use thiserror::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantKind {
    Q4,
    Q8,
}

impl QuantKind {
    pub fn bits(self) -> usize {
        match self {
            QuantKind::Q4 => 4,
            QuantKind::Q8 => 8,
        }
    }
    /// Largest magnitude of a quantised value.
    pub fn qmax(self) -> f32 {
        match self {
            QuantKind::Q4 => 7.0,
            QuantKind::Q8 => 127.0,
        }
    }
    /// Values per u32 word.
    pub fn per_word(self) -> usize {
        32 / self.bits()
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QuantError {
    #[error("{kind:?} needs the group size ({group}) to be a positive multiple of {per_word}")]
    BadGroup {
        kind: QuantKind,
        group: usize,
        per_word: usize,
    },
    #[error("input dimension {k} is not a multiple of the group size {group}")]
    Ragged { k: usize, group: usize },
    #[error("{got} values for a [{n}, {k}] weight")]
    Length { got: usize, n: usize, k: usize },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    pub kind: QuantKind,
    pub n: usize,
    pub k: usize,
    pub group: usize,
    pub values: Vec<u32>,
    pub scales: Vec<f16>,
}

pub fn check_shape(kind: QuantKind, n: usize, k: usize, group: usize) -> Result<(), QuantError> {
    if group == 0 || group % kind.per_word() != 0 {
        return Err(QuantError::BadGroup {
            kind,
            group,
            per_word: kind.per_word(),
        });
    }
    if k % group != 0 {
        return Err(QuantError::Ragged { k, group });
    }
    let _ = n;
    Ok(())
}

/// Quantises `w` (`[n, k]` row-major).
pub fn quantize(
    w: &[f32],
    n: usize,
    k: usize,
    group: usize,
    kind: QuantKind,
) -> Result<Quantized, QuantError> {
    check_shape(kind, n, k, group)?;
    if w.len() != n * k {
        return Err(QuantError::Length { got: w.len(), n, k });
    }
    let per_word = kind.per_word();
    let mut values = vec![0u32; n * k / per_word];
    let mut scales = Vec::with_capacity(n * k / group);
    for (g, chunk) in w.chunks(group).enumerate() {
        let absmax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // The scale is stored as f16: quantise against the stored value.
        let scale = f16::from_f32(absmax / kind.qmax());
        scales.push(scale);
        let s = scale.to_f32();
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for (j, &v) in chunk.iter().enumerate() {
            let q = (v * inv).round().clamp(-kind.qmax(), kind.qmax()) as i32;
            let code = match kind {
                QuantKind::Q4 => (q + 8) as u32,
                QuantKind::Q8 => (q as i8 as u8) as u32,
            };
            let idx = g * group + j;
            values[idx / per_word] |= code << (kind.bits() * (idx % per_word));
        }
    }
    Ok(Quantized {
        kind,
        n,
        k,
        group,
        values,
        scales,
    })
}

impl Quantized {
    /// The quantised value of element `idx` (row-major), before scaling.
    pub fn code(&self, idx: usize) -> i32 {
        let per_word = self.kind.per_word();
        let raw = (self.values[idx / per_word] >> (self.kind.bits() * (idx % per_word)))
            & ((1 << self.kind.bits()) - 1);
        match self.kind {
            QuantKind::Q4 => raw as i32 - 8,
            QuantKind::Q8 => raw as u8 as i8 as i32,
        }
    }

    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.n * self.k)
            .map(|i| self.code(i) as f32 * self.scales[i / self.group].to_f32())
            .collect()
    }

    /// Scales packed two per u32, as the kernels bind them.
    pub fn scale_words(&self) -> Vec<u32> {
        pack_f16(&self.scales)
    }
}

/// f16 values packed two per u32 (even index low), padded to whole words.
pub fn pack_f16(values: &[f16]) -> Vec<u32> {
    values
        .chunks(2)
        .map(|c| c[0].to_bits() as u32 | (c.get(1).map_or(0, |h| h.to_bits() as u32) << 16))
        .collect()
}

/// Signal-to-quantisation-noise ratio in dB (infinite for an exact copy).
pub fn sqnr_db(original: &[f32], approx: &[f32]) -> f64 {
    let mut e = ErrorStats::default();
    e.add(original, approx);
    e.sqnr_db()
}

/// Error sums that can be gathered piece by piece (a tensor quantised in row
/// chunks on several threads) and merged.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorStats {
    pub signal: f64,
    pub noise: f64,
    pub max_abs: f64,
}

impl ErrorStats {
    pub fn add(&mut self, original: &[f32], approx: &[f32]) {
        for (&a, &b) in original.iter().zip(approx) {
            let d = a as f64 - b as f64;
            self.signal += (a as f64).powi(2);
            self.noise += d * d;
            self.max_abs = self.max_abs.max(d.abs());
        }
    }

    pub fn merge(&mut self, other: &ErrorStats) {
        self.signal += other.signal;
        self.noise += other.noise;
        self.max_abs = self.max_abs.max(other.max_abs);
    }

    pub fn sqnr_db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::Rng;

    #[test]
    fn round_trip_stays_within_half_a_step_per_group() {
        let mut rng = Rng::new(3);
        for kind in [QuantKind::Q4, QuantKind::Q8] {
            for &(n, k, group) in &[(1, 32, 32), (3, 64, 32), (5, 128, 64), (2, 96, 16)] {
                let w = rng.normal_vec(n * k, 0.5);
                let q = quantize(&w, n, k, group, kind).unwrap();
                let d = q.dequantize();
                for i in 0..n * k {
                    let step = q.scales[i / group].to_f32();
                    // Half a step, plus the f16 rounding of the scale at the group's extreme.
                    let tol = step / 2.0 + step * kind.qmax() * 1e-3;
                    assert!(
                        (w[i] - d[i]).abs() <= tol,
                        "{kind:?} {i}: {} vs {} (step {step})",
                        w[i],
                        d[i]
                    );
                }
            }
        }
    }

    #[test]
    fn layout_matches_the_documented_packing() {
        let mut w = vec![0.0f32; 32];
        w[0] = 7.0; // scale 1
        w[1] = -7.0;
        w[9] = 3.0;
        let q = quantize(&w, 1, 32, 32, QuantKind::Q4).unwrap();
        assert_eq!(q.values[0] & 0xF, 15);
        assert_eq!((q.values[0] >> 4) & 0xF, 1);
        assert_eq!((q.values[1] >> 4) & 0xF, 11);
        let q8 = quantize(&w, 1, 32, 32, QuantKind::Q8).unwrap();
        assert_eq!(q8.values[0] & 0xFF, 127);
        assert_eq!((q8.values[0] >> 8) & 0xFF, 0x81); // -127
        assert_eq!(
            pack_f16(&[f16::ONE, f16::NEG_ONE, f16::ONE]),
            vec![0xBC00_3C00, 0x3C00]
        );
    }

    #[test]
    fn error_stats_merge_like_one_pass() {
        let mut rng = Rng::new(5);
        let w = rng.normal_vec(256, 1.0);
        let d = quantize(&w, 4, 64, 32, QuantKind::Q4).unwrap().dequantize();
        let (mut a, mut b) = (ErrorStats::default(), ErrorStats::default());
        a.add(&w[..100], &d[..100]);
        b.add(&w[100..], &d[100..]);
        a.merge(&b);
        assert!((a.sqnr_db() - sqnr_db(&w, &d)).abs() < 1e-9);
        let max = w
            .iter()
            .zip(&d)
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max);
        assert!((a.max_abs - max).abs() < 1e-9);
        assert_eq!(sqnr_db(&w, &w), f64::INFINITY);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(quantize(&[0.0; 30], 1, 30, 32, QuantKind::Q4).is_err());
        assert!(quantize(&[0.0; 32], 1, 32, 12, QuantKind::Q4).is_err());
        assert!(quantize(&[0.0; 31], 1, 32, 32, QuantKind::Q4).is_err());
    }
}
