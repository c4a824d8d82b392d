//! Normalisations and adaLN (shaders/norm.wgsl), variance in f32:
//!
//! - RMSNorm with or without weight: T5's `T5LayerNorm` (weight, eps 1e-6),
//!   LTX's attention `norm_q` / `norm_k` (weight over heads * head_dim,
//!   eps 1e-5) and block `norm1` / `norm2` (no weight, eps 1e-6);
//! - LayerNorm without affine: LTX's final `norm_out` (eps 1e-6);
//! - pixel norm: the LTX VAE's `RMSNorm(C, eps=1e-8)` applied over the
//!   channels of channels-first `[C, S]` activations (`movedim(1, -1)`);
//!
//! each optionally followed by adaLN `n * (1 + scale) + shift`; and the gated
//! residual `x + gate * y`.
//!
//! LTX's adaLN vectors are `scale_shift_table[k] + temb[:, k D .. (k + 1) D]`
//! (`temb` is `[T_mod, 6 D]`, T_mod = 1 or one row per token). The kernels
//! read the `temb` chunk through a strided [`Rows`] view and add the table
//! row themselves, so neither the sum nor the split is ever materialised.
//!
//! Weights and tables are in the activation dtype, like elementwise biases.

use bytemuck::{Pod, Zeroable};
use framecast_shaders::Kernel;

use super::rows::{check_out_of_place, to_u32};
use super::{Rows, check_numel, groups_1d, precision_of};
use crate::gpu::{Binding, GpuError, PipelineKey, Step, Tensor};

mod check;
pub use check::self_check;

/// Mirrors `Params` of norm.wgsl without GATE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub rows: u32,
    pub d: u32,
    pub x_stride: u32,
    pub x_offset: u32,
    pub eps: f32,
    pub mod_rows: u32,
    pub shift_stride: u32,
    pub shift_offset: u32,
    pub scale_stride: u32,
    pub scale_offset: u32,
    pub table_shift: u32,
    pub table_scale: u32,
}

/// Mirrors `Params` of norm.wgsl with GATE.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct GateParams {
    pub n: u32,
    pub d: u32,
    pub gate_rows: u32,
    pub gate_stride: u32,
    pub gate_offset: u32,
    pub table_offset: u32,
    pub _pad: [u32; 2],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    /// `x / sqrt(mean(x^2) + eps)`
    Rms,
    /// `(x - mean) / sqrt(var + eps)`, biased variance as torch
    Layer,
}

/// Two rows of a `scale_shift_table` added to shift and scale: the element
/// offsets of each row (each followed by D values).
#[derive(Clone, Copy, Debug)]
pub struct Table<'a> {
    pub tensor: &'a Tensor,
    pub shift: usize,
    pub scale: usize,
}

/// adaLN after the norm: `n * (1 + scale) + shift`, where shift and scale
/// are rows (1 = broadcast over tokens, or one per token) plus an optional
/// table row each.
#[derive(Clone, Copy, Debug)]
pub struct Modulation<'a> {
    pub shift: Rows<'a>,
    pub scale: Rows<'a>,
    pub table: Option<Table<'a>>,
}

impl<'a> Modulation<'a> {
    /// Shift and scale as chunks `k_shift` and `k_scale` of `emb`
    /// `[T_mod, chunks * d]`, plus the same rows of `table` `[chunks, d]`.
    /// LTX's block: `chunks(temb, sst, D, 6, 0, 1)` before attn1 and
    /// `(.., 3, 4)` before the feed-forward; the 0.9.5+ VAE resnet:
    /// `chunks(temb, sst, C, 4, 0, 1)` and `(.., 2, 3)`; the VAE decoder's
    /// output: `chunks(temb, sst, C, 2, 0, 1)`.
    pub fn chunks(
        emb: &'a Tensor,
        table: Option<&'a Tensor>,
        d: usize,
        chunks: usize,
        k_shift: usize,
        k_scale: usize,
    ) -> Modulation<'a> {
        Modulation {
            shift: Rows::chunk(emb, d, chunks, k_shift),
            scale: Rows::chunk(emb, d, chunks, k_scale),
            table: table.map(|tensor| Table {
                tensor,
                shift: k_shift * d,
                scale: k_scale * d,
            }),
        }
    }

    /// LTX's final `norm_out`: `scale_shift_table [2, D] +
    /// embedded_timestep[:, :, None]`, one `emb` row `[T_mod, D]` shared by
    /// shift (table row 0) and scale (table row 1).
    pub fn shared(emb: &'a Tensor, table: &'a Tensor, d: usize) -> Modulation<'a> {
        Modulation {
            shift: Rows::contiguous(emb, d),
            scale: Rows::contiguous(emb, d),
            table: Some(Table {
                tensor: table,
                shift: 0,
                scale: d,
            }),
        }
    }
}

