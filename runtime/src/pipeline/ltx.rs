//! LTX-Video as diffusers' `LTXConditionPipeline` runs it: T5 prompt states
//! (negative and positive stacked for CFG), conditioning pictures and clips
//! encoded by the VAE (see `condition`), flow-matching denoising of packed
//! latent tokens with one GPU submission per step, then the VAE decode.

use std::sync::Arc;

use web_time::Instant;

use crate::bundle::Manifest;
use crate::gpu::{DType, Gpu};
use crate::kernels::sampler::{self, Euler, ModelOutput, Operand, Rescale};
use crate::models::ltx::transformer::{self, Forward, LtxTransformer};
use crate::models::ltx::vae::{LatentStats, VaeDecoder, VaeEncoder};
use crate::models::ltx::{TransformerConfig, VaeConfig};
use crate::models::{ModelError, Weights};
use crate::sched::{FlowMatchConfig, Schedule, linear_quadratic_schedule};

use super::condition::{
    self, Condition, EncodedCondition, Frames, HARD_NOISE_STREAM, Layout, VideoInput,
};
use super::latents::{self, DECODE_NOISE_STREAM, NOISE_STREAM};
use super::memory::MemoryEstimate;
use super::size::VideoSize;
use super::text::{EncodedPrompt, TextStage};
use super::{Cancel, Event, PipelineError, Stage, Video, component_config};

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
    /// Clips longer than one window of the transformer (see [`Tiling`]).
    pub tiling: Option<Tiling>,
}

/// Temporal tiling for long clips, as diffusers' long LTX pipeline does it:
/// the transformer denoises windows of latent frames one after another;
/// each window after the first starts from the previous one's last latent
/// frames, conditioned at `strength`, and the shared frames are blended
/// linearly from the earlier window to the later. The VAE decodes the
/// whole clip at once. Unlike diffusers, the shared frames lead the window
/// (at its own frame 0 onwards) rather than being appended reversed.
#[derive(Clone, Debug, PartialEq)]
pub struct Tiling {
    /// Pixel frames per window (k x the temporal compression + 1).
    pub frames: usize,
    /// Pixel frames two neighbouring windows share (a multiple of the
    /// temporal compression).
    pub overlap: usize,
    /// How closely a window holds to the frames it shares with the previous
    /// one (diffusers' `temporal_overlap_cond_strength`, 0.5).
    pub strength: f32,
}

/// The prompt states every window's steps use.
struct Prompt {
    caption: crate::gpu::Tensor,
    /// The text mask as an additive attention bias.
    mask: crate::gpu::Tensor,
    len: usize,
    /// 2 under CFG ([negative, positive]), else 1.
    batch: usize,
}

/// What a run will do, worked out from its options before any work.
struct Plan {
    windows: Vec<(usize, usize)>,
    schedule: Schedule,
    /// Where video-to-video starts, when it does not start from noise.
    start_sigma: Option<f32>,
}

