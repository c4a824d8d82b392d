// Linear layers on CPU adapters: Y[M, N] = X[M, K] · Wᵀ + b, accumulated in
// f32, with no workgroup memory.
//
// Why a second GEMM: on a CPU rasteriser such as lavapipe an invocation is a
// SIMD lane, and every load from a storage buffer or workgroup memory is a
// loop over the lanes, one scalar load each, whether or not the lanes share
// the address. The tiled `gemm` of matmul.wgsl spends most of its time in
// those loops. Here each value is loaded once, by one lane, and reaches the
// others through subgroupBroadcast, which is a register shuffle:
// - a workgroup owns 8 * ROW_BLOCKS rows of X; lane l of every subgroup
//   loads row 8b + l (b < ROW_BLOCKS) and broadcasts it, eight k at a time;
// - each invocation owns 4 * COL_VECS columns of Y (columns li + j * WG, so
//   neighbouring lanes read neighbouring W rows) and decodes their weights
//   itself;
// - the (8 * ROW_BLOCKS) x (4 * COL_VECS) outputs are named vec4
//   accumulators written out by #repeat: arrays indexed in loops would live
//   in memory there, and the block is what makes each load pay.
// Needs subgroups of at least 8 invocations (lanes 0..7 hold the rows);
// larger subgroups only load some rows twice.
//
// K is walked eight values (one step) at a time: K must be a multiple of 8,
// and for q4/q8 so must the quantisation group. W formats as in matmul.wgsl:
// f32 (none), WF16, QUANT + Q8, QUANT + Q4. Out-of-range rows and columns
// read row/column 0 through clamped indices and are never stored.
#include "common/precision.wgsl"

struct Params {
    m: u32,              // rows of X and Y
    n: u32,              // columns of Y (all parts): its row stride
    k: u32,              // the inner dimension
    row0: u32,           // this part's first W row, i.e. Y column
    rows: u32,           // W rows in this part
    group: u32,          // quantisation group along K (K without QUANT)
    groups_per_row: u32, // K / group
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if F16
@group(0) @binding(1) var<storage, read> x: array<vec4<u32>>;      // (M, K/8): eight f16 each
#else
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;      // (M, K/4)
#endif
#if QUANT
#if Q4
@group(0) @binding(2) var<storage, read> w: array<u32>;            // (rows, K/8)
#else
@group(0) @binding(2) var<storage, read> w: array<vec2<u32>>;      // (rows, K/8): eight int8
#endif
#else
#if WF16
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;      // (rows, K/8): eight f16
#else
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;      // (rows, K/4)
#endif
#endif
#include "common/linear_out.wgsl"

// The block: 8 * ROW_BLOCKS rows per workgroup, 4 * COL_VECS columns per
// invocation (defines, since they name accumulators), and WG invocations,
// so 4 * COL_VECS * WG columns per workgroup.
const ROW_BLOCKS: u32 = {ROW_BLOCKS}u;
const COL_VECS: u32 = {COL_VECS}u;
override WG: u32 = 8u;

fn scale_at(row: u32, g: u32) -> f32 {
#if QUANT
    return group_scale(row, g);
#else
    return 1.0;
#endif
}

fn halves(h: vec4<u32>) -> array<f32, 8> {
    let a = unpack2x16float(h.x);
    let b = unpack2x16float(h.y);
    let c = unpack2x16float(h.z);
    let d = unpack2x16float(h.w);
    return array<f32, 8>(a.x, a.y, b.x, b.y, c.x, c.y, d.x, d.y);
}

// The eight weights of W row `row` at step `s` (k = 8s .. 8s + 7), unscaled.
fn weights(row: u32, s: u32) -> array<f32, 8> {
    let steps = p.k / 8u;
#if QUANT
#if Q4
    // Nibbles stored as q + 8, element j at bits 4j.
    let v = w[row * steps + s];
    let lo = vec4<f32>((vec4<u32>(v) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u)) - 8.0;
    let hi = vec4<f32>((vec4<u32>(v) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u)) - 8.0;
#else
    // Two's-complement bytes, element j at bits 8j: shift to the top, then
    // shift back arithmetically.
    let v = w[row * steps + s];
    let lo = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v.x) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
    let hi = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(v.y) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
#endif
    return array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
#else
#if WF16
    return halves(w[row * steps + s]);
#else
    let lo = w[2u * (row * steps + s)];
    let hi = w[2u * (row * steps + s) + 1u];
    return array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
#endif
#endif
}

