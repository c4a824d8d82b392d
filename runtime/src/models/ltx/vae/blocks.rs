//! The VAE's building blocks: `LTXVideoCausalConv3d` ([`Conv`]),
//! `LTXVideoResnetBlock3d` ([`Resnet`]) and the decoder's
//! `PixArtAlphaCombinedTimestepSizeEmbeddings` ([`TimeEmbedder`]).

use super::{Plan, Shape, conv_dtype, name_of};
use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::kernels::Rows;
use crate::kernels::conv3d::{self, Conv3d, TimePad};
use crate::kernels::elementwise::{self, Op};
use crate::kernels::norm::{self, Modulation};
use crate::models::{Linear, ModelError, Vb};

/// `RMSNorm(C, eps=1e-8, elementwise_affine=False)` of diffusers' resnet
/// `norm1` / `norm2` and of both `norm_out`s.
pub const PIXEL_NORM_EPS: f32 = 1e-8;

/// Channels of the sinusoidal timestep projection (`Timesteps(num_channels=256)`).
pub const TIMESTEP_CHANNELS: usize = 256;

/// The temporal padding of an `LTXVideoCausalConv3d` built with `is_causal`.
pub fn time_pad(causal: bool) -> TimePad {
    if causal {
        TimePad::Causal
    } else {
        TimePad::Symmetric
    }
}

pub fn alloc(gpu: &Gpu, shape: Shape, dtype: DType) -> Result<Tensor, ModelError> {
    Ok(gpu.empty(&shape, dtype)?)
}

pub fn shape_of(x: &Tensor) -> Result<Shape, ModelError> {
    x.shape.as_slice().try_into().map_err(|_| {
        ModelError::shape(
            "vae",
            format!("activation {:?} is not [C, F, H, W]", x.shape),
        )
    })
}

/// One 3D convolution with its weights on the GPU.
pub struct Conv {
    pub name: String,
    pub geometry: Conv3d,
    pub cin: usize,
    pub cout: usize,
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Conv {
    /// The `LTXVideoCausalConv3d` at `vb` (its inner `nn.Conv3d` is `conv`):
    /// a cube kernel of `k`, `stride`, `time_pad`.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        gpu: &Gpu,
        vb: &Vb<'_>,
        cin: usize,
        cout: usize,
        k: usize,
        stride: [usize; 3],
        time_pad: TimePad,
        act: DType,
    ) -> Result<Conv, ModelError> {
        Conv::load_prefix(
            gpu,
            &vb.pp("conv"),
            cin,
            cout,
            cout,
            k,
            stride,
            time_pad,
            act,
        )
    }

    /// The `nn.Conv3d` at `vb` (`weight [stored, cin, k, k, k]`, `bias`),
    /// keeping only its first `keep` output channels.
    #[allow(clippy::too_many_arguments)]
    pub fn load_prefix(
        gpu: &Gpu,
        vb: &Vb<'_>,
        cin: usize,
        stored: usize,
        keep: usize,
        k: usize,
        stride: [usize; 3],
        time_pad: TimePad,
        act: DType,
    ) -> Result<Conv, ModelError> {
        let geometry = Conv3d::cube(k, time_pad).with_stride(stride);
        let dtype = conv_dtype(vb, "weight", act)?;
        let mut w = vb.cpu("weight", &[stored, cin, k, k, k])?;
        w.truncate(keep * cin * k * k * k);
        let b = if vb.has("bias") {
            let mut b = vb.cpu("bias", &[stored])?;
            b.truncate(keep);
            Some(b)
        } else {
            None
        };
        Conv::from_values(
            gpu,
            name_of(vb),
            geometry,
            cin,
            keep,
            &w,
            b.as_deref(),
            dtype,
        )
    }

    /// A convolution from CPU values (`weight [cout, cin, kt, kh, kw]`).
    #[allow(clippy::too_many_arguments)]
    pub fn from_values(
        gpu: &Gpu,
        name: String,
        geometry: Conv3d,
        cin: usize,
        cout: usize,
        weight: &[f32],
        bias: Option<&[f32]>,
        dtype: DType,
    ) -> Result<Conv, ModelError> {
        let [kt, kh, kw] = geometry.kernel;
        Ok(Conv {
            weight: gpu.upload(weight, &[cout, cin, kt, kh, kw], dtype)?,
            bias: bias.map(|b| gpu.upload(b, &[cout], dtype)).transpose()?,
            name,
            geometry,
            cin,
            cout,
        })
    }

