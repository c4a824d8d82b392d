//! What a run needs before it starts: weights, the transformer's and the
//! VAE's working sets, and the largest single buffer (which must fit one
//! storage binding). WebGPU cannot tell how much memory an adapter has, so
//! the hard checks are the binding and buffer limits, plus a budget when the
//! user gives one (`FRAMECAST_MEMORY_BUDGET_MB`).

use crate::gpu::{DType, Gpu};
use crate::models::ltx::{T5Config, TransformerConfig, VaeConfig};

use super::PipelineError;
use super::size::VideoSize;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryEstimate {
    pub size: VideoSize,
    /// The VAE's spatial compression: sides of smaller sizes step by it.
    pub spatial: usize,
    pub weights: u64,
    /// The largest working set of any stage (activations only).
    pub activations: u64,
    /// The largest single activation buffer.
    pub largest_buffer: u64,
}

impl MemoryEstimate {
    /// Estimates an LTX run of `size` with `batch` (2 under CFG) items.
    #[allow(clippy::too_many_arguments)]
    pub fn ltx(
        text: &T5Config,
        transformer: &TransformerConfig,
        vae: &VaeConfig,
        size: VideoSize,
        max_sequence_length: usize,
        batch: usize,
        act: DType,
        weights: u64,
    ) -> MemoryEstimate {
        Self::ltx_windowed(
            text,
            transformer,
            vae,
            size,
            None,
            max_sequence_length,
            batch,
            act,
            weights,
        )
    }

    /// As [`MemoryEstimate::ltx`], with the transformer denoising windows of
    /// `window` pixel frames at a time (temporal tiling); the VAE still
    /// decodes the whole clip.
    #[allow(clippy::too_many_arguments)]
    pub fn ltx_windowed(
        text: &T5Config,
        transformer: &TransformerConfig,
        vae: &VaeConfig,
        size: VideoSize,
        window: Option<usize>,
        max_sequence_length: usize,
        batch: usize,
        act: DType,
        weights: u64,
    ) -> MemoryEstimate {
        let a = act.size() as u64;
        let (spatial, temporal) = (vae.spatial_compression(), vae.temporal_compression());
        let [lf, lh, lw] = size.latent(spatial, temporal);
        let transformer_frames = VideoSize {
            frames: window.unwrap_or(size.frames).min(size.frames),
            ..size
        }
        .latent(spatial, temporal)[0];
        let b = batch as u64;
        // T5 in f32: hidden, norm, q/k/v, attention, the two FFN halves.
        let l = max_sequence_length as u64;
        let t5_rows = b * l;
        let t5 = t5_rows * (6 * text.d_model as u64 + 3 * text.d_ff as u64) * 4;
        let t5_largest = t5_rows * text.d_ff as u64 * 4;
        // Transformer: tokens x (hidden, norm, q, k, v, attention, out,
        // residual) + the 4x FFN + f32 RoPE tables + the 6 D modulation.
        let tokens = (transformer_frames * lh * lw) as u64
            / (transformer.patch_size_t * transformer.patch_size.pow(2)) as u64;
        let rows = b * tokens;
        let d = transformer.inner_dim() as u64;
        let dit =
            rows * (8 * d + 2 * 4 * d) * a + 2 * rows * d * 4 + rows * 6 * d * 4 + b * l * d * a;
        let dit_largest = (rows * 4 * d * a).max(rows * 6 * d * 4);
        // VAE decoder: per level, its channels at its output resolution; a
        // resnet holds about four such buffers at once.
        let (mut f, mut h, mut w) = (lf as u64, lh as u64, lw as u64);
        let channels: Vec<u64> = vae
            .decoder_block_out_channels
            .iter()
            .rev()
            .map(|&c| c as u64)
            .collect();
        let mut level_max = channels.first().copied().unwrap_or(0) * f * h * w;
        for (i, &scales) in vae.decoder_spatio_temporal_scaling.iter().enumerate() {
            if scales {
                f = (f - 1) * 2 + 1;
                h *= 2;
                w *= 2;
            }
            let c = channels
                .get(i + 1)
                .or(channels.last())
                .copied()
                .unwrap_or(0);
            level_max = level_max.max(c * f * h * w);
        }
        let p = vae.patch_size as u64;
        let out = 3 * size.frames as u64 * size.height as u64 * size.width as u64;
        let conv_out = vae.out_channels as u64 * p * p * f * h * w;
        let largest_vae = (level_max.max(out).max(conv_out)) * a;
        let vae_total = 4 * largest_vae;
        MemoryEstimate {
            size,
            spatial,
            weights,
            activations: t5.max(dit).max(vae_total),
            largest_buffer: t5_largest.max(dit_largest).max(largest_vae),
        }
    }

    pub fn total(&self) -> u64 {
        self.weights + self.activations
    }

    fn fits(&self, gpu: &Gpu, budget: Option<u64>) -> Result<(), String> {
        let binding = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size);
        if self.largest_buffer > binding {
            return Err(format!(
                "one of its buffers would need {} MiB, more than this adapter binds at once \
                 ({} MiB)",
                mib(self.largest_buffer),
                mib(binding)
            ));
        }
        if let Some(budget) = budget
            && self.total() > budget
        {
            return Err(format!(
                "it needs about {} MiB ({} MiB of weights), over the budget of {} MiB",
                mib(self.total()),
                mib(self.weights),
                mib(budget)
            ));
        }
        Ok(())
    }

    /// Fails with the largest size of the same aspect and length that fits,
    /// found by shrinking the sides through `estimate`.
    pub fn check(
        &self,
        gpu: &Gpu,
        estimate: impl Fn(VideoSize) -> MemoryEstimate,
    ) -> Result<(), PipelineError> {
        let budget = std::env::var("FRAMECAST_MEMORY_BUDGET_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|mb| mb << 20);
        let Err(why) = self.fits(gpu, budget) else {
            return Ok(());
        };
        let s = self.size;
        let mut suggestion = None;
        for shrink in 1..64u64 {
            let scale = 1.0 - shrink as f64 / 64.0;
            let try_size = VideoSize {
                width: ((s.width as f64 * scale) as usize / self.spatial).max(1) * self.spatial,
                height: ((s.height as f64 * scale) as usize / self.spatial).max(1) * self.spatial,
                frames: s.frames,
            };
            if estimate(try_size).fits(gpu, budget).is_ok() {
                suggestion = Some(try_size);
                break;
            }
        }
        let hint = match suggestion {
            Some(t) => format!(
                "; the largest {}-frame size of this aspect that fits is {}x{}",
                t.frames, t.width, t.height
            ),
            None => "; try fewer frames".into(),
        };
        Err(PipelineError::TooLarge(format!(
            "{}x{} with {} frames is too large for {}: {why}{hint}",
            s.width, s.height, s.frames, gpu.info.name
        )))
    }
}

fn mib(b: u64) -> u64 {
    b.div_ceil(1 << 20)
}
