//! LTX-Video VAE parity against the diffusers fixtures (both structures:
//! v095 = the timestep-conditioned 0.9.5+ VAE, v090 = the 0.9.0 VAE), with
//! the fixture pipeline converted to an f32 bundle:
//!
//! - the standalone decode `vae_decode.in` -> `vae_decode.out` (v095 at
//!   timestep 0.05, as `ltx_fixtures.py` calls it);
//! - the pipeline's own decoder call (`vae_decoder.arg0`, plus `arg1`, the
//!   decode timestep, for v095) against the recorded `frames`, after the
//!   pipeline's postprocessing `(x / 2 + 0.5).clamp(0, 1)` to `[F, H, W, 3]`;
//! - the encoder: `vae_encode.in` -> `vae_encode.mean` (posterior mean);
//! - the latent statistics against the checkpoint, and the normalisation round trip.
//!
//! F32 must reach rel L2 <= 1e-4. F16 activations (with f16 conv weights)
//! round every stored activation to 11 bits (2^-11 = 4.9e-4 relative); about
//! 20 conv / norm layers in a chain accumulate that to a few 1e-3, so F16 is
//! held to 1e-2.

use anyhow::{Context, Result};
use framecast::Gpu;
use framecast::bundle::WeightDType;
use framecast::gpu::DType;
use framecast::models::ModelError;
use framecast::models::ltx::VaeConfig;
use framecast::models::ltx::vae::{LatentStats, VaeDecoder, VaeEncoder};
use framecast_tests::{Fixture, gpu, rel_l2};

const F32_BAR: f64 = 1e-4;
const F16_BAR: f64 = 1e-2;

fn config(fx: &Fixture) -> Result<VaeConfig> {
    let path = fx.pipeline_dir().join("vae/config.json");
    Ok(serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("{path:?}"))?)
}

/// A recorded `[1, C, F, H, W]` tensor as `[C, F, H, W]` on the GPU.
fn upload(gpu: &Gpu, fx: &Fixture, name: &str, dtype: DType) -> Result<framecast::gpu::Tensor> {
    let (shape, values) = fx.tensor(name);
    anyhow::ensure!(shape.len() == 5 && shape[0] == 1, "{name}: {shape:?}");
    Ok(gpu.upload(values, &shape[1..], dtype)?)
}

/// The pipeline's postprocessing of `video [3, F, H, W]`: `(x / 2 + 0.5)`
/// clamped to [0, 1], as `[F, H, W, 3]`.
fn postprocess(video: &[f32], shape: &[usize]) -> Vec<f32> {
    let &[c, f, h, w] = shape else {
        panic!("video {shape:?}")
    };
    let plane = f * h * w;
    (0..plane)
        .flat_map(|p| (0..c).map(move |ch| video[ch * plane + p]))
        .map(|v| (v / 2.0 + 0.5).clamp(0.0, 1.0))
        .collect()
}

fn bar(dtype: DType) -> f64 {
    if dtype == DType::F32 {
        F32_BAR
    } else {
        F16_BAR
    }
}

fn check(variant: &str, what: &str, dtype: DType, got: &[f32], want: &[f32]) -> f64 {
    let e = rel_l2(got, want);
    eprintln!(
        "{variant} {dtype:?} {what}: rel L2 {e:.3e} (bar {:.0e})",
        bar(dtype)
    );
    e
}

