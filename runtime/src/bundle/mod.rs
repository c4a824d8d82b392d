//! Weight bundles: the format the quantizer writes and the runtime streams.
//!
//! A bundle is a folder (or URL) with `manifest.json` and content-addressed
//! shards `<sha256 prefix>.bin` of at most a set size (64 MiB by default).
//! Tensors are stored in execution order (text encoder, transformer, VAE
//! decoder, VAE encoder), each as row ranges ("parts") of 256-byte aligned
//! regions: the values, then for q4/q8 the f16 group scales, in exactly the
//! layout of [`crate::quant`] that the kernels bind. See DESIGN.md,
//! "Bundle format".
//!
//! - [`manifest`]: the manifest types, parsing and validation;
//! - [`layout`]: element types, alignment and the shard packer (shared with
//!   the quantizer, so both sides do the same arithmetic);
//! - [`ShardSource`]: where shards come from ([`FsSource`], [`HttpSource`]);
//! - [`BundleLoader`]: streams, verifies and hands out [`TensorData`].

mod error;
#[cfg(all(feature = "http", not(target_arch = "wasm32")))]
mod http;
pub mod layout;
mod loader;
pub mod manifest;
mod source;
mod tensor;

pub use error::BundleError;
#[cfg(all(feature = "http", not(target_arch = "wasm32")))]
pub use http::HttpSource;
pub use layout::{ALIGN, Part, Region, RowLayout, ShardPacker, WeightDType};
pub use loader::{BundleLoader, Progress};
pub use manifest::{
    Component, FORMAT, FORMAT_VERSION, MANIFEST_FILE, Manifest, ModelDefaults, QuantError,
    Quantization, ShardEntry, TensorEntry,
};
#[cfg(not(target_arch = "wasm32"))]
pub use source::FsSource;
pub use source::{ShardSource, sha256_hex, verify_shard};
pub use tensor::{TensorData, UploadedPart};
