// Flash-style attention: out = softmax(scale * Q K^T + bias) V, never holding
// the Nq x Nk score matrix. Keys are taken SC at a time and folded into an
// online softmax: a running max m and sum l per query row, the output
// accumulators rescaled by exp(m_old - m_new) whenever the max grows.
//
// Each invocation owns query rows of one head: their D query values (already
// scaled) and D output accumulators stay in private memory, as vec4s. Two
// ways to feed it K and V, chosen by the SUBGROUPS flag:
// - tiled (default, every adapter): the workgroup copies tiles of BK keys
//   into workgroup memory and all WG rows read them from there.
// - subgroups (CPU adapters such as lavapipe, where every memory load is a
//   loop over the lanes): lane i of each subgroup loads key j0 + i itself and
//   subgroupBroadcast hands it to the others, so each loaded value serves
//   the whole subgroup; each invocation also owns two rows (q0 + lid and
//   q0 + WG + lid) so each broadcast feeds two FMAs. Needs subgroups of at
//   least 8 invocations.
//
// Layout (ARCHITECTURE.md): row r of batch item b of an operand starts at
// offset + (b * rows + r) * stride, and head h is columns h*D .. h*D+D of
// that row, so Q/K/V are read straight out of projection outputs (or column
// slices of one fused QKV buffer) without reshapes. Strides and offsets are
// multiples of 4 elements: operands bind as vec4 arrays, one load per vec4.
//
// Flags: F16 (act = f16), MASK (additive key mask [B, Nk], f32), T5_BIAS
// (T5 relative position bias looked up in a [num_buckets, heads] f32 table),
// SUBGROUPS (see above; it also needs the define D4 = D / 4).
// Grid: x = ceil(nq / (WG * rows per invocation)), y = heads, z = batch.
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
// Invocations per workgroup.
override WG: u32 = 64;
// Keys per workgroup-memory tile (tiled path); a multiple of SC.
override BK: u32 = 16;

// Private vec4 slots for a query row and its accumulators (head dim <= 128).
const DMAX4: u32 = 32u;
// Keys scored at once: their scores live in registers. The subgroup path
// also relies on SC == 8 (one key per lane of the smallest subgroup).
const SC: u32 = 8u;
// The most negative finite f32: a start for the running max that any score
// (even one carrying a finfo.min mask) can replace.
// Written as ...34e38, not ...35e38: Tint rejects a decimal beyond f32::MAX
// even when it would round to it (the shader test checks every literal).
const NEG: f32 = -3.4028234e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<act>>;        // (B, nq, q_stride) from q_offset
@group(0) @binding(2) var<storage, read> k: array<vec4<act>>;        // (B, nk, k_stride) from k_offset
@group(0) @binding(3) var<storage, read> v: array<vec4<act>>;        // (B, nk, v_stride) from v_offset
@group(0) @binding(4) var<storage, read_write> o: array<vec4<act>>;  // (B, nq, o_stride) from o_offset
#if MASK
@group(0) @binding(5) var<storage, read> mask: array<f32>;           // (B, nk) additive
#endif
#if T5_BIAS
#if MASK
@group(0) @binding(6) var<storage, read> table: array<f32>;          // (num_buckets, heads)
#else
@group(0) @binding(5) var<storage, read> table: array<f32>;          // (num_buckets, heads)
#endif
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

fn t5_bias(rel: i32, h: u32) -> f32 {
    return table[t5_bucket(rel) * p.heads + h];
}
#endif

// Index of the vec4 holding elements e..e+3 (e a multiple of 4).
fn vec4_at(e: u32) -> u32 {
    return e / 4u;
}

// Folds SC scores (keys past `valid` excluded) into the running max and sum,
// turns them into probabilities in place and returns the factor that
// rescales what was accumulated before.
fn online_softmax(s: ptr<function, array<f32, SC>>, m: ptr<function, f32>, l: ptr<function, f32>, valid: u32) -> f32 {
    var m_new = *m;
    for (var j = 0u; j < SC; j++) {
        (*s)[j] = select(NEG, (*s)[j], j < valid);
        m_new = max(m_new, (*s)[j]);
    }
    let alpha = exp(*m - m_new);
    var sum = 0.0;
    for (var j = 0u; j < SC; j++) {
        // Excluded keys give exactly 0, even when every real key is masked
        // down to NEG as well.
        (*s)[j] = select(0.0, exp((*s)[j] - m_new), j < valid);
        sum += (*s)[j];
    }
    *m = m_new;
    *l = *l * alpha + sum;
    return alpha;
}

