//! The attention self-check: seeded cases at awkward sizes against
//! [`super::reference`].

use super::{Attention, Bias, Layout, Path, T5Buckets, encode_path, reference};
use crate::gpu::{DType, Gpu, GpuError, Precision};
use crate::kernels::round_to;
use crate::kernels::testing::{Check, Rng, bound};

struct Case {
    batch: usize,
    heads: usize,
    nq: usize,
    nk: usize,
    d: usize,
    /// Extra elements in every row (and before row 0) beyond heads * d; a
    /// multiple of 4 as the kernel requires.
    pad: usize,
    /// Q, K and V as column slices of one `[tokens, 3 * heads * d + pad]`
    /// buffer, as a fused QKV projection writes them (self-attention).
    fused: bool,
    mask: bool,
    t5: Option<T5Buckets>,
}

const fn case(batch: usize, heads: usize, nq: usize, nk: usize, d: usize) -> Case {
    Case {
        batch,
        heads,
        nq,
        nk,
        d,
        pad: 0,
        fused: false,
        mask: false,
        t5: None,
    }
}

const T5_DECODER_SMALL: T5Buckets = T5Buckets {
    num_buckets: 16,
    max_distance: 64,
    bidirectional: false,
};

fn cases() -> Vec<Case> {
    vec![
        case(1, 1, 1, 1, 8),
        Case {
            mask: true,
            ..case(1, 2, 7, 13, 16)
        },
        // One past a workgroup of queries, fewer keys than one tile.
        Case {
            pad: 4,
            ..case(1, 1, 65, 9, 8)
        },
        Case {
            pad: 12,
            mask: true,
            ..case(2, 3, 100, 37, 64)
        },
        Case {
            pad: 8,
            ..case(1, 4, 130, 130, 128)
        },
        Case {
            pad: 8,
            fused: true,
            ..case(2, 2, 100, 100, 32)
        },
        // T5 encoder self-attention: bucketed bias plus the padding mask.
        Case {
            mask: true,
            t5: Some(T5Buckets::T5_V1_1_ENCODER),
            ..case(2, 4, 150, 150, 16)
        },
        // Decoder-style buckets, other sizes, distances past max_distance.
        Case {
            t5: Some(T5_DECODER_SMALL),
            ..case(1, 2, 33, 300, 32)
        },
        // LTX-like cross-attention: video tokens onto masked text tokens.
        Case {
            mask: true,
            ..case(2, 1, 300, 256, 64)
        },
        case(1, 2, 1120, 1120, 64),
    ]
}

/// Batch item 0 masks its last third of keys (-1e9, a padded prompt); odd
/// items mask a scattered quarter at LTX's -10000. Key 0 always stays.
fn make_mask(rng: &mut Rng, batch: usize, nk: usize) -> Vec<f32> {
    let mut mask = vec![0.0; batch * nk];
    for b in 0..batch {
        for j in 1..nk {
            let masked = if b % 2 == 0 {
                j >= nk - nk / 3
            } else {
                rng.uniform() < -0.5
            };
            if masked {
                mask[b * nk + j] = if b % 2 == 0 { -1e9 } else { -10000.0 };
            }
        }
    }
    mask
}

/// Every case at `precision` against the f64 reference, comparing whole
/// output buffers so that writes outside a head's columns are caught too.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let bound = match precision {
        Precision::F32 => bound::F32_TRANSCENDENTAL,
        Precision::F16 => bound::F16,
    };
    let dtype = precision.dtype();
    let mut rng = Rng::new(11);
    let mut checks = Vec::new();
    for c in cases() {
        let width = c.heads * c.d;
        let stride = width + c.pad;
        let strided = Layout {
            row_stride: stride,
            offset: c.pad,
        };
        let mut a = Attention::new(c.batch, c.heads, c.nq, c.nk, c.d);
        // Scores of order 1-3 so the softmax is neither flat nor one-hot.
        let mut qk_scale = 1.5;
        if let Some(t5) = c.t5 {
            a = a.with_t5(t5).with_scale(1.0);
            qk_scale = 1.2 / (c.d as f32).sqrt().sqrt();
        }
        let out_layout = strided;
        let (q, k, v, q_len, k_len);
        if c.fused {
            let fused_stride = 3 * width + c.pad;
            let at = |offset| Layout {
                row_stride: fused_stride,
                offset,
            };
            a = a.with_layouts(at(0), at(width), at(2 * width), out_layout);
            let n = c.batch * c.nq * fused_stride;
            let qkv = round_to(&rng.normal_vec(n, qk_scale), precision);
            (q, k, v) = (qkv.clone(), qkv.clone(), qkv);
            (q_len, k_len) = (n, n);
        } else {
            a = a.with_layouts(strided, strided, strided, out_layout);
            (q_len, k_len) = (
                c.batch * c.nq * stride + c.pad,
                c.batch * c.nk * stride + c.pad,
            );
            q = round_to(&rng.normal_vec(q_len, qk_scale), precision);
            k = round_to(&rng.normal_vec(k_len, qk_scale), precision);
            v = round_to(&rng.normal_vec(k_len, 1.0), precision);
        }
        let o_len = c.batch * c.nq * stride + c.pad;
        let sentinel = round_to(&rng.normal_vec(o_len, 1.0), precision);
        let mask = c.mask.then(|| make_mask(&mut rng, c.batch, c.nk));
        let table =
            c.t5.map(|t| rng.uniform_vec(t.num_buckets as usize * c.heads, 3.0));

        let tq = gpu.upload(&q, &[q_len], dtype)?;
        let (tk, tv) = if c.fused {
            (tq.clone(), tq.clone())
        } else {
            (
                gpu.upload(&k, &[k_len], dtype)?,
                gpu.upload(&v, &[k_len], dtype)?,
            )
        };
        let tmask = match &mask {
            Some(m) => Some(gpu.upload(m, &[c.batch, c.nk], DType::F32)?),
            None => None,
        };
        let ttable = match &table {
            Some(t) => Some(gpu.upload(t, &[t.len() / c.heads, c.heads], DType::F32)?),
            None => None,
        };
        let bias = Bias {
            mask: tmask.as_ref(),
            t5_table: ttable.as_ref(),
        };

        let mut want = sentinel.clone();
        reference(&a, &q, &k, &v, mask.as_deref(), table.as_deref(), &mut want)?;
        let mut name = format!("b{} h{} {}x{} d{}", c.batch, c.heads, c.nq, c.nk, c.d);
        for (on, what) in [
            (c.pad > 0, " strided"),
            (c.fused, " fused-qkv"),
            (c.mask, " mask"),
            (c.t5.is_some(), " t5"),
        ] {
            if on {
                name.push_str(what);
            }
        }
        for path in [Path::Tiled, Path::Subgroups] {
            if !path.supported(gpu) {
                continue;
            }
            let tout = gpu.upload(&sentinel, &[o_len], dtype)?;
            let mut step = gpu.step("attention check");
            encode_path(&mut step, path, &a, [&tq, &tk, &tv, &tout], bias)?;
            step.submit()?;
            let got = gpu.read(&tout).await?;
            checks.push(Check::new(
                format!("{name} {path:?} {precision:?}"),
                &got,
                &want,
                bound,
            ));
        }
    }
    Ok(checks)
}
