//! A loaded tensor: its manifest entry plus the verified shard bytes its parts
//! live in. Gives typed byte views, a CPU decode to f32, and the upload to
//! GPU tensors, split by rows where the device's binding limit requires.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use half::f16;

use super::BundleError;
use super::layout::{RowLayout, WeightDType};
use super::manifest::TensorEntry;
use crate::gpu::{DType, Gpu, Tensor};
use crate::quant::Quantized;

/// A tensor whose shards have all arrived and been verified.
#[derive(Clone)]
pub struct TensorData {
    pub entry: TensorEntry,
    layout: RowLayout,
    /// One verified shard per part, in part order.
    shards: Vec<Arc<Vec<u8>>>,
}

impl std::fmt::Debug for TensorData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TensorData({}, {}, {:?})",
            self.entry.key(),
            self.entry.dtype.name(),
            self.entry.shape
        )
    }
}

/// One row range of a tensor on the GPU. q4/q8 values are `U32` words
/// `[rows, row_len / per_word]` with `F16` scales `[rows, row_len / group]`;
/// f16/f32 tensors are `[rows, ...]` of their own type with no scales.
#[derive(Clone, Debug)]
pub struct UploadedPart {
    pub rows: Range<usize>,
    pub values: Tensor,
    pub scales: Option<Tensor>,
}

impl TensorData {
    /// `shards[i]` must be the verified bytes of `entry.parts[i].shard`, and
    /// `entry` must come from a validated manifest.
    pub(crate) fn new(
        entry: TensorEntry,
        shards: Vec<Arc<Vec<u8>>>,
    ) -> Result<TensorData, BundleError> {
        let layout = entry.layout()?;
        if shards.len() != entry.parts.len() {
            return Err(BundleError::tensor(&entry.key(), "a part has no shard"));
        }
        for (p, s) in entry.parts.iter().zip(&shards) {
            for r in std::iter::once(p.values).chain(p.scales) {
                if r.end().is_none_or(|end| end > s.len() as u64) {
                    return Err(BundleError::tensor(&entry.key(), "region past its shard"));
                }
            }
        }
        Ok(TensorData {
            entry,
            layout,
            shards,
        })
    }

    pub fn layout(&self) -> &RowLayout {
        &self.layout
    }

    fn slice(&self, part: usize, r: super::layout::Region) -> &[u8] {
        // In range: checked in `new`.
        &self.shards[part][r.offset as usize..(r.offset + r.bytes) as usize]
    }

    /// The packed values of part `i` (little-endian words for q4/q8).
    pub fn values(&self, i: usize) -> &[u8] {
        self.slice(i, self.entry.parts[i].values)
    }

    /// The packed f16 scales of part `i` (q4/q8 only).
    pub fn scales(&self, i: usize) -> Option<&[u8]> {
        self.entry.parts[i].scales.map(|r| self.slice(i, r))
    }

    /// Part `i` as the quantiser's own type (q4/q8 only).
    pub fn quantized(&self, i: usize) -> Option<Quantized> {
        let kind = self.entry.dtype.quant()?;
        let part = &self.entry.parts[i];
        let rows = part.rows[1] - part.rows[0];
        let groups = rows * self.layout.groups_per_row();
        let scales: Vec<f16> = self.scales(i)?[..groups * 2]
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(Quantized {
            kind,
            n: rows,
            k: self.layout.row_len,
            group: self.layout.group,
            values: words(self.values(i)),
            scales,
        })
    }

