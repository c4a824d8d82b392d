//! LTX-Video's prompt encoder: the encoder half of T5 v1.1 (transformers'
//! `T5EncoderModel`), called as `LTXConditionPipeline` calls it, with the
//! tokenizer's attention mask.
//!
//! Per block: RMSNorm, self-attention (no 1/sqrt(d) scaling; the learned
//! relative position bias and the key mask added to the scores), residual;
//! RMSNorm, gated-GELU feed-forward (`gelu_tanh(wi_0 x) * wi_1 x`, then
//! `wo`), residual; a final RMSNorm after the last block.
//!
//! Activations are f32 whatever the adapter offers: T5 v1.1's residual
//! stream grows past f16's range in the later blocks (transformers clamps it
//! in f16 and the T5 v1.1 checkpoints are known to produce inf/NaN in half
//! precision), and the encoder runs once per prompt, so its cost is small
//! beside the transformer's. Weights stay in their stored format (q4, q8,
//! f16 or f32): the matmul kernels dequantise while they multiply.
//!
//! The token embedding (`shared.weight`, which `encoder.embed_tokens` is tied
//! to) stays on the CPU in its stored form and is looked up there at encode
//! time: T5-XXL's table is 32128 x 4096 (263 MB in f16), larger than one
//! 128 MiB storage binding, there is no gather kernel, and only `batch * len`
//! rows (a few MB) are needed per call, so uploading just those rows is both
//! smaller on the GPU and simpler.

use crate::bundle::TensorData;
use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::kernels::Rows;
use crate::kernels::attention::{self, Attention, Bias, T5Buckets};
use crate::kernels::elementwise::{self, Op};
use crate::kernels::norm::{self, Norm};
use crate::models::ltx::T5Config;
use crate::models::{Linear, ModelError, Vb};

/// Activations are always f32 (see the module docs).
const ACT: DType = DType::F32;

/// The score added for masked keys: torch's `finfo(float32).min`, as
/// transformers builds the additive mask. `exp` of it underflows to 0.
const MASKED: f32 = f32::MIN;

/// One `encoder.block.{i}`.
struct Block {
    /// `layer.0.layer_norm.weight` [d_model]
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// `relative_attention_bias.weight` [num_buckets, heads] when this block
    /// has its own (T5: block 0 only, shared by all; umT5: every block).
    rel_bias: Option<Tensor>,
    /// `layer.1.layer_norm.weight` [d_model]
    ffn_norm: Tensor,
    wi_0: Linear,
    wi_1: Linear,
    wo: Linear,
}

impl Block {
    fn bytes(&self) -> u64 {
        let linears = [
            &self.q, &self.k, &self.v, &self.o, &self.wi_0, &self.wi_1, &self.wo,
        ];
        linears.iter().map(|l| l.bytes()).sum::<u64>()
            + self.attn_norm.bytes()
            + self.ffn_norm.bytes()
            + self.rel_bias.as_ref().map_or(0, |t| t.bytes())
    }
}

/// The T5 encoder on the GPU (all but the embedding table, see module docs).
pub struct T5Encoder {
    config: T5Config,
    /// `shared.weight` [vocab_size, d_model], as stored in the bundle.
    embed: TensorData,
    blocks: Vec<Block>,
    /// `encoder.final_layer_norm.weight` [d_model]
    final_norm: Tensor,
    buckets: T5Buckets,
}

/// The work buffers of one `encode` call, reused by every block.
struct Scratch {
    /// The residual stream, ping-ponged: kernels write out of place.
    h: [Tensor; 2],
    /// Norm outputs, then each sublayer's output before the residual add.
    n: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn: Tensor,
    gate: Tensor,
    up: Tensor,
    act: Tensor,
}