    pub fn out_shape(&self, x: Shape) -> Result<Shape, ModelError> {
        if x[0] != self.cin {
            return Err(ModelError::shape(
                &self.name,
                format!(
                    "input {x:?} has {} channels, the conv takes {}",
                    x[0], self.cin
                ),
            ));
        }
        let [f, h, w] = self
            .geometry
            .output_size([x[1], x[2], x[3]])
            .map_err(|e| ModelError::shape(&self.name, e.to_string()))?;
        Ok([self.cout, f, h, w])
    }

    pub fn plan(&self, plan: &mut Plan, x: Shape) -> Result<Shape, ModelError> {
        let out = self.out_shape(x)?;
        plan.tensor(&self.name, out)?;
        Ok(out)
    }

    /// Records `out = conv(x)` into `out` (shaped by [`Conv::out_shape`]).
    pub fn encode_into(&self, step: &mut Step, x: &Tensor, out: &Tensor) -> Result<(), ModelError> {
        conv3d::encode(
            step,
            &self.geometry,
            x,
            &self.weight,
            self.bias.as_ref(),
            out,
        )?;
        Ok(())
    }

    pub fn forward(&self, step: &mut Step, x: &Tensor) -> Result<Tensor, ModelError> {
        let out = alloc(step.gpu(), self.out_shape(shape_of(x)?)?, x.dtype)?;
        self.encode_into(step, x, &out)?;
        Ok(out)
    }

    pub fn bytes(&self) -> u64 {
        self.weight.bytes() + self.bias.as_ref().map_or(0, |b| b.bytes())
    }
}

/// `norm3` (a LayerNorm over channels, affine) then the 1x1x1
/// `conv_shortcut`, of a resnet that changes its channel count. The
/// LayerNorm's weight and bias are folded into the shortcut conv; the
/// centring is a 1x1x1 conv with weights `-1/C` (the negated channel mean)
/// added to the input, then a pixel RMS norm with the LayerNorm's eps.
struct Shortcut {
    neg_mean: Conv,
    eps: f32,
    conv: Conv,
}

impl Shortcut {
    fn load(
        gpu: &Gpu,
        vb: &Vb<'_>,
        cin: usize,
        cout: usize,
        eps: f32,
        act: DType,
    ) -> Result<Shortcut, ModelError> {
        let norm = vb.pp("norm3");
        let (nw, nb) = (norm.cpu("weight", &[cin])?, norm.cpu("bias", &[cin])?);
        let conv = vb.pp("conv_shortcut").pp("conv");
        let w = conv.cpu("weight", &[cout, cin, 1, 1, 1])?;
        let b = if conv.has("bias") {
            conv.cpu("bias", &[cout])?
        } else {
            vec![0.0; cout]
        };
        // W (n * w + b) + b_s = (W diag(w)) n + (W b + b_s)
        let folded: Vec<f32> = (0..cout * cin).map(|i| w[i] * nw[i % cin]).collect();
        let bias: Vec<f32> = (0..cout)
            .map(|o| {
                let wb: f64 = (0..cin).map(|i| w[o * cin + i] as f64 * nb[i] as f64).sum();
                (b[o] as f64 + wb) as f32
            })
            .collect();
        let unit = Conv3d::cube(1, TimePad::None);
        let dtype = conv_dtype(&conv, "weight", act)?;
        Ok(Shortcut {
            // Kept in f32: -1/C is inexact in f16 for most C.
            neg_mean: Conv::from_values(
                gpu,
                name_of(&norm),
                unit,
                cin,
                1,
                &vec![-1.0 / cin as f32; cin],
                None,
                DType::F32,
            )?,
            eps,
            conv: Conv::from_values(
                gpu,
                name_of(&conv),
                unit,
                cin,
                cout,
                &folded,
                Some(&bias),
                dtype,
            )?,
        })
    }

    fn forward(&self, step: &mut Step, x: &Tensor) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let m = self.neg_mean.forward(step, x)?;
        let centred = gpu.empty(&x.shape, x.dtype)?;
        elementwise::encode(step, Op::Add, x, Some(&m), &centred)?;
        let n = gpu.empty(&x.shape, x.dtype)?;
        norm::pixel_norm(step, channel_rows(&centred)?, None, self.eps, None, &n)?;
        self.conv.forward(step, &n)
    }

    fn bytes(&self) -> u64 {
        self.neg_mean.bytes() + self.conv.bytes()
    }
}

