//! End to end: a whole LTX pipeline from a bundle, by stage, with peak GPU
//! memory and how busy the GPU was while denoising.
//!
//! ```text
//! python tools/reference/bench_mid.py build /tmp/bench-mid
//! cargo run --release -p framecast-quantize -- convert /tmp/bench-mid /tmp/bench-mid-q4
//! cargo run --release -p framecast --example bench_pipeline -- /tmp/bench-mid-q4 [--f32]
//! python tools/reference/bench_mid.py time /tmp/bench-mid --threads 2
//! ```
//!
//! Made for the "bench-mid" pipeline (`tools/reference/bench_mid.py`, whose
//! `CALL` this mirrors: 512x320, 49 frames, 8 steps, no CFG), which
//! diffusers times on the CPU with the same script. Three runs: a warm-up
//! of one step (it builds every compute pipeline), the measured run (wall
//! clock per stage and per step, peak memory), and where the adapter has
//! timestamp queries a profiled run whose per-dispatch GPU times are summed:
//! the measured run's denoising wall time over that sum says how much of
//! the loop the GPU spent idle (stalls, readbacks, recording).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use framecast::bundle::{BundleLoader, FsSource, Manifest};
use framecast::gpu::DType;
use framecast::models::Weights;
use framecast::pipeline::{Cancel, Event, GenerateOptions, LtxPipeline};
use framecast::{AdapterChoice, Gpu};

/// tools/reference/bench_mid.py `CALL`.
fn call() -> GenerateOptions {
    GenerateOptions {
        prompt: "a red ball bounces on a blue floor".into(),
        width: 512,
        height: 320,
        num_frames: 49,
        frame_rate: 24.0,
        num_inference_steps: 8,
        guidance_scale: 1.0,
        seed: 0,
        max_sequence_length: 256,
        decode_timestep: 0.0,
        decode_noise_scale: Some(0.0),
        ..GenerateOptions::default()
    }
}

#[derive(Default)]
struct Run {
    stages: Vec<(String, f64)>,
    steps: Vec<f64>,
    total: f64,
}

async fn generate(gpu: &Gpu, pipe: &LtxPipeline, opts: &GenerateOptions) -> Result<Run> {
    let mut run = Run::default();
    let mut last = Instant::now();
    let started = last;
    let mut events = |e: Event| match e {
        Event::StageFinished { stage, seconds } => run.stages.push((stage.name().into(), seconds)),
        Event::StageStarted(_) => last = Instant::now(),
        Event::Step { .. } => {
            let now = Instant::now();
            run.steps.push((now - last).as_secs_f64());
            last = now;
        }
        _ => {}
    };
    let video = pipe
        .generate(gpu, opts, &mut events, &Cancel::new())
        .await?;
    run.total = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        video.frames.iter().all(|v| v.is_finite()),
        "the clip has non-finite pixels"
    );
    Ok(run)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(bundle) = args.iter().find(|a| !a.starts_with("--")) else {
        anyhow::bail!("usage: bench_pipeline <bundle dir> [--f32]");
    };
    let f32 = args.iter().any(|a| a == "--f32");
    pollster::block_on(async {
        let gpu = Gpu::new(&AdapterChoice::from_env()).await?;
        run(&gpu, Path::new(bundle), f32).await
    })
}

async fn run(gpu: &Gpu, bundle: &Path, f32: bool) -> Result<()> {
    let act = if gpu.caps.f16 && !f32 {
        DType::F16
    } else {
        DType::F32
    };
    let t = Instant::now();
    let manifest = Manifest::parse(&std::fs::read(bundle.join("manifest.json"))?)?;
    let mut loader = BundleLoader::open(FsSource::new(bundle)).await?;
    let weights = Weights::from_tensors(loader.load_all(&mut |_| {}).await?);
    let pipe = LtxPipeline::load(gpu, &manifest, &weights, act).context("loading the pipeline")?;
    drop(weights);
    let load = t.elapsed().as_secs_f64();
    let opts = call();

    let mut warm = opts.clone();
    warm.num_inference_steps = 1;
    let t = Instant::now();
    generate(gpu, &pipe, &warm).await?;
    let warmup = t.elapsed().as_secs_f64();

    gpu.reset_peak();
    let measured = generate(gpu, &pipe, &opts).await?;
    let memory = gpu.memory();

    let mut kernels: BTreeMap<String, f64> = BTreeMap::new();
    let mut per_kernel: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    if gpu.caps.timestamps {
        gpu.take_kernel_times().await?;
        gpu.set_profiling(true);
        generate(gpu, &pipe, &opts).await?;
        gpu.set_profiling(false);
        for step in gpu.take_kernel_times().await? {
            let s: f64 = step.kernels.iter().map(|k| k.nanos).sum::<f64>() / 1e9;
            *kernels.entry(step.step.to_string()).or_default() += s;
            if &*step.step == "denoising step" {
                for k in &step.kernels {
                    let e = per_kernel.entry(k.label.to_string()).or_default();
                    e.0 += k.nanos / 1e9;
                    e.1 += 1;
                }
            }
        }
    }

    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!("adapter: {}", gpu.describe());
    println!(
        "activations: {act:?}; weights on the GPU {:.1} MiB",
        mib(pipe.weight_bytes())
    );
    println!(
        "{}x{}, {} frames, {} steps, guidance {}",
        opts.width, opts.height, opts.num_frames, opts.num_inference_steps, opts.guidance_scale
    );
    println!();
    println!("| stage | wall s |");
    println!("|---|--:|");
    println!("| load bundle | {load:.2} |");
    println!("| warm-up (1 step, builds pipelines) | {warmup:.2} |");
    for (stage, s) in &measured.stages {
        println!("| {stage} | {s:.2} |");
    }
    println!("| **total** | **{:.2}** |", measured.total);
    println!();
    let steps: Vec<String> = measured.steps.iter().map(|s| format!("{s:.2}")).collect();
    println!("step wall s: {}", steps.join(", "));
    println!(
        "peak GPU memory: {:.1} MiB (weights {:.1} MiB)",
        mib(memory.peak),
        mib(pipe.weight_bytes())
    );
    if kernels.is_empty() {
        println!("no timestamp queries on this adapter: GPU busy time not measured");
        return Ok(());
    }
    println!();
    println!("| steps labelled | GPU s (sum of dispatches) |");
    println!("|---|--:|");
    for (label, s) in &kernels {
        println!("| {label} | {s:.3} |");
    }
    let denoise_wall = measured
        .stages
        .iter()
        .find(|(s, _)| s == "denoising")
        .map_or(0.0, |(_, s)| *s);
    let denoise_gpu = kernels.get("denoising step").copied().unwrap_or(0.0);
    if denoise_gpu > 0.0 {
        println!(
            "denoising: wall {denoise_wall:.2} s / GPU {denoise_gpu:.2} s = {:.3}x",
            denoise_wall / denoise_gpu
        );
    }
    let mut top: Vec<_> = per_kernel.into_iter().collect();
    top.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!();
    println!("| denoising kernel | dispatches | GPU s | share |");
    println!("|---|--:|--:|--:|");
    for (label, (s, n)) in top.iter().take(12) {
        println!(
            "| {label} | {n} | {s:.3} | {:.1}% |",
            100.0 * s / denoise_gpu.max(1e-12)
        );
    }
    Ok(())
}
