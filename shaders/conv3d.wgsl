// 3D convolution of one VAE activation (channels first) as an implicit GEMM:
//   out[n, m] = bias[n] + sum_k W[n, k] * X(m, k)
// with M = output voxels (f', y', x'), N = Cout, K = Cin * kt * kh * kw.
// X(m, k) is never materialised: each invocation gathers its own patch
// values from x as it goes.
//
// Tiling: a workgroup computes TM = 4 * WG voxels by TN = 16 channels. Each
// invocation owns 4 voxels (lid + i * WG, so neighbouring invocations touch
// neighbouring voxels: coalesced loads and stores) and all 16 channels, a
// 4 x 16 block held as four mat4x4 accumulators (column = channel, row =
// voxel). Its patch values are used by no other invocation, so they go
// straight to registers; the weights are shared by all, and reach them one
// of two ways:
// - default: a TK x 16 chunk is staged in workgroup memory and read back as
//   uniform vec4s (GPUs: broadcast reads, one barrier pair per chunk);
// - SUBGROUPS: lanes 0..7 of each subgroup load 16 weights with two loads
//   and subgroupBroadcast hands them round (CPU adapters such as lavapipe,
//   where every memory read, uniform or not, is a per-lane loop and barriers
//   switch coroutines; needs subgroups of at least 8).
//
// K is walked tap by tap (dt, dh, dw) outside and channel by channel inside:
// within one tap a voxel's input offset is fixed, so the inner loop costs one
// address add per load instead of the divisions a flat k index would need.
//
// Padding: zeros in space (pad_h, pad_w); in time, replication: padded frame
// j reads input frame clamp(j - pad_front, 0, frames - 1). Frames past the
// end replicate the last one, so "back" padding needs no parameter: the host
// sizes out_frames to include it (causal, symmetric, none; see conv3d.rs).
//
// Flags: F16 (activations), WEIGHT_F16 (weights and bias are f16 packed two
// per u32, low half first; read with unpack2x16float, no shader-f16 needed),
// BIAS (binding 3 is the bias and the output moves to binding 4), SUBGROUPS.
#include "common/precision.wgsl"

struct Params {
    cin: u32,         // input [cin, frames, height, width]
    frames: u32,
    height: u32,
    width: u32,
    cout: u32,        // output [cout, out_frames, out_height, out_width]
    out_frames: u32,
    out_height: u32,
    out_width: u32,
    kt: u32,          // kernel
    kh: u32,
    kw: u32,
    pad_front: u32,   // replicated first frames in front
    st: u32,          // strides
    sh: u32,
    sw: u32,
    pad_h: u32,       // zero padding in space
    pad_w: u32,
    m_groups_x: u32,  // M tiles are spread over x and z (x has this many)
    _pad0: u32,
    _pad1: u32,
}

// Channels per workgroup: four mat4x4 accumulators per invocation.
const TN: u32 = 16u;

// Invocations per workgroup (TM = 4 * WG voxels) and the input channels of
// one staged weight chunk.
override WG: u32 = 64u;
override TK: u32 = 16u;
override TM: u32 = WG * 4u;
override B_TILE: u32 = TK * 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;  // (cin, frames, height, width)
#if WEIGHT_F16
@group(0) @binding(2) var<storage, read> w: array<u32>;  // (cout, cin, kt, kh, kw) f16 pairs
#else
@group(0) @binding(2) var<storage, read> w: array<f32>;  // (cout, cin, kt, kh, kw)
#endif
#if BIAS
#if WEIGHT_F16
@group(0) @binding(3) var<storage, read> bias: array<u32>;  // (cout) f16 pairs
#else
@group(0) @binding(3) var<storage, read> bias: array<f32>;  // (cout)
#endif
@group(0) @binding(4) var<storage, read_write> out: array<act>;  // (cout, out_frames, out_height, out_width)
#else
@group(0) @binding(3) var<storage, read_write> out: array<act>;  // (cout, out_frames, out_height, out_width)
#endif

#if !SUBGROUPS
// b_tile[kk * 4 + q] = weights of channels n0 + 4q .. 4q + 3 at chunk row kk.
var<workgroup> b_tile: array<vec4<f32>, B_TILE>;
#endif

fn weight_at(i: u32) -> f32 {
#if WEIGHT_F16
    return unpack2x16float(w[i >> 1u])[i & 1u];
#else
    return w[i];
#endif
}

fn bias_at(n: u32) -> f32 {
#if BIAS
#if WEIGHT_F16
    return unpack2x16float(bias[n >> 1u])[n & 1u];
#else
    return bias[n];
#endif
#else
    return 0.0;
#endif
}

// acc + a (4 voxels) x b (4 channels), one fma per column.
fn outer_fma(acc: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        fma(a, vec4<f32>(b.x), acc[0]),
        fma(a, vec4<f32>(b.y), acc[1]),
        fma(a, vec4<f32>(b.z), acc[2]),
        fma(a, vec4<f32>(b.w), acc[3]),
    );
}

