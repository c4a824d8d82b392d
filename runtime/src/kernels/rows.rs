//! Strided row views: how kernels read a slice of a bigger tensor (a head of
//! a fused projection, one of the six adaLN vectors inside `[T, 6 D]`)
//! without a copy.

use crate::gpu::{GpuError, Tensor};

/// `rows` rows of `cols` values inside a row-major tensor: element (r, c)
/// is at `offset + r * row_stride + c` (in elements).
#[derive(Clone, Copy, Debug)]
pub struct Rows<'a> {
    pub tensor: &'a Tensor,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub offset: usize,
}

impl<'a> Rows<'a> {
    /// All of a contiguous tensor seen as rows of `cols` (`numel / cols` rows).
    pub fn contiguous(tensor: &'a Tensor, cols: usize) -> Rows<'a> {
        Rows {
            tensor,
            rows: tensor.numel().checked_div(cols).unwrap_or(0),
            cols,
            row_stride: cols,
            offset: 0,
        }
    }

    /// Chunk `k` of `chunks` along the last axis of a `[rows, chunks * cols]`
    /// tensor: torch's `t.reshape(rows, chunks, cols)[:, k]`, e.g. LTX's
    /// `shift_msa, scale_msa, gate_msa, ... = (table + temb).unbind(2)`.
    pub fn chunk(tensor: &'a Tensor, cols: usize, chunks: usize, k: usize) -> Rows<'a> {
        let row = cols * chunks;
        Rows {
            tensor,
            rows: tensor.numel().checked_div(row).unwrap_or(0),
            cols,
            row_stride: row,
            offset: k * cols,
        }
    }

    /// Checks that every element lies inside the tensor and that indices fit
    /// the shaders' u32 arithmetic.
    pub fn check(&self, op: &'static str, what: &str) -> Result<(), GpuError> {
        if self.cols == 0 {
            return Err(GpuError::shape(op, format!("{what} has rows of 0 values")));
        }
        if self.rows > 1 && self.row_stride < self.cols {
            return Err(GpuError::shape(
                op,
                format!(
                    "{what}: row stride {} is shorter than a row of {}",
                    self.row_stride, self.cols
                ),
            ));
        }
        let end = self
            .rows
            .checked_sub(1)
            .and_then(|last| last.checked_mul(self.row_stride))
            .and_then(|v| v.checked_add(self.offset))
            .and_then(|v| v.checked_add(self.cols));
        let numel = self.tensor.numel();
        match end {
            // No rows: nothing is read.
            None if self.rows == 0 => Ok(()),
            Some(end) if end <= numel && end <= u32::MAX as usize => Ok(()),
            _ => Err(GpuError::shape(
                op,
                format!(
                    "{what}: {} rows of {} at offset {} stride {} overrun {:?}",
                    self.rows, self.cols, self.offset, self.row_stride, self.tensor.shape
                ),
            )),
        }
    }
}

/// `v` as a shader index, or a typed error.
pub(crate) fn to_u32(op: &'static str, v: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::shape(op, format!("{what} = {v} exceeds u32")))
}

/// WebGPU forbids binding one buffer as both read and read-write in a
/// dispatch; say so in terms of the op rather than as a validation error.
pub(crate) fn check_out_of_place(
    op: &'static str,
    out: &Tensor,
    inputs: &[&Tensor],
) -> Result<(), GpuError> {
    if inputs.iter().any(|t| t.buffer() == out.buffer()) {
        return Err(GpuError::shape(
            op,
            "out shares its buffer with an input; this kernel is out of place",
        ));
    }
    Ok(())
}

/// The values a [`Rows`] view selects from `data` (the whole tensor), as a
/// contiguous `[rows, cols]` vector; `None` if the view overruns `data`.
/// For references and tests.
pub fn gather(
    data: &[f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    offset: usize,
) -> Option<Vec<f32>> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let start = offset + r * row_stride;
        out.extend_from_slice(data.get(start..start + cols)?);
    }
    Some(out)
}
