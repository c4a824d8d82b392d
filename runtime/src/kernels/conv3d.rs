//! 3D convolution of channels-first VAE activations, as an implicit GEMM
//! (see `shaders/conv3d.wgsl`).
//!
//! Semantics follow diffusers' `LTXVideoCausalConv3d`: zero padding of
//! `k / 2` in height and width (as `nn.Conv3d(padding=k // 2)`), and in time
//! replication of the first frame in front (`is_causal=True`) or of the first
//! and last frames on both sides (`is_causal=False`), then an unpadded
//! `nn.Conv3d` in time with the given stride.

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::testing::{Check, Rng, bound};
use super::{precision_of, round_to};
use crate::gpu::{Binding, DType, Gpu, GpuError, PipelineKey, Precision, Step, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub cin: u32,
    pub frames: u32,
    pub height: u32,
    pub width: u32,
    pub cout: u32,
    pub out_frames: u32,
    pub out_height: u32,
    pub out_width: u32,
    pub kt: u32,
    pub kh: u32,
    pub kw: u32,
    pub pad_front: u32,
    pub st: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub m_groups_x: u32,
    pub _pad: [u32; 2],
}

/// Temporal padding, always by replicating edge frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimePad {
    /// `kt - 1` copies of the first frame in front (`is_causal=True`).
    Causal,
    /// `(kt - 1) / 2` copies of the first frame in front and of the last
    /// frame behind (`is_causal=False`, the 0.9.5+ decoder).
    Symmetric,
    /// No temporal padding.
    None,
    /// `front` copies of the first frame, `back` of the last. The 0.9.5+
    /// `LTXVideoDownsampler3d` with a temporal stride of 2 prepends the first
    /// frame once and then runs a causal conv: that is `front: kt`.
    Replicate { front: usize, back: usize },
}

impl TimePad {
    /// Replicated frames (front, back) for a temporal kernel of `kt`.
    pub fn frames(self, kt: usize) -> (usize, usize) {
        let k = kt.saturating_sub(1);
        match self {
            TimePad::Causal => (k, 0),
            TimePad::Symmetric => (k / 2, k / 2),
            TimePad::None => (0, 0),
            TimePad::Replicate { front, back } => (front, back),
        }
    }
}

/// The geometry of one convolution: kernel (kt, kh, kw), stride (st, sh,
/// sw) and temporal padding. Spatial zero padding is `k / 2` on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3d {
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub time_pad: TimePad,
}

impl Conv3d {
    /// A `k x k x k` convolution with unit stride.
    pub fn cube(k: usize, time_pad: TimePad) -> Conv3d {
        Conv3d {
            kernel: [k; 3],
            stride: [1; 3],
            time_pad,
        }
    }

    pub fn with_stride(mut self, stride: [usize; 3]) -> Conv3d {
        self.stride = stride;
        self
    }

    /// Zero padding in height and width.
    pub fn spatial_pad(&self) -> [usize; 2] {
        [self.kernel[1] / 2, self.kernel[2] / 2]
    }

    /// Output `[frames, height, width]` for an input of `[frames, height, width]`.
    pub fn output_size(&self, input: [usize; 3]) -> Result<[usize; 3], GpuError> {
        let [kt, kh, kw] = self.kernel;
        if self.kernel.contains(&0) || self.stride.contains(&0) {
            return Err(GpuError::shape(
                NAME,
                format!(
                    "kernel {:?} and stride {:?} must be positive",
                    self.kernel, self.stride
                ),
            ));
        }
        let (front, back) = self.time_pad.frames(kt);
        let [ph, pw] = self.spatial_pad();
        let padded = [
            input[0] + front + back,
            input[1] + 2 * ph,
            input[2] + 2 * pw,
        ];
        let mut out = [0; 3];
        for d in 0..3 {
            let k = [kt, kh, kw][d];
            if input[d] == 0 || padded[d] < k {
                return Err(GpuError::shape(
                    NAME,
                    format!(
                        "input {input:?} is smaller than the kernel {:?} after padding",
                        self.kernel
                    ),
                ));
            }
            out[d] = (padded[d] - k) / self.stride[d] + 1;
        }
        Ok(out)
    }
}

/// Tile of one workgroup: `wg` invocations each computing [`ROWS`] output
/// voxels by [`COLUMNS`] output channels; `tk` input channels per staged
/// weight chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub wg: u32,
    pub tk: u32,
    /// Hand weights round with subgroup broadcasts instead of staging them in
    /// workgroup memory (see `shaders/conv3d.wgsl`); needs subgroups of at
    /// least 8 invocations.
    pub subgroups: bool,
}

/// Output voxels per invocation.
pub const ROWS: u32 = 4;
/// Output channels per workgroup (`TN` in the shader).
pub const COLUMNS: u32 = 16;

