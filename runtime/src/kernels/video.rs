//! Frames out of the model: decoded frames `[3, F, H, W]` in [-1, 1] (what
//! the LTX VAE outputs) to RGBA8 `[F, H, W]` (one u32 per pixel, R in the
//! low byte, alpha 255: what video encoders and the browser's `VideoFrame`
//! take) or to f32 `[F, H, W, 3]` in [0, 1] (what `--frames-out` saves); and
//! a live preview of the latents through a caller-supplied 3 x C matrix.
//!
//! The byte of a value `x` is `round_half_even(clamp((x + 1) / 2, 0, 1) * 255)`
//! in f32, as diffusers' `VideoProcessor.postprocess_video` computes it, and
//! the GPU produces the same bytes as [`to_byte`] (see `shaders/video.wgsl`).

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, Rng};
use super::{groups_1d, precision_of, round_to};
use crate::gpu::{Binding, DType, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

/// Mirrors `Params` in `shaders/video.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub plane: u32,
    pub channels: u32,
    pub c_stride: u32,
    pub p_stride: u32,
    pub base: u32,
    pub height: u32,
    pub width: u32,
    pub factor: u32,
    pub _pad: [u32; 3],
}

const WG: u32 = 256;

/// `[-1, 1]` to `[0, 1]`, clamped.
pub fn to_unit(x: f32) -> f32 {
    ((x + 1.0) * 0.5).clamp(0.0, 1.0)
}

/// `[-1, 1]` to a byte, exactly as the kernels do it.
pub fn to_byte(x: f32) -> u8 {
    (to_unit(x) * 255.0).round_ties_even() as u8
}

pub fn pack_rgba(r: f32, g: f32, b: f32) -> u32 {
    u32::from_le_bytes([to_byte(r), to_byte(g), to_byte(b), 255])
}

fn frame_dims(op: &'static str, frames: &Tensor) -> Result<usize, GpuError> {
    match frames.shape.as_slice() {
        [3, f, h, w] => Ok(f * h * w),
        s => Err(GpuError::shape(
            op,
            format!("frames must be [3, F, H, W], not {s:?}"),
        )),
    }
}

fn frames_out(
    op: &'static str,
    frames: &Tensor,
    out: &Tensor,
    dtype: DType,
    per_pixel: usize,
) -> Result<Params, GpuError> {
    precision_of(op, &[frames])?;
    let pixels = frame_dims(op, frames)?;
    if out.dtype != dtype || out.numel() != pixels * per_pixel {
        return Err(GpuError::shape(
            op,
            format!(
                "out must be {dtype:?} with {} elements for frames {:?}, not {out:?}",
                pixels * per_pixel,
                frames.shape
            ),
        ));
    }
    Ok(Params {
        n: pixels as u32,
        plane: pixels as u32,
        ..Params::default()
    })
}

/// Frames `[3, F, H, W]` (F32/F16) to RGBA8 `out` (U32, `F * H * W` words).
pub fn encode_rgba8(step: &mut Step, frames: &Tensor, out: &Tensor) -> Result<(), GpuError> {
    let op = "video.frames_rgba8";
    let params = frames_out(op, frames, out, DType::U32, 1)?;
    let key = PipelineKey::new(Kernel::Video, "frames_rgba8").flags(frame_flags(frames)?);
    let bindings = [Binding::read(frames), Binding::write(out)];
    step.dispatch(&key, &params, &bindings, groups_1d(params.n, WG))
}

/// Frames `[3, F, H, W]` (F32/F16) to `out` F32 `[F, H, W, 3]` in [0, 1].
pub fn encode_rgb_f32(step: &mut Step, frames: &Tensor, out: &Tensor) -> Result<(), GpuError> {
    let op = "video.frames_rgb_f32";
    let params = frames_out(op, frames, out, DType::F32, 3)?;
    let key = PipelineKey::new(Kernel::Video, "frames_rgb_f32").flags(frame_flags(frames)?);
    let bindings = [Binding::read(frames), Binding::write(out)];
    step.dispatch(&key, &params, &bindings, groups_1d(params.n, WG))
}

fn frame_flags(t: &Tensor) -> Result<&'static [&'static str], GpuError> {
    Ok(precision_of("video", &[t])?.flags())
}

/// How the latents handed to [`encode_preview`] are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatentLayout {
    /// `[C, F, H, W]`, the VAE's layout; sizes come from the tensor's shape.
    ChannelsFirst,
    /// `[T, C]` tokens as the transformer sees them (patch size 1), the
    /// video's `F * H * W` tokens after `skip` leading ones (conditioning
    /// tokens that `LTXConditionPipeline` prepends).
    Tokens {
        frames: usize,
        height: usize,
        width: usize,
        skip: usize,
    },
}

