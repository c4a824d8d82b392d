//! framecast: text-to-video on wgpu, natively and in the browser.
//!
//! The layers, bottom up (see ARCHITECTURE.md):
//! - [`gpu`]: adapter, device, caches, step recording;
//! - [`kernels`]: WGSL kernel families with CPU references;
//! - [`bundle`]: the weight bundle format, shard sources and the streaming loader;
//! - [`models`]: tokenizer and model families (LTX-Video);
//! - [`sched`]: flow-matching schedules;
//! - [`video`]: frames to files;
//! - [`doctor`]: the capability report and kernel self-check;
//! - `serve` (native, feature `serve`): the HTTP server for the site and bundles.

pub mod bundle;
pub mod doctor;
pub mod gpu;
pub mod kernels;
pub mod models;
pub mod pipeline;
pub mod quant;
pub mod sched;
#[cfg(all(feature = "serve", not(target_arch = "wasm32")))]
pub mod serve;
pub mod video;

pub use gpu::{AdapterChoice, Gpu, GpuError};
