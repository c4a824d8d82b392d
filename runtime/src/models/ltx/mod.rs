//! LTX-Video: T5 text encoder, the video transformer, the causal video VAE.
//! Weight names are the checkpoint's own (diffusers layout).

pub mod config;
pub mod text_encoder;
pub mod transformer;
pub mod vae;

pub use config::{T5Config, TransformerConfig, VaeConfig};
