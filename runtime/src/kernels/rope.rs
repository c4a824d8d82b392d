//! LTX-Video's 3D rotary position embedding (shaders/rope.wgsl), as
//! diffusers' `LTXVideoRotaryPosEmbed` and `apply_rotary_emb` compute it:
//!
//! - [`rope_table`]: per-token fractional coordinates `[T, 3]` (frame,
//!   height, width; see [`grid::LtxGrid`]) and the frequencies of
//!   [`ltx_freqs`] give cos/sin tables `[T, dim]` in f32: column
//!   `c >= pad = dim % 6` uses `k = (c - pad) / 2`, frequency `k / 3` and axis
//!   `k % 3` (freqs transposed to [dim/6, 3], flattened, each repeated
//!   twice); the first `pad` columns are cos 1, sin 0.
//! - [`rope_apply`]: `out = x * cos + rotate_pairs(x) * sin` over the full
//!   inner dim (before heads are split), pairs `(2i, 2i+1) -> (-x[2i+1], x[2i])`.
//!
//! Precision: the phase `f_j * (2 g - 1)` reaches 10^4 * pi / 2. Its f32
//! rounding is part of the model (torch computes it in f32 too), so the
//! kernel reproduces the same f32 product bit for bit: the frequencies come
//! from the CPU (GPU `pow` is a few ulp off, which at this phase is ~1e-2
//! rad), and `2 g - 1` and the product are correctly rounded f32 operations.
//! GPU sin/cos are specified only on [-pi, pi], so the shader then reduces
//! the exact f32 phase by a 4-part 2 pi (Cody-Waite; products exact for
//! |k| < 2^17, i.e. |phase| < 8e5) to within ~3e-7 rad. The tables are then
//! within the builtin sin/cos error of the reference, far below
//! `bound::F32_TRANSCENDENTAL` (NMSE 1e-8, i.e. ~1e-4 rad).

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::rows::{check_out_of_place, to_u32};
use super::testing::{Check, Rng, bound};
use super::{Rows, check_numel, groups_1d, precision_of, round_to};
use crate::gpu::{Binding, DType, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

pub mod grid;

/// 2 pi in four f32 parts: the first three have at most 7 significant bits,
/// so `k * part` is exact for integer |k| < 2^17; the sum is 2 pi to 2e-14.
pub const TWO_PI_SPLIT: [f32; 4] = [
    f32::from_bits(0x40c8_0000), // 6.25
    f32::from_bits(0x3d06_0000), // 0.03271484375
    f32::from_bits(0x39f6_0000), // 0.000469207763671875
    f32::from_bits(0x35a8_885a), // 1.2556659e-6
];
/// 1 / (2 pi) rounded to f32 (only picks k; its error does not matter).
pub const INV_TWO_PI: f32 = f32::from_bits(0x3e22_f983);

/// Mirrors `Params` of rope.wgsl with TABLE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TableParams {
    pub n: u32,
    pub dim: u32,
    pub pad: u32,
    pub _pad0: u32,
    pub two_pi: [f32; 4],
    pub inv_two_pi: f32,
    pub _pad1: [u32; 3],
}

/// Mirrors `Params` of rope.wgsl without TABLE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ApplyParams {
    pub n: u32,
    pub dim: u32,
    pub x_stride: u32,
    pub x_offset: u32,
}

const WG: u32 = 256;

/// `theta ** linspace(0, 1, dim / 6) * pi / 2` in f32, the way torch's CPU
/// `linspace` (first half from the start, second half from the end) and
/// `(freqs * math.pi) / 2.0` round it.
pub fn ltx_freqs(dim: usize, theta: f32) -> Vec<f32> {
    let n = dim / 6;
    let step = if n > 1 { 1.0f32 / (n - 1) as f32 } else { 0.0 };
    (0..n)
        .map(|i| {
            // torch fills a single step with `start`.
            let e = if n == 1 {
                0.0
            } else if i < n / 2 {
                step * i as f32
            } else {
                1.0 - step * (n - 1 - i) as f32
            };
            theta.powf(e) * std::f32::consts::PI / 2.0
        })
        .collect()
}

