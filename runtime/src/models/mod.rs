//! Model families. Models know nothing of the browser; kernels know nothing
//! of models.

pub mod ltx;
pub mod tokenizer;
pub mod weights;

pub use weights::{Linear, ModelError, Vb, Weights};