// Writes channels n .. n + 3 of voxels m (rows of acc's columns).
fn store(acc: mat4x4<f32>, n: u32, m: vec4<u32>, m_total: u32) {
    for (var c = 0u; c < 4u; c++) {
        if (n + c >= p.cout) {
            return;
        }
        let b = bias_at(n + c);
        for (var i = 0u; i < 4u; i++) {
            if (m[i] < m_total) {
                out[(n + c) * m_total + m[i]] = act(acc[c][i] + b);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#if SUBGROUPS
    @builtin(subgroup_invocation_id) lane: u32,
#endif
) {
    let plane_out = p.out_height * p.out_width;
    let m_total = p.out_frames * plane_out;
    let n0 = wg.y * TN;
    let plane = p.height * p.width;
    let volume = p.frames * plane;
    let khw = p.kh * p.kw;
    let taps = p.kt * khw;
    let k_total = p.cin * taps;

    // This invocation's 4 voxels and where their receptive fields start.
    let m = (wg.z * p.m_groups_x + wg.x) * TM + lid + vec4<u32>(0u, 1u, 2u, 3u) * WG;
    let m_ok = m < vec4<u32>(m_total);
    let base_f = vec4<i32>((m / plane_out) * p.st) - i32(p.pad_front);
    let base_y = vec4<i32>(((m / p.out_width) % p.out_height) * p.sh) - i32(p.pad_h);
    let base_x = vec4<i32>((m % p.out_width) * p.sw) - i32(p.pad_w);
    let last_frame = vec4<i32>(i32(p.frames) - 1);
    let height = vec4<i32>(i32(p.height));
    let width = vec4<i32>(i32(p.width));

#if SUBGROUPS
    // Lane l loads channels l % 8 and 8 + l % 8; channels past cout read the
    // last row (their sums are never stored).
    let w_lo = min(n0 + lane % 8u, p.cout - 1u) * k_total;
    let w_hi = min(n0 + 8u + lane % 8u, p.cout - 1u) * k_total;
#endif

    var acc0 = mat4x4<f32>();
    var acc1 = mat4x4<f32>();
    var acc2 = mat4x4<f32>();
    var acc3 = mat4x4<f32>();

    for (var tap = 0u; tap < taps; tap++) {
        let dt = i32(tap / khw);
        let dh = i32((tap / p.kw) % p.kh);
        let dw = i32(tap % p.kw);
        // Replicate padding in time: clamp to the first and last frame.
        let sf = clamp(base_f + dt, vec4<i32>(0), last_frame);
        let sy = base_y + dh;
        let sx = base_x + dw;
        let inside = m_ok & (sy >= vec4<i32>(0)) & (sy < height) & (sx >= vec4<i32>(0)) & (sx < width);
        // Outside the image the read goes to offset 0 (always valid) and is masked to zero.
        let offset = select(vec4<u32>(0u), vec4<u32>(sf) * plane + vec4<u32>(sy) * p.width + vec4<u32>(sx), inside);

#if SUBGROUPS
        for (var ci = 0u; ci < p.cin; ci++) {
            let channel = ci * volume;
            let a = select(vec4<f32>(0.0), vec4<f32>(
                f32(x[channel + offset.x]),
                f32(x[channel + offset.y]),
                f32(x[channel + offset.z]),
                f32(x[channel + offset.w]),
            ), inside);
            let k = ci * taps + tap;
            let lo = weight_at(w_lo + k);
            let hi = weight_at(w_hi + k);
            acc0 = outer_fma(acc0, a, vec4<f32>(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u)));
            acc1 = outer_fma(acc1, a, vec4<f32>(subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u), subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u)));
            acc2 = outer_fma(acc2, a, vec4<f32>(subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u), subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u)));
            acc3 = outer_fma(acc3, a, vec4<f32>(subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u), subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u)));
        }
#else
        for (var c0 = 0u; c0 < p.cin; c0 += TK) {
            // Stage weights (c0 .. c0 + TK) x (n0 .. n0 + 16) of this tap.
            for (var e = lid; e < B_TILE; e += WG) {
                let ci = c0 + e / 4u;
                let n = n0 + (e % 4u) * 4u;
                var v = vec4<f32>(0.0);
                if (ci < p.cin) {
                    let k = ci * taps + tap;
                    for (var c = 0u; c < 4u; c++) {
                        if (n + c < p.cout) {
                            v[c] = weight_at((n + c) * k_total + k);
                        }
                    }
                }
                b_tile[e] = v;
            }
            workgroupBarrier();

            let depth = min(TK, p.cin - c0);
            for (var kk = 0u; kk < depth; kk++) {
                let channel = (c0 + kk) * volume;
                let a = select(vec4<f32>(0.0), vec4<f32>(
                    f32(x[channel + offset.x]),
                    f32(x[channel + offset.y]),
                    f32(x[channel + offset.z]),
                    f32(x[channel + offset.w]),
                ), inside);
                acc0 = outer_fma(acc0, a, b_tile[kk * 4u]);
                acc1 = outer_fma(acc1, a, b_tile[kk * 4u + 1u]);
                acc2 = outer_fma(acc2, a, b_tile[kk * 4u + 2u]);
                acc3 = outer_fma(acc3, a, b_tile[kk * 4u + 3u]);
            }
            workgroupBarrier();
        }
#endif
    }

    store(acc0, n0, m, m_total);
    store(acc1, n0 + 4u, m, m_total);
    store(acc2, n0 + 8u, m, m_total);
    store(acc3, n0 + 12u, m, m_total);
}
