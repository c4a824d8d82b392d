//! `cargo run --release -p framecast-bench -- [--quick] [--filter TEXT ...]`
//!
//! Times framecast's kernels on the LTX-2B shapes against the adapter's own
//! measured FMA peak and against burn 0.22 (wgpu backend) on the same adapter,
//! and prints a markdown table (progress goes to stderr).

mod burn_ops;
mod cases;
mod framecast_ops;
mod peak;
mod report;
mod timing;

use std::panic::AssertUnwindSafe;

use anyhow::{Context, Result};
use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{DType, Device, DeviceKind};
use clap::Parser;
use framecast::{AdapterChoice, Gpu};

use cases::Side;
use report::{Outcome, Row};

#[derive(Parser, Debug)]
#[command(about = "framecast kernel benchmarks against the FMA peak and burn-wgpu")]
struct Args {
    /// Fewer shapes and repetitions (about two minutes on lavapipe, where the
    /// burn side then runs only its f32 cases without GEMM autotune).
    #[arg(long)]
    quick: bool,
    /// Run only cases whose "family shape format" contains one of these (case-insensitive).
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    filter: Vec<String>,
    /// Skip the burn side.
    #[arg(long)]
    no_burn: bool,
    /// Stop burn's clock after reading back a scalar (the f32 sum) of every
    /// output rather than after `device.sync()`: a cross-check of the sync timing.
    #[arg(long)]
    burn_readback: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    pollster::block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let gpu = Gpu::new(&AdapterChoice::from_env())
        .await
        .context("opening the framecast adapter")?;
    eprintln!("framecast adapter: {}", gpu.describe());
    let burn = if args.no_burn {
        None
    } else {
        Some(open_burn(&gpu)?)
    };
    let mut budget = timing::Budget::new(args.quick);
    budget.burn_readback = args.burn_readback;
    let peak = peak::measure(&gpu, if args.quick { 3 } else { 5 }, budget.sample_ms * 4.0)
        .await
        .context("FMA peak")?;
    eprintln!("FMA peak: {:.1} GFLOP/s f32", peak.f32_gflops);

    let burn_f16 = burn
        .as_ref()
        .is_some_and(|(d, _)| d.supports_dtype(DType::F16));
    let filters: Vec<String> = args.filter.iter().map(|f| f.to_lowercase()).collect();
    let selected = cases::all(gpu.caps.f16, burn_f16)
        .into_iter()
        .filter(|c| !args.quick || c.quick)
        .filter(|c| {
            let label = c.label().to_lowercase();
            filters.is_empty() || filters.iter().any(|f| label.contains(f))
        });
    let cpu = gpu.info.device_type == wgpu::DeviceType::Cpu;
    let mut rows = Vec::new();
    for case in selected {
        eprintln!("{} ...", case.label());
        let framecast = match &case.framecast {
            Side::Missing(why) => Outcome::Missing(why.clone()),
            Side::Run(setup) => match timing::framecast(&gpu, setup, &budget).await {
                Ok(t) => Outcome::Framecast(t),
                Err(e) => Outcome::Failed(format!("{e:#}")),
            },
        };
        let burn_outcome = match (&case.burn, &burn) {
            (_, None) => Outcome::Missing("skipped".into()),
            (Side::Missing(why), _) => Outcome::Missing(why.clone()),
            (Side::Run(_), _) if args.quick && cpu && !case.quick_burn => {
                Outcome::Missing("not in --quick".into())
            }
            (Side::Run(setup), Some((device, _))) => {
                // burn reports kernel failures by panicking; keep the other cases going.
                let bytes = case.burn_bytes;
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    timing::burn(device, setup, bytes, &budget)
                }));
                match result {
                    Ok(Ok(t)) => Outcome::Burn(t),
                    Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
                    Err(panic) => Outcome::Failed(panic_text(panic.as_ref())),
                }
            }
        };
        let row = Row {
            case,
            framecast,
            burn: burn_outcome,
        };
        eprintln!("  {}", row.summary(&peak));
        rows.push(row);
    }
    let burn_name = burn.as_ref().map(|(_, name)| name.as_str());
    print!(
        "{}",
        report::markdown(&gpu, burn_name, &peak, &budget, args.quick, &rows)
    );
    Ok(())
}

/// Opens burn's wgpu runtime on the adapter framecast chose: same graphics API
/// and device type. Returns the device and the adapter's name as burn sees it.
fn open_burn(gpu: &Gpu) -> Result<(Device, String)> {
    let api = match gpu.info.backend {
        wgpu::Backend::Vulkan => WgpuBackend::Vulkan,
        wgpu::Backend::Metal => WgpuBackend::Metal,
        wgpu::Backend::Dx12 => WgpuBackend::Dx12,
        wgpu::Backend::Gl => WgpuBackend::Gl,
        wgpu::Backend::BrowserWebGpu => WgpuBackend::WebGpu,
        _ => WgpuBackend::Auto,
    };
    let kind = match gpu.info.device_type {
        wgpu::DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(0),
        wgpu::DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(0),
        wgpu::DeviceType::VirtualGpu => DeviceKind::VirtualGpu(0),
        wgpu::DeviceType::Cpu => DeviceKind::Cpu,
        wgpu::DeviceType::Other => DeviceKind::DefaultDevice,
    };
    let (device, setup) = Device::wgpu_options()
        .device_kind(kind)
        .graphics_api(api)
        .init_with_setup()
        .map_err(|e| anyhow::anyhow!("burn wgpu init: {e:?}"))?;
    let info = setup.adapter.get_info();
    let name = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
    eprintln!("burn adapter:      {name}");
    if info.name != gpu.info.name || info.backend != gpu.info.backend {
        eprintln!("warning: burn and framecast run on different adapters");
    }
    Ok((device, name))
}

/// burn's panic, cut to its innermost cause (its messages run to many lines).
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("panic");
    let cause = text
        .rsplit("Caused by:")
        .next()
        .and_then(|c| c.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or(text);
    format!("panic: {cause}")
}
