//! Flash-style attention for self- and cross-attention, `softmax(scale Q K^T +
//! bias) V`, with an online softmax over keys streamed in chunks and no
//! Nq x Nk score matrix anywhere. Optional biases: an additive key mask (LTX's
//! text mask for cross-attention) and T5's relative position bias, bucketed
//! in the kernel from the learned `[num_buckets, heads]` table. Two ways to
//! feed the keys, by adapter: see [`Path`].
//!
//! Operands are read in place from projection outputs (ARCHITECTURE.md,
//! "Tensor layouts"): see [`Layout`].

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::precision_of;
use crate::gpu::{Binding, DType, Gpu, GpuError, PipelineKey, Step, Tensor};

mod check;
mod t5;
pub use check::self_check;
pub use t5::{T5Buckets, t5_bucket};

const OP: &str = "attention";

/// Mirrors `Params` in `shaders/attention.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub batch: u32,
    pub heads: u32,
    pub nq: u32,
    pub nk: u32,
    pub q_stride: u32,
    pub k_stride: u32,
    pub v_stride: u32,
    pub o_stride: u32,
    pub q_offset: u32,
    pub k_offset: u32,
    pub v_offset: u32,
    pub o_offset: u32,
    pub scale: f32,
    pub num_buckets: u32,
    pub max_distance: u32,
    pub bidirectional: u32,
}

/// Where an operand's heads sit in its buffer, in elements: row `r` of batch
/// item `b` starts at `offset + (b * rows + r) * row_stride`, and head `h` is
/// the `head_dim` columns from `h * head_dim`. A fused QKV projection
/// `[tokens, 3 * heads * D]` gives Q, K and V as one buffer with offsets 0,
/// `heads * D` and `2 * heads * D` and row stride `3 * heads * D`. Both are
/// multiples of 4 (the kernel reads vec4s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub row_stride: usize,
    pub offset: usize,
}

impl Layout {
    /// Rows of exactly `heads * head_dim` elements, from element 0.
    pub fn packed(heads: usize, head_dim: usize) -> Layout {
        Layout {
            row_stride: heads * head_dim,
            offset: 0,
        }
    }
}

/// One attention call: sizes, operand layouts, scale and optional T5 bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attention {
    pub batch: usize,
    pub heads: usize,
    /// Query rows (tokens) per batch item.
    pub nq: usize,
    /// Key/value rows per batch item (differs from `nq` in cross-attention).
    pub nk: usize,
    pub head_dim: usize,
    pub q: Layout,
    pub k: Layout,
    pub v: Layout,
    pub out: Layout,
    /// Multiplies Q K^T before the biases: 1/sqrt(head_dim) usually, 1 in T5.
    pub scale: f32,
    /// T5 relative position bias; [`Bias::t5_table`] must then be given.
    pub t5: Option<T5Buckets>,
}

impl Attention {
    /// Packed `[batch, tokens, heads * head_dim]` operands, scale
    /// 1/sqrt(head_dim), no T5 bias.
    pub fn new(batch: usize, heads: usize, nq: usize, nk: usize, head_dim: usize) -> Attention {
        let packed = Layout::packed(heads, head_dim);
        Attention {
            batch,
            heads,
            nq,
            nk,
            head_dim,
            q: packed,
            k: packed,
            v: packed,
            out: packed,
            scale: 1.0 / (head_dim.max(1) as f32).sqrt(),
            t5: None,
        }
    }

    pub fn with_scale(mut self, scale: f32) -> Attention {
        self.scale = scale;
        self
    }

    pub fn with_t5(mut self, buckets: T5Buckets) -> Attention {
        self.t5 = Some(buckets);
        self
    }

    pub fn with_layouts(mut self, q: Layout, k: Layout, v: Layout, out: Layout) -> Attention {
        (self.q, self.k, self.v, self.out) = (q, k, v, out);
        self
    }

    /// Multiply-adds counted as 2 flops: Q K^T and P V.
    pub fn flops(&self) -> f64 {
        4.0 * (self.batch * self.heads * self.nq * self.nk * self.head_dim) as f64
    }

    /// Elements an operand's buffer must hold at least.
    fn needed(&self, layout: Layout, rows: usize) -> usize {
        layout.offset + (self.batch * rows - 1) * layout.row_stride + self.heads * self.head_dim
    }

