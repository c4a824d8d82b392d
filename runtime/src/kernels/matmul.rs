//! Linear layers: `Y[M, N] = X[M, K] · Wᵀ + b` with f32, f16, q8 or q4
//! weights ([`Weight`]) and f32 accumulation.
//!
//! Three paths. On GPUs, picked by M: a tiled GEMM (workgroup-memory tiles,
//! 8x8 outputs per invocation, q4/q8 dequantised while the W tile loads) for
//! many rows, and a GEMV (a team of invocations per W row splitting K, then a
//! workgroup reduction) for up to [`GEMV_MAX_M`] rows, where reading W once
//! is the cost. On CPU adapters with subgroups, for every M: the broadcast
//! GEMM of `shaders/matmul_broadcast.wgsl` (no workgroup memory; rows of X
//! handed round by subgroupBroadcast into a register block), since there
//! every memory read is a loop over the SIMD lanes.

mod weight;

pub use weight::{Weight, WeightFormat, WeightPart, check_shape, dequantized, rows_per_part};

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, Rng, bound};
use super::{precision_of, round_to};
use crate::gpu::{Binding, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub row0: u32,
    pub rows: u32,
    pub group: u32,
    pub groups_per_row: u32,
    pub _pad: u32,
}

/// Which kernel computes the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// GEMV up to [`GEMV_MAX_M`] rows of X, GEMM beyond.
    Auto,
    Gemm,
    /// Also valid past [`GEMV_MAX_M`] rows (it then reads W once per 16 rows).
    Gemv,
    /// The subgroup-broadcast GEMM: needs [`broadcast_usable`].
    Broadcast(Block),
}

/// The register block of the broadcast GEMM: each workgroup of `wg`
/// invocations computes `8 * row_blocks` rows of Y, each invocation `4 *
/// col_vecs` of its columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub row_blocks: u32,
    pub col_vecs: u32,
    pub wg: u32,
}

impl Block {
    /// The blocks the shader is built for (each validated by naga's test).
    pub const ALL: &[Block] = &[
        Block::new(1, 1, 8),
        Block::new(1, 2, 8),
        Block::new(1, 4, 8),
        Block::new(2, 2, 8),
        Block::new(2, 4, 8),
        Block::new(3, 4, 8),
    ];

    const fn new(row_blocks: u32, col_vecs: u32, wg: u32) -> Block {
        Block {
            row_blocks,
            col_vecs,
            wg,
        }
    }

    /// The block for M rows: 16 x 16 per invocation (the fastest measured on
    /// lavapipe at the LTX shapes), 8 rows where M is that small.
    pub fn for_rows(m: usize) -> Block {
        if m <= 8 {
            Block::new(1, 4, 8)
        } else {
            Block::new(2, 4, 8)
        }
    }

    pub fn rows(self) -> u32 {
        8 * self.row_blocks
    }

    pub fn columns(self) -> u32 {
        4 * self.col_vecs * self.wg
    }

    fn defines(self) -> [&'static str; 2] {
        let rows = match self.row_blocks {
            1 => "ROW_BLOCKS=1",
            2 => "ROW_BLOCKS=2",
            _ => "ROW_BLOCKS=3",
        };
        let cols = match self.col_vecs {
            1 => "COL_VECS=1",
            2 => "COL_VECS=2",
            _ => "COL_VECS=4",
        };
        [rows, cols]
    }
}

/// Whether the broadcast GEMM is this adapter's path: a CPU adapter with
/// subgroups of at least 8 (lanes 0..7 hold the rows).
pub fn broadcast_available(gpu: &Gpu) -> bool {
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    cpu && gpu.caps.subgroups && gpu.caps.subgroup_size.0 >= 8
}

/// Whether the broadcast GEMM can take this weight on this adapter.
pub fn broadcast_usable(gpu: &Gpu, w: &Weight) -> bool {
    broadcast_available(gpu) && steps_fit(w.k, w.format, w.group)
}

/// Whether K, and for q4/q8 the quantisation group, are whole 8-value steps
/// of the broadcast GEMM.
fn steps_fit(k: usize, format: WeightFormat, group: usize) -> bool {
    k % 8 == 0 && (format.quant().is_none() || group % 8 == 0)
}

