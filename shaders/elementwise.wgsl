// Elementwise ops on activations: residual add, scale, activations.
// Unary ops bind `a` twice (as a and b); b is broadcast along a (i % b_len),
// which turns `add` into a bias add over rows.
#include "common/precision.wgsl"
#include "common/index.wgsl"

struct Params {
    n: u32,      // elements of a and out
    b_len: u32,  // elements of b (divides n)
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<act>;          // (n)
@group(0) @binding(2) var<storage, read> b: array<act>;          // (b_len)
@group(0) @binding(3) var<storage, read_write> out: array<act>;  // (n)

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn gelu_tanh(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    // tanh(z) = 1 - 2 / (exp(2z) + 1), clamped so exp cannot overflow.
    let t = 1.0 - 2.0 / (exp(2.0 * clamp(inner, -15.0, 15.0)) + 1.0);
    return 0.5 * x * (1.0 + t);
}

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(f32(a[i]) + f32(b[i % p.b_len]));
}

@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(f32(a[i]) * f32(b[i % p.b_len]));
}

@compute @workgroup_size(WG)
fn silu_op(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(silu(f32(a[i])));
}

@compute @workgroup_size(WG)
fn gelu_tanh_op(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(gelu_tanh(f32(a[i])));
}

// T5's gated GELU: gelu_tanh(a) * b, same shapes.
@compute @workgroup_size(WG)
fn gated_gelu(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(gelu_tanh(f32(a[i])) * f32(b[i % p.b_len]));
}