impl T5Encoder {
    /// Loads the encoder from `vb` (the `text_encoder` component's root).
    pub fn load(gpu: &Gpu, vb: Vb<'_>, config: &T5Config) -> Result<T5Encoder, ModelError> {
        check_config(config)?;
        let c = config;
        let inner = c.num_heads * c.d_kv;
        let embed = vb.data("shared.weight")?;
        if embed.entry.shape != [c.vocab_size, c.d_model] {
            return Err(ModelError::shape(
                vb.key("shared.weight"),
                format!(
                    "shape {:?}, the config implies [vocab_size {}, d_model {}]",
                    embed.entry.shape, c.vocab_size, c.d_model
                ),
            ));
        }
        let enc = vb.pp("encoder");
        let norm = |vb: &Vb<'_>| vb.tensor(gpu, "weight", &[c.d_model], ACT);
        let mut blocks = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let layer = enc.pp("block").pp(i).pp("layer");
            let (sa, ff) = (layer.pp(0), layer.pp(1));
            let attn = sa.pp("SelfAttention");
            let rel = "relative_attention_bias.weight";
            let rel_bias = if i == 0 || attn.has(rel) {
                let shape = [c.relative_attention_num_buckets, c.num_heads];
                Some(attn.tensor(gpu, rel, &shape, DType::F32)?)
            } else {
                None
            };
            let dense = ff.pp("DenseReluDense");
            blocks.push(Block {
                attn_norm: norm(&sa.pp("layer_norm"))?,
                q: attn.pp("q").linear(gpu, inner, c.d_model, ACT)?,
                k: attn.pp("k").linear(gpu, inner, c.d_model, ACT)?,
                v: attn.pp("v").linear(gpu, inner, c.d_model, ACT)?,
                o: attn.pp("o").linear(gpu, c.d_model, inner, ACT)?,
                rel_bias,
                ffn_norm: norm(&ff.pp("layer_norm"))?,
                wi_0: dense.pp("wi_0").linear(gpu, c.d_ff, c.d_model, ACT)?,
                wi_1: dense.pp("wi_1").linear(gpu, c.d_ff, c.d_model, ACT)?,
                wo: dense.pp("wo").linear(gpu, c.d_model, c.d_ff, ACT)?,
            });
        }
        Ok(T5Encoder {
            config: c.clone(),
            embed: embed.clone(),
            blocks,
            final_norm: norm(&enc.pp("final_layer_norm"))?,
            buckets: T5Buckets {
                num_buckets: c.relative_attention_num_buckets as u32,
                max_distance: c.relative_attention_max_distance as u32,
                bidirectional: true,
            },
        })
    }

    pub fn config(&self) -> &T5Config {
        &self.config
    }

    /// Records the encoder for `batch` prompts of `ids.len() / batch` tokens
    /// each (`ids` and `mask` row-major `[batch, len]`, as the tokenizer pads
    /// them; mask 0 = padding, not attended to) into `step`. Returns the last
    /// hidden state `[batch * len, d_model]`, F32, valid once `step` is
    /// submitted. Padding positions get values too, as in transformers.
    pub fn encode(
        &self,
        step: &mut Step<'_>,
        ids: &[u32],
        mask: &[u32],
        batch: usize,
    ) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let c = &self.config;
        let len = check_input(ids, mask, batch)?;
        let tokens = batch * len;
        let hidden = gpu.upload(&self.embed_rows(ids)?, &[tokens, c.d_model], ACT)?;
        let mask: Vec<f32> = mask
            .iter()
            .map(|&m| if m == 0 { MASKED } else { 0.0 })
            .collect();
        let mask = gpu.upload(&mask, &[batch, len], DType::F32)?;

        let inner = c.num_heads * c.d_kv;
        let empty = |cols: usize| gpu.empty(&[tokens, cols], ACT);
        let mut s = Scratch {
            h: [hidden, empty(c.d_model)?],
            n: empty(c.d_model)?,
            q: empty(inner)?,
            k: empty(inner)?,
            v: empty(inner)?,
            attn: empty(inner)?,
            gate: empty(c.d_ff)?,
            up: empty(c.d_ff)?,
            act: empty(c.d_ff)?,
        };
        let attention = Attention::new(batch, c.num_heads, len, len, c.d_kv)
            .with_scale(1.0)
            .with_t5(self.buckets);
        let eps = c.layer_norm_epsilon as f32;
        // Every block uses the last table seen: T5's block 0 table for all,
        // or a block's own where the checkpoint has one.
        let mut table = None;
        for block in &self.blocks {
            table = block.rel_bias.as_ref().or(table);
            let bias = Bias {
                mask: Some(&mask),
                t5_table: table,
            };
            self.encode_block(step, block, &attention, bias, eps, &mut s)?;
        }
        let out = empty(c.d_model)?;
        let x = Rows::contiguous(&s.h[0], c.d_model);
        norm::encode(step, Norm::Rms, x, Some(&self.final_norm), eps, None, &out)?;
        Ok(out)
    }

    /// One block; the residual stream enters and leaves in `s.h[0]`.
    fn encode_block(
        &self,
        step: &mut Step<'_>,
        b: &Block,
        attention: &Attention,
        bias: Bias<'_>,
        eps: f32,
        s: &mut Scratch,
    ) -> Result<(), ModelError> {
        let d = self.config.d_model;
        let x = Rows::contiguous(&s.h[0], d);
        norm::encode(step, Norm::Rms, x, Some(&b.attn_norm), eps, None, &s.n)?;
        b.q.encode(step, &s.n, &s.q)?;
        b.k.encode(step, &s.n, &s.k)?;
        b.v.encode(step, &s.n, &s.v)?;
        attention::encode(step, attention, &s.q, &s.k, &s.v, &s.attn, bias)?;
        b.o.encode(step, &s.attn, &s.n)?;
        elementwise::encode(step, Op::Add, &s.h[0], Some(&s.n), &s.h[1])?;

        let x = Rows::contiguous(&s.h[1], d);
        norm::encode(step, Norm::Rms, x, Some(&b.ffn_norm), eps, None, &s.n)?;
        b.wi_0.encode(step, &s.n, &s.gate)?;
        b.wi_1.encode(step, &s.n, &s.up)?;
        elementwise::encode(step, Op::GatedGelu, &s.gate, Some(&s.up), &s.act)?;
        b.wo.encode(step, &s.act, &s.n)?;
        elementwise::encode(step, Op::Add, &s.h[1], Some(&s.n), &s.h[0])?;
        Ok(())
    }

    /// The embedding rows of `ids`, decoded on the CPU, `[ids.len(), d_model]`.
    fn embed_rows(&self, ids: &[u32]) -> Result<Vec<f32>, ModelError> {
        let (vocab, d) = (self.config.vocab_size, self.config.d_model);
        let mut out = Vec::with_capacity(ids.len() * d);
        for (pos, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if id >= vocab {
                return Err(ModelError::shape(
                    self.embed.entry.key(),
                    format!(
                        "token id {id} at position {pos} is outside the vocabulary of {vocab} \
                         rows: was the prompt tokenized for another model?"
                    ),
                ));
            }
            out.extend(self.embed.rows_f32(id..id + 1));
        }
        Ok(out)
    }

    /// Bytes of GPU memory the weights hold (the embedding table is not on
    /// the GPU: see [`Self::host_bytes`]).
    pub fn bytes(&self) -> u64 {
        self.blocks.iter().map(Block::bytes).sum::<u64>() + self.final_norm.bytes()
    }

    /// Bytes of CPU memory the embedding table holds, as stored.
    pub fn host_bytes(&self) -> u64 {
        self.embed.entry.stored_bytes()
    }
}

