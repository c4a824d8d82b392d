//! Generation pipelines: the thin shells (CLI, browser) call these. Each
//! run reports progress through [`Event`]s, can be cancelled between GPU
//! submissions with a [`Cancel`] token, and checks its memory needs against
//! the adapter before any work starts.

pub mod condition;
pub mod latents;
pub mod ltx;
pub mod memory;
pub mod size;
pub mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

use crate::bundle::Manifest;
use crate::gpu::GpuError;
use crate::models::ModelError;
use crate::sched::SchedulerError;

pub use condition::{Condition, Fit, Frames, VideoInput};
pub use ltx::{GenerateOptions, LtxPipeline, Tiling, temporal_windows};
pub use memory::MemoryEstimate;
pub use size::{VideoSize, snap};
pub use text::{EncodedPrompt, TextStage};

/// A component's `config.json` as the manifest carries it.
pub(crate) fn component_config<T: serde::de::DeserializeOwned>(
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

/// The decode timestep the CLI, the storyboard and the page use when not
/// told (LTX's recommended 0.05; `GenerateOptions::default()` keeps
/// diffusers' call default, 0). Only timestep-conditioned VAEs read it.
pub const DEFAULT_DECODE_TIMESTEP: f32 = 0.05;

/// The stages of a text-to-video run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    TextEncoding,
    /// The VAE encoding conditioning pictures and clips (only when given).
    Conditioning,
    Denoising,
    Decoding,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::TextEncoding => "text encoding",
            Stage::Conditioning => "conditioning",
            Stage::Denoising => "denoising",
            Stage::Decoding => "decoding",
        }
    }
}

/// What a run reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    StageStarted(Stage),
    /// Denoising step `index` (0-based) of `total` has finished; `timestep`
    /// on diffusers' 0..1000 scale.
    Step {
        index: usize,
        total: usize,
        timestep: f32,
    },
    StageFinished {
        stage: Stage,
        seconds: f64,
    },
    /// The (normalised) latents after step `index`, `[C, F', H', W']`, when
    /// the options ask for previews.
    Preview {
        index: usize,
        shape: [usize; 4],
        latents: Vec<f32>,
    },
    /// The prompt (or the negative prompt) is longer than the model reads:
    /// only its first `kept` of `tokens` tokens count, as in diffusers.
    PromptTruncated {
        negative: bool,
        tokens: usize,
        kept: usize,
    },
}

impl Event {
    /// What to tell the user of a truncated prompt, with what to do.
    pub fn truncation_message(negative: bool, tokens: usize, kept: usize) -> String {
        format!(
            "the {} is {tokens} tokens and the model reads only the first {kept}: the rest is \
             ignored. Shorten it, or raise the maximum sequence length (up to what the model \
             was trained with)",
            if negative {
                "negative prompt"
            } else {
                "prompt"
            }
        )
    }
}

/// Cancels a run from another thread (or a JS AbortSignal): the run stops
/// before its next GPU submission with [`PipelineError::Cancelled`].
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Clears a previous cancellation so the token can be used again.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    pub(crate) fn check(&self) -> Result<(), PipelineError> {
        if self.is_cancelled() {
            Err(PipelineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(
        "{width}x{height} with {frames} frames is not a size this model makes: width and height \
         must be multiples of {spatial} and the frame count k x {temporal} + 1 (nearest valid: \
         {}x{} with {} frames)",
        nearest.width, nearest.height, nearest.frames
    )]
    InvalidSize {
        width: usize,
        height: usize,
        frames: usize,
        spatial: usize,
        temporal: usize,
        nearest: VideoSize,
    },
    #[error("{0}")]
    TooLarge(String),
    #[error("the generation was cancelled")]
    Cancelled,
    #[error("invalid option: {0}")]
    Option(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

impl From<crate::models::tokenizer::TokenizerError> for PipelineError {
    fn from(e: crate::models::tokenizer::TokenizerError) -> PipelineError {
        PipelineError::Model(ModelError::Tokenizer(e))
    }
}

/// A generated clip: `frames` f32 `[F, H, W, 3]` in [0, 1], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Video {
    pub frames: Vec<f32>,
    pub num_frames: usize,
    pub height: usize,
    pub width: usize,
    pub fps: f64,
}

impl Video {
    /// RGBA8 frames for the encoders.
    pub fn to_clip(&self) -> crate::video::Clip {
        let plane = self.height * self.width;
        let frames = (0..self.num_frames)
            .map(|f| {
                let src = &self.frames[f * plane * 3..(f + 1) * plane * 3];
                let mut rgba = Vec::with_capacity(plane * 4);
                for px in src.chunks_exact(3) {
                    // Frames are in [0, 1]; the video kernels' byte rule takes [-1, 1].
                    rgba.extend(
                        px.iter()
                            .map(|&v| crate::kernels::video::to_byte(v * 2.0 - 1.0)),
                    );
                    rgba.push(255);
                }
                rgba
            })
            .collect();
        crate::video::Clip {
            width: self.width as u32,
            height: self.height as u32,
            fps: self.fps,
            frames,
        }
    }
}
