//! Conditioning against diffusers' `LTXConditionPipeline` on the tiny v095
//! fixture (`tools/reference/ltx_condition_fixtures.py`): an image as frame
//! 0, a keyframe at the last frame with a partial first frame, and
//! video-to-video at denoise strength 0.6. Same weights (converted by our
//! quantizer), prompt, schedule and initial noise; our VAE encodes the
//! pictures and the clip itself.

use framecast::bundle::WeightDType;
use framecast::gpu::{DType, Gpu};
use framecast::pipeline::{
    Cancel, Condition, Event, Frames, GenerateOptions, LtxPipeline, Stage, VideoInput,
};
use framecast_tests::{Fixture, Tensors, gpu, psnr, read_f32_tensors};

fn frames(t: &Tensors, name: &str) -> Frames {
    let (shape, values) = &t[name];
    let (f, h, w) = match shape.as_slice() {
        [h, w, 3] => (1, *h, *w),
        [f, h, w, 3] => (*f, *h, *w),
        other => panic!("{name}: {other:?} is not [F,] H, W, 3"),
    };
    let rgb: Vec<u8> = values.iter().map(|&v| v as u8).collect();
    Frames::from_rgb8(&rgb, f, h, w).unwrap()
}

fn options(call: &serde_json::Value, t: &Tensors, case: &str) -> GenerateOptions {
    let num = |k: &str| {
        call[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{case}: call.{k}"))
    };
    let conditions = call["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Condition {
            frames: frames(t, c["image"].as_str().unwrap()),
            frame_index: c["frame_index"].as_u64().unwrap() as usize,
            strength: c["strength"].as_f64().unwrap() as f32,
        })
        .collect();
    let video = call["denoise_strength"].as_f64().map(|s| VideoInput {
        frames: frames(t, "video.input"),
        denoise_strength: s,
    });
    GenerateOptions {
        prompt: call["prompt"].as_str().unwrap().to_string(),
        negative_prompt: call["negative_prompt"].as_str().map(str::to_string),
        width: num("width") as usize,
        height: num("height") as usize,
        num_frames: num("num_frames") as usize,
        frame_rate: num("frame_rate"),
        num_inference_steps: num("num_inference_steps") as usize,
        guidance_scale: num("guidance_scale") as f32,
        seed: num("seed") as u64,
        max_sequence_length: num("max_sequence_length") as usize,
        latents: Some(t[&format!("{case}.noise")].1.clone()),
        decode_timestep: num("decode_timestep") as f32,
        decode_noise_scale: Some(num("decode_noise_scale") as f32),
        image_cond_noise_scale: num("image_cond_noise_scale") as f32,
        conditions,
        video,
        ..GenerateOptions::default()
    }
}

/// The fixture's calls and tensors, and its pipeline at f32.
fn open(gpu: &Gpu) -> anyhow::Result<(serde_json::Value, Tensors, LtxPipeline)> {
    let fx = Fixture::open("v095")?;
    let json = serde_json::from_slice(&std::fs::read(fx.dir.join("condition.json"))?)?;
    let tensors = read_f32_tensors(&fx.dir.join("condition.safetensors"))?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let pipe = LtxPipeline::load(gpu, &bundle.manifest()?, &bundle.weights()?, DType::F32)?;
    Ok((json, tensors, pipe))
}

#[test]
fn conditioned_frames_match_diffusers() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let (json, tensors, pipe) = open(gpu)?;
    for case in ["image", "keyframes", "video"] {
        let opts = options(&json["calls"][case], &tensors, case);
        let mut events = Vec::new();
        let video =
            pollster::block_on(pipe.generate(gpu, &opts, &mut |e| events.push(e), &Cancel::new()))?;
        let (shape, want) = &tensors[&format!("{case}.frames")];
        assert_eq!(
            &vec![video.num_frames, video.height, video.width, 3],
            shape,
            "{case}: frame shape"
        );
        let db = psnr(&video.frames, want);
        eprintln!("condition {case}: PSNR {db:.1} dB against diffusers (bar 40)");
        assert!(db >= 40.0, "{case}: PSNR {db:.1} dB < 40");
        assert!(
            events.contains(&Event::StageStarted(Stage::Conditioning)),
            "{case}: no conditioning stage reported"
        );
        let steps = events
            .iter()
            .filter(|e| matches!(e, Event::Step { .. }))
            .count();
        // 3 steps each; video-to-video at 0.6 runs the last 3 of its 5.
        assert_eq!(steps, 3, "{case}: steps");
    }
    Ok(())
}

#[test]
fn bad_conditions_are_clear_errors() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let (json, tensors, pipe) = open(gpu)?;
    let base = options(&json["calls"]["image"], &tensors, "image");
    let run = |o: &GenerateOptions| {
        pollster::block_on(pipe.generate(gpu, o, &mut |_| {}, &Cancel::new()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let mut o = base.clone();
    o.conditions[0].frames = Frames::new(vec![0.5; 32 * 32 * 3], 1, 32, 32)?;
    let e = run(&o);
    assert!(e.contains("32x32") && e.contains("resize"), "{e}");
    let mut o = base.clone();
    o.conditions[0].frame_index = 40;
    let e = run(&o);
    assert!(e.contains("past the video's last frame"), "{e}");
    let mut o = base.clone();
    o.conditions[0].strength = 1.5;
    assert!(run(&o).contains("strength"));
    Ok(())
}
