//! The VAE's resamplers: the decoder's `LTXVideoUpsampler3d` and the
//! encoder's downsamplers (a strided `LTXVideoCausalConv3d` in 0.9.0,
//! `LTXVideoDownsampler3d` in 0.9.5+).

use super::blocks::{Conv, alloc, shape_of, time_pad};
use super::{Plan, Shape, name_of};
use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::kernels::conv3d::TimePad;
use crate::kernels::elementwise::{self, Op};
use crate::kernels::rearrange::{self, Rearrange};
use crate::models::{ModelError, Vb};

/// `LTXVideoUpBlock3d` always builds its upsampler with stride (2, 2, 2);
/// the config has no field for it.
pub const UP_STRIDE: [usize; 3] = [2, 2, 2];

/// Output shape of `r` on `x`, as a model error naming `what`.
fn rearranged(r: &Rearrange, x: Shape, what: &str) -> Result<Shape, ModelError> {
    r.output_shape(&x)
        .map_err(|e| ModelError::shape(what, e.to_string()))
}

/// `main + residual` into a fresh tensor.
fn add(step: &mut Step, main: &Tensor, residual: &Tensor) -> Result<Tensor, ModelError> {
    let out = step.gpu().empty(&main.shape, main.dtype)?;
    elementwise::encode(step, Op::Add, main, Some(residual), &out)?;
    Ok(out)
}

fn rearrange_new(
    step: &mut Step,
    r: &Rearrange,
    x: &Tensor,
    what: &str,
) -> Result<Tensor, ModelError> {
    let out = alloc(step.gpu(), rearranged(r, shape_of(x)?, what)?, x.dtype)?;
    rearrange::encode(step, r, x, &out)?;
    Ok(out)
}

/// `LTXVideoUpsampler3d`: a conv to `cin * 8 / factor` channels, depth to
/// space by [`UP_STRIDE`] dropping the first `st - 1` frames, plus (with
/// `residual`) the input rearranged the same way with its channels tiled
/// `8 / factor` times.
pub struct Upsampler {
    pub name: String,
    conv: Conv,
    shuffle: Rearrange,
    residual: Option<Rearrange>,
}

impl Upsampler {
    /// `vb` is `upsamplers.0`.
    pub fn load(
        gpu: &Gpu,
        vb: &Vb<'_>,
        cin: usize,
        causal: bool,
        residual: bool,
        factor: usize,
        act: DType,
    ) -> Result<Upsampler, ModelError> {
        let name = name_of(vb);
        let block: usize = UP_STRIDE.iter().product();
        if factor == 0
            || !(cin * block).is_multiple_of(factor)
            || (residual && !block.is_multiple_of(factor))
        {
            return Err(ModelError::Config(format!(
                "{name}: upsample_factor {factor} does not divide {cin} x {block} channels"
            )));
        }
        let cout = cin * block / factor;
        Ok(Upsampler {
            conv: Conv::load(
                gpu,
                &vb.pp("conv"),
                cin,
                cout,
                3,
                [1; 3],
                time_pad(causal),
                act,
            )?,
            shuffle: Rearrange::ltx_upsampler(UP_STRIDE),
            residual: residual
                .then(|| Rearrange::ltx_upsampler_residual(UP_STRIDE, block / factor)),
            name,
        })
    }

    pub fn plan(&self, plan: &mut Plan, x: Shape) -> Result<Shape, ModelError> {
        let u = self.conv.plan(plan, x)?;
        let out = rearranged(&self.shuffle, u, &self.name)?;
        if let Some(r) = &self.residual {
            let res = rearranged(r, x, &self.name)?;
            if res != out {
                return Err(ModelError::shape(
                    &self.name,
                    format!("residual {res:?} does not match the output {out:?}"),
                ));
            }
        }
        plan.tensor(&self.name, out)?;
        Ok(out)
    }

