//! The LTX-Video transformer (diffusers `LTXVideoTransformer3DModel`) on
//! the kernels: `proj_in`, the adaLN-single timestep embedding, the caption
//! projection, blocks of (RMSNorm + modulation, self-attention with
//! RMS-normalised Q/K across heads and 3D RoPE, gated residual; cross-
//! attention on the un-normalised stream with the text mask as an additive
//! bias; RMSNorm + modulation, GELU-tanh FFN, gated residual), then the
//! modulated LayerNorm and `proj_out`.
//!
//! Rows are `[batch * tokens, channels]`; every op of a forward is recorded
//! into the caller's [`Step`], so a denoising step is one submission.

use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::kernels::Rows;
use crate::kernels::attention::{self, Attention, Bias};
use crate::kernels::elementwise::{self, Op};
use crate::kernels::norm::{self, Gate, Modulation, Norm};
use crate::kernels::rope::{ltx_freqs, rope_apply, rope_table};
use crate::models::{Linear, ModelError, Vb};

use super::{TransformerConfig, VaeConfig};
use crate::kernels::rope::grid::LtxGrid;

/// Channels of the sinusoidal timestep projection (diffusers' `Timesteps(256)`).
const TIMESTEP_CHANNELS: usize = 256;
/// `LTXAttention`'s norm_q / norm_k epsilon (fixed in diffusers).
const QK_NORM_EPS: f32 = 1e-5;
/// `norm_out`'s epsilon (fixed in diffusers).
const OUT_NORM_EPS: f32 = 1e-6;
/// `LTXVideoRotaryPosEmbed`'s theta.
const ROPE_THETA: f32 = 10000.0;

/// Sinusoidal embedding of timesteps as diffusers' `get_timestep_embedding`
/// with `flip_sin_to_cos=True, downscale_freq_shift=0`: `[cos | sin]` of
/// `t * exp(-ln(10000) * i / half)`, in f32 like torch.
pub fn timestep_proj(t: &[f32], channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| ((-(10000f64.ln()) as f32) * i as f32 / half as f32).exp())
        .collect();
    let mut out = Vec::with_capacity(t.len() * channels);
    for &v in t {
        out.extend(freqs.iter().map(|&f| (v * f).cos()));
        out.extend(freqs.iter().map(|&f| (v * f).sin()));
    }
    out
}

struct Attn {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    norm_q: Tensor,
    norm_k: Tensor,
}

impl Attn {
    fn load(gpu: &Gpu, vb: Vb<'_>, d: usize, kv_in: usize, act: DType) -> Result<Attn, ModelError> {
        Ok(Attn {
            to_q: vb.pp("to_q").linear(gpu, d, d, act)?,
            to_k: vb.pp("to_k").linear(gpu, d, kv_in, act)?,
            to_v: vb.pp("to_v").linear(gpu, d, kv_in, act)?,
            to_out: vb.pp("to_out").pp(0).linear(gpu, d, d, act)?,
            norm_q: vb.pp("norm_q").tensor(gpu, "weight", &[d], act)?,
            norm_k: vb.pp("norm_k").tensor(gpu, "weight", &[d], act)?,
        })
    }

    /// `norm_q` and `norm_k`: RMSNorm across all heads of Q and K.
    fn norm_qk(
        &self,
        step: &mut Step<'_>,
        d: usize,
        [q, k]: [&Tensor; 2],
        [qn, kn]: [&Tensor; 2],
    ) -> Result<(), ModelError> {
        for (x, w, out) in [(q, &self.norm_q, qn), (k, &self.norm_k, kn)] {
            norm::encode(
                step,
                Norm::Rms,
                rows_of(d, x),
                Some(w),
                QK_NORM_EPS,
                None,
                out,
            )?;
        }
        Ok(())
    }

    fn bytes(&self) -> u64 {
        [&self.to_q, &self.to_k, &self.to_v, &self.to_out]
            .iter()
            .map(|l| l.bytes())
            .sum::<u64>()
            + self.norm_q.bytes()
            + self.norm_k.bytes()
    }
}

