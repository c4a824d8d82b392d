//! The norm family's table of cases: every entry point and flag combination
//! at D in {1, 8, 31, 64, 2048, 4096} and T in {1, 3, 130}, with the adaLN
//! vectors read from strided chunks exactly as LTX lays them out.

use super::{
    Gate, Modulation, Norm, encode, gated_residual, pixel_norm, reference,
    reference_gated_residual, reference_pixel,
};
use crate::gpu::{Gpu, GpuError, Precision, Tensor};
use crate::kernels::rows::gather;
use crate::kernels::testing::{Check, Rng, bound};
use crate::kernels::{Rows, round_to};

#[derive(Clone, Copy, Debug)]
enum Case {
    /// LTX block norm1 / norm2 alone: RMSNorm, no weight, eps 1e-6.
    Rms,
    /// T5LayerNorm / LTX norm_k: weighted RMSNorm (eps 1e-5) of the K slice
    /// of a fused [T, 3 D] projection.
    RmsWeightStrided,
    /// LTX norm1 + msa modulation: per-token temb [T, 6 D] chunks 0, 1 + table.
    RmsBlockMod,
    /// Weighted RMSNorm + broadcast temb [1, 6 D] chunks 3, 4, no table.
    RmsWeightBroadcastMod,
    /// LayerNorm, no affine, on rows with a large mean.
    Layer,
    /// LTX norm_out: LayerNorm + per-token emb [T, D] shared by shift and
    /// scale + table [2, D].
    LayerFinalMod,
    /// The same with one emb row for all tokens.
    LayerFinalBroadcast,
    /// gate_msa: chunk 2 of per-token temb [T, 6 D] + table row 2.
    GatePerToken,
    /// gate_mlp: chunk 5 of broadcast temb [1, 6 D], no table.
    GateBroadcast,
    /// VAE RMSNorm over channels (C = D, S = T), eps 1e-8, batch item 1 of 2.
    Pixel,
    /// The same with a per-channel weight.
    PixelWeight,
    /// VAE resnet norm2 + shift_2 / scale_2: temb [4 C] chunks 2, 3 + table [4, C].
    PixelVaeMod,
}

const CASES: &[Case] = &[
    Case::Rms,
    Case::RmsWeightStrided,
    Case::RmsBlockMod,
    Case::RmsWeightBroadcastMod,
    Case::Layer,
    Case::LayerFinalMod,
    Case::LayerFinalBroadcast,
    Case::GatePerToken,
    Case::GateBroadcast,
    Case::Pixel,
    Case::PixelWeight,
    Case::PixelVaeMod,
];

/// How the adaLN vectors of a case are laid out.
struct ModSpec {
    /// 1 (broadcast) or T.
    rows: usize,
    /// emb is [rows, chunks * d].
    chunks: usize,
    k_shift: usize,
    k_scale: usize,
    /// Table rows added to shift and scale; the table has max(chunks, 2) rows.
    table: Option<(usize, usize)>,
}

/// Host copies (as stored at the precision) and GPU tensors of a modulation.
struct ModData {
    emb: Tensor,
    table: Option<Tensor>,
    shift: Vec<f32>,
    scale: Vec<f32>,
}

/// Every case at every size against its reference.
pub async fn self_check(gpu: &Gpu, precision: Precision) -> Result<Vec<Check>, GpuError> {
    let bound = match precision {
        Precision::F32 => bound::F32,
        Precision::F16 => bound::F16,
    };
    let mut rng = Rng::new(11);
    let mut checks = Vec::new();
    for d in [1, 8, 31, 64, 2048, 4096] {
        for t in [1, 3, 130] {
            for &case in CASES {
                let (got, want) = run(gpu, precision, &mut rng, case, t, d).await?;
                checks.push(Check::new(
                    format!("{case:?} t={t} d={d} {precision:?}"),
                    &got,
                    &want,
                    bound,
                ));
            }
        }
    }
    Ok(checks)
}

