//! Weights by the checkpoint's own names: a [`Weights`] store of loaded
//! bundle tensors and [`Vb`], the prefix builder models walk their module
//! tree with (`vb.pp("transformer_blocks").pp(i).pp("attn1")`). Names are
//! never translated: a lookup that misses names the full key.

use std::collections::HashMap;
use std::fmt::Display;

use thiserror::Error;

use crate::bundle::{BundleError, TensorData, WeightDType};
use crate::gpu::{DType, Gpu, GpuError, Tensor};
use crate::kernels::matmul::{self, Weight, WeightFormat};
use crate::models::tokenizer::TokenizerError;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("the bundle has no tensor '{0}': is it a bundle of this model family?")]
    Missing(String),
    #[error("tensor '{name}': {detail}")]
    Shape { name: String, detail: String },
    #[error("model config: {0}")]
    Config(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

impl ModelError {
    pub fn shape(name: impl Into<String>, detail: impl Into<String>) -> ModelError {
        ModelError::Shape {
            name: name.into(),
            detail: detail.into(),
        }
    }
}

/// Loaded tensors keyed `component/name` (e.g. `transformer/proj_in.weight`).
#[derive(Default)]
pub struct Weights {
    tensors: HashMap<String, TensorData>,
}

impl Weights {
    pub fn new() -> Weights {
        Weights::default()
    }

    pub fn from_tensors(tensors: impl IntoIterator<Item = TensorData>) -> Weights {
        let mut w = Weights::new();
        w.extend(tensors);
        w
    }

    pub fn extend(&mut self, tensors: impl IntoIterator<Item = TensorData>) {
        for t in tensors {
            self.tensors.insert(t.entry.key(), t);
        }
    }

    /// Drops a component's tensors (their CPU copies) once it is on the GPU.
    pub fn release(&mut self, component: &str) {
        let prefix = format!("{component}/");
        self.tensors.retain(|k, _| !k.starts_with(&prefix));
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The view of one component's module tree.
    pub fn root(&self, component: &str) -> Vb<'_> {
        Vb {
            weights: self,
            prefix: format!("{component}/"),
        }
    }
}

/// A position in a component's module tree.
#[derive(Clone)]
pub struct Vb<'a> {
    weights: &'a Weights,
    /// `component/` followed by module names, each ending in '.'.
    prefix: String,
}

impl<'a> Vb<'a> {
    /// The child module `name` (a field name or a list index).
    pub fn pp(&self, name: impl Display) -> Vb<'a> {
        let mut prefix = self.prefix.clone();
        prefix.push_str(&format!("{name}."));
        Vb {
            weights: self.weights,
            prefix,
        }
    }

    /// The full key of tensor `name` here.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn has(&self, name: &str) -> bool {
        self.weights.tensors.contains_key(&self.key(name))
    }

    pub fn data(&self, name: &str) -> Result<&'a TensorData, ModelError> {
        let key = self.key(name);
        self.weights
            .tensors
            .get(&key)
            .ok_or(ModelError::Missing(key))
    }

    pub fn shape(&self, name: &str) -> Result<&'a [usize], ModelError> {
        Ok(&self.data(name)?.entry.shape)
    }

    /// Tensor `name` decoded to f32 on the CPU, checked against `shape`.
    pub fn cpu(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let d = self.data(name)?;
        expect_shape(&self.key(name), &d.entry.shape, shape)?;
        Ok(d.to_f32())
    }

    /// Tensor `name` on the GPU in `dtype` (F32 or F16): biases, norm
    /// weights, modulation tables, conv kernels.
    pub fn tensor(
        &self,
        gpu: &Gpu,
        name: &str,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor, ModelError> {
        let values = self.cpu(name, shape)?;
        Ok(gpu.upload(&values, shape, dtype)?)
    }

    /// Tensor `name`, an `[n, k]` linear weight, in the format it is stored
    /// in (q4/q8 stay packed; nothing is decoded on the CPU).
    pub fn weight(&self, gpu: &Gpu, name: &str, n: usize, k: usize) -> Result<Weight, ModelError> {
        let d = self.data(name)?;
        let key = self.key(name);
        expect_shape(&key, &d.entry.shape, &[n, k])?;
        let format = match d.entry.dtype {
            WeightDType::Q4 => WeightFormat::Q4,
            WeightDType::Q8 => WeightFormat::Q8,
            WeightDType::F16 => WeightFormat::F16,
            WeightDType::F32 => WeightFormat::F32,
        };
        let layout = d.layout();
        let values = d.gather_values(&(0..n));
        let scales = match format.quant() {
            Some(_) => d.gather_scales(&(0..n), layout.groups_per_row()),
            None => Vec::new(),
        };
        Weight::from_bytes(gpu, format, n, k, layout.group, &values, &scales, None)
            .map_err(|e| ModelError::shape(key, e.to_string()))
    }

    /// The `nn.Linear` here (`weight [n, k]`, `bias [n]` if the checkpoint
    /// has one), its bias in the activations' `dtype`.
    pub fn linear(
        &self,
        gpu: &Gpu,
        n: usize,
        k: usize,
        dtype: DType,
    ) -> Result<Linear, ModelError> {
        let weight = self.weight(gpu, "weight", n, k)?;
        let bias = if self.has("bias") {
            Some(self.tensor(gpu, "bias", &[n], dtype)?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

fn expect_shape(key: &str, got: &[usize], want: &[usize]) -> Result<(), ModelError> {
    if got != want {
        return Err(ModelError::shape(
            key,
            format!("shape {got:?}, the config implies {want:?}"),
        ));
    }
    Ok(())
}

/// A linear layer on the GPU: `y = x wᵀ + b`.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn n(&self) -> usize {
        self.weight.n
    }

    pub fn k(&self) -> usize {
        self.weight.k
    }

    /// Records `y = x wᵀ + b` into `step`.
    pub fn encode(
        &self,
        step: &mut crate::gpu::Step,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<(), GpuError> {
        matmul::encode(step, x, &self.weight, self.bias.as_ref(), y)
    }

    /// Bytes of GPU memory the layer holds.
    pub fn bytes(&self) -> u64 {
        self.weight.bytes() + self.bias.as_ref().map_or(0, |b| b.bytes())
    }
}
