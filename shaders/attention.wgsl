// Flash-style attention: out = softmax(scale * Q K^T + bias) V, never holding
// the Nq x Nk score matrix.
//
// One invocation owns one query row of one head: its D query values (already
// scaled) and D output accumulators stay in private memory. K and V stream
// through workgroup memory in tiles of BK keys that all WG query rows of the
// workgroup share. Scores are taken SC keys at a time and folded into an
// online softmax: a running max m and running sum l, with the accumulators
// rescaled by exp(m_old - m_new) whenever the max grows.
//
// Layout (ARCHITECTURE.md): row r of batch item b of an operand starts at
// offset + (b * rows + r) * stride, and head h is columns h*D .. h*D+D of
// that row, so Q/K/V are read straight out of projection outputs (or column
// slices of one fused QKV buffer) without reshapes.
//
// Flags: F16 (act = f16), MASK (additive key mask [B, Nk], f32), T5_BIAS
// (T5 relative position bias looked up in a [num_buckets, heads] f32 table).
// Grid: x = ceil(nq / WG), y = heads, z = batch.
#include "common/precision.wgsl"

struct Params {
    batch: u32,
    heads: u32,
    nq: u32,
    nk: u32,
    q_stride: u32,  // row strides, in elements
    k_stride: u32,
    v_stride: u32,
    o_stride: u32,
    q_offset: u32,  // element of row 0, head 0, batch 0
    k_offset: u32,
    v_offset: u32,
    o_offset: u32,
    scale: f32,
    num_buckets: u32,    // T5 only
    max_distance: u32,   // T5 only
    bidirectional: u32,  // T5 only: 1 for encoders
}

// Head dim: a multiple of 4, at most 4 * DMAX4.
override D: u32 = 64;
// Query rows (invocations) per workgroup.
override WG: u32 = 64;
// Keys per workgroup-memory tile; a multiple of SC.
override BK: u32 = 16;

// Private vec4 slots for a query row and its accumulators (head dim <= 128).
const DMAX4: u32 = 32u;
// Keys scored at once: their scores and probabilities live in registers.
const SC: u32 = 8u;
// The most negative finite f32: a start for the running max that any score
// (even one carrying a finfo.min mask) can replace.
const NEG: f32 = -3.4028235e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<act>;          // (B, nq, q_stride) from q_offset
@group(0) @binding(2) var<storage, read> k: array<act>;          // (B, nk, k_stride) from k_offset
@group(0) @binding(3) var<storage, read> v: array<act>;          // (B, nk, v_stride) from v_offset
@group(0) @binding(4) var<storage, read_write> o: array<act>;    // (B, nq, o_stride) from o_offset
#if MASK
@group(0) @binding(5) var<storage, read> mask: array<f32>;       // (B, nk) additive
#endif
#if T5_BIAS
#if MASK
@group(0) @binding(6) var<storage, read> table: array<f32>;      // (num_buckets, heads)
#else
@group(0) @binding(5) var<storage, read> table: array<f32>;      // (num_buckets, heads)
#endif
#endif

var<workgroup> k_tile: array<vec4<f32>, BK * D / 4u>;
var<workgroup> v_tile: array<vec4<f32>, BK * D / 4u>;
// Additive bias of each key of the tile (the mask, or 0).
var<workgroup> key_bias: array<f32, BK>;
#if T5_BIAS
// T5 bias by relative position: entry r serves key t0 + j and query q0 + i
// with r = j - i + WG - 1, so WG + BK - 1 lookups per tile instead of one
// bucket computation per score.
var<workgroup> rel_bias: array<f32, WG + BK - 1u>;
#endif

#if T5_BIAS
// transformers' T5Attention._relative_position_bucket for rel = key - query.
// The small 1e-4 nudge keeps the GPU's looser log from dropping a position
// that sits exactly on a bucket boundary (rel = 16, 32, 64 with the defaults,
// where torch's f32 evaluation lands on the integer) into the bucket below.
fn t5_bucket(rel: i32) -> u32 {
    var n = p.num_buckets;
    var bucket = 0u;
    var dist = 0u;
    if (p.bidirectional != 0u) {
        n = n / 2u;
        bucket = select(0u, n, rel > 0);
        dist = u32(abs(rel));
    } else {
        dist = u32(max(-rel, 0));
    }
    let max_exact = n / 2u;
    if (dist < max_exact) {
        return bucket + dist;
    }
    let ratio = log(f32(dist) / f32(max_exact)) / log(f32(p.max_distance) / f32(max_exact));
    let large = max_exact + u32(ratio * f32(n - max_exact) + 1e-4);
    return bucket + min(large, n - 1u);
}
#endif

