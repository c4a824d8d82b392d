//! Latent bookkeeping on the CPU (small tensors: 128 channels x ~1k tokens
//! at real size): packing to tokens and back as diffusers'
//! `_pack_latents`/`_unpack_latents`, the initial noise, and the
//! normalisation with the VAE's per-channel statistics.

use crate::kernels::rng::{Stream, reference_normal};

/// RNG streams of one seed: the initial noise and the decode noise differ.
pub const NOISE_STREAM: u32 = 0;
pub const DECODE_NOISE_STREAM: u32 = 1;

/// `[C, F, H, W]` to tokens `[F/pt * H/p * W/p, C * pt * p * p]` (token
/// order frame, row, column; features channel, then the patch offsets).
pub fn pack(latents: &[f32], c: usize, [f, h, w]: [usize; 3], pt: usize, p: usize) -> Vec<f32> {
    let (tf, th, tw) = (f / pt, h / p, w / p);
    let feat = c * pt * p * p;
    let mut out = vec![0.0; tf * th * tw * feat];
    for ch in 0..c {
        for fi in 0..f {
            for y in 0..h {
                for x in 0..w {
                    let token = ((fi / pt) * th + y / p) * tw + x / p;
                    let j = ((ch * pt + fi % pt) * p + y % p) * p + x % p;
                    out[token * feat + j] = latents[((ch * f + fi) * h + y) * w + x];
                }
            }
        }
    }
    out
}

/// The inverse of [`pack`].
pub fn unpack(tokens: &[f32], c: usize, [f, h, w]: [usize; 3], pt: usize, p: usize) -> Vec<f32> {
    let (th, tw) = (h / p, w / p);
    let feat = c * pt * p * p;
    let mut out = vec![0.0; c * f * h * w];
    for ch in 0..c {
        for fi in 0..f {
            for y in 0..h {
                for x in 0..w {
                    let token = ((fi / pt) * th + y / p) * tw + x / p;
                    let j = ((ch * pt + fi % pt) * p + y % p) * p + x % p;
                    out[((ch * f + fi) * h + y) * w + x] = tokens[token * feat + j];
                }
            }
        }
    }
    out
}

/// Standard normal noise of `n` values from `seed` (Philox, the same values
/// as the GPU's `rng` kernel and the browser).
pub fn noise(seed: u64, stream: u32, n: usize) -> Vec<f32> {
    reference_normal(Stream::new(seed, stream), n, 0.0, 1.0)
}

/// `(x - mean) * scaling / std` per channel of `[C, ...]`.
pub fn normalize(x: &mut [f32], mean: &[f32], std: &[f32], scaling: f32) {
    let per = x.len() / mean.len().max(1);
    for (c, chunk) in x.chunks_mut(per.max(1)).enumerate() {
        for v in chunk {
            *v = (*v - mean[c]) * scaling / std[c];
        }
    }
}

/// `x * std / scaling + mean` per channel of `[C, ...]`.
pub fn denormalize(x: &mut [f32], mean: &[f32], std: &[f32], scaling: f32) {
    let per = x.len() / mean.len().max(1);
    for (c, chunk) in x.chunks_mut(per.max(1)).enumerate() {
        for v in chunk {
            *v = *v * std[c] / scaling + mean[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_orders_tokens_like_diffusers_and_unpack_inverts_it() {
        // C=2, F=2, H=2, W=4 with patch 1: token (f, y, x) holds both channels.
        let dims = [2, 2, 4];
        let x: Vec<f32> = (0..2 * 16).map(|v| v as f32).collect();
        let t = pack(&x, 2, dims, 1, 1);
        // token 5 = f0, y1, x1: channel 0 at 0*16 + 5, channel 1 at 16 + 5.
        assert_eq!(&t[10..12], &[5.0, 21.0]);
        assert_eq!(unpack(&t, 2, dims, 1, 1), x);
        // patch 2 spatially: token 1 = (f0, y0, x2..4); feature (c, py, px).
        let t2 = pack(&x, 2, dims, 1, 2);
        assert_eq!(&t2[8..16], &[2.0, 3.0, 6.0, 7.0, 18.0, 19.0, 22.0, 23.0]);
        assert_eq!(unpack(&t2, 2, dims, 1, 2), x);
    }

    #[test]
    fn normalisation_round_trips() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        let (m, s) = ([0.5, -1.0], [2.0, 0.5]);
        normalize(&mut x, &m, &s, 1.5);
        assert_eq!(x[0], (1.0 - 0.5) * 1.5 / 2.0);
        denormalize(&mut x, &m, &s, 1.5);
        for (a, b) in x.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
