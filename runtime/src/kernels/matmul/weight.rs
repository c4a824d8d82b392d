//! Linear-layer weights on the GPU: one owned type for every format, split by
//! rows into parts that each fit one storage binding.

use half::f16;

use crate::gpu::{DType, Gpu, GpuError, Tensor};
use crate::quant::{self, QuantKind};

/// How a weight's values are stored (see ARCHITECTURE.md "Quantised weights").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    F32,
    /// f16 values, read as packed u32 words (no shader-f16 needed).
    F16,
    Q8,
    Q4,
}

impl WeightFormat {
    pub const ALL: [WeightFormat; 4] = [
        WeightFormat::F32,
        WeightFormat::F16,
        WeightFormat::Q8,
        WeightFormat::Q4,
    ];

    pub fn quant(self) -> Option<QuantKind> {
        match self {
            WeightFormat::Q8 => Some(QuantKind::Q8),
            WeightFormat::Q4 => Some(QuantKind::Q4),
            WeightFormat::F32 | WeightFormat::F16 => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::F16 => "f16",
            WeightFormat::Q8 => "q8",
            WeightFormat::Q4 => "q4",
        }
    }

    /// The shader flags that select this format in `matmul.wgsl`.
    pub(crate) fn flags(self) -> &'static [&'static str] {
        match self {
            WeightFormat::F32 => &[],
            WeightFormat::F16 => &["WF16"],
            WeightFormat::Q8 => &["Q8", "QUANT"],
            WeightFormat::Q4 => &["Q4", "QUANT"],
        }
    }

    /// Bytes of one row's values (K must suit the format; see [`check_shape`]).
    pub fn row_bytes(self, k: usize) -> usize {
        match self {
            WeightFormat::F32 => 4 * k,
            WeightFormat::F16 => 2 * k,
            WeightFormat::Q8 => k,
            WeightFormat::Q4 => k / 2,
        }
    }

    /// Bytes of one row's f16 scales (zero for f32/f16 weights).
    pub fn row_scale_bytes(self, k: usize, group: usize) -> usize {
        match self.quant() {
            Some(_) => 2 * (k / group.max(1)),
            None => 0,
        }
    }
}

/// A block of consecutive rows of a weight, bound as its own buffers.
#[derive(Clone, Debug)]
pub struct WeightPart {
    /// The first row (output feature) this part holds.
    pub row0: usize,
    pub rows: usize,
    /// f32 `[rows, K]`, f16 `[rows, K]`, or u32 `[rows, K / (32 / bits)]`.
    pub values: Tensor,
    /// f16 `[rows, K / group]` for q4/q8, `None` otherwise.
    pub scales: Option<Tensor>,
}

/// A `[n, k]` (PyTorch `[out, in]`) weight, as the matmul kernels read it.
#[derive(Clone, Debug)]
pub struct Weight {
    pub format: WeightFormat,
    pub n: usize,
    pub k: usize,
    /// Quantisation group along K (q4/q8; ignored otherwise).
    pub group: usize,
    pub parts: Vec<WeightPart>,
}

fn err(message: impl Into<String>) -> GpuError {
    GpuError::shape("matmul weight", message)
}

