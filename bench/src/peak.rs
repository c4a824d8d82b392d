//! The adapter's measured FMA peak: the yardstick every kernel is judged by.
//!
//! The kernel is bench-only (it is not a framecast kernel), so it is built
//! straight on the device rather than through the kernel registry.

use std::time::Instant;

use anyhow::{Context, Result};
use framecast::Gpu;

const SOURCE: &str = include_str!("fma.wgsl");
const WG: u32 = 256;
/// FMA steps per loop iteration (the shader's `UNROLL` define).
const UNROLL: u32 = 8;
/// Workgroups of 256 per dispatch. A GPU needs many to fill (4096 x 256 is
/// about four times what an H100 holds resident); a CPU rasteriser is full
/// with a few dozen, and there each invocation's setup is costly enough that
/// a million of them would hide the FMAs.
fn groups(gpu: &Gpu) -> u32 {
    if gpu.info.device_type == wgpu::DeviceType::Cpu {
        64
    } else {
        4096
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Peak {
    /// f32 FMA throughput, GFLOP/s (an FMA counts as 2 FLOPs).
    pub f32_gflops: f64,
    /// f16 (vec4<f16>) FMA throughput where the adapter has shader-f16.
    pub f16_gflops: Option<f64>,
}

/// Measures f32 (and f16) FMA throughput: for each, the better of the 4-
/// and 8-chain variants, each the median of `reps` dispatches sized to run
/// about `sample_ms`.
pub async fn measure(gpu: &Gpu, reps: usize, sample_ms: f64) -> Result<Peak> {
    let best = |a: f64, b: f64| a.max(b);
    let f32_gflops = best(
        run(gpu, false, 4, reps, sample_ms).await?,
        run(gpu, false, 8, reps, sample_ms).await?,
    );
    let f16_gflops = if gpu.caps.f16 {
        Some(best(
            run(gpu, true, 4, reps, sample_ms).await?,
            run(gpu, true, 8, reps, sample_ms).await?,
        ))
    } else {
        None
    };
    Ok(Peak {
        f32_gflops,
        f16_gflops,
    })
}

async fn run(gpu: &Gpu, f16: bool, chains: u32, reps: usize, sample_ms: f64) -> Result<f64> {
    let unroll = format!("UNROLL={UNROLL}");
    let mut flags = vec![unroll.as_str()];
    if f16 {
        flags.push("F16");
    }
    if chains == 4 {
        flags.push("CHAINS4");
    }
    let source = framecast_shaders::preprocess("fma.wgsl", SOURCE, &flags, &|_| None)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let device = &gpu.device;
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("fma peak"),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("fma peak"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants: &[("WG", WG as f64)],
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    let groups = groups(gpu);
    let invocations = (WG * groups) as u64;
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fma out"),
        size: invocations * 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let uniform = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("fma params"),
        size: 16,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("fma peak"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: out.as_entire_binding(),
            },
        ],
    });
    let dispatch = |iters: u32| -> f64 {
        let params: [u32; 4] = [iters, 0.999_9f32.to_bits(), 1e-4f32.to_bits(), 0];
        gpu.queue
            .write_buffer(&uniform, 0, bytemuck::cast_slice(&params));
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        }
        gpu.queue.submit([encoder.finish()]);
        iters as f64 * UNROLL as f64 * chains as f64 * 4.0 * 2.0 * invocations as f64
    };
    // The first dispatch pays for shader compilation: keep it out of the
    // calibration. Then grow the iteration count until one dispatch takes
    // long enough that per-invocation setup, submit and wait vanish in it.
    dispatch(1);
    gpu.wait().await.context("fma peak")?;
    let mut iters = 64u32;
    let mut elapsed;
    loop {
        let t = Instant::now();
        dispatch(iters);
        gpu.wait().await.context("fma peak")?;
        elapsed = t.elapsed().as_secs_f64() * 1e3;
        if elapsed >= sample_ms / 4.0 || iters >= 1 << 24 {
            break;
        }
        iters = iters.saturating_mul(4);
    }
    let scale = (sample_ms / elapsed.max(1e-3)).clamp(1.0, 16.0);
    iters = ((iters as f64 * scale) as u32).max(1);
    let mut rates = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let flops = dispatch(iters);
        gpu.wait().await.context("fma peak")?;
        rates.push(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    log_line(f16, chains, iters, invocations, &rates);
    gpu.check()?;
    Ok(crate::timing::median(&mut rates))
}

fn log_line(f16: bool, chains: u32, iters: u32, invocations: u64, rates: &[f64]) {
    let kind = if f16 { "f16" } else { "f32" };
    let rates: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
    eprintln!(
        "FMA {kind}: {invocations} invocations x {iters} iterations x {UNROLL} steps x {chains} vec4 chains: {} GFLOP/s",
        rates.join(", ")
    );
}