/// Runs one case; returns (GPU output, reference).
async fn run(
    gpu: &Gpu,
    precision: Precision,
    rng: &mut Rng,
    case: Case,
    t: usize,
    d: usize,
) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
    let dtype = precision.dtype();
    let mut data = |n: usize, scale: f32, mean: f32| {
        let v: Vec<f32> = rng.normal_vec(n, scale).iter().map(|v| v + mean).collect();
        round_to(&v, precision)
    };
    let out = gpu.empty(&[t, d], dtype)?;
    // Each arm submits before its inputs go out of scope: a dropped tensor's
    // buffer returns to the pool at once, and another thread's upload into
    // it would land before a later submit of this step.
    let mut step = gpu.step("norm check");
    let want = match case {
        Case::Rms
        | Case::RmsWeightStrided
        | Case::RmsBlockMod
        | Case::RmsWeightBroadcastMod
        | Case::Layer
        | Case::LayerFinalMod
        | Case::LayerFinalBroadcast => {
            let (norm, eps) = match case {
                Case::Layer | Case::LayerFinalMod | Case::LayerFinalBroadcast => {
                    (Norm::Layer, 1e-6)
                }
                Case::RmsWeightStrided => (Norm::Rms, 1e-5),
                _ => (Norm::Rms, 1e-6),
            };
            let strided = matches!(case, Case::RmsWeightStrided);
            let (row, offset) = if strided { (3 * d, d) } else { (d, 0) };
            let mean = if norm == Norm::Layer { 4.0 } else { 0.0 };
            let xs = data(t * row, 1.0, mean);
            let x = gpu.upload(&xs, &[t, row], dtype)?;
            let weighted = matches!(case, Case::RmsWeightStrided | Case::RmsWeightBroadcastMod);
            let ws = weighted.then(|| data(d, 0.5, 1.0));
            let w = ws
                .as_ref()
                .map(|w| gpu.upload(w, &[d], dtype))
                .transpose()?;
            let spec = match case {
                Case::RmsBlockMod => Some(ModSpec::chunks(t, 6, 0, 1, true)),
                Case::RmsWeightBroadcastMod => Some(ModSpec::chunks(1, 6, 3, 4, false)),
                Case::LayerFinalMod => Some(ModSpec::shared(t)),
                Case::LayerFinalBroadcast => Some(ModSpec::shared(1)),
                _ => None,
            };
            let m = spec
                .as_ref()
                .map(|s| s.upload(gpu, precision, &mut data, d))
                .transpose()?;
            let modulation = m.as_ref().zip(spec.as_ref()).map(|(m, s)| s.view(m, d));
            let xv = Rows {
                tensor: &x,
                rows: t,
                cols: d,
                row_stride: row,
                offset,
            };
            encode(
                &mut step,
                norm,
                xv,
                w.as_ref(),
                eps,
                modulation.as_ref(),
                &out,
            )?;
            let xc = gather(&xs, t, d, row, offset).unwrap_or_default();
            let sc = m.as_ref().map(|m| (&m.shift[..], &m.scale[..]));
            step.submit()?;
            reference(norm, &xc, d, ws.as_deref(), eps, sc)
        }
        Case::GatePerToken | Case::GateBroadcast => {
            let (xs, ys) = (data(t * d, 1.0, 0.0), data(t * d, 1.0, 0.0));
            let x = gpu.upload(&xs, &[t, d], dtype)?;
            let y = gpu.upload(&ys, &[t, d], dtype)?;
            let (rows, k, with_table) = match case {
                Case::GatePerToken => (t, 2, true),
                _ => (1, 5, false),
            };
            let es = data(rows * 6 * d, 0.5, 0.0);
            let emb = gpu.upload(&es, &[rows, 6 * d], dtype)?;
            let ts = data(6 * d, 0.3, 0.0);
            let table = with_table
                .then(|| gpu.upload(&ts, &[6, d], dtype))
                .transpose()?;
            let gate = Gate::chunk(&emb, table.as_ref(), d, 6, k);
            gated_residual(&mut step, &x, &y, &gate, &out)?;
            let mut g = gather(&es, rows, d, 6 * d, k * d).unwrap_or_default();
            if with_table {
                add_row(&mut g, &ts[k * d..(k + 1) * d]);
            }
            step.submit()?;
            reference_gated_residual(&xs, &ys, &g, d)
        }
        Case::Pixel | Case::PixelWeight | Case::PixelVaeMod => {
            // Channels C = d, positions S = t; x is item 1 of a [2, C, S] batch.
            let (c, s) = (d, t);
            let xs = data(2 * c * s, 1.0, 0.5);
            let x = gpu.upload(&xs, &[2, c, s], dtype)?;
            let ws = matches!(case, Case::PixelWeight).then(|| data(c, 0.5, 1.0));
            let w = ws
                .as_ref()
                .map(|w| gpu.upload(w, &[c], dtype))
                .transpose()?;
            let spec = matches!(case, Case::PixelVaeMod).then(|| ModSpec::chunks(1, 4, 2, 3, true));
            let m = spec
                .as_ref()
                .map(|sp| sp.upload(gpu, precision, &mut data, c))
                .transpose()?;
            let modulation = m.as_ref().zip(spec.as_ref()).map(|(m, sp)| sp.view(m, c));
            let xv = Rows {
                tensor: &x,
                rows: c,
                cols: s,
                row_stride: s,
                offset: c * s,
            };
            pixel_norm(&mut step, xv, w.as_ref(), 1e-8, modulation.as_ref(), &out)?;
            let sc = m.as_ref().map(|m| (&m.shift[..], &m.scale[..]));
            step.submit()?;
            reference_pixel(&xs[c * s..], c, ws.as_deref(), 1e-8, sc)
        }
    };
    Ok((gpu.read(&out).await?, want))
}