/// `x [C, F, H, W]` as C rows of F*H*W positions (what `pixel_norm` takes).
pub fn channel_rows(x: &Tensor) -> Result<Rows<'_>, ModelError> {
    let c = shape_of(x)?[0];
    Ok(Rows::contiguous(x, x.numel() / c.max(1)))
}

/// `LTXVideoResnetBlock3d`: norm1 (+ shift/scale) -> SiLU -> conv1 -> norm2
/// (+ shift/scale) -> SiLU -> conv2, plus the input (through norm3 and
/// conv_shortcut when the channel count changes).
pub struct Resnet {
    pub name: String,
    cin: usize,
    cout: usize,
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Shortcut>,
    /// `scale_shift_table [4, C]`: shift_1, scale_1, shift_2, scale_2.
    table: Option<Tensor>,
}

/// How a resnet is built (diffusers' constructor arguments).
#[derive(Clone, Copy, Debug)]
pub struct ResnetSpec {
    pub cin: usize,
    pub cout: usize,
    pub causal: bool,
    pub eps: f32,
    pub timestep_conditioning: bool,
    pub inject_noise: bool,
}

impl Resnet {
    pub fn load(
        gpu: &Gpu,
        vb: &Vb<'_>,
        spec: ResnetSpec,
        act: DType,
    ) -> Result<Resnet, ModelError> {
        let name = name_of(vb);
        let ResnetSpec {
            cin, cout, causal, ..
        } = spec;
        if spec.inject_noise {
            // diffusers draws torch.randn noise scaled by per_channel_scale{1,2}
            // on every call (the 0.9.1 decoder); not reproduced here.
            return Err(ModelError::Config(format!(
                "{name}: decoder_inject_noise is not supported"
            )));
        }
        if spec.timestep_conditioning && cin != cout {
            // Its table is [4, cin] but shift_2/scale_2 apply to cout channels.
            return Err(ModelError::Config(format!(
                "{name}: a timestep-conditioned resnet must keep its channels ({cin} -> {cout})"
            )));
        }
        let pad = time_pad(causal);
        let conv1 = Conv::load(gpu, &vb.pp("conv1"), cin, cout, 3, [1; 3], pad, act)?;
        let conv2 = Conv::load(gpu, &vb.pp("conv2"), cout, cout, 3, [1; 3], pad, act)?;
        let shortcut = (cin != cout)
            .then(|| Shortcut::load(gpu, vb, cin, cout, spec.eps, act))
            .transpose()?;
        let table = spec
            .timestep_conditioning
            .then(|| vb.tensor(gpu, "scale_shift_table", &[4, cin], act))
            .transpose()?;
        Ok(Resnet {
            name,
            cin,
            cout,
            conv1,
            conv2,
            shortcut,
            table,
        })
    }

    pub fn plan(&self, plan: &mut Plan, x: Shape) -> Result<Shape, ModelError> {
        plan.tensor(&self.name, x)?;
        let h = self.conv1.plan(plan, x)?;
        self.conv2.plan(plan, h)
    }

