// The flow-matching sampler: the Euler step with per-token sigmas, and the
// classifier-free guidance combine (with optional guidance rescale).
//
// Euler (diffusers FlowMatchEulerDiscreteScheduler.step with
// per_token_timesteps, as LTXConditionPipeline calls it):
//   x' = x + (sigma_next[t] - sigma[t]) * sign * m
// where m is the model-output tensor and sign turns it into the velocity
// (+1 when m is the transformer's prediction, -1 when m is diffusers'
// `-noise_pred`). With conditioning, a token whose sigma is already below the
// step's sigma (sigma[t] <= t_sigma - 1e-6) keeps its value, which is
// LTXConditionPipeline's `tokens_to_denoise_mask`.
//
// CFG: out = uncond + g * (cond - uncond), cond and uncond read at element
// offsets so they may be two tensors or the halves of a batched one. The
// rescale (diffusers' rescale_noise_cfg) needs the standard deviations of
// cond and of the combined prediction over the whole item: `cfg_stats` (one
// workgroup) reduces them into a 4-float scratch, `cfg_rescale` applies them.
#include "common/precision.wgsl"
#include "common/index.wgsl"

struct Params {
    n: u32,            // elements written (tokens * channels)
    channels: u32,     // step: channels per token; element i is token i / channels
    cond_offset: u32,  // cfg: first element of cond in its buffer
    uncond_offset: u32,// cfg: first element of uncond in its buffer
    scale: f32,        // step: sign of the model output (+1 or -1); cfg: guidance g
    t_sigma: f32,      // step: the step's own sigma (used when keep_cond = 1)
    keep_cond: u32,    // step: 1 = keep tokens whose sigma <= t_sigma - 1e-6
    rescale: f32,      // cfg: guidance_rescale phi in [0, 1]
}

override WG: u32 = 256;

@group(0) @binding(0) var<uniform> p: Params;

// ---- euler_step ------------------------------------------------------------
#if INPLACE
@group(0) @binding(1) var<storage, read_write> x: array<act>;   // (T, C) latents, updated in place
#else
@group(0) @binding(1) var<storage, read> x: array<act>;         // (T, C) latents
#endif
@group(0) @binding(2) var<storage, read> m: array<act>;         // (T, C) model output
@group(0) @binding(3) var<storage, read> sigma: array<f32>;     // (T) each token's current sigma
@group(0) @binding(4) var<storage, read> sigma_next: array<f32>;// (T) each token's next sigma
#if !INPLACE
@group(0) @binding(5) var<storage, read_write> x_out: array<act>; // (T, C)
#endif

@compute @workgroup_size(WG)
fn euler_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    let token = i / p.channels;
    let s = sigma[token];
    let x0 = f32(x[i]);
    var y = x0 + (sigma_next[token] - s) * (p.scale * f32(m[i]));
    // diffusers: tokens_to_denoise = t - 1e-6 < sigma_token (with sigma_token
    // = min(t, 1 - conditioning_mask)); the others keep their value exactly.
    if (p.keep_cond != 0u && !(p.t_sigma - 1e-6 < s)) {
        y = x0;
    }
#if INPLACE
    x[i] = act(y);
#else
    x_out[i] = act(y);
#endif
}

// ---- cfg_combine, cfg_stats, cfg_rescale -------------------------------------
@group(0) @binding(1) var<storage, read> cond: array<act>;       // (>= cond_offset + n)
@group(0) @binding(2) var<storage, read> uncond: array<act>;     // (>= uncond_offset + n)
@group(0) @binding(3) var<storage, read_write> out: array<act>;  // (n)
@group(0) @binding(3) var<storage, read_write> stats_out: array<f32>; // (4) cfg_stats
@group(0) @binding(4) var<storage, read> stats: array<f32>;      // (4) cfg_rescale

fn guided(i: u32) -> f32 {
    let u = f32(uncond[p.uncond_offset + i]);
    return u + p.scale * (f32(cond[p.cond_offset + i]) - u);
}

@compute @workgroup_size(WG)
fn cfg_combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(guided(i));
}

@compute @workgroup_size(WG)
fn cfg_rescale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = flat_id(wg, nwg, lid, WG);
    if (i >= p.n) { return; }
    out[i] = act(guided(i) * stats[0]);
}

// Welford partials (count, mean, M2) for cond and for the guided values.
// The count is the same for both, so one array holds it.
const STATS_WG: u32 = 256;
var<workgroup> w_count: array<f32, STATS_WG>;
var<workgroup> w_mean: array<vec2<f32>, STATS_WG>;
var<workgroup> w_m2: array<vec2<f32>, STATS_WG>;

// One workgroup walks the whole item: the tensors are small (tokens x 128
// channels) and a single pass avoids a second dispatch and a partials buffer.
// Welford per invocation and Chan's merge keep f32 accurate where the naive
// sum of squares would cancel.
@compute @workgroup_size(STATS_WG)
fn cfg_stats(@builtin(local_invocation_index) lid: u32) {
    var count = 0.0;
    var mean = vec2<f32>(0.0);
    var m2 = vec2<f32>(0.0);
    for (var i = lid; i < p.n; i += STATS_WG) {
        let v = vec2<f32>(f32(cond[p.cond_offset + i]), guided(i));
        count += 1.0;
        let d = v - mean;
        mean += d / count;
        m2 += d * (v - mean);
    }
    w_count[lid] = count;
    w_mean[lid] = mean;
    w_m2[lid] = m2;
    workgroupBarrier();
    for (var stride = STATS_WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let na = w_count[lid];
            let nb = w_count[lid + stride];
            let nab = na + nb;
            if (nb > 0.0) {
                let d = w_mean[lid + stride] - w_mean[lid];
                let f = nb / nab;
                w_mean[lid] += d * f;
                w_m2[lid] += w_m2[lid + stride] + d * d * (na * f);
                w_count[lid] = nab;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        // The ratio of standard deviations: Bessel's correction cancels.
        let std_cond = sqrt(max(w_m2[0].x, 0.0));
        let std_cfg = sqrt(max(w_m2[0].y, 0.0));
        // A constant prediction has no spread to match: leave it unscaled
        // (diffusers would divide by zero).
        var ratio = 1.0;
        if (std_cfg > 0.0) {
            ratio = std_cond / std_cfg;
        }
        stats_out[0] = p.rescale * ratio + (1.0 - p.rescale);
        stats_out[1] = ratio;
        stats_out[2] = w_mean[0].x;
        stats_out[3] = w_mean[0].y;
    }
}