/// The gate of a gated residual: rows (1 or one per token) plus an optional
/// table row `(tensor, element offset)`.
#[derive(Clone, Copy, Debug)]
pub struct Gate<'a> {
    pub gate: Rows<'a>,
    pub table: Option<(&'a Tensor, usize)>,
}

impl<'a> Gate<'a> {
    /// Chunk `k` of `emb` `[T_mod, chunks * d]` plus row `k` of `table`
    /// (LTX: `gate_msa` is chunk 2, `gate_mlp` chunk 5 of 6).
    pub fn chunk(
        emb: &'a Tensor,
        table: Option<&'a Tensor>,
        d: usize,
        chunks: usize,
        k: usize,
    ) -> Gate<'a> {
        Gate {
            gate: Rows::chunk(emb, d, chunks, k),
            table: table.map(|t| (t, k * d)),
        }
    }
}

const WG: u32 = 256;

/// `out [T, D] = norm(x)` (weighted by `weight [D]`, then modulated), with
/// `x` any strided view of T rows of D (e.g. a slice of a fused QKV buffer).
pub fn encode(
    step: &mut Step,
    norm: Norm,
    x: Rows<'_>,
    weight: Option<&Tensor>,
    eps: f32,
    modulation: Option<&Modulation<'_>>,
    out: &Tensor,
) -> Result<(), GpuError> {
    let entry = match norm {
        Norm::Rms => "rms_norm",
        Norm::Layer => "layer_norm",
    };
    x.check(entry, "x")?;
    check_numel(entry, out, x.rows * x.cols, "out")?;
    let layout = Layout {
        rows: x.rows,
        d: x.cols,
        mod_rows: x.rows,
        groups: groups_1d(to_u32(entry, x.rows, "rows")?, 1),
    };
    dispatch(step, entry, &x, layout, weight, eps, modulation, out)
}

/// Pixel norm of VAE activations: `x` is C rows (channels) of S positions,
/// normalised over the channels at each position into `out [C, S]`.
/// Weight and modulation are per channel (`[C]`, single rows).
pub fn pixel_norm(
    step: &mut Step,
    x: Rows<'_>,
    weight: Option<&Tensor>,
    eps: f32,
    modulation: Option<&Modulation<'_>>,
    out: &Tensor,
) -> Result<(), GpuError> {
    let entry = "pixel_norm";
    x.check(entry, "x")?;
    check_numel(entry, out, x.rows * x.cols, "out")?;
    let layout = Layout {
        rows: x.cols,
        d: x.rows,
        mod_rows: 1,
        groups: groups_1d(to_u32(entry, x.cols, "positions")?, WG),
    };
    dispatch(step, entry, &x, layout, weight, eps, modulation, out)
}

