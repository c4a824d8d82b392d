//! Elementwise ops: residual add, multiply, SiLU, GELU (tanh), gated GELU.

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, Rng, bound};
use super::{check_numel, groups_1d, precision_of, round_to};
use crate::gpu::{Binding, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub b_len: u32,
    pub _pad: [u32; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// a + b (b broadcast along a)
    Add,
    /// a * b (b broadcast along a)
    Mul,
    Silu,
    GeluTanh,
    /// gelu_tanh(a) * b, T5's gated feed-forward
    GatedGelu,
}

impl Op {
    fn entry(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Mul => "mul",
            Op::Silu => "silu_op",
            Op::GeluTanh => "gelu_tanh_op",
            Op::GatedGelu => "gated_gelu",
        }
    }

    pub fn is_binary(self) -> bool {
        matches!(self, Op::Add | Op::Mul | Op::GatedGelu)
    }
}

const WG: u32 = 256;

/// `out = op(a, b)`; `b` is required for binary ops, its length divides `a`'s.
pub fn encode(
    step: &mut Step,
    op: Op,
    a: &Tensor,
    b: Option<&Tensor>,
    out: &Tensor,
) -> Result<(), GpuError> {
    let name = "elementwise";
    let b = match (op.is_binary(), b) {
        (true, Some(b)) => b,
        (true, None) => {
            return Err(GpuError::shape(
                name,
                format!("{op:?} needs a second operand"),
            ));
        }
        (false, _) => a,
    };
    let precision = precision_of(name, &[a, b, out])?;
    let n = a.numel();
    check_numel(name, out, n, "out")?;
    if b.numel() == 0 || n % b.numel() != 0 {
        return Err(GpuError::shape(
            name,
            format!("b {:?} does not broadcast over a {:?}", b.shape, a.shape),
        ));
    }
    let params = Params {
        n: n as u32,
        b_len: b.numel() as u32,
        _pad: [0; 2],
    };
    let key = PipelineKey::new(Kernel::Elementwise, op.entry()).flags(precision.flags());
    step.dispatch(
        &key,
        &params,
        &[Binding::read(a), Binding::read(b), Binding::write(out)],
        groups_1d(n as u32, WG),
    )
}

pub fn gelu_tanh(x: f32) -> f32 {
    let inner = (2.0f32 / std::f32::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + inner.tanh())
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

pub fn reference(op: Op, a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter()
        .enumerate()
        .map(|(i, &x)| {
            let y = if b.is_empty() { 0.0 } else { b[i % b.len()] };
            match op {
                Op::Add => x + y,
                Op::Mul => x * y,
                Op::Silu => silu(x),
                Op::GeluTanh => gelu_tanh(x),
                Op::GatedGelu => gelu_tanh(x) * y,
            }
        })
        .collect()
}

/// Every op at awkward sizes (one element, not a multiple of the workgroup,
/// more than 65535 workgroups' worth) against [`reference`].
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let bound = match precision {
        Precision::F32 => bound::F32_TRANSCENDENTAL,
        Precision::F16 => bound::F16,
    };
    let mut rng = Rng::new(7);
    let mut checks = Vec::new();
    let cases: &[(Op, usize, usize)] = &[
        (Op::Add, 1, 1),
        (Op::Add, 1000, 40),
        (Op::Add, 256 * 65535 + 300, 256 * 65535 + 300),
        (Op::Mul, 777, 7),
        (Op::Silu, 4099, 0),
        (Op::GeluTanh, 4099, 0),
        (Op::GatedGelu, 3001, 3001),
    ];
    for &(op, n, nb) in cases {
        let a = rng.normal_vec(n, 3.0);
        let b = rng.normal_vec(nb, 1.0);
        let dtype = precision.dtype();
        let ta = gpu.upload(&a, &[n], dtype)?;
        let tb = if op.is_binary() {
            Some(gpu.upload(&b, &[nb], dtype)?)
        } else {
            None
        };
        let out = gpu.empty(&[n], dtype)?;
        let mut step = gpu.step("elementwise check");
        encode(&mut step, op, &ta, tb.as_ref(), &out)?;
        step.submit()?;
        let got = gpu.read(&out).await?;
        // The reference sees the inputs as the GPU stored them.
        let (a, b) = (round_to(&a, precision), round_to(&b, precision));
        checks.push(Check::new(
            format!("{op:?} n={n} b={nb} {precision:?}"),
            &got,
            &reference(op, &a, &b),
            bound,
        ));
    }
    Ok(checks)
}
