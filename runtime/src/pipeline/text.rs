//! The text stage on its own: the tokenizer and the T5 encoder, loadable as
//! soon as the text encoder's tensors are in. A page that streams a bundle
//! builds it from the first shards and encodes the prompt while the
//! transformer and the VAE are still downloading; [`LtxPipeline`] then
//! takes the [`EncodedPrompt`] (or encodes the prompt itself).
//!
//! [`LtxPipeline`]: super::LtxPipeline

use web_time::Instant;

use crate::bundle::Manifest;
use crate::gpu::{Gpu, Tensor};
use crate::models::ltx::T5Config;
use crate::models::ltx::text_encoder::T5Encoder;
use crate::models::tokenizer::PromptTokenizer;
use crate::models::{ModelError, Weights};

use super::ltx::GenerateOptions;
use super::{Cancel, Event, PipelineError, Stage, component_config};

/// The tokenizer and the T5 encoder on the GPU.
pub struct TextStage {
    pub config: T5Config,
    tokenizer: PromptTokenizer,
    encoder: T5Encoder,
}

/// A prompt (and under CFG its negative) through T5: the states in f32,
/// `[batch, len, d_model]`, negative first as diffusers stacks them.
pub struct EncodedPrompt {
    pub states: Tensor,
    /// The tokenizer's mask, `[batch, len]`, 1 for a token, 0 for padding.
    pub mask: Vec<u32>,
    pub len: usize,
    pub batch: usize,
    /// What was encoded, to refuse a prompt encoded for other options.
    key: PromptKey,
}

#[derive(Clone, Debug, PartialEq)]
struct PromptKey {
    prompt: String,
    negative: Option<String>,
    len: usize,
    batch: usize,
}

impl PromptKey {
    fn of(opts: &GenerateOptions) -> PromptKey {
        let batch = if opts.guidance_scale > 1.0 { 2 } else { 1 };
        PromptKey {
            prompt: opts.prompt.clone(),
            negative: (batch == 2).then(|| opts.negative_prompt.clone().unwrap_or_default()),
            len: opts.max_sequence_length,
            batch,
        }
    }
}

impl EncodedPrompt {
    /// Whether this is the prompt `opts` asks for (prompt, negative prompt
    /// under CFG, sequence length).
    pub fn matches(&self, opts: &GenerateOptions) -> bool {
        self.key == PromptKey::of(opts)
    }
}

impl TextStage {
    /// Builds the stage from the manifest's tokenizer and text encoder config
    /// and the `text_encoder` tensors of `weights` (other components may be
    /// absent).
    pub fn load(
        gpu: &Gpu,
        manifest: &Manifest,
        weights: &Weights,
    ) -> Result<TextStage, ModelError> {
        let config: T5Config = component_config(manifest, "text_encoder")?;
        let json = manifest
            .tokenizer
            .get("tokenizer.json")
            .ok_or_else(|| ModelError::Config("the bundle has no tokenizer.json".into()))?;
        let bytes = serde_json::to_vec(json)
            .map_err(|e| ModelError::Config(format!("tokenizer.json: {e}")))?;
        let tokenizer = PromptTokenizer::from_json(&bytes, "<pad>")?;
        let encoder = T5Encoder::load(gpu, weights.root("text_encoder"), &config)?;
        Ok(TextStage {
            config,
            tokenizer,
            encoder,
        })
    }

    /// How many of the manifest's tensors the text stage needs: once that
    /// many `text_encoder` tensors have arrived, [`TextStage::load`] can run.
    pub fn tensor_count(manifest: &Manifest) -> usize {
        manifest
            .tensors
            .iter()
            .filter(|t| t.component == "text_encoder")
            .count()
    }

    /// GPU bytes of the encoder's weights.
    pub fn bytes(&self) -> u64 {
        self.encoder.bytes()
    }

    /// Tokenizes and encodes `opts`' prompt (and negative prompt under CFG),
    /// reporting the text-encoding stage and any truncation.
    pub async fn encode(
        &self,
        gpu: &Gpu,
        opts: &GenerateOptions,
        events: &mut dyn FnMut(Event),
        cancel: &Cancel,
    ) -> Result<EncodedPrompt, PipelineError> {
        cancel.check()?;
        let key = PromptKey::of(opts);
        let started = Instant::now();
        events(Event::StageStarted(Stage::TextEncoding));
        let len = key.len;
        let mut ids = Vec::with_capacity(key.batch * len);
        let mut mask = Vec::with_capacity(key.batch * len);
        let mut tokenize = |text: &str, negative: bool| -> Result<(), PipelineError> {
            let t = self.tokenizer.encode(text, len)?;
            if t.truncated {
                events(Event::PromptTruncated {
                    negative,
                    tokens: t.full_len,
                    kept: len,
                });
            }
            ids.extend(t.ids);
            mask.extend(t.mask);
            Ok(())
        };
        if let Some(negative) = &key.negative {
            tokenize(negative, true)?;
        }
        tokenize(&key.prompt, false)?;
        let mut step = gpu.step("text encoding");
        let states = self.encoder.encode(&mut step, &ids, &mask, key.batch)?;
        step.submit()?;
        gpu.wait().await?;
        events(Event::StageFinished {
            stage: Stage::TextEncoding,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(EncodedPrompt {
            states,
            mask,
            len,
            batch: key.batch,
            key,
        })
    }
}
