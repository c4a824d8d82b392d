//! Model families. Models know nothing of the browser; kernels know nothing
//! of models.

pub mod ltx;
pub mod tokenizer;
