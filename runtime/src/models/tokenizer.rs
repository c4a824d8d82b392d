//! Prompt tokenisation from a `tokenizer.json` (the `tokenizers` crate), the
//! way the diffusers pipelines call it: special tokens added, truncated to
//! the maximum length (keeping the end-of-sequence token) and padded to it.

use thiserror::Error;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("the bundle's tokenizer.json could not be read: {0}")]
    Parse(String),
    #[error("tokenising the prompt failed: {0}")]
    Encode(String),
    #[error("the tokenizer has no padding token '{0}'")]
    NoPad(String),
}

/// Token ids and attention mask of one prompt, both `max_length` long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    /// The prompt was longer than `max_length` tokens and was cut.
    pub truncated: bool,
    /// Tokens of the whole prompt, before truncation.
    pub full_len: usize,
}

pub struct PromptTokenizer {
    inner: Tokenizer,
    pad_id: u32,
    pad_token: String,
}

impl PromptTokenizer {
    /// `pad_token` is T5's `<pad>` for the LTX and Wan text encoders.
    pub fn from_json(json: &[u8], pad_token: &str) -> Result<PromptTokenizer, TokenizerError> {
        let inner =
            Tokenizer::from_bytes(json).map_err(|e| TokenizerError::Parse(e.to_string()))?;
        let pad_id = inner
            .token_to_id(pad_token)
            .ok_or_else(|| TokenizerError::NoPad(pad_token.to_string()))?;
        Ok(PromptTokenizer {
            inner,
            pad_id,
            pad_token: pad_token.to_string(),
        })
    }

    pub fn encode(&self, prompt: &str, max_length: usize) -> Result<Tokens, TokenizerError> {
        let mut tok = self.inner.clone();
        let full = tok
            .encode(prompt, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let truncated = full.get_ids().len() > max_length;
        tok.with_truncation(Some(TruncationParams {
            max_length,
            ..Default::default()
        }))
        .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        tok.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_length),
            pad_id: self.pad_id,
            pad_token: self.pad_token.clone(),
            ..Default::default()
        }));
        let enc = tok
            .encode(prompt, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(Tokens {
            ids: enc.get_ids().to_vec(),
            mask: enc.get_attention_mask().to_vec(),
            truncated,
            full_len: full.get_ids().len(),
        })
    }
}