/// The most rows of X the automatic choice sends to the GEMV path.
pub const GEMV_MAX_M: usize = 16;

/// GEMM: invocations along M and N, each computing 8x8 outputs (fixed in
/// the shader), so 64x64 tiles.
const WG_M: u32 = 8;
const WG_N: u32 = 8;
const BLOCK: u32 = 8;
/// GEMV: invocations per W row.
const GV_LANES: u32 = 32;

/// `y = x · wᵀ (+ bias)`: `x` is `[.., K]`, `y` `[.., N]` with the same rows,
/// `bias` `[N]`; activations all f32 or all f16.
pub fn encode(
    step: &mut Step,
    x: &Tensor,
    w: &Weight,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<(), GpuError> {
    encode_path(step, Path::Auto, x, w, bias, y)
}

/// [`encode`] on a chosen path (tests and benchmarks).
pub fn encode_path(
    step: &mut Step,
    path: Path,
    x: &Tensor,
    w: &Weight,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<(), GpuError> {
    let name = "matmul";
    let mut acts = vec![x, y];
    acts.extend(bias);
    let precision = precision_of(name, &acts)?;
    w.check()?;
    let (k, n) = (w.k, w.n);
    if x.shape.last() != Some(&k) {
        return Err(GpuError::shape(
            name,
            format!("x {:?} does not end in K = {k}", x.shape),
        ));
    }
    let m = x.numel() / k;
    if y.shape.last() != Some(&n) || y.numel() != m * n {
        return Err(GpuError::shape(
            name,
            format!("y {:?} is not [{m}, {n}] for x {:?}", y.shape, x.shape),
        ));
    }
    if let Some(b) = bias
        && b.numel() != n
    {
        return Err(GpuError::shape(
            name,
            format!("bias {:?} has not N = {n} elements", b.shape),
        ));
    }
    // The shader indexes with u32.
    if x.numel() > u32::MAX as usize || y.numel() > u32::MAX as usize {
        return Err(GpuError::shape(
            name,
            format!(
                "x {:?} or y {:?} too large for u32 indices",
                x.shape, y.shape
            ),
        ));
    }
    let path = match path {
        Path::Auto if broadcast_usable(step.gpu(), w) => Path::Broadcast(Block::for_rows(m)),
        Path::Auto if m <= GEMV_MAX_M => Path::Gemv,
        Path::Auto => Path::Gemm,
        Path::Broadcast(_) if !broadcast_usable(step.gpu(), w) => {
            return Err(GpuError::shape(
                name,
                "the broadcast GEMM needs a CPU adapter with subgroups and K a multiple of 8",
            ));
        }
        Path::Broadcast(block) if !Block::ALL.contains(&block) => {
            return Err(GpuError::shape(
                name,
                format!("{block:?} is not one of the blocks the shader is built for"),
            ));
        }
        other => other,
    };
    let (kernel, entry) = match path {
        Path::Broadcast(_) => (Kernel::MatmulBroadcast, "gemm"),
        Path::Gemv => (Kernel::Matmul, "gemv"),
        _ => (Kernel::Matmul, "gemm"),
    };
    let base = PipelineKey::new(kernel, entry)
        .flags(precision.flags())
        .flags(w.format.flags())
        // Rows of X and W are whole vec4s: read four values at a time.
        .flag_if(k % 4 == 0 && kernel == Kernel::Matmul, "K4")
        .flag_if(bias.is_some(), "BIAS");
    let (key, tile_rows, tile_m) = if let Path::Broadcast(block) = path {
        let key = base
            .flags(&block.defines())
            .flags(&["SUBGROUPS"])
            .constant("WG", block.wg);
        (key, block.columns(), block.rows())
    } else if path == Path::Gemv {
        // X rows per workgroup: the next power of two, so few pipelines exist.
        let gv_m = m.clamp(1, GEMV_MAX_M).next_power_of_two() as u32;
        // Fewer W rows per workgroup when each carries 16 sums, which keeps
        // the reduction buffer within WebGPU's default 16 KiB.
        let gv_rows = if gv_m > 8 { 4 } else { 8 };
        let key = base
            .constant("GV_LANES", GV_LANES)
            .constant("GV_ROWS", gv_rows)
            .constant("GV_M", gv_m);
        (key, gv_rows, gv_m)
    } else {
        let tk = gemm_tk(step.gpu());
        let key = base
            .constant("WG_M", WG_M)
            .constant("WG_N", WG_N)
            .constant("TK", tk);
        (key, BLOCK * WG_N, BLOCK * WG_M)
    };
    let group = if w.format.quant().is_some() {
        w.group
    } else {
        k
    };
    for part in &w.parts {
        let params = Params {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            row0: part.row0 as u32,
            rows: part.rows as u32,
            group: group as u32,
            groups_per_row: (k / group) as u32,
            _pad: 0,
        };
        let mut bindings = vec![
            Binding::read(x),
            Binding::read(&part.values),
            Binding::write(y),
        ];
        if let Some(s) = &part.scales {
            bindings.push(Binding::read(s));
        }
        if let Some(b) = bias {
            bindings.push(Binding::read(b));
        }
        let groups = [
            (part.rows as u32).div_ceil(tile_rows),
            (m as u32).div_ceil(tile_m),
            1,
        ];
        step.dispatch(&key, &params, &bindings, groups)?;
    }
    Ok(())
}

/// The GEMM's K step: 32 where the two padded f32 tiles fit the device's
/// workgroup memory, 16 otherwise (WebGPU's default limit is 16 KiB).
fn gemm_tk(gpu: &Gpu) -> u32 {
    // vec4 rows, padded by one vec4.
    let bytes = |tk: u32| 16 * tk * (BLOCK * WG_M / 4 + 1 + BLOCK * WG_N / 4 + 1);
    if bytes(32) <= gpu.limits.max_compute_workgroup_storage_size {
        32
    } else {
        16
    }
}

/// `x [m, k] · w [n, k]ᵀ + bias`, accumulated in f64.
pub fn reference(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    let mut y = Vec::with_capacity(m * n);
    for xr in x.chunks(k).take(m) {
        for (j, wr) in w.chunks(k).take(n).enumerate() {
            let dot: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
            y.push((dot + bias.map_or(0.0, |b| b[j] as f64)) as f32);
        }
    }
    y
}

#[derive(Clone, Copy)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    format: WeightFormat,
    group: usize,
    bias: bool,
    path: Path,
    max_rows: Option<usize>,
}

impl Case {
    fn new(format: WeightFormat, (m, k, n): (usize, usize, usize), bias: bool) -> Case {
        Case {
            m,
            k,
            n,
            format,
            group: 32,
            bias,
            path: Path::Auto,
            max_rows: None,
        }
    }
    fn group(self, group: usize) -> Case {
        Case { group, ..self }
    }
    fn path(self, path: Path) -> Case {
        Case { path, ..self }
    }
    fn split(self, rows: usize) -> Case {
        Case {
            max_rows: Some(rows),
            ..self
        }
    }
}

fn cases() -> Vec<Case> {
    use WeightFormat::*;
    let sizes = [
        (1, 32, 1),
        (1, 64, 33),
        (3, 96, 100),
        (17, 128, 65),
        (64, 256, 128),
        (130, 64, 257),
    ];
    let mut cases = Vec::new();
    for format in WeightFormat::ALL {
        for size in sizes {
            for bias in [false, true] {
                cases.push(Case::new(format, size, bias));
            }
        }
        // Both paths on the same sizes, GEMV past its automatic range (X rows
        // in chunks of 16), GEMM on a single row.
        cases.push(Case::new(format, (16, 128, 65), true).path(Path::Gemv));
        cases.push(Case::new(format, (37, 64, 33), false).path(Path::Gemv));
        cases.push(Case::new(format, (1, 64, 33), true).path(Path::Gemm));
        // Split by rows: several dispatches write disjoint columns of Y.
        cases.push(Case::new(format, (20, 64, 100), true).split(30));
        cases.push(Case::new(format, (3, 64, 100), false).split(30));
        cases.push(Case::new(format, (300, 512, 384), true));
    }
    // f32/f16 weights take any K: rows then start mid-word and mid-unit.
    for format in [F32, F16] {
        cases.push(Case::new(format, (2, 37, 9), true));
        cases.push(Case::new(format, (33, 45, 31), true));
        cases.push(Case::new(format, (5, 33, 50), false).split(7));
        cases.push(Case::new(format, (40, 33, 50), true).split(7));
    }
    // Smaller groups: K (48, 40) is then not a multiple of the GEMM's K tile.
    for format in [Q8, Q4] {
        cases.push(Case::new(format, (5, 48, 40), true).group(16));
        cases.push(Case::new(format, (70, 48, 40), false).group(16));
    }
    cases.push(Case::new(Q4, (3, 40, 17), true).group(8));
    cases.push(Case::new(Q4, (20, 40, 17), true).group(8));
    cases
}

/// Every weight format at awkward sizes on every path, with and without
/// bias, split and unsplit, against [`reference`] on the dequantised weight
/// (so q4/q8 are held to arithmetic error, not quantisation error). Where
/// the broadcast GEMM is the automatic choice, each case also runs on the
/// path a GPU would take, and a few on every [`Block`].
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let bound = match precision {
        Precision::F32 => bound::F32,
        Precision::F16 => bound::F16,
    };
    let dtype = precision.dtype();
    let mut rng = Rng::new(11);
    let mut checks = Vec::new();
    let mut runs = Vec::new();
    for c in cases() {
        if c.path == Path::Auto && broadcast_available(gpu) && steps_fit(c.k, c.format, c.group) {
            let gpu_path = if c.m <= GEMV_MAX_M {
                Path::Gemv
            } else {
                Path::Gemm
            };
            runs.push(c.path(gpu_path));
        }
        runs.push(c);
    }
    // Every block the shader is built for, where naga's test validates it.
    if broadcast_available(gpu) && precision == Precision::F16 {
        for &block in Block::ALL {
            for size in [(5, 64, 70), (41, 96, 300)] {
                runs.push(Case::new(WeightFormat::Q4, size, true).path(Path::Broadcast(block)));
            }
        }
    }
    for c in runs {
        let x = rng.normal_vec(c.m * c.k, 1.0);
        let w = rng.normal_vec(c.n * c.k, 1.0 / (c.k as f32).sqrt());
        let b = rng.normal_vec(c.n, 0.5);
        let weight = Weight::upload_split(gpu, &w, c.n, c.k, c.format, c.group, c.max_rows)?;
        let tx = gpu.upload(&x, &[c.m, c.k], dtype)?;
        let tb = match c.bias {
            true => Some(gpu.upload(&b, &[c.n], dtype)?),
            false => None,
        };
        let ty = gpu.empty(&[c.m, c.n], dtype)?;
        let mut step = gpu.step("matmul check");
        encode_path(&mut step, c.path, &tx, &weight, tb.as_ref(), &ty)?;
        step.submit()?;
        let got = gpu.read(&ty).await?;
        // The reference sees the inputs as the GPU stored them.
        let wd = dequantized(&w, c.n, c.k, c.format, c.group)?;
        let (x, b) = (round_to(&x, precision), round_to(&b, precision));
        let want = reference(&x, &wd, c.bias.then_some(&b[..]), c.m, c.k, c.n);
        let mut name = format!("{} m={} k={} n={}", c.format.name(), c.m, c.k, c.n);
        if c.format.quant().is_some() && c.group != 32 {
            name += &format!(" g{}", c.group);
        }
        if c.bias {
            name += " bias";
        }
        match c.path {
            Path::Auto => {}
            Path::Broadcast(b) => {
                name += &format!(" broadcast {}x{}", b.rows(), 4 * b.col_vecs);
            }
            other => name += &format!(" {other:?}"),
        }
        if weight.parts.len() > 1 {
            name += &format!(" parts={}", weight.parts.len());
        }
        checks.push(Check::new(
            format!("{name} {precision:?}"),
            &got,
            &want,
            bound,
        ));
    }
    Ok(checks)
}
