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
