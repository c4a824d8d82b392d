//! How one case is timed, on each side.
//!
//! framecast: the case records its dispatches into a [`Step`]; a sample is
//! `batch` recordings in one step, submitted, then `gpu.wait()`; the wall
//! time (recording included: the runtime pays it every step) divided by
//! `batch`. Separately, where the adapter has timestamp queries, the same
//! batch is submitted with per-dispatch timestamps (`Step::submit_profiled`).
//!
//! burn: each run gets fresh inputs, made and synced before the clock starts
//! (timing one expression on the same tensors over and over reported an
//! impossible 154 TFLOP/s on lavapipe); the clock stops after
//! `device.sync()`, and a scalar of the output is read back afterwards as a
//! check that the work was really done.

use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::Device;
use framecast::Gpu;

use crate::cases::{BurnRun, BurnSetup, FcSetup};

/// Repetition policy (`--quick` shrinks it).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Untimed runs before sampling (compilation, autotune, first touch).
    pub warmup: usize,
    pub min_reps: usize,
    pub max_reps: usize,
    /// Short kernels are batched until one sample lasts about this long.
    pub sample_ms: f64,
    /// Stop adding repetitions once a side of a case has used this much.
    pub case_ms: f64,
    /// Most input bytes burn may hold for one batch of fresh inputs.
    pub burn_batch_bytes: f64,
    /// Stop burn's clock after reading back a scalar of each output instead
    /// of after `device.sync()` (`--burn-readback`).
    pub burn_readback: bool,
}

impl Budget {
    pub fn new(quick: bool) -> Budget {
        if quick {
            Budget {
                warmup: 1,
                min_reps: 3,
                max_reps: 3,
                sample_ms: 20.0,
                case_ms: 1500.0,
                burn_batch_bytes: 512e6,
                burn_readback: false,
            }
        } else {
            Budget {
                warmup: 1,
                min_reps: 5,
                max_reps: 9,
                sample_ms: 50.0,
                case_ms: 4000.0,
                burn_batch_bytes: 1e9,
                burn_readback: false,
            }
        }
    }

    fn plan(&self, single_ms: f64) -> (usize, usize) {
        let batch = (self.sample_ms / single_ms.max(1e-3)).clamp(1.0, 64.0) as usize;
        let reps = (self.case_ms / (single_ms * batch as f64).max(1e-3)) as usize;
        (batch, reps.clamp(self.min_reps, self.max_reps))
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FcTiming {
    /// Median wall time per recording, ms.
    pub wall_ms: f64,
    /// Median GPU time per recording from timestamps, ms (all its dispatches).
    pub gpu_ms: Option<f64>,
    /// Wall time of the warm-up runs (pipeline compilation included), ms.
    pub warmup_ms: f64,
    pub reps: usize,
    pub batch: usize,
}

pub async fn framecast(gpu: &Gpu, setup: &FcSetup, budget: &Budget) -> Result<FcTiming> {
    let record = setup(gpu)?;
    let sample = |batch: usize| {
        let record = &record;
        async move {
            let t = Instant::now();
            let mut step = gpu.step("bench");
            for _ in 0..batch {
                record(&mut step)?;
            }
            step.submit()?;
            gpu.wait().await?;
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1e3 / batch as f64)
        }
    };
    let t = Instant::now();
    let mut single = f64::INFINITY;
    for _ in 0..budget.warmup.max(1) {
        single = sample(1).await.context("warm-up")?;
    }
    let warmup_ms = t.elapsed().as_secs_f64() * 1e3;
    let (batch, reps) = budget.plan(single);
    let mut wall = Vec::with_capacity(reps);
    for _ in 0..reps {
        wall.push(sample(batch).await?);
    }
    let gpu_ms = if gpu.caps.timestamps {
        gpu.set_profiling(true);
        let mut times = Vec::new();
        for _ in 0..reps.min(3) {
            let mut step = gpu.step("bench profiled");
            for _ in 0..batch {
                record(&mut step)?;
            }
            let kernels = step.submit_profiled().await;
            match kernels {
                Ok(k) if !k.is_empty() => {
                    times.push(k.iter().map(|t| t.nanos).sum::<f64>() / 1e6 / batch as f64)
                }
                Ok(_) => {}
                Err(e) => {
                    gpu.set_profiling(false);
                    return Err(e.into());
                }
            }
        }
        gpu.set_profiling(false);
        (!times.is_empty()).then(|| median(&mut times))
    } else {
        None
    };
    gpu.check()?;
    drop(record);
    // Release this case's buffers and the bind groups that pin them.
    gpu.trim();
    Ok(FcTiming {
        wall_ms: median(&mut wall),
        gpu_ms,
        warmup_ms,
        reps,
        batch,
    })
}

#[derive(Clone, Copy, Debug)]
pub struct BurnTiming {
    pub wall_ms: f64,
    /// Wall time of the warm-up runs (compilation and autotune included), ms.
    pub warmup_ms: f64,
    pub reps: usize,
    pub batch: usize,
}

fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow::anyhow!("burn sync: {e:?}"))
}

/// Runs `batch` ops on fresh inputs; returns ms per op and the last output's
/// checksum. With `readback` the clock stops only after that checksum (an f32
/// sum of the output) is on the CPU: a check that `sync` hides no work.
fn burn_sample(
    device: &Device,
    setup: &BurnSetup,
    batch: usize,
    readback: bool,
) -> Result<(f64, f32)> {
    let runs: Vec<BurnRun> = (0..batch).map(|_| setup(device)).collect();
    sync(device)?;
    let t = Instant::now();
    let outs: Vec<_> = runs.into_iter().map(|run| run()).collect();
    if readback {
        let sums: Vec<f32> = outs.into_iter().map(|o| o.checksum()).collect();
        let ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
        return Ok((ms, sums.last().copied().unwrap_or(0.0)));
    }
    sync(device)?;
    let ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
    let check = outs.into_iter().last().map(|o| o.checksum()).unwrap_or(0.0);
    Ok((ms, check))
}

pub fn burn(
    device: &Device,
    setup: &BurnSetup,
    input_bytes: f64,
    budget: &Budget,
) -> Result<BurnTiming> {
    let t = Instant::now();
    let mut single = f64::INFINITY;
    for _ in 0..budget.warmup.max(1) {
        single = burn_sample(device, setup, 1, budget.burn_readback)?.0;
    }
    let warmup_ms = t.elapsed().as_secs_f64() * 1e3;
    let (batch, reps) = budget.plan(single);
    let max_batch = (budget.burn_batch_bytes / input_bytes.max(1.0)).max(1.0) as usize;
    let batch = batch.min(max_batch);
    let mut wall = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (ms, check) = burn_sample(device, setup, batch, budget.burn_readback)?;
        anyhow::ensure!(check.is_finite(), "burn output is not finite ({check})");
        wall.push(ms);
    }
    device.memory_cleanup();
    Ok(BurnTiming {
        wall_ms: median(&mut wall),
        warmup_ms,
        reps,
        batch,
    })
}
