// Linear layers: Y[M, N] = X[M, K] · Wᵀ + b, accumulated in f32.
//
// W is [N, K] (PyTorch's [out, in]) in one of four formats, chosen by flags:
//   (none)       f32 values;
//   WF16         f16 values packed two per u32, read with unpack2x16float so
//                that no shader-f16 is needed;
//   QUANT + Q8   int8, QUANT + Q4 int4: the layout of runtime/src/quant.rs,
//                with f16 scales per group of K, two per u32.
// K4 (K a multiple of 4, always so for q4/q8) reads X and f32/f16 W four
// values at a time; without it any K works, one value at a time.
// A weight larger than one storage binding is split by rows into parts; each
// part is one dispatch that writes the Y columns row0 .. row0 + rows. All W
// indices below are local to the part.
//
// Two entry points: `gemm` tiles X and W through workgroup memory with 8x8
// outputs per invocation (many rows of X); `gemv` gives each W row a team of
// invocations that split K and meet in a workgroup reduction (a few rows of
// X, where reading W once is all that matters).
//
// Out-of-range elements read as zero through clamped indices and `select`
// rather than branches, which keeps SIMD compilers (lavapipe) on one path.
#include "common/precision.wgsl"

struct Params {
    m: u32,              // rows of X and Y
    n: u32,              // columns of Y (all parts): its row stride
    k: u32,              // the inner dimension
    row0: u32,           // this part's first W row, i.e. Y column
    rows: u32,           // W rows in this part
    group: u32,          // quantisation group along K (QUANT only)
    groups_per_row: u32, // K / group
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
#if K4
@group(0) @binding(1) var<storage, read> x: array<vec4<act>>;      // (M, K/4)
#else
@group(0) @binding(1) var<storage, read> x: array<act>;            // (M, K)
#endif
#if QUANT
@group(0) @binding(2) var<storage, read> w: array<u32>;            // (rows, K/8) q4 | (rows, K/4) q8
#else
#if WF16
#if K4
@group(0) @binding(2) var<storage, read> w: array<vec2<u32>>;      // (rows, K/4) four f16 each
#else
@group(0) @binding(2) var<storage, read> w: array<u32>;            // (rows * K / 2) f16 pairs
#endif
#else
#if K4
@group(0) @binding(2) var<storage, read> w: array<vec4<f32>>;      // (rows, K/4)
#else
@group(0) @binding(2) var<storage, read> w: array<f32>;            // (rows, K)
#endif
#endif
#endif
#include "common/linear_out.wgsl"

// X[m, k .. k + 4] (k a multiple of 4), zero past either end.
fn x_vec(m: u32, k: u32) -> vec4<f32> {
#if K4
    let ok = (m < p.m) & (k < p.k);
    return select(vec4<f32>(0.0), vec4<f32>(x[select(0u, (m * p.k + k) / 4u, ok)]), ok);
#else
    let ok = (vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k)) & vec4<bool>(m < p.m);
    let i = select(vec4<u32>(0u), vec4<u32>(m * p.k + k) + vec4<u32>(0u, 1u, 2u, 3u), ok);
    let v = vec4<f32>(f32(x[i.x]), f32(x[i.y]), f32(x[i.z]), f32(x[i.w]));
    return select(vec4<f32>(0.0), v, ok);
#endif
}

// ---- weight decoding -------------------------------------------------------

#if QUANT
// A quantised row is whole u32 words (K is a multiple of the group, the
// group of the values per word), and a word never straddles two groups.
#if Q4
const PER: u32 = 8u;
#else
const PER: u32 = 4u;
#endif

fn scale_at(row: u32, k: u32) -> f32 {
    return group_scale(row, k / p.group);
}

#if Q4
// Nibbles are stored as q + 8; element j of the word sits at bits 4j.
fn decode_lo(word: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(word) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u)) - 8.0;
}
fn decode_hi(word: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(word) >> vec4<u32>(16u, 20u, 24u, 28u)) & vec4<u32>(15u)) - 8.0;
}
#else
// Two's-complement bytes; element j at bits 8j. Shift it to the top, then
// an arithmetic shift back sign-extends it.
fn decode_lo(word: u32) -> vec4<f32> {
    let top = vec4<u32>(word) << vec4<u32>(24u, 16u, 8u, 0u);
    return vec4<f32>(bitcast<vec4<i32>>(top) >> vec4<u32>(24u));
}
#endif
#else
// W[row, k .. k + 4] (k a multiple of 4), zero past either end.
fn w_vec(row: u32, k: u32) -> vec4<f32> {
#if K4
    let ok = (row < p.rows) & (k < p.k);
    let i = select(0u, (row * p.k + k) / 4u, ok);
#if WF16
    let h = w[i];
    let v = vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
#else
    let v = w[i];
#endif
    return select(vec4<f32>(0.0), v, ok);
#else
    // Rows may start anywhere in a word: element by element.
    let ok = (vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.k)) & vec4<bool>(row < p.rows);
    let e = select(vec4<u32>(0u), vec4<u32>(row * p.k + k) + vec4<u32>(0u, 1u, 2u, 3u), ok);