impl Tiles {
    /// 256 voxels x 16 channels per workgroup of 64, weights staged 16
    /// input channels at a time.
    pub const DEFAULT: Tiles = Tiles {
        wg: 64,
        tk: 16,
        subgroups: false,
    };

    /// The tiles for `gpu`: subgroup broadcasts on CPU adapters that have
    /// them (on lavapipe 2.2x faster than staging, where every
    /// workgroup-memory read is a per-lane loop), staging elsewhere.
    pub fn for_gpu(gpu: &Gpu) -> Tiles {
        Tiles {
            subgroups: gpu.info.device_type == wgpu::DeviceType::Cpu && subgroups_usable(gpu),
            ..Tiles::DEFAULT
        }
    }

    fn tm(self) -> u32 {
        self.wg * ROWS
    }
}

/// Whether the SUBGROUPS path can run: lanes 0..7 of every subgroup share
/// the weights, so subgroups must have at least 8 invocations.
pub fn subgroups_usable(gpu: &Gpu) -> bool {
    gpu.caps.subgroups && gpu.caps.subgroup_size.0 >= 8
}

const NAME: &str = "conv3d";

/// `out = conv(x, weight) + bias` with the default tiles for this adapter.
///
/// `x`: `[cin, frames, height, width]` (F32 or F16); `weight`: `[cout, cin,
/// kt, kh, kw]` F32 or F16 (independent of the activations); `bias`:
/// `[cout]` in the weight's dtype; `out`: `[cout, frames', height', width']`
/// in the activations' dtype.
pub fn encode(
    step: &mut Step,
    conv: &Conv3d,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
) -> Result<(), GpuError> {
    encode_with(step, conv, Tiles::for_gpu(step.gpu()), x, weight, bias, out)
}

/// [`encode`] with explicit tiles (benchmarks and tuning).
pub fn encode_with(
    step: &mut Step,
    conv: &Conv3d,
    tiles: Tiles,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    out: &Tensor,
) -> Result<(), GpuError> {
    if tiles.wg == 0 || tiles.tk == 0 {
        return Err(GpuError::shape(
            NAME,
            format!("tiles {tiles:?} must be positive"),
        ));
    }
    let max_subgroup = step.gpu().caps.subgroup_size.1.max(1);
    if tiles.subgroups && (!subgroups_usable(step.gpu()) || !tiles.wg.is_multiple_of(max_subgroup))
    {
        return Err(GpuError::shape(
            NAME,
            format!(
                "the subgroup path needs subgroups of at least 8 and workgroups of whole \
                 subgroups (tiles {tiles:?}, subgroup sizes {:?})",
                step.gpu().caps.subgroup_size
            ),
        ));
    }
    let precision = precision_of(NAME, &[x, out])?;
    let &[cin, frames, height, width] = x.shape.as_slice() else {
        return Err(GpuError::shape(
            NAME,
            format!("x must be [cin, frames, height, width], got {:?}", x.shape),
        ));
    };
    let [kt, kh, kw] = conv.kernel;
    let &[cout, wcin, wkt, wkh, wkw] = weight.shape.as_slice() else {
        return Err(GpuError::shape(
            NAME,
            format!(
                "weight must be [cout, cin, kt, kh, kw], got {:?}",
                weight.shape
            ),
        ));
    };
    if [wcin, wkt, wkh, wkw] != [cin, kt, kh, kw] || cout == 0 {
        return Err(GpuError::shape(
            NAME,
            format!(
                "weight {:?} does not match cin {cin} and kernel {:?}",
                weight.shape, conv.kernel
            ),
        ));
    }
    let weight_f16 = match weight.dtype {
        DType::F32 => false,
        DType::F16 => true,
        DType::U32 => return Err(GpuError::shape(NAME, "weights must be F32 or F16")),
    };
    if let Some(b) = bias
        && (b.shape != [cout] || b.dtype != weight.dtype)
    {
        return Err(GpuError::shape(
            NAME,
            format!(
                "bias {b:?} must be [{cout}] in the weight's dtype {:?}",
                weight.dtype
            ),
        ));
    }
    let [fo, ho, wo] = conv.output_size([frames, height, width])?;
    if out.shape != [cout, fo, ho, wo] {
        return Err(GpuError::shape(
            NAME,
            format!("out is {:?}, expected {:?}", out.shape, [cout, fo, ho, wo]),
        ));
    }

    // M tiles over x (and z beyond the per-dimension limit), N tiles over y.
    let max = step
        .gpu()
        .limits
        .max_compute_workgroups_per_dimension
        .max(1);
    let m_tiles = (fo * ho * wo).div_ceil(tiles.tm() as usize) as u32;
    let gz = m_tiles.div_ceil(max);
    let gx = m_tiles.div_ceil(gz.max(1));
    let gy = (cout as u32).div_ceil(COLUMNS);
    let (front, _) = conv.time_pad.frames(kt);
    let [ph, pw] = conv.spatial_pad();
    let u = |v: usize| v as u32;
    let params = Params {
        cin: u(cin),
        frames: u(frames),
        height: u(height),
        width: u(width),
        cout: u(cout),
        out_frames: u(fo),
        out_height: u(ho),
        out_width: u(wo),
        kt: u(kt),
        kh: u(kh),
        kw: u(kw),
        pad_front: u(front),
        st: u(conv.stride[0]),
        sh: u(conv.stride[1]),
        sw: u(conv.stride[2]),
        pad_h: u(ph),
        pad_w: u(pw),
        m_groups_x: gx,
        _pad: [0; 2],
    };
    let key = PipelineKey::new(Kernel::Conv3d, "main")
        .flags(precision.flags())
        .flag_if(weight_f16, "WEIGHT_F16")
        .flag_if(bias.is_some(), "BIAS")
        .flag_if(tiles.subgroups, "SUBGROUPS")
        .constant("WG", tiles.wg)
        .constant("TK", tiles.tk);
    let mut bindings = vec![Binding::read(x), Binding::read(weight)];
    if let Some(b) = bias {
        bindings.push(Binding::read(b));
    }
    bindings.push(Binding::write(out));
    step.dispatch(&key, &params, &bindings, [gx, gy, gz])
}

