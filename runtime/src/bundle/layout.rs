//! Where bytes go in a bundle: element types, the row layout of a tensor, the
//! 256-byte alignment, and the packing of tensors into size-capped shards.
//! The quantizer plans with [`ShardPacker`]; the loader checks every offset
//! against the same arithmetic in [`RowLayout`].

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::BundleError;
use crate::quant::QuantKind;

/// Every region starts at a multiple of this: WebGPU's
/// `minStorageBufferOffsetAlignment`, so a region can be bound in place.
pub const ALIGN: u64 = 256;

pub fn align_up(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// How a tensor is stored in a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    /// Packed int4 values plus f16 group scales (see `quant`).
    Q4,
    /// Packed int8 values plus f16 group scales.
    Q8,
    F16,
    F32,
}

impl WeightDType {
    pub fn quant(self) -> Option<QuantKind> {
        match self {
            WeightDType::Q4 => Some(QuantKind::Q4),
            WeightDType::Q8 => Some(QuantKind::Q8),
            WeightDType::F16 | WeightDType::F32 => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightDType::Q4 => "q4",
            WeightDType::Q8 => "q8",
            WeightDType::F16 => "f16",
            WeightDType::F32 => "f32",
        }
    }

    /// Bits per stored value (scales not counted).
    pub fn bits(self) -> u64 {
        match self {
            WeightDType::Q4 => 4,
            WeightDType::Q8 => 8,
            WeightDType::F16 => 16,
            WeightDType::F32 => 32,
        }
    }
}

impl std::str::FromStr for WeightDType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "q4" => Ok(WeightDType::Q4),
            "q8" => Ok(WeightDType::Q8),
            "f16" => Ok(WeightDType::F16),
            "f32" => Ok(WeightDType::F32),
            _ => Err(format!("unknown weight type {s:?} (q4, q8, f16 or f32)")),
        }
    }
}

/// A byte range inside one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub offset: u64,
    pub bytes: u64,
}

impl Region {
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.bytes)
    }
}

/// A tensor seen as `rows` rows of `row_len` elements: `shape[0]` rows of the
/// remaining dimensions (a conv weight `[out, in, kt, kh, kw]` has rows of
/// `in * kt * kh * kw`; a bias `[n]` has `n` rows of one). Quantisation groups
/// run along a row, so a row range is always a self-contained piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    pub dtype: WeightDType,
    pub rows: usize,
    pub row_len: usize,
    /// Quantisation group (q4/q8 only).
    pub group: usize,
}

impl RowLayout {
    /// Checks that `dtype` can store `shape` with `group` (q4/q8 need whole
    /// groups per row) and that the sizes fit in 64 bits.
    pub fn new(dtype: WeightDType, shape: &[usize], group: usize) -> Result<RowLayout, String> {
        let rows = shape.first().copied().unwrap_or(1);
        let row_len = shape
            .get(1..)
            .unwrap_or(&[])
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or("shape overflows")?;
        rows.checked_mul(row_len)
            .and_then(|n| n.checked_mul(4))
            .filter(|&b| u64::try_from(b).is_ok())
            .ok_or("shape overflows")?;
        if let Some(kind) = dtype.quant() {
            crate::quant::check_shape(kind, rows, row_len, group).map_err(|e| e.to_string())?;
        }
        Ok(RowLayout {
            dtype,
            rows,
            row_len,
            group,
        })
    }

    pub fn numel(&self) -> usize {
        self.rows * self.row_len
    }

    /// Bytes of the values of `rows` whole rows (exact: a q4 row is a whole
    /// number of words since groups are multiples of 8).
    pub fn values_bytes(&self, rows: usize) -> u64 {
        rows as u64 * self.row_len as u64 * self.dtype.bits() / 8
    }

    /// f16 scales per row (q4/q8), zero otherwise.
    pub fn groups_per_row(&self) -> usize {
        match self.dtype.quant() {
            Some(_) => self.row_len / self.group,
            None => 0,
        }
    }

    /// Bytes of the packed scales of `rows` rows: two f16 per u32 word, the
    /// last word padded (as `quant::pack_f16` writes them).
    pub fn scales_bytes(&self, rows: usize) -> Option<u64> {
        self.dtype
            .quant()
            .map(|_| (rows as u64 * self.groups_per_row() as u64).div_ceil(2) * 4)
    }

    /// The regions of `rows` rows placed at `start`: values, then scales.
    fn regions(&self, start: u64, rows: usize) -> (Region, Option<Region>, u64) {
        let values = Region {
            offset: align_up(start),
            bytes: self.values_bytes(rows),
        };
        let mut end = values.offset + values.bytes;
        let scales = self.scales_bytes(rows).map(|bytes| {
            let r = Region {
                offset: align_up(end),
                bytes,
            };
            end = r.offset + r.bytes;
            r
        });
        (values, scales, end)
    }
}

