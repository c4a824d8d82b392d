//! Kernel families: for each, a `Params` that mirrors the WGSL uniform,
//! shape checks, `encode(...)` into a [`Step`], and a plain-Rust
//! `reference(...)` that the tests compare against.
//!
//! Kernels know nothing of models: they take tensors and sizes.

pub mod attention;
pub mod conv3d;
pub mod elementwise;
pub mod matmul;
pub mod norm;
pub mod rearrange;
pub mod rng;
pub mod rope;
pub mod rows;
pub mod sampler;
pub mod testing;
pub mod video;

pub use rows::Rows;

use crate::gpu::{DType, Gpu, GpuError, Precision, Tensor};
use testing::Check;

/// Every kernel family, by the name `framecast doctor` and the browser use.
pub const FAMILIES: &[&str] = &[
    "elementwise",
    "matmul",
    "attention",
    "conv3d",
    "rearrange",
    "norm",
    "rope",
    "sampler",
    "rng",
    "video",
];

/// Runs one family's table of cases against its CPU reference.
pub async fn self_check(
    gpu: &Gpu,
    family: &str,
    precision: Precision,
) -> Result<Vec<Check>, GpuError> {
    if precision == Precision::F16 && !gpu.caps.f16 {
        return Err(GpuError::shape(
            "self_check",
            "this adapter has no shader-f16",
        ));
    }
    match family {
        "elementwise" => elementwise::self_check(gpu, precision).await,
        "sampler" => sampler::self_check(gpu, precision).await,
        "rng" => rng::self_check(gpu, precision).await,
        "video" => video::self_check(gpu, precision).await,
        "norm" => norm::self_check(gpu, precision).await,
        "rope" => rope::self_check(gpu, precision).await,
        "matmul" => matmul::self_check(gpu, precision).await,
        "attention" => attention::self_check(gpu, precision).await,
        "conv3d" => conv3d::self_check(gpu, precision).await,
        "rearrange" => rearrange::self_check(gpu, precision).await,
        other => Err(GpuError::shape(
            "self_check",
            format!("unknown kernel family '{other}'"),
        )),
    }
}

/// Values as the GPU stores them at `precision` (for references).
pub fn round_to(values: &[f32], precision: Precision) -> Vec<f32> {
    match precision {
        Precision::F32 => values.to_vec(),
        Precision::F16 => values
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32())
            .collect(),
    }
}

/// Workgroup counts for `n` invocations in groups of `wg`, spread over x and
/// y when x alone would exceed WebGPU's 65535 (see `common/index.wgsl`).
pub fn groups_1d(n: u32, wg: u32) -> [u32; 3] {
    let groups = n.div_ceil(wg);
    if groups <= 65535 {
        [groups, 1, 1]
    } else {
        let y = groups.div_ceil(65535);
        [groups.div_ceil(y), y, 1]
    }
}

/// The activation precision shared by `tensors`, or a typed error.
pub fn precision_of(op: &'static str, tensors: &[&Tensor]) -> Result<Precision, GpuError> {
    let first = tensors.first().map(|t| t.dtype).unwrap_or(DType::F32);
    if let Some(t) = tensors.iter().find(|t| t.dtype != first) {
        return Err(GpuError::shape(
            op,
            format!("mixed element types {first:?} and {:?}", t.dtype),
        ));
    }
    match first {
        DType::F32 => Ok(Precision::F32),
        DType::F16 => Ok(Precision::F16),
        DType::U32 => Err(GpuError::shape(op, "activations must be F32 or F16")),
    }
}

pub(crate) fn check_numel(
    op: &'static str,
    t: &Tensor,
    n: usize,
    what: &str,
) -> Result<(), GpuError> {
    if t.numel() != n {
        return Err(GpuError::shape(
            op,
            format!(
                "{what} has {} elements ({:?}), expected {n}",
                t.numel(),
                t.shape
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::groups_1d;

    #[test]
    fn groups_cover_the_work_within_limits() {
        for n in [
            1u32,
            255,
            256,
            257,
            65535 * 256,
            65535 * 256 + 1,
            100_000_000,
        ] {
            let g = groups_1d(n, 256);
            assert!(g[0] <= 65535 && g[1] <= 65535);
            assert!(g[0] as u64 * g[1] as u64 * 256 >= n as u64);
        }
    }
}
