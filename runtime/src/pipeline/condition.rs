//! Conditioning as diffusers' `LTXConditionPipeline` does it, on the CPU
//! side: pictures or clips pinned at frames of the video (image-to-video,
//! keyframes, extension) and video-to-video. Everything reaches the
//! transformer as a per-token conditioning strength: a token at strength
//! `s` gets the timestep `min(t, (1 - s) * 1000)` and is left alone by the
//! sampler until the schedule comes down to it.
//!
//! One difference from diffusers, on purpose: a conditioning latent is the
//! VAE posterior's mode, not a sample from it, so the same inputs give the
//! same clip on every runtime (the trained posterior's spread is small).

use crate::kernels::rope::grid::LtxGrid;

use super::PipelineError;
use super::latents::{self, pack};

/// RNG streams of conditioning: the noise a later-frame condition is mixed
/// with (one stream per condition), and the per-step noise on hard
/// conditioning tokens (one stream per step).
pub const CONDITION_NOISE_STREAM: u32 = 16;
pub const HARD_NOISE_STREAM: u32 = 1024;

/// Frames of pixels, `[F, H, W, 3]` in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Frames {
    pub data: Vec<f32>,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl Frames {
    pub fn new(
        data: Vec<f32>,
        frames: usize,
        height: usize,
        width: usize,
    ) -> Result<Frames, PipelineError> {
        if data.len() != frames * height * width * 3 || frames == 0 {
            return Err(PipelineError::Option(format!(
                "{} pixel values are not {frames} frames of {width}x{height} RGB",
                data.len()
            )));
        }
        Ok(Frames {
            data,
            frames,
            height,
            width,
        })
    }

    /// 8-bit RGB (PNG or JPEG pixels, `[F, H, W, 3]`) as diffusers reads
    /// them: `v / 255`.
    pub fn from_rgb8(
        rgb: &[u8],
        frames: usize,
        height: usize,
        width: usize,
    ) -> Result<Frames, PipelineError> {
        Frames::new(
            rgb.iter().map(|&v| v as f32 / 255.0).collect(),
            frames,
            height,
            width,
        )
    }

    /// The first `n` frames.
    pub fn first(&self, n: usize) -> Frames {
        let n = n.min(self.frames);
        Frames {
            data: self.data[..n * self.height * self.width * 3].to_vec(),
            frames: n,
            height: self.height,
            width: self.width,
        }
    }

    /// The VAE's input `[3, F, H, W]` in [-1, 1] (`2x - 1`, as diffusers'
    /// image processor normalises).
    pub fn vae_input(&self) -> Vec<f32> {
        let plane = self.frames * self.height * self.width;
        let mut out = vec![0.0; 3 * plane];
        for (i, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = 2.0 * px[c] - 1.0;
            }
        }
        out
    }
}

/// How a picture of another aspect meets the video's size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fit {
    /// Scale to cover the frame and cut the overflow, centred.
    #[default]
    Crop,
    /// Scale to fit inside the frame and fill the bands with the
    /// picture's edge colour average.
    Pad,
}

impl Fit {
    pub fn parse(s: &str) -> Result<Fit, String> {
        match s {
            "crop" => Ok(Fit::Crop),
            "pad" => Ok(Fit::Pad),
            other => Err(format!("fit is crop or pad, not {other:?}")),
        }
    }
}