    pub fn forward(&self, step: &mut Step, x: &Tensor) -> Result<Tensor, ModelError> {
        let u = self.conv.forward(step, x)?;
        let out = rearrange_new(step, &self.shuffle, &u, &self.name)?;
        match &self.residual {
            Some(r) => {
                let res = rearrange_new(step, r, x, &self.name)?;
                add(step, &out, &res)
            }
            None => Ok(out),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.conv.bytes()
    }
}

/// A down block's downsampler.
pub enum Downsampler {
    /// 0.9.0 (and `downsample_type="conv"`): `LTXVideoCausalConv3d` with
    /// stride (2, 2, 2), channels kept.
    Conv(Conv),
    /// `LTXVideoDownsampler3d`: the first `st - 1` frames prepended, a conv
    /// to `cout / S` channels then space to depth, plus the input space to
    /// depth with each `group` of channels averaged.
    Residual {
        name: String,
        conv: Conv,
        pack: Rearrange,
        residual: Rearrange,
    },
}

impl Downsampler {
    /// The strided conv at `vb` (`downsamplers.0`, itself the causal conv).
    pub fn conv(
        gpu: &Gpu,
        vb: &Vb<'_>,
        c: usize,
        causal: bool,
        act: DType,
    ) -> Result<Downsampler, ModelError> {
        Ok(Downsampler::Conv(Conv::load(
            gpu,
            vb,
            c,
            c,
            3,
            [2; 3],
            time_pad(causal),
            act,
        )?))
    }

    /// `LTXVideoDownsampler3d(cin, cout, stride)` at `vb` (`downsamplers.0`).
    pub fn residual(
        gpu: &Gpu,
        vb: &Vb<'_>,
        cin: usize,
        cout: usize,
        stride: [usize; 3],
        causal: bool,
        act: DType,
    ) -> Result<Downsampler, ModelError> {
        let name = name_of(vb);
        let s: usize = stride.iter().product();
        if s == 0 || !cout.is_multiple_of(s) || !(cin * s).is_multiple_of(cout) {
            return Err(ModelError::Config(format!(
                "{name}: {cin} -> {cout} channels do not pack by stride {stride:?}"
            )));
        }
        if stride[0] > 2 {
            // Prepending x[:, :, :st-1] replicates the first frame only for st <= 2.
            return Err(ModelError::Config(format!(
                "{name}: temporal stride {} is not supported",
                stride[0]
            )));
        }
        let (front, back) = time_pad(causal).frames(3);
        let pad = TimePad::Replicate {
            front: front + stride[0] - 1,
            back,
        };
        Ok(Downsampler::Residual {
            conv: Conv::load(gpu, &vb.pp("conv"), cin, cout / s, 3, [1; 3], pad, act)?,
            pack: Rearrange::ltx_downsampler(stride),
            residual: Rearrange::ltx_downsampler_residual(stride, cin * s / cout),
            name,
        })
    }

    pub fn plan(&self, plan: &mut Plan, x: Shape) -> Result<Shape, ModelError> {
        match self {
            Downsampler::Conv(c) => c.plan(plan, x),
            Downsampler::Residual {
                name,
                conv,
                pack,
                residual,
            } => {
                let c = conv.plan(plan, x)?;
                let out = rearranged(pack, c, name)?;
                let res = rearranged(residual, x, name)?;
                if res != out {
                    return Err(ModelError::shape(
                        name,
                        format!("input {x:?}: residual {res:?} does not match {out:?}"),
                    ));
                }
                plan.tensor(name, out)?;
                Ok(out)
            }
        }
    }

    pub fn forward(&self, step: &mut Step, x: &Tensor) -> Result<Tensor, ModelError> {
        match self {
            Downsampler::Conv(c) => c.forward(step, x),
            Downsampler::Residual {
                name,
                conv,
                pack,
                residual,
            } => {
                let c = conv.forward(step, x)?;
                let out = rearrange_new(step, pack, &c, name)?;
                let res = rearrange_new(step, residual, x, name)?;
                add(step, &out, &res)
            }
        }
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Downsampler::Conv(c) => c.bytes(),
            Downsampler::Residual { conv, .. } => conv.bytes(),
        }
    }
}