struct Block {
    attn1: Attn,
    attn2: Attn,
    ff_in: Linear,
    ff_out: Linear,
    table: Tensor,
}

/// The RoPE grid of a model: its VAE's compressions and the transformer's
/// patch sizes, with LTX-Video's base sizes.
pub fn rope_grid(vae: &VaeConfig, transformer: &TransformerConfig) -> LtxGrid {
    LtxGrid {
        temporal_compression: vae.temporal_compression() as i64,
        spatial_compression: vae.spatial_compression() as i64,
        patch_size_t: transformer.patch_size_t,
        patch_size: transformer.patch_size,
        ..LtxGrid::LTX_VIDEO
    }
}

/// The tokenizer's 0/1 attention mask as the additive bias cross-attention
/// takes (diffusers: `(1 - mask) * -10000`).
pub fn mask_bias(mask: &[u32]) -> Vec<f32> {
    mask.iter().map(|&m| (1.0 - m as f32) * -10000.0).collect()
}

fn rows_of(d: usize, t: &Tensor) -> Rows<'_> {
    Rows::contiguous(t, d)
}

/// RoPE tables for the tokens of one forward: `[batch * tokens, D]` f32.
pub struct Rope {
    pub cos: Tensor,
    pub sin: Tensor,
}

/// The inputs of one forward.
pub struct Forward<'a> {
    /// `[batch * tokens, in_channels]` packed latents (act dtype).
    pub hidden: &'a Tensor,
    pub batch: usize,
    pub tokens: usize,
    /// On diffusers' 0..1000 scale: one value for all tokens, one per batch
    /// item, or one per token (`batch * tokens`, image conditioning).
    pub timesteps: &'a [f32],
    /// `[batch * caption_len, D]` from [`LtxTransformer::project_caption`].
    pub caption: &'a Tensor,
    pub caption_len: usize,
    /// `[batch, caption_len]` f32: 0 for prompt tokens, -10000 for padding.
    pub mask: &'a Tensor,
    pub rope: &'a Rope,
}

pub struct LtxTransformer {
    config: TransformerConfig,
    act: DType,
    proj_in: Linear,
    t_linear_1: Linear,
    t_linear_2: Linear,
    t_linear: Linear,
    cap_linear_1: Linear,
    cap_linear_2: Linear,
    blocks: Vec<Block>,
    out_table: Tensor,
    proj_out: Linear,
    freqs: Tensor,
}