/// The preview's colour map: `rgb = proj · latent + bias`, then the frame byte
/// rule, each latent pixel drawn as a `factor x factor` square.
#[derive(Clone, Copy, Debug)]
pub struct Preview<'a> {
    /// F32 `[3, C]`.
    pub proj: &'a Tensor,
    /// F32 `[3]`.
    pub bias: &'a Tensor,
    pub factor: usize,
}

/// Latents to RGBA8 `out` (U32 `[F, H * factor, W * factor]`).
pub fn encode_preview(
    step: &mut Step,
    latent: &Tensor,
    layout: LatentLayout,
    preview: Preview,
    out: &Tensor,
) -> Result<(), GpuError> {
    let op = "video.latent_preview";
    let precision = precision_of(op, &[latent])?;
    let (c, f, h, w, c_stride, p_stride, base) = match (layout, latent.shape.as_slice()) {
        (LatentLayout::ChannelsFirst, &[c, f, h, w]) => (c, f, h, w, f * h * w, 1, 0),
        (
            LatentLayout::Tokens {
                frames,
                height,
                width,
                skip,
            },
            &[t, c],
        ) if t >= skip + frames * height * width => (c, frames, height, width, 1, c, skip * c),
        (layout, shape) => {
            return Err(GpuError::shape(
                op,
                format!("latent {shape:?} does not hold {layout:?}"),
            ));
        }
    };
    let s = preview.factor;
    let pixels = f * h * s * w * s;
    if s == 0 || out.dtype != DType::U32 || out.numel() != pixels {
        return Err(GpuError::shape(
            op,
            format!("out must be U32 with {pixels} words (factor {s}), not {out:?}"),
        ));
    }
    let (proj, bias) = (preview.proj, preview.bias);
    if proj.dtype != DType::F32
        || proj.numel() != 3 * c
        || bias.dtype != DType::F32
        || bias.numel() != 3
    {
        return Err(GpuError::shape(
            op,
            format!("proj must be F32 [3, {c}] and bias F32 [3], not {proj:?}, {bias:?}"),
        ));
    }
    let params = Params {
        n: pixels as u32,
        plane: 0,
        channels: c as u32,
        c_stride: c_stride as u32,
        p_stride: p_stride as u32,
        base: base as u32,
        height: h as u32,
        width: w as u32,
        factor: s as u32,
        _pad: [0; 3],
    };
    let key = PipelineKey::new(Kernel::Video, "latent_preview").flags(precision.flags());
    let bindings = [
        Binding::read(latent),
        Binding::read(proj),
        Binding::read(bias),
        Binding::write(out),
    ];
    step.dispatch(&key, &params, &bindings, groups_1d(pixels as u32, WG))
}

/// Frames `[3, F, H, W]` to RGBA8 words.
pub fn reference_rgba8(frames: &[f32]) -> Vec<u32> {
    let plane = frames.len() / 3;
    (0..plane)
        .map(|q| pack_rgba(frames[q], frames[plane + q], frames[2 * plane + q]))
        .collect()
}

/// Frames `[3, F, H, W]` to `[F, H, W, 3]` in [0, 1].
pub fn reference_rgb_f32(frames: &[f32]) -> Vec<f32> {
    let plane = frames.len() / 3;
    (0..plane)
        .flat_map(|q| [0, 1, 2].map(|c| to_unit(frames[c * plane + q])))
        .collect()
}

/// The preview of latents `[C, F, H, W]` (channels first), in f32.
pub fn reference_preview(
    latent: &[f32],
    [c, f, h, w]: [usize; 4],
    proj: &[f32],
    bias: &[f32],
    s: usize,
) -> Vec<u32> {
    let plane = f * h * w;
    let mut out = Vec::with_capacity(plane * s * s);
    for fi in 0..f {
        for oy in 0..h * s {
            for ox in 0..w * s {
                let q = (fi * h + oy / s) * w + ox / s;
                let rgb = [0, 1, 2].map(|k| {
                    (0..c).fold(bias[k], |acc, ci| {
                        acc + proj[k * c + ci] * latent[ci * plane + q]
                    })
                });
                out.push(pack_rgba(rgb[0], rgb[1], rgb[2]));
            }
        }
    }
    out
}

