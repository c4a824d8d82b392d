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
fn attention() {
    check_family("attention");
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
