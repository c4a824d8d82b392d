//! `LTXVideoDecoder3d`: conv_in, mid block, up blocks, norm_out (+ the
//! timestep's shift/scale), SiLU, conv_out, unpatchify.

use super::blocks::{
    Conv, PIXEL_NORM_EPS, Resnet, ResnetSpec, TIMESTEP_CHANNELS, TimeEmbedder, alloc, channel_rows,
    shape_of, time_pad, timestep_proj,
};
use super::samplers::Upsampler;
use super::{Plan, Shape, name_of, reversed, run};
use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::kernels::elementwise::{self, Op};
use crate::kernels::norm::{self, Modulation};
use crate::kernels::rearrange::{self, Rearrange};
use crate::models::ltx::VaeConfig;
use crate::models::{ModelError, Vb};

/// The mid block or one up block: (up blocks) `conv_in` when the channel
/// count changes, the upsampler, then resnets; `time_embedder` when
/// timestep-conditioned.
struct Block {
    name: String,
    embedder: Option<TimeEmbedder>,
    conv_in: Option<Resnet>,
    upsampler: Option<Upsampler>,
    resnets: Vec<Resnet>,
}

impl Block {
    fn plan(&self, plan: &mut Plan, mut x: Shape) -> Result<Shape, ModelError> {
        if let Some(r) = &self.conv_in {
            x = r.plan(plan, x)?;
        }
        if let Some(u) = &self.upsampler {
            x = u.plan(plan, x)?;
        }
        for r in &self.resnets {
            x = r.plan(plan, x)?;
        }
        Ok(x)
    }

    /// Each layer in its own step; `temb` is this block's embedded timestep.
    fn forward(
        &self,
        gpu: &Gpu,
        mut x: Tensor,
        temb: Option<&Tensor>,
    ) -> Result<Tensor, ModelError> {
        if let Some(r) = &self.conv_in {
            // Only built without timestep conditioning (see `VaeDecoder::load`).
            x = run(gpu, &r.name, |s| r.forward(s, &x, None))?;
        }
        if let Some(u) = &self.upsampler {
            x = run(gpu, &u.name, |s| u.forward(s, &x))?;
        }
        for r in &self.resnets {
            x = run(gpu, &r.name, |s| r.forward(s, &x, temb))?;
        }
        Ok(x)
    }

    fn bytes(&self) -> u64 {
        self.embedder.as_ref().map_or(0, |e| e.bytes())
            + self.conv_in.as_ref().map_or(0, |r| r.bytes())
            + self.upsampler.as_ref().map_or(0, |u| u.bytes())
            + self.resnets.iter().map(|r| r.bytes()).sum::<u64>()
    }
}

/// The decoder's output-side timestep conditioning.
struct OutModulation {
    embedder: TimeEmbedder,
    /// `scale_shift_table [2, C]`: shift, scale.
    table: Tensor,
    /// `timestep_scale_multiplier` (1000 in the published checkpoints).
    timestep_scale: f32,
}

/// `AutoencoderKLLTXVideo.decoder` on the GPU.
pub struct VaeDecoder {
    act: DType,
    latent_channels: usize,
    conv_in: Conv,
    mid: Block,
    up: Vec<Block>,
    /// Channels at `norm_out`.
    channels: usize,
    conditioning: Option<OutModulation>,
    conv_out: Conv,
    unpatchify: Rearrange,
}

