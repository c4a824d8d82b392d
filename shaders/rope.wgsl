// LTX-Video's 3D rotary embedding (diffusers LTXVideoRotaryPosEmbed and
// apply_rotary_emb), over the full inner dim before heads are split.
//
// With TABLE (rope_table): per-token fractional coordinates g (frame,
// height, width) and the frequencies f_j (computed on the CPU, see
// kernels::rope::ltx_freqs) give, for column c >= pad = dim % 6,
//   k = (c - pad) / 2, j = k / 3, axis = k % 3,
//   phase = f_j * (2 g[axis] - 1),  cos/sin tables [T, dim] in f32;
// the first `pad` columns hold cos = 1, sin = 0.
// Without TABLE (rope_apply): out = x * cos + rotate_pairs(x) * sin, with
// pairs (2i, 2i + 1) -> (-x[2i + 1], x[2i]).
#include "common/precision.wgsl"
#include "common/index.wgsl"

override WG: u32 = 256;

#if TABLE
struct Params {
    n: u32,          // rows * dim
    dim: u32,
    pad: u32,        // dim % 6
    _pad0: u32,
    // 2 pi split so that k * two_pi[0..3] is exact for |k| < 2^17 (Cody-Waite);
    // the values come from kernels::rope::TWO_PI_SPLIT.
    two_pi: vec4<f32>,
    inv_two_pi: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> coords: array<f32>;           // (rows, 3) fractional f, h, w
@group(0) @binding(2) var<storage, read> freqs: array<f32>;            // (dim / 6)
@group(0) @binding(3) var<storage, read_write> cos_out: array<f32>;    // (rows, dim)
@group(0) @binding(4) var<storage, read_write> sin_out: array<f32>;    // (rows, dim)

// The phase reaches 10^4 pi / 2 and more; GPU sin/cos are only specified on
// [-pi, pi] (and usually reduce large arguments with a short 2 pi), so the
// exact f32 phase is brought into range here. Every k * two_pi[i] for
// i < 3 is exact and every partial difference is representable, so the
// reduced value is within ~3e-7 of phase - 2 pi k for |k| < 2^17.
fn reduce(phase: f32) -> f32 {
    let k = round(phase * p.inv_two_pi);
    var r = phase - k * p.two_pi.x;
    r -= k * p.two_pi.y;
    r -= k * p.two_pi.z;
    r -= k * p.two_pi.w;
    return r;
}

@compute @workgroup_size(WG)
fn rope_table(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    let t = i / p.dim;
    let c = i - t * p.dim;
    if (c < p.pad) {
        cos_out[i] = 1.0;
        sin_out[i] = 0.0;
        return;
    }
    let k = (c - p.pad) / 2u;
    let j = k / 3u;
    let axis = k - 3u * j;
    // Same f32 operations as the reference: (g * 2 - 1) then one product,
    // both correctly rounded, so the phase is bit-identical.
    let a = coords[3u * t + axis] * 2.0 - 1.0;
    let r = reduce(freqs[j] * a);
    cos_out[i] = cos(r);
    sin_out[i] = sin(r);
}

#else
struct Params {
    n: u32,          // rows * dim
    dim: u32,        // even
    x_stride: u32,   // between rows of x
    x_offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;             // rows of dim at x_offset + t * x_stride
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;         // (rows, dim)
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;         // (rows, dim)
@group(0) @binding(4) var<storage, read_write> out: array<act>;     // (rows, dim)

@compute @workgroup_size(WG)
fn rope_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    let t = i / p.dim;
    let c = i - t * p.dim;
    let base = p.x_offset + t * p.x_stride;
    let v = f32(x[base + c]);
    // Even c pairs with c + 1 (takes -x[c + 1]); odd c with c - 1 (takes x[c - 1]).
    let partner = f32(x[base + (c ^ 1u)]);
    let rotated = select(partner, -partner, (c & 1u) == 0u);
    out[i] = act(v * cos_t[i] + rotated * sin_t[i]);
}
#endif
