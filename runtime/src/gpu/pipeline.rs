//! Compute pipelines cached under typed keys, their bind-group layouts, and
//! bind groups cached by the buffers they bind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use framecast_shaders::Kernel;

use super::{Gpu, GpuError};

/// How a kernel uses one storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// Identifies one specialised pipeline: family, entry point, preprocessor
/// flags and `override` constants. Its `label()` reads like
/// `matmul.gemm_q4_f16_tm64_tn64`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub kernel: Kernel,
    pub entry: &'static str,
    pub flags: Vec<&'static str>,
    pub constants: Vec<(&'static str, u32)>,
}

impl PipelineKey {
    pub fn new(kernel: Kernel, entry: &'static str) -> PipelineKey {
        PipelineKey {
            kernel,
            entry,
            flags: Vec::new(),
            constants: Vec::new(),
        }
    }

    pub fn flags(mut self, flags: &[&'static str]) -> PipelineKey {
        for f in flags {
            if !self.flags.contains(f) {
                self.flags.push(f);
            }
        }
        self.flags.sort_unstable();
        self
    }

    pub fn flag_if(self, on: bool, flag: &'static str) -> PipelineKey {
        if on { self.flags(&[flag]) } else { self }
    }

    pub fn constant(mut self, name: &'static str, value: u32) -> PipelineKey {
        self.constants.retain(|(n, _)| *n != name);
        self.constants.push((name, value));
        self.constants.sort_unstable();
        self
    }

    pub fn label(&self) -> String {
        let mut s = format!("{}.{}", self.kernel.name(), self.entry);
        for f in &self.flags {
            s.push('_');
            s.push_str(&f.to_lowercase());
        }
        for (n, v) in &self.constants {
            s.push_str(&format!("_{n}{v}"));
        }
        s
    }
}

pub(super) struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub accesses: Vec<Access>,
    pub layout: wgpu::BindGroupLayout,
    pub label: Arc<str>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct BindKey {
    accesses: Vec<Access>,
    uniform: wgpu::Buffer,
    uniform_size: u64,
    buffers: Vec<(wgpu::Buffer, u64)>,
}

/// Beyond this many cached bind groups the cache starts over (they pin buffers).
const MAX_BIND_GROUPS: usize = 8192;

#[derive(Default)]
pub(super) struct PipelineCache {
    pipelines: Mutex<HashMap<PipelineKey, Arc<Compiled>>>,
    layouts: Mutex<HashMap<Vec<Access>, wgpu::BindGroupLayout>>,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

impl PipelineCache {
    pub(super) fn clear_bind_groups(&self) {
        if let Ok(mut b) = self.bind_groups.lock() {
            b.clear();
        }
    }
}

impl Gpu {
    /// The pipeline for `key`, built on first use. `accesses` lists the
    /// kernel's storage bindings (1, 2, ...) after the uniform at binding 0.
    pub(super) fn pipeline(
        &self,
        key: &PipelineKey,
        accesses: &[Access],
    ) -> Result<Arc<Compiled>, GpuError> {
        if let Some(c) = self
            .pipelines
            .pipelines
            .lock()
            .ok()
            .and_then(|p| p.get(key).cloned())
        {
            return Ok(c);
        }
        let label = key.label();
        if key.flags.contains(&"F16") && !self.caps.f16 {
            return Err(GpuError::Pipeline {
                label,
                message: "this adapter has no shader-f16".into(),
            });
        }
        let source =
            framecast_shaders::wgsl(key.kernel, &key.flags).map_err(|e| GpuError::Pipeline {
                label: label.clone(),
                message: e.to_string(),
            })?;
        let layout = self.bind_group_layout(accesses);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let constants: Vec<(&str, f64)> =
            key.constants.iter().map(|&(n, v)| (n, v as f64)).collect();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        let scope_label = label.clone();
        self.scope_error(scope, move |e| GpuError::Pipeline {
            label: scope_label,
            message: e.to_string(),
        })?;
        let compiled = Arc::new(Compiled {
            pipeline,
            accesses: accesses.to_vec(),
            layout,
            label: label.into(),
        });
        if let Ok(mut p) = self.pipelines.pipelines.lock() {
            p.insert(key.clone(), compiled.clone());
        }
        Ok(compiled)
    }

    fn bind_group_layout(&self, accesses: &[Access]) -> wgpu::BindGroupLayout {
        let mut layouts = match self.pipelines.layouts.lock() {
            Ok(l) => l,
            Err(p) => p.into_inner(),
        };
        layouts
            .entry(accesses.to_vec())
            .or_insert_with(|| {
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                for (i, a) in accesses.iter().enumerate() {
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding: i as u32 + 1,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage {
                                read_only: *a == Access::Read,
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    });
                }
                self.device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: None,
                        entries: &entries,
                    })
            })
            .clone()
    }

    /// A bind group for `compiled` over the uniform slot and the buffers,
    /// reused whenever the same buffers are bound again (every denoising step).
    pub(super) fn bind_group(
        &self,
        compiled: &Compiled,
        uniform: &wgpu::Buffer,
        uniform_size: u64,
        buffers: &[(&wgpu::Buffer, u64)],
    ) -> wgpu::BindGroup {
        let key = BindKey {
            accesses: compiled.accesses.clone(),
            uniform: uniform.clone(),
            uniform_size,
            buffers: buffers.iter().map(|&(b, s)| (b.clone(), s)).collect(),
        };
        let mut cache = match self.pipelines.bind_groups.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if let Some(bg) = cache.get(&key) {
            return bg.clone();
        }
        if cache.len() >= MAX_BIND_GROUPS {
            cache.clear();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniform,
                offset: 0,
                size: wgpu::BufferSize::new(uniform_size),
            }),
        }];
        for (i, &(b, size)) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b,
                    offset: 0,
                    size: wgpu::BufferSize::new(size),
                }),
            });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&compiled.label),
            layout: &compiled.layout,
            entries: &entries,
        });
        cache.insert(key, bg.clone());
        bg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_readable_and_keys_canonical() {
        let a = PipelineKey::new(Kernel::Elementwise, "add")
            .flags(&["F16"])
            .constant("wg", 256);
        let b = PipelineKey::new(Kernel::Elementwise, "add")
            .constant("wg", 256)
            .flag_if(true, "F16");
        assert_eq!(a, b);
        assert_eq!(a.label(), "elementwise.add_f16_wg256");
    }
}