    /// Checks sizes and that every operand (of `lens` elements: q, k, v,
    /// out) holds its rows; shared by [`encode`] and [`reference`].
    fn check(&self, lens: [usize; 4]) -> Result<(), GpuError> {
        let dims = [self.batch, self.heads, self.nq, self.nk, self.head_dim];
        if dims.contains(&0) {
            return Err(GpuError::shape(OP, format!("empty attention {self:?}")));
        }
        if !self.head_dim.is_multiple_of(4) || self.head_dim > MAX_HEAD_DIM {
            return Err(GpuError::shape(
                OP,
                format!(
                    "head_dim {} unsupported: it must be a multiple of 4 up to {MAX_HEAD_DIM}",
                    self.head_dim
                ),
            ));
        }
        let width = self.heads * self.head_dim;
        let operands = [
            ("q", self.q, self.nq),
            ("k", self.k, self.nk),
            ("v", self.v, self.nk),
            ("out", self.out, self.nq),
        ];
        for ((name, layout, rows), len) in operands.into_iter().zip(lens) {
            if !layout.row_stride.is_multiple_of(4) || !layout.offset.is_multiple_of(4) {
                return Err(GpuError::shape(
                    OP,
                    format!("{name} {layout:?}: row stride and offset must be multiples of 4"),
                ));
            }
            if layout.row_stride < width {
                return Err(GpuError::shape(
                    OP,
                    format!(
                        "{name} row stride {} is narrower than heads * head_dim = {width}",
                        layout.row_stride
                    ),
                ));
            }
            let needed = self.needed(layout, rows);
            if needed > len || len > u32::MAX as usize {
                return Err(GpuError::shape(
                    OP,
                    format!(
                        "{name} has {len} elements; {layout:?} over {} x {rows} rows needs {needed} \
                         (and at most 2^32)",
                        self.batch
                    ),
                ));
            }
        }
        if let Some(t5) = &self.t5 {
            t5.check()?;
        }
        Ok(())
    }

    fn params(&self) -> Params {
        let t5 = self.t5.unwrap_or(T5Buckets::T5_V1_1_ENCODER);
        // `check` bounded every operand by u32::MAX elements, so these fit.
        let u = |x: usize| x as u32;
        Params {
            batch: u(self.batch),
            heads: u(self.heads),
            nq: u(self.nq),
            nk: u(self.nk),
            q_stride: u(self.q.row_stride),
            k_stride: u(self.k.row_stride),
            v_stride: u(self.v.row_stride),
            o_stride: u(self.out.row_stride),
            q_offset: u(self.q.offset),
            k_offset: u(self.k.offset),
            v_offset: u(self.v.offset),
            o_offset: u(self.out.offset),
            scale: self.scale,
            num_buckets: t5.num_buckets,
            max_distance: t5.max_distance,
            bidirectional: t5.bidirectional as u32,
        }
    }
}

/// The optional additive terms of the scores, both f32 whatever the
/// activation precision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bias<'a> {
    /// `[batch, nk]`: 0 for keys to attend, a large negative for the others.
    pub mask: Option<&'a Tensor>,
    /// `[num_buckets, heads]`: T5's `relative_attention_bias.weight`.
    pub t5_table: Option<&'a Tensor>,
}

/// The largest head dim the kernel's private accumulators hold.
pub const MAX_HEAD_DIM: usize = 128;
/// Invocations per workgroup.
const WG: u32 = 64;
/// The subgroup path's `D4` define for each head dim 4, 8, .. [`MAX_HEAD_DIM`].
const D4_DEFINES: [&str; MAX_HEAD_DIM / 4] = [
    "D4=1", "D4=2", "D4=3", "D4=4", "D4=5", "D4=6", "D4=7", "D4=8", "D4=9", "D4=10", "D4=11",
    "D4=12", "D4=13", "D4=14", "D4=15", "D4=16", "D4=17", "D4=18", "D4=19", "D4=20", "D4=21",
    "D4=22", "D4=23", "D4=24", "D4=25", "D4=26", "D4=27", "D4=28", "D4=29", "D4=30", "D4=31",
    "D4=32",
];

/// How the kernel feeds K and V to the query rows (see `attention.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// K/V tiles in workgroup memory, one query row per invocation: every
    /// adapter, and the natural shape for GPUs.
    Tiled,
    /// Each lane loads one key and subgroup broadcasts share it, two query
    /// rows per invocation: for CPU adapters (lavapipe), where each memory
    /// load is a loop over the SIMD lanes and this is several times faster.
    Subgroups,
}

