//! LTX-Video's causal video VAE (diffusers `AutoencoderKLLTXVideo`), decoder
//! and encoder, on the conv3d / norm / rearrange kernels.
//!
//! Both published structures come from one [`VaeConfig`]:
//! - 0.9.0: strided-conv downsamplers, plain upsamplers, no timestep input;
//! - 0.9.5+: a timestep-conditioned decoder (per-block `time_embedder`s and
//!   `scale_shift_table`s), residual upsamplers with channel `upsample_factor`,
//!   and spatial / temporal / spatiotemporal residual downsamplers.
//!
//! Activations are channels-first `[C, F, H, W]` (batch 1). Every block runs
//! in its own [`crate::gpu::Step`], submitted before the next is recorded: a
//! Step holds every tensor it binds until submit, so this bounds the peak to
//! one block's working set (about three activations of the block's size, the
//! upsamplers' conv output being the largest) instead of the whole graph's.
//! Before anything runs, [`Plan`] walks the shapes and refuses a size whose
//! activations would not fit one storage binding; that is where spatial or
//! temporal tiling will plug in (decode tiles, blend, as diffusers'
//! `tiled_decode` / `_temporal_tiled_decode`).

mod blocks;
mod decoder;
mod encoder;
mod samplers;

pub use decoder::VaeDecoder;
pub use encoder::VaeEncoder;

use crate::gpu::{DType, Gpu, Step, Tensor};
use crate::models::ltx::VaeConfig;
use crate::models::{ModelError, Vb};

/// A channels-first activation shape `[C, F, H, W]`.
pub type Shape = [usize; 4];

/// The latent space's per-channel statistics (the VAE's `latents_mean` and
/// `latents_std` buffers) and `scaling_factor`, on the CPU.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub scaling_factor: f32,
}

impl LatentStats {
    /// `vb` is the "vae" root.
    pub fn load(vb: &Vb<'_>, config: &VaeConfig) -> Result<LatentStats, ModelError> {
        let c = config.latent_channels;
        Ok(LatentStats {
            mean: vb.cpu("latents_mean", &[c])?,
            std: vb.cpu("latents_std", &[c])?,
            scaling_factor: config.scaling_factor as f32,
        })
    }

    /// The pipeline's `_normalize_latents`: `(x - mean) * scaling_factor / std`
    /// per channel of `x [C, ...]`, in place. (LTXConditionPipeline normalises
    /// its conditioning latents with the default factor 1.0 rather than the
    /// config's; every published config has 1.0.)
    pub fn normalize(&self, x: &mut [f32]) -> Result<(), ModelError> {
        let sf = self.scaling_factor;
        self.per_channel(x, |v, m, s| (v - m) * sf / s)
    }

    /// The pipeline's `_denormalize_latents`: `x * std / scaling_factor + mean`
    /// per channel, in place; what the decoder takes.
    pub fn denormalize(&self, x: &mut [f32]) -> Result<(), ModelError> {
        let sf = self.scaling_factor;
        self.per_channel(x, |v, m, s| v * s / sf + m)
    }

    fn per_channel(
        &self,
        x: &mut [f32],
        f: impl Fn(f32, f32, f32) -> f32,
    ) -> Result<(), ModelError> {
        let c = self.mean.len();
        if c == 0 || self.std.len() != c || !x.len().is_multiple_of(c) {
            return Err(ModelError::shape(
                "latents",
                format!("{} values are not {c} channels", x.len()),
            ));
        }
        let per = x.len() / c;
        for (ch, chunk) in x.chunks_mut(per.max(1)).enumerate().take(c) {
            let (m, s) = (self.mean[ch], self.std[ch]);
            chunk.iter_mut().for_each(|v| *v = f(*v, m, s));
        }
        Ok(())
    }
}

/// The shape walk run before a decode or encode: every activation a block
/// will allocate must fit one storage binding.
pub struct Plan {
    limit: u64,
    dtype: DType,
    /// Bytes of the largest activation seen.
    pub largest: u64,
}