/// Windows `[start, end)` of `window` latent frames covering `total`, each
/// sharing at least `overlap` frames with the one before (the last window
/// is moved back to stay whole).
pub fn temporal_windows(total: usize, window: usize, overlap: usize) -> Vec<(usize, usize)> {
    if total <= window || window <= overlap {
        return vec![(0, total)];
    }
    let mut windows = vec![(0, window)];
    let mut start = 0;
    while windows.last().is_some_and(|w| w.1 < total) {
        start = (start + window - overlap).min(total - window);
        windows.push((start, start + window));
    }
    windows
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
            tiling: None,
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

/// The loaded model: configs and the three components on the GPU.
pub struct LtxPipeline {
    pub transformer_config: TransformerConfig,
    pub vae_config: VaeConfig,
    pub scheduler: FlowMatchConfig,
    pub act: DType,
    text: Arc<TextStage>,
    transformer: LtxTransformer,
    vae: VaeDecoder,
    /// Absent from bundles converted without it: text-to-video only.
    encoder: Option<VaeEncoder>,
    stats: LatentStats,
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
        Self::check_act(gpu, act)?;
        let text = TextStage::load(gpu, manifest, weights)?;
        Self::with_text(gpu, manifest, weights, act, Arc::new(text))
    }

    fn check_act(gpu: &Gpu, act: DType) -> Result<(), PipelineError> {
        if act == DType::F16 && !gpu.caps.f16 {
            return Err(PipelineError::Option(
                "f16 activations need shader-f16, which this adapter lacks; use f32".into(),
            ));
        }
        Ok(())
    }

    /// The rest of the pipeline around a text stage already loaded (one a
    /// page built while the other components were downloading); `weights`
    /// need not hold the text encoder's tensors any more.
    pub fn with_text(
        gpu: &Gpu,
        manifest: &Manifest,
        weights: &Weights,
        act: DType,
        text: Arc<TextStage>,
    ) -> Result<LtxPipeline, PipelineError> {
        Self::check_act(gpu, act)?;
        let transformer_config: TransformerConfig = component_config(manifest, "transformer")?;
        let vae_config: VaeConfig = component_config(manifest, "vae")?;
        let scheduler: FlowMatchConfig = match &manifest.scheduler {
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ModelError::Config(format!("scheduler_config.json: {e}")))?,
            None => FlowMatchConfig::default(),
        };
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
            transformer_config,
            vae_config,
            scheduler,
            act,
            text,
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
        self.text.bytes()
            + self.transformer.bytes()
            + self.vae.bytes()
            + self.encoder.as_ref().map_or(0, |e| e.bytes())
    }

    /// The windows of latent frames the transformer denoises in turn: one
    /// unless `opts.tiling` asks for windows shorter than the clip.
    pub fn windows(&self, opts: &GenerateOptions) -> Result<Vec<(usize, usize)>, PipelineError> {
        let temporal = self.temporal_compression();
        let lf = (opts.num_frames.max(1) - 1) / temporal + 1;
        let Some(t) = &opts.tiling else {
            return Ok(vec![(0, lf)]);
        };
        if t.frames >= opts.num_frames {
            return Ok(vec![(0, lf)]);
        }
        let bad = |m: String| Err(PipelineError::Option(format!("temporal tiling: {m}")));
        if t.frames < 2 * temporal + 1 || (t.frames - 1) % temporal != 0 {
            return bad(format!(
                "windows of {} frames; they need k x {temporal} + 1 frames, k >= 2",
                t.frames
            ));
        }
        if t.overlap == 0 || t.overlap % temporal != 0 || t.overlap >= t.frames - 1 {
            return bad(format!(
                "an overlap of {} frames; it must be a multiple of {temporal}, at least \
                 {temporal} and less than the window's {} frames",
                t.overlap,
                t.frames - 1
            ));
        }
        if !(t.strength > 0.0 && t.strength <= 1.0) {
            return bad(format!("strength {} is not in (0, 1]", t.strength));
        }
        if opts.video.is_some() {
            return bad(
                "video-to-video re-generates a clip in one window; give fewer frames or no tiling"
                    .into(),
            );
        }
        if let Some(c) = opts
            .conditions
            .iter()
            .find(|c| c.frame_index + c.frames.frames > t.frames)
        {
            return bad(format!(
                "a condition at frame {} ({} frames) reaches past the first window's {} frames",
                c.frame_index, c.frames.frames, t.frames
            ));
        }
        let window = (t.frames - 1) / temporal + 1;
        Ok(temporal_windows(lf, window, t.overlap / temporal))
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
        // With tiling the transformer sees one window at a time.
        let window = self
            .windows(opts)
            .ok()
            .map(|w| ((w[0].1 - w[0].0) - 1) * temporal + 1 + extra * temporal);
        size.frames += extra * temporal;
        MemoryEstimate::ltx_windowed(
            &self.text.config,
            &self.transformer_config,
            &self.vae_config,
            size,
            window,
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
        let z = self.generate_latents(gpu, opts, events, cancel).await?;
        self.decode(gpu, opts, z, events, cancel).await
    }

    /// The text stage (tokenizer and T5), which a page may build and run
    /// before the rest of the bundle is in.
    pub fn text(&self) -> &Arc<TextStage> {
        &self.text
    }

    /// As [`LtxPipeline::generate`], from a prompt already encoded by this
    /// pipeline's text stage or by one loaded from the same bundle.
    pub async fn generate_from(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        prompt: EncodedPrompt,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Video, PipelineError> {
        let z = self
            .generate_latents_from(gpu, opts, prompt, events, cancel)
            .await?;
        self.decode(gpu, opts, z, events, cancel).await
    }

    /// The denoised latents of a clip, normalised, `[C, F', H', W']`
    /// (what [`LtxPipeline::generate`] decodes).
    pub async fn generate_latents(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Vec<f32>, PipelineError> {
        // Every option is checked before any work.
        let plan = self.plan(gpu, opts)?;
        let prompt = self.text.encode(gpu, opts, events, cancel).await?;
        self.denoise_clip(gpu, opts, plan, prompt, events, cancel)
            .await
    }

    /// As [`LtxPipeline::generate_latents`], from an encoded prompt.
    pub async fn generate_latents_from(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        prompt: EncodedPrompt,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Vec<f32>, PipelineError> {
        if !prompt.matches(opts) {
            return Err(PipelineError::Option(
                "the encoded prompt was made for another prompt, negative prompt, guidance \
                 or sequence length than these options"
                    .into(),
            ));
        }
        let plan = self.plan(gpu, opts)?;
        self.denoise_clip(gpu, opts, plan, prompt, events, cancel)
            .await
    }

    /// Checks `opts` (size, frame rate, memory, tiling, schedule) and works
    /// out what the run will do.
    fn plan(&self, gpu: &Gpu, opts: &GenerateOptions) -> Result<Plan, PipelineError> {
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
        let [_, lh, lw] = size.latent(spatial, temporal);
        let windows = self.windows(opts)?;
        // Dynamic shifting follows the tokens the transformer sees at once.
        let window_frames = windows[0].1 - windows[0].0;
        let video_tokens = (window_frames / pt) * (lh / p) * (lw / p);
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
        Ok(Plan {
            windows,
            schedule,
            start_sigma,
        })
    }

    /// Denoises the clip window after window from the prompt's states.
    async fn denoise_clip(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        plan: Plan,
        text: EncodedPrompt,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Vec<f32>, PipelineError> {
        let (spatial, temporal) = (self.spatial_compression(), self.temporal_compression());
        let Plan {
            windows,
            schedule,
            start_sigma,
        } = plan;
        let tc = &self.transformer_config;
        let (pt, p) = (tc.patch_size_t, tc.patch_size);
        let [lf, lh, lw] = opts.size().latent(spatial, temporal);
        let channels = tc.in_channels / (pt * p * p);
        let (batch, len) = (text.batch, text.len);

        // 1. The prompt states in the transformer's caption space.
        cancel.check()?;
        let bias = transformer::mask_bias(&text.mask);
        // T5 runs in f32 (its activations overflow f16); the transformer
        // takes the states in `act`. One small round trip, outside the loop.
        let states = if self.act == DType::F32 {
            text.states
        } else {
            let values = gpu.read(&text.states).await?;
            gpu.upload(&values, &text.states.shape, self.act)?
        };
        let mut step = gpu.step("caption projection");
        let caption = self.transformer.project_caption(&mut step, &states)?;
        let mask_bias = gpu.upload(&bias, &[batch, len], DType::F32)?;
        step.submit()?;
        gpu.wait().await?;

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
        let prompt = Prompt {
            caption,
            mask: mask_bias,
            len,
            batch,
        };
        let plane = lh * lw;
        let window_layout = |frames: usize| Layout {
            channels,
            dims: [frames, lh, lw],
            patch_t: pt,
            patch: p,
        };

        // 2. Denoising: one submission per step, window after window.
        let started = Instant::now();
        let total_steps = windows.len() * schedule.len();
        let mut z = vec![0.0f32; channels * lf * plane];
        let mut done = 0; // latent frames of `z` already final
        for (k, &(first, end)) in windows.iter().enumerate() {
            let frames = end - first;
            let layout = window_layout(frames);
            let window_noise: Vec<f32> = (0..channels)
                .flat_map(|c| noise[(c * lf + first) * plane..(c * lf + end) * plane].to_vec())
                .collect();
            let (start, conditioned) = if k == 0 {
                let mut o = opts.clone();
                o.num_frames = (frames - 1) * temporal + 1;
                let start = self
                    .prepare_start(gpu, &o, window_noise, start_sigma, layout, events, cancel)
                    .await?;
                (start, !opts.conditions.is_empty())
            } else {
                // The frames this window shares with what is already made.
                let shared = done - first;
                let latents: Vec<f32> = (0..channels)
                    .flat_map(|c| z[(c * lf + first) * plane..(c * lf + done) * plane].to_vec())
                    .collect();
                let held = EncodedCondition {
                    latents,
                    latent_frames: shared,
                    pixel_frames: (shared - 1) * temporal + 1,
                    frame_index: 0,
                    strength: opts.tiling.as_ref().map_or(1.0, |t| t.strength),
                };
                let grid = transformer::rope_grid(&self.vae_config, tc);
                let start =
                    condition::assemble(window_noise, layout, &grid, temporal, &[held], opts.seed)?;
                (start, true)
            };
            if k == 0 {
                events(Event::StageStarted(Stage::Denoising));
            }
            let out = self
                .denoise(
                    gpu,
                    opts,
                    &prompt,
                    &start,
                    layout,
                    &schedule,
                    conditioned,
                    (k * schedule.len(), total_steps),
                    events,
                    cancel,
                )
                .await?;
            // Shared frames: from the earlier window's to this one's.
            let shared = done.saturating_sub(first);
            for c in 0..channels {
                for f in 0..frames {
                    let dst = (c * lf + first + f) * plane;
                    let src = (c * frames + f) * plane;
                    let w = if f < shared {
                        (f + 1) as f32 / (shared + 1) as f32
                    } else {
                        1.0
                    };
                    for j in 0..plane {
                        z[dst + j] = (1.0 - w) * z[dst + j] + w * out[src + j];
                    }
                }
            }
            done = end;
        }
        events(Event::StageFinished {
            stage: Stage::Denoising,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(z)
    }

    /// Decodes normalised latents `[C, F', H', W']` of `opts`' size.
    pub async fn decode(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        mut z: Vec<f32>,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Video, PipelineError> {
        let [lf, lh, lw] = opts
            .size()
            .latent(self.spatial_compression(), self.temporal_compression());
        let channels = z.len() / (lf * lh * lw).max(1);
        if channels * lf * lh * lw != z.len() || z.is_empty() {
            return Err(PipelineError::Option(format!(
                "{} latent values are not [C, {lf}, {lh}, {lw}]",
                z.len()
            )));
        }
        cancel.check()?;
        let started = Instant::now();
        events(Event::StageStarted(Stage::Decoding));
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

    /// Denoises one window from `start`; returns its video latents,
    /// unpacked `[C, F', H', W']` (normalised). `steps`: the index of this
    /// window's first step and the run's total, for progress.
    #[allow(clippy::too_many_arguments)]
    async fn denoise(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        prompt: &Prompt,
        start: &condition::Start,
        layout: Layout,
        schedule: &Schedule,
        conditioned: bool,
        (first_step, total): (usize, usize),
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<Vec<f32>, PipelineError> {
        let tc = &self.transformer_config;
        let Layout {
            channels,
            dims: [lf, lh, lw],
            patch_t: pt,
            patch: p,
        } = layout;
        let batch = prompt.batch;
        let cfg = batch == 2;
        let feat = tc.in_channels;
        let tokens = start.tokens.len() / feat;
        let extra = start.extra;
        let grid = transformer::rope_grid(&self.vae_config, tc);
        let coords = grid.fractional(&start.coords, opts.frame_rate);
        let coords: Vec<f32> = (0..batch).flat_map(|_| coords.iter().copied()).collect();
        let mut step = gpu.step("rope");
        let rope = self.transformer.rope(&mut step, &coords)?;
        step.submit()?;

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
        for (i, &t) in schedule.timesteps.iter().enumerate() {
            cancel.check()?;
            let index = first_step + i;
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
                let noise = latents::noise(opts.seed, HARD_NOISE_STREAM + index as u32, n * feat);
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
                    caption: &prompt.caption,
                    caption_len: prompt.len,
                    mask: &prompt.mask,
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
                index,
                total,
                timestep: t,
            });
            if opts.preview && index + 1 < total {
                let packed = gpu.read(&latents).await?;
                events(Event::Preview {
                    index,
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
        Ok(latents::unpack(
            &packed[extra * feat..],
            channels,
            [lf, lh, lw],
            pt,
            p,
        ))
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

#[cfg(test)]
mod tests {
    use super::temporal_windows;

    #[test]
    fn windows_cover_the_clip_with_their_overlap() {
        assert_eq!(temporal_windows(3, 4, 1), vec![(0, 3)]);
        assert_eq!(temporal_windows(6, 3, 1), vec![(0, 3), (2, 5), (3, 6)]);
        assert_eq!(
            temporal_windows(10, 4, 2),
            vec![(0, 4), (2, 6), (4, 8), (6, 10)]
        );
        // 61 latent frames (10 s at 24 fps, 4x in time) in windows of 7
        // sharing 2: every frame covered, neighbours share at least 2.
        let w = temporal_windows(61, 7, 2);
        assert_eq!((w[0].0, w.last().unwrap().1), (0, 61));
        for p in w.windows(2) {
            assert!(p[1].0 + 2 <= p[0].1 && p[1].0 > p[0].0, "{p:?}");
            assert_eq!(p[1].1 - p[1].0, 7);
        }
    }
}
