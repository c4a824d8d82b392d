use std::future::Future;

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum GpuError {
    #[error(
        "no GPU adapter found{0}: framecast needs WebGPU (a recent Chrome or Edge) or, natively, \
         Vulkan, Metal or DX12 drivers. On Linux without a GPU, install Mesa's lavapipe \
         (apt-get install mesa-vulkan-drivers)"
    )]
    NoAdapter(String),
    #[error("the GPU device could not be opened: {0}")]
    Device(String),
    #[error("the GPU device was lost ({0}); start again to open a new one")]
    Lost(String),
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("out of GPU memory allocating {bytes} bytes for {label}; try a smaller size")]
    OutOfMemory { label: String, bytes: u64 },
    #[error("{label} needs a buffer of {bytes} bytes but this adapter allows at most {limit}")]
    TooLarge {
        label: String,
        bytes: u64,
        limit: u64,
    },
    #[error("kernel {label} failed to build: {message}")]
    Pipeline { label: String, message: String },
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
    #[error("{op}: {message}")]
    Shape { op: &'static str, message: String },
}

impl GpuError {
    pub fn shape(op: &'static str, message: impl Into<String>) -> GpuError {
        GpuError::Shape {
            op,
            message: message.into(),
        }
    }
}

impl super::Gpu {
    /// Fails with `to_error` if `scope` caught an error. wgpu-core resolves
    /// error scopes synchronously, so natively the answer is known here. On
    /// WebGPU the browser answers later: the error is then recorded among the
    /// device's errors when it arrives (`Gpu::check` reports it at the next
    /// readback) instead of being dropped with the future, which would leave
    /// only "invalid due to a previous error" messages to go by.
    pub(super) fn scope_error(
        &self,
        scope: wgpu::ErrorScopeGuard,
        to_error: impl FnOnce(wgpu::Error) -> GpuError + 'static,
    ) -> Result<(), GpuError> {
        let mut fut = Box::pin(scope.pop());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(None) => Ok(()),
            std::task::Poll::Ready(Some(e)) => Err(to_error(e)),
            std::task::Poll::Pending => {
                #[cfg(target_arch = "wasm32")]
                {
                    let errors = self.errors.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Some(e) = fut.await {
                            let message = to_error(e).to_string();
                            log::error!("{message}");
                            if let Ok(mut v) = errors.lock() {
                                v.push(message);
                            }
                        }
                    });
                }
                #[cfg(not(target_arch = "wasm32"))]
                drop((fut, to_error));
                Ok(())
            }
        }
    }
}