impl Frames {
    /// The frames resized to `width x height`, centre-cropped or padded
    /// (antialiased: a triangle filter as wide as the scale when shrinking).
    pub fn fit(&self, width: usize, height: usize, fit: Fit) -> Frames {
        if (self.width, self.height) == (width, height) {
            return self.clone();
        }
        let (sw, sh) = (self.width as f64, self.height as f64);
        let scale = match fit {
            Fit::Crop => (width as f64 / sw).max(height as f64 / sh),
            Fit::Pad => (width as f64 / sw).min(height as f64 / sh),
        };
        // The scaled picture's size and its offset in the frame.
        let (iw, ih) = ((sw * scale).round() as usize, (sh * scale).round() as usize);
        let (iw, ih) = (iw.max(1), ih.max(1));
        let (ox, oy) = (
            (width as isize - iw as isize) / 2,
            (height as isize - ih as isize) / 2,
        );
        let mut data = Vec::with_capacity(self.frames * width * height * 3);
        for f in 0..self.frames {
            let src =
                &self.data[f * self.width * self.height * 3..][..self.width * self.height * 3];
            let scaled = resize(src, self.width, self.height, iw, ih);
            let fill = edge_mean(src, self.width, self.height);
            for y in 0..height as isize {
                for x in 0..width as isize {
                    let (u, v) = (x - ox, y - oy);
                    if u >= 0 && v >= 0 && (u as usize) < iw && (v as usize) < ih {
                        let i = (v as usize * iw + u as usize) * 3;
                        data.extend_from_slice(&scaled[i..i + 3]);
                    } else {
                        data.extend_from_slice(&fill);
                    }
                }
            }
        }
        Frames {
            data,
            frames: self.frames,
            height,
            width,
        }
    }
}

fn edge_mean(rgb: &[f32], w: usize, h: usize) -> [f32; 3] {
    let mut sum = [0.0f64; 3];
    let mut n = 0.0f64;
    for y in 0..h {
        for x in 0..w {
            if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
                for c in 0..3 {
                    sum[c] += rgb[(y * w + x) * 3 + c] as f64;
                }
                n += 1.0;
            }
        }
    }
    sum.map(|v| (v / n.max(1.0)) as f32)
}

/// Separable resize of RGB `[H, W, 3]`.
fn resize(rgb: &[f32], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
    let rows = resize_axis(rgb, w, h, nw, true);
    resize_axis(&rows, nw, h, nh, false)
}

/// Resizes along x (`horizontal`) or y with a triangle filter.
fn resize_axis(src: &[f32], w: usize, h: usize, n: usize, horizontal: bool) -> Vec<f32> {
    let len = if horizontal { w } else { h };
    let scale = n as f64 / len as f64;
    let support = if scale < 1.0 { 1.0 / scale } else { 1.0 };
    // Taps per output position: (first source index, weights).
    let taps: Vec<(usize, Vec<f32>)> = (0..n)
        .map(|i| {
            let centre = (i as f64 + 0.5) / scale - 0.5;
            let lo = ((centre - support).floor() as isize).max(0) as usize;
            let hi = ((centre + support).ceil() as isize)
                .min(len as isize - 1)
                .max(0) as usize;
            let mut ws: Vec<f64> = (lo..=hi)
                .map(|j| (1.0 - ((j as f64 - centre) / support).abs()).max(0.0))
                .collect();
            let total: f64 = ws.iter().sum();
            if total <= 0.0 {
                ws = vec![0.0; hi - lo + 1];
                let nearest = (centre.round().clamp(0.0, (len - 1) as f64) as usize).clamp(lo, hi);
                ws[nearest - lo] = 1.0;
            } else {
                ws.iter_mut().for_each(|v| *v /= total);
            }
            (lo, ws.into_iter().map(|v| v as f32).collect())
        })
        .collect();
    let (ow, oh) = if horizontal { (n, h) } else { (w, n) };
    let mut out = vec![0.0; ow * oh * 3];
    for y in 0..oh {
        for x in 0..ow {
            let (lo, ws) = if horizontal { &taps[x] } else { &taps[y] };
            let mut acc = [0.0f32; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let (sx, sy) = if horizontal {
                    (*lo + k, y)
                } else {
                    (x, *lo + k)
                };
                let p = (sy * w + sx) * 3;
                for c in 0..3 {
                    acc[c] += wt * src[p + c];
                }
            }
            out[(y * ow + x) * 3..][..3].copy_from_slice(&acc);
        }
    }
    out
}

/// A picture (one frame) or a clip pinned at `frame_index` of the video.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub frames: Frames,
    pub frame_index: usize,
    /// 1 pins it exactly; lower values let the model move away from it.
    pub strength: f32,
}

