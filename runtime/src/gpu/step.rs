//! Recording a step: many dispatches and copies, one uniform upload, one submit.

use std::sync::{Arc, Mutex};

use bytemuck::Pod;

use super::pipeline::{Access, Compiled, PipelineKey};
use super::{Gpu, GpuError, Tensor};

/// One storage binding of a dispatch: a whole tensor.
#[derive(Clone, Copy)]
pub struct Binding<'a> {
    pub tensor: &'a Tensor,
    pub access: Access,
}

impl<'a> Binding<'a> {
    pub fn read(tensor: &'a Tensor) -> Binding<'a> {
        Binding {
            tensor,
            access: Access::Read,
        }
    }
    pub fn write(tensor: &'a Tensor) -> Binding<'a> {
        Binding {
            tensor,
            access: Access::ReadWrite,
        }
    }
}

/// GPU time of one dispatch, from timestamp queries.
#[derive(Clone, Debug)]
pub struct KernelTime {
    pub label: Arc<str>,
    pub nanos: f64,
}

/// The kernels of one submitted step with their GPU times.
#[derive(Clone, Debug)]
pub struct StepTimes {
    pub step: Arc<str>,
    pub kernels: Vec<KernelTime>,
}

/// A profiled step's timestamps, not read back yet.
pub(super) struct PendingTiming {
    pub(super) step: Arc<str>,
    pub(super) readback: wgpu::Buffer,
    pub(super) labels: Vec<Arc<str>>,
}

impl PendingTiming {
    pub(super) async fn read(self, gpu: &Gpu) -> Result<StepTimes, GpuError> {
        let bytes = gpu
            .map_read(&self.readback, (self.labels.len() * 16) as u64)
            .await?;
        Ok(StepTimes {
            step: self.step,
            kernels: kernel_times(gpu, &bytes, self.labels),
        })
    }
}

fn kernel_times(gpu: &Gpu, bytes: &[u8], labels: Vec<Arc<str>>) -> Vec<KernelTime> {
    let ticks: &[u64] = bytemuck::cast_slice(bytes);
    let period = gpu.queue.get_timestamp_period() as f64;
    labels
        .into_iter()
        .enumerate()
        .map(|(i, label)| KernelTime {
            label,
            nanos: ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period,
        })
        .collect()
}

/// Uniform parameters of a step go into 256 KiB chunks with dynamic offsets,
/// so bind groups stay the same from one step to the next.
const CHUNK: u64 = 256 << 10;

pub(super) struct UniformChunks {
    free: Mutex<Vec<wgpu::Buffer>>,
    align: u64,
}

impl UniformChunks {
    pub(super) fn new(align: u32) -> UniformChunks {
        UniformChunks {
            free: Mutex::new(Vec::new()),
            align: align.max(16) as u64,
        }
    }
}

enum Cmd {
    Dispatch {
        compiled: Arc<Compiled>,
        bind_group: wgpu::BindGroup,
        offset: u32,
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        dst: wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    },
}

pub struct Step<'g> {
    gpu: &'g Gpu,
    label: String,
    profile: bool,
    chunks: Vec<(wgpu::Buffer, Vec<u8>)>,
    cmds: Vec<Cmd>,
    /// Every tensor a recorded command touches, held until submit: a tensor
    /// dropped earlier would return its buffer to the pool, where an upload
    /// (which runs before the whole submission) could overwrite it.
    keep: Vec<Tensor>,
}

impl<'g> Step<'g> {
    pub(super) fn new(gpu: &'g Gpu, label: &str, profile: bool) -> Step<'g> {
        Step {
            gpu,
            label: label.to_string(),
            profile,
            chunks: Vec::new(),
            cmds: Vec::new(),
            keep: Vec::new(),
        }
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Records one dispatch of the pipeline `key` with `params` at binding 0
    /// and `bindings` at 1, 2, ... A dispatch with a zero dimension is skipped.
    pub fn dispatch<P: Pod>(
        &mut self,
        key: &PipelineKey,
        params: &P,
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<(), GpuError> {
        let max = self.gpu.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(GpuError::shape(
                "dispatch",
                format!("{}: workgroups {groups:?} exceed {max}", key.label()),
            ));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let accesses: Vec<Access> = bindings.iter().map(|b| b.access).collect();
        let compiled = self.gpu.pipeline(key, &accesses)?;
        let bytes = bytemuck::bytes_of(params);
        let size = (bytes.len() as u64).div_ceil(16) * 16;
        let (chunk, offset) = self.uniform_slot(size)?;
        let data = &mut self.chunks[chunk].1;
        data.resize(offset as usize, 0);
        data.extend_from_slice(bytes);
        data.resize((offset + size) as usize, 0);
        let buffers: Vec<(&wgpu::Buffer, u64)> = bindings
            .iter()
            .map(|b| (b.tensor.buffer(), b.tensor.bytes()))
            .collect();
        let bind_group = self
            .gpu
            .bind_group(&compiled, &self.chunks[chunk].0, size, &buffers);
        self.cmds.push(Cmd::Dispatch {
            compiled,
            bind_group,
            offset: offset as u32,
            groups,
        });
        self.keep.extend(bindings.iter().map(|b| b.tensor.clone()));
        Ok(())
    }

    /// Records a copy of all of `src` into the start of `dst`.
    pub fn copy(&mut self, src: &Tensor, dst: &Tensor) -> Result<(), GpuError> {
        self.copy_at(src, dst, 0)
    }

    /// Records a copy of all of `src` into `dst` from element `dst_offset`
    /// on (e.g. one batch item of a stacked input); the byte offset must be
    /// a multiple of 4 and `src` whole words.
    pub fn copy_at(
        &mut self,
        src: &Tensor,
        dst: &Tensor,
        dst_offset: usize,
    ) -> Result<(), GpuError> {
        let offset = (dst_offset * dst.dtype.size()) as u64;
        let bytes = (src.numel() * src.dtype.size()) as u64;
        if src.dtype != dst.dtype
            || !offset.is_multiple_of(4)
            || !bytes.is_multiple_of(4)
            || offset + bytes > (dst.numel() * dst.dtype.size()) as u64
        {
            return Err(GpuError::shape(
                "copy",
                format!("{src:?} into {dst:?} at element {dst_offset}"),
            ));
        }
        self.cmds.push(Cmd::Copy {
            src: src.buffer().clone(),
            dst: dst.buffer().clone(),
            dst_offset: offset,
            bytes,
        });
        self.keep.extend([src.clone(), dst.clone()]);
        Ok(())
    }

    fn uniform_slot(&mut self, size: u64) -> Result<(usize, u64), GpuError> {
        let align = self.gpu.uniforms.align;
        if let Some((_, data)) = self.chunks.last() {
            let offset = (data.len() as u64).div_ceil(align) * align;
            if offset + size <= CHUNK {
                return Ok((self.chunks.len() - 1, offset));
            }
        }
        let reused = self.gpu.uniforms.free.lock().ok().and_then(|mut f| f.pop());
        let buffer = match reused {
            Some(b) => b,
            None => self.gpu.create_buffer(
                "uniform arena",
                CHUNK,
                wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            )?,
        };
        self.chunks
            .push((buffer, Vec::with_capacity(CHUNK as usize)));
        Ok((self.chunks.len() - 1, 0))
    }

    /// Number of recorded dispatches.
    pub fn len(&self) -> usize {
        self.cmds
            .iter()
            .filter(|c| matches!(c, Cmd::Dispatch { .. }))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Uploads the uniforms and submits everything as one command buffer.
    /// With profiling on, the dispatches' timestamps are kept for
    /// [`Gpu::take_kernel_times`] (read later, so nothing waits here).
    pub fn submit(self) -> Result<wgpu::SubmissionIndex, GpuError> {
        let (gpu, step) = (self.gpu, Arc::<str>::from(self.label.as_str()));
        let (index, timing) = self.submit_inner()?;
        if let Some((readback, labels)) = timing {
            gpu.keep_timing(PendingTiming {
                step,
                readback,
                labels,
            });
        }
        Ok(index)
    }

    /// Submits, waits, and returns each dispatch's GPU time (empty when the
    /// adapter has no timestamp queries or profiling is off).
    pub async fn submit_profiled(mut self) -> Result<Vec<KernelTime>, GpuError> {
        self.profile = self.profile && self.gpu.caps.timestamps;
        let gpu = self.gpu;
        let (_, timing) = self.submit_inner()?;
        let Some((readback, labels)) = timing else {
            gpu.wait().await?;
            return Ok(Vec::new());
        };
        let bytes = gpu.map_read(&readback, (labels.len() * 16) as u64).await?;
        Ok(kernel_times(gpu, &bytes, labels))
    }

    #[allow(clippy::type_complexity)]
    fn submit_inner(
        self,
    ) -> Result<(wgpu::SubmissionIndex, Option<(wgpu::Buffer, Vec<Arc<str>>)>), GpuError> {
        let gpu = self.gpu;
        gpu.check()?;
        for (buffer, data) in &self.chunks {
            if !data.is_empty() {
                gpu.queue.write_buffer(buffer, 0, data);
            }
        }
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(&self.label),
            });
        let n = self.len() as u32;
        let timing = if self.profile && n > 0 {
            let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("step timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2 * n,
            });
            let mut labels = Vec::with_capacity(n as usize);
            for cmd in &self.cmds {
                match cmd {
                    Cmd::Dispatch {
                        compiled,
                        bind_group,
                        offset,
                        groups,
                    } => {
                        let q = 2 * labels.len() as u32;
                        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: Some(&compiled.label),
                            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                                query_set: &queries,
                                beginning_of_pass_write_index: Some(q),
                                end_of_pass_write_index: Some(q + 1),
                            }),
                        });
                        pass.set_pipeline(&compiled.pipeline);
                        pass.set_bind_group(0, bind_group, &[*offset]);
                        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                        labels.push(compiled.label.clone());
                    }
                    Cmd::Copy {
                        src,
                        dst,
                        dst_offset,
                        bytes,
                    } => encoder.copy_buffer_to_buffer(src, 0, dst, *dst_offset, *bytes),
                }
            }
            let size = 16 * n as u64;
            let resolve = gpu.create_buffer(
                "timestamps",
                size,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            )?;
            let readback = gpu.create_buffer(
                "timestamps readback",
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?;
            encoder.resolve_query_set(&queries, 0..2 * n, &resolve, 0);
            encoder.copy_buffer_to_buffer(&resolve, 0, &readback, 0, size);
            Some((readback, labels))
        } else {
            let mut i = 0;
            while i < self.cmds.len() {
                if let Cmd::Copy {
                    src,
                    dst,
                    dst_offset,
                    bytes,
                } = &self.cmds[i]
                {
                    encoder.copy_buffer_to_buffer(src, 0, dst, *dst_offset, *bytes);
                    i += 1;
                    continue;
                }
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&self.label),
                    timestamp_writes: None,
                });
                while let Some(Cmd::Dispatch {
                    compiled,
                    bind_group,
                    offset,
                    groups,
                }) = self.cmds.get(i)
                {
                    pass.set_pipeline(&compiled.pipeline);
                    pass.set_bind_group(0, bind_group, &[*offset]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                    i += 1;
                }
            }
            None
        };
        let index = gpu.queue.submit([encoder.finish()]);
        if let Ok(mut free) = gpu.uniforms.free.lock() {
            free.extend(self.chunks.into_iter().map(|(b, _)| b));
        }
        Ok((index, timing))
    }
}
