//! The RoPE coordinates of LTX-Video tokens, as diffusers'
//! `LTXConditionPipeline` makes them: `_prepare_video_ids` (latent indices
//! in `_pack_latents` token order, stepping by the patch sizes),
//! `_scale_video_ids` (times the VAE compression, the causal first frame
//! shifted to 0, plus the conditioning clip's `frame_index`), then
//! `video_coords[:, 0] * (1 / frame_rate)` in the pipeline and the division
//! by the base sizes in `LTXVideoRotaryPosEmbed.forward`.
//!
//! Conditioning tokens bring their own coordinates (another `frame_index`),
//! which is why the rope kernel takes coordinates as a buffer.

/// The scale factors between latent indices and RoPE coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LtxGrid {
    /// Pixel frames per latent frame (the VAE's temporal compression).
    pub temporal_compression: i64,
    /// Pixels per latent row or column (the VAE's spatial compression).
    pub spatial_compression: i64,
    /// The transformer's patch sizes.
    pub patch_size_t: usize,
    pub patch_size: usize,
    /// `LTXVideoRotaryPosEmbed`'s base sizes.
    pub base_num_frames: f32,
    pub base_height: f32,
    pub base_width: f32,
}

impl LtxGrid {
    /// LTX-Video (all released checkpoints): VAE compression 8 x 32 x 32
    /// (`AutoencoderKLLTXVideo` temporal/spatial_compression_ratio), patch
    /// 1 x 1 x 1 (transformer config), base 20 frames and 2048 x 2048 pixels
    /// (`LTXVideoTransformer3DModel.__init__`).
    pub const LTX_VIDEO: LtxGrid = LtxGrid {
        temporal_compression: 8,
        spatial_compression: 32,
        patch_size_t: 1,
        patch_size: 1,
        base_num_frames: 20.0,
        base_height: 2048.0,
        base_width: 2048.0,
    };

    /// Pixel-space (frame, y, x) of each token of a latent of
    /// `frames x height x width` that starts at pixel frame `frame_index`
    /// (0 for the generated video), in token order (frame-major).
    pub fn pixel_coords(
        &self,
        frames: usize,
        height: usize,
        width: usize,
        frame_index: i64,
    ) -> Vec<[i64; 3]> {
        let (st, ss) = (self.temporal_compression, self.spatial_compression);
        let mut out = Vec::new();
        for f in (0..frames).step_by(self.patch_size_t.max(1)) {
            // The first latent frame holds one pixel frame (causal VAE), the
            // others st each: latent frame f ends at pixel frame f * st.
            let t = (f as i64 * st + 1 - st).max(0) + frame_index;
            for y in (0..height).step_by(self.patch_size.max(1)) {
                for x in (0..width).step_by(self.patch_size.max(1)) {
                    out.push([t, y as i64 * ss, x as i64 * ss]);
                }
            }
        }
        out
    }

    /// The fractional coordinates `[T, 3]` the rope tables take: frame in
    /// seconds over `base_num_frames`, y and x over the base sizes, with the
    /// same f32 operations as torch (`* f32(1 / frame_rate)`, then `/ base`).
    pub fn fractional(&self, pixel: &[[i64; 3]], frame_rate: f64) -> Vec<f32> {
        let inv_rate = (1.0 / frame_rate) as f32;
        pixel
            .iter()
            .flat_map(|&[t, y, x]| {
                [
                    (t as f32 * inv_rate) / self.base_num_frames,
                    y as f32 / self.base_height,
                    x as f32 / self.base_width,
                ]
            })
            .collect()
    }

    /// Fractional coordinates of a generated latent of `frames x height x width`.
    pub fn latent_coords(
        &self,
        frames: usize,
        height: usize,
        width: usize,
        frame_rate: f64,
    ) -> Vec<f32> {
        self.fractional(&self.pixel_coords(frames, height, width, 0), frame_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: LtxGrid = LtxGrid::LTX_VIDEO;

    #[test]
    fn pixel_coords_follow_prepare_and_scale_video_ids() {
        // A 3 x 2 x 2 latent (17 frames of 64 x 64 pixels): frames 0, 1, 9
        // ((f * 8 + 1 - 8).clamp(min=0)), rows and columns 0, 32.
        let c = G.pixel_coords(3, 2, 2, 0);
        assert_eq!(c.len(), 12);
        assert_eq!(c[0], [0, 0, 0]);
        assert_eq!(c[1], [0, 0, 32]);
        assert_eq!(c[2], [0, 32, 0]);
        assert_eq!(c[3], [0, 32, 32]);
        assert_eq!(c[4], [1, 0, 0]);
        assert_eq!(c[8], [9, 0, 0]);
        assert_eq!(c[11], [9, 32, 32]);
        // A 2-latent-frame condition clip at pixel frame 16: 16 and 17.
        let cond = G.pixel_coords(2, 1, 1, 16);
        assert_eq!(cond, vec![[16, 0, 0], [17, 0, 0]]);
        // Patch size 2: arange(0, 4, 2) on both spatial axes.
        let p2 = LtxGrid { patch_size: 2, ..G };
        assert_eq!(
            p2.pixel_coords(1, 4, 4, 0),
            vec![[0, 0, 0], [0, 0, 64], [0, 64, 0], [0, 64, 64]]
        );
    }

    #[test]
    fn fractional_coords_round_like_torch() {
        // Worked in f32 by hand from the pipeline and rope code:
        // frame 1: f32(f32(1 * f32(1/25)) / 20) = 0x3b03126e (0.0019999999, one
        // ulp under f32(0.002)); frame 9: 0x3c9374bc; frame 16: 0x3d03126e;
        // frame 17: 0x3d0b4396; 32 / 2048 = 0.015625 exactly.
        let g = G.latent_coords(3, 2, 2, 25.0);
        assert_eq!(g.len(), 36);
        assert_eq!(&g[3 * 3..3 * 4], &[0.0, 0.015625, 0.015625]);
        assert_eq!(g[3 * 4].to_bits(), 0x3b03_126e);
        assert_eq!(g[3 * 11].to_bits(), 0x3c93_74bc);
        assert_eq!(&g[3 * 11 + 1..3 * 12], &[0.015625, 0.015625]);
        let cond = G.fractional(&G.pixel_coords(2, 1, 1, 16), 25.0);
        assert_eq!(cond[0].to_bits(), 0x3d03_126e);
        assert_eq!(cond[3].to_bits(), 0x3d0b_4396);
        // Close to the real values too.
        assert!((g[3 * 4] - 0.002).abs() < 1e-9 && (cond[3] - 0.034).abs() < 1e-8);
    }
}
