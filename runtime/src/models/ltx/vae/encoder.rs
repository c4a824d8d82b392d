//! `LTXVideoEncoder3d`: patchify, conv_in, down blocks, mid block,
//! norm_out, SiLU, conv_out, of which only the posterior mean is kept.

use super::blocks::{Conv, PIXEL_NORM_EPS, Resnet, ResnetSpec, alloc, channel_rows, time_pad};
use super::samplers::Downsampler;
use super::{Plan, Shape, name_of, nth, run};
use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::kernels::elementwise::{self, Op};
use crate::kernels::norm;
use crate::kernels::rearrange::{self, Rearrange};
use crate::models::ltx::VaeConfig;
use crate::models::{ModelError, Vb};

/// `LTXVideoDownBlock3D` (resnets, strided-conv downsampler, `conv_out`
/// resnet when the channels change) or `LTXVideo095DownBlock3D` (resnets,
/// a downsampler of `downsample_type` that also changes the channels).
struct DownBlock {
    resnets: Vec<Resnet>,
    downsampler: Option<(String, Downsampler)>,
    conv_out: Option<Resnet>,
}

impl DownBlock {
    fn plan(&self, plan: &mut Plan, mut x: Shape) -> Result<Shape, ModelError> {
        for r in &self.resnets {
            x = r.plan(plan, x)?;
        }
        if let Some((_, d)) = &self.downsampler {
            x = d.plan(plan, x)?;
        }
        if let Some(r) = &self.conv_out {
            x = r.plan(plan, x)?;
        }
        Ok(x)
    }

    fn forward(&self, gpu: &Gpu, mut x: Tensor) -> Result<Tensor, ModelError> {
        for r in &self.resnets {
            x = run(gpu, &r.name, |s| r.forward(s, &x, None))?;
        }
        if let Some((name, d)) = &self.downsampler {
            x = run(gpu, name, |s| d.forward(s, &x))?;
        }
        if let Some(r) = &self.conv_out {
            x = run(gpu, &r.name, |s| r.forward(s, &x, None))?;
        }
        Ok(x)
    }

    fn bytes(&self) -> u64 {
        self.resnets.iter().map(|r| r.bytes()).sum::<u64>()
            + self.downsampler.as_ref().map_or(0, |(_, d)| d.bytes())
            + self.conv_out.as_ref().map_or(0, |r| r.bytes())
    }
}

/// `AutoencoderKLLTXVideo.encoder` on the GPU, returning the posterior mean.
pub struct VaeEncoder {
    act: DType,
    in_channels: usize,
    patchify: Rearrange,
    conv_in: Conv,
    down: Vec<DownBlock>,
    mid: Vec<Resnet>,
    /// The first `latent_channels` output channels of `conv_out` only: the
    /// last of its `latent_channels + 1` is the shared log-variance, which
    /// diffusers repeats into the posterior's logvar half.
    conv_out: Conv,
}

/// The stride of an `LTXVideoDownsampler3d` of `downsample_type` (None: the
/// strided conv).
fn downsample_stride(kind: &str) -> Result<Option<[usize; 3]>, ModelError> {
    Ok(match kind {
        "conv" => None,
        "spatial" => Some([1, 2, 2]),
        "temporal" => Some([2, 1, 1]),
        "spatiotemporal" => Some([2, 2, 2]),
        other => {
            return Err(ModelError::Config(format!(
                "unknown downsample_type '{other}'"
            )));
        }
    })
}

impl VaeEncoder {
    /// `vb` is the "vae" root; `act` the activation dtype (F32 or F16).
    pub fn load(
        gpu: &Gpu,
        vb: Vb<'_>,
        config: &VaeConfig,
        act: DType,
    ) -> Result<VaeEncoder, ModelError> {
        let vb = vb.pp("encoder");
        let causal = config.encoder_causal;
        let (p, pt) = (config.patch_size, config.patch_size_t);
        let channels = &config.block_out_channels;
        let types = &config.down_block_types;
        let spec = |cin, cout| ResnetSpec {
            cin,
            cout,
            causal,
            eps: config.resnet_norm_eps as f32,
            timestep_conditioning: false,
            inject_noise: false,
        };
        let resnets = |vb: &Vb<'_>, n: usize, c: usize| {
            (0..n)
                .map(|j| Resnet::load(gpu, &vb.pp("resnets").pp(j), spec(c, c), act))
                .collect::<Result<Vec<_>, _>>()
        };
        // diffusers: the 0.9.5 layout if the last block type is the 095 one.
        let is_095 = types.last().is_some_and(|t| t == "LTXVideo095DownBlock3D");
        let blocks = channels
            .len()
            .checked_sub(usize::from(is_095))
            .ok_or_else(|| ModelError::Config("block_out_channels is empty".into()))?;