/// Video-to-video: the clip's latents are noised to the schedule's level at
/// `denoise_strength` (the last `steps x strength` steps run), SDEdit-style.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInput {
    pub frames: Frames,
    pub denoise_strength: f64,
}

/// How many frames of a clip of `available` frames at `frame_index` are
/// used: what fits in `num_frames`, cut to k x temporal + 1
/// (`trim_conditioning_sequence`).
pub fn trimmed_frames(
    available: usize,
    frame_index: usize,
    num_frames: usize,
    temporal: usize,
) -> usize {
    let n = available.min(num_frames.saturating_sub(frame_index));
    if n == 0 {
        0
    } else {
        (n - 1) / temporal * temporal + 1
    }
}

/// `torch.lerp(a, b, w)` element for element, with torch's two formulas
/// (so that `w = 1` gives `b` exactly).
pub fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

/// One condition's latents, normalised: `[C, F', H', W']`.
pub struct EncodedCondition {
    pub latents: Vec<f32>,
    pub latent_frames: usize,
    /// Pixel frames it came from (1 for a picture).
    pub pixel_frames: usize,
    pub frame_index: usize,
    pub strength: f32,
}

/// The packed tokens a run starts from: the conditioning tokens appended by
/// later-frame conditions first, then the video's own.
pub struct Start {
    pub tokens: Vec<f32>,
    /// Per-token conditioning strength (0 for free tokens).
    pub mask: Vec<f32>,
    /// Pixel-space RoPE coordinates of each token.
    pub coords: Vec<[i64; 3]>,
    /// How many tokens precede the video's.
    pub extra: usize,
}

/// The video latent's layout.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub channels: usize,
    pub dims: [usize; 3],
    pub patch_t: usize,
    pub patch: usize,
}

impl Layout {
    fn frame_len(&self) -> usize {
        self.dims[1] * self.dims[2]
    }

    fn feat(&self) -> usize {
        self.channels * self.patch_t * self.patch * self.patch
    }
}

/// Number of latent frames diffusers keeps as appended tokens for a clip
/// conditioned after frame 0 (`num_prefix_latent_frames`).
pub const PREFIX_LATENT_FRAMES: usize = 2;

