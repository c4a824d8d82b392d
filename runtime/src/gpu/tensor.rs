//! Tensors: a typed, shaped view of a pooled GPU buffer.

use std::sync::Arc;

use super::pool::{PooledBuffer, STORAGE_USAGE};
use super::{Gpu, GpuError};

/// Element types in GPU buffers. Quantised weights are `U32` words (packed
/// values) beside an `F16` scale tensor; see `kernels::matmul::Weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

#[derive(Clone)]
pub struct Tensor {
    buf: Arc<PooledBuffer>,
    pub shape: Vec<usize>,
    pub dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.dtype, self.shape)
    }
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of data, rounded up to whole u32 words (what a binding covers).
    pub fn bytes(&self) -> u64 {
        ((self.numel() * self.dtype.size()) as u64).div_ceil(4) * 4
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }

    /// The same storage seen with another shape of the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor, GpuError> {
        if shape.iter().product::<usize>() != self.numel() {
            return Err(GpuError::shape(
                "reshape",
                format!("{:?} to {shape:?}", self.shape),
            ));
        }
        Ok(Tensor {
            buf: self.buf.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }
}

impl Gpu {
    /// A tensor with undefined contents (recycled buffers are not cleared).
    pub fn empty(&self, shape: &[usize], dtype: DType) -> Result<Tensor, GpuError> {
        let bytes = ((shape.iter().product::<usize>() * dtype.size()) as u64).div_ceil(4) * 4;
        let label = format!("{dtype:?}{shape:?}");
        let buf = self.pool.take(bytes.max(4), |size| {
            self.create_buffer(&label, size, STORAGE_USAGE)
        })?;
        Ok(Tensor {
            buf,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Uploads raw bytes (padded to whole words) as a tensor.
    pub fn upload_bytes(
        &self,
        bytes: &[u8],
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor, GpuError> {
        let n: usize = shape.iter().product();
        if bytes.len() != n * dtype.size() {
            return Err(GpuError::shape(
                "upload",
                format!(
                    "{} bytes for {dtype:?}{shape:?} ({} expected)",
                    bytes.len(),
                    n * dtype.size()
                ),
            ));
        }
        let t = self.empty(shape, dtype)?;
        let mut padded;
        let data = if bytes.len() % 4 == 0 {
            bytes
        } else {
            padded = bytes.to_vec();
            padded.resize(bytes.len().div_ceil(4) * 4, 0);
            &padded
        };
        if !data.is_empty() {
            self.queue.write_buffer(t.buffer(), 0, data);
        }
        Ok(t)
    }

    /// Uploads f32 values, converting to `dtype` (F32 or F16).
    pub fn upload(
        &self,
        values: &[f32],
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor, GpuError> {
        match dtype {
            DType::F32 => self.upload_bytes(bytemuck::cast_slice(values), shape, dtype),
            DType::F16 => {
                let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
                self.upload_bytes(bytemuck::cast_slice(&h), shape, dtype)
            }
            DType::U32 => Err(GpuError::shape("upload", "f32 values into a U32 tensor")),
        }
    }

    /// Overwrites `values.len()` elements of a float tensor from element
    /// `offset` on, converting f32 to its dtype. Queued: it lands before the
    /// next submission. Both ends must fall on 4-byte boundaries.
    pub fn write_at(&self, tensor: &Tensor, offset: usize, values: &[f32]) -> Result<(), GpuError> {
        let n: usize = tensor.shape.iter().product();
        let size = tensor.dtype.size();
        if offset + values.len() > n
            || !(offset * size).is_multiple_of(4)
            || !(values.len() * size).is_multiple_of(4)
        {
            return Err(GpuError::shape(
                "write",
                format!(
                    "{} values at {offset} into {:?}{:?} (whole words inside the tensor)",
                    values.len(),
                    tensor.dtype,
                    tensor.shape
                ),
            ));
        }
        let at = (offset * size) as u64;
        match tensor.dtype {
            DType::F32 => {
                self.queue
                    .write_buffer(tensor.buffer(), at, bytemuck::cast_slice(values))
            }
            DType::F16 => {
                let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
                self.queue
                    .write_buffer(tensor.buffer(), at, bytemuck::cast_slice(&h))
            }
            DType::U32 => return Err(GpuError::shape("write", "f32 values into a U32 tensor")),
        }
        Ok(())
    }

    pub fn upload_u32(&self, values: &[u32], shape: &[usize]) -> Result<Tensor, GpuError> {
        self.upload_bytes(bytemuck::cast_slice(values), shape, DType::U32)
    }

    /// Creates a buffer inside an out-of-memory error scope, so a device that
    /// is too small answers with an error rather than a lost device.
    pub(crate) fn create_buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, GpuError> {
        let limit = if usage.contains(wgpu::BufferUsages::STORAGE) {
            self.limits
                .max_buffer_size
                .min(self.limits.max_storage_buffer_binding_size as u64)
        } else {
            self.limits.max_buffer_size
        };
        if size > limit {
            return Err(GpuError::TooLarge {
                label: label.to_string(),
                bytes: size,
                limit,
            });
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        });
        let label = label.to_string();
        self.scope_error(scope, move |_| GpuError::OutOfMemory { label, bytes: size })?;
        Ok(buffer)
    }
}