        let mut output = nth(channels, 0, "block_out_channels")?;
        let conv_in = Conv::load(
            gpu,
            &vb.pp("conv_in"),
            config.in_channels * p * p,
            output,
            3,
            [1; 3],
            time_pad(causal),
            act,
        )?;
        let mut down = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let input = output;
            output = if is_095 || i + 1 < blocks {
                nth(channels, i + 1, "block_out_channels")?
            } else {
                nth(channels, i, "block_out_channels")?
            };
            let bvb = vb.pp("down_blocks").pp(i);
            let layers = nth(&config.layers_per_block, i, "layers_per_block")?;
            let scaling = nth(
                &config.spatio_temporal_scaling,
                i,
                "spatio_temporal_scaling",
            )?;
            let dvb = bvb.pp("downsamplers").pp(0);
            let kind = nth(types, i, "down_block_types")?;
            // (downsampler, conv_out resnet, channels at the block's end)
            let (downsampler, conv_out, end) = match kind.as_str() {
                "LTXVideoDownBlock3D" => (
                    scaling
                        .then(|| Downsampler::conv(gpu, &dvb, input, causal, act))
                        .transpose()?,
                    (input != output)
                        .then(|| Resnet::load(gpu, &bvb.pp("conv_out"), spec(input, output), act))
                        .transpose()?,
                    output,
                ),
                "LTXVideo095DownBlock3D" => {
                    let kind = nth(&config.downsample_type, i, "downsample_type")?;
                    let stride = downsample_stride(&kind)?;
                    let d = match (scaling, stride) {
                        (false, _) => None,
                        (true, None) => Some(Downsampler::conv(gpu, &dvb, input, causal, act)?),
                        (true, Some(s)) => Some(Downsampler::residual(
                            gpu, &dvb, input, output, s, causal, act,
                        )?),
                    };
                    let end = if scaling && stride.is_some() {
                        output
                    } else {
                        input
                    };
                    (d, None, end)
                }
                other => {
                    return Err(ModelError::Config(format!(
                        "unknown down block type '{other}'"
                    )));
                }
            };
            if end != output {
                return Err(ModelError::Config(format!(
                    "{}: ends with {end} channels, the next block takes {output}",
                    name_of(&bvb)
                )));
            }
            down.push(DownBlock {
                resnets: resnets(&bvb, layers, input)?,
                downsampler: downsampler.map(|d| (name_of(&dvb), d)),
                conv_out,
            });
        }
        let mid_layers = *config
            .layers_per_block
            .last()
            .ok_or_else(|| ModelError::Config("layers_per_block is empty".into()))?;
        let mid = resnets(&vb.pp("mid_block"), mid_layers, output)?;
        let latent = config.latent_channels;
        let conv_out = Conv::load_prefix(
            gpu,
            &vb.pp("conv_out").pp("conv"),
            output,
            latent + 1,
            latent,
            3,
            [1; 3],
            time_pad(causal),
            act,
        )?;
        Ok(VaeEncoder {
            act,
            in_channels: config.in_channels,
            patchify: Rearrange::ltx_patchify(pt, p),
            conv_in,
            down,
            mid,
            conv_out,
        })
    }

    /// The latent shape a video `[in_channels, F, H, W]` encodes to, or why
    /// it cannot (sizes the patchify and downsamplers do not divide, or an
    /// activation beyond one storage binding).
    pub fn output_shape(&self, gpu: &Gpu, video: Shape) -> Result<Shape, ModelError> {
        if video[0] != self.in_channels {
            return Err(ModelError::shape(
                "vae.encoder",
                format!("video {video:?} is not [{}, F, H, W]", self.in_channels),
            ));
        }
        let mut plan = Plan::new(gpu, self.act);
        let mut x = self
            .patchify
            .output_shape(&video)
            .map_err(|e| ModelError::shape("vae.encoder patchify", e.to_string()))?;
        plan.tensor("vae.encoder patchify", x)?;
        x = self.conv_in.plan(&mut plan, x)?;
        for b in &self.down {
            x = b.plan(&mut plan, x)?;
        }
        for r in &self.mid {
            x = r.plan(&mut plan, x)?;
        }
        plan.tensor("vae.encoder.norm_out", x)?;
        self.conv_out.plan(&mut plan, x)
    }

    /// The posterior mean `[latent_channels, F', H', W']` of `video
    /// [in_channels, F, H, W]` in [-1, 1] (act dtype), not normalised (see
    /// `LatentStats::normalize`). One step per layer, as the decoder.
    pub fn encode(&self, gpu: &Gpu, video: &Tensor) -> Result<Tensor, ModelError> {
        if video.dtype != self.act {
            return Err(ModelError::shape(
                "vae.encoder",
                format!(
                    "video is {:?}, the encoder runs in {:?}",
                    video.dtype, self.act
                ),
            ));
        }
        let shape: Shape = video.shape.as_slice().try_into().map_err(|_| {
            ModelError::shape(
                "vae.encoder",
                format!("video {:?} is not [C, F, H, W]", video.shape),
            )
        })?;
        self.output_shape(gpu, shape)?;
        let mut x = run(gpu, &self.conv_in.name, |s| {
            let patches = alloc(
                s.gpu(),
                self.patchify
                    .output_shape(&shape)
                    .map_err(|e| ModelError::shape("vae.encoder patchify", e.to_string()))?,
                video.dtype,
            )?;
            rearrange::encode(s, &self.patchify, video, &patches)?;
            self.conv_in.forward(s, &patches)
        })?;
        for b in &self.down {
            x = b.forward(gpu, x)?;
        }
        for r in &self.mid {
            x = run(gpu, &r.name, |s| r.forward(s, &x, None))?;
        }
        run(gpu, &self.conv_out.name, |s| self.head(s, &x))
    }

    fn head(&self, step: &mut Step, x: &Tensor) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let n = gpu.empty(&x.shape, x.dtype)?;
        norm::pixel_norm(step, channel_rows(x)?, None, PIXEL_NORM_EPS, None, &n)?;
        let a = gpu.empty(&x.shape, x.dtype)?;
        elementwise::encode(step, Op::Silu, &n, None, &a)?;
        self.conv_out.forward(step, &a)
    }

    /// Bytes of GPU memory the weights hold.
    pub fn bytes(&self) -> u64 {
        self.conv_in.bytes()
            + self.down.iter().map(|b| b.bytes()).sum::<u64>()
            + self.mid.iter().map(|r| r.bytes()).sum::<u64>()
            + self.conv_out.bytes()
    }
}