    /// Every element as f32, row-major (q4/q8 dequantised).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.layout.numel());
        for i in 0..self.entry.parts.len() {
            match self.entry.dtype {
                WeightDType::Q4 | WeightDType::Q8 => {
                    if let Some(q) = self.quantized(i) {
                        out.extend(q.dequantize());
                    }
                }
                WeightDType::F16 => out.extend(
                    self.values(i)
                        .chunks_exact(2)
                        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
                ),
                WeightDType::F32 => out.extend(
                    self.values(i)
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ),
            }
        }
        out
    }

    /// Rows `rows` as f32 (q4/q8 dequantised), without decoding the rest:
    /// an embedding lookup reads a few rows of a large table this way.
    pub fn rows_f32(&self, rows: Range<usize>) -> Vec<f32> {
        let l = &self.layout;
        let values = self.gather_values(&rows);
        match self.entry.dtype {
            WeightDType::Q4 | WeightDType::Q8 => {
                let Some(kind) = self.entry.dtype.quant() else {
                    return Vec::new();
                };
                let g = l.groups_per_row();
                let scales: Vec<f16> = self
                    .gather_scales(&rows, g)
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect();
                Quantized {
                    kind,
                    n: rows.len(),
                    k: l.row_len,
                    group: l.group,
                    values: words(&values),
                    scales,
                }
                .dequantize()
            }
            WeightDType::F16 => values
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            WeightDType::F32 => values
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    }

    /// Uploads the tensor, in row ranges small enough for one storage binding.
    pub fn upload(&self, gpu: &Gpu) -> Result<Vec<UploadedPart>, BundleError> {
        let limit = gpu
            .limits
            .max_storage_buffer_binding_size
            .min(gpu.limits.max_buffer_size);
        self.upload_split(gpu, limit)
    }

    /// [`Self::upload`] with an explicit per-buffer byte limit.
    pub fn upload_split(&self, gpu: &Gpu, limit: u64) -> Result<Vec<UploadedPart>, BundleError> {
        let l = &self.layout;
        // Values are the larger region: a q4 row has 4 bytes of values per
        // byte of scales (group 32), f16/f32 rows have no scales.
        let row_bytes = l.values_bytes(1);
        let rows_per = (limit / row_bytes.max(1)) as usize;
        if rows_per == 0 && l.rows > 0 {
            return Err(BundleError::tensor(
                &self.entry.key(),
                format!("{row_bytes} bytes of rows exceed the {limit}-byte binding limit"),
            ));
        }
        let mut out = Vec::new();
        let mut start = 0;
        while start < l.rows {
            let end = (start + rows_per).min(l.rows);
            out.push(self.upload_rows(gpu, start..end)?);
            start = end;
        }
        Ok(out)
    }

    fn upload_rows(&self, gpu: &Gpu, rows: Range<usize>) -> Result<UploadedPart, BundleError> {
        let l = &self.layout;
        let n = rows.len();
        let values = self.gather_values(&rows);
        let (shape, dtype) = match self.entry.dtype.quant() {
            Some(kind) => (vec![n, l.row_len / kind.per_word()], DType::U32),
            None => {
                let mut shape = self.entry.shape.clone();
                match shape.first_mut() {
                    Some(d) => *d = n,
                    None => shape = vec![n],
                }
                let dt = if self.entry.dtype == WeightDType::F16 {
                    DType::F16
                } else {
                    DType::F32
                };
                (shape, dt)
            }
        };
        let values = gpu.upload_bytes(&values, &shape, dtype)?;
        let scales = match self.entry.dtype.quant() {
            Some(_) => {
                let g = l.groups_per_row();
                // Exactly n * g halves (the packing pad dropped), gathered by row.
                let bytes = self.gather_scales(&rows, g);
                Some(gpu.upload_bytes(&bytes, &[n, g], DType::F16)?)
            }
            None => None,
        };
        Ok(UploadedPart {
            rows,
            values,
            scales,
        })
    }

    /// The value bytes of `rows`, borrowed when one part holds them all.
    pub fn gather_values(&self, rows: &Range<usize>) -> Cow<'_, [u8]> {
        let rb = self.layout.values_bytes(1) as usize;
        let mut pieces = Vec::new();
        for (i, p) in self.entry.parts.iter().enumerate() {
            let (a, b) = (rows.start.max(p.rows[0]), rows.end.min(p.rows[1]));
            if a >= b {
                continue;
            }
            let v = self.values(i);
            pieces.push(&v[(a - p.rows[0]) * rb..(b - p.rows[0]) * rb]);
        }
        match pieces.as_slice() {
            [one] => Cow::Borrowed(one),
            _ => Cow::Owned(pieces.concat()),
        }
    }

    /// The f16 scale bytes of `rows` (q4/q8), `groups` per row.
    pub fn gather_scales(&self, rows: &Range<usize>, groups: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(rows.len() * groups * 2);
        for (i, p) in self.entry.parts.iter().enumerate() {
            let (a, b) = (rows.start.max(p.rows[0]), rows.end.min(p.rows[1]));
            if a >= b {
                continue;
            }
            // Halves, not words: a range may start mid-word when a row has
            // an odd number of groups; `upload_bytes` pads the end.
            if let Some(s) = self.scales(i) {
                let half = |r: usize| (r - p.rows[0]) * groups * 2;
                out.extend_from_slice(&s[half(a)..half(b)]);
            }
        }
        out
    }
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
