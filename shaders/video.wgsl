// Frames out of the model: decoded frames to RGBA8 (what video encoders and
// the browser's VideoFrame take) or to f32 RGB, and a cheap latent preview.
//
// A value x in [-1, 1] becomes t = clamp((x + 1) / 2, 0, 1) and the byte
// round_half_even(t * 255), which is what diffusers' VideoProcessor does
// ((x * 0.5 + 0.5).clamp(0, 1), then numpy's round of * 255). Each step is
// one correctly rounded f32 operation with no multiply-then-add a compiler
// could fuse, so every adapter and the CPU produce the same bytes.
// RGBA8 packs R in the low byte: the u32 words read as R, G, B, A bytes.
#include "common/precision.wgsl"
#include "common/index.wgsl"

struct Params {
    n: u32,         // output pixels
    plane: u32,     // frames: elements per channel plane (F * H * W)
    channels: u32,  // preview: latent channels C
    c_stride: u32,  // preview: elements between a pixel's channels
    p_stride: u32,  // preview: elements between neighbouring latent pixels
    base: u32,      // preview: element index of channel 0 of pixel 0
    height: u32,    // preview: latent H
    width: u32,     // preview: latent W
    factor: u32,    // preview: nearest-neighbour upsampling factor
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;          // frames (3, F, H, W) | latent (see strides)
@group(0) @binding(2) var<storage, read_write> rgba_out: array<u32>;   // (F, H, W) frames_rgba8
@group(0) @binding(2) var<storage, read_write> rgb_out: array<f32>;    // (F, H, W, 3) frames_rgb_f32
@group(0) @binding(2) var<storage, read> proj: array<f32>;       // (3, C) preview
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // (3) preview
@group(0) @binding(4) var<storage, read_write> preview: array<u32>;// (F, H * factor, W * factor) preview

fn unit(x: f32) -> f32 {
    return clamp((x + 1.0) * 0.5, 0.0, 1.0);
}

fn pack_rgba(c: vec3<f32>) -> u32 {
    let b = vec3<u32>(round(vec3<f32>(unit(c.x), unit(c.y), unit(c.z)) * 255.0));
    return b.x | (b.y << 8u) | (b.z << 16u) | (255u << 24u);
}

fn frame_pixel(q: u32) -> vec3<f32> {
    return vec3<f32>(f32(src[q]), f32(src[p.plane + q]), f32(src[2u * p.plane + q]));
}

@compute @workgroup_size(WG)
fn frames_rgba8(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = flat_id(wg, nwg, lid, WG);
    if (q >= p.n) { return; }
    rgba_out[q] = pack_rgba(frame_pixel(q));
}

@compute @workgroup_size(WG)
fn frames_rgb_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = flat_id(wg, nwg, lid, WG);
    if (q >= p.n) { return; }
    let c = frame_pixel(q);
    rgb_out[3u * q] = unit(c.x);
    rgb_out[3u * q + 1u] = unit(c.y);
    rgb_out[3u * q + 2u] = unit(c.z);
}

// One invocation per output pixel: the 3 x C projection is cheap next to a
// denoising step, and recomputing it per upsampled pixel keeps the kernel
// free of shared memory.
@compute @workgroup_size(WG)
fn latent_preview(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let o = flat_id(wg, nwg, lid, WG);
    if (o >= p.n) { return; }
    let out_w = p.width * p.factor;
    let out_h = p.height * p.factor;
    let ox = o % out_w;
    let oy = (o / out_w) % out_h;
    let f = o / (out_w * out_h);
    let q = (f * p.height + oy / p.factor) * p.width + ox / p.factor;
    var acc = vec3<f32>(bias[0], bias[1], bias[2]);
    var e = p.base + q * p.p_stride;
    for (var c = 0u; c < p.channels; c++) {
        let v = f32(src[e]);
        acc += vec3<f32>(proj[c], proj[p.channels + c], proj[2u * p.channels + c]) * v;
        e += p.c_stride;
    }
    preview[o] = pack_rgba(acc);
}