/// One piece of a tensor: a row range stored in one shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub shard: usize,
    /// `[start, end)` rows of the tensor.
    pub rows: [usize; 2],
    pub values: Region,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scales: Option<Region>,
}

impl Part {
    pub fn row_range(&self) -> Range<usize> {
        self.rows[0]..self.rows[1]
    }
}

/// Packs tensors, in the order given, into shards of at most `shard_size`
/// bytes. A tensor that fits in a shard is never split; a larger one is cut
/// into row ranges that fill shards one after another.
#[derive(Clone, Debug)]
pub struct ShardPacker {
    shard_size: u64,
    shard: usize,
    len: u64,
}

impl ShardPacker {
    pub fn new(shard_size: u64) -> Result<ShardPacker, BundleError> {
        if shard_size < ALIGN {
            return Err(BundleError::invalid(format!(
                "shard size {shard_size} is below the {ALIGN}-byte alignment"
            )));
        }
        Ok(ShardPacker {
            shard_size,
            shard: 0,
            len: 0,
        })
    }

    /// Bytes used so far in shard `shard` (the one being filled).
    pub fn current(&self) -> (usize, u64) {
        (self.shard, self.len)
    }

    /// How many of `rows` rows fit in the shard being filled.
    fn rows_that_fit(&self, layout: &RowLayout, rows: usize) -> usize {
        let fits = |r: usize| layout.regions(self.len, r).2 <= self.shard_size;
        let (mut lo, mut hi) = (0usize, rows);
        // The end offset grows with the row count: binary search the last fit.
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    fn next_shard(&mut self) {
        self.shard += 1;
        self.len = 0;
    }

    /// Places a whole tensor, returning its parts in row order.
    pub fn place(&mut self, name: &str, layout: &RowLayout) -> Result<Vec<Part>, BundleError> {
        let whole_fits_empty = layout.regions(0, layout.rows).2 <= self.shard_size;
        if self.len > 0 && whole_fits_empty && self.rows_that_fit(layout, layout.rows) < layout.rows
        {
            self.next_shard();
        }
        let mut parts = Vec::new();
        let mut row = 0;
        // Zero-element tensors still get one (empty) part, so every tensor
        // names the shard it lives in.
        while row < layout.rows || parts.is_empty() {
            let take = self.rows_that_fit(layout, layout.rows - row);
            if take == 0 && row < layout.rows {
                if self.len == 0 {
                    return Err(BundleError::tensor(
                        name,
                        format!(
                            "one row needs more than the {}-byte shard size",
                            self.shard_size
                        ),
                    ));
                }
                self.next_shard();
                continue;
            }
            let (values, scales, end) = layout.regions(self.len, take);
            parts.push(Part {
                shard: self.shard,
                rows: [row, row + take],
                values,
                scales,
            });
            self.len = end;
            row += take;
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_tensors_share_a_shard_and_stay_whole() {
        let mut p = ShardPacker::new(4096).unwrap();
        let f16 = RowLayout::new(WeightDType::F16, &[10, 10], 0).unwrap();
        let a = p.place("a", &f16).unwrap();
        let b = p.place("b", &f16).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].shard, a[0].values.offset), (0, 0));
        assert_eq!((b[0].shard, b[0].values.offset), (0, 256));
        // 4000 bytes do not fit after the 456 used: they go whole to the next shard.
        let big = RowLayout::new(WeightDType::F32, &[1000], 0).unwrap();
        let c = p.place("c", &big).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].shard, c[0].values.offset), (1, 0));
    }

    #[test]
    fn large_tensors_split_by_rows_with_their_scales() {
        let mut p = ShardPacker::new(1024).unwrap();
        let q4 = RowLayout::new(WeightDType::Q4, &[40, 64], 32).unwrap();
        // Each row: 32 value bytes + 2 scales (4 bytes).
        let parts = p.place("w", &q4).unwrap();
        assert!(parts.len() > 1);
        let mut next = 0;
        for part in &parts {
            assert_eq!(part.rows[0], next);
            next = part.rows[1];
            let rows = part.rows[1] - part.rows[0];
            assert_eq!(part.values.bytes, q4.values_bytes(rows));
            let s = part.scales.unwrap();
            assert_eq!(s.offset % ALIGN, 0);
            assert!(s.end().unwrap() <= 1024);
        }
        assert_eq!(next, 40);
    }

    #[test]
    fn a_row_larger_than_a_shard_is_an_error() {
        let mut p = ShardPacker::new(256).unwrap();
        let f32 = RowLayout::new(WeightDType::F32, &[2, 100], 0).unwrap();
        assert!(p.place("w", &f32).is_err());
        assert!(RowLayout::new(WeightDType::Q4, &[2, 48], 32).is_err());
    }
}