/// The configurations this encoder computes: gated GELU (T5 v1.1, umT5) and
/// heads the attention kernel takes.
fn check_config(c: &T5Config) -> Result<(), ModelError> {
    if c.feed_forward_proj != "gated-gelu" {
        return Err(ModelError::Config(format!(
            "T5 feed_forward_proj {:?}: only \"gated-gelu\" (T5 v1.1) is implemented",
            c.feed_forward_proj
        )));
    }
    let dims = [c.vocab_size, c.d_model, c.d_kv, c.d_ff, c.num_heads];
    if dims.contains(&0) || c.num_layers == 0 {
        return Err(ModelError::Config(format!(
            "T5 config has a zero size: {c:?}"
        )));
    }
    if !c.d_kv.is_multiple_of(4) || c.d_kv > attention::MAX_HEAD_DIM {
        return Err(ModelError::Config(format!(
            "T5 d_kv {}: the attention kernel takes multiples of 4 up to {}",
            c.d_kv,
            attention::MAX_HEAD_DIM
        )));
    }
    Ok(())
}

/// Checks ids and mask against `batch`; returns the tokens per prompt.
fn check_input(ids: &[u32], mask: &[u32], batch: usize) -> Result<usize, ModelError> {
    let input = |detail: String| ModelError::shape("text_encoder input ids", detail);
    if batch == 0 || ids.is_empty() || !ids.len().is_multiple_of(batch) {
        return Err(input(format!(
            "{} ids do not split into {batch} prompts of at least one token",
            ids.len()
        )));
    }
    if mask.len() != ids.len() {
        return Err(input(format!(
            "{} mask values for {} ids",
            mask.len(),
            ids.len()
        )));
    }
    Ok(ids.len() / batch)
}
