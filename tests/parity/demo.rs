//! The shipped demo model (models/demo, q4) through the runtime against
//! diffusers' LTXConditionPipeline on the same (dequantised) weights, from
//! the same latents: tools/demo_model/reference.py made the fixture. This
//! holds the demo model's own configuration (a 16x/4x VAE, CFG, a trained
//! tokenizer) to the reference, beyond the tiny random fixtures.

use framecast::bundle::{BundleLoader, FsSource, Manifest};
use framecast::gpu::DType;
use framecast::models::Weights;
use framecast::pipeline::{Cancel, GenerateOptions, LtxPipeline};
use framecast_tests::{gpu, psnr, read_f32_tensors, repo_root};

#[test]
fn demo_model_matches_diffusers_on_its_own_weights() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let root = repo_root();
    let bundle = root.join("models/demo");
    let fixture = root.join("tests/fixtures/demo");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("reference.json"))?)?;
    let tensors = read_f32_tensors(&fixture.join("reference.safetensors"))?;
    let c = &json["call"];
    let num = |k: &str| c[k].as_f64().unwrap_or_else(|| panic!("call.{k}"));
    let manifest = Manifest::parse(&std::fs::read(bundle.join("manifest.json"))?)?;
    let weights = pollster::block_on(async {
        let mut loader = BundleLoader::open(FsSource::new(&bundle)).await?;
        anyhow::Ok(Weights::from_tensors(loader.load_all(&mut |_| {}).await?))
    })?;
    let pipe = LtxPipeline::load(gpu, &manifest, &weights, DType::F32)?;
    let opts = GenerateOptions {
        prompt: c["prompt"].as_str().unwrap().to_string(),
        negative_prompt: c["negative_prompt"].as_str().map(str::to_string),
        width: num("width") as usize,
        height: num("height") as usize,
        num_frames: num("num_frames") as usize,
        frame_rate: num("frame_rate"),
        num_inference_steps: num("num_inference_steps") as usize,
        guidance_scale: num("guidance_scale") as f32,
        seed: num("seed") as u64,
        max_sequence_length: num("max_sequence_length") as usize,
        latents: Some(tensors["latents"].1.clone()),
        decode_timestep: num("decode_timestep") as f32,
        decode_noise_scale: Some(num("decode_noise_scale") as f32),
        ..GenerateOptions::default()
    };
    let video = pollster::block_on(pipe.generate(gpu, &opts, &mut |_| {}, &Cancel::new()))?;
    let (shape, want) = &tensors["frames"];
    assert_eq!(
        &vec![video.num_frames, video.height, video.width, 3],
        shape,
        "frame shape"
    );
    let db = psnr(&video.frames, want);
    eprintln!("demo model q4 vs diffusers on the dequantised weights: PSNR {db:.1} dB (bar 40)");
    assert!(db >= 40.0, "PSNR {db:.1} dB < 40");
    Ok(())
}
