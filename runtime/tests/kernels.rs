//! Every kernel family against its CPU reference on a real adapter (Mesa
//! lavapipe in CI; any GPU on a developer's machine), at f32 and, where the
//! adapter has shader-f16, at f16.
//!
//! Without an adapter these tests say so and pass, unless
//! FRAMECAST_REQUIRE_GPU=1 (the README test command sets it), where they fail.

use std::sync::OnceLock;

use framecast::gpu::Precision;
use framecast::{AdapterChoice, Gpu, kernels};

fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(
        || match pollster::block_on(Gpu::new(&AdapterChoice::from_env())) {
            Ok(g) => {
                eprintln!("adapter: {}", g.describe());
                Some(g)
            }
            Err(e) => {
                let required = std::env::var("FRAMECAST_REQUIRE_GPU").as_deref() == Ok("1");
                assert!(!required, "no adapter and FRAMECAST_REQUIRE_GPU=1: {e}");
                eprintln!("skipped: no GPU adapter ({e})");
                None
            }
        },
    )
    .as_ref()
}

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
fn matmul() {
    check_family("matmul");
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