#if WF16
    let v = vec4<f32>(
        unpack2x16float(w[e.x >> 1u])[e.x & 1u],
        unpack2x16float(w[e.y >> 1u])[e.y & 1u],
        unpack2x16float(w[e.z >> 1u])[e.z & 1u],
        unpack2x16float(w[e.w >> 1u])[e.w & 1u],
    );
#else
    let v = vec4<f32>(w[e.x], w[e.y], w[e.z], w[e.w]);
#endif
    return select(vec4<f32>(0.0), v, ok);
#endif
}
#endif

// ---- gemm: many rows ---------------------------------------------------------

// Each invocation computes an 8x8 block of Y as four 4x4 blocks (mat4x4
// accumulators, column i = one row of X): vec4 row groups lid.y and
// lid.y + WG_M of the tile, vec4 column groups lid.x and lid.x + WG_N.
// Strided ownership keeps neighbouring invocations on neighbouring
// addresses, and named accumulators (no arrays indexed in loops) stay in
// registers on every compiler, lavapipe's included.
// Invocations along M and N; the workgroup tile is (8 WG_M) x (8 WG_N).
override WG_M: u32 = 8u;
override WG_N: u32 = 8u;
// K per tile step: a multiple of 8 (a q4 word).
override TK: u32 = 32u;

// K-major tiles of vec4s along M (resp. N): one 16-byte read gives an
// invocation four operands. Rows are padded by one vec4 so that the
// transposing writes of neighbouring invocations fall in different banks.
var<workgroup> xs: array<vec4<f32>, TK * (2u * WG_M + 1u)>;
var<workgroup> ws: array<vec4<f32>, TK * (2u * WG_N + 1u)>;

fn outer(a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(b * a.x, b * a.y, b * a.z, b * a.w);
}

fn store4(m: u32, row: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (row + j < p.rows) {
            let col = p.row0 + row + j;
            y[m * p.n + col] = act(v[j] + bias_at(col));
        }
    }
}

fn store_block(m: u32, row: u32, c: mat4x4<f32>) {
    store4(m, row, c[0]);
    store4(m + 1u, row, c[1]);
    store4(m + 2u, row, c[2]);
    store4(m + 3u, row, c[3]);
}

@compute @workgroup_size(WG_N, WG_M)
fn gemm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let m4s = 2u * WG_M;    // vec4s per K row of the X tile
    let n4s = 2u * WG_N;    // and of the W tile
    let xs_stride = m4s + 1u;
    let ws_stride = n4s + 1u;
    let threads = WG_M * WG_N;
    let k4s = TK / 4u;
    let m_base = wg.y * 8u * WG_M;
    let r_base = wg.x * 8u * WG_N;
    var c00 = mat4x4<f32>();
    var c01 = mat4x4<f32>();
    var c10 = mat4x4<f32>();
    var c11 = mat4x4<f32>();

    for (var k_base = 0u; k_base < p.k; k_base += TK) {
        // X tile in 4x4 blocks, transposed on the way in; k is fastest so
        // neighbouring invocations read neighbouring addresses.
        for (var i = li; i < m4s * k4s; i += threads) {
            let r4 = i / k4s;
            let c4 = i % k4s;
            let m = m_base + 4u * r4;
            let k = k_base + 4u * c4;
            let t = transpose(mat4x4<f32>(x_vec(m, k), x_vec(m + 1u, k), x_vec(m + 2u, k), x_vec(m + 3u, k)));
            let at = 4u * c4 * xs_stride + r4;
            xs[at] = t[0];
            xs[at + xs_stride] = t[1];
            xs[at + 2u * xs_stride] = t[2];
            xs[at + 3u * xs_stride] = t[3];
        }
#if QUANT
        // W tile: each task dequantises one packed word of four rows and
        // writes it transposed, PER vec4s along N.
        let words = TK / PER;
        let row_words = p.k / PER;
        for (var i = li; i < n4s * words; i += threads) {
            let c = i % words;
            let r4 = i / words;
            let k = k_base + c * PER;
            var lo = mat4x4<f32>();
#if Q4
            var hi = mat4x4<f32>();
#endif
            for (var j = 0u; j < 4u; j++) {
                let row = r_base + 4u * r4 + j;
                let ok = (row < p.rows) & (k < p.k);
                let word = w[select(0u, row * row_words + k / PER, ok)];
                let s = select(0.0, scale_at(select(0u, row, ok), k), ok);
                lo[j] = decode_lo(word) * s;
#if Q4
                hi[j] = decode_hi(word) * s;
#endif
            }
            let at = c * PER * ws_stride + r4;
            let tl = transpose(lo);
            ws[at] = tl[0];
            ws[at + ws_stride] = tl[1];
            ws[at + 2u * ws_stride] = tl[2];
            ws[at + 3u * ws_stride] = tl[3];
#if Q4
            let th = transpose(hi);
            ws[at + 4u * ws_stride] = th[0];
            ws[at + 5u * ws_stride] = th[1];
            ws[at + 6u * ws_stride] = th[2];
            ws[at + 7u * ws_stride] = th[3];
#endif
        }
#else
        for (var i = li; i < n4s * k4s; i += threads) {
            let r4 = i / k4s;
            let c4 = i % k4s;
            let row = r_base + 4u * r4;
            let k = k_base + 4u * c4;
            let t = transpose(mat4x4<f32>(w_vec(row, k), w_vec(row + 1u, k), w_vec(row + 2u, k), w_vec(row + 3u, k)));
            let at = 4u * c4 * ws_stride + r4;
            ws[at] = t[0];
            ws[at + ws_stride] = t[1];
            ws[at + 2u * ws_stride] = t[2];
            ws[at + 3u * ws_stride] = t[3];
        }
#endif
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a0 = xs[kk * xs_stride + lid.y];
            let a1 = xs[kk * xs_stride + lid.y + WG_M];
            let b0 = ws[kk * ws_stride + lid.x];
            let b1 = ws[kk * ws_stride + lid.x + WG_N];
            c00 += outer(a0, b0);
            c01 += outer(a0, b1);
            c10 += outer(a1, b0);
            c11 += outer(a1, b1);
        }
        workgroupBarrier();
    }

    let m0 = m_base + 4u * lid.y;
    let m1 = m0 + 4u * WG_M;
    let r0 = r_base + 4u * lid.x;
    let r1 = r0 + 4u * WG_N;
    store_block(m0, r0, c00);
    store_block(m0, r1, c01);
    store_block(m1, r0, c10);
    store_block(m1, r1, c11);
}

