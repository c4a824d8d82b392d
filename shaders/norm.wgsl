// Normalisations and adaLN for the transformer, the text encoder and the VAE.
//
// Without GATE (rms_norm, layer_norm, pixel_norm; same bindings):
//   n   = RMSNorm or LayerNorm (no affine) of x, variance in f32
//   n  *= w                                  (WEIGHT)
//   out = n * (1 + scale) + shift            (MOD; shift/scale from strided rows)
//   shift += table[table_shift ..], scale += table[table_scale ..]   (TABLE)
// TABLE adds a row of a `scale_shift_table` to the timestep embedding's
// slice inside the kernel, so `table + temb` is never materialised.
//
// With GATE (gated_residual): out = x + (gate (+ table row)) * y.
//
// Rows of shift/scale/gate are `offset + r * stride` into their buffer, so the
// six adaLN vectors of a block are read straight out of one [T, 6 D] tensor;
// `mod_rows` / `gate_rows` is 1 (broadcast over tokens) or the row count.
// Unused optional bindings are bound to `x` (or `gate`) by the runtime.
#include "common/precision.wgsl"
#include "common/index.wgsl"

override WG: u32 = 256; // power of two (tree reduction)

#if GATE
struct Params {
    n: u32,            // rows * d
    d: u32,
    gate_rows: u32,    // 1 or rows
    gate_stride: u32,
    gate_offset: u32,
    table_offset: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;          // (rows, d) residual stream
@group(0) @binding(2) var<storage, read> y: array<act>;          // (rows, d) branch output
@group(0) @binding(3) var<storage, read> gate: array<act>;       // gate_rows rows of d, strided
@group(0) @binding(4) var<storage, read> table: array<act>;      // (d) at table_offset (TABLE)
@group(0) @binding(5) var<storage, read_write> out: array<act>;  // (rows, d)

@compute @workgroup_size(WG)
fn gated_residual(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    let r = i / p.d;
    let c = i - r * p.d;
    let gr = select(r, 0u, p.gate_rows == 1u);
    var g = f32(gate[p.gate_offset + gr * p.gate_stride + c]);
#if TABLE
    g += f32(table[p.table_offset + c]);
#endif
    out[i] = act(f32(x[i]) + g * f32(y[i]));
}

#else
struct Params {
    rows: u32,         // rows normalised (tokens; spatial positions for pixel_norm)
    d: u32,            // elements per row (channels)
    x_stride: u32,     // between rows; between channels for pixel_norm
    x_offset: u32,
    eps: f32,
    mod_rows: u32,     // 1 or rows (always 1 for pixel_norm: per-channel vectors)
    shift_stride: u32,
    shift_offset: u32,
    scale_stride: u32,
    scale_offset: u32,
    table_shift: u32,  // element offset of the shift row in `table`
    table_scale: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;          // rows of d at x_offset + r * x_stride
@group(0) @binding(2) var<storage, read> w: array<act>;          // (d) (WEIGHT)
@group(0) @binding(3) var<storage, read> shift_buf: array<act>;  // mod_rows rows of d, strided (MOD)
@group(0) @binding(4) var<storage, read> scale_buf: array<act>;  // mod_rows rows of d, strided (MOD)
@group(0) @binding(5) var<storage, read> table: array<act>;      // scale_shift_table rows (TABLE)
@group(0) @binding(6) var<storage, read_write> out: array<act>;  // (rows, d); (d, rows) for pixel_norm

var<workgroup> partial: array<f32, WG>;

// Sum of `v` over the workgroup; every invocation gets the total.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Nobody may overwrite partial[0] for the next sum before all have read it.
    workgroupBarrier();
    return total;
}

// Weight and modulation of the normalised value `n` of row r, channel c.
fn finish(n: f32, r: u32, c: u32) -> f32 {
    var v = n;
#if WEIGHT
    v *= f32(w[c]);
#endif
#if MOD
    let mr = select(r, 0u, p.mod_rows == 1u);
    var shift = f32(shift_buf[p.shift_offset + mr * p.shift_stride + c]);
    var scale = f32(scale_buf[p.scale_offset + mr * p.scale_stride + c]);
#if TABLE
    shift += f32(table[p.table_shift + c]);
    scale += f32(table[p.table_scale + c]);
#endif
    v = v * (1.0 + scale) + shift;
#endif
    return v;
}

// One workgroup per row; x is read again from cache for the output pass.
@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = wg.y * nwg.x + wg.x;
    if (r >= p.rows) { return; }
    let base = p.x_offset + r * p.x_stride;
    var ss = 0.0;
    for (var c = lid; c < p.d; c += WG) {
        let v = f32(x[base + c]);
        ss += v * v;
    }
    let inv = inverseSqrt(workgroup_sum(ss, lid) / f32(p.d) + p.eps);
    for (var c = lid; c < p.d; c += WG) {
        out[r * p.d + c] = act(finish(f32(x[base + c]) * inv, r, c));
    }
}

// Two passes (mean, then squared deviations) rather than E[x^2] - E[x]^2,
// which cancels catastrophically when |mean| >> std (residual streams).
@compute @workgroup_size(WG)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = wg.y * nwg.x + wg.x;
    if (r >= p.rows) { return; }
    let base = p.x_offset + r * p.x_stride;
    var s = 0.0;
    for (var c = lid; c < p.d; c += WG) {
        s += f32(x[base + c]);
    }
    let mean = workgroup_sum(s, lid) / f32(p.d);
    var ss = 0.0;
    for (var c = lid; c < p.d; c += WG) {
        let v = f32(x[base + c]) - mean;
        ss += v * v;
    }
    let inv = inverseSqrt(workgroup_sum(ss, lid) / f32(p.d) + p.eps);
    for (var c = lid; c < p.d; c += WG) {
        out[r * p.d + c] = act(finish((f32(x[base + c]) - mean) * inv, r, c));
    }
}

// VAE activations are channels-first [C, S]: the norm runs down a column,
// one invocation per spatial position, so neighbouring invocations read
// neighbouring addresses for every channel.
@compute @workgroup_size(WG)
fn pixel_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = flat_id(wg, nwg, lid, WG);
    if (s >= p.rows) { return; }
    let base = p.x_offset + s;
    var ss = 0.0;
    for (var c = 0u; c < p.d; c++) {
        let v = f32(x[base + c * p.x_stride]);
        ss += v * v;
    }
    let inv = inverseSqrt(ss / f32(p.d) + p.eps);
    for (var c = 0u; c < p.d; c++) {
        out[c * p.rows + s] = act(finish(f32(x[base + c * p.x_stride]) * inv, 0u, c));
    }
}
#endif
