//! The benchmark table: one entry per (kernel, shape, format), each with a
//! framecast side and a burn side. Shapes are LTX-2B's (hidden 2048 = 32
//! heads x 64, 1120 video tokens at 512x320x9 after the VAE's 32x8
//! compression, 256 text tokens, the VAE's 128-channel 3D convolutions).

use burn::tensor::{DType, Device, Tensor};
use framecast::Gpu;
use framecast::gpu::{GpuError, Step};

use crate::{burn_ops, framecast_ops};

/// Records one run of the kernel under test into a step.
pub type Recorder = Box<dyn Fn(&mut Step<'_>) -> Result<(), GpuError>>;
/// Uploads a case's inputs once and returns its recorder.
pub type FcSetup = Box<dyn Fn(&Gpu) -> anyhow::Result<Recorder>>;
/// One burn run on inputs that `BurnSetup` made fresh for it.
pub type BurnRun = Box<dyn FnOnce() -> BurnOut>;
pub type BurnSetup = Box<dyn Fn(&Device) -> BurnRun>;

/// A burn result, kept alive until the device is synced.
pub enum BurnOut {
    R2(Tensor<2>),
    R4(Tensor<4>),
    R5(Tensor<5>),
}

impl BurnOut {
    /// Sum of the output in f32 (f16 sums of millions of values overflow).
    pub fn checksum(self) -> f32 {
        let sum = match self {
            BurnOut::R2(t) => t.cast(DType::F32).sum(),
            BurnOut::R4(t) => t.cast(DType::F32).sum(),
            BurnOut::R5(t) => t.cast(DType::F32).sum(),
        };
        sum.into_scalar::<f32>()
    }
}

/// A side that may be absent, with the reason shown in the table.
pub enum Side<T> {
    Run(T),
    Missing(String),
}

/// Weight format of a matmul case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fmt {
    F32,
    F16,
    Q8,
    Q4,
}

impl Fmt {
    pub const ALL: [Fmt; 4] = [Fmt::F32, Fmt::F16, Fmt::Q8, Fmt::Q4];

    pub fn name(self) -> &'static str {
        match self {
            Fmt::F32 => "f32",
            Fmt::F16 => "f16",
            Fmt::Q8 => "q8",
            Fmt::Q4 => "q4",
        }
    }

    /// Bytes per weight element, group-32 f16 scales included.
    pub fn weight_bytes(self) -> f64 {
        match self {
            Fmt::F32 => 4.0,
            Fmt::F16 => 2.0,
            Fmt::Q8 => 1.0 + 2.0 / 32.0,
            Fmt::Q4 => 0.5 + 2.0 / 32.0,
        }
    }
}

/// Activation element type of a case: f16 wherever the adapter has shader-f16
/// and the case is not the all-f32 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    F32,
    F16,
}

impl Act {
    pub fn size(self) -> f64 {
        match self {
            Act::F32 => 4.0,
            Act::F16 => 2.0,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Act::F32 => "f32",
            Act::F16 => "f16",
        }
    }
}

pub struct Case {
    /// `matmul`, `gemv`, `attention`, `conv3d`, `elementwise`.
    pub family: &'static str,
    pub shape: String,
    /// Weights and activations, e.g. `q4 w / f16 act`.
    pub format: String,
    pub flops: f64,
    /// Compulsory traffic of framecast's format (inputs read once, output written once).
    pub bytes: f64,
    /// Compulsory traffic of the burn side (its dtype may differ).
    pub burn_bytes: f64,
    /// Part of the `--quick` subset.
    pub quick: bool,
    /// The burn side is cheap to warm up everywhere (f32, no GEMM autotune):
    /// on CPU adapters `--quick` runs only these burn sides, since burn's
    /// autotune of a 1120-row GEMM takes 40 s or more on lavapipe.
    pub quick_burn: bool,
    pub framecast: Side<FcSetup>,
    pub burn: Side<BurnSetup>,
}

impl Case {
    pub fn label(&self) -> String {
        format!("{} {} {}", self.family, self.shape, self.format)
    }
}

