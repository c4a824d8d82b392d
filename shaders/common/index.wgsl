// Work larger than 65535 workgroups is spread over x and y; this is the
// flat index of an invocation for a 1D problem (see kernels::groups_1d).
fn flat_id(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * size + lid;
}