/// `out = x + gate * y` over `[T, D]` tensors, D = the gate's `cols`.
pub fn gated_residual(
    step: &mut Step,
    x: &Tensor,
    y: &Tensor,
    gate: &Gate<'_>,
    out: &Tensor,
) -> Result<(), GpuError> {
    let op = "gated_residual";
    gate.gate.check(op, "gate")?;
    let (n, d) = (x.numel(), gate.gate.cols);
    if !n.is_multiple_of(d) {
        return Err(GpuError::shape(
            op,
            format!("x {:?} is not rows of the gate's {d}", x.shape),
        ));
    }
    check_numel(op, y, n, "y")?;
    check_numel(op, out, n, "out")?;
    check_mod_rows(op, "gate", &gate.gate, n / d)?;
    let mut inputs = vec![x, y, gate.gate.tensor];
    let mut table_offset = 0;
    if let Some((t, offset)) = gate.table {
        check_table_row(op, t, offset, d)?;
        inputs.push(t);
        table_offset = offset;
    }
    let mut all = inputs.clone();
    all.push(out);
    let precision = precision_of(op, &all)?;
    check_out_of_place(op, out, &inputs)?;
    let params = GateParams {
        n: to_u32(op, n, "elements")?,
        d: to_u32(op, d, "d")?,
        gate_rows: to_u32(op, gate.gate.rows, "gate rows")?,
        gate_stride: to_u32(op, gate.gate.row_stride, "gate stride")?,
        gate_offset: to_u32(op, gate.gate.offset, "gate offset")?,
        table_offset: to_u32(op, table_offset, "table offset")?,
        _pad: [0; 2],
    };
    let key = PipelineKey::new(Kernel::Norm, "gated_residual")
        .flags(precision.flags())
        .flags(&["GATE"])
        .flag_if(gate.table.is_some(), "TABLE");
    let table = gate.table.map_or(gate.gate.tensor, |(t, _)| t);
    step.dispatch(
        &key,
        &params,
        &[
            Binding::read(x),
            Binding::read(y),
            Binding::read(gate.gate.tensor),
            Binding::read(table),
            Binding::write(out),
        ],
        groups_1d(params.n, WG),
    )
}

/// How an entry point maps onto the work: `rows` normalisations of `d`.
struct Layout {
    rows: usize,
    d: usize,
    /// The row count a modulation may have besides 1.
    mod_rows: usize,
    groups: [u32; 3],
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    step: &mut Step,
    entry: &'static str,
    x: &Rows<'_>,
    layout: Layout,
    weight: Option<&Tensor>,
    eps: f32,
    modulation: Option<&Modulation<'_>>,
    out: &Tensor,
) -> Result<(), GpuError> {
    let op = entry;
    let d = layout.d;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(GpuError::shape(
            op,
            format!("eps {eps} is not a finite >= 0"),
        ));
    }
    let mut inputs = vec![x.tensor];
    if let Some(w) = weight {
        check_numel(op, w, d, "weight")?;
        inputs.push(w);
    }
    let mut params = Params {
        rows: to_u32(op, layout.rows, "rows")?,
        d: to_u32(op, d, "d")?,
        x_stride: to_u32(op, x.row_stride, "x stride")?,
        x_offset: to_u32(op, x.offset, "x offset")?,
        eps,
        mod_rows: 1,
        shift_stride: 0,
        shift_offset: 0,
        scale_stride: 0,
        scale_offset: 0,
        table_shift: 0,
        table_scale: 0,
    };
    if let Some(m) = modulation {
        for (v, what) in [(&m.shift, "shift"), (&m.scale, "scale")] {
            v.check(op, what)?;
            if v.cols != d {
                return Err(GpuError::shape(
                    op,
                    format!("{what} rows have {} values, the norm {d}", v.cols),
                ));
            }
            check_mod_rows(op, what, v, layout.mod_rows)?;
            inputs.push(v.tensor);
        }
        if m.shift.rows != m.scale.rows {
            return Err(GpuError::shape(
                op,
                format!("shift has {} rows, scale {}", m.shift.rows, m.scale.rows),
            ));
        }
        params.mod_rows = to_u32(op, m.shift.rows, "modulation rows")?;
        params.shift_stride = to_u32(op, m.shift.row_stride, "shift stride")?;
        params.shift_offset = to_u32(op, m.shift.offset, "shift offset")?;
        params.scale_stride = to_u32(op, m.scale.row_stride, "scale stride")?;
        params.scale_offset = to_u32(op, m.scale.offset, "scale offset")?;
        if let Some(t) = &m.table {
            check_table_row(op, t.tensor, t.shift, d)?;
            check_table_row(op, t.tensor, t.scale, d)?;
            inputs.push(t.tensor);
            params.table_shift = to_u32(op, t.shift, "table shift")?;
            params.table_scale = to_u32(op, t.scale, "table scale")?;
        }
    }
    let mut all = inputs.clone();
    all.push(out);
    let precision = precision_of(op, &all)?;
    check_out_of_place(op, out, &inputs)?;
    let table = modulation.and_then(|m| m.table);
    let key = PipelineKey::new(Kernel::Norm, entry)
        .flags(precision.flags())
        .flag_if(weight.is_some(), "WEIGHT")
        .flag_if(modulation.is_some(), "MOD")
        .flag_if(table.is_some(), "TABLE");
    // Unused optional bindings are filled with x (the layout is fixed).
    step.dispatch(
        &key,
        &params,
        &[
            Binding::read(x.tensor),
            Binding::read(weight.unwrap_or(x.tensor)),
            Binding::read(modulation.map_or(x.tensor, |m| m.shift.tensor)),
            Binding::read(modulation.map_or(x.tensor, |m| m.scale.tensor)),
            Binding::read(table.map_or(x.tensor, |t| t.tensor)),
            Binding::write(out),
        ],
        layout.groups,
    )
}