impl ModSpec {
    fn chunks(rows: usize, chunks: usize, k_shift: usize, k_scale: usize, table: bool) -> ModSpec {
        ModSpec {
            rows,
            chunks,
            k_shift,
            k_scale,
            table: table.then_some((k_shift, k_scale)),
        }
    }

    /// LTX's norm_out layout: one emb row for both, table rows 0 and 1.
    fn shared(rows: usize) -> ModSpec {
        ModSpec {
            rows,
            chunks: 1,
            k_shift: 0,
            k_scale: 0,
            table: Some((0, 1)),
        }
    }

    fn upload(
        &self,
        gpu: &Gpu,
        precision: Precision,
        data: &mut impl FnMut(usize, f32, f32) -> Vec<f32>,
        d: usize,
    ) -> Result<ModData, GpuError> {
        let dtype = precision.dtype();
        let row = self.chunks * d;
        let es = data(self.rows * row, 0.5, 0.0);
        let mut shift = gather(&es, self.rows, d, row, self.k_shift * d).unwrap_or_default();
        let mut scale = gather(&es, self.rows, d, row, self.k_scale * d).unwrap_or_default();
        let table = match self.table {
            Some((rs, rc)) => {
                let n = self.chunks.max(2);
                let ts = data(n * d, 0.3, 0.0);
                add_row(&mut shift, &ts[rs * d..(rs + 1) * d]);
                add_row(&mut scale, &ts[rc * d..(rc + 1) * d]);
                Some(gpu.upload(&ts, &[n, d], dtype)?)
            }
            None => None,
        };
        Ok(ModData {
            emb: gpu.upload(&es, &[self.rows, row], dtype)?,
            table,
            shift,
            scale,
        })
    }

    /// The view through the public constructors, as a model would build it.
    fn view<'a>(&self, m: &'a ModData, d: usize) -> Modulation<'a> {
        match (&m.table, self.table) {
            (Some(table), Some((0, 1))) if self.chunks == 1 => Modulation::shared(&m.emb, table, d),
            (table, _) => Modulation::chunks(
                &m.emb,
                table.as_ref(),
                d,
                self.chunks,
                self.k_shift,
                self.k_scale,
            ),
        }
    }
}

/// Adds `row` ([d]) to every row of `rows` ([n, d]).
fn add_row(rows: &mut [f32], row: &[f32]) {
    for chunk in rows.chunks_mut(row.len().max(1)) {
        for (a, b) in chunk.iter_mut().zip(row) {
            *a += b;
        }
    }
}
