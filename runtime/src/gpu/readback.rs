//! Reading buffers back to the CPU, natively and in the browser.

use super::{DType, Gpu, GpuError, Tensor};

impl Gpu {
    /// Waits until all submitted work has finished.
    pub async fn wait(&self) -> Result<(), GpuError> {
        // A tiny map round trip works on every backend, WebGPU included.
        let probe = self.create_buffer(
            "wait",
            4,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let encoder = self.device.create_command_encoder(&Default::default());
        self.queue.submit([encoder.finish()]);
        self.map_read(&probe, 4).await.map(|_| ())
    }

    /// Maps a MAP_READ buffer and copies out its first `size` bytes.
    pub(super) async fn map_read(
        &self,
        buffer: &wgpu::Buffer,
        size: u64,
    ) -> Result<Vec<u8>, GpuError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        buffer.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        rx.await
            .map_err(|_| GpuError::Readback("the map callback was dropped".into()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        self.check()?;
        let data = buffer
            .get_mapped_range(0..size)
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .to_vec();
        buffer.unmap();
        Ok(data)
    }

    /// The tensor's bytes (without word padding).
    pub async fn read_bytes(&self, t: &Tensor) -> Result<Vec<u8>, GpuError> {
        let size = t.bytes();
        let staging = self.create_buffer(
            "readback",
            size,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(t.buffer(), 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let mut bytes = self.map_read(&staging, size).await?;
        bytes.truncate(t.numel() * t.dtype.size());
        Ok(bytes)
    }

    /// The tensor's values as f32 (F32 and F16 tensors).
    pub async fn read(&self, t: &Tensor) -> Result<Vec<f32>, GpuError> {
        let bytes = self.read_bytes(t).await?;
        match t.dtype {
            DType::F32 => Ok(bytemuck::pod_collect_to_vec(&bytes)),
            DType::F16 => {
                let h: Vec<half::f16> = bytemuck::pod_collect_to_vec(&bytes);
                Ok(h.into_iter().map(f32::from).collect())
            }
            DType::U32 => Err(GpuError::shape("read", "a U32 tensor as f32; use read_u32")),
        }
    }

    pub async fn read_u32(&self, t: &Tensor) -> Result<Vec<u32>, GpuError> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(t).await?))
    }
}