fn parity(gpu: &Gpu, variant: &str) -> Result<()> {
    let fx = Fixture::open(variant)?;
    let cfg = config(&fx)?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let weights = bundle.weights()?;
    let mut dtypes = vec![DType::F32];
    if gpu.caps.f16 {
        dtypes.push(DType::F16);
    } else {
        eprintln!("{variant}: no shader-f16, F16 skipped");
    }
    let mut failures = Vec::new();
    for dtype in dtypes {
        let decoder = VaeDecoder::load(gpu, weights.root("vae"), &cfg, dtype)?;
        let encoder = VaeEncoder::load(gpu, weights.root("vae"), &cfg, dtype)?;
        eprintln!(
            "{variant} {dtype:?}: decoder {} KiB, encoder {} KiB of weights",
            decoder.bytes() >> 10,
            encoder.bytes() >> 10
        );
        assert_eq!(decoder.timestep_conditioned(), cfg.timestep_conditioning);

        // Standalone decode, at the script's timestep.
        let t = cfg.timestep_conditioning.then_some(0.05);
        let z = upload(gpu, &fx, "vae_decode.in", dtype)?;
        let out = decoder.decode(gpu, &z, t)?;
        let (want_shape, want) = fx.tensor("vae_decode.out");
        assert_eq!(out.shape, want_shape[1..], "{variant} decode shape");
        let got = pollster::block_on(gpu.read(&out))?;
        let e = check(variant, "standalone decode", dtype, &got, want);
        if e > bar(dtype) {
            failures.push(format!("{variant} {dtype:?} decode {e:.3e}"));
        }

        // The pipeline's decoder call, against the final frames.
        let z = upload(gpu, &fx, "vae_decoder.arg0", dtype)?;
        let t = cfg
            .timestep_conditioning
            .then(|| fx.values("vae_decoder.arg1")[0]);
        let out = decoder.decode(gpu, &z, t)?;
        let got = postprocess(&pollster::block_on(gpu.read(&out))?, &out.shape);
        let (frames_shape, frames) = fx.tensor("frames");
        assert_eq!(
            [out.shape[1], out.shape[2], out.shape[3], out.shape[0]],
            frames_shape[..],
            "{variant} frames shape"
        );
        let e = check(variant, "pipeline decode -> frames", dtype, &got, frames);
        if e > bar(dtype) {
            failures.push(format!("{variant} {dtype:?} frames {e:.3e}"));
        }

        // Encode: the posterior mean.
        let video = upload(gpu, &fx, "vae_encode.in", dtype)?;
        let mean = encoder.encode(gpu, &video)?;
        let (want_shape, want) = fx.tensor("vae_encode.mean");
        assert_eq!(mean.shape, want_shape[1..], "{variant} encode shape");
        let got = pollster::block_on(gpu.read(&mean))?;
        let e = check(variant, "encode mean", dtype, &got, want);
        if e > bar(dtype) {
            failures.push(format!("{variant} {dtype:?} encode {e:.3e}"));
        }
    }

    // Latent statistics: the checkpoint's buffers, and the pipeline's
    // (de)normalisation round trip on the decoder's recorded input.
    let stats = LatentStats::load(&weights.root("vae"), &cfg)?;
    let st_bytes = std::fs::read(
        fx.pipeline_dir()
            .join("vae/diffusion_pytorch_model.safetensors"),
    )?;
    let st = safetensors::SafeTensors::deserialize(&st_bytes)?;
    for (name, got) in [("latents_mean", &stats.mean), ("latents_std", &stats.std)] {
        let want: Vec<f32> = st
            .tensor(name)?
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, &want, "{variant} {name}");
    }
    assert_eq!(stats.scaling_factor, cfg.scaling_factor as f32);
    let z = fx.values("vae_decoder.arg0").to_vec();
    let mut y = z.clone();
    stats.normalize(&mut y)?;
    stats.denormalize(&mut y)?;
    let e = rel_l2(&y, &z);
    eprintln!("{variant}: normalize -> denormalize round trip rel L2 {e:.1e}");
    assert!(e < 1e-6);

    errors(gpu, &fx, &cfg, &weights)?;
    assert!(failures.is_empty(), "over the bar: {failures:?}");
    Ok(())
}

/// Latents the decoder cannot take answer with a ModelError, not a panic.
fn errors(
    gpu: &Gpu,
    fx: &Fixture,
    cfg: &VaeConfig,
    weights: &framecast::models::Weights,
) -> Result<()> {
    let decoder = VaeDecoder::load(gpu, weights.root("vae"), cfg, DType::F32)?;
    let c = cfg.latent_channels;
    let t = cfg.timestep_conditioning.then_some(0.05);
    let expect_shape_error = |what: &str, r: Result<framecast::gpu::Tensor, ModelError>| match r {
        Err(e @ ModelError::Shape { .. }) => eprintln!("{}: {what}: {e}", fx.variant),
        Err(e) => panic!("{what}: expected a shape error, got {e}"),
        Ok(t) => panic!("{what}: decoded to {:?}", t.shape),
    };
    let wrong_channels = gpu.upload(&vec![0.0; (c + 1) * 2], &[c + 1, 1, 1, 2], DType::F32)?;
    expect_shape_error("wrong channels", decoder.decode(gpu, &wrong_channels, t));
    let flat = gpu.upload(&vec![0.0; c * 2], &[c, 2], DType::F32)?;
    expect_shape_error("not [C, F, H, W]", decoder.decode(gpu, &flat, t));
    // 1024 x 1024 latent pixels decode to 32768^2 frames: activations of many
    // GiB, refused by the shape plan before anything is recorded.
    let huge = gpu.empty(&[c, 1, 1024, 1024], DType::F32)?;
    expect_shape_error("too large for one binding", decoder.decode(gpu, &huge, t));
    if cfg.timestep_conditioning {
        let z = gpu.upload(&vec![0.0; c * 2], &[c, 1, 1, 2], DType::F32)?;
        match decoder.decode(gpu, &z, None) {
            Err(e @ ModelError::Config(_)) => eprintln!("{}: no timestep: {e}", fx.variant),
            other => panic!(
                "no timestep: expected a config error, got {:?}",
                other.map(|t| t.shape)
            ),
        }
    }
    Ok(())
}

#[test]
fn vae_v095_matches_diffusers() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    parity(gpu, "v095")
}

#[test]
fn vae_v090_matches_diffusers() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    parity(gpu, "v090")
}
