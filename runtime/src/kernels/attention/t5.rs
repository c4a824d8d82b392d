//! T5's relative position buckets: the reference the kernel's in-shader
//! bucketing is checked against.

use super::OP;
use crate::gpu::GpuError;

/// T5's relative-position bucketing (transformers'
/// `T5Attention._relative_position_bucket`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct T5Buckets {
    pub num_buckets: u32,
    pub max_distance: u32,
    /// True in encoders (both signs have buckets), false in decoders.
    pub bidirectional: bool,
}

impl T5Buckets {
    /// T5 v1.1 encoder (LTX's text encoder): `relative_attention_num_buckets`
    /// 32 and `relative_attention_max_distance` 128 in its config.json.
    pub const T5_V1_1_ENCODER: T5Buckets = T5Buckets {
        num_buckets: 32,
        max_distance: 128,
        bidirectional: true,
    };

    pub fn bucket(&self, rel: i32) -> u32 {
        t5_bucket(rel, self.bidirectional, self.num_buckets, self.max_distance)
    }

    pub(super) fn check(&self) -> Result<(), GpuError> {
        let n = if self.bidirectional {
            self.num_buckets / 2
        } else {
            self.num_buckets
        };
        let max_exact = n / 2;
        if max_exact == 0 || self.max_distance <= max_exact {
            return Err(GpuError::shape(
                OP,
                format!(
                    "T5 buckets {self:?}: need at least 2 buckets per direction and \
                     max_distance above {max_exact}"
                ),
            ));
        }
        Ok(())
    }
}

/// transformers' `T5Attention._relative_position_bucket` for one relative
/// position `rel = key_position - query_position`. Half the buckets serve
/// each sign when `bidirectional` (positive offsets in the upper half); below
/// `max_exact` (a quarter of `num_buckets` when bidirectional, a half
/// otherwise) each distance has its own bucket; beyond, buckets grow
/// logarithmically up to `max_distance`, after which all share the last one.
/// The logarithmic part is evaluated in f32 as torch does.
pub fn t5_bucket(rel: i32, bidirectional: bool, num_buckets: u32, max_distance: u32) -> u32 {
    let mut n = num_buckets;
    let mut bucket = 0;
    let dist = if bidirectional {
        n /= 2;
        if rel > 0 {
            bucket = n;
        }
        rel.unsigned_abs()
    } else {
        // Keys after the query (rel > 0) all fall in bucket 0.
        rel.min(0).unsigned_abs()
    };
    let max_exact = n / 2;
    if dist < max_exact {
        return bucket + dist;
    }
    // torch: log(rel.float() / max_exact) / math.log(max_distance / max_exact)
    // * (n - max_exact), truncated; math.log is f64, rounded to f32 on use.
    let ratio = (dist as f32 / max_exact as f32).ln()
        / ((max_distance as f64 / max_exact as f64).ln() as f32);
    // `as u32` saturates, so degenerate parameters cannot panic here.
    let large = max_exact.saturating_add((ratio * (n - max_exact) as f32) as u32);
    bucket + large.min(n.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t5_buckets_match_hand_computed_values() {
        // Bidirectional 32/128 (T5 v1.1 encoder): 16 buckets per sign,
        // distances 0..7 exact, then 8 + floor(8 * ln(d / 8) / ln(16)),
        // positive offsets shifted by 16.
        let enc = |rel| t5_bucket(rel, true, 32, 128);
        let cases = [
            (0, 0),
            (-1, 1),
            (1, 17),
            (-7, 7),
            (7, 23),
            (-8, 8),
            (8, 24),
            (-11, 8),  // 8 * ln(1.375) / ln(16) = 0.92
            (-12, 9),  // 1.17
            (15, 25),  // 1.81 -> 9, plus 16
            (-16, 10), // exactly 2: torch's f32 lands on the integer
            (16, 26),
            (-23, 11), // 3.05
            (-32, 12), // exactly 4
            (-45, 12), // 4.98
            (-46, 13), // 5.05
            (-64, 14), // exactly 6
            (-90, 14), // 6.98
            (-91, 15), // 7.02
            (-127, 15),
            (-128, 15), // 8 clamps to the last bucket
            (-5000, 15),
            (5000, 31),
        ];
        for (rel, want) in cases {
            assert_eq!(enc(rel), want, "bidirectional rel {rel}");
        }
        // Unidirectional 32/128 (decoder): 32 buckets, 16 exact, keys after
        // the query all in bucket 0, then 16 + floor(16 * ln(d / 16) / ln(8)).
        let dec = |rel| t5_bucket(rel, false, 32, 128);
        let cases = [
            (5, 0),
            (1, 0),
            (0, 0),
            (-5, 5),
            (-15, 15),
            (-16, 16),
            (-32, 21),  // 16/3 = 5.33
            (-64, 26),  // 10.67
            (-100, 30), // 16 * ln(6.25) / ln(8) = 14.1
            (-128, 31), // 16 clamps
            (-1000, 31),
        ];
        for (rel, want) in cases {
            assert_eq!(dec(rel), want, "unidirectional rel {rel}");
        }
    }

    /// The kernel evaluates the logarithmic buckets with the GPU's log (a few
    /// ulp off) plus a 1e-4 nudge; with log perturbed either way that must
    /// still give [`t5_bucket`] for every position the models meet.
    #[test]
    fn nudged_f32_buckets_agree_with_the_reference() {
        let kernel = |rel: i32, b: T5Buckets, wobble: f32| {
            let mut n = b.num_buckets;
            let mut bucket = 0;
            let dist = if b.bidirectional {
                n /= 2;
                bucket = if rel > 0 { n } else { 0 };
                rel.unsigned_abs()
            } else {
                rel.min(0).unsigned_abs()
            };
            let max_exact = n / 2;
            if dist < max_exact {
                return bucket + dist;
            }
            // WGSL allows 3 ulp, or 2^-21 absolute near 1: model both.
            let ln = |x: f32| x.ln() * (1.0 + wobble) + wobble;
            let ratio =
                ln(dist as f32 / max_exact as f32) / ln(b.max_distance as f32 / max_exact as f32);
            bucket + (max_exact + (ratio * (n - max_exact) as f32 + 1e-4) as u32).min(n - 1)
        };
        for (num_buckets, max_distance) in [(32, 128), (32, 256), (16, 64), (64, 512)] {
            for bidirectional in [true, false] {
                let b = T5Buckets {
                    num_buckets,
                    max_distance,
                    bidirectional,
                };
                for rel in -2048..=2048 {
                    for wobble in [-5e-7, 0.0, 5e-7] {
                        assert_eq!(kernel(rel, b, wobble), b.bucket(rel), "{b:?} rel {rel}");
                    }
                }
            }
        }
    }
}