fn check_mod_rows(op: &'static str, what: &str, v: &Rows<'_>, rows: usize) -> Result<(), GpuError> {
    if v.rows != 1 && v.rows != rows {
        return Err(GpuError::shape(
            op,
            format!("{what} has {} rows; expected 1 or {rows}", v.rows),
        ));
    }
    Ok(())
}

fn check_table_row(op: &'static str, t: &Tensor, offset: usize, d: usize) -> Result<(), GpuError> {
    if offset.checked_add(d).is_none_or(|end| end > t.numel()) {
        return Err(GpuError::shape(
            op,
            format!("table row at {offset} (+{d}) overruns {:?}", t.shape),
        ));
    }
    Ok(())
}

/// Plain-Rust norms of contiguous rows: `x [rows, d]`, `weight [d]`, and
/// shift/scale `[1 or rows, d]` already summed with their table rows.
pub fn reference(
    norm: Norm,
    x: &[f32],
    d: usize,
    weight: Option<&[f32]>,
    eps: f32,
    modulation: Option<(&[f32], &[f32])>,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for (r, row) in x.chunks(d.max(1)).enumerate() {
        let n = d as f64;
        let mean = match norm {
            Norm::Rms => 0.0,
            Norm::Layer => row.iter().map(|&v| v as f64).sum::<f64>() / n,
        };
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (c, &v) in row.iter().enumerate() {
            let mut y = (v as f64 - mean) * inv;
            if let Some(w) = weight {
                y *= w[c] as f64;
            }
            if let Some((shift, scale)) = modulation {
                let i = if shift.len() == d { c } else { r * d + c };
                y = y * (1.0 + scale[i] as f64) + shift[i] as f64;
            }
            out.push(y as f32);
        }
    }
    out
}

/// Plain-Rust pixel norm: `x [C, S]`, per-channel weight and shift/scale `[C]`.
pub fn reference_pixel(
    x: &[f32],
    channels: usize,
    weight: Option<&[f32]>,
    eps: f32,
    modulation: Option<(&[f32], &[f32])>,
) -> Vec<f32> {
    let s = x.len() / channels.max(1);
    let transposed: Vec<f32> = (0..s)
        .flat_map(|p| (0..channels).map(move |c| x[c * s + p]))
        .collect();
    let y = reference(Norm::Rms, &transposed, channels, weight, eps, modulation);
    (0..channels)
        .flat_map(|c| (0..s).map(move |p| (c, p)))
        .map(|(c, p)| y[p * channels + c])
        .collect()
}

/// Plain-Rust gated residual: `x, y [rows, d]`, `gate [1 or rows, d]`
/// (already summed with its table row).
pub fn reference_gated_residual(x: &[f32], y: &[f32], gate: &[f32], d: usize) -> Vec<f32> {
    (0..x.len())
        .map(|i| {
            let g = if gate.len() == d {
                gate[i % d]
            } else {
                gate[i]
            };
            (x[i] as f64 + g as f64 * y[i] as f64) as f32
        })
        .collect()
}