/// Direct-loop convolution written the way diffusers computes it: the
/// input is first padded in time by concatenating copies of its edge frames,
/// then convolved without temporal padding. `x` is `[cin, frames, height,
/// width]`, `weight` `[cout, cin, kt, kh, kw]`; returns `[cout, frames',
/// height', width']`.
pub fn reference(
    conv: &Conv3d,
    x: &[f32],
    x_shape: [usize; 4],
    weight: &[f32],
    cout: usize,
    bias: Option<&[f32]>,
) -> Result<Vec<f32>, GpuError> {
    let [cin, frames, height, width] = x_shape;
    let [kt, kh, kw] = conv.kernel;
    let [st, sh, sw] = conv.stride;
    let [fo, ho, wo] = conv.output_size([frames, height, width])?;
    let (front, back) = conv.time_pad.frames(kt);
    let [ph, pw] = conv.spatial_pad();
    let plane = height * width;
    // torch.cat([first.repeat(front), x, last.repeat(back)], dim=2)
    let padded_frames = front + frames + back;
    let mut padded = Vec::with_capacity(cin * padded_frames * plane);
    for c in 0..cin {
        let frame = |f: usize| &x[(c * frames + f) * plane..][..plane];
        for _ in 0..front {
            padded.extend_from_slice(frame(0));
        }
        for f in 0..frames {
            padded.extend_from_slice(frame(f));
        }
        for _ in 0..back {
            padded.extend_from_slice(frame(frames - 1));
        }
    }
    let mut out = vec![0.0f32; cout * fo * ho * wo];
    for n in 0..cout {
        for f in 0..fo {
            for y in 0..ho {
                for xo in 0..wo {
                    let mut acc = bias.map_or(0.0, |b| b[n] as f64);
                    for c in 0..cin {
                        for dt in 0..kt {
                            let pf = f * st + dt;
                            for dh in 0..kh {
                                // Zero padding: taps outside the image add nothing.
                                let Some(sy) =
                                    (y * sh + dh).checked_sub(ph).filter(|&v| v < height)
                                else {
                                    continue;
                                };
                                for dw in 0..kw {
                                    let Some(sx) =
                                        (xo * sw + dw).checked_sub(pw).filter(|&v| v < width)
                                    else {
                                        continue;
                                    };
                                    let xv = padded
                                        [((c * padded_frames + pf) * height + sy) * width + sx];
                                    let wv =
                                        weight[(((n * cin + c) * kt + dt) * kh + dh) * kw + dw];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                    }
                    out[((n * fo + f) * ho + y) * wo + xo] = acc as f32;
                }
            }
        }
    }
    Ok(out)
}

/// Every padding mode, 3x3x3 and 1x1x1, channels {1, 3, 8, 16, 33}, frames
/// {1, 2, 5}, sizes {1, 7, 9, 16}, strides in time and space, f32 and f16
/// weights, with and without bias, against [`reference`]; on each weight
/// path the adapter can run (staged, and subgroups where usable).
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    use TimePad::{Causal, None as NoPad, Replicate, Symmetric};
    let k3 = |t| Conv3d::cube(3, t);
    let k1 = |t| Conv3d::cube(1, t);
    // (geometry, cin, cout, [frames, height, width], bias, f16 weights)
    type Case = (Conv3d, usize, usize, [usize; 3], bool, bool);
    let cases: Vec<Case> = vec![
        (k3(Causal), 1, 1, [1, 1, 1], false, false),
        (k3(Causal), 3, 8, [2, 7, 9], true, false),
        (k3(Symmetric), 8, 3, [5, 9, 7], true, true),
        (k3(NoPad), 16, 16, [5, 16, 16], false, false),
        // Several weight chunks, two N tiles, a partial M tile.
        (k3(Causal), 33, 33, [5, 16, 16], true, true),
        (k3(Symmetric), 16, 1, [1, 16, 9], false, true),
        (k3(NoPad), 33, 8, [5, 1, 1], true, false),
        (k3(Symmetric), 3, 16, [2, 1, 16], false, false),
        (k1(NoPad), 33, 16, [2, 9, 16], true, false),
        (k1(Causal), 16, 33, [1, 7, 7], false, true),
        (k1(Symmetric), 1, 3, [5, 16, 1], true, false),
        // The 0.9.0 encoder's downsampling conv: stride 2 in time and space.
        (
            k3(Causal).with_stride([2, 2, 2]),
            16,
            16,
            [5, 16, 16],
            true,
            false,
        ),
        (
            k3(Causal).with_stride([1, 2, 2]),
            8,
            8,
            [2, 9, 7],
            false,
            true,
        ),
        (
            k3(Symmetric).with_stride([2, 1, 1]),
            3,
            8,
            [5, 7, 9],
            true,
            true,
        ),
        // The 0.9.5+ downsampler (prepend one frame, then causal).
        (
            k3(Replicate { front: 3, back: 0 }),
            8,
            16,
            [5, 7, 7],
            true,
            false,
        ),
        // Workgroups of 8 (32 voxels): more M tiles than one dispatch
        // dimension allows, so they spill into z.
        (k1(NoPad), 1, 1, [1, 1448, 1450], true, false),
    ];
    let mut paths = vec![false];
    if subgroups_usable(gpu) {
        paths.push(true);
    }
    let bound = match precision {
        Precision::F32 => bound::F32,
        Precision::F16 => bound::F16,
    };
    let mut checks = Vec::new();
    for subgroups in paths {
        let mut rng = Rng::new(11);
        for &(conv, cin, cout, size, with_bias, weight_f16) in &cases {
            let big = size[1] * size[2] > 1 << 20;
            if big && subgroups {
                continue; // the z split is the host's; one path covers it
            }
            let [kt, kh, kw] = conv.kernel;
            let x_shape = [cin, size[0], size[1], size[2]];
            let w_shape = [cout, cin, kt, kh, kw];
            let w_precision = if weight_f16 {
                Precision::F16
            } else {
                Precision::F32
            };
            let fan_in = (cin * kt * kh * kw) as f32;
            // The reference sees the values as the GPU stores them.
            let x = round_to(&rng.normal_vec(x_shape.iter().product(), 1.0), precision);
            let w = rng.normal_vec(w_shape.iter().product(), 1.0 / fan_in.sqrt());
            let (w, b) = (
                round_to(&w, w_precision),
                round_to(&rng.normal_vec(cout, 0.5), w_precision),
            );
            let tx = gpu.upload(&x, &x_shape, precision.dtype())?;
            let tw = gpu.upload(&w, &w_shape, w_precision.dtype())?;
            let tb = match with_bias {
                true => Some(gpu.upload(&b, &[cout], w_precision.dtype())?),
                false => None,
            };
            let [fo, ho, wo] = conv.output_size(size)?;
            let out = gpu.empty(&[cout, fo, ho, wo], precision.dtype())?;
            let tiles = Tiles {
                wg: if big { 8 } else { Tiles::DEFAULT.wg },
                subgroups,
                ..Tiles::DEFAULT
            };
            let mut step = gpu.step("conv3d check");
            encode_with(&mut step, &conv, tiles, &tx, &tw, tb.as_ref(), &out)?;
            step.submit()?;
            let got = gpu.read(&out).await?;
            let want = reference(&conv, &x, x_shape, &w, cout, with_bias.then_some(&b[..]))?;
            let [s0, s1, s2] = conv.stride;
            let name = format!(
                "k{kt}{kh}{kw} s{s0}{s1}{s2} {:?} {cin}->{cout} {size:?}{}{}{} {precision:?}",
                conv.time_pad,
                if with_bias { " bias" } else { "" },
                if weight_f16 { " w16" } else { "" },
                if subgroups { " sg" } else { "" },
            );
            checks.push(Check::new(name, &got, &want, bound));
        }
    }
    Ok(checks)
}
