//! framecast-quantize: published checkpoints (diffusers layout) to framecast
//! weight bundles and back. The bundle format itself lives in the runtime
//! (`framecast::bundle`), so both sides read and write one definition.

pub mod checkpoint;
pub mod convert;
pub mod dequantize;
pub mod family;
pub mod progress;
pub mod rules;
pub mod verify;
mod writer;

pub use convert::{Options, Summary, convert};
