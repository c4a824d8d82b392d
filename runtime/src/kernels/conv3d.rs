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

/// Tile of one workgroup: `wg_m x wg_n` invocations, each computing 4 x 4
/// outputs, over chunks of `tk` input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiles {
    pub wg_m: u32,
    pub wg_n: u32,
    pub tk: u32,
}

/// Outputs per invocation along M and N (`RM`, `RN` in the shader).
const MICRO: u32 = 4;

impl Tiles {
    /// 64 x 64 outputs per workgroup of 256 invocations, 16 channels deep.
    pub const DEFAULT: Tiles = Tiles {
        wg_m: 16,
        wg_n: 16,
        tk: 16,
    };

    /// The tile for `cout` output channels: narrower in N when Cout is small,
    /// so a 1-, 3- or 48-channel convolution does not compute 64 columns.
    pub fn for_cout(cout: usize) -> Tiles {
        match cout {
            0..=16 => Tiles {
                wg_m: 64,
                wg_n: 4,
                tk: 16,
            },
            17..=32 => Tiles {
                wg_m: 32,
                wg_n: 8,
                tk: 16,
            },
            _ => Tiles::DEFAULT,
        }
    }

    fn tm(self) -> u32 {
        self.wg_m * MICRO
    }

    fn tn(self) -> u32 {
        self.wg_n * MICRO
    }

    /// Each loader keeps one column for the whole K loop, so the workgroup
    /// must cover whole rows of both tiles.
    fn check(self) -> Result<(), GpuError> {
        let wg = self.wg_m * self.wg_n;
        if self.wg_m == 0
            || self.wg_n == 0
            || self.tk == 0
            || wg % self.tm() != 0
            || wg % self.tn() != 0
        {
            return Err(GpuError::shape(
                NAME,
                format!("tiles {self:?}: workgroup {wg} must be a multiple of both tile widths"),
            ));
        }
        Ok(())
    }
}

const NAME: &str = "conv3d";

/// `out = conv(x, weight) + bias` with the default tiles for this shape.
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
    let cout = weight.shape.first().copied().unwrap_or(0);
    encode_with(step, conv, Tiles::for_cout(cout), x, weight, bias, out)
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
    tiles.check()?;
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
    let gy = (cout as u32).div_ceil(tiles.tn());
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
        .constant("WG_M", tiles.wg_m)
        .constant("WG_N", tiles.wg_n)
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

/// One self-check case: geometry, channels, input size, bias, f16 weights,
/// and explicit tiles where the case exercises a tiling path.
struct Case {
    conv: Conv3d,
    cin: usize,
    cout: usize,
    size: [usize; 3],
    bias: bool,
    weight_f16: bool,
    tiles: Option<Tiles>,
}

fn case(
    conv: Conv3d,
    cin: usize,
    cout: usize,
    size: [usize; 3],
    bias: bool,
    weight_f16: bool,
) -> Case {
    Case {
        conv,
        cin,
        cout,
        size,
        bias,
        weight_f16,
        tiles: None,
    }
}