// ---- gemv: few rows ----------------------------------------------------------

// Invocations per W row (they split its K), W rows per workgroup, and X rows
// per workgroup (the runtime picks GV_M from M; at most GV_MAX_M).
override GV_LANES: u32 = 32u;
override GV_ROWS: u32 = 8u;
override GV_M: u32 = 1u;
const GV_MAX_M: u32 = 16u;

// One partial sum per (lane, X row, W row); the row stride is odd so the
// writes of one lane's neighbours land in different banks.
var<workgroup> partial: array<f32, GV_LANES * (GV_ROWS * GV_M + 1u)>;

@compute @workgroup_size(GV_LANES, GV_ROWS)
fn gemv(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wg: vec3<u32>,
) {
    let row = wg.x * GV_ROWS + lid.y;
    let m0 = wg.y * GV_M;
    // Past the part's rows, read row 0 and past M the last X row: their sums
    // are never stored, and no invocation branches around the loop.
    let r = select(0u, row, row < p.rows);
    var acc: array<f32, GV_MAX_M>;
#if QUANT
    // Neighbouring lanes read neighbouring words: each word is read once.
    let row_words = p.k / PER;
    for (var wi = lid.x; wi < row_words; wi += GV_LANES) {
        let word = w[r * row_words + wi];
        let k = wi * PER;
        let s = scale_at(r, k);
        let lo = decode_lo(word) * s;
#if Q4
        let hi = decode_hi(word) * s;
#endif
        for (var i = 0u; i < GV_M; i++) {
            let m = min(m0 + i, p.m - 1u);
            var d = dot(x_vec(m, k), lo);
#if Q4
            d += dot(x_vec(m, k + 4u), hi);
#endif
            acc[i] += d;
        }
    }
#else
    for (var k = 4u * lid.x; k < p.k; k += 4u * GV_LANES) {
        let wv = w_vec(r, k);
        for (var i = 0u; i < GV_M; i++) {
            acc[i] += dot(x_vec(min(m0 + i, p.m - 1u), k), wv);
        }
    }
#endif

    let slots = GV_ROWS * GV_M;
    let stride = slots + 1u;
    for (var i = 0u; i < GV_M; i++) {
        partial[lid.x * stride + i * GV_ROWS + lid.y] = acc[i];
    }
    workgroupBarrier();
    for (var s = lid.y * GV_LANES + lid.x; s < slots; s += GV_LANES * GV_ROWS) {
        var sum = 0.0;
        for (var l = 0u; l < GV_LANES; l++) {
            sum += partial[l * stride + s];
        }
        let m = m0 + s / GV_ROWS;
        let rr = wg.x * GV_ROWS + s % GV_ROWS;
        if (m < p.m && rr < p.rows) {
            let col = p.row0 + rr;
            y[m * p.n + col] = act(sum + bias_at(col));
        }
    }
}