/// `prepare_latents` with conditions: `video` is the unpacked starting
/// latent `[C, F', H', W']` (noise, or the noised clip for video-to-video).
pub fn assemble(
    mut video: Vec<f32>,
    layout: Layout,
    grid: &LtxGrid,
    temporal: usize,
    conditions: &[EncodedCondition],
    seed: u64,
) -> Result<Start, PipelineError> {
    let Layout { channels, dims, .. } = layout;
    let [lf, lh, lw] = dims;
    let plane = layout.frame_len();
    let mut frame_mask = vec![0.0f32; lf];
    let mut extra_tokens = Vec::new();
    let mut extra_mask = Vec::new();
    let mut extra_coords = Vec::new();
    for (i, c) in conditions.iter().enumerate() {
        let nf = c.latent_frames;
        let at = |x: &[f32], ch: usize, f: usize, frames: usize| {
            x[(ch * frames + f) * plane..(ch * frames + f + 1) * plane].to_vec()
        };
        if c.frame_index == 0 {
            if nf > lf {
                return Err(PipelineError::Option(format!(
                    "a condition of {nf} latent frames is longer than the video's {lf}"
                )));
            }
            for ch in 0..channels {
                for f in 0..nf {
                    let dst = (ch * lf + f) * plane;
                    let src = (ch * nf + f) * plane;
                    for k in 0..plane {
                        video[dst + k] = lerp(video[dst + k], c.latents[src + k], c.strength);
                    }
                }
            }
            frame_mask[..nf].fill(c.strength);
            continue;
        }
        let mut kept = nf;
        if c.pixel_frames > 1 {
            if nf < PREFIX_LATENT_FRAMES {
                return Err(PipelineError::Option(format!(
                    "a clip conditioned at frame {} needs at least {} frames ({} latent frames)",
                    c.frame_index,
                    temporal + 1,
                    PREFIX_LATENT_FRAMES
                )));
            }
            if nf > PREFIX_LATENT_FRAMES {
                let start = c.frame_index / temporal + PREFIX_LATENT_FRAMES;
                let end = start + nf - PREFIX_LATENT_FRAMES;
                if end > lf {
                    return Err(PipelineError::Option(format!(
                        "a clip of {} frames at frame {} runs past the video's end",
                        c.pixel_frames, c.frame_index
                    )));
                }
                for ch in 0..channels {
                    for (j, f) in (start..end).enumerate() {
                        let dst = (ch * lf + f) * plane;
                        let src = (ch * nf + PREFIX_LATENT_FRAMES + j) * plane;
                        for k in 0..plane {
                            video[dst + k] = lerp(video[dst + k], c.latents[src + k], c.strength);
                        }
                    }
                }
                frame_mask[start..end].fill(c.strength);
                kept = PREFIX_LATENT_FRAMES;
            }
        }
        // The prefix becomes tokens of its own, mixed with fresh noise.
        let mut prefix: Vec<f32> = (0..channels)
            .flat_map(|ch| (0..kept).flat_map(move |f| at(&c.latents, ch, f, nf)))
            .collect();
        let noise = latents::noise(seed, CONDITION_NOISE_STREAM + i as u32, prefix.len());
        for (v, n) in prefix.iter_mut().zip(noise) {
            *v = lerp(n, *v, c.strength);
        }
        let packed = pack(
            &prefix,
            channels,
            [kept, lh, lw],
            layout.patch_t,
            layout.patch,
        );
        let n = packed.len() / layout.feat();
        extra_tokens.extend(packed);
        extra_mask.extend(std::iter::repeat_n(c.strength, n));
        extra_coords.extend(grid.pixel_coords(kept, lh, lw, c.frame_index as i64));
    }
    let extra = extra_mask.len();
    let packed = pack(&video, channels, dims, layout.patch_t, layout.patch);
    let tokens_per_frame = (lh / layout.patch) * (lw / layout.patch);
    let video_tokens = packed.len() / layout.feat();
    let mut mask = extra_mask;
    // `condition_latent_frames_mask.gather(1, video_ids[:, 0])`: a token's
    // mask is that of the first latent frame of its patch.
    mask.extend((0..video_tokens).map(|t| frame_mask[(t / tokens_per_frame) * layout.patch_t]));
    let mut tokens = extra_tokens;
    tokens.extend(packed);
    let mut coords = extra_coords;
    coords.extend(grid.pixel_coords(lf, lh, lw, 0));
    Ok(Start {
        tokens,
        mask,
        coords,
        extra,
    })
}

/// `min(t, (1 - mask) * 1000)` per token, in f32 as torch computes it.
pub fn token_timesteps(mask: &[f32], t: f32) -> Vec<f32> {
    mask.iter().map(|&m| t.min((1.0 - m) * 1000.0)).collect()
}

