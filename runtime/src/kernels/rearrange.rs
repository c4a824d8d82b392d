//! 3D depth-to-space and space-to-depth (see `shaders/rearrange.wgsl`).
//!
//! LTX packs `st x sh x sw` blocks of voxels into channels in two orders,
//! and its samplers add a frame shift and a residual channel map. Each use
//! has a named constructor here, taken from diffusers'
//! `autoencoder_kl_ltx.py`:
//!
//! | constructor | diffusers | direction | channel | frames | group |
//! |---|---|---|---|---|---|
//! | [`Rearrange::ltx_upsampler`] | `LTXVideoUpsampler3d` | depth to space | (c, t, h, w) | drop `st - 1` leading | 1 |
//! | [`Rearrange::ltx_upsampler_residual`] | its `residual` branch | depth to space | (c, t, h, w) | drop `st - 1` | repeat channels |
//! | [`Rearrange::ltx_unpatchify`] | end of `LTXVideoDecoder3d` | depth to space | (c, t, w, h) | none | 1 |
//! | [`Rearrange::ltx_patchify`] | start of `LTXVideoEncoder3d` | space to depth | (c, t, w, h) | none | 1 |
//! | [`Rearrange::ltx_downsampler`] | `LTXVideoDownsampler3d`, after its conv | space to depth | (c, t, h, w) | none | 1 |
//! | [`Rearrange::ltx_downsampler_residual`] | its residual | space to depth | (c, t, h, w) | prepend first `st - 1` | mean of groups |
//!
//! The upsampler drops its first `st - 1` output frames in every diffusers
//! version (0.9.0 and 0.9.5+ decoders alike; a no-op for `st = 1`). The
//! downsampler's main path prepends `x[:, :, :st-1]` before its conv: for
//! the strides LTX uses (`st <= 2`) that is one more replicated frame in the
//! conv's causal padding (`conv3d::TimePad::Replicate { front: kt, .. }`).

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, Rng, bound};
use super::{groups_1d, precision_of, round_to};
use crate::gpu::{Binding, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub n: u32,
    pub channels: u32,
    pub frames: u32,
    pub height: u32,
    pub width: u32,
    pub st: u32,
    pub sh: u32,
    pub sw: u32,
    pub cs_t: u32,
    pub cs_h: u32,
    pub cs_w: u32,
    pub frame_offset: u32,
    pub group: u32,
    pub spatial_frames: u32,
    pub _pad: [u32; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `[C * S, F, H, W]` to `[C, F * st, H * sh, W * sw]`.
    DepthToSpace,
    /// `[C, F * st, H * sh, W * sw]` to `[C * S, F, H, W]`.
    SpaceToDepth,
}

/// How a block's sub-position (it, ih, iw) is ordered inside its channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelOrder {
    /// channel = c * S + it * sh * sw + ih * sw + iw (the samplers).
    Thw,
    /// channel = c * S + it * sw * sh + iw * sh + ih (the patchify; w before h).
    Twh,
}

impl ChannelOrder {
    /// Channel strides of (it, ih, iw) for factors (st, sh, sw).
    pub fn strides(self, [_, sh, sw]: [usize; 3]) -> [usize; 3] {
        match self {
            ChannelOrder::Thw => [sh * sw, sw, 1],
            ChannelOrder::Twh => [sh * sw, 1, sh],
        }
    }
}

/// One rearrangement: direction, factors (st, sh, sw), channel order, frame
/// offset (dropped leading frames / prepended first frames) and `group`
/// (channel repeat for depth-to-space, channel mean for space-to-depth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rearrange {
    pub direction: Direction,
    pub factors: [usize; 3],
    pub order: ChannelOrder,
    pub frame_offset: usize,
    pub group: usize,
}

impl Rearrange {
    fn new(direction: Direction, factors: [usize; 3], order: ChannelOrder) -> Rearrange {
        Rearrange {
            direction,
            factors,
            order,
            frame_offset: 0,
            group: 1,
        }
    }

    /// `LTXVideoUpsampler3d` after its conv: depth to space, then `[:, :, st-1:]`.
    pub fn ltx_upsampler(stride: [usize; 3]) -> Rearrange {
        Rearrange {
            frame_offset: stride[0].saturating_sub(1),
            ..Rearrange::new(Direction::DepthToSpace, stride, ChannelOrder::Thw)
        }
    }

