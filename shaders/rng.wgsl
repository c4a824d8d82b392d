// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11) and
// Box-Muller normals. The same seed gives the same stream on every adapter,
// natively and in the browser; runtime/src/kernels/rng.rs documents the
// scheme and holds the bit-identical CPU implementation.
//
// Element e (a 64-bit index: offset + i) of stream s under seed k is
// lane e % 4 of philox(counter = (b_lo, b_hi, s, 0), key = (k_lo, k_hi))
// with b = e / 4. Normals pair lanes (0, 1) and (2, 3):
//   u = (lane_a >> 8 + 1) * 2^-24 in (0, 1], w = (lane_b >> 8) * 2^-23 - 1 in [-1, 1)
//   r = sqrt(-2 ln u), theta = pi * w
//   lane_a -> r cos(theta), lane_b -> r sin(theta)
// One invocation computes one Philox block (four elements).
#include "common/precision.wgsl"
#include "common/index.wgsl"

struct Params {
    n: u32,          // elements written
    key_lo: u32,     // seed, low word
    key_hi: u32,     // seed, high word
    stream: u32,     // which tensor of a generation (counter word 2)
    offset_lo: u32,  // index of the first element in the stream, low word
    offset_hi: u32,  // high word
    mean: f32,       // normal: out = mean + std_dev * z
    std_dev: f32,
}

override WG: u32 = 64;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<act>;      // (n) normal
@group(0) @binding(1) var<storage, read_write> out_u32: array<u32>;  // (n) raw

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// The high and low words of the 64-bit product a * b. WGSL has no 64-bit
// integers, so the high word is assembled from 16-bit halves.
fn mul_hi_lo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // At most 3 * (2^16 - 1): no overflow.
    let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var r = 0u; r < 10u; r++) {
        if (r > 0u) {
            k += vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = mul_hi_lo(PHILOX_M0, c.x);
        let p1 = mul_hi_lo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

const PI: f32 = 3.14159265358979323846;

// Box-Muller on two 32-bit words. Every step before the transcendental
// functions is exact in f32 (24-bit integers times powers of two), and the
// angle stays in [-pi, pi) where GPU sin/cos are most accurate.
fn box_muller(a: u32, b: u32) -> vec2<f32> {
    let u = f32((a >> 8u) + 1u) * (1.0 / 16777216.0);
    let w = f32(b >> 8u) * (1.0 / 8388608.0) - 1.0;
    let r = sqrt(-2.0 * log(u));
    let theta = PI * w;
    return vec2<f32>(r * cos(theta), r * sin(theta));
}

// The invocation's Philox block, and the index (in the output) of its lane 0
// relative to the first element: may be negative for the first block.
struct Block {
    bits: vec4<u32>,
    first: i32,
}

fn block_for(j: u32) -> Block {
    // b = offset / 4 + j, in 64 bits.
    let b0 = (p.offset_lo >> 2u) | (p.offset_hi << 30u);
    let b1 = p.offset_hi >> 2u;
    let lo = b0 + j;
    let hi = b1 + select(0u, 1u, lo < b0);
    let bits = philox(vec4<u32>(lo, hi, p.stream, 0u), vec2<u32>(p.key_lo, p.key_hi));
    return Block(bits, i32(j * 4u) - i32(p.offset_lo & 3u));
}

@compute @workgroup_size(WG)
fn normal(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = flat_id(wg, nwg, lid, WG);
    if (j * 4u >= p.n + (p.offset_lo & 3u)) { return; }
    let blk = block_for(j);
    let z01 = box_muller(blk.bits.x, blk.bits.y);
    let z23 = box_muller(blk.bits.z, blk.bits.w);
    var z = array<f32, 4>(z01.x, z01.y, z23.x, z23.y);
    for (var lane = 0; lane < 4; lane++) {
        let o = blk.first + lane;
        if (o >= 0 && u32(o) < p.n) {
            out[u32(o)] = act(p.mean + p.std_dev * z[lane]);
        }
    }
}

@compute @workgroup_size(WG)
fn raw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = flat_id(wg, nwg, lid, WG);
    if (j * 4u >= p.n + (p.offset_lo & 3u)) { return; }
    let blk = block_for(j);
    var bits = array<u32, 4>(blk.bits.x, blk.bits.y, blk.bits.z, blk.bits.w);
    for (var lane = 0; lane < 4; lane++) {
        let o = blk.first + lane;
        if (o >= 0 && u32(o) < p.n) {
            out_u32[u32(o)] = bits[lane];
        }
    }
}