impl Path {
    /// Whether `gpu` can run this path: subgroups of at least 8 lanes, and
    /// not in the browser, whose WGSL compiler wants an `enable subgroups;`
    /// that naga (which parses the same source natively) does not accept yet.
    pub fn supported(self, gpu: &Gpu) -> bool {
        match self {
            Path::Tiled => true,
            Path::Subgroups => {
                gpu.caps.subgroups
                    && gpu.caps.subgroup_size.0 >= 8
                    && gpu.info.backend != wgpu::Backend::BrowserWebGpu
            }
        }
    }

    /// The path [`encode`] takes on `gpu`.
    pub fn preferred(gpu: &Gpu) -> Path {
        if gpu.info.device_type == wgpu::DeviceType::Cpu && Path::Subgroups.supported(gpu) {
            Path::Subgroups
        } else {
            Path::Tiled
        }
    }

    /// Query rows each invocation owns.
    fn rows(self) -> u32 {
        match self {
            Path::Tiled => 1,
            Path::Subgroups => 2,
        }
    }
}

/// Keys per workgroup-memory tile: K and V tiles of `bk * head_dim` f32 each
/// stay within 8 KiB together, well inside WebGPU's 16 KiB default.
fn tile_keys(head_dim: usize) -> u32 {
    ((1024 / head_dim.max(1)) as u32).clamp(8, 64) / 8 * 8
}

/// Records `out = softmax(scale * Q K^T + mask + t5_bias) V` for every batch
/// item and head, by the adapter's [`Path::preferred`]. Q, K, V and out share
/// the activation dtype (F32 or F16); `out` must not share a buffer with the
/// inputs.
pub fn encode(
    step: &mut Step,
    a: &Attention,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    bias: Bias<'_>,
) -> Result<(), GpuError> {
    let path = Path::preferred(step.gpu());
    encode_path(step, path, a, [q, k, v, out], bias)
}

/// [`encode`] by a chosen path; `tensors` are Q, K, V and out.
pub fn encode_path(
    step: &mut Step,
    path: Path,
    a: &Attention,
    tensors: [&Tensor; 4],
    bias: Bias<'_>,
) -> Result<(), GpuError> {
    let [q, k, v, out] = tensors;
    let precision = precision_of(OP, &[q, k, v, out])?;
    a.check([q.numel(), k.numel(), v.numel(), out.numel()])?;
    if [q, k, v].iter().any(|t| t.buffer() == out.buffer()) {
        return Err(GpuError::shape(OP, "out shares a buffer with an input"));
    }
    if !path.supported(step.gpu()) {
        return Err(GpuError::shape(
            OP,
            format!("{path:?} needs subgroups of at least 8 invocations"),
        ));
    }
    let f32_tensor = |t: &Tensor, what: &str, n: usize| {
        if t.dtype != DType::F32 || t.numel() != n {
            return Err(GpuError::shape(
                OP,
                format!("{what} must be F32 with {n} elements, got {t:?}"),
            ));
        }
        Ok(())
    };
    if let Some(mask) = bias.mask {
        f32_tensor(mask, "mask [batch, nk]", a.batch * a.nk)?;
    }
    match (a.t5, bias.t5_table) {
        (Some(t5), Some(table)) => f32_tensor(
            table,
            "T5 table [num_buckets, heads]",
            t5.num_buckets as usize * a.heads,
        )?,
        (None, None) => {}
        (Some(_), None) => return Err(GpuError::shape(OP, "T5 buckets set but no table given")),
        (None, Some(_)) => return Err(GpuError::shape(OP, "a T5 table but no T5 buckets set")),
    }
    let mut key = PipelineKey::new(Kernel::Attention, "main")
        .flags(precision.flags())
        .flag_if(bias.mask.is_some(), "MASK")
        .flag_if(bias.t5_table.is_some(), "T5_BIAS")
        .flag_if(path == Path::Subgroups, "SUBGROUPS")
        .constant("D", a.head_dim as u32)
        .constant("WG", WG);
    if path == Path::Tiled {
        key = key.constant("BK", tile_keys(a.head_dim));
    } else {
        // The subgroup path names its D / 4 row vectors (a define, `#repeat`).
        key = key.flags(&[D4_DEFINES[a.head_dim / 4 - 1]]);
    }
    let mut bindings = vec![
        Binding::read(q),
        Binding::read(k),
        Binding::read(v),
        Binding::write(out),
    ];
    bindings.extend(bias.mask.map(Binding::read));
    bindings.extend(bias.t5_table.map(Binding::read));
    let groups = [
        (a.nq as u32).div_ceil(WG * path.rows()),
        a.heads as u32,
        a.batch as u32,
    ];
    step.dispatch(&key, &a.params(), &bindings, groups)
}

