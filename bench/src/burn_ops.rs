//! The burn side of each case: the same operation in burn 0.22 on its wgpu
//! backend, each tensor in burn's own preferred layout (heads-first for
//! attention, NCDHW for conv3d), so burn pays no relayout we would not.
//!
//! Each setup makes fresh random inputs (uniform in [-1, 1), directly in the
//! case's dtype) and returns the run that consumes them.

use burn::tensor::activation::gelu_approximate;
use burn::tensor::module::{attention as burn_attention, conv3d as burn_conv3d};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{DType, Device, Distribution, Tensor};

use crate::cases::{BurnOut, BurnSetup};

fn random<const D: usize>(shape: [usize; D], dtype: DType, device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), (device, dtype))
}

/// `Y = X W` with X `[m, k]` and W `[k, n]` (burn's `Linear` stores `[in, out]`).
pub fn matmul(m: usize, k: usize, n: usize, dtype: DType) -> BurnSetup {
    Box::new(move |device| {
        let x = random([m, k], dtype, device);
        // Scaled like a real weight so f16 sums stay in range.
        let w = random([k, n], dtype, device) * (1.0 / (k as f64).sqrt());
        Box::new(move || BurnOut::R2(x.matmul(w)))
    })
}

/// burn's fused attention (`burn::tensor::module::attention`, flash kernels
/// chosen by autotune, default scale 1/sqrt(head_dim)) on `[1, heads, seq, dim]`.
pub fn attention(heads: usize, dim: usize, sq: usize, skv: usize, dtype: DType) -> BurnSetup {
    Box::new(move |device| {
        let q = random([1, heads, sq, dim], dtype, device);
        let k = random([1, heads, skv, dim], dtype, device);
        let v = random([1, heads, skv, dim], dtype, device);
        Box::new(move || {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: false,
            };
            BurnOut::R4(burn_attention(q, k, v, None, None, options))
        })
    })
}

/// A 3x3x3 convolution without bias, zero padding 1 on `[1, cin, t, h, w]` (same output size).
pub fn conv3d(cin: usize, cout: usize, [t, h, w]: [usize; 3], dtype: DType) -> BurnSetup {
    Box::new(move |device| {
        let x = random([1, cin, t, h, w], dtype, device);
        let weight =
            random([cout, cin, 3, 3, 3], dtype, device) * (1.0 / (cin as f64 * 27.0).sqrt());
        Box::new(move || {
            let options = ConvOptions::new([1, 1, 1], [1, 1, 1], [1, 1, 1], 1);
            BurnOut::R5(burn_conv3d(x, weight, None, options))
        })
    })
}

/// `a + b`, or the tanh-approximated GELU of `a` (as LTX's feed-forward uses).
pub fn elementwise(binary: bool, shape: [usize; 2], dtype: DType) -> BurnSetup {
    Box::new(move |device| {
        let a = random(shape, dtype, device);
        if binary {
            let b = random(shape, dtype, device);
            Box::new(move || BurnOut::R2(a + b))
        } else {
            Box::new(move || BurnOut::R2(gelu_approximate(a)))
        }
    })
}
