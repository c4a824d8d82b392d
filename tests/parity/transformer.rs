//! One LTX transformer call against the diffusers fixtures: the recorded
//! inputs of the pipeline's first denoising step (CFG batch of 2 for v095,
//! batch 1 for v090) through our transformer, compared with its output.

use framecast::bundle::WeightDType;
use framecast::gpu::DType;
use framecast::kernels::rope::grid::LtxGrid;
use framecast::models::ltx::TransformerConfig;
use framecast::models::ltx::transformer::{Forward, LtxTransformer};
use framecast_tests::{Fixture, gpu, rel_l2};

/// Runs the recorded first call; returns our output.
fn run(fx: &Fixture, weights: WeightDType, act: DType) -> anyhow::Result<Vec<f32>> {
    let gpu = gpu().expect("checked by the caller");
    let bundle = fx.bundle(weights)?;
    let manifest = bundle.manifest()?;
    let config: TransformerConfig =
        serde_json::from_value(manifest.components["transformer"].config.clone())?;
    let w = bundle.weights()?;
    let model = LtxTransformer::load(gpu, w.root("transformer"), &config, act)?;
    let (hshape, hidden) = fx.tensor("transformer.hidden_states");
    let (batch, tokens) = (hshape[0], hshape[1]);
    let (cshape, caption) = fx.tensor("transformer.encoder_hidden_states");
    let len = cshape[1];
    let mask: Vec<f32> = fx
        .values("transformer.encoder_attention_mask")
        .iter()
        .map(|&m| (1.0 - m) * -10000.0)
        .collect();
    let timesteps = fx.values("transformer.timestep");
    // video_coords [B, 3, T]: pixel coordinates with the frame already in
    // seconds; the model divides by the base sizes. Rebuild ours from the
    // grid and check they are the recorded ones.
    let (vshape, vc) = fx.tensor("transformer.video_coords");
    let fps = fx.call["frame_rate"].as_f64().unwrap();
    let [f, h, w_] = [
        (fx.call["num_frames"].as_u64().unwrap() as usize - 1) / 8 + 1,
        fx.call["height"].as_u64().unwrap() as usize / 32,
        fx.call["width"].as_u64().unwrap() as usize / 32,
    ];
    let grid = LtxGrid::LTX_VIDEO;
    let ours = grid.latent_coords(f, h, w_, fps);
    assert_eq!(vshape, &vec![batch, 3, tokens]);
    for t in 0..tokens {
        let want = [
            vc[t] / grid.base_num_frames,
            vc[tokens + t] / grid.base_height,
            vc[2 * tokens + t] / grid.base_width,
        ];
        for a in 0..3 {
            assert!(
                (ours[3 * t + a] - want[a]).abs() <= 1e-7,
                "{}: token {t} axis {a}: {} vs {}",
                fx.variant,
                ours[3 * t + a],
                want[a]
            );
        }
    }
    let coords: Vec<f32> = (0..batch).flat_map(|_| ours.iter().copied()).collect();
    let mut step = gpu.step("transformer parity");
    let hidden_t = gpu.upload(hidden, hshape, act)?;
    let states = gpu.upload(caption, &[batch * len, cshape[2]], act)?;
    let caption_t = model.project_caption(&mut step, &states)?;
    let mask_t = gpu.upload(&mask, &[batch, len], DType::F32)?;
    let rope = model.rope(&mut step, &coords)?;
    let out = gpu.empty(&[batch * tokens, config.out_channels], act)?;
    model.forward(
        &mut step,
        Forward {
            hidden: &hidden_t,
            batch,
            tokens,
            timesteps,
            caption: &caption_t,
            caption_len: len,
            mask: &mask_t,
            rope: &rope,
        },
        &out,
    )?;
    step.submit()?;
    Ok(pollster::block_on(gpu.read(&out))?)
}

#[test]
fn transformer_matches_diffusers() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    for variant in ["v095", "v090"] {
        let fx = Fixture::open(variant)?;
        let want = fx.values("transformer.out");
        let e = rel_l2(&run(&fx, WeightDType::F32, DType::F32)?, want);
        eprintln!("transformer {variant} f32: rel L2 {e:.2e} (bar 1e-4)");
        assert!(e <= 1e-4, "{variant}: {e:.2e}");
        if gpu.caps.f16 {
            let e16 = rel_l2(&run(&fx, WeightDType::F32, DType::F16)?, want);
            // f16 activations round every intermediate to 11 bits (~5e-4
            // relative); two blocks of matmuls and norms compound it.
            eprintln!("transformer {variant} f16 activations: rel L2 {e16:.2e} (bound 1e-2)");
            assert!(e16 <= 1e-2, "{variant}: f16 {e16:.2e}");
        } else {
            eprintln!("skipped: f16 transformer, the adapter has no shader-f16");
        }
        let eq = rel_l2(&run(&fx, WeightDType::Q4, DType::F32)?, want);
        // q4 against f32 weights: the quantisation's error, not ours (the
        // pipeline test judges q4 against diffusers on the same weights).
        eprintln!("transformer {variant} q4 weights vs f32 reference: rel L2 {eq:.2e}");
        assert!(eq.is_finite() && eq < 0.5, "{variant}: q4 {eq:.2e}");
    }
    Ok(())
}

#[test]
fn wrong_timestep_count_is_a_clear_error() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let fx = Fixture::open("v090")?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let config: TransformerConfig =
        serde_json::from_value(bundle.manifest()?.components["transformer"].config.clone())?;
    let w = bundle.weights()?;
    let model = LtxTransformer::load(gpu, w.root("transformer"), &config, DType::F32)?;
    let mut step = gpu.step("bad");
    let hidden = gpu.upload(&vec![0.0; 12 * 8], &[12, 8], DType::F32)?;
    let states = gpu.upload(&vec![0.0; 4 * 32], &[4, 32], DType::F32)?;
    let caption = model.project_caption(&mut step, &states)?;
    let mask = gpu.upload(&[0.0; 4], &[1, 4], DType::F32)?;
    let rope = model.rope(&mut step, &[0.0; 36])?;
    let out = gpu.empty(&[12, 8], DType::F32)?;
    let err = model
        .forward(
            &mut step,
            Forward {
                hidden: &hidden,
                batch: 1,
                tokens: 12,
                timesteps: &[1.0, 2.0, 3.0],
                caption: &caption,
                caption_len: 4,
                mask: &mask,
                rope: &rope,
            },
            &out,
        )
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref().is_some_and(|e| e.contains("3 timesteps")),
        "{err:?}"
    );
    Ok(())
}