/// Plain-Rust attention in f64 with the full softmax, writing each head's
/// rows of `out` at its layout (other elements are left as they were).
pub fn reference(
    a: &Attention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[f32]>,
    t5_table: Option<&[f32]>,
    out: &mut [f32],
) -> Result<(), GpuError> {
    a.check([q.len(), k.len(), v.len(), out.len()])?;
    if mask.is_some_and(|m| m.len() != a.batch * a.nk) {
        return Err(GpuError::shape(OP, "mask must hold batch * nk values"));
    }
    let t5 = match (a.t5, t5_table) {
        (Some(b), Some(t)) if t.len() == b.num_buckets as usize * a.heads => Some((b, t)),
        (None, None) => None,
        _ => {
            return Err(GpuError::shape(
                OP,
                "T5 buckets and table must come together",
            ));
        }
    };
    let d = a.head_dim;
    let row = |l: Layout, rows: usize, b: usize, r: usize, h: usize| {
        l.offset + (b * rows + r) * l.row_stride + h * d
    };
    let mut scores = vec![0f64; a.nk];
    let mut acc = vec![0f64; d];
    for b in 0..a.batch {
        for h in 0..a.heads {
            for i in 0..a.nq {
                let qi = &q[row(a.q, a.nq, b, i, h)..][..d];
                for (j, s) in scores.iter_mut().enumerate() {
                    let kj = &k[row(a.k, a.nk, b, j, h)..][..d];
                    let dot: f64 = qi.iter().zip(kj).map(|(&x, &y)| x as f64 * y as f64).sum();
                    *s = a.scale as f64 * dot;
                    if let Some(m) = mask {
                        *s += m[b * a.nk + j] as f64;
                    }
                    if let Some((buckets, table)) = t5 {
                        let bucket = buckets.bucket(j as i32 - i as i32) as usize;
                        *s += table[bucket * a.heads + h] as f64;
                    }
                }
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                acc.fill(0.0);
                let mut sum = 0.0;
                for (j, &s) in scores.iter().enumerate() {
                    let p = (s - max).exp();
                    sum += p;
                    let vj = &v[row(a.v, a.nk, b, j, h)..][..d];
                    for (o, &x) in acc.iter_mut().zip(vj) {
                        *o += p * x as f64;
                    }
                }
                let oi = &mut out[row(a.out, a.nq, b, i, h)..][..d];
                for (o, &x) in oi.iter_mut().zip(&acc) {
                    *o = (x / sum) as f32;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_checked() {
        let a = Attention::new(2, 3, 5, 7, 16);
        let (q, k, v) = (
            vec![0.0; 2 * 5 * 48],
            vec![0.0; 2 * 7 * 48],
            vec![0.0; 2 * 7 * 48],
        );
        let mut out = vec![0.0; 2 * 5 * 48];
        assert!(reference(&a, &q, &k, &v, None, None, &mut out).is_ok());
        // One element short, a misaligned stride, a stride narrower than the heads.
        assert!(reference(&a, &q[1..], &k, &v, None, None, &mut out).is_err());
        let odd = Layout {
            row_stride: 50,
            offset: 0,
        };
        let narrow = Layout {
            row_stride: 44,
            offset: 0,
        };
        for bad in [odd, narrow] {
            let b = a.with_layouts(bad, a.k, a.v, a.out);
            assert!(reference(&b, &vec![0.0; 1000], &k, &v, None, None, &mut out).is_err());
        }
        for d in [0, 6, 132] {
            let b = Attention::new(1, 1, 1, 1, d);
            let n = vec![0.0; 256];
            assert!(reference(&b, &n, &n, &n, None, None, &mut n.clone()).is_err());
        }
        // A mask of the wrong length, a table without buckets.
        let mask = vec![0.0; 2 * 7 - 1];
        assert!(reference(&a, &q, &k, &v, Some(&mask), None, &mut out).is_err());
        assert!(reference(&a, &q, &k, &v, None, Some(&[0.0; 96]), &mut out).is_err());
    }

    #[test]
    fn tiles_fit_the_default_workgroup_memory() {
        for d in [4, 8, 16, 32, 64, 128] {
            let bk = tile_keys(d) as usize;
            assert!(bk.is_multiple_of(8) && bk >= 8);
            let bytes = 2 * bk * d * 4 + bk * 4 + (WG as usize + bk) * 4;
            assert!(bytes <= 16 << 10, "d {d}: {bytes} bytes");
        }
    }
}
