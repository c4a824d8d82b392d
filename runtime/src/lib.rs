//! framecast: text-to-video on wgpu, natively and in the browser.
//!
//! The layers, bottom up (see ARCHITECTURE.md):
//! - [`gpu`]: adapter, device, caches, step recording;
//! - [`kernels`]: WGSL kernel families with CPU references;
//! - [`doctor`]: the capability report and kernel self-check.

pub mod doctor;
pub mod gpu;
pub mod kernels;
pub mod models;
pub mod quant;
pub mod sched;
pub mod video;

pub use gpu::{AdapterChoice, Gpu, GpuError};