// Stores one accumulated row (rows past nq are computed but never stored).
fn store_row(acc: ptr<function, array<vec4<f32>, DMAX4>>, l: f32, b: u32, h: u32, row: u32) {
    if (row >= p.nq) {
        return;
    }
    // l is 0 only when every key was masked with -inf; write zeros then.
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let base = vec4_at(p.o_offset + (b * p.nq + row) * p.o_stride + h * D);
    for (var c = 0u; c < D / 4u; c++) {
        o[base + c] = vec4<act>((*acc)[c] * inv);
    }
}

#if SUBGROUPS
#if MASK
// Lane j's x, for lanes 0..SC-1.
fn from_lanes(x: f32) -> array<f32, SC> {
    return array<f32, SC>(
        subgroupBroadcast(x, 0u), subgroupBroadcast(x, 1u), subgroupBroadcast(x, 2u), subgroupBroadcast(x, 3u),
        subgroupBroadcast(x, 4u), subgroupBroadcast(x, 5u), subgroupBroadcast(x, 6u), subgroupBroadcast(x, 7u));
}
#endif

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let h = wg.y;
    let b = wg.z;
    let row_a = wg.x * 2u * WG + lid;
    let row_b = row_a + WG;
    // Rows past nq compute a copy of the last row: every lane must take part
    // in the broadcasts.
    let qa_base = vec4_at(p.q_offset + (b * p.nq + min(row_a, p.nq - 1u)) * p.q_stride + h * D);
    let qb_base = vec4_at(p.q_offset + (b * p.nq + min(row_b, p.nq - 1u)) * p.q_stride + h * D);
    // The query rows and accumulators as named vec4s (D4 = D / 4 of them,
    // written out by #repeat): indexed arrays would live in memory here.
#repeat c D4
    let qa{c} = vec4<f32>(q[qa_base + {c}u]) * p.scale;
    let qb{c} = vec4<f32>(q[qb_base + {c}u]) * p.scale;
    var acc_a{c} = vec4<f32>(0.0);
    var acc_b{c} = vec4<f32>(0.0);
#endrepeat
    var m_a = NEG;
    var m_b = NEG;
    var l_a = 0.0;
    var l_b = 0.0;
    let mine = lane % SC;

    for (var j0 = 0u; j0 < p.nk; j0 += SC) {
        // This lane's key; keys past nk repeat the last one (a valid
        // address) and are excluded by online_softmax.
        let key = min(j0 + mine, p.nk - 1u);
        let k_base = vec4_at(p.k_offset + (b * p.nk + key) * p.k_stride + h * D);
        let v_base = vec4_at(p.v_offset + (b * p.nk + key) * p.v_stride + h * D);
        var sa: array<f32, SC>;
        var sb: array<f32, SC>;
        for (var j = 0u; j < SC; j++) {
            sa[j] = 0.0;
            sb[j] = 0.0;
        }
        // subgroupBroadcast takes constant lanes only, hence one line per
        // key (written out, they also run faster than a loop over an array
        // of broadcasts on lavapipe).
#repeat c D4
        {
            let kv = vec4<f32>(k[k_base + {c}u]);
            { let kj = subgroupBroadcast(kv, 0u); sa[0] += dot(qa{c}, kj); sb[0] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 1u); sa[1] += dot(qa{c}, kj); sb[1] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 2u); sa[2] += dot(qa{c}, kj); sb[2] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 3u); sa[3] += dot(qa{c}, kj); sb[3] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 4u); sa[4] += dot(qa{c}, kj); sb[4] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 5u); sa[5] += dot(qa{c}, kj); sb[5] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 6u); sa[6] += dot(qa{c}, kj); sb[6] += dot(qb{c}, kj); }
            { let kj = subgroupBroadcast(kv, 7u); sa[7] += dot(qa{c}, kj); sb[7] += dot(qb{c}, kj); }
        }
#endrepeat
#if MASK
        let key_mask = from_lanes(mask[b * p.nk + key]);
        for (var j = 0u; j < SC; j++) {
            sa[j] += key_mask[j];
            sb[j] += key_mask[j];
        }
#endif
#if T5_BIAS
        for (var j = 0u; j < SC; j++) {
            sa[j] += t5_bias(i32(j0 + j) - i32(row_a), h);
            sb[j] += t5_bias(i32(j0 + j) - i32(row_b), h);
        }