/// Checks that a `[n, k]` weight can be stored in `format`.
pub fn check_shape(format: WeightFormat, n: usize, k: usize, group: usize) -> Result<(), GpuError> {
    if n == 0 || k == 0 {
        return Err(err(format!("empty weight [{n}, {k}]")));
    }
    if let Some(kind) = format.quant() {
        quant::check_shape(kind, n, k, group).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// The weights the GPU multiplies by when `w` is stored in `format`: f16
/// rounding, or the quantise/dequantise round trip. References use this, so
/// kernel checks measure arithmetic error only.
pub fn dequantized(
    w: &[f32],
    n: usize,
    k: usize,
    format: WeightFormat,
    group: usize,
) -> Result<Vec<f32>, GpuError> {
    check_shape(format, n, k, group)?;
    if w.len() != n * k {
        return Err(err(format!("{} values for [{n}, {k}]", w.len())));
    }
    Ok(match format.quant() {
        None if format == WeightFormat::F32 => w.to_vec(),
        None => w.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
        Some(kind) => quant::quantize(w, n, k, group, kind)
            .map_err(|e| err(e.to_string()))?
            .dequantize(),
    })
}

/// The most bytes one part's buffer may have under a binding limit of
/// `limit` bytes. The buffer pool rounds sizes up to 8 classes per power of
/// two, so stay on a class boundary that the rounded buffer still fits under.
fn part_byte_cap(limit: u64) -> u64 {
    if limit < 256 {
        return 0;
    }
    let top = 1u64 << (63 - limit.leading_zeros());
    let step = (top / 8).max(1);
    limit / step * step
}

fn device_limit(gpu: &Gpu) -> u64 {
    gpu.limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size)
}

/// The most rows one part may hold under a binding limit of `limit` bytes:
/// its values and scales must each fit, and element indices a u32.
pub fn rows_per_part(limit: u64, format: WeightFormat, k: usize, group: usize) -> usize {
    let cap = part_byte_cap(limit) as usize;
    let by_values = cap / format.row_bytes(k).max(1);
    let by_scales = cap / format.row_scale_bytes(k, group).max(1);
    let by_index = (u32::MAX as usize - 16) / k.max(1);
    by_values.min(by_scales).min(by_index)
}

impl Weight {
    /// Uploads `w` (`[n, k]` row-major f32) in `format`, quantising through
    /// [`crate::quant`] for q4/q8 and splitting by rows where one binding
    /// would be too large.
    pub fn upload(
        gpu: &Gpu,
        w: &[f32],
        n: usize,
        k: usize,
        format: WeightFormat,
        group: usize,
    ) -> Result<Weight, GpuError> {
        Weight::upload_split(gpu, w, n, k, format, group, None)
    }

    /// [`Weight::upload`] with at most `max_rows` rows per part (tests use it
    /// to exercise splitting without 128 MiB weights).
    pub fn upload_split(
        gpu: &Gpu,
        w: &[f32],
        n: usize,
        k: usize,
        format: WeightFormat,
        group: usize,
        max_rows: Option<usize>,
    ) -> Result<Weight, GpuError> {
        check_shape(format, n, k, group)?;
        if w.len() != n * k {
            return Err(err(format!("{} values for [{n}, {k}]", w.len())));
        }
        match format {
            WeightFormat::F32 => Weight::from_bytes(
                gpu,
                format,
                n,
                k,
                group,
                bytemuck::cast_slice(w),
                &[],
                max_rows,
            ),
            WeightFormat::F16 => {
                let h: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
                Weight::from_bytes(
                    gpu,
                    format,
                    n,
                    k,
                    group,
                    bytemuck::cast_slice(&h),
                    &[],
                    max_rows,
                )
            }
            WeightFormat::Q8 | WeightFormat::Q4 => {
                let kind = format
                    .quant()
                    .ok_or_else(|| err("not a quantised format"))?;
                let q = quant::quantize(w, n, k, group, kind).map_err(|e| err(e.to_string()))?;
                Weight::from_bytes(
                    gpu,
                    format,
                    n,
                    k,
                    group,
                    bytemuck::cast_slice(&q.values),
                    bytemuck::cast_slice(&q.scales),
                    max_rows,
                )
            }
        }
    }

    /// Builds a weight from its stored bytes (little-endian, as bundles hold
    /// them): `values` in `format`, `scales` f16 `[n, k / group]` for q4/q8
    /// (empty otherwise). Parts get at most `max_rows` rows, and never more
    /// than one binding holds.
    #[allow(clippy::too_many_arguments)]
    pub fn from_bytes(
        gpu: &Gpu,
        format: WeightFormat,
        n: usize,
        k: usize,
        group: usize,
        values: &[u8],
        scales: &[u8],
        max_rows: Option<usize>,
    ) -> Result<Weight, GpuError> {
        check_shape(format, n, k, group)?;
        let (row_bytes, scale_bytes) = (format.row_bytes(k), format.row_scale_bytes(k, group));
        if values.len() != n * row_bytes || scales.len() != n * scale_bytes {
            return Err(err(format!(
                "{format:?} [{n}, {k}] group {group}: {} value bytes and {} scale bytes, \
                 expected {} and {}",
                values.len(),
                scales.len(),
                n * row_bytes,
                n * scale_bytes
            )));
        }
        let per_part =
            Weight::max_rows_per_part(gpu, format, k, group).min(max_rows.unwrap_or(usize::MAX));
        if per_part == 0 {
            return Err(GpuError::TooLarge {
                label: format!("one row of a {format:?} [{n}, {k}] weight"),
                bytes: row_bytes as u64,
                limit: part_byte_cap(device_limit(gpu)),
            });
        }
        let mut parts = Vec::with_capacity(n.div_ceil(per_part));
        for row0 in (0..n).step_by(per_part) {
            let rows = per_part.min(n - row0);
            let bytes = &values[row0 * row_bytes..(row0 + rows) * row_bytes];
            let values = match format.quant() {
                None => gpu.upload_bytes(
                    bytes,
                    &[rows, k],
                    if format == WeightFormat::F32 {
                        DType::F32
                    } else {
                        DType::F16
                    },
                )?,
                Some(kind) => gpu.upload_bytes(bytes, &[rows, k / kind.per_word()], DType::U32)?,
            };
            let scales = match format.quant() {
                None => None,
                Some(_) => Some(gpu.upload_bytes(
                    &scales[row0 * scale_bytes..(row0 + rows) * scale_bytes],
                    &[rows, k / group],
                    DType::F16,
                )?),
            };
            parts.push(WeightPart {
                row0,
                rows,
                values,
                scales,
            });
        }
        Ok(Weight {
            format,
            n,
            k,
            group,
            parts,
        })
    }

    /// The most rows one part may hold on this device (see [`rows_per_part`]).
    pub fn max_rows_per_part(gpu: &Gpu, format: WeightFormat, k: usize, group: usize) -> usize {
        rows_per_part(device_limit(gpu), format, k, group)
    }

    /// Checks that the parts cover the rows in order with tensors of the
    /// declared format and shapes (the fields are public; encode calls this).
    pub fn check(&self) -> Result<(), GpuError> {
        check_shape(self.format, self.n, self.k, self.group)?;
        let mut next = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let (values_shape, dtype) = match self.format {
                WeightFormat::F32 => ([part.rows, self.k], DType::F32),
                WeightFormat::F16 => ([part.rows, self.k], DType::F16),
                WeightFormat::Q8 => ([part.rows, self.k / 4], DType::U32),
                WeightFormat::Q4 => ([part.rows, self.k / 8], DType::U32),
            };
            let values_ok = part.values.dtype == dtype
                && part.values.numel() == values_shape[0] * values_shape[1];
            let scales_ok = match (&part.scales, self.format.quant()) {
                (None, None) => true,
                (Some(s), Some(_)) => {
                    s.dtype == DType::F16 && s.numel() == part.rows * (self.k / self.group)
                }
                _ => false,
            };
            if part.row0 != next || part.rows == 0 || !values_ok || !scales_ok {
                return Err(err(format!(
                    "{:?} [{}, {}]: part {i} (rows {}..+{}, values {:?}, scales {:?}) \
                     does not follow row {next} as expected",
                    self.format, self.n, self.k, part.row0, part.rows, part.values, part.scales
                )));
            }
            next += part.rows;
        }
        if next != self.n {
            return Err(err(format!(
                "{:?} [{}, {}]: parts cover {next} rows",
                self.format, self.n, self.k
            )));
        }
        Ok(())
    }

    /// Bytes on the GPU (values and scales, before pool rounding).
    pub fn bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.values.bytes() + p.scales.as_ref().map_or(0, Tensor::bytes))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_fit_the_binding_after_pool_rounding() {
        // The pool's size classes: 8 per power of two, rounding up.
        let class = |b: u64| {
            let b = b.max(256);
            let step = 1u64 << (63 - b.leading_zeros() as u64).saturating_sub(3);
            b.div_ceil(step) * step
        };
        for limit in [128u64 << 20, (1 << 31) - 1, u32::MAX as u64, 1000, 300] {
            for format in WeightFormat::ALL {
                for k in [32usize, 4096, 10240] {
                    let rows = rows_per_part(limit, format, k, 32);
                    let bytes = (rows * format.row_bytes(k)) as u64;
                    assert!(
                        class(bytes.div_ceil(4) * 4) <= limit,
                        "{limit} {format:?} {k}"
                    );
                    // Not needlessly small: one more row would not fit.
                    let more = ((rows + 1) * format.row_bytes(k)) as u64;
                    assert!(
                        more > part_byte_cap(limit) || rows * k >= (u32::MAX as usize - 16) - k
                    );
                }
            }
        }
        // 128 MiB holds a 4096-wide f32 weight's 8192 rows exactly.
        assert_eq!(rows_per_part(128 << 20, WeightFormat::F32, 4096, 32), 8192);
        assert_eq!(rows_per_part(128 << 20, WeightFormat::Q4, 4096, 32), 65536);
    }

    #[test]
    fn shapes_the_format_cannot_hold_are_errors() {
        assert!(check_shape(WeightFormat::F32, 3, 37, 0).is_ok());
        assert!(check_shape(WeightFormat::F16, 0, 8, 32).is_err());
        assert!(check_shape(WeightFormat::Q4, 3, 48, 32).is_err());
        assert!(check_shape(WeightFormat::Q4, 3, 48, 12).is_err());
        assert!(check_shape(WeightFormat::Q8, 3, 48, 16).is_ok());
        assert!(dequantized(&[0.0; 5], 2, 3, WeightFormat::F32, 32).is_err());
        let w = [0.5f32, -1.0, 0.1, 1.0 / 3.0];
        let d = dequantized(&w, 1, 4, WeightFormat::F16, 32).unwrap_or_default();
        assert_eq!(d[3], f16::from_f32(1.0 / 3.0).to_f32());
    }
}