/// cos/sin tables `[T, dim]` (f32) from coordinates `[T, 3]` (f32) and
/// frequencies `[dim / 6]` (f32, from [`ltx_freqs`]).
pub fn rope_table(
    step: &mut Step,
    coords: &Tensor,
    freqs: &Tensor,
    dim: usize,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<(), GpuError> {
    let op = "rope_table";
    for (t, what) in [
        (coords, "coords"),
        (freqs, "freqs"),
        (cos, "cos"),
        (sin, "sin"),
    ] {
        if t.dtype != DType::F32 {
            return Err(GpuError::shape(
                op,
                format!("{what} must be F32, not {:?}", t.dtype),
            ));
        }
    }
    if !coords.numel().is_multiple_of(3) {
        return Err(GpuError::shape(
            op,
            format!("coords {:?} are not [T, 3]", coords.shape),
        ));
    }
    let rows = coords.numel() / 3;
    check_numel(op, freqs, dim / 6, "freqs")?;
    check_numel(op, cos, rows * dim, "cos")?;
    check_numel(op, sin, rows * dim, "sin")?;
    if cos.buffer() == sin.buffer() {
        return Err(GpuError::shape(op, "cos and sin share a buffer"));
    }
    check_out_of_place(op, cos, &[coords, freqs])?;
    check_out_of_place(op, sin, &[coords, freqs])?;
    let params = TableParams {
        n: to_u32(op, rows * dim, "elements")?,
        dim: to_u32(op, dim, "dim")?,
        pad: (dim % 6) as u32,
        _pad0: 0,
        two_pi: TWO_PI_SPLIT,
        inv_two_pi: INV_TWO_PI,
        _pad1: [0; 3],
    };
    let key = PipelineKey::new(Kernel::Rope, "rope_table").flags(&["TABLE"]);
    step.dispatch(
        &key,
        &params,
        &[
            Binding::read(coords),
            Binding::read(freqs),
            Binding::write(cos),
            Binding::write(sin),
        ],
        groups_1d(params.n, WG),
    )
}

/// `out [T, dim] = x * cos + rotate_pairs(x) * sin`, with `x` any strided
/// view of T rows of dim (e.g. Q or K inside a fused projection); out of
/// place.
pub fn rope_apply(
    step: &mut Step,
    x: Rows<'_>,
    cos: &Tensor,
    sin: &Tensor,
    out: &Tensor,
) -> Result<(), GpuError> {
    let op = "rope_apply";
    x.check(op, "x")?;
    let (rows, dim) = (x.rows, x.cols);
    if !dim.is_multiple_of(2) {
        return Err(GpuError::shape(op, format!("dim {dim} is odd")));
    }
    for (t, what) in [(cos, "cos"), (sin, "sin")] {
        if t.dtype != DType::F32 {
            return Err(GpuError::shape(
                op,
                format!("{what} must be F32, not {:?}", t.dtype),
            ));
        }
        check_numel(op, t, rows * dim, what)?;
    }
    check_numel(op, out, rows * dim, "out")?;
    let precision = precision_of(op, &[x.tensor, out])?;
    check_out_of_place(op, out, &[x.tensor, cos, sin])?;
    let params = ApplyParams {
        n: to_u32(op, rows * dim, "elements")?,
        dim: to_u32(op, dim, "dim")?,
        x_stride: to_u32(op, x.row_stride, "x stride")?,
        x_offset: to_u32(op, x.offset, "x offset")?,
    };
    let key = PipelineKey::new(Kernel::Rope, "rope_apply").flags(precision.flags());
    step.dispatch(
        &key,
        &params,
        &[
            Binding::read(x.tensor),
            Binding::read(cos),
            Binding::read(sin),
            Binding::write(out),
        ],
        groups_1d(params.n, WG),
    )
}

/// The f32 phase of column `c` of a token with coordinates `g`, computed
/// with the same f32 operations as torch and the shader.
pub fn phase(g: [f32; 3], freqs: &[f32], dim: usize, c: usize) -> Option<f32> {
    let pad = dim % 6;
    let k = c.checked_sub(pad)? / 2;
    let a = g[k % 3] * 2.0 - 1.0;
    Some(freqs.get(k / 3)? * a)
}

/// Plain-Rust tables: `coords [T, 3]`, `freqs [dim / 6]` -> (cos, sin) `[T, dim]`.
/// sin/cos of the f32 phase are taken in f64 (what torch's accurate f32
/// sin/cos approximate).
pub fn reference_table(coords: &[f32], freqs: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut cos = Vec::with_capacity(coords.len() / 3 * dim);
    let mut sin = Vec::with_capacity(cos.capacity());
    for g in coords.chunks_exact(3) {
        for c in 0..dim {
            match phase([g[0], g[1], g[2]], freqs, dim, c) {
                Some(p) => {
                    cos.push((p as f64).cos() as f32);
                    sin.push((p as f64).sin() as f32);
                }
                None => {
                    cos.push(1.0);
                    sin.push(0.0);
                }
            }
        }
    }
    (cos, sin)
}

/// Plain-Rust `apply_rotary_emb` on contiguous `x [T, dim]`.
pub fn reference_apply(x: &[f32], cos: &[f32], sin: &[f32], dim: usize) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let c = i % dim;
            let rotated = if c.is_multiple_of(2) {
                -x[i + 1]
            } else {
                x[i - 1]
            };
            (x[i] as f64 * cos[i] as f64 + rotated as f64 * sin[i] as f64) as f32
        })
        .collect()
}