#endif
        let valid = p.nk - j0;
        let alpha_a = online_softmax(&sa, &m_a, &l_a, valid);
        let alpha_b = online_softmax(&sb, &m_b, &l_b, valid);
#repeat c D4
        {
            let vv = vec4<f32>(v[v_base + {c}u]);
            var x = acc_a{c} * alpha_a;
            var y = acc_b{c} * alpha_b;
            { let vj = subgroupBroadcast(vv, 0u); x += sa[0] * vj; y += sb[0] * vj; }
            { let vj = subgroupBroadcast(vv, 1u); x += sa[1] * vj; y += sb[1] * vj; }
            { let vj = subgroupBroadcast(vv, 2u); x += sa[2] * vj; y += sb[2] * vj; }
            { let vj = subgroupBroadcast(vv, 3u); x += sa[3] * vj; y += sb[3] * vj; }
            { let vj = subgroupBroadcast(vv, 4u); x += sa[4] * vj; y += sb[4] * vj; }
            { let vj = subgroupBroadcast(vv, 5u); x += sa[5] * vj; y += sb[5] * vj; }
            { let vj = subgroupBroadcast(vv, 6u); x += sa[6] * vj; y += sb[6] * vj; }
            { let vj = subgroupBroadcast(vv, 7u); x += sa[7] * vj; y += sb[7] * vj; }
            acc_a{c} = x;
            acc_b{c} = y;
        }
#endrepeat
    }
    var out_a: array<vec4<f32>, DMAX4>;
    var out_b: array<vec4<f32>, DMAX4>;
#repeat c D4
    out_a[{c}] = acc_a{c};
    out_b[{c}] = acc_b{c};
#endrepeat
    store_row(&out_a, l_a, b, h, row_a);
    store_row(&out_b, l_b, b, h, row_b);
}

#else

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wg.y;
    let b = wg.z;
    let q0 = wg.x * WG;
    let row = q0 + lid;
    let d4 = D / 4u;
    // Rows past nq compute a copy of the last row: every invocation must
    // reach the barriers.
    let q_base = vec4_at(p.q_offset + (b * p.nq + min(row, p.nq - 1u)) * p.q_stride + h * D);
    var qr: array<vec4<f32>, DMAX4>;
    var acc: array<vec4<f32>, DMAX4>;
    for (var c = 0u; c < d4; c++) {
        qr[c] = vec4<f32>(q[q_base + c]) * p.scale;
        acc[c] = vec4<f32>(0.0);
    }
    var m = NEG;
    var l = 0.0;

    for (var t0 = 0u; t0 < p.nk; t0 += BK) {
        // The previous tile's readers are done before it is overwritten.
        workgroupBarrier();
        for (var e = lid; e < BK * d4; e += WG) {
            // Keys past nk repeat the last key (a valid address); they are
            // excluded by online_softmax.
            let key = min(t0 + e / d4, p.nk - 1u);
            let c = e % d4;
            k_tile[e] = vec4<f32>(k[vec4_at(p.k_offset + (b * p.nk + key) * p.k_stride + h * D) + c]);
            v_tile[e] = vec4<f32>(v[vec4_at(p.v_offset + (b * p.nk + key) * p.v_stride + h * D) + c]);
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
            rel_bias[r] = t5_bias(i32(t0 + r) - i32(q0 + WG - 1u), h);
        }
#endif
        workgroupBarrier();

        let valid = min(BK, p.nk - t0);
        for (var j0 = 0u; j0 < valid; j0 += SC) {
            var s: array<f32, SC>;
            for (var j = 0u; j < SC; j++) {
                s[j] = key_bias[j0 + j];
#if T5_BIAS
                s[j] += rel_bias[j0 + j + WG - 1u - lid];
#endif
            }
            for (var c = 0u; c < d4; c++) {
                let qc = qr[c];
                for (var j = 0u; j < SC; j++) {
                    s[j] += dot(qc, k_tile[(j0 + j) * d4 + c]);
                }
            }
            let alpha = online_softmax(&s, &m, &l, valid - j0);
            for (var c = 0u; c < d4; c++) {
                var a = acc[c] * alpha;
                for (var j = 0u; j < SC; j++) {
                    a += s[j] * v_tile[(j0 + j) * d4 + c];
                }
                acc[c] = a;
            }
        }
    }
    store_row(&acc, l, b, h, row);
}
#endif
