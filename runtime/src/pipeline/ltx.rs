//! LTX-Video as diffusers' `LTXConditionPipeline` runs it: T5 prompt states
//! (negative and positive stacked for CFG), conditioning pictures and clips
//! encoded by the VAE (see `condition`), flow-matching denoising of packed
//! latent tokens with one GPU submission per step, then the VAE decode.

use web_time::Instant;

use crate::bundle::Manifest;
use crate::gpu::{DType, Gpu};
use crate::kernels::sampler::{self, Euler, ModelOutput, Operand, Rescale};
use crate::models::ltx::text_encoder::T5Encoder;
use crate::models::ltx::transformer::{self, Forward, LtxTransformer};
use crate::models::ltx::vae::{LatentStats, VaeDecoder, VaeEncoder};
use crate::models::ltx::{T5Config, TransformerConfig, VaeConfig};
use crate::models::tokenizer::PromptTokenizer;
use crate::models::{ModelError, Weights};
use crate::sched::{FlowMatchConfig, Schedule, linear_quadratic_schedule};

use super::condition::{
    self, Condition, EncodedCondition, Frames, HARD_NOISE_STREAM, Layout, VideoInput,
};
use super::latents::{self, DECODE_NOISE_STREAM, NOISE_STREAM};
use super::memory::MemoryEstimate;
use super::size::VideoSize;
use super::{Cancel, Event, PipelineError, Stage, Video};

/// What to generate. Defaults follow `LTXConditionPipeline.__call__`.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    pub prompt: String,
    /// Used when `guidance_scale > 1`; diffusers' default is the empty prompt.
    pub negative_prompt: Option<String>,
    pub width: usize,
    pub height: usize,
    pub num_frames: usize,
    pub frame_rate: f64,
    /// Steps of the default (linear-quadratic) schedule; ignored with `timesteps`.
    pub num_inference_steps: usize,
    /// An explicit schedule on the 0..1000 scale (the distilled models').
    pub timesteps: Option<Vec<f32>>,
    pub guidance_scale: f32,
    pub guidance_rescale: f32,
    pub seed: u64,
    pub max_sequence_length: usize,
    /// Initial noise `[C, F', H', W']` instead of drawing it from `seed`.
    pub latents: Option<Vec<f32>>,
    pub decode_timestep: f32,
    /// `None`: the decode timestep, as diffusers.
    pub decode_noise_scale: Option<f32>,
    /// Read the latents back after every step for [`Event::Preview`] (one
    /// readback per step: for live previews, off for timing).
    pub preview: bool,
    /// Pictures or clips pinned at frames of the video (image-to-video,
    /// keyframes, extension), at the video's width and height.
    pub conditions: Vec<Condition>,
    /// Video-to-video: start from this clip's latents instead of noise.
    pub video: Option<VideoInput>,
    /// Noise on hard-conditioned tokens each step, times `(t / 1000)^2`
    /// (diffusers' `image_cond_noise_scale`).
    pub image_cond_noise_scale: f32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            prompt: String::new(),
            negative_prompt: None,
            width: 704,
            height: 480,
            num_frames: 161,
            frame_rate: 25.0,
            num_inference_steps: 50,
            timesteps: None,
            guidance_scale: 3.0,
            guidance_rescale: 0.0,
            seed: 0,
            max_sequence_length: 256,
            latents: None,
            decode_timestep: 0.0,
            decode_noise_scale: None,
            preview: false,
            conditions: Vec::new(),
            video: None,
            image_cond_noise_scale: 0.15,
        }
    }
}

impl GenerateOptions {
    pub fn size(&self) -> VideoSize {
        VideoSize {
            width: self.width,
            height: self.height,
            frames: self.num_frames,
        }
    }
}

/// The loaded model: configs, tokenizer and the three components on the GPU.
pub struct LtxPipeline {
    pub text_config: T5Config,
    pub transformer_config: TransformerConfig,
    pub vae_config: VaeConfig,
    pub scheduler: FlowMatchConfig,
    pub act: DType,
    tokenizer: PromptTokenizer,
    text_encoder: T5Encoder,
    transformer: LtxTransformer,
    vae: VaeDecoder,
    /// Absent from bundles converted without it: text-to-video only.
    encoder: Option<VaeEncoder>,
    stats: LatentStats,
}