impl LtxTransformer {
    pub fn load(
        gpu: &Gpu,
        vb: Vb<'_>,
        config: &TransformerConfig,
        act: DType,
    ) -> Result<LtxTransformer, ModelError> {
        let c = config;
        if c.qk_norm != "rms_norm_across_heads" || c.activation_fn != "gelu-approximate" {
            return Err(ModelError::Config(format!(
                "transformer qk_norm {:?} / activation_fn {:?}: only LTX-Video's \
                 rms_norm_across_heads and gelu-approximate are supported",
                c.qk_norm, c.activation_fn
            )));
        }
        if c.norm_elementwise_affine {
            return Err(ModelError::Config(
                "transformer norm_elementwise_affine = true is not supported (LTX-Video has none)"
                    .into(),
            ));
        }
        let d = c.inner_dim();
        let emb = vb.pp("time_embed").pp("emb").pp("timestep_embedder");
        let cap = vb.pp("caption_projection");
        let blocks = (0..c.num_layers)
            .map(|i| {
                let b = vb.pp("transformer_blocks").pp(i);
                let ff_inner = b.pp("ff").pp("net").pp(0).pp("proj").shape("weight")?[0];
                Ok(Block {
                    attn1: Attn::load(gpu, b.pp("attn1"), d, d, act)?,
                    attn2: Attn::load(gpu, b.pp("attn2"), d, c.cross_attention_dim, act)?,
                    ff_in: b
                        .pp("ff")
                        .pp("net")
                        .pp(0)
                        .pp("proj")
                        .linear(gpu, ff_inner, d, act)?,
                    ff_out: b.pp("ff").pp("net").pp(2).linear(gpu, d, ff_inner, act)?,
                    table: b.tensor(gpu, "scale_shift_table", &[6, d], act)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        if c.cross_attention_dim != d {
            // The projected captions are D wide; attn2's to_k/to_v read them.
            return Err(ModelError::Config(format!(
                "cross_attention_dim {} differs from the inner dim {d}; the caption projection \
                 makes D-wide states",
                c.cross_attention_dim
            )));
        }
        let freqs = ltx_freqs(d, ROPE_THETA);
        Ok(LtxTransformer {
            config: c.clone(),
            act,
            proj_in: vb.pp("proj_in").linear(gpu, d, c.in_channels, act)?,
            t_linear_1: emb.pp("linear_1").linear(gpu, d, TIMESTEP_CHANNELS, act)?,
            t_linear_2: emb.pp("linear_2").linear(gpu, d, d, act)?,
            t_linear: vb
                .pp("time_embed")
                .pp("linear")
                .linear(gpu, 6 * d, d, act)?,
            cap_linear_1: cap.pp("linear_1").linear(gpu, d, c.caption_channels, act)?,
            cap_linear_2: cap.pp("linear_2").linear(gpu, d, d, act)?,
            blocks,
            out_table: vb.tensor(gpu, "scale_shift_table", &[2, d], act)?,
            proj_out: vb.pp("proj_out").linear(gpu, c.out_channels, d, act)?,
            freqs: gpu.upload(&freqs, &[freqs.len()], DType::F32)?,
        })
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    /// GPU bytes the weights hold.
    pub fn bytes(&self) -> u64 {
        let lin = [
            &self.proj_in,
            &self.t_linear_1,
            &self.t_linear_2,
            &self.t_linear,
            &self.cap_linear_1,
            &self.cap_linear_2,
            &self.proj_out,
        ]
        .iter()
        .map(|l| l.bytes())
        .sum::<u64>();
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                b.attn1.bytes()
                    + b.attn2.bytes()
                    + b.ff_in.bytes()
                    + b.ff_out.bytes()
                    + b.table.bytes()
            })
            .sum::<u64>();
        lin + blocks + self.out_table.bytes() + self.freqs.bytes()
    }

    /// `caption_projection` of the T5 states `[rows, caption_channels]`
    /// (act dtype) into `[rows, D]`: the same for every step, so done once.
    pub fn project_caption(
        &self,
        step: &mut Step<'_>,
        states: &Tensor,
    ) -> Result<Tensor, ModelError> {
        let gpu = step.gpu();
        let c = &self.config;
        if states.shape.last() != Some(&c.caption_channels) || states.dtype != self.act {
            return Err(ModelError::shape(
                "transformer.caption_projection",
                format!(
                    "states {states:?}; expected [rows, {}] of {:?}",
                    c.caption_channels, self.act
                ),
            ));
        }
        let rows = states.numel() / c.caption_channels;
        let d = c.inner_dim();
        let h = gpu.empty(&[rows, d], self.act)?;
        self.cap_linear_1.encode(step, states, &h)?;
        let g = gpu.empty(&[rows, d], self.act)?;
        elementwise::encode(step, Op::GeluTanh, &h, None, &g)?;
        let out = gpu.empty(&[rows, d], self.act)?;
        self.cap_linear_2.encode(step, &g, &out)?;
        Ok(out)
    }

    /// RoPE tables for fractional coordinates `[rows, 3]` (frame, y, x as
    /// [`crate::kernels::rope::grid::LtxGrid`] gives them).
    pub fn rope(&self, step: &mut Step<'_>, coords: &[f32]) -> Result<Rope, ModelError> {
        let gpu = step.gpu();
        if !coords.len().is_multiple_of(3) {
            return Err(ModelError::shape(
                "transformer.rope",
                "coordinates are not [rows, 3]",
            ));
        }
        let rows = coords.len() / 3;
        let d = self.config.inner_dim();
        let coords = gpu.upload(coords, &[rows, 3], DType::F32)?;
        let cos = gpu.empty(&[rows, d], DType::F32)?;
        let sin = gpu.empty(&[rows, d], DType::F32)?;
        rope_table(step, &coords, &self.freqs, d, &cos, &sin)?;
        Ok(Rope { cos, sin })
    }

    /// Timestep embeddings: `temb [mod_rows, 6 D]` and `embedded [mod_rows, D]`,
    /// with one row for all tokens when every timestep is the same.
    fn time_embed(
        &self,
        step: &mut Step<'_>,
        x: &Forward<'_>,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let gpu = step.gpu();
        let rows = x.batch * x.tokens;
        let ts = x.timesteps;
        let uniform = ts.first().is_some_and(|&t0| ts.iter().all(|&t| t == t0));
        let per_row: Vec<f32> = if uniform {
            vec![ts[0]]
        } else if ts.len() == x.batch {
            ts.iter()
                .flat_map(|&t| std::iter::repeat_n(t, x.tokens))
                .collect()
        } else if ts.len() == rows {
            ts.to_vec()
        } else {
            return Err(ModelError::shape(
                "transformer.time_embed",
                format!(
                    "{} timesteps for batch {} x {} tokens; give 1, batch or batch x tokens",
                    ts.len(),
                    x.batch,
                    x.tokens
                ),
            ));
        };
        let n = per_row.len();
        let d = self.config.inner_dim();
        let proj = gpu.upload(
            &timestep_proj(&per_row, TIMESTEP_CHANNELS),
            &[n, TIMESTEP_CHANNELS],
            self.act,
        )?;
        let h = gpu.empty(&[n, d], self.act)?;
        self.t_linear_1.encode(step, &proj, &h)?;
        let a = gpu.empty(&[n, d], self.act)?;
        elementwise::encode(step, Op::Silu, &h, None, &a)?;
        let embedded = gpu.empty(&[n, d], self.act)?;
        self.t_linear_2.encode(step, &a, &embedded)?;
        let s = gpu.empty(&[n, d], self.act)?;
        elementwise::encode(step, Op::Silu, &embedded, None, &s)?;
        let temb = gpu.empty(&[n, 6 * d], self.act)?;
        self.t_linear.encode(step, &s, &temb)?;
        Ok((temb, embedded))
    }

    /// One forward into `out [batch * tokens, out_channels]`.
    pub fn forward(
        &self,
        step: &mut Step<'_>,
        x: Forward<'_>,
        out: &Tensor,
    ) -> Result<(), ModelError> {
        let gpu = step.gpu();
        let c = &self.config;
        let (d, heads, hd) = (c.inner_dim(), c.num_attention_heads, c.attention_head_dim);
        let rows = x.batch * x.tokens;
        let op = "transformer.forward";
        if x.hidden.numel() != rows * c.in_channels || x.hidden.dtype != self.act {
            return Err(ModelError::shape(
                op,
                format!(
                    "hidden {:?}; expected [{rows}, {}] of {:?}",
                    x.hidden, c.in_channels, self.act
                ),
            ));
        }
        if x.caption.numel() != x.batch * x.caption_len * d {
            return Err(ModelError::shape(
                op,
                format!(
                    "caption {:?}; expected [{} x {}, {d}]",
                    x.caption, x.batch, x.caption_len
                ),
            ));
        }
        if x.rope.cos.numel() != rows * d || out.numel() != rows * c.out_channels {
            return Err(ModelError::shape(
                op,
                format!(
                    "rope {:?} or out {out:?} do not fit {rows} rows",
                    x.rope.cos
                ),
            ));
        }
        let (temb, embedded) = self.time_embed(step, &x)?;
        let empty = |w: usize| gpu.empty(&[rows, w], self.act);
        // The residual stream alternates between two buffers.
        let mut h = empty(d)?;
        let mut h2 = empty(d)?;
        self.proj_in.encode(step, x.hidden, &h)?;
        let normed = empty(d)?;
        let (q, k, v) = (empty(d)?, empty(d)?, empty(d)?);
        let (qn, kn) = (empty(d)?, empty(d)?);
        let (qr, kr) = (empty(d)?, empty(d)?);
        let attn = empty(d)?;
        let proj = empty(d)?;
        let l = x.batch * x.caption_len;
        let (ck, cv) = (gpu.empty(&[l, d], self.act)?, gpu.empty(&[l, d], self.act)?);
        let ckn = gpu.empty(&[l, d], self.act)?;
        let ff_inner = self.blocks.first().map_or(4 * d, |b| b.ff_in.n());
        let (ff_h, ff_a) = (empty(ff_inner)?, empty(ff_inner)?);
        let eps = c.norm_eps as f32;
        let self_attn = Attention::new(x.batch, heads, x.tokens, x.tokens, hd);
        let cross_attn = Attention::new(x.batch, heads, x.tokens, x.caption_len, hd);
        for b in &self.blocks {
            // Self-attention on the modulated norm.
            let m = Modulation::chunks(&temb, Some(&b.table), d, 6, 0, 1);
            norm::encode(
                step,
                Norm::Rms,
                rows_of(d, &h),
                None,
                eps,
                Some(&m),
                &normed,
            )?;
            b.attn1.to_q.encode(step, &normed, &q)?;
            b.attn1.to_k.encode(step, &normed, &k)?;
            b.attn1.to_v.encode(step, &normed, &v)?;
            b.attn1.norm_qk(step, d, [&q, &k], [&qn, &kn])?;
            rope_apply(step, rows_of(d, &qn), &x.rope.cos, &x.rope.sin, &qr)?;
            rope_apply(step, rows_of(d, &kn), &x.rope.cos, &x.rope.sin, &kr)?;
            attention::encode(step, &self_attn, &qr, &kr, &v, &attn, Bias::default())?;
            b.attn1.to_out.encode(step, &attn, &proj)?;
            let gate = Gate::chunk(&temb, Some(&b.table), d, 6, 2);
            norm::gated_residual(step, &h, &proj, &gate, &h2)?;
            std::mem::swap(&mut h, &mut h2);
            // Cross-attention on the un-normalised stream.
            b.attn2.to_q.encode(step, &h, &q)?;
            b.attn2.to_k.encode(step, x.caption, &ck)?;
            b.attn2.to_v.encode(step, x.caption, &cv)?;
            b.attn2.norm_qk(step, d, [&q, &ck], [&qn, &ckn])?;
            let mask = Bias {
                mask: Some(x.mask),
                t5_table: None,
            };
            attention::encode(step, &cross_attn, &qn, &ckn, &cv, &attn, mask)?;
            b.attn2.to_out.encode(step, &attn, &proj)?;
            elementwise::encode(step, Op::Add, &h, Some(&proj), &h2)?;
            std::mem::swap(&mut h, &mut h2);
            // Feed-forward on the modulated norm.
            let m = Modulation::chunks(&temb, Some(&b.table), d, 6, 3, 4);
            norm::encode(
                step,
                Norm::Rms,
                rows_of(d, &h),
                None,
                eps,
                Some(&m),
                &normed,
            )?;
            b.ff_in.encode(step, &normed, &ff_h)?;
            elementwise::encode(step, Op::GeluTanh, &ff_h, None, &ff_a)?;
            b.ff_out.encode(step, &ff_a, &proj)?;
            let gate = Gate::chunk(&temb, Some(&b.table), d, 6, 5);
            norm::gated_residual(step, &h, &proj, &gate, &h2)?;
            std::mem::swap(&mut h, &mut h2);
        }
        let m = Modulation::shared(&embedded, &self.out_table, d);
        norm::encode(
            step,
            Norm::Layer,
            rows_of(d, &h),
            None,
            OUT_NORM_EPS,
            Some(&m),
            &normed,
        )?;
        self.proj_out.encode(step, &normed, out)?;
        Ok(())
    }
}