/// Maximal runs `(first token, count)` of hard conditioning tokens (mask
/// 1), the ones diffusers re-noises each step (`image_cond_noise_scale`).
pub fn hard_runs(mask: &[f32]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &m) in mask.iter().enumerate() {
        if m > 1.0 - 1e-6 {
            match runs.last_mut() {
                Some((s, n)) if *s + *n == i => *n += 1,
                _ => runs.push((i, 1)),
            }
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRID: LtxGrid = LtxGrid::LTX_VIDEO;

    fn layout(lf: usize) -> Layout {
        Layout {
            channels: 2,
            dims: [lf, 1, 2],
            patch_t: 1,
            patch: 1,
        }
    }

    #[test]
    fn fitting_crops_or_pads_to_the_size() {
        // 4x2: left half black, right half white.
        let mut px = Vec::new();
        for _y in 0..2 {
            for x in 0..4 {
                px.extend_from_slice(&[if x < 2 { 0.0 } else { 1.0 }; 3]);
            }
        }
        let f = Frames::new(px, 1, 2, 4).unwrap();
        // Crop to 2x2: the centre columns, one black and one white.
        let c = f.fit(2, 2, Fit::Crop);
        assert_eq!((c.width, c.height), (2, 2));
        assert!(c.data[0] < 0.5 && c.data[3] > 0.5, "{:?}", c.data);
        // Pad to 4x4: bands above and below in the edge mean (0.5).
        let p = f.fit(4, 4, Fit::Pad);
        assert_eq!(p.data.len(), 4 * 4 * 3);
        assert!((p.data[0] - 0.5).abs() < 1e-6);
        assert!(p.data[4 * 3] < 0.01 && p.data[(4 + 3) * 3] > 0.99);
        // Shrinking averages: 4x2 to 1x1 is mid grey.
        let g = f.fit(1, 1, Fit::Pad);
        assert!((g.data[0] - 0.5).abs() < 0.05, "{:?}", g.data);
        // The same size is untouched.
        assert_eq!(f.fit(4, 2, Fit::Crop), f);
    }

    #[test]
    fn lerp_is_torchs() {
        assert_eq!(lerp(0.3, 0.7, 1.0), 0.7);
        assert_eq!(lerp(0.3, 0.7, 0.0), 0.3);
        assert!((lerp(0.0, 1.0, 0.25) - 0.25).abs() < 1e-7);
    }

    #[test]
    fn trimming_follows_trim_conditioning_sequence() {
        assert_eq!(trimmed_frames(1, 0, 25, 8), 1);
        assert_eq!(trimmed_frames(30, 0, 25, 8), 25);
        assert_eq!(trimmed_frames(30, 8, 25, 8), 17);
        assert_eq!(trimmed_frames(12, 0, 25, 8), 9);
        assert_eq!(trimmed_frames(5, 30, 25, 8), 0);
    }

    #[test]
    fn a_first_frame_condition_replaces_the_first_latent_frame() {
        let video = vec![0.0; 2 * 3 * 2];
        let cond = EncodedCondition {
            latents: vec![1.0, 2.0, 3.0, 4.0],
            latent_frames: 1,
            pixel_frames: 1,
            frame_index: 0,
            strength: 1.0,
        };
        let s = assemble(video, layout(3), &GRID, 8, &[cond], 0).unwrap();
        assert_eq!(s.extra, 0);
        assert_eq!(s.mask, vec![1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        // Token 0 = (f0, x0): channel 0 then 1.
        assert_eq!(&s.tokens[..4], &[1.0, 3.0, 2.0, 4.0]);
        assert!(s.tokens[4..].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn a_later_keyframe_becomes_tokens_of_its_own() {
        let video = vec![0.0; 2 * 3 * 2];
        let cond = EncodedCondition {
            latents: vec![1.0, 2.0, 3.0, 4.0],
            latent_frames: 1,
            pixel_frames: 1,
            frame_index: 16,
            strength: 1.0,
        };
        let s = assemble(video, layout(3), &GRID, 8, &[cond], 0).unwrap();
        assert_eq!(s.extra, 2);
        assert_eq!(s.tokens.len(), (2 + 6) * 2);
        assert_eq!(&s.tokens[..4], &[1.0, 3.0, 2.0, 4.0]);
        assert_eq!(&s.mask[..3], &[1.0, 1.0, 0.0]);
        // Its own time coordinate: frame 16; the video's start at 0, 1, 9.
        assert_eq!(s.coords[0], [16, 0, 0]);
        assert_eq!(s.coords[2], [0, 0, 0]);
        assert_eq!(s.coords[4], [1, 0, 0]);
        assert_eq!(s.coords[6], [9, 0, 0]);
        assert_eq!(hard_runs(&s.mask), vec![(0, 2)]);
    }

    #[test]
    fn per_token_timesteps_cap_conditioned_tokens() {
        let ts = token_timesteps(&[1.0, 0.6, 0.0], 900.0);
        assert_eq!(ts[0], 0.0);
        assert!((ts[1] - 400.0).abs() < 1e-3);
        assert_eq!(ts[2], 900.0);
    }
}