/// Every case, for an adapter with (`f16`) or without shader-f16 on either side.
pub fn all(fc_f16: bool, burn_f16: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    // Linear layers over all 1120 tokens: attention projections (2048 -> 2048)
    // and the feed-forward up projection (2048 -> 8192).
    for (m, k, n, quick) in [(1120, 2048, 2048, true), (1120, 2048, 8192, false)] {
        matmul_cases(&mut cases, "matmul", m, k, n, quick, fc_f16, burn_f16);
    }
    // Few-token linears (text tokens, timestep embedding, decode-like shapes).
    for (m, n, quick) in [
        (1, 4096, true),
        (16, 4096, true),
        (1, 10240, false),
        (16, 10240, false),
    ] {
        matmul_cases(&mut cases, "gemv", m, 4096, n, quick, fc_f16, burn_f16);
    }
    let (heads, dim) = (32, 64);
    for (sq, skv, quick) in [(1120, 1120, true), (1120, 256, false)] {
        for act in acts(fc_f16) {
            let flops = 4.0 * (heads * sq * skv * dim) as f64;
            let elems = (2 * sq * heads * dim + 2 * skv * heads * dim) as f64;
            let kind = if sq == skv { "self" } else { "cross" };
            cases.push(Case {
                family: "attention",
                shape: format!("{kind} {heads}x{dim} {sq}->{skv}"),
                format: act.name().to_string(),
                flops,
                bytes: elems * act.size(),
                burn_bytes: elems * act.size(),
                quick,
                quick_burn: act == Act::F32,
                framecast: framecast_ops::attention(heads, dim, sq, skv, act),
                burn: burn_side(act, burn_f16, || {
                    burn_ops::attention(heads, dim, sq, skv, burn_dtype(act))
                }),
            });
        }
    }
    // The VAE decoder's 128-channel 3x3x3 convolution at its lowest resolution.
    let (c, t, h, w) = (128, 4, 40, 64);
    for act in acts(fc_f16) {
        let voxels = (t * h * w) as f64;
        let elems = 2.0 * c as f64 * voxels + (c * c * 27) as f64;
        cases.push(Case {
            family: "conv3d",
            shape: format!("{c}->{c} 3x3x3 on {t}x{h}x{w}"),
            format: act.name().to_string(),
            flops: 2.0 * (c * c * 27) as f64 * voxels,
            bytes: elems * act.size(),
            burn_bytes: elems * act.size(),
            quick: true,
            quick_burn: act == Act::F32,
            framecast: framecast_ops::conv3d(c, c, [t, h, w], act),
            burn: burn_side(act, burn_f16, || {
                burn_ops::conv3d(c, c, [t, h, w], burn_dtype(act))
            }),
        });
    }
    // Bandwidth: the residual add (1120 x 2048) and the feed-forward GELU (1120 x 8192).
    for (binary, rows, cols) in [(true, 1120, 2048), (false, 1120, 8192)] {
        for act in acts(fc_f16) {
            let n = rows * cols;
            let streams = if binary { 3.0 } else { 2.0 };
            cases.push(Case {
                family: "elementwise",
                shape: format!("{} {rows}x{cols}", if binary { "add" } else { "gelu" }),
                format: act.name().to_string(),
                flops: 0.0,
                bytes: streams * n as f64 * act.size(),
                burn_bytes: streams * n as f64 * act.size(),
                quick: true,
                quick_burn: act == Act::F32,
                framecast: framecast_ops::elementwise(binary, n, act),
                burn: burn_side(act, burn_f16, || {
                    burn_ops::elementwise(binary, [rows, cols], burn_dtype(act))
                }),
            });
        }
    }
    cases
}

#[allow(clippy::too_many_arguments)]
fn matmul_cases(
    cases: &mut Vec<Case>,
    family: &'static str,
    m: usize,
    k: usize,
    n: usize,
    quick: bool,
    fc_f16: bool,
    burn_f16: bool,
) {
    for fmt in Fmt::ALL {
        let act = if fmt == Fmt::F32 || !fc_f16 {
            Act::F32
        } else {
            Act::F16
        };
        let weights = (n * k) as f64;
        let io = (m * k + m * n) as f64;
        let burn_act = if fmt == Fmt::F16 { Act::F16 } else { Act::F32 };
        let burn = match fmt {
            Fmt::F32 | Fmt::F16 => burn_side(burn_act, burn_f16, || {
                burn_ops::matmul(m, k, n, burn_dtype(burn_act))
            }),
            // burn has quantised tensors, but not a q4/q8 matmul on wgpu to compare with.
            Fmt::Q8 | Fmt::Q4 => Side::Missing("-".into()),
        };
        cases.push(Case {
            family,
            shape: format!("{m}x{k}x{n}"),
            format: format!("{} w / {} act", fmt.name(), act.name()),
            flops: 2.0 * (m * k * n) as f64,
            bytes: weights * fmt.weight_bytes() + io * act.size(),
            burn_bytes: (weights + io) * burn_act.size(),
            quick,
            quick_burn: family == "gemv" && burn_act == Act::F32,
            framecast: framecast_ops::matmul(m, k, n, fmt, act),
            burn,
        });
    }
}

fn acts(f16: bool) -> Vec<Act> {
    if f16 {
        vec![Act::F32, Act::F16]
    } else {
        vec![Act::F32]
    }
}

fn burn_dtype(act: Act) -> DType {
    match act {
        Act::F32 => DType::F32,
        Act::F16 => DType::F16,
    }
}

fn burn_side(act: Act, burn_f16: bool, make: impl FnOnce() -> BurnSetup) -> Side<BurnSetup> {
    if act == Act::F16 && !burn_f16 {
        Side::Missing("no f16".into())
    } else {
        Side::Run(make())
    }
}