@compute @workgroup_size(WG)
fn gemm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let steps = p.k / 8u;
    let m0 = wg.y * 8u * ROW_BLOCKS;
    let c0 = wg.x * WG * 4u * COL_VECS + li;
    let last = p.rows - 1u;
#repeat b ROW_BLOCKS
    let row{b} = min(m0 + 8u * {b}u + (lane & 7u), p.m - 1u);
#endrepeat
#repeat v COL_VECS
    let col{v} = min(vec4<u32>(c0 + 4u * {v}u * WG) + vec4<u32>(0u, 1u, 2u, 3u) * WG, vec4<u32>(last));
#endrepeat
#repeat b ROW_BLOCKS
#repeat l 8
#repeat v COL_VECS
    var acc{b}{l}_{v} = vec4<f32>();
#endrepeat
#endrepeat
#endrepeat
    let steps_per_group = p.group / 8u;
    for (var g = 0u; g < p.groups_per_row; g++) {
#repeat v COL_VECS
        let scale{v} = vec4<f32>(scale_at(col{v}.x, g), scale_at(col{v}.y, g), scale_at(col{v}.z, g), scale_at(col{v}.w, g));
#endrepeat
        for (var t = 0u; t < steps_per_group; t++) {
            let s = g * steps_per_group + t;
#repeat b ROW_BLOCKS
#if F16
            let xh{b} = x[row{b} * steps + s];
#else
            let xa{b} = x[2u * (row{b} * steps + s)];
            let xb{b} = x[2u * (row{b} * steps + s) + 1u];
#endif
#endrepeat
#repeat v COL_VECS
            let w{v}x = weights(col{v}.x, s);
            let w{v}y = weights(col{v}.y, s);
            let w{v}z = weights(col{v}.z, s);
            let w{v}w = weights(col{v}.w, s);
#repeat j 8
            let q{v}_{j} = vec4<f32>(w{v}x[{j}], w{v}y[{j}], w{v}z[{j}], w{v}w[{j}]) * scale{v};
#endrepeat
#endrepeat
#repeat b ROW_BLOCKS
#repeat l 8
#if F16
            let x{b}_{l} = halves(subgroupBroadcast(xh{b}, {l}u));
#else
            let xa{b}_{l} = subgroupBroadcast(xa{b}, {l}u);
            let xb{b}_{l} = subgroupBroadcast(xb{b}, {l}u);
            let x{b}_{l} = array<f32, 8>(xa{b}_{l}.x, xa{b}_{l}.y, xa{b}_{l}.z, xa{b}_{l}.w, xb{b}_{l}.x, xb{b}_{l}.y, xb{b}_{l}.z, xb{b}_{l}.w);
#endif
#repeat v COL_VECS
            acc{b}{l}_{v} += q{v}_0 * x{b}_{l}[0] + q{v}_1 * x{b}_{l}[1] + q{v}_2 * x{b}_{l}[2] + q{v}_3 * x{b}_{l}[3]
                + q{v}_4 * x{b}_{l}[4] + q{v}_5 * x{b}_{l}[5] + q{v}_6 * x{b}_{l}[6] + q{v}_7 * x{b}_{l}[7];
#endrepeat
#endrepeat
#endrepeat
        }
    }
#repeat b ROW_BLOCKS
#repeat l 8
#repeat v COL_VECS
    store4(m0 + 8u * {b}u + {l}u, c0 + 4u * {v}u * WG, acc{b}{l}_{v});
#endrepeat
#endrepeat
#endrepeat
}

// Y[m, col + j * WG] for j < 4, where in range.
fn store4(m: u32, col: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let c = col + j * WG;
        if (c < p.rows) {
            let out = p.row0 + c;
            y[m * p.n + out] = act(v[j] + bias_at(out));
        }
    }
}
