//! Every kernel family against its CPU reference on a real adapter (Mesa
//! lavapipe in CI; any GPU on a developer's machine), at f32 and, where the
//! adapter has shader-f16, at f16.
//!
//! Without an adapter these tests say so and pass, unless
//! FRAMECAST_REQUIRE_GPU=1 (the README test command sets it), where they fail.

mod common;

use common::gpu;
use framecast::gpu::Precision;
use framecast::kernels;

fn check_family(family: &str) {
    let Some(gpu) = gpu() else { return };
    let mut precisions = vec![Precision::F32];
    if gpu.caps.f16 {
        precisions.push(Precision::F16);
    } else {
        eprintln!("{family}: f16 path skipped: the adapter has no shader-f16");
    }
    let mut failed = Vec::new();
    for p in precisions {
        let checks = pollster::block_on(kernels::self_check(gpu, family, p))
            .unwrap_or_else(|e| panic!("{family} {p:?}: {e}"));
        assert!(!checks.is_empty(), "{family} has no cases");
        for c in checks {
            println!("{c}");
            if !c.passed() {
                failed.push(c.name.clone());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{family}: cases over their bound: {failed:?}"
    );
}

#[test]
fn elementwise() {
    check_family("elementwise");
}

#[test]
fn sampler() {
    check_family("sampler");
}

#[test]
fn rng() {
    check_family("rng");
}

#[test]
fn video() {
    check_family("video");
}

#[test]
fn sampler_rng_video_reject_bad_shapes() {
    use framecast::gpu::{DType, GpuError};
    use kernels::sampler::{self, Euler, ModelOutput, Operand};
    use kernels::{rng, video};
    let Some(gpu) = gpu() else { return };
    let t = |shape: &[usize], dtype| gpu.empty(shape, dtype).unwrap();
    let x = t(&[6, 4], DType::F32);
    let sigma = t(&[5], DType::F32);
    let euler = Euler {
        output: ModelOutput::Velocity,
        keep_conditioned: None,
    };
    let mut step = gpu.step("bad shapes");
    let is_shape = |r: Result<(), GpuError>| matches!(r, Err(GpuError::Shape { .. }));
    // 24 elements are not whole tokens of 5 sigmas.
    assert!(is_shape(sampler::encode_step(
        &mut step, &x, &x, &sigma, &sigma, None, euler
    )));
    // Writing into an input must go through the in-place path.
    let sigma6 = t(&[6], DType::F32);
    assert!(is_shape(sampler::encode_step(
        &mut step,
        &x,
        &x.clone(),
        &sigma6,
        &sigma6,
        Some(&x),
        euler
    )));
    // cond would be read past its end.
    let out = t(&[6, 4], DType::F32);
    let cond = Operand {
        tensor: &x,
        offset: 1,
    };
    assert!(is_shape(sampler::encode_cfg(
        &mut step,
        cond,
        Operand::whole(&x),
        &out,
        3.0,
        None
    )));
    assert!(is_shape(rng::encode_u32(
        &mut step,
        &x,
        rng::Stream::new(1, 0)
    )));
    let frames = t(&[3, 2, 5, 7], DType::F32);
    assert!(is_shape(video::encode_rgba8(
        &mut step,
        &frames,
        &t(&[2, 5, 6], DType::U32)
    )));
    assert!(is_shape(video::encode_rgba8(
        &mut step,
        &x,
        &t(&[24], DType::U32)
    )));
    assert!(step.is_empty(), "a rejected call recorded work");
}

#[test]
fn norm() {
    check_family("norm");
}

#[test]
fn rope() {
    check_family("rope");
}

#[test]
fn matmul() {
    check_family("matmul");
}

#[test]
fn attention() {
    check_family("attention");
}

#[test]
fn conv3d() {
    check_family("conv3d");
}

#[test]
fn rearrange() {
    check_family("rearrange");
}

#[test]
fn every_family_has_a_test_here() {
    let this = include_str!("kernels.rs");
    for f in kernels::FAMILIES {
        assert!(
            this.contains(&format!("check_family(\"{f}\")")),
            "no test for kernel family {f}"
        );
    }
}

#[test]
fn norm_and_rope_reject_bad_shapes_with_typed_errors() {
    use framecast::GpuError;
    use framecast::gpu::DType;
    use framecast::kernels::{Rows, norm, rope};
    let Some(gpu) = gpu() else { return };
    let shape_error = |r: Result<(), GpuError>| matches!(r, Err(GpuError::Shape { .. }));
    let x = gpu.empty(&[3, 8], DType::F32).unwrap();
    let out = gpu.empty(&[3, 8], DType::F32).unwrap();
    let emb = gpu.empty(&[2, 16], DType::F32).unwrap();
    let half = gpu.empty(&[3, 8], DType::F16).unwrap();
    let mut step = gpu.step("bad shapes");
    let rms = norm::Norm::Rms;
    // A view that runs past the end of its tensor.
    let past = Rows {
        offset: 1,
        ..Rows::contiguous(&x, 8)
    };
    assert!(shape_error(norm::encode(
        &mut step, rms, past, None, 1e-6, None, &out
    )));
    // Modulation with 2 rows for 3 tokens (neither broadcast nor per token).
    let m = norm::Modulation::chunks(&emb, None, 8, 2, 0, 1);
    let xv = Rows::contiguous(&x, 8);
    assert!(shape_error(norm::encode(
        &mut step,
        rms,
        xv,
        None,
        1e-6,
        Some(&m),
        &out
    )));
    // In place, mixed element types, a weight of the wrong length.
    assert!(shape_error(norm::encode(
        &mut step, rms, xv, None, 1e-6, None, &x
    )));
    assert!(shape_error(norm::encode(
        &mut step, rms, xv, None, 1e-6, None, &half
    )));
    assert!(shape_error(norm::encode(
        &mut step,
        rms,
        xv,
        Some(&emb),
        1e-6,
        None,
        &out
    )));
    // A gate whose rows do not divide x.
    let gate = norm::Gate::chunk(&emb, None, 16, 1, 0);
    assert!(shape_error(norm::gated_residual(
        &mut step, &x, &x, &gate, &out
    )));
    // Pixel-norm modulation must be per channel (one row).
    let m2 = norm::Modulation::chunks(&emb, None, 3, 1, 0, 0);
    assert!(shape_error(norm::pixel_norm(
        &mut step,
        xv,
        None,
        1e-8,
        Some(&m2),
        &out
    )));
    // Rope: odd dim, f16 tables, coordinates that are not [T, 3].
    let odd = gpu.empty(&[3, 7], DType::F32).unwrap();
    let odd_out = gpu.empty(&[3, 7], DType::F32).unwrap();
    let ov = Rows::contiguous(&odd, 7);
    assert!(shape_error(rope::rope_apply(
        &mut step, ov, &odd, &odd, &odd_out
    )));
    assert!(shape_error(rope::rope_apply(
        &mut step, xv, &half, &half, &out
    )));
    let freqs = gpu.empty(&[1], DType::F32).unwrap();
    assert!(shape_error(rope::rope_table(
        &mut step, &out, &freqs, 8, &x, &emb
    )));
    assert!(step.is_empty(), "a rejected call recorded work");
}

#[test]
fn matmul_rejects_mismatched_shapes() -> anyhow::Result<()> {
    use framecast::gpu::{DType, GpuError};
    use framecast::kernels::matmul::{Weight, WeightFormat, encode};
    let Some(gpu) = gpu() else { return Ok(()) };
    let mut w = Weight::upload(gpu, &[0.5; 8 * 32], 8, 32, WeightFormat::Q4, 32)?;
    let x = gpu.empty(&[3, 32], DType::F32)?;
    let y = gpu.empty(&[3, 8], DType::F32)?;
    let shape_error = |r: Result<(), GpuError>| matches!(r, Err(GpuError::Shape { .. }));
    let mut step = gpu.step("matmul shapes");
    encode(&mut step, &x, &w, None, &y)?;
    let x31 = gpu.empty(&[3, 31], DType::F32)?;
    assert!(shape_error(encode(&mut step, &x31, &w, None, &y)));
    let y9 = gpu.empty(&[3, 9], DType::F32)?;
    assert!(shape_error(encode(&mut step, &x, &w, None, &y9)));
    let b7 = gpu.empty(&[7], DType::F32)?;
    assert!(shape_error(encode(&mut step, &x, &w, Some(&b7), &y)));
    if gpu.caps.f16 {
        let y16 = gpu.empty(&[3, 8], DType::F16)?;
        assert!(shape_error(encode(&mut step, &x, &w, None, &y16)));
    }
    // Parts that no longer cover the rows are caught before any dispatch.
    w.n = 9;
    assert!(shape_error(encode(&mut step, &x, &w, None, &y)));
    assert!(Weight::upload(gpu, &[0.5; 8 * 30], 8, 30, WeightFormat::Q4, 32).is_err());
    assert_eq!(step.len(), 1);
    Ok(())
}

/// Wall-clock GFLOP/s of attention at LTX-2B's shapes: self-attention of 32
/// heads x 64 over 1120 tokens and cross-attention 1120 -> 256 text tokens.
/// `cargo test --release -p framecast --test kernels attention_timing -- --ignored --nocapture`
#[test]
#[ignore]
fn attention_timing() {
    use framecast::kernels::attention::{Attention, Bias, Path, encode_path};
    use framecast::kernels::testing::Rng;
    let Some(gpu) = gpu() else { return };
    let mut precisions = vec![Precision::F32];
    if gpu.caps.f16 {
        precisions.push(Precision::F16);
    }
    let mut rng = Rng::new(5);
    let paths: Vec<Path> = [Path::Tiled, Path::Subgroups]
        .into_iter()
        .filter(|p| p.supported(gpu))
        .collect();
    for p in precisions {
        for (path, nq, nk, masked) in paths.iter().flat_map(|&path| {
            [(1120, 1120, false), (1120, 256, true)].map(|(q, k, m)| (path, q, k, m))
        }) {
            let a = Attention::new(1, 32, nq, nk, 64);
            let dt = p.dtype();
            let up =
                |n: usize, rng: &mut Rng| gpu.upload(&rng.normal_vec(n, 1.0), &[n], dt).unwrap();
            let (q, k, v) = (
                up(nq * 2048, &mut rng),
                up(nk * 2048, &mut rng),
                up(nk * 2048, &mut rng),
            );
            let out = gpu.empty(&[nq * 2048], dt).unwrap();
            let mask = gpu
                .upload(&vec![0.0; nk], &[1, nk], framecast::gpu::DType::F32)
                .unwrap();
            let bias = Bias {
                mask: masked.then_some(&mask),
                t5_table: None,
            };
            let run = || {
                let mut step = gpu.step("attention timing");
                encode_path(&mut step, path, &a, [&q, &k, &v, &out], bias).unwrap();
                step.submit().unwrap();
                pollster::block_on(gpu.wait()).unwrap();
            };
            run();
            let reps = 3;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                run();
            }
            let secs = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "attention {path:?} {p:?} 32x64 {nq}->{nk}{}: {:.1} ms, {:.1} GFLOP/s",
                if masked { " masked" } else { "" },
                secs * 1e3,
                a.flops() / secs / 1e9
            );
        }
    }
}
