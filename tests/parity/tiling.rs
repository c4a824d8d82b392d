//! Temporal tiling on the tiny v095 fixture: a 41-frame clip denoised in
//! windows of 17 frames sharing 8 (latent windows [0, 3), [2, 5), [3, 6)).
//! With the shared frames held exactly (strength 1, no conditioning
//! noise), the first window's latents must be those of a 17-frame run on
//! the same noise, and later windows must not disturb them; the untiled
//! clip, whose attention spans all frames, differs there.

use framecast::bundle::WeightDType;
use framecast::gpu::DType;
use framecast::pipeline::latents::noise;
use framecast::pipeline::{Cancel, Event, GenerateOptions, LtxPipeline, Tiling, VideoInput};
use framecast_tests::{Fixture, gpu, rel_l2};

/// 96x64 at 32x spatial compression: 2 x 3 latent pixels per frame.
const PLANE: usize = 6;

fn base() -> GenerateOptions {
    GenerateOptions {
        prompt: "a red ball bounces on a blue floor".into(),
        width: 96,
        height: 64,
        num_frames: 41,
        frame_rate: 24.0,
        num_inference_steps: 3,
        guidance_scale: 1.0,
        seed: 3,
        image_cond_noise_scale: 0.0,
        ..GenerateOptions::default()
    }
}

/// Latent frames `[from, to)` of `[C, lf, 2, 3]` latents.
fn frames(z: &[f32], lf: usize, from: usize, to: usize) -> Vec<f32> {
    let channels = z.len() / (lf * PLANE);
    (0..channels)
        .flat_map(|c| z[(c * lf + from) * PLANE..(c * lf + to) * PLANE].to_vec())
        .collect()
}

#[test]
fn windows_continue_each_other() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let fx = Fixture::open("v095")?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let pipe = LtxPipeline::load(gpu, &bundle.manifest()?, &bundle.weights()?, DType::F32)?;
    let run = |o: &GenerateOptions, events: &mut Vec<Event>| {
        pollster::block_on(pipe.generate_latents(gpu, o, &mut |e| events.push(e), &Cancel::new()))
    };
    let mut events = Vec::new();
    let probe = run(&base(), &mut events)?;
    let lf = 6;
    let n = noise(11, 0, probe.len());

    let mut tiled = base();
    tiled.latents = Some(n.clone());
    tiled.tiling = Some(Tiling {
        frames: 17,
        overlap: 8,
        strength: 1.0,
    });
    assert_eq!(pipe.windows(&tiled)?, vec![(0, 3), (2, 5), (3, 6)]);
    let mut events = Vec::new();
    let z = run(&tiled, &mut events)?;
    let steps: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step { index, total, .. } => Some((*index, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        (0..9).map(|i| (i, 9)).collect::<Vec<_>>(),
        "3 windows x 3 steps"
    );

    let mut first = base();
    first.num_frames = 17;
    first.latents = Some(frames(&n, lf, 0, 3));
    let z0 = run(&first, &mut Vec::new())?;
    let e = rel_l2(&frames(&z, lf, 0, 3), &z0);
    eprintln!("tiling: window 0 against a 17-frame run on the same noise: rel L2 {e:.1e}");
    assert!(
        e < 1e-5,
        "the first window is not a run of its own: rel L2 {e:.1e}"
    );

    let mut whole = base();
    whole.latents = Some(n.clone());
    let zw = run(&whole, &mut Vec::new())?;
    let e = rel_l2(&frames(&zw, lf, 0, 3), &z0);
    eprintln!("tiling: the untiled clip's first frames differ by rel L2 {e:.2}");
    assert!(
        e > 1e-3,
        "the untiled run should see all frames: rel L2 {e:.1e}"
    );
    let later = rel_l2(&frames(&z, lf, 3, 6), &frames(&zw, lf, 3, 6));
    assert!(
        later.is_finite() && later > 1e-3,
        "later windows: rel L2 {later:.1e}"
    );

    // Decoded, the tiled clip has all its frames.
    let video = pollster::block_on(pipe.generate(gpu, &tiled, &mut |_| {}, &Cancel::new()))?;
    assert_eq!((video.num_frames, video.height, video.width), (41, 64, 96));
    assert!(video.frames.iter().all(|v| v.is_finite()));
    Ok(())
}

#[test]
fn bad_tiling_is_a_clear_error() -> anyhow::Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    let fx = Fixture::open("v095")?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let pipe = LtxPipeline::load(gpu, &bundle.manifest()?, &bundle.weights()?, DType::F32)?;
    let with = |frames, overlap, strength| {
        let mut o = base();
        o.tiling = Some(Tiling {
            frames,
            overlap,
            strength,
        });
        pipe.windows(&o)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = with(12, 8, 0.5);
    assert!(e.contains("k x 8 + 1"), "{e}");
    let e = with(17, 3, 0.5);
    assert!(e.contains("multiple of 8"), "{e}");
    let e = with(17, 16, 0.5);
    assert!(e.contains("less than"), "{e}");
    let e = with(17, 8, 0.0);
    assert!(e.contains("strength"), "{e}");
    // A window as long as the clip is no tiling at all.
    assert_eq!(with(41, 8, 0.5), "");
    let mut o = base();
    o.tiling = Some(Tiling {
        frames: 17,
        overlap: 8,
        strength: 0.5,
    });
    o.video = Some(VideoInput {
        frames: framecast::pipeline::Frames::new(vec![0.5; 41 * 64 * 96 * 3], 41, 64, 96)?,
        denoise_strength: 0.6,
    });
    let e = pollster::block_on(pipe.generate(gpu, &o, &mut |_| {}, &Cancel::new()))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("video-to-video"), "{e}");
    Ok(())
}
