//! Counter-based random numbers: the same seed gives the same noise on every
//! adapter, natively and in the browser, and on the CPU.
//!
//! # The scheme
//!
//! Philox4x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as
//! easy as 1, 2, 3", SC'11; the constants of Random123, whose known-answer
//! vectors the tests check):
//!
//! - key = the u64 seed as `(seed as u32, (seed >> 32) as u32)`;
//! - a stream number `s` (u32) tells apart the tensors of one generation
//!   (initial latents, the decoder's noise, ...);
//! - element `e` (a u64 index into the stream) is lane `e % 4` of
//!   `philox(counter = (b as u32, (b >> 32) as u32, s, 0), key)`, `b = e / 4`.
//!
//! A tensor of `n` values takes elements `offset .. offset + n`, so a tensor
//! may be filled in pieces, or a long stream shared by consecutive tensors.
//!
//! Normals (Box-Muller) pair lanes (0, 1) and (2, 3) of a block: with words
//! `a`, `b`,
//!
//! ```text
//! u = ((a >> 8) + 1) * 2^-24        in (0, 1]
//! w = (b >> 8) * 2^-23 - 1          in [-1, 1)
//! z_a = sqrt(-2 ln u) * cos(pi w),  z_b = sqrt(-2 ln u) * sin(pi w)
//! ```
//!
//! and the tensor holds `mean + std * z`. Everything up to `ln`, `cos` and
//! `sin` is exact in f32, so the u32 stream is bit-identical everywhere and
//! the normals differ only by the adapter's transcendental rounding (WGSL
//! allows ~2^-21 absolute error in `log` near 1 and a few ulp elsewhere).

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, bound};
use super::{groups_1d, precision_of, round_to};
use crate::gpu::{Binding, DType, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

/// Mirrors `Params` in `shaders/rng.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub key_lo: u32,
    pub key_hi: u32,
    pub stream: u32,
    pub offset_lo: u32,
    pub offset_hi: u32,
    pub mean: f32,
    pub std: f32,
}

/// Where a tensor's values come from: seed, stream and first element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Stream {
    pub seed: u64,
    pub stream: u32,
    pub offset: u64,
}

impl Stream {
    pub fn new(seed: u64, stream: u32) -> Stream {
        Stream {
            seed,
            stream,
            offset: 0,
        }
    }

    pub fn at(self, offset: u64) -> Stream {
        Stream { offset, ..self }
    }

    fn params(self, n: usize, mean: f32, std: f32) -> Params {
        Params {
            n: n as u32,
            key_lo: self.seed as u32,
            key_hi: (self.seed >> 32) as u32,
            stream: self.stream,
            offset_lo: self.offset as u32,
            offset_hi: (self.offset >> 32) as u32,
            mean,
            std,
        }
    }
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox4x32 with 10 rounds.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let [mut c0, mut c1, mut c2, mut c3] = counter;
    let [mut k0, mut k1] = key;
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
        let p0 = M0 as u64 * c0 as u64;
        let p1 = M1 as u64 * c2 as u64;
        (c0, c1, c2, c3) = (
            (p1 >> 32) as u32 ^ c1 ^ k0,
            p1 as u32,
            (p0 >> 32) as u32 ^ c3 ^ k1,
            p0 as u32,
        );
    }
    [c0, c1, c2, c3]
}

fn block(s: Stream, b: u64) -> [u32; 4] {
    philox4x32_10(
        [b as u32, (b >> 32) as u32, s.stream, 0],
        [s.seed as u32, (s.seed >> 32) as u32],
    )
}

/// Elements `s.offset .. s.offset + n` of the raw u32 stream.
pub fn reference_u32(s: Stream, n: usize) -> Vec<u32> {
    (s.offset..s.offset + n as u64)
        .map(|e| block(s, e / 4)[(e % 4) as usize])
        .collect()
}

/// The Box-Muller pair of two words, in the kernel's f32 operations.
pub fn box_muller(a: u32, b: u32) -> [f32; 2] {
    let u = ((a >> 8) + 1) as f32 * (1.0 / 16_777_216.0);
    let w = (b >> 8) as f32 * (1.0 / 8_388_608.0) - 1.0;
    let r = (-2.0 * u.ln()).sqrt();
    let theta = std::f32::consts::PI * w;
    [r * theta.cos(), r * theta.sin()]
}

/// Elements `s.offset .. s.offset + n` as normals `mean + std * z`.
pub fn reference_normal(s: Stream, n: usize, mean: f32, std: f32) -> Vec<f32> {
    (s.offset..s.offset + n as u64)
        .map(|e| {
            let w = block(s, e / 4);
            let lane = (e % 4) as usize;
            let pair = lane & 2;
            mean + std * box_muller(w[pair], w[pair + 1])[lane & 1]
        })
        .collect()
}

/// Invocations needed: one per Philox block the elements touch.
fn blocks(s: Stream, n: usize) -> u32 {
    ((s.offset % 4) as usize + n).div_ceil(4) as u32
}

const WG: u32 = 64;

fn check_size(op: &'static str, s: Stream, n: usize) -> Result<(), GpuError> {
    if n > (i32::MAX as usize) - 4 || s.offset.checked_add(n as u64).is_none() {
        return Err(GpuError::shape(
            op,
            format!("{n} elements from {}", s.offset),
        ));
    }
    Ok(())
}

