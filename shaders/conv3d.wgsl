// 3D convolution of one VAE activation (channels first) as an implicit GEMM:
//   out[n, m] = bias[n] + sum_k W[n, k] * X(m, k)
// with M = output voxels (f', y', x'), N = Cout, K = Cin * kt * kh * kw.
// X(m, k) is never materialised: the input patch is gathered while the A
// tile is loaded into workgroup memory.
//
// K is walked tap by tap (dt, dh, dw) outside and in chunks of TK input
// channels inside. Within one tap each loader thread's input offset is fixed,
// so the inner chunks cost one multiply-add of address per element instead of
// the divisions a flat (ci, dt, dh, dw) index would need.
//
// Padding: zeros in space (pad_h, pad_w); in time, replication: padded frame
// j reads input frame clamp(j - pad_front, 0, frames - 1). Frames past the
// end replicate the last one, so "back" padding needs no parameter: the host
// sizes out_frames to include it (causal, symmetric, none; see conv3d.rs).
//
// Flags: F16 (activations), WEIGHT_F16 (weights and bias are f16 packed two
// per u32, low half first; read with unpack2x16float, no shader-f16 needed),
// BIAS (binding 3 is the bias and the output moves to binding 4).
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

// Each invocation accumulates an RM x RN block of the output tile. They are
// constants because private arrays cannot be sized by overrides.
const RM: u32 = 4u;
const RN: u32 = 4u;

// Invocations along M and N, and the K chunk: the tile is TM x TN x TK.
// The host keeps WG a multiple of TM and of TN (each loader keeps one column).
override WG_M: u32 = 16u;
override WG_N: u32 = 16u;
override TK: u32 = 16u;
override TM: u32 = WG_M * RM;
override TN: u32 = WG_N * RN;
override WG: u32 = WG_M * WG_N;
override A_TILE: u32 = TK * TM;
override B_TILE: u32 = TK * TN;

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

// k-major tiles: a_tile[kk * TM + mm], b_tile[kk * TN + nn].
var<workgroup> a_tile: array<f32, A_TILE>;
var<workgroup> b_tile: array<f32, B_TILE>;

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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let plane_out = p.out_height * p.out_width;
    let m_total = p.out_frames * plane_out;
    let m0 = (wg.z * p.m_groups_x + wg.x) * TM;
    let n0 = wg.y * TN;
    let plane = p.height * p.width;
    let volume = p.frames * plane;
    let khw = p.kh * p.kw;
    let taps = p.kt * khw;
    let k_total = p.cin * taps;

    // Loader role for A: one output voxel (column a_col), rows a_row0 + j * A_STEP.
    let a_col = lid % TM;
    let a_row0 = lid / TM;
    let a_step = WG / TM;
    let m = m0 + a_col;
    let m_ok = m < m_total;
    let ox = m % p.out_width;
    let oy = (m / p.out_width) % p.out_height;
    let oz = m / plane_out;
    let base_f = i32(oz * p.st) - i32(p.pad_front);
    let base_y = i32(oy * p.sh) - i32(p.pad_h);
    let base_x = i32(ox * p.sw) - i32(p.pad_w);

    // Loader role for B: one output channel (column b_col).
    let b_col = lid % TN;
    let b_row0 = lid / TN;
    let b_step = WG / TN;
    let n_load = n0 + b_col;
    let n_ok = n_load < p.cout;
    let w_row = n_load * k_total;

    // Compute role: rows tm + i * WG_M, columns tn + j * WG_N of the tile, so
    // neighbouring invocations touch neighbouring voxels (coalesced stores).
    let tm = lid % WG_M;
    let tn = lid / WG_M;

    var acc: array<array<f32, RN>, RM>;
    for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) {
            acc[i][j] = 0.0;
        }
    }

    for (var tap = 0u; tap < taps; tap++) {
        let dt = tap / khw;
        let dh = (tap / p.kw) % p.kh;
        let dw = tap % p.kw;
        // Replicate padding in time: clamp to the first and last frame.
        let sf = clamp(base_f + i32(dt), 0, i32(p.frames) - 1);
        let sy = base_y + i32(dh);
        let sx = base_x + i32(dw);
        let inside = m_ok && sy >= 0 && sy < i32(p.height) && sx >= 0 && sx < i32(p.width);
        let offset = select(0u, u32(sf) * plane + u32(sy) * p.width + u32(sx), inside);

        for (var c0 = 0u; c0 < p.cin; c0 += TK) {
            for (var kk = a_row0; kk < TK; kk += a_step) {
                let ci = c0 + kk;
                var v = 0.0;
                if (inside && ci < p.cin) {
                    v = f32(x[ci * volume + offset]);
                }
                a_tile[kk * TM + a_col] = v;
            }
            for (var kk = b_row0; kk < TK; kk += b_step) {
                let ci = c0 + kk;
                var v = 0.0;
                if (n_ok && ci < p.cin) {
                    v = weight_at(w_row + ci * taps + tap);
                }
                b_tile[kk * TN + b_col] = v;
            }
            workgroupBarrier();

            for (var kk = 0u; kk < TK; kk++) {
                var a: array<f32, RM>;
                var b: array<f32, RN>;
                for (var i = 0u; i < RM; i++) {
                    a[i] = a_tile[kk * TM + tm + i * WG_M];
                }
                for (var j = 0u; j < RN; j++) {
                    b[j] = b_tile[kk * TN + tn + j * WG_N];
                }
                for (var i = 0u; i < RM; i++) {
                    for (var j = 0u; j < RN; j++) {
                        acc[i][j] = fma(a[i], b[j], acc[i][j]);
                    }
                }
            }
            workgroupBarrier();
        }
    }

    for (var j = 0u; j < RN; j++) {
        let n = n0 + tn + j * WG_N;
        if (n >= p.cout) {
            continue;
        }
        let b = bias_at(n);
        for (var i = 0u; i < RM; i++) {
            let mo = m0 + tm + i * WG_M;
            if (mo < m_total) {
                out[n * m_total + mo] = act(acc[i][j] + b);
            }
        }
    }
}