impl Plan {
    pub fn new(gpu: &Gpu, dtype: DType) -> Plan {
        Plan {
            limit: gpu
                .limits
                .max_storage_buffer_binding_size
                .min(gpu.limits.max_buffer_size),
            dtype,
            largest: 0,
        }
    }

    /// Records one activation of `shape` made by `what`.
    pub fn tensor(&mut self, what: &str, shape: Shape) -> Result<(), ModelError> {
        let elements = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let bytes = elements.and_then(|n| n.checked_mul(self.dtype.size() as u64));
        match bytes {
            Some(b) if b <= self.limit => {
                self.largest = self.largest.max(b);
                Ok(())
            }
            _ => Err(ModelError::shape(
                what,
                format!(
                    "an activation of {shape:?} ({}) exceeds the adapter's {} MiB storage \
                     binding; decode or encode smaller tiles",
                    bytes.map_or("overflow".to_string(), |b| format!("{} MiB", b >> 20)),
                    self.limit >> 20
                ),
            )),
        }
    }
}

/// Records one layer into its own step and submits it, so the layer's
/// temporaries go back to the pool before the next is recorded.
pub(crate) fn run(
    gpu: &Gpu,
    label: &str,
    f: impl FnOnce(&mut Step) -> Result<Tensor, ModelError>,
) -> Result<Tensor, ModelError> {
    let mut step = gpu.step(label);
    let out = f(&mut step)?;
    step.submit()?;
    Ok(out)
}

/// The dtype conv kernels are stored in: f16 with f16 activations or when
/// the bundle already holds f16 (no loss), f32 otherwise.
fn conv_dtype(vb: &Vb<'_>, name: &str, act: DType) -> Result<DType, ModelError> {
    use crate::bundle::WeightDType;
    Ok(match (act, vb.data(name)?.entry.dtype) {
        (DType::F32, WeightDType::F32 | WeightDType::Q4 | WeightDType::Q8) => DType::F32,
        _ => DType::F16,
    })
}

/// The module name of `vb` (its key without the trailing dot), for errors
/// and step labels.
fn name_of(vb: &Vb<'_>) -> String {
    vb.key("").trim_end_matches('.').to_string()
}

/// Element `i` of `list` read back to front (diffusers reverses the
/// decoder's per-block tuples), or a config error naming the field.
fn reversed<T: Copy>(list: &[T], i: usize, field: &str) -> Result<T, ModelError> {
    list.len()
        .checked_sub(i + 1)
        .and_then(|j| list.get(j))
        .copied()
        .ok_or_else(|| {
            ModelError::Config(format!(
                "{field} has {} entries, needs {}",
                list.len(),
                i + 1
            ))
        })
}

/// Element `i` of `list`, or a config error naming the field.
fn nth<T: Clone>(list: &[T], i: usize, field: &str) -> Result<T, ModelError> {
    list.get(i).cloned().ok_or_else(|| {
        ModelError::Config(format!(
            "{field} has {} entries, needs {}",
            list.len(),
            i + 1
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_normalisation_round_trips_per_channel() {
        let stats = LatentStats {
            mean: vec![0.5, -1.0],
            std: vec![2.0, 0.5],
            scaling_factor: 1.5,
        };
        let x = vec![1.0, 2.0, 3.0, -1.0, 0.0, 4.0];
        let mut y = x.clone();
        stats.normalize(&mut y).unwrap();
        assert_eq!(y[0], (1.0 - 0.5) * 1.5 / 2.0);
        assert_eq!(y[3], (-1.0 + 1.0) * 1.5 / 0.5);
        stats.denormalize(&mut y).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!(stats.normalize(&mut [1.0; 3]).is_err());
    }

    #[test]
    fn reversed_reads_from_the_back() {
        assert_eq!(reversed(&[1, 2, 3], 0, "f").unwrap(), 3);
        assert_eq!(reversed(&[1, 2, 3], 2, "f").unwrap(), 1);
        assert!(reversed(&[1, 2, 3], 3, "f").is_err());
    }
}