    /// The upsampler's residual: the input rearranged like the conv output,
    /// channels tiled `repeats` times (`.repeat(1, repeats, 1, 1, 1)`).
    pub fn ltx_upsampler_residual(stride: [usize; 3], repeats: usize) -> Rearrange {
        Rearrange {
            group: repeats,
            ..Rearrange::ltx_upsampler(stride)
        }
    }

    /// The decoder's final unpatchify (`patch_size_t`, `patch_size`).
    pub fn ltx_unpatchify(pt: usize, p: usize) -> Rearrange {
        Rearrange::new(Direction::DepthToSpace, [pt, p, p], ChannelOrder::Twh)
    }

    /// The encoder's patchify of the input video.
    pub fn ltx_patchify(pt: usize, p: usize) -> Rearrange {
        Rearrange::new(Direction::SpaceToDepth, [pt, p, p], ChannelOrder::Twh)
    }

    /// `LTXVideoDownsampler3d` applied to its conv's output.
    pub fn ltx_downsampler(stride: [usize; 3]) -> Rearrange {
        Rearrange::new(Direction::SpaceToDepth, stride, ChannelOrder::Thw)
    }

    /// The downsampler's residual: first `st - 1` frames prepended, space to
    /// depth, then the mean of each `group_size` consecutive channels.
    pub fn ltx_downsampler_residual(stride: [usize; 3], group_size: usize) -> Rearrange {
        Rearrange {
            frame_offset: stride[0].saturating_sub(1),
            group: group_size,
            ..Rearrange::ltx_downsampler(stride)
        }
    }

    fn block(&self) -> usize {
        self.factors.iter().product()
    }

    /// The output shape for an input shape, or a typed error.
    pub fn output_shape(&self, input: &[usize]) -> Result<[usize; 4], GpuError> {
        let &[c, f, h, w] = input else {
            return Err(GpuError::shape(
                NAME,
                format!("input must be [channels, frames, height, width], got {input:?}"),
            ));
        };
        let [st, sh, sw] = self.factors;
        let s = self.block();
        let bad = |why: &str| {
            Err(GpuError::shape(
                NAME,
                format!("{self:?} on {input:?}: {why}"),
            ))
        };
        if s == 0 || self.group == 0 || input.contains(&0) {
            return bad("factors, group and sizes must be positive");
        }
        match self.direction {
            Direction::DepthToSpace => {
                if !c.is_multiple_of(s) {
                    return bad("channels are not a multiple of the block");
                }
                if f * st <= self.frame_offset {
                    return bad("the frame offset drops every frame");
                }
                Ok([
                    c / s * self.group,
                    f * st - self.frame_offset,
                    h * sh,
                    w * sw,
                ])
            }
            Direction::SpaceToDepth => {
                let frames = f + self.frame_offset;
                if !frames.is_multiple_of(st) || !h.is_multiple_of(sh) || !w.is_multiple_of(sw) {
                    return bad("sizes are not multiples of the factors");
                }
                if self.frame_offset > f {
                    return bad("more prepended frames than input frames");
                }
                if !(c * s).is_multiple_of(self.group) {
                    return bad("the group does not divide the packed channels");
                }
                Ok([c * s / self.group, frames / st, h / sh, w / sw])
            }
        }
    }
}

const NAME: &str = "rearrange";
const WG: u32 = 256;

/// `out = rearrange(x)`; both F32 or both F16, `out` shaped by [`Rearrange::output_shape`].
pub fn encode(step: &mut Step, r: &Rearrange, x: &Tensor, out: &Tensor) -> Result<(), GpuError> {
    let precision = precision_of(NAME, &[x, out])?;
    let want = r.output_shape(&x.shape)?;
    if out.shape != want {
        return Err(GpuError::shape(
            NAME,
            format!("out is {:?}, expected {want:?}", out.shape),
        ));
    }
    let [st, sh, sw] = r.factors;
    let [cs_t, cs_h, cs_w] = r.order.strides(r.factors);
    // (channels, packed frames/height/width, spatial frames) by direction.
    let (channels, packed, spatial_frames, entry) = match r.direction {
        Direction::DepthToSpace => (
            x.shape[0] / r.block(),
            [x.shape[1], x.shape[2], x.shape[3]],
            want[1],
            "depth_to_space",
        ),
        Direction::SpaceToDepth => (
            x.shape[0],
            [want[1], want[2], want[3]],
            x.shape[1],
            "space_to_depth",
        ),
    };
    let n = out.numel() as u32;
    let u = |v: usize| v as u32;
    let params = Params {
        n,
        channels: u(channels),
        frames: u(packed[0]),
        height: u(packed[1]),
        width: u(packed[2]),
        st: u(st),
        sh: u(sh),
        sw: u(sw),
        cs_t: u(cs_t),
        cs_h: u(cs_h),
        cs_w: u(cs_w),
        frame_offset: u(r.frame_offset),
        group: u(r.group),
        spatial_frames: u(spatial_frames),
        _pad: [0; 2],
    };
    let key = PipelineKey::new(Kernel::Rearrange, entry).flags(precision.flags());
    step.dispatch(
        &key,
        &params,
        &[Binding::read(x), Binding::write(out)],
        groups_1d(n, WG),
    )
}

