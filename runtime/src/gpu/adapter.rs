//! Adapter choice, feature negotiation and limits.

use super::GpuError;

/// Which adapter to open. `from_env` reads:
/// - `FRAMECAST_BACKEND`: `vulkan`, `metal`, `dx12`, `gl` or `webgpu`;
/// - `FRAMECAST_ADAPTER`: a case-insensitive substring of the adapter's name;
/// - `FRAMECAST_F16=0`: ignore shader-f16 (run the f32 path);
/// - `FRAMECAST_SUBGROUPS=0`: ignore subgroup support.
#[derive(Clone, Debug, Default)]
pub struct AdapterChoice {
    pub backends: Option<wgpu::Backends>,
    pub name: Option<String>,
    pub disable_f16: bool,
    pub disable_subgroups: bool,
}

impl AdapterChoice {
    pub fn from_env() -> AdapterChoice {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        AdapterChoice {
            backends: var("FRAMECAST_BACKEND").map(|b| wgpu::Backends::from_comma_list(&b)),
            name: var("FRAMECAST_ADAPTER"),
            disable_f16: var("FRAMECAST_F16").is_some_and(|v| v == "0"),
            disable_subgroups: var("FRAMECAST_SUBGROUPS").is_some_and(|v| v == "0"),
        }
    }
}

/// What the opened device can do, as negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// `shader-f16`: f16 storage and arithmetic in WGSL.
    pub f16: bool,
    /// Subgroup operations, with the adapter's subgroup size range.
    pub subgroups: bool,
    pub subgroup_size: (u32, u32),
    /// Timestamp queries (per-pass GPU timings).
    pub timestamps: bool,
}

impl Caps {
    pub(super) fn features(&self) -> wgpu::Features {
        let mut f = wgpu::Features::empty();
        if self.f16 {
            f |= wgpu::Features::SHADER_F16;
        }
        if self.subgroups {
            f |= wgpu::Features::SUBGROUP;
        }
        if self.timestamps {
            f |= wgpu::Features::TIMESTAMP_QUERY;
        }
        f
    }
}

/// Element type of activation buffers; accumulation is always f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    /// The shader flags that select this precision.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Precision::F32 => &[],
            Precision::F16 => &["F16"],
        }
    }

    pub fn dtype(self) -> super::DType {
        match self {
            Precision::F32 => super::DType::F32,
            Precision::F16 => super::DType::F16,
        }
    }
}

/// Native adapters are enumerated and ranked; the browser picks its own.
#[cfg(not(target_arch = "wasm32"))]
fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 40,
        wgpu::DeviceType::IntegratedGpu => 30,
        wgpu::DeviceType::VirtualGpu => 20,
        wgpu::DeviceType::Cpu => 10,
        wgpu::DeviceType::Other => 0,
    };
    // GL lacks compute features we rely on; every other backend is first-class.
    let backend = if info.backend == wgpu::Backend::Gl {
        0
    } else {
        5
    };
    device + backend
}

pub(super) async fn open(
    choice: &AdapterChoice,
) -> Result<(wgpu::Adapter, Caps, wgpu::Limits), GpuError> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if let Some(b) = choice.backends {
        desc.backends = b;
    }
    let instance = wgpu::Instance::new(desc);
    let adapter = pick(&instance, choice).await?;
    let features = adapter.features();
    let info = adapter.get_info();
    let caps = Caps {
        f16: features.contains(wgpu::Features::SHADER_F16) && !choice.disable_f16,
        subgroups: features.contains(wgpu::Features::SUBGROUP) && !choice.disable_subgroups,
        subgroup_size: (info.subgroup_min_size, info.subgroup_max_size),
        timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
    };
    Ok((adapter.clone(), caps, wanted_limits(&adapter.limits())))
}

#[cfg(not(target_arch = "wasm32"))]
async fn pick(
    instance: &wgpu::Instance,
    choice: &AdapterChoice,
) -> Result<wgpu::Adapter, GpuError> {
    let backends = choice.backends.unwrap_or(wgpu::Backends::all());
    let mut adapters = instance.enumerate_adapters(backends).await;
    if let Some(name) = &choice.name {
        let needle = name.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
    }
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    log::info!("adapters: {names:?}");
    adapters
        .into_iter()
        .max_by_key(|a| rank(&a.get_info()))
        .ok_or_else(|| {
            GpuError::NoAdapter(match &choice.name {
                Some(n) => format!(" matching FRAMECAST_ADAPTER={n}"),
                None => String::new(),
            })
        })
}

#[cfg(target_arch = "wasm32")]
async fn pick(
    instance: &wgpu::Instance,
    _choice: &AdapterChoice,
) -> Result<wgpu::Adapter, GpuError> {
    instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            // apply_limit_buckets stays off: bucketed limits would hide the
            // adapter's real maximum bindings, which large models need.
            ..Default::default()
        })
        .await
        .map_err(|e| GpuError::NoAdapter(format!(" ({e})")))
}

/// Everything the adapter offers for buffers and workgroups (big models need
/// the largest bindings), the WebGPU defaults otherwise.
fn wanted_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let mut l = wgpu::Limits::downlevel_defaults();
    l.max_buffer_size = adapter.max_buffer_size;
    l.max_storage_buffer_binding_size = adapter.max_storage_buffer_binding_size;
    l.max_storage_buffers_per_shader_stage = adapter.max_storage_buffers_per_shader_stage.min(10);
    l.max_compute_workgroup_storage_size = adapter.max_compute_workgroup_storage_size.min(64 << 10);
    l.max_compute_invocations_per_workgroup =
        adapter.max_compute_invocations_per_workgroup.min(1024);
    l.max_compute_workgroup_size_x = adapter.max_compute_workgroup_size_x.min(1024);
    l.max_compute_workgroup_size_y = adapter.max_compute_workgroup_size_y.min(1024);
    l.max_compute_workgroup_size_z = adapter.max_compute_workgroup_size_z.min(64);
    l.max_compute_workgroups_per_dimension = adapter.max_compute_workgroups_per_dimension;
    l.min_storage_buffer_offset_alignment = adapter.min_storage_buffer_offset_alignment;
    l.min_uniform_buffer_offset_alignment = adapter.min_uniform_buffer_offset_alignment;
    l.max_bind_groups = adapter.max_bind_groups.min(4);
    l.max_dynamic_uniform_buffers_per_pipeline_layout = adapter
        .max_dynamic_uniform_buffers_per_pipeline_layout
        .min(8);
    l
}