impl VaeDecoder {
    /// `vb` is the "vae" root; `act` the activation dtype (F32 or F16).
    pub fn load(
        gpu: &Gpu,
        vb: Vb<'_>,
        config: &VaeConfig,
        act: DType,
    ) -> Result<VaeDecoder, ModelError> {
        let vb = vb.pp("decoder");
        let causal = config.decoder_causal;
        let cond = config.timestep_conditioning;
        let channels = &config.decoder_block_out_channels;
        let layers = &config.decoder_layers_per_block;
        let noise = &config.decoder_inject_noise;
        let spec = |cin, cout, inject_noise| ResnetSpec {
            cin,
            cout,
            causal,
            eps: config.resnet_norm_eps as f32,
            timestep_conditioning: cond,
            inject_noise,
        };
        let resnets = |vb: &Vb<'_>, n: usize, c: usize, inject: bool| {
            (0..n)
                .map(|j| Resnet::load(gpu, &vb.pp("resnets").pp(j), spec(c, c, inject), act))
                .collect::<Result<Vec<_>, _>>()
        };
        let embedder = |vb: &Vb<'_>, dim: usize| {
            cond.then(|| TimeEmbedder::load(gpu, &vb.pp("time_embedder"), dim, act))
                .transpose()
        };

        let mut output = reversed(channels, 0, "decoder_block_out_channels")?;
        let conv_in = Conv::load(
            gpu,
            &vb.pp("conv_in"),
            config.latent_channels,
            output,
            3,
            [1; 3],
            time_pad(causal),
            act,
        )?;
        let mid_vb = vb.pp("mid_block");
        let mid = Block {
            name: name_of(&mid_vb),
            embedder: embedder(&mid_vb, output * 4)?,
            conv_in: None,
            upsampler: None,
            resnets: resnets(
                &mid_vb,
                reversed(layers, 0, "decoder_layers_per_block")?,
                output,
                reversed(noise, 0, "decoder_inject_noise")?,
            )?,
        };

        // `cur` follows the actual channel count; diffusers' nominal `input`
        // differs from it when upsample_factor > 1.
        let mut cur = output;
        let mut up = Vec::with_capacity(channels.len());
        for i in 0..channels.len() {
            let factor = reversed(&config.upsample_factor, i, "upsample_factor")?;
            if factor == 0 {
                return Err(ModelError::Config("upsample_factor has a 0".into()));
            }
            let input = output / factor;
            let out = reversed(channels, i, "decoder_block_out_channels")? / factor;
            let inject = reversed(noise, i + 1, "decoder_inject_noise")?;
            let bvb = vb.pp("up_blocks").pp(i);
            let name = name_of(&bvb);
            let mismatch = |what: &str, want: usize, cur: usize| {
                ModelError::Config(format!(
                    "{name}: its {what} takes {want} channels, the previous layer gives {cur}"
                ))
            };
            let conv_in = if input != out {
                if cur != input {
                    return Err(mismatch("conv_in", input, cur));
                }
                cur = out;
                // diffusers hands this resnet the raw timestep, which only
                // works unconditioned; Resnet::load refuses the other case.
                Some(Resnet::load(
                    gpu,
                    &bvb.pp("conv_in"),
                    spec(input, out, inject),
                    act,
                )?)
            } else {
                None
            };
            let scaling = reversed(
                &config.decoder_spatio_temporal_scaling,
                i,
                "decoder_spatio_temporal_scaling",
            )?;
            let upsampler = if scaling {
                if cur != out * factor {
                    return Err(mismatch("upsampler", out * factor, cur));
                }
                cur = out;
                let residual = reversed(&config.upsample_residual, i, "upsample_residual")?;
                Some(Upsampler::load(
                    gpu,
                    &bvb.pp("upsamplers").pp(0),
                    out * factor,
                    causal,
                    residual,
                    factor,
                    act,
                )?)
            } else {
                None
            };
            if cur != out {
                return Err(mismatch("resnets", out, cur));
            }
            let n = reversed(layers, i + 1, "decoder_layers_per_block")?;
            up.push(Block {
                embedder: embedder(&bvb, input * 4)?,
                conv_in,
                upsampler,
                resnets: resnets(&bvb, n, out, inject)?,
                name,
            });
            output = out;
        }

        let conditioning = if cond {
            Some(OutModulation {
                embedder: TimeEmbedder::load(gpu, &vb.pp("time_embedder"), output * 2, act)?,
                table: vb.tensor(gpu, "scale_shift_table", &[2, output], act)?,
                timestep_scale: vb
                    .cpu("timestep_scale_multiplier", &[])?
                    .first()
                    .copied()
                    .unwrap_or(1.0),
            })
        } else {
            None
        };
        let p = config.patch_size;
        let conv_out = Conv::load(
            gpu,
            &vb.pp("conv_out"),
            output,
            config.out_channels * p * p,
            3,
            [1; 3],
            time_pad(causal),
            act,
        )?;
        Ok(VaeDecoder {
            act,
            latent_channels: config.latent_channels,
            conv_in,
            mid,
            up,
            channels: output,
            conditioning,
            conv_out,
            unpatchify: Rearrange::ltx_unpatchify(config.patch_size_t, p),
        })
    }

    /// Whether [`VaeDecoder::decode`] needs a timestep.
    pub fn timestep_conditioned(&self) -> bool {
        self.conditioning.is_some()
    }

    /// The video shape `[out_channels, F', H', W']` a latent `[C, F, H, W]`
    /// decodes to, or why it cannot be decoded in one piece on `gpu`
    /// (wrong channels, or an activation beyond one storage binding).
    pub fn output_shape(&self, gpu: &Gpu, latent: Shape) -> Result<Shape, ModelError> {
        if latent[0] != self.latent_channels || latent.contains(&0) {
            return Err(ModelError::shape(
                "vae.decoder",
                format!(
                    "latent {latent:?} is not [{}, F, H, W] with F, H, W >= 1",
                    self.latent_channels
                ),
            ));
        }
        let mut plan = Plan::new(gpu, self.act);
        plan.tensor("vae.decoder latent", latent)?;
        let mut x = self.conv_in.plan(&mut plan, latent)?;
        x = self.mid.plan(&mut plan, x)?;
        for b in &self.up {
            x = b.plan(&mut plan, x)?;
        }
        plan.tensor("vae.decoder.norm_out", x)?;
        x = self.conv_out.plan(&mut plan, x)?;
        self.unpatchify
            .output_shape(&x)
            .map_err(|e| ModelError::shape("vae.decoder unpatchify", e.to_string()))
    }

    /// Decodes `z [latent_channels, F, H, W]` (act dtype, already
    /// denormalised) into `[out_channels, 1 + (F - 1) * 8, H * 32, W * 32]`
    /// (for the published ratios) in about [-1, 1], act dtype. `timestep` is
    /// the decode timestep of a timestep-conditioned decoder (ignored by
    /// others, as diffusers does). Submits one step per layer (resnet,
    /// upsampler, output head) so only one layer's temporaries are alive.
    pub fn decode(
        &self,
        gpu: &Gpu,
        z: &Tensor,
        timestep: Option<f32>,
    ) -> Result<Tensor, ModelError> {
        if z.dtype != self.act {
            return Err(ModelError::shape(
                "vae.decoder",
                format!(
                    "latent is {:?}, the decoder runs in {:?}",
                    z.dtype, self.act
                ),
            ));
        }
        let latent: Shape = z.shape.as_slice().try_into().map_err(|_| {
            ModelError::shape(
                "vae.decoder",
                format!("latent {:?} is not [C, F, H, W]", z.shape),
            )
        })?;
        self.output_shape(gpu, latent)?;
        let tembs = self.embed(gpu, timestep)?;
        let temb = |i: usize| tembs.as_ref().map(|t| &t[i]);

        let mut x = run(gpu, &self.conv_in.name, |s| self.conv_in.forward(s, z))?;
        x = self.mid.forward(gpu, x, temb(0))?;
        for (i, b) in self.up.iter().enumerate() {
            x = b.forward(gpu, x, temb(i + 1))?;
        }
        run(gpu, "vae.decoder.conv_out", |s| {
            self.head(s, &x, temb(self.up.len() + 1))
        })
    }

    /// The embedded timestep of the mid block, each up block and the
    /// output head, in that order (one small step).
    fn embed(&self, gpu: &Gpu, timestep: Option<f32>) -> Result<Option<Vec<Tensor>>, ModelError> {
        let Some(c) = &self.conditioning else {
            return Ok(None);
        };
        let t = timestep.ok_or_else(|| {
            ModelError::Config(
                "this VAE decoder is timestep-conditioned: pass a decode timestep".into(),
            )
        })?;
        let proj = gpu.upload(
            &timestep_proj(t * c.timestep_scale),
            &[1, TIMESTEP_CHANNELS],
            self.act,
        )?;
        let mut step = gpu.step("vae.decoder.time_embedders");
        let mut out = Vec::with_capacity(self.up.len() + 2);
        for b in std::iter::once(&self.mid).chain(&self.up) {
            let e = b.embedder.as_ref().ok_or_else(|| {
                ModelError::Config(format!(
                    "{}: timestep-conditioned without a time_embedder",
                    b.name
                ))
            })?;
            out.push(e.forward(&mut step, &proj)?);
        }
        out.push(c.embedder.forward(&mut step, &proj)?);
        step.submit()?;
        Ok(Some(out))
    }

    /// norm_out (+ shift/scale), SiLU, conv_out, unpatchify.
    fn head(
        &self,
        step: &mut Step,
        x: &Tensor,
        temb: Option<&Tensor>,
    ) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let modulation = match (&self.conditioning, temb) {
            (Some(c), Some(e)) => Some(Modulation::chunks(
                e,
                Some(&c.table),
                self.channels,
                2,
                0,
                1,
            )),
            _ => None,
        };
        let n = gpu.empty(&x.shape, x.dtype)?;
        norm::pixel_norm(
            step,
            channel_rows(x)?,
            None,
            PIXEL_NORM_EPS,
            modulation.as_ref(),
            &n,
        )?;
        let a = gpu.empty(&x.shape, x.dtype)?;
        elementwise::encode(step, Op::Silu, &n, None, &a)?;
        let y = self.conv_out.forward(step, &a)?;
        let shape = self
            .unpatchify
            .output_shape(&shape_of(&y)?)
            .map_err(|e| ModelError::shape("vae.decoder unpatchify", e.to_string()))?;
        let out = alloc(gpu, shape, x.dtype)?;
        rearrange::encode(step, &self.unpatchify, &y, &out)?;
        Ok(out)
    }

    /// Bytes of GPU memory the weights hold.
    pub fn bytes(&self) -> u64 {
        self.conv_in.bytes()
            + self.mid.bytes()
            + self.up.iter().map(|b| b.bytes()).sum::<u64>()
            + self
                .conditioning
                .as_ref()
                .map_or(0, |c| c.embedder.bytes() + c.table.bytes())
            + self.conv_out.bytes()
    }
}
