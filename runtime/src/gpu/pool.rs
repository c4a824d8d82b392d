//! Storage buffers recycled by size class, with live/peak accounting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes in buffers currently handed out.
    pub live: u64,
    /// The most `live` has been since the context opened.
    pub peak: u64,
    /// Bytes held in the pool, free for reuse.
    pub cached: u64,
}

#[derive(Default)]
pub(super) struct BufferPool {
    free: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    live: AtomicU64,
    peak: AtomicU64,
    cached: AtomicU64,
}

/// Sizes rounded up to one of 8 classes per power of two (at most 12.5% slack),
/// so buffers of a planned graph are reused exactly.
pub(super) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let shift = (63 - bytes.leading_zeros() as u64).saturating_sub(3);
    let step = 1u64 << shift;
    bytes.div_ceil(step) * step
}

/// A pooled storage buffer; it returns to its pool when dropped.
pub struct PooledBuffer {
    pub(super) buffer: wgpu::Buffer,
    class: u64,
    pool: Weak<BufferPool>,
}

impl PooledBuffer {
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.live.fetch_sub(self.class, Ordering::Relaxed);
            pool.cached.fetch_add(self.class, Ordering::Relaxed);
            if let Ok(mut free) = pool.free.lock() {
                free.entry(self.class)
                    .or_default()
                    .push(self.buffer.clone());
            }
        }
    }
}

pub(super) const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl BufferPool {
    /// A buffer of at least `bytes`; `create` makes a new one when none is free.
    pub(super) fn take(
        self: &Arc<Self>,
        bytes: u64,
        create: impl FnOnce(u64) -> Result<wgpu::Buffer, super::GpuError>,
    ) -> Result<Arc<PooledBuffer>, super::GpuError> {
        let class = size_class(bytes);
        let reused = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.get_mut(&class).and_then(Vec::pop));
        let buffer = match reused {
            Some(b) => {
                self.cached.fetch_sub(class, Ordering::Relaxed);
                b
            }
            None => create(class)?,
        };
        let live = self.live.fetch_add(class, Ordering::Relaxed) + class;
        self.peak.fetch_max(live, Ordering::Relaxed);
        Ok(Arc::new(PooledBuffer {
            buffer,
            class,
            pool: Arc::downgrade(self),
        }))
    }

    pub(super) fn stats(&self) -> MemoryStats {
        MemoryStats {
            live: self.live.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
        }
    }

    pub(super) fn reset_peak(&self) {
        self.peak
            .store(self.live.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Frees every pooled buffer that nobody holds.
    pub(super) fn clear(&self) {
        if let Ok(mut free) = self.free.lock() {
            for b in free.drain().flat_map(|(_, v)| v) {
                b.destroy();
            }
        }
        self.cached.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes && c >= 256, "{bytes} -> {c}");
            assert!(c <= bytes.max(256) + bytes.max(256) / 8, "{bytes} -> {c}");
        }
        assert_eq!(size_class(4096), 4096);
    }
}