/// Tables at dims divisible by 6 and not (2048 = 341 * 6 + 2, 32, 10 with a
/// single frequency), T in {1, 17, 300}, on LTX grids and on coordinates up
/// to 3 (phases to ~8e4); then `rope_apply` of the K slice of a fused
/// `[T, 3 dim]` buffer.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let apply_bound = match precision {
        Precision::F32 => bound::F32,
        Precision::F16 => bound::F16,
    };
    let mut rng = Rng::new(5);
    let mut checks = Vec::new();
    for dim in [2048, 48, 32, 10] {
        for t in [1, 17, 300] {
            let coords = if t == 300 {
                // A 320 x 320 pixel, 17-frame clip: the pipeline's own grid.
                grid::LtxGrid::LTX_VIDEO.latent_coords(3, 10, 10, 25.0)
            } else {
                rng.uniform_vec(3 * t, 1.75)
                    .iter()
                    .map(|v| v + 1.25)
                    .collect()
            };
            let freqs = ltx_freqs(dim, 10000.0);
            let (want_cos, want_sin) = reference_table(&coords, &freqs, dim);
            let name = format!("t={t} dim={dim}");
            // Tables are f32 whatever the activation precision: check once.
            if precision == Precision::F32 {
                let tc = gpu.upload(&coords, &[t, 3], DType::F32)?;
                let tf = gpu.upload(&freqs, &[freqs.len()], DType::F32)?;
                let (cos, sin) = (
                    gpu.empty(&[t, dim], DType::F32)?,
                    gpu.empty(&[t, dim], DType::F32)?,
                );
                let mut step = gpu.step("rope table check");
                rope_table(&mut step, &tc, &tf, dim, &cos, &sin)?;
                step.submit()?;
                for (tensor, want, what) in [(&cos, &want_cos, "cos"), (&sin, &want_sin, "sin")] {
                    let got = gpu.read(tensor).await?;
                    let b = bound::F32_TRANSCENDENTAL;
                    checks.push(Check::new(format!("table {what} {name}"), &got, want, b));
                }
            }
            let dtype = precision.dtype();
            let fused = round_to(&rng.normal_vec(t * 3 * dim, 1.0), precision);
            let x = gpu.upload(&fused, &[t, 3 * dim], dtype)?;
            let cos = gpu.upload(&want_cos, &[t, dim], DType::F32)?;
            let sin = gpu.upload(&want_sin, &[t, dim], DType::F32)?;
            let out = gpu.empty(&[t, dim], dtype)?;
            let view = Rows {
                tensor: &x,
                rows: t,
                cols: dim,
                row_stride: 3 * dim,
                offset: dim,
            };
            let mut step = gpu.step("rope apply check");
            rope_apply(&mut step, view, &cos, &sin, &out)?;
            step.submit()?;
            let got = gpu.read(&out).await?;
            let k = super::rows::gather(&fused, t, dim, 3 * dim, dim).unwrap_or_default();
            let want = reference_apply(&k, &want_cos, &want_sin, dim);
            checks.push(Check::new(
                format!("apply {name} {precision:?}"),
                &got,
                &want,
                apply_bound,
            ));
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shader's reduction, step for step in f32 (Rust never fuses).
    fn reduce_like_the_shader(p: f32) -> f32 {
        let k = (p * INV_TWO_PI).round_ties_even();
        let mut r = p - k * TWO_PI_SPLIT[0];
        r -= k * TWO_PI_SPLIT[1];
        r -= k * TWO_PI_SPLIT[2];
        r -= k * TWO_PI_SPLIT[3];
        r
    }

    #[test]
    fn the_split_sums_to_two_pi() {
        let sum: f64 = TWO_PI_SPLIT.iter().map(|&v| v as f64).sum();
        assert!((sum - std::f64::consts::TAU).abs() < 1e-13);
        for part in &TWO_PI_SPLIT[..3] {
            // At most 7 significant bits (the low 17 of the 23 stored
            // mantissa bits clear): k * part is exact for |k| < 2^17.
            assert!(part.to_bits() & 0x1ffff == 0);
        }
        assert!((INV_TWO_PI as f64 - 1.0 / std::f64::consts::TAU).abs() < 1e-8);
    }

    #[test]
    fn reduction_is_accurate_up_to_the_documented_range() {
        let mut rng = Rng::new(3);
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            // Log-uniform magnitudes from 1e-3 to 8e5, both signs.
            let mag = 10f32.powf(-3.0 + 8.9 * (i as f32 / 200_000.0));
            let p = mag * rng.uniform().signum();
            let r = reduce_like_the_shader(p) as f64;
            let k = ((p as f64 - r) / std::f64::consts::TAU).round();
            let exact = p as f64 - k * std::f64::consts::TAU;
            worst = worst.max((r - exact).abs());
            assert!(r.abs() < 3.2, "{p} reduced to {r}");
        }
        assert!(worst < 5e-7, "worst reduction error {worst}");
    }

    #[test]
    fn freqs_match_the_diffusers_formula() {
        // dim 2048: 341 frequencies from 1 to 10^4, times pi / 2.
        let f = ltx_freqs(2048, 10000.0);
        assert_eq!(f.len(), 341);
        assert_eq!(f[0], std::f32::consts::FRAC_PI_2);
        let last = 10000.0 * std::f64::consts::FRAC_PI_2;
        assert!((f[340] as f64 - last).abs() / last < 1e-6);
        // theta^(170 / 340) = 100.
        let mid = 100.0 * std::f64::consts::FRAC_PI_2;
        assert!((f[170] as f64 - mid).abs() / mid < 1e-6);
        // One frequency: linspace(0, 1, 1) = [0].
        assert_eq!(ltx_freqs(10, 10000.0), vec![std::f32::consts::FRAC_PI_2]);
        assert!(ltx_freqs(4, 10000.0).is_empty());
    }

    #[test]
    fn table_columns_follow_the_transpose_and_padding() {
        // dim 32: pad 2, 5 frequencies; column 2 + 2k and 3 + 2k hold
        // frequency k / 3 on axis k % 3.
        let freqs = ltx_freqs(32, 10000.0);
        let g = [0.25f32, 0.5, 1.0];
        let (cos, sin) = reference_table(&g, &freqs, 32);
        assert_eq!((cos[0], sin[0], cos[1], sin[1]), (1.0, 0.0, 1.0, 0.0));
        // k = 0: freq 0 (pi / 2) on frame: (2 * 0.25 - 1) * pi / 2 = -pi / 4.
        let p = -std::f64::consts::FRAC_PI_4;
        assert!((cos[2] as f64 - p.cos()).abs() < 1e-6 && cos[3] == cos[2]);
        assert!((sin[2] as f64 - p.sin()).abs() < 1e-6 && sin[3] == sin[2]);
        // k = 1: height 0.5 gives phase 0.
        assert_eq!((cos[4], sin[4]), (1.0, 0.0));
        // k = 4: freq 1 on height: still phase 0; k = 5: freq 1 on width 1.
        assert_eq!(sin[2 + 2 * 4], 0.0);
        let p5 = freqs[1] as f64;
        assert!((sin[2 + 2 * 5] as f64 - p5.sin()).abs() < 1e-6);
    }

    #[test]
    fn apply_rotates_pairs() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let (c, s) = ([0.0; 4], [1.0; 4]);
        assert_eq!(reference_apply(&x, &c, &s, 4), vec![-2.0, 1.0, -4.0, 3.0]);
    }
}