/// `data` of `shape` permuted like `torch.permute(perm)` (then made contiguous).
fn permute(data: &[f32], shape: &[usize], perm: &[usize]) -> Vec<f32> {
    let rank = shape.len();
    let mut strides = vec![1; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0; rank];
    for _ in 0..data.len() {
        let src: usize = idx.iter().zip(perm).map(|(&i, &p)| i * strides[p]).sum();
        out.push(data[src]);
        // Odometer over the output index, last axis fastest.
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The rearrangement written as diffusers writes it (a batch of one, the
/// same reshape and permute tuples), for tests: returns (values, shape).
pub fn reference(
    r: &Rearrange,
    x: &[f32],
    shape: [usize; 4],
) -> Result<(Vec<f32>, [usize; 4]), GpuError> {
    let out_shape = r.output_shape(&shape)?;
    let [c, f, h, w] = shape;
    let [st, sh, sw] = r.factors;
    let s = r.block();
    let plane = h * w;
    let values = match r.direction {
        Direction::DepthToSpace => {
            let full = match r.order {
                // LTXVideoUpsampler3d: reshape(b, -1, st, sh, sw, f, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
                ChannelOrder::Thw => permute(
                    x,
                    &[1, c / s, st, sh, sw, f, h, w],
                    &[0, 1, 5, 2, 6, 3, 7, 4],
                ),
                // LTXVideoDecoder3d: reshape(b, -1, p_t, p, p, f, h, w).permute(0, 1, 5, 2, 6, 4, 7, 3);
                // axis 4 lands beside h, axis 3 beside w.
                ChannelOrder::Twh => permute(
                    x,
                    &[1, c / s, st, sw, sh, f, h, w],
                    &[0, 1, 5, 2, 6, 4, 7, 3],
                ),
            };
            // [:, :, offset:] then .repeat(1, group, 1, 1, 1)
            let frame = (h * sh) * (w * sw);
            let per_channel = f * st * frame;
            let mut out = Vec::with_capacity(out_shape.iter().product());
            for _ in 0..r.group {
                for ch in full.chunks(per_channel) {
                    out.extend_from_slice(&ch[r.frame_offset * frame..]);
                }
            }
            out
        }
        Direction::SpaceToDepth => {
            // torch.cat([x[:, :, :offset], x], dim=2)
            let frames = f + r.frame_offset;
            let mut padded = Vec::with_capacity(c * frames * plane);
            for ch in x.chunks(f * plane) {
                padded.extend_from_slice(&ch[..r.frame_offset * plane]);
                padded.extend_from_slice(ch);
            }
            let [fp, hp, wp] = [frames / st, h / sh, w / sw];
            let packed = match r.order {
                // LTXVideoDownsampler3d: unflatten to (b, c, f, st, h, sh, w, sw).permute(0, 1, 3, 5, 7, 2, 4, 6)
                ChannelOrder::Thw => permute(
                    &padded,
                    &[1, c, fp, st, hp, sh, wp, sw],
                    &[0, 1, 3, 5, 7, 2, 4, 6],
                ),
                // LTXVideoEncoder3d: reshape(b, c, f, p_t, h, p, w, p).permute(0, 1, 3, 7, 5, 2, 4, 6)
                ChannelOrder::Twh => permute(
                    &padded,
                    &[1, c, fp, st, hp, sh, wp, sw],
                    &[0, 1, 3, 7, 5, 2, 4, 6],
                ),
            };
            // .unflatten(1, (-1, group)).mean(dim=2)
            let voxels = fp * hp * wp;
            let mut out = vec![0.0f32; out_shape.iter().product()];
            for (ch, chunk) in packed.chunks(voxels).enumerate() {
                let o = &mut out[(ch / r.group) * voxels..][..voxels];
                for (a, &v) in o.iter_mut().zip(chunk) {
                    *a += v / r.group as f32;
                }
            }
            out
        }
    };
    Ok((values, out_shape))
}

/// Every LTX ordering at factors (1, 2, 2), (2, 2, 2) and (1, 4, 4) against
/// [`reference`]; the data moves exactly, so only the channel means round.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let mut rng = Rng::new(5);
    let mut checks = Vec::new();
    for factors in [[1, 2, 2], [2, 2, 2], [1, 4, 4]] {
        let [st, sh, sw] = factors;
        let s = st * sh * sw;
        let named = [
            ("upsampler", Rearrange::ltx_upsampler(factors)),
            (
                "upsampler_residual",
                Rearrange::ltx_upsampler_residual(factors, s / 2),
            ),
            ("unpatchify", Rearrange::ltx_unpatchify(st, sh)),
            ("patchify", Rearrange::ltx_patchify(st, sh)),
            ("downsampler", Rearrange::ltx_downsampler(factors)),
            (
                "downsampler_residual",
                Rearrange::ltx_downsampler_residual(factors, s / 2),
            ),
        ];
        for (name, r) in named {
            // Awkward packed sizes: 3 channels, 3 frames, 5 x 7.
            let shape = match r.direction {
                Direction::DepthToSpace => [3 * s, 3, 5, 7],
                Direction::SpaceToDepth => [3, 3 * st - r.frame_offset, 5 * sh, 7 * sw],
            };
            let x = round_to(&rng.normal_vec(shape.iter().product(), 1.0), precision);
            let (want, out_shape) = reference(&r, &x, shape)?;
            let tx = gpu.upload(&x, &shape, precision.dtype())?;
            let out = gpu.empty(&out_shape, precision.dtype())?;
            let mut step = gpu.step("rearrange check");
            encode(&mut step, &r, &tx, &out)?;
            step.submit()?;
            let got = gpu.read(&out).await?;
            let bound = match (
                precision,
                r.group > 1 && r.direction == Direction::SpaceToDepth,
            ) {
                (Precision::F16, true) => bound::F16,
                // Pure data movement (or f32 means): exact up to f32 summation order.
                _ => bound::F32,
            };
            checks.push(Check::new(
                format!("{name} {factors:?} {shape:?} {precision:?}"),
                &got,
                &want,
                bound,
            ));
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    #[test]
    fn patchify_and_unpatchify_are_inverse() {
        let shape = [3, 2, 8, 12];
        let x = ramp(shape.iter().product());
        let (packed, packed_shape) = reference(&Rearrange::ltx_patchify(2, 4), &x, shape).unwrap();
        assert_eq!(packed_shape, [96, 1, 2, 3]);
        let (back, back_shape) =
            reference(&Rearrange::ltx_unpatchify(2, 4), &packed, packed_shape).unwrap();
        assert_eq!((back, back_shape), (x, shape));
    }

    #[test]
    fn the_orders_place_channels_as_documented() {
        // One 1x2x2 block: packed channel k holds which spatial voxel?
        let x = ramp(4);
        let thw = reference(&Rearrange::ltx_downsampler([1, 2, 2]), &x, [1, 1, 2, 2]).unwrap();
        let twh = reference(&Rearrange::ltx_patchify(1, 2), &x, [1, 1, 2, 2]).unwrap();
        // Spatial voxels (h, w) = 00, 01, 10, 11 are 0, 1, 2, 3.
        assert_eq!(thw.0, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(twh.0, vec![0.0, 2.0, 1.0, 3.0]);
    }

    #[test]
    fn the_upsampler_drops_what_the_downsampler_residual_prepends() {
        let shape = [2, 3, 4, 4];
        let x = ramp(shape.iter().product());
        let down = Rearrange::ltx_downsampler_residual([2, 2, 2], 1);
        let (packed, packed_shape) = reference(&down, &x, shape).unwrap();
        assert_eq!(packed_shape, [16, 2, 2, 2]);
        let up = Rearrange::ltx_upsampler([2, 2, 2]);
        assert_eq!(reference(&up, &packed, packed_shape).unwrap(), (x, shape));
    }

    #[test]
    fn bad_shapes_are_typed_errors() {
        assert!(
            Rearrange::ltx_patchify(1, 4)
                .output_shape(&[3, 1, 6, 8])
                .is_err()
        );
        assert!(
            Rearrange::ltx_unpatchify(1, 4)
                .output_shape(&[15, 1, 6, 8])
                .is_err()
        );
        assert!(
            Rearrange::ltx_upsampler([2, 2, 2])
                .output_shape(&[8, 1, 1])
                .is_err()
        );
    }
}
