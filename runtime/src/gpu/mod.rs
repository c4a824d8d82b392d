//! The GPU context: one adapter, one device, and the caches that belong to it.
//!
//! Everything here works natively (Vulkan, Metal, DX12, GL) and in the browser
//! (WebGPU); `cfg(target_arch = "wasm32")` appears only where waiting differs.

mod adapter;
mod error;
mod pipeline;
mod pool;
mod readback;
mod step;
mod tensor;

pub use adapter::{AdapterChoice, Caps, Precision};
pub use error::GpuError;
pub use pipeline::{Access, PipelineKey};
pub use pool::MemoryStats;
pub use step::{Binding, KernelTime, Step, StepTimes};
pub use tensor::{DType, Tensor};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// An open device with its caches. Cheap to share by reference; not `Clone`.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub caps: Caps,
    pub limits: wgpu::Limits,
    pipelines: pipeline::PipelineCache,
    pool: Arc<pool::BufferPool>,
    uniforms: step::UniformChunks,
    lost: Arc<Mutex<Option<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
    profiling: AtomicBool,
    /// Timestamps of profiled steps submitted with `Step::submit`.
    timings: Mutex<Vec<step::PendingTiming>>,
}

impl Gpu {
    /// Opens the best adapter (see [`AdapterChoice::from_env`]) with the
    /// features and limits framecast uses.
    pub async fn new(choice: &AdapterChoice) -> Result<Gpu, GpuError> {
        let (adapter, caps, limits) = adapter::open(choice).await?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("framecast"),
                required_features: caps.features(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::Device(e.to_string()))?;
        let lost = Arc::new(Mutex::new(None));
        let lost_cb = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_cb.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        let errors = Arc::new(Mutex::new(Vec::new()));
        let errors_cb = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            if let Ok(mut v) = errors_cb.lock() {
                v.push(e.to_string());
            }
        }));
        let profiling =
            caps.timestamps && std::env::var("FRAMECAST_PROFILE").is_ok_and(|v| v == "1");
        Ok(Gpu {
            pipelines: pipeline::PipelineCache::default(),
            pool: Arc::new(pool::BufferPool::default()),
            uniforms: step::UniformChunks::new(limits.min_uniform_buffer_offset_alignment),
            device,
            queue,
            info,
            caps,
            limits,
            lost,
            errors,
            profiling: AtomicBool::new(profiling),
            timings: Mutex::new(Vec::new()),
        })
    }

    /// The activation precision this adapter runs best: f16 where it has shader-f16.
    pub fn preferred_precision(&self) -> Precision {
        if self.caps.f16 {
            Precision::F16
        } else {
            Precision::F32
        }
    }

    /// Starts recording one step: many dispatches, one submit.
    pub fn step(&self, label: &str) -> Step<'_> {
        Step::new(self, label, self.profiling.load(Ordering::Relaxed))
    }

    /// Turns per-dispatch GPU timestamps on or off (only where the adapter has them).
    pub fn set_profiling(&self, on: bool) {
        self.profiling
            .store(on && self.caps.timestamps, Ordering::Relaxed);
    }

    fn keep_timing(&self, t: step::PendingTiming) {
        if let Ok(mut list) = self.timings.lock() {
            list.push(t);
        }
    }

    /// The GPU times of every step submitted while profiling was on since
    /// the last call, in submission order (waits for them to finish).
    pub async fn take_kernel_times(&self) -> Result<Vec<StepTimes>, GpuError> {
        let pending = self
            .timings
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        let mut out = Vec::with_capacity(pending.len());
        for p in pending {
            out.push(p.read(self).await?);
        }
        Ok(out)
    }

    /// Fails if the device was lost or reported an error nobody caught.
    pub fn check(&self) -> Result<(), GpuError> {
        if let Some(reason) = self.lost.lock().ok().and_then(|g| g.clone()) {
            return Err(GpuError::Lost(reason));
        }
        if let Some(first) = self
            .errors
            .lock()
            .ok()
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
        {
            return Err(GpuError::Validation(first));
        }
        Ok(())
    }

    /// Live and peak bytes of buffers allocated through this context.
    pub fn memory(&self) -> MemoryStats {
        self.pool.stats()
    }

    /// Starts a new peak at the current live bytes, to measure one stage.
    pub fn reset_peak(&self) {
        self.pool.reset_peak();
    }

    /// Drops every cached bind group (they keep buffers alive).
    pub fn trim(&self) {
        self.pipelines.clear_bind_groups();
        self.pool.clear();
    }

    /// Destroys the device as a driver reset would: every later call fails
    /// with [`GpuError::Lost`]. For exercising recovery (the page's tests).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// A short human-readable line: adapter, backend, device type.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }
}