fn config<T: serde::de::DeserializeOwned>(
    manifest: &Manifest,
    component: &str,
) -> Result<T, ModelError> {
    let c = manifest
        .components
        .get(component)
        .ok_or_else(|| ModelError::Config(format!("the bundle has no '{component}' component")))?;
    serde_json::from_value(c.config.clone())
        .map_err(|e| ModelError::Config(format!("{component}/config.json: {e}")))
}

impl LtxPipeline {
    /// Builds the pipeline from a bundle's manifest and its loaded weights,
    /// with activations in `act` (F32, or F16 where the adapter has it).
    pub fn load(
        gpu: &Gpu,
        manifest: &Manifest,
        weights: &Weights,
        act: DType,
    ) -> Result<LtxPipeline, PipelineError> {
        if act == DType::F16 && !gpu.caps.f16 {
            return Err(PipelineError::Option(
                "f16 activations need shader-f16, which this adapter lacks; use f32".into(),
            ));
        }
        let text_config: T5Config = config(manifest, "text_encoder")?;
        let transformer_config: TransformerConfig = config(manifest, "transformer")?;
        let vae_config: VaeConfig = config(manifest, "vae")?;
        let scheduler: FlowMatchConfig = match &manifest.scheduler {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ModelError::Config(format!("scheduler_config.json: {e}")))?,
            None => FlowMatchConfig::default(),
        };
        let json = manifest
            .tokenizer
            .get("tokenizer.json")
            .ok_or_else(|| ModelError::Config("the bundle has no tokenizer.json".into()))?;
        let bytes = serde_json::to_vec(json)
            .map_err(|e| ModelError::Config(format!("tokenizer.json: {e}")))?;
        let tokenizer = PromptTokenizer::from_json(&bytes, "<pad>")?;
        let text_encoder = T5Encoder::load(gpu, weights.root("text_encoder"), &text_config)?;
        let transformer =
            LtxTransformer::load(gpu, weights.root("transformer"), &transformer_config, act)?;
        let vae = VaeDecoder::load(gpu, weights.root("vae"), &vae_config, act)?;
        let encoder = if weights.root("vae").has("encoder.conv_in.conv.weight") {
            Some(VaeEncoder::load(
                gpu,
                weights.root("vae"),
                &vae_config,
                act,
            )?)
        } else {
            None
        };
        let stats = LatentStats::load(&weights.root("vae"), &vae_config)?;
        Ok(LtxPipeline {
            text_config,
            transformer_config,
            vae_config,
            scheduler,
            act,
            tokenizer,
            text_encoder,
            transformer,
            vae,
            encoder,
            stats,
        })
    }

    pub fn spatial_compression(&self) -> usize {
        self.vae_config.spatial_compression()
    }

    pub fn temporal_compression(&self) -> usize {
        self.vae_config.temporal_compression()
    }

    /// GPU bytes the loaded weights hold.
    pub fn weight_bytes(&self) -> u64 {
        self.text_encoder.bytes()
            + self.transformer.bytes()
            + self.vae.bytes()
            + self.encoder.as_ref().map_or(0, |e| e.bytes())
    }

    /// What a run of `opts` needs, for the check before any work.
    pub fn estimate(&self, opts: &GenerateOptions) -> MemoryEstimate {
        // Conditions after frame 0 add tokens: count them as frames.
        let temporal = self.temporal_compression();
        let extra: usize = opts
            .conditions
            .iter()
            .filter(|c| c.frame_index > 0)
            .map(|c| {
                c.frames
                    .frames
                    .div_ceil(temporal)
                    .min(condition::PREFIX_LATENT_FRAMES)
            })
            .sum();
        let mut size = opts.size();
        size.frames += extra * temporal;
        MemoryEstimate::ltx(
            &self.text_config,
            &self.transformer_config,
            &self.vae_config,
            size,
            opts.max_sequence_length,
            if opts.guidance_scale > 1.0 { 2 } else { 1 },
            self.act,
            self.weight_bytes(),
        )
    }

    /// The timesteps and sigmas of a run, as `LTXConditionPipeline` derives
    /// them (the linear-quadratic default unless given explicitly).
    pub fn schedule(
        &self,
        opts: &GenerateOptions,
        tokens: usize,
    ) -> Result<Schedule, PipelineError> {
        let ts: Vec<f32> = match &opts.timesteps {
            Some(t) => t.clone(),
            None => {
                if opts.num_inference_steps == 0 {
                    return Err(PipelineError::Option("steps must be at least 1".into()));
                }
                linear_quadratic_schedule(opts.num_inference_steps, 0.025, None)
                    .iter()
                    .map(|&s| s * 1000.0)
                    .collect()
            }
        };
        // diffusers' LTX pipelines pass no `mu`; a dynamically shifting
        // config gets the resolution-dependent one LTXPipeline computes.
        let mu = self
            .scheduler
            .use_dynamic_shifting
            .then(|| self.scheduler.mu_for(tokens));
        Ok(self.scheduler.schedule(None, None, Some(&ts), mu)?)
    }

    /// Generates a clip. `events` hears each stage and step; `cancel` stops
    /// the run before its next submission.
    pub async fn generate(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Video, PipelineError> {
        let (spatial, temporal) = (self.spatial_compression(), self.temporal_compression());
        let size = opts.size();
        if !size.is_valid(spatial, temporal) {
            return Err(PipelineError::InvalidSize {
                width: size.width,
                height: size.height,
                frames: size.frames,
                spatial,
                temporal,
                nearest: super::snap(size, spatial, temporal),
            });
        }
        if !(opts.frame_rate > 0.0 && opts.frame_rate.is_finite()) {
            return Err(PipelineError::Option(format!(
                "frame rate must be positive, got {}",
                opts.frame_rate
            )));
        }
        self.estimate(opts).check(gpu, |s| {
            let mut o = opts.clone();
            (o.width, o.height, o.num_frames) = (s.width, s.height, s.frames);
            self.estimate(&o)
        })?;
        let tc = &self.transformer_config;
        let (pt, p) = (tc.patch_size_t, tc.patch_size);
        let [lf, lh, lw] = size.latent(spatial, temporal);
        let channels = tc.in_channels / (pt * p * p);
        let cfg = opts.guidance_scale > 1.0;
        let batch = if cfg { 2 } else { 1 };
        let video_tokens = (lf / pt) * (lh / p) * (lw / p);
        let mut schedule = self.schedule(opts, video_tokens)?;
        let mut start_sigma = None;
        if let Some(v) = &opts.video {
            if !(0.0..=1.0).contains(&v.denoise_strength) {
                return Err(PipelineError::Option(format!(
                    "denoise strength must be in [0, 1], got {}",
                    v.denoise_strength
                )));
            }
            // Strength 1 ignores the clip, as diffusers does.
            if v.denoise_strength < 1.0 {
                schedule = schedule.truncated(v.denoise_strength);
                start_sigma = schedule.sigmas.first().copied();
                if schedule.is_empty() {
                    return Err(PipelineError::Option(format!(
                        "denoise strength {} leaves no steps of {}; raise it or the steps",
                        v.denoise_strength, opts.num_inference_steps
                    )));
                }
            }
        }
        let conditioned = !opts.conditions.is_empty();

        // 1. Prompt states: [negative; positive] under CFG, as diffusers stacks them.
        cancel.check()?;
        let started = Instant::now();
        events(Event::StageStarted(Stage::TextEncoding));
        let len = opts.max_sequence_length;
        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        if cfg {
            let neg = opts.negative_prompt.clone().unwrap_or_default();
            let t = self.tokenizer.encode(&neg, len)?;
            ids.extend(t.ids);
            mask.extend(t.mask);
        }
        let t = self.tokenizer.encode(&opts.prompt, len)?;
        ids.extend(t.ids);
        mask.extend(t.mask);
        let bias = transformer::mask_bias(&mask);
        let mut step = gpu.step("text encoding");
        let states = self.text_encoder.encode(&mut step, &ids, &mask, batch)?;
        step.submit()?;
        // T5 runs in f32 (its activations overflow f16); the transformer
        // takes the states in `act`. One small round trip, outside the loop.
        let states = if self.act == DType::F32 {
            states
        } else {
            let values = gpu.read(&states).await?;
            gpu.upload(&values, &states.shape, self.act)?
        };
        let mut step = gpu.step("caption projection");
        let caption = self.transformer.project_caption(&mut step, &states)?;
        let mask_bias = gpu.upload(&bias, &[batch, len], DType::F32)?;
        step.submit()?;
        gpu.wait().await?;
        events(Event::StageFinished {
            stage: Stage::TextEncoding,
            seconds: started.elapsed().as_secs_f64(),
        });

        let noise = match &opts.latents {
            Some(l) => {
                let want = channels * lf * lh * lw;
                if l.len() != want {
                    return Err(PipelineError::Option(format!(
                        "the given latents have {} values; this size needs [{channels}, {lf}, \
                         {lh}, {lw}] = {want}",
                        l.len()
                    )));
                }
                l.clone()
            }
            None => latents::noise(opts.seed, NOISE_STREAM, channels * lf * lh * lw),
        };
        let layout = Layout {
            channels,
            dims: [lf, lh, lw],
            patch_t: pt,
            patch: p,
        };
        let start = self
            .prepare_start(gpu, opts, noise, start_sigma, layout, events, cancel)
            .await?;
        let tokens = start.tokens.len() / tc.in_channels;
        let extra = start.extra;
        let grid = transformer::rope_grid(&self.vae_config, tc);
        let coords = grid.fractional(&start.coords, opts.frame_rate);
        let coords: Vec<f32> = (0..batch).flat_map(|_| coords.iter().copied()).collect();
        let mut step = gpu.step("rope");
        let rope = self.transformer.rope(&mut step, &coords)?;
        step.submit()?;

        // 2. Denoising: one submission per step.
        let started = Instant::now();
        events(Event::StageStarted(Stage::Denoising));
        let feat = tc.in_channels;
        let latents = gpu.upload(&start.tokens, &[tokens, feat], self.act)?;
        let hard = if conditioned && opts.image_cond_noise_scale > 0.0 {
            condition::hard_runs(&start.mask)
        } else {
            Vec::new()
        };
        let model_in = gpu.empty(&[batch * tokens, feat], self.act)?;
        let model_out = gpu.empty(&[batch * tokens, tc.out_channels], self.act)?;
        let guided = gpu.empty(&[tokens, tc.out_channels], self.act)?;
        let scratch = gpu.empty(&[4], DType::F32)?;
        let sigma_t = gpu.empty(&[tokens], DType::F32)?;
        let next_t = gpu.empty(&[tokens], DType::F32)?;
        let total = schedule.len();
        for (i, &t) in schedule.timesteps.iter().enumerate() {
            cancel.check()?;
            // Queue writes land before this step's commands and after the
            // previous step's, so these buffers serve every step.
            let token_t = if conditioned {
                condition::token_timesteps(&start.mask, t)
            } else {
                vec![t; tokens]
            };
            let (sigma, next): (Vec<f32>, Vec<f32>) =
                token_t.iter().map(|&tt| schedule.token_sigmas(tt)).unzip();
            for (buf, values) in [(&sigma_t, &sigma), (&next_t, &next)] {
                gpu.queue
                    .write_buffer(buf.buffer(), 0, bytemuck::cast_slice(values));
            }
            if !hard.is_empty() {
                // Hard conditioning tokens never change on the GPU: set them
                // to their start plus this step's noise.
                let scale = opts.image_cond_noise_scale * (t / 1000.0) * (t / 1000.0);
                let n: usize = hard.iter().map(|r| r.1).sum();
                let noise = latents::noise(opts.seed, HARD_NOISE_STREAM + i as u32, n * feat);
                let mut used = 0;
                for &(first, count) in &hard {
                    let init = &start.tokens[first * feat..(first + count) * feat];
                    let values: Vec<f32> = init
                        .iter()
                        .zip(&noise[used..used + count * feat])
                        .map(|(&x, &z)| x + scale * z)
                        .collect();
                    used += count * feat;
                    gpu.write_at(&latents, first * feat, &values)?;
                }
            }
            let timesteps: Vec<f32> = if conditioned {
                (0..batch).flat_map(|_| token_t.iter().copied()).collect()
            } else {
                vec![t]
            };
            let mut step = gpu.step("denoising step");
            for b in 0..batch {
                step.copy_at(&latents, &model_in, b * tokens * feat)?;
            }
            self.transformer.forward(
                &mut step,
                Forward {
                    hidden: &model_in,
                    batch,
                    tokens,
                    timesteps: &timesteps,
                    caption: &caption,
                    caption_len: len,
                    mask: &mask_bias,
                    rope: &rope,
                },
                &model_out,
            )?;
            let velocity = if cfg {
                sampler::encode_cfg(
                    &mut step,
                    Operand::item(&model_out, 1, 2)?,
                    Operand::item(&model_out, 0, 2)?,
                    &guided,
                    opts.guidance_scale,
                    (opts.guidance_rescale > 0.0).then_some(Rescale {
                        phi: opts.guidance_rescale,
                        scratch: &scratch,
                    }),
                )?;
                &guided
            } else {
                &model_out
            };
            sampler::encode_step(
                &mut step,
                &latents,
                velocity,
                &sigma_t,
                &next_t,
                None,
                // The transformer's output is the velocity itself (diffusers
                // negates it for the scheduler, which negates it back).
                Euler {
                    output: ModelOutput::Velocity,
                    keep_conditioned: conditioned.then_some(t / 1000.0),
                },
            )?;
            step.submit()?;
            // Waiting for the step keeps progress honest and, in a browser
            // worker, lets a cancel message in between steps; the GPU idles
            // only for the turnaround of one small submission.
            gpu.wait().await?;
            events(Event::Step {
                index: i,
                total,
                timestep: t,
            });
            if opts.preview && i + 1 < total {
                let packed = gpu.read(&latents).await?;
                events(Event::Preview {
                    index: i,
                    shape: [channels, lf, lh, lw],
                    latents: latents::unpack(
                        &packed[extra * feat..],
                        channels,
                        [lf, lh, lw],
                        pt,
                        p,
                    ),
                });
            }
        }
        let packed = gpu.read(&latents).await?;
        events(Event::StageFinished {
            stage: Stage::Denoising,
            seconds: started.elapsed().as_secs_f64(),
        });

        // 3. Decode.
        cancel.check()?;
        let started = Instant::now();
        events(Event::StageStarted(Stage::Decoding));
        let mut z = latents::unpack(&packed[extra * feat..], channels, [lf, lh, lw], pt, p);
        self.stats.denormalize(&mut z)?;
        let timestep = if self.vae_config.timestep_conditioning {
            let scale = opts.decode_noise_scale.unwrap_or(opts.decode_timestep);
            if scale != 0.0 {
                let noise = latents::noise(opts.seed, DECODE_NOISE_STREAM, z.len());
                for (v, n) in z.iter_mut().zip(noise) {
                    *v = (1.0 - scale) * *v + scale * n;
                }
            }
            Some(opts.decode_timestep)
        } else {
            None
        };
        let z = gpu.upload(&z, &[channels, lf, lh, lw], self.act)?;
        let video = self.vae.decode(gpu, &z, timestep)?;
        let pixels = gpu.read(&video).await?;
        let video = postprocess(&pixels, &video.shape, opts.frame_rate)?;
        events(Event::StageFinished {
            stage: Stage::Decoding,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(video)
    }

    /// The packed tokens a run starts from: the noise (or, for
    /// video-to-video, the clip's latents noised to `start_sigma`) with the
    /// conditions' latents in place, as `prepare_latents` makes them.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_start(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        noise: Vec<f32>,
        start_sigma: Option<f32>,
        layout: Layout,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<condition::Start, PipelineError> {
        let temporal = self.temporal_compression();
        let grid = transformer::rope_grid(&self.vae_config, &self.transformer_config);
        let mut video = noise;
        if opts.conditions.is_empty() && start_sigma.is_none() {
            return condition::assemble(video, layout, &grid, temporal, &[], opts.seed);
        }
        let encoder = self.encoder.as_ref().ok_or_else(|| {
            PipelineError::Option(
                "this bundle has no VAE encoder, which image and video conditioning need; \
                 convert the checkpoint again with framecast-quantize (it keeps the encoder)"
                    .into(),
            )
        })?;
        cancel.check()?;
        let started = Instant::now();
        events(Event::StageStarted(Stage::Conditioning));
        if let (Some(sigma), Some(v)) = (start_sigma, &opts.video) {
            self.check_frame_size(&v.frames, opts, "the input clip")?;
            if v.frames.frames < opts.num_frames {
                return Err(PipelineError::Option(format!(
                    "the input clip has {} frames and the video {}: video-to-video makes at most \
                     as many frames as the clip has",
                    v.frames.frames, opts.num_frames
                )));
            }
            let z = self
                .encode_frames(gpu, encoder, &v.frames.first(opts.num_frames))
                .await?;
            for (x, c) in video.iter_mut().zip(z) {
                *x = sigma * *x + (1.0 - sigma) * c;
            }
        }
        let mut encoded = Vec::with_capacity(opts.conditions.len());
        for (i, c) in opts.conditions.iter().enumerate() {
            let what = format!("condition {}", i + 1);
            self.check_frame_size(&c.frames, opts, &what)?;
            if !(0.0..=1.0).contains(&c.strength) {
                return Err(PipelineError::Option(format!(
                    "{what}: strength must be in [0, 1], got {}",
                    c.strength
                )));
            }
            let n = condition::trimmed_frames(
                c.frames.frames,
                c.frame_index,
                opts.num_frames,
                temporal,
            );
            if n == 0 {
                return Err(PipelineError::Option(format!(
                    "{what}: frame {} is past the video's last frame {}",
                    c.frame_index,
                    opts.num_frames - 1
                )));
            }
            cancel.check()?;
            encoded.push(EncodedCondition {
                latents: self.encode_frames(gpu, encoder, &c.frames.first(n)).await?,
                latent_frames: (n - 1) / temporal + 1,
                pixel_frames: n,
                frame_index: c.frame_index,
                strength: c.strength,
            });
        }
        events(Event::StageFinished {
            stage: Stage::Conditioning,
            seconds: started.elapsed().as_secs_f64(),
        });
        condition::assemble(video, layout, &grid, temporal, &encoded, opts.seed)
    }

    fn check_frame_size(
        &self,
        frames: &Frames,
        opts: &GenerateOptions,
        what: &str,
    ) -> Result<(), PipelineError> {
        if (frames.width, frames.height) != (opts.width, opts.height) {
            return Err(PipelineError::Option(format!(
                "{what} is {}x{}, the video {}x{}: resize it to the video's size first \
                 (Frames::fit)",
                frames.width, frames.height, opts.width, opts.height
            )));
        }
        Ok(())
    }

    /// Normalised VAE latents (the posterior's mode) of `frames`.
    async fn encode_frames(
        &self,
        gpu: &Gpu,
        encoder: &VaeEncoder,
        frames: &Frames,
    ) -> Result<Vec<f32>, PipelineError> {
        let x = gpu.upload(
            &frames.vae_input(),
            &[3, frames.frames, frames.height, frames.width],
            self.act,
        )?;
        let z = encoder.encode(gpu, &x)?;
        let mut values = gpu.read(&z).await?;
        self.stats.normalize(&mut values)?;
        Ok(values)
    }
}

/// VAE output `[3, F, H, W]` in [-1, 1] to frames `[F, H, W, 3]` in [0, 1]
/// (diffusers' `postprocess_video`: `(x / 2 + 0.5).clamp(0, 1)`).
pub fn postprocess(pixels: &[f32], shape: &[usize], fps: f64) -> Result<Video, PipelineError> {
    let &[c, f, h, w] = shape else {
        return Err(PipelineError::Option(format!(
            "the VAE returned {shape:?}, not [3, F, H, W]"
        )));
    };
    if c != 3 {
        return Err(PipelineError::Option(format!(
            "the VAE returned {c} channels, not 3"
        )));
    }
    let plane = f * h * w;
    let mut frames = vec![0.0; plane * 3];
    for ch in 0..3 {
        for (i, &v) in pixels[ch * plane..(ch + 1) * plane].iter().enumerate() {
            frames[i * 3 + ch] = (v / 2.0 + 0.5).clamp(0.0, 1.0);
        }
    }
    Ok(Video {
        frames,
        num_frames: f,
        height: h,
        width: w,
        fps,
    })
}