/// Fills `out` (F32 or F16, any shape) with normals `mean + std * z`.
pub fn encode_normal(
    step: &mut Step,
    out: &Tensor,
    s: Stream,
    mean: f32,
    std: f32,
) -> Result<(), GpuError> {
    let name = "rng.normal";
    let precision = precision_of(name, &[out])?;
    let n = out.numel();
    check_size(name, s, n)?;
    let key = PipelineKey::new(Kernel::Rng, "normal").flags(precision.flags());
    step.dispatch(
        &key,
        &s.params(n, mean, std),
        &[Binding::write(out)],
        groups_1d(blocks(s, n), WG),
    )
}

/// Fills `out` (U32) with the raw stream: for tests and custom distributions.
pub fn encode_u32(step: &mut Step, out: &Tensor, s: Stream) -> Result<(), GpuError> {
    let name = "rng.raw";
    if out.dtype != DType::U32 {
        return Err(GpuError::shape(
            name,
            format!("out must be U32, not {:?}", out.dtype),
        ));
    }
    let n = out.numel();
    check_size(name, s, n)?;
    let key = PipelineKey::new(Kernel::Rng, "raw");
    step.dispatch(
        &key,
        &s.params(n, 0.0, 1.0),
        &[Binding::write(out)],
        groups_1d(blocks(s, n), WG),
    )
}

/// The raw stream bit for bit, the normals within f32 transcendental
/// rounding, at unaligned offsets, a stream index, a seed above 2^32 and an
/// offset above 2^32; and the moments of 10^6 normals.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let mut checks = Vec::new();
    let cases: &[(Stream, usize)] = &[
        (Stream::new(0, 0), 1),
        (Stream::new(42, 0).at(3), 6),
        (Stream::new(42, 1).at(1), 4099),
        (
            Stream::new(0xDEAD_BEEF_0123_4567, 7).at((1 << 32) - 2),
            1001,
        ),
        (Stream::new(u64::MAX, u32::MAX).at(u64::MAX - 5000), 4097),
    ];
    let dtype = precision.dtype();
    for &(s, n) in cases {
        let bits = gpu.empty(&[n], DType::U32)?;
        let normals = gpu.empty(&[n], dtype)?;
        let mut step = gpu.step("rng check");
        encode_u32(&mut step, &bits, s)?;
        encode_normal(&mut step, &normals, s, 0.5, 2.0)?;
        step.submit()?;
        let label = format!(
            "seed={:#x} stream={} offset={} n={n}",
            s.seed, s.stream, s.offset
        );
        checks.push(Check::exact(
            format!("u32 {label}"),
            &gpu.read_u32(&bits).await?,
            &reference_u32(s, n),
        ));
        let want = round_to(&reference_normal(s, n, 0.5, 2.0), precision);
        let bound = match precision {
            Precision::F32 => bound::F32_TRANSCENDENTAL,
            Precision::F16 => bound::F16,
        };
        checks.push(Check::new(
            format!("normal {label} {precision:?}"),
            &gpu.read(&normals).await?,
            &want,
            bound,
        ));
    }
    // Moments of 10^6 standard normals: the standard error of the mean is
    // 1e-3 and of the standard deviation 7e-4; 5e-3 is five of them.
    let n = 1_000_000;
    let out = gpu.empty(&[n], dtype)?;
    let mut step = gpu.step("rng moments");
    encode_normal(&mut step, &out, Stream::new(2024, 3), 0.0, 1.0)?;
    step.submit()?;
    let z = gpu.read(&out).await?;
    let mean = z.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = z.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    checks.push(Check::abs(
        format!("mean of 1e6 normals {precision:?}"),
        mean.abs(),
        5e-3,
    ));
    checks.push(Check::abs(
        format!("std of 1e6 normals - 1 {precision:?}"),
        (var.sqrt() - 1.0).abs(),
        5e-3,
    ));
    // Tails: P(|z| > 3) = 0.0027; 0.0022..0.0032 is ~10 standard errors wide.
    let tail = z.iter().filter(|v| v.abs() > 3.0).count() as f64 / n as f64;
    checks.push(Check::abs(
        format!("P(|z|>3) - 0.0027 {precision:?}"),
        (tail - 0.0027).abs(),
        5e-4,
    ));
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_random123_known_answers() {
        let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            (
                [0; 4],
                [0; 2],
                [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
            ),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (ctr, key, want) in kat {
            assert_eq!(philox4x32_10(ctr, key), want);
        }
    }

    #[test]
    fn offsets_continue_the_stream_and_streams_differ() {
        let s = Stream::new(7, 2);
        let whole = reference_u32(s, 23);
        assert_eq!(reference_u32(s.at(5), 18), whole[5..]);
        assert_ne!(reference_u32(Stream::new(7, 3), 23), whole);
        let z = reference_normal(s, 23, 0.0, 1.0);
        assert_eq!(reference_normal(s.at(9), 14, 0.0, 1.0), z[9..]);
    }

    #[test]
    fn box_muller_stays_finite_at_the_extremes() {
        for (a, b) in [(0, 0), (u32::MAX, u32::MAX), (0, u32::MAX), (u32::MAX, 0)] {
            let [x, y] = box_muller(a, b);
            assert!(x.is_finite() && y.is_finite());
        }
        // The smallest u gives the largest radius, sqrt(2 ln 2^24) ~ 5.77.
        assert!((box_muller(0, 1 << 31)[0].abs() - 5.768).abs() < 1e-3);
    }
}