fn load_k4(i: u32) -> vec4<f32> {
    return vec4<f32>(f32(k[i]), f32(k[i + 1u]), f32(k[i + 2u]), f32(k[i + 3u]));
}

fn load_v4(i: u32) -> vec4<f32> {
    return vec4<f32>(f32(v[i]), f32(v[i + 1u]), f32(v[i + 2u]), f32(v[i + 3u]));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.y;
    let b = wg.z;
    let q0 = wg.x * WG;
    let row = q0 + lid;
    let d4 = D / 4u;
    // Rows past nq compute a copy of the last row and store nothing: every
    // invocation must reach the barriers, and keeping control flow uniform
    // lets CPU drivers turn tile reads into broadcasts.
    let q_row = min(row, p.nq - 1u);
    let q_base = p.q_offset + (b * p.nq + q_row) * p.q_stride + h * D;
    var qr: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var c = 0u; c < d4; c++) {
        let i = q_base + 4u * c;
        qr[c] = vec4<f32>(f32(q[i]), f32(q[i + 1u]), f32(q[i + 2u]), f32(q[i + 3u])) * p.scale;
        acc[c] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;
    let k_base = p.k_offset + b * p.nk * p.k_stride + h * D;
    let v_base = p.v_offset + b * p.nk * p.v_stride + h * D;

    for (var t0 = 0u; t0 < p.nk; t0 += BK) {
        // The previous tile's readers are done before it is overwritten.
        workgroupBarrier();
        for (var e = lid; e < BK * d4; e += WG) {
            // Keys past nk repeat the last key (a valid address); their
            // probabilities are forced to 0 below.
            let key = min(t0 + e / d4, p.nk - 1u);
            let c = e % d4;
            k_tile[e] = load_k4(k_base + key * p.k_stride + 4u * c);
            v_tile[e] = load_v4(v_base + key * p.v_stride + 4u * c);
        }
        for (var j = lid; j < BK; j += WG) {
#if MASK
            key_bias[j] = mask[b * p.nk + min(t0 + j, p.nk - 1u)];
#else
            key_bias[j] = 0.0;
#endif
        }
#if T5_BIAS
        for (var r = lid; r < WG + BK - 1u; r += WG) {
            let rel = i32(t0 + r) - i32(q0 + WG - 1u);
            rel_bias[r] = table[t5_bucket(rel) * p.heads + h];
        }
#endif
        workgroupBarrier();

        let valid = min(BK, p.nk - t0);
        for (var j0 = 0u; j0 < valid; j0 += SC) {
            var s: array<f32, SC>;
            for (var j = 0u; j < SC; j++) {
                s[j] = 0.0;
            }
            for (var c = 0u; c < d4; c++) {
                let qc = qr[c];
                for (var j = 0u; j < SC; j++) {
                    s[j] += dot(qc, k_tile[(j0 + j) * d4 + c]);
                }
            }
            var m_new = m;
            for (var j = 0u; j < SC; j++) {
                var x = s[j] + key_bias[j0 + j];
#if T5_BIAS
                x += rel_bias[j0 + j + WG - 1u - lid];
#endif
                s[j] = select(NEG, x, j0 + j < valid);
                m_new = max(m_new, s[j]);
            }
            let alpha = exp(m - m_new);
            l *= alpha;
            var pr: array<f32, SC>;
            for (var j = 0u; j < SC; j++) {
                pr[j] = select(0.0, exp(s[j] - m_new), j0 + j < valid);
                l += pr[j];
            }
            for (var c = 0u; c < d4; c++) {
                var a = acc[c] * alpha;
                for (var j = 0u; j < SC; j++) {
                    a += pr[j] * v_tile[(j0 + j) * d4 + c];
                }
                acc[c] = a;
            }
            m = m_new;
        }
    }

    if (row < p.nq) {
        // l is 0 only when every key was masked with -inf; write zeros then.
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let o_base = p.o_offset + (b * p.nq + row) * p.o_stride + h * D;
        for (var c = 0u; c < d4; c++) {
            let x = acc[c] * inv;
            let i = o_base + 4u * c;
            o[i] = act(x.x);
            o[i + 1u] = act(x.y);
            o[i + 2u] = act(x.z);
            o[i + 3u] = act(x.w);
        }
    }
}