/// Every padding mode, 3x3x3 and 1x1x1, channels {1, 3, 8, 16, 33}, frames
/// {1, 2, 5}, sizes {1, 7, 9, 16}, strides in time and space, f32 and f16
/// weights, with and without bias, against [`reference`].
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    use TimePad::{Causal, None as NoPad, Replicate, Symmetric};
    let k3 = |t| Conv3d::cube(3, t);
    let k1 = |t| Conv3d::cube(1, t);
    let mut cases = vec![
        case(k3(Causal), 1, 1, [1, 1, 1], false, false),
        case(k3(Causal), 3, 8, [2, 7, 9], true, false),
        case(k3(Symmetric), 8, 3, [5, 9, 7], true, true),
        case(k3(NoPad), 16, 16, [5, 16, 16], false, false),
        // Several K chunks, two N tiles, a partial M tile.
        case(k3(Causal), 33, 33, [5, 16, 16], true, true),
        case(k3(Symmetric), 16, 1, [1, 16, 9], false, true),
        case(k3(NoPad), 33, 8, [5, 1, 1], true, false),
        case(k3(Symmetric), 3, 16, [2, 1, 16], false, false),
        case(k1(NoPad), 33, 16, [2, 9, 16], true, false),
        case(k1(Causal), 16, 33, [1, 7, 7], false, true),
        case(k1(Symmetric), 1, 3, [5, 16, 1], true, false),
        // The 0.9.0 encoder's downsampling conv: stride 2 in time and space.
        case(
            k3(Causal).with_stride([2, 2, 2]),
            16,
            16,
            [5, 16, 16],
            true,
            false,
        ),
        case(
            k3(Causal).with_stride([1, 2, 2]),
            8,
            8,
            [2, 9, 7],
            false,
            true,
        ),
        case(
            k3(Symmetric).with_stride([2, 1, 1]),
            3,
            8,
            [5, 7, 9],
            true,
            true,
        ),
        // The 0.9.5+ downsampler (prepend one frame, then causal).
        case(
            k3(Replicate { front: 3, back: 0 }),
            8,
            16,
            [5, 7, 7],
            true,
            false,
        ),
    ];
    // More M tiles than one dispatch dimension allows: the z split.
    cases.push(Case {
        tiles: Some(Tiles {
            wg_m: 4,
            wg_n: 4,
            tk: 4,
        }),
        ..case(k1(NoPad), 1, 1, [1, 1024, 1025], true, false)
    });

    let mut rng = Rng::new(11);
    let mut checks = Vec::new();
    for c in &cases {
        let [kt, kh, kw] = c.conv.kernel;
        let x_shape = [c.cin, c.size[0], c.size[1], c.size[2]];
        let w_shape = [c.cout, c.cin, kt, kh, kw];
        let x = rng.normal_vec(x_shape.iter().product(), 1.0);
        let fan_in = (c.cin * kt * kh * kw) as f32;
        let w = rng.normal_vec(w_shape.iter().product(), 1.0 / fan_in.sqrt());
        let b = rng.normal_vec(c.cout, 0.5);
        let w_precision = if c.weight_f16 {
            Precision::F16
        } else {
            Precision::F32
        };
        let (x, w, b) = (
            round_to(&x, precision),
            round_to(&w, w_precision),
            round_to(&b, w_precision),
        );
        let tx = gpu.upload(&x, &x_shape, precision.dtype())?;
        let tw = gpu.upload(&w, &w_shape, w_precision.dtype())?;
        let tb = if c.bias {
            Some(gpu.upload(&b, &[c.cout], w_precision.dtype())?)
        } else {
            None
        };
        let [fo, ho, wo] = c.conv.output_size(c.size)?;
        let out = gpu.empty(&[c.cout, fo, ho, wo], precision.dtype())?;
        let mut step = gpu.step("conv3d check");
        let tiles = c.tiles.unwrap_or(Tiles::for_cout(c.cout));
        encode_with(&mut step, &c.conv, tiles, &tx, &tw, tb.as_ref(), &out)?;
        step.submit()?;
        let got = gpu.read(&out).await?;
        let want = reference(&c.conv, &x, x_shape, &w, c.cout, c.bias.then_some(&b[..]))?;
        let bound = match precision {
            Precision::F32 => bound::F32,
            Precision::F16 => bound::F16,
        };
        let s = c.conv.stride;
        checks.push(Check::new(
            format!(
                "k{kt}{kh}{kw} s{}{}{} {:?} {}->{} {:?}{}{} {precision:?}",
                s[0],
                s[1],
                s[2],
                c.conv.time_pad,
                c.cin,
                c.cout,
                c.size,
                if c.bias { " bias" } else { "" },
                if c.weight_f16 { " w16" } else { "" },
            ),
            &got,
            &want,
            bound,
        ));
    }
    Ok(checks)
}
