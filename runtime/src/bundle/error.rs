use thiserror::Error;

use crate::gpu::GpuError;

/// Everything that can go wrong reading, checking or streaming a bundle.
/// Each variant names the file, shard or tensor at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BundleError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("manifest.json is not a framecast bundle manifest: {0}")]
    Malformed(String),
    #[error(
        "manifest.json is bundle format version {found}, this build reads version {supported}: \
         convert the checkpoint again with a matching framecast-quantize"
    )]
    Version { found: u64, supported: u64 },
    #[error("manifest.json is inconsistent: {0}")]
    Invalid(String),
    #[error("shard {file} is {found} bytes, the manifest says {expected}")]
    ShardSize {
        file: String,
        expected: u64,
        found: u64,
    },
    #[error("shard {file} is corrupt: sha256 {found}, the manifest says {expected}")]
    ShardHash {
        file: String,
        expected: String,
        found: String,
    },
    #[error("tensor {name}: {message}")]
    Tensor { name: String, message: String },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl BundleError {
    /// A file or transfer error about `path` (a file, a URL).
    pub fn io(path: impl std::fmt::Display, e: impl std::fmt::Display) -> BundleError {
        BundleError::Io {
            path: path.to_string(),
            message: e.to_string(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> BundleError {
        BundleError::Invalid(message.into())
    }

    pub(crate) fn tensor(name: &str, message: impl Into<String>) -> BundleError {
        BundleError::Tensor {
            name: name.to_string(),
            message: message.into(),
        }
    }
}
