// FMA peak microbenchmark: every invocation runs 8 (4 under the CHAINS4
// flag) independent vec4 fma chains for `iters` iterations of UNROLL steps
// each (a define set by peak.rs). Independent chains hide the FMA latency
// (a CPU rasteriser such as lavapipe maps invocations to SIMD lanes and needs
// several FMAs in flight per lane; a GPU gets the same from many warps).
// Fewer chains need fewer registers (a CPU rasteriser keeps each vec4 in 4
// SIMD registers); more hide more latency. The host takes the faster.
// The unrolling matters on a CPU rasteriser: there one loop iteration costs
// a mask update and test across the SIMD lanes, and with one step per
// iteration lavapipe read less than half its FMA rate (45 against 90-100
// GFLOP/s on the 2-core build machine).
// The multiplier and addend come from the uniform, so nothing folds at
// compile time, and the result is stored so nothing is dead code.
//
// FLOPs per invocation: iters * UNROLL * chains * 4 lanes * 2.
#if F16
enable f16;
alias elem = f16;
#else
alias elem = f32;
#endif

struct Params {
    iters: u32,
    mul: f32,     // close to 1 so the chains neither overflow nor flush to zero
    add: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // (invocations)

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    let s = elem(f32(i & 1023u) * 1e-4);
    let m = vec4<elem>(elem(p.mul));
    let c = vec4<elem>(elem(p.add));
    var a0 = vec4<elem>(s, s + elem(0.1), s + elem(0.2), s + elem(0.3));
    var a1 = a0 + vec4<elem>(elem(0.01));
    var a2 = a0 + vec4<elem>(elem(0.02));
    var a3 = a0 + vec4<elem>(elem(0.03));
#if !CHAINS4
    var a4 = a0 + vec4<elem>(elem(0.04));
    var a5 = a0 + vec4<elem>(elem(0.05));
    var a6 = a0 + vec4<elem>(elem(0.06));
    var a7 = a0 + vec4<elem>(elem(0.07));
#endif
    for (var it = 0u; it < p.iters; it++) {
#repeat u UNROLL
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
#if !CHAINS4
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
#endif
#endrepeat
    }
#if CHAINS4
    let sum = (a0 + a1) + (a2 + a3);
#else
    let sum = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
#endif
    out[i] = f32(sum.x + sum.y + sum.z + sum.w);
}
