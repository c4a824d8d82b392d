//! The framecast side of each case: upload inputs once, return a recorder
//! that records the kernel under test into a step. A new family is one
//! function here and one entry in `cases::all`.

use framecast::Gpu;
use framecast::gpu::{DType, Tensor};
use framecast::kernels::elementwise::{self, Op};
use framecast::kernels::testing::Rng;

use crate::cases::{Act, FcSetup, Fmt, Side};

fn dtype(act: Act) -> DType {
    match act {
        Act::F32 => DType::F32,
        Act::F16 => DType::F16,
    }
}

/// Uniform values in [-scale, scale) as a tensor of `act`.
fn random(gpu: &Gpu, seed: u64, shape: &[usize], scale: f32, act: Act) -> anyhow::Result<Tensor> {
    let n = shape.iter().product();
    let values = Rng::new(seed).uniform_vec(n, scale);
    Ok(gpu.upload(&values, shape, dtype(act))?)
}

/// `a + b` or GELU-tanh of `a`, over `n` elements.
pub fn elementwise(binary: bool, n: usize, act: Act) -> Side<FcSetup> {
    Side::Run(Box::new(move |gpu| {
        let a = random(gpu, 1, &[n], 1.0, act)?;
        let b = random(gpu, 2, &[n], 1.0, act)?;
        let out = gpu.empty(&[n], dtype(act))?;
        let op = if binary { Op::Add } else { Op::GeluTanh };
        Ok(Box::new(move |step| {
            elementwise::encode(step, op, &a, binary.then_some(&b), &out)
        }))
    }))
}

/// `Y = X W^T` with X `[m, k]`, W `[n, k]` in `fmt` (group 32 for q4/q8).
pub fn matmul(m: usize, k: usize, n: usize, fmt: Fmt, act: Act) -> Side<FcSetup> {
    use framecast::kernels::matmul::{self, Weight, WeightFormat};
    let format = match fmt {
        Fmt::F32 => WeightFormat::F32,
        Fmt::F16 => WeightFormat::F16,
        Fmt::Q8 => WeightFormat::Q8,
        Fmt::Q4 => WeightFormat::Q4,
    };
    Side::Run(Box::new(move |gpu| {
        let w = Rng::new(3).uniform_vec(n * k, 1.0 / (k as f32).sqrt());
        let weight = Weight::upload(gpu, &w, n, k, format, 32)?;
        let x = random(gpu, 4, &[m, k], 1.0, act)?;
        let y = gpu.empty(&[m, n], dtype(act))?;
        Ok(Box::new(move |step| {
            matmul::encode(step, &x, &weight, None, &y)
        }))
    }))
}

/// Attention over packed `[tokens, heads * dim]` Q/K/V (framecast's layout:
/// heads are column blocks, read with row strides), no mask, scale 1/sqrt(dim).
pub fn attention(heads: usize, dim: usize, sq: usize, skv: usize, act: Act) -> Side<FcSetup> {
    use framecast::kernels::attention::{self, Attention, Bias};
    Side::Run(Box::new(move |gpu| {
        let q = random(gpu, 5, &[sq, heads * dim], 1.0, act)?;
        let k = random(gpu, 6, &[skv, heads * dim], 1.0, act)?;
        let v = random(gpu, 7, &[skv, heads * dim], 1.0, act)?;
        let out = gpu.empty(&[sq, heads * dim], dtype(act))?;
        let call = Attention::new(1, heads, sq, skv, dim);
        Ok(Box::new(move |step| {
            attention::encode(step, &call, &q, &k, &v, &out, Bias::default())
        }))
    }))
}

/// 3x3x3 convolution on `[cin, t, h, w]`, zero padding 1 in space and the
/// causal (first-frame replicate) padding in time, as LTX's VAE runs it;
/// weights in the activations' dtype, no bias.
pub fn conv3d(cin: usize, cout: usize, [t, h, w]: [usize; 3], act: Act) -> Side<FcSetup> {
    use framecast::kernels::conv3d::{self, Conv3d, TimePad};
    Side::Run(Box::new(move |gpu| {
        let x = random(gpu, 8, &[cin, t, h, w], 1.0, act)?;
        let scale = 1.0 / ((cin * 27) as f32).sqrt();
        let weight = random(gpu, 9, &[cout, cin, 3, 3, 3], scale, act)?;
        let y = gpu.empty(&[cout, t, h, w], dtype(act))?;
        let conv = Conv3d::cube(3, TimePad::Causal);
        Ok(Box::new(move |step| {
            conv3d::encode(step, &conv, &x, &weight, None, &y)
        }))
    }))
}
