// 3D depth-to-space and space-to-depth on channels-first VAE activations.
//
//   packed  [C * S, F, H, W]          (S = st * sh * sw)
//   spatial [C, F * st, H * sh, W * sw]
//
// Packed channel c * S + it * cs_t + ih * cs_h + iw * cs_w holds spatial
// voxel (f * st + it, h * sh + ih, w * sw + iw) of channel c. The channel
// strides (cs_t, cs_h, cs_w) encode the sub-position order, which differs
// between LTX's upsampler (t, h, w) and its patchify (t, w, h).
//
// frame_offset: depth_to_space drops that many leading frames (the LTX
// upsampler's [:, :, st-1:]); space_to_depth reads frames as if the first
// frame_offset input frames were prepended (the LTX downsampler's
// cat([x[:, :, :st-1], x])). `group`: depth_to_space tiles the channels
// group times (the upsampler residual's repeat); space_to_depth averages
// groups of that many consecutive packed channels (the downsampler residual).
// One invocation per output element; pure data movement, exact in any precision.
#include "common/precision.wgsl"
#include "common/index.wgsl"

struct Params {
    n: u32,             // output elements
    channels: u32,      // C: channels on the spatial side before repeat
    frames: u32,        // F, H, W: the packed side
    height: u32,
    width: u32,
    st: u32,            // factors
    sh: u32,
    sw: u32,
    cs_t: u32,          // channel strides of (it, ih, iw) inside a block of S
    cs_h: u32,
    cs_w: u32,
    frame_offset: u32,
    group: u32,
    spatial_frames: u32, // frames on the spatial side (after the drop / before the prepend)
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<act>;          // packed or spatial (see entry)
@group(0) @binding(2) var<storage, read_write> out: array<act>;    // the other side

// src packed (C * S, F, H, W) -> out spatial (C * group, spatial_frames, H * sh, W * sw).
@compute @workgroup_size(WG)
fn depth_to_space(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    let wo = p.width * p.sw;
    let ho = p.height * p.sh;
    let xo = i % wo;
    let yo = (i / wo) % ho;
    let fo = (i / (wo * ho)) % p.spatial_frames;
    let co = i / (wo * ho * p.spatial_frames);
    let t = fo + p.frame_offset;
    let c = co % p.channels;
    let ch = c * (p.st * p.sh * p.sw) + (t % p.st) * p.cs_t + (yo % p.sh) * p.cs_h + (xo % p.sw) * p.cs_w;
    out[i] = src[((ch * p.frames + t / p.st) * p.height + yo / p.sh) * p.width + xo / p.sw];
}

// src spatial (C, spatial_frames, H * sh, W * sw) -> out packed (C * S / group, F, H, W).
@compute @workgroup_size(WG)
fn space_to_depth(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    let s = p.st * p.sh * p.sw;
    let wi = p.width * p.sw;
    let hi = p.height * p.sh;
    let x0 = i % p.width;
    let y0 = (i / p.width) % p.height;
    let f0 = (i / (p.width * p.height)) % p.frames;
    let co = i / (p.width * p.height * p.frames);
    var sum = 0.0;
    for (var g = 0u; g < p.group; g++) {
        let ch = co * p.group + g;
        let c = ch / s;
        let r = ch % s;
        let t = f0 * p.st + (r / p.cs_t) % p.st;
        // Frames before frame_offset are the prepended copies of the first ones.
        let sf = select(t - p.frame_offset, t, t < p.frame_offset);
        let y = y0 * p.sh + (r / p.cs_h) % p.sh;
        let x = x0 * p.sw + (r / p.cs_w) % p.sw;
        sum += f32(src[((c * p.spatial_frames + sf) * hi + y) * wi + x]);
    }
    out[i] = act(sum / f32(p.group));
}
