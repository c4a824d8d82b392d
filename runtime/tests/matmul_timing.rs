//! Quick wall-clock figures for the matmul kernels on whatever adapter opens
//! (not a benchmark: the `bench` crate compares against burn and the peak).
//!
//! cargo test --release -p framecast --test matmul_timing -- --ignored --nocapture
//! MATMUL_SHAPES="1120x2048x2048,1120x2048x8192" sets the GEMM shapes (M x K x N),
//! MATMUL_FORMATS=f32,q4, MATMUL_F16=0, MATMUL_GEMV_M=1,16 and MATMUL_GEMV_N=4096,10240
//! narrow the rest.

use std::time::Instant;

use framecast::AdapterChoice;
use framecast::gpu::{Gpu, Precision};
use framecast::kernels::matmul::{self, Path, Weight, WeightFormat};
use framecast::kernels::testing::Rng;

/// CPU seconds this process has used (user + system), from /proc: on a CPU
/// adapter (lavapipe) on a shared machine it tracks work better than wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

fn time(
    gpu: &Gpu,
    precision: Precision,
    path: Path,
    (m, k, n): (usize, usize, usize),
    format: WeightFormat,
) -> anyhow::Result<(f64, f64)> {
    let mut rng = Rng::new(1);
    let dtype = precision.dtype();
    let w = Weight::upload(gpu, &rng.normal_vec(n * k, 0.02), n, k, format, 32)?;
    let x = gpu.upload(&rng.normal_vec(m * k, 1.0), &[m, k], dtype)?;
    let y = gpu.empty(&[m, n], dtype)?;
    let run = |reps: usize| -> anyhow::Result<(f64, f64)> {
        let start = Instant::now();
        let cpu = cpu_seconds();
        for _ in 0..reps {
            let mut step = gpu.step("matmul timing");
            matmul::encode_path(&mut step, path, &x, &w, None, &y)?;
            step.submit()?;
        }
        pollster::block_on(gpu.wait())?;
        let n = reps as f64;
        Ok((start.elapsed().as_secs_f64() / n, (cpu_seconds() - cpu) / n))
    };
    run(1)?; // pipeline build and first touch
    let flops = 2.0 * (m * k * n) as f64;
    // Enough repetitions for about a second of work.
    let (once, _) = run(1)?;
    let reps = (1.0 / once).clamp(1.0, 50.0) as usize;
    let (wall, cpu) = run(reps)?;
    Ok((flops / wall / 1e9, flops / cpu.max(1e-9) / 1e9))
}

#[test]
#[ignore]
fn matmul_timing() -> anyhow::Result<()> {
    let gpu = pollster::block_on(Gpu::new(&AdapterChoice::from_env()))?;
    println!("adapter: {}", gpu.describe());
    let gemm: Vec<(usize, usize, usize)> = match std::env::var("MATMUL_SHAPES") {
        Ok(s) => s
            .split(',')
            .filter_map(|t| {
                let v: Vec<usize> = t.split('x').filter_map(|d| d.parse().ok()).collect();
                (v.len() == 3).then(|| (v[0], v[1], v[2]))
            })
            .collect(),
        Err(_) => vec![(1120, 2048, 2048)],
    };
    let formats: Vec<WeightFormat> = match std::env::var("MATMUL_FORMATS") {
        Ok(s) => WeightFormat::ALL
            .into_iter()
            .filter(|f| s.split(',').any(|t| t == f.name()))
            .collect(),
        Err(_) => WeightFormat::ALL.to_vec(),
    };
    let mut precisions = vec![Precision::F32];
    if gpu.caps.f16 && std::env::var("MATMUL_F16").as_deref() != Ok("0") {
        precisions.push(Precision::F16);
    }
    for &p in &precisions {
        for &shape in &gemm {
            for &format in &formats {
                let (g, c) = time(&gpu, p, Path::Auto, shape, format)?;
                println!(
                    "gemm {shape:?} w {} act {p:?}: {g:.2} GFLOP/s wall, {c:.2} GFLOP per CPU-second",
                    format.name()
                );
            }
        }
    }
    let gemv_ms: Vec<usize> = match std::env::var("MATMUL_GEMV_M") {
        Ok(s) => s.split(',').filter_map(|t| t.parse().ok()).collect(),
        Err(_) => vec![1, 4, 8, 16],
    };
    let gemv_ns: Vec<usize> = match std::env::var("MATMUL_GEMV_N") {
        Ok(s) => s.split(',').filter_map(|t| t.parse().ok()).collect(),
        Err(_) => vec![4096],
    };
    // GEMM on the GEMV shapes only with MATMUL_GEMV_BOTH=1 (finding the crossover).
    let paths: &[Path] = match std::env::var("MATMUL_GEMV_BOTH").as_deref() {
        Ok("1") => &[Path::Gemv, Path::Gemm],
        _ => &[Path::Auto],
    };
    for (m, n) in gemv_ms
        .iter()
        .flat_map(|&m| gemv_ns.iter().map(move |&n| (m, n)))
    {
        for &format in &formats {
            for &path in paths {
                let shape = (m, 4096, n);
                let (g, c) = time(&gpu, Precision::F32, path, shape, format)?;
                // Weight bytes streamed per second: the GEMV's real limit.
                let bytes = (n * format.row_bytes(4096)) as f64;
                let gbs = g * 1e9 / (2.0 * (m * 4096 * n) as f64) * bytes / 1e9;
                println!(
                    "{path:?} {shape:?} w {}: {g:.2} GFLOP/s, {gbs:.1} GB/s of weights ({c:.2} GFLOP per CPU-second)",
                    format.name()
                );
            }
        }
    }
    Ok(())
}