    /// The block on `x [cin, F, H, W]`; `temb [1, 4 cin]` (the block's
    /// embedded timestep) when timestep-conditioned.
    pub fn forward(
        &self,
        step: &mut Step,
        x: &Tensor,
        temb: Option<&Tensor>,
    ) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let shape = shape_of(x)?;
        let mods = match (&self.table, temb) {
            (Some(t), Some(e)) => Some([
                Modulation::chunks(e, Some(t), self.cin, 4, 0, 1),
                Modulation::chunks(e, Some(t), self.cin, 4, 2, 3),
            ]),
            (None, _) => None,
            (Some(_), None) => {
                return Err(ModelError::Config(format!(
                    "{}: timestep-conditioned, but no timestep embedding",
                    self.name
                )));
            }
        };
        let (mod1, mod2) = match &mods {
            Some([a, b]) => (Some(a), Some(b)),
            None => (None, None),
        };
        // Two scratch activations per channel count, reused along the chain
        // (no dispatch reads and writes the same buffer), so a kept channel
        // count needs x plus two.
        let a = gpu.empty(&x.shape, x.dtype)?;
        let b = gpu.empty(&x.shape, x.dtype)?;
        norm::pixel_norm(step, channel_rows(x)?, None, PIXEL_NORM_EPS, mod1, &a)?;
        elementwise::encode(step, Op::Silu, &a, None, &b)?;
        let out_shape = self.conv1.out_shape(shape)?;
        let (p, q) = if self.cin == self.cout {
            (a, b.clone())
        } else {
            (
                alloc(gpu, out_shape, x.dtype)?,
                alloc(gpu, out_shape, x.dtype)?,
            )
        };
        self.conv1.encode_into(step, &b, &p)?;
        norm::pixel_norm(step, channel_rows(&p)?, None, PIXEL_NORM_EPS, mod2, &q)?;
        elementwise::encode(step, Op::Silu, &q, None, &p)?;
        self.conv2.encode_into(step, &p, &q)?;
        let residual = match &self.shortcut {
            Some(s) => s.forward(step, x)?,
            None => x.clone(),
        };
        elementwise::encode(step, Op::Add, &q, Some(&residual), &p)?;
        Ok(p)
    }

    pub fn bytes(&self) -> u64 {
        self.conv1.bytes()
            + self.conv2.bytes()
            + self.shortcut.as_ref().map_or(0, |s| s.bytes())
            + self.table.as_ref().map_or(0, |t| t.bytes())
    }
}

/// `PixArtAlphaCombinedTimestepSizeEmbeddings(dim, 0)` without size
/// conditions: the 256-channel sinusoid of the timestep, then
/// `timestep_embedder` (linear_1, SiLU, linear_2).
pub struct TimeEmbedder {
    pub dim: usize,
    linear_1: Linear,
    linear_2: Linear,
}

impl TimeEmbedder {
    /// `vb` is the `time_embedder` module.
    pub fn load(
        gpu: &Gpu,
        vb: &Vb<'_>,
        dim: usize,
        act: DType,
    ) -> Result<TimeEmbedder, ModelError> {
        let e = vb.pp("timestep_embedder");
        Ok(TimeEmbedder {
            dim,
            linear_1: e.pp("linear_1").linear(gpu, dim, TIMESTEP_CHANNELS, act)?,
            linear_2: e.pp("linear_2").linear(gpu, dim, dim, act)?,
        })
    }

    /// `[1, dim]` from the projection `[1, 256]` of [`timestep_proj`].
    pub fn forward(&self, step: &mut Step, proj: &Tensor) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let h = gpu.empty(&[1, self.dim], proj.dtype)?;
        self.linear_1.encode(step, proj, &h)?;
        let a = gpu.empty(&[1, self.dim], proj.dtype)?;
        elementwise::encode(step, Op::Silu, &h, None, &a)?;
        let out = gpu.empty(&[1, self.dim], proj.dtype)?;
        self.linear_2.encode(step, &a, &out)?;
        Ok(out)
    }

    pub fn bytes(&self) -> u64 {
        self.linear_1.bytes() + self.linear_2.bytes()
    }
}

/// diffusers' `get_timestep_embedding(t, 256, flip_sin_to_cos=True,
/// downscale_freq_shift=0)`: `[cos(t f_i), sin(t f_i)]` with
/// `f_i = exp(-ln(10000) i / 128)`, in f32 as torch computes it.
pub fn timestep_proj(t: f32) -> Vec<f32> {
    let half = TIMESTEP_CHANNELS / 2;
    let ln = -(10000f64.ln() as f32);
    let args: Vec<f32> = (0..half)
        .map(|i| t * ((ln * i as f32) / half as f32).exp())
        .collect();
    args.iter()
        .map(|a| a.cos())
        .chain(args.iter().map(|a| a.sin()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestep_projection_is_cos_then_sin() {
        let p = timestep_proj(50.0);
        assert_eq!(p.len(), 256);
        assert!((p[0] - 50f32.cos()).abs() < 1e-6);
        assert!((p[128] - 50f32.sin()).abs() < 1e-6);
        // The lowest frequency is 10000^(-127/128).
        let f = 10000f64.powf(-127.0 / 128.0);
        assert!((p[255] as f64 - (50.0 * f).sin()).abs() < 1e-6);
    }
}
