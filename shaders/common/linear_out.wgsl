// The bindings both linear-layer shaders share after X (1) and W (2): Y,
// the q4/q8 scales and the bias, with their readers. Needs a `p` with
// `groups_per_row`, and `act` (common/precision.wgsl).
@group(0) @binding(3) var<storage, read_write> y: array<act>;      // (M, N)
#if QUANT
@group(0) @binding(4) var<storage, read> scales: array<u32>;       // (rows, K/group) f16 pairs
#if BIAS
@group(0) @binding(5) var<storage, read> bias: array<act>;         // (N)
#endif
#else
#if BIAS
@group(0) @binding(4) var<storage, read> bias: array<act>;         // (N)
#endif
#endif

fn bias_at(col: u32) -> f32 {
#if BIAS
    return f32(bias[col]);
#else
    return 0.0;
#endif
}

#if QUANT
// The scale of W row `row` for its quantisation group `g`.
fn group_scale(row: u32, g: u32) -> f32 {
    let i = row * p.groups_per_row + g;
    return unpack2x16float(scales[i >> 1u])[i & 1u];
}
#endif
