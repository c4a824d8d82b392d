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

/// Polls a future once. wgpu-core resolves error scopes synchronously, so
/// natively this yields the answer; on WebGPU the answer may come later.
pub(crate) fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