/// Values whose byte is decided by a tie (t * 255 = k + 1/2 exactly in f32)
/// or lies one ulp either side of one, plus the ends of the range.
fn rounding_edges() -> Vec<f32> {
    let mut v = vec![-1.0, 1.0, 0.0, -1.5, 1.5];
    for k in 0..255 {
        let x = 2.0 * ((k as f32 + 0.5) / 255.0) - 1.0;
        v.extend([x.next_down(), x, x.next_up()]);
    }
    v
}

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// RGBA8 and f32 frames bit-exact against the references (including every
/// rounding tie), and the preview in both layouts with upsampling.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let mut rng = Rng::new(23);
    let mut checks = Vec::new();
    let dtype = precision.dtype();
    for [f, h, w] in [[1, 1, 1], [1, 7, 9], [3, 17, 33], [2, 61, 64]] {
        let n = 3 * f * h * w;
        let mut x = rng.uniform_vec(n, 1.3);
        let edges = rounding_edges();
        let k = edges.len().min(n);
        x[..k].copy_from_slice(&edges[..k]);
        let x = round_to(&x, precision);
        let frames = gpu.upload(&x, &[3, f, h, w], dtype)?;
        let rgba = gpu.empty(&[f, h, w], DType::U32)?;
        let rgb = gpu.empty(&[f, h, w, 3], DType::F32)?;
        let mut step = gpu.step("video check");
        encode_rgba8(&mut step, &frames, &rgba)?;
        encode_rgb_f32(&mut step, &frames, &rgb)?;
        step.submit()?;
        let label = format!("F={f} H={h} W={w} {precision:?}");
        checks.push(Check::exact(
            format!("rgba8 bytes {label}"),
            &bytes(&gpu.read_u32(&rgba).await?),
            &bytes(&reference_rgba8(&x)),
        ));
        let got: Vec<u32> = gpu.read(&rgb).await?.iter().map(|v| v.to_bits()).collect();
        let want: Vec<u32> = reference_rgb_f32(&x).iter().map(|v| v.to_bits()).collect();
        checks.push(Check::exact(format!("rgb f32 bits {label}"), &got, &want));
    }
    let previews: &[([usize; 4], usize, bool)] = &[
        ([1, 1, 1, 1], 1, false),
        ([13, 1, 3, 5], 3, false),
        ([128, 2, 7, 9], 1, true),
        ([128, 3, 5, 4], 4, true),
    ];
    for &(dims @ [c, f, h, w], s, tokens) in previews {
        let plane = f * h * w;
        let latent = round_to(&rng.normal_vec(c * plane, 1.0), precision);
        let proj = rng.normal_vec(3 * c, 0.6 / (c as f32).sqrt());
        let bias = rng.uniform_vec(3, 0.1);
        let skip = 2;
        let (tensor, layout) = if tokens {
            // The same latents as tokens [skip + F*H*W, C], after `skip` others.
            let mut t = rng.normal_vec(skip * c, 1.0);
            t.extend(
                (0..plane)
                    .flat_map(|q| (0..c).map(move |ci| (q, ci)))
                    .map(|(q, ci)| latent[ci * plane + q]),
            );
            let layout = LatentLayout::Tokens {
                frames: f,
                height: h,
                width: w,
                skip,
            };
            (gpu.upload(&t, &[skip + plane, c], dtype)?, layout)
        } else {
            (
                gpu.upload(&latent, &dims, dtype)?,
                LatentLayout::ChannelsFirst,
            )
        };
        let tp = gpu.upload(&proj, &[3, c], DType::F32)?;
        let tb = gpu.upload(&bias, &[3], DType::F32)?;
        let out = gpu.empty(&[f, h * s, w * s], DType::U32)?;
        let mut step = gpu.step("preview check");
        let preview = Preview {
            proj: &tp,
            bias: &tb,
            factor: s,
        };
        encode_preview(&mut step, &tensor, layout, preview, &out)?;
        step.submit()?;
        let got = bytes(&gpu.read_u32(&out).await?);
        let want = bytes(&reference_preview(&latent, dims, &proj, &bias, s));
        let label = format!(
            "preview C={c} F={f} H={h} W={w} x{s}{} {precision:?}",
            if tokens { " tokens" } else { "" }
        );
        // The 3 x C dot product may be fused differently on the GPU: a byte
        // may land one step off where the sum sits on a rounding edge.
        let worst = got
            .iter()
            .zip(&want)
            .map(|(&g, &w)| g.abs_diff(w))
            .max()
            .unwrap_or(0);
        let worst = if got.len() == want.len() {
            worst as f64
        } else {
            f64::INFINITY
        };
        checks.push(Check::abs(format!("{label} max byte diff"), worst, 1.0));
        checks.push(Check {
            bound: 1e-2,
            ..Check::exact(format!("{label} bytes differing"), &got, &want)
        });
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_diffusers_rounding() {
        assert_eq!(to_byte(-1.0), 0);
        assert_eq!(to_byte(1.0), 255);
        assert_eq!(to_byte(-7.0), 0);
        assert_eq!(to_byte(f32::INFINITY), 255);
        assert_eq!(to_byte(0.0), 128); // 127.5 rounds to even
        assert_eq!(pack_rgba(1.0, -1.0, 0.0).to_le_bytes(), [255, 0, 128, 255]);
    }

    #[test]
    fn the_edge_set_holds_real_ties() {
        let ties = rounding_edges()
            .iter()
            .filter(|&&x| {
                let v = to_unit(x) * 255.0;
                v.fract() == 0.5
            })
            .count();
        assert!(ties > 50, "only {ties} ties");
    }
}
