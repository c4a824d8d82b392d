//! framecast: text-to-video on wgpu, natively and in the browser.
//!
//! The layers, bottom up (see ARCHITECTURE.md):
//! - [`gpu`]: adapter, device, caches, step recording;
//! - [`kernels`]: WGSL kernel families with CPU references;
//! - [`bundle`]: the weight bundle format, shard sources and the streaming loader;
//! - [`doctor`]: the capability report and kernel self-check.

pub mod bundle;
pub mod doctor;
pub mod gpu;
pub mod kernels;
pub mod quant;

pub use gpu::{AdapterChoice, Gpu, GpuError};
