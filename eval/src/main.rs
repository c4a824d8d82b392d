//! `framecast-eval`: generates a clip for each held-out prompt of the shapes
//! world with the runtime and measures how well it follows the prompt.
//! With `--image-to-video`, the image-to-video check instead: a picture of
//! a red circle near the top as frame 0 and "the red circle falls and
//! bounces"; each seed's clip must start from the picture, and the circle
//! must stay a red object, found in every frame, that moves down.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use framecast::bundle::{BundleLoader, FsSource};
use framecast::gpu::DType;
use framecast::models::Weights;
use framecast::pipeline::{
    Cancel, Condition, DEFAULT_DECODE_TIMESTEP, Frames, GenerateOptions, LtxPipeline,
};
use framecast::{AdapterChoice, Gpu};
use framecast_eval::raster::{Object, render};
use framecast_eval::{COLOURS, Clip, analyse, motion_matches, shape_templates, stable};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(about = "Prompt adherence of a shapes-world model, measured on clips it generates")]
struct Args {
    /// Bundle folder [default: the repository's models/demo]
    #[arg(long)]
    model: Option<PathBuf>,
    /// JSON list of {prompt, colour, shape, motion} [default: tools/shapes/eval_prompts.json]
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Only the first N prompts
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the first prompt; prompt i uses seed + i
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// [default: the model's]
    #[arg(long)]
    steps: Option<usize>,
    /// [default: the model's]
    #[arg(long)]
    guidance: Option<f32>,
    /// Write the report (report.json) and each clip as a GIF here
    #[arg(long)]
    out_dir: Option<PathBuf>,
    #[arg(long)]
    f32: bool,
    /// The image-to-video check instead of the prompts (seeds: --limit, default 16)
    #[arg(long)]
    image_to_video: bool,
}

/// First-frame fidelity an image-to-video clip must reach, in dB.
const FIRST_FRAME_DB: f64 = 25.0;

fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let se: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    10.0 * (a.len() as f64 / se.max(1e-12)).log10()
}

#[derive(Deserialize)]
struct Prompt {
    prompt: String,
    colour: String,
    shape: String,
    motion: String,
}

#[derive(Serialize)]
struct Row {
    prompt: String,
    seed: u64,
    colour: Option<&'static str>,
    shape: Option<&'static str>,
    colour_ok: bool,
    shape_ok: bool,
    motion_ok: bool,
    stable: bool,
    dx: f32,
    dy: f32,
    area_ratio: f32,
    flicker: f32,
}

fn percent(rows: &[Row], f: impl Fn(&Row) -> bool) -> f64 {
    100.0 * rows.iter().filter(|r| f(r)).count() as f64 / rows.len().max(1) as f64
}

fn main() -> Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| root.join("models/demo"));
    let prompts_path = args
        .prompts
        .clone()
        .unwrap_or_else(|| root.join("tools/shapes/eval_prompts.json"));
    let mut prompts: Vec<Prompt> = serde_json::from_slice(
        &std::fs::read(&prompts_path)
            .with_context(|| format!("reading {}", prompts_path.display()))?,
    )
    .with_context(|| {
        format!(
            "{}: expected [{{prompt, colour, shape, motion}}]",
            prompts_path.display()
        )
    })?;
    if let Some(n) = args.limit {
        prompts.truncate(n);
    }
    if prompts.is_empty() {
        bail!("no prompts in {}", prompts_path.display());
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)?;
    }

    pollster::block_on(async {
        let mut loader = BundleLoader::open(FsSource::new(&model))
            .await
            .with_context(|| format!("opening the bundle {}", model.display()))?;
        let manifest = (**loader.manifest()).clone();
        let weights = Weights::from_tensors(loader.load_all(&mut |_| {}).await?);
        let gpu = Gpu::new(&AdapterChoice::from_env()).await?;
        let act = if gpu.caps.f16 && !args.f32 {
            DType::F16
        } else {
            DType::F32
        };
        let pipe = LtxPipeline::load(&gpu, &manifest, &weights, act)?;
        drop(weights);
        let d = &manifest.defaults;
        let (width, height) = (d.width.unwrap_or(256), d.height.unwrap_or(256));
        let steps = args.steps.or(d.steps).unwrap_or(8);
        let guidance = args.guidance.or(d.guidance).unwrap_or(1.0);
        eprintln!(
            "{}, {width}x{height}, {} frames, {steps} steps, guidance {guidance}, on {} ({act:?})",
            if args.image_to_video {
                format!("image to video, {} seeds", args.limit.unwrap_or(16))
            } else {
                format!("{} prompts", prompts.len())
            },
            d.frames.unwrap_or(25),
            gpu.describe()
        );
        // The model's own clip: its size, length, rate and sampling.
        let options = |prompt: &str, seed: u64| GenerateOptions {
            prompt: prompt.into(),
            width,
            height,
            num_frames: d.frames.unwrap_or(25),
            frame_rate: d.fps.unwrap_or(24.0),
            num_inference_steps: steps,
            timesteps: if args.steps.is_some() {
                None
            } else {
                d.timesteps.clone()
            },
            guidance_scale: guidance,
            seed,
            decode_timestep: DEFAULT_DECODE_TIMESTEP,
            ..GenerateOptions::default()
        };
        let templates = shape_templates();
        if args.image_to_video {
            let seeds = args.limit.unwrap_or(16);
            let red = COLOURS[0].1.map(|c| c as f32 / 255.0);
            let backgrounds = [
                [0.05, 0.05, 0.06],
                [0.93, 0.93, 0.92],
                [0.07, 0.09, 0.27],
                [0.47, 0.47, 0.49],
            ];
            let prompt = "the red circle falls and bounces";
            let (mut starts, mut falls) = (0, 0);
            for i in 0..seeds {
                let seed = args.seed + i as u64;
                let side = width.min(height) as f32;
                let circle = Object::new(
                    "circle",
                    red,
                    width as f32 * 0.5,
                    height as f32 * 0.22,
                    side * 0.12,
                    0.0,
                );
                let picture = render(width, height, &[circle], backgrounds[i % backgrounds.len()]);
                let opts = GenerateOptions {
                    conditions: vec![Condition {
                        frames: Frames::new(picture.clone(), 1, height, width)?,
                        frame_index: 0,
                        strength: 1.0,
                    }],
                    ..options(prompt, seed)
                };
                let video = pipe
                    .generate(&gpu, &opts, &mut |_| {}, &Cancel::new())
                    .await?;
                let clip = Clip {
                    frames: &video.frames,
                    num_frames: video.num_frames,
                    height,
                    width,
                };
                let a = analyse(&clip, &templates);
                let db = psnr(&video.frames[..width * height * 3], &picture);
                let start_ok = db >= FIRST_FRAME_DB;
                // The circle itself must move: still red and found in every
                // frame without flicker (a blob that dissolves into others
                // can look like a fall to the centroid alone).
                let kept = a.colour == Some("red") && stable(&a);
                let fall_ok = kept && (a.dy > 0.1 || motion_matches("bounce", &a));
                starts += usize::from(start_ok);
                falls += usize::from(fall_ok);
                println!(
                    "seed {seed:>3}: frame 0 {db:.1} dB {} · a red circle throughout {} · moves down {} (dy {:+.2}, largest drop {:.2})",
                    if start_ok { "ok" } else { "NO" },
                    if kept { "ok" } else { "NO" },
                    if fall_ok { "ok" } else { "NO" },
                    a.dy,
                    a.max_drop
                );
                if let Some(dir) = &args.out_dir {
                    framecast::video::gif::write_file(
                        &video.to_clip(),
                        &dir.join(format!("i2v-{i:03}.gif")),
                    )?;
                }
            }
            println!(
                "image to video ({prompt:?}): frame 0 at {FIRST_FRAME_DB} dB or more in {starts} of {seeds}; the red circle kept and moving down in {falls} of {seeds}"
            );
            return Ok(());
        }
        let mut rows = Vec::new();
        let started = Instant::now();
        for (i, p) in prompts.iter().enumerate() {
            let seed = args.seed + i as u64;
            let opts = options(&p.prompt, seed);
            let video = pipe
                .generate(&gpu, &opts, &mut |_| {}, &Cancel::new())
                .await?;
            let a = analyse(
                &Clip {
                    frames: &video.frames,
                    num_frames: video.num_frames,
                    height: video.height,
                    width: video.width,
                },
                &templates,
            );
            let row = Row {
                prompt: p.prompt.clone(),
                seed,
                colour: a.colour,
                shape: a.shape,
                colour_ok: a.colour == Some(p.colour.as_str()),
                shape_ok: a.shape == Some(p.shape.as_str()),
                motion_ok: motion_matches(&p.motion, &a),
                stable: stable(&a),
                dx: a.dx,
                dy: a.dy,
                area_ratio: a.area_ratio,
                flicker: a.flicker,
            };
            println!(
                "{:>3} {:<48} colour {:<6} {} shape {:<8} {} motion {} (dx {:+.2} dy {:+.2} area x{:.2}) stable {}",
                i,
                p.prompt,
                a.colour.unwrap_or("-"),
                if row.colour_ok { "ok" } else { "NO" },
                a.shape.unwrap_or("-"),
                if row.shape_ok { "ok" } else { "NO" },
                if row.motion_ok { "ok" } else { "NO" },
                a.dx,
                a.dy,
                a.area_ratio,
                if row.stable { "ok" } else { "NO" },
            );
            if let Some(dir) = &args.out_dir {
                framecast::video::gif::write_file(
                    &video.to_clip(),
                    &dir.join(format!("{i:03}.gif")),
                )?;
            }
            rows.push(row);
        }
        let summary = serde_json::json!({
            "prompts": rows.len(),
            "colour_accuracy": percent(&rows, |r| r.colour_ok),
            "shape_accuracy": percent(&rows, |r| r.shape_ok),
            "motion_accuracy": percent(&rows, |r| r.motion_ok),
            "stable": percent(&rows, |r| r.stable),
            "seconds": started.elapsed().as_secs_f64(),
            "size": [width, height],
            "steps": steps,
            "guidance": guidance,
        });
        println!(
            "colour {:.1}%  shape {:.1}%  motion {:.1}%  stable {:.1}%  ({} prompts, {:.0} s)",
            percent(&rows, |r| r.colour_ok),
            percent(&rows, |r| r.shape_ok),
            percent(&rows, |r| r.motion_ok),
            percent(&rows, |r| r.stable),
            rows.len(),
            started.elapsed().as_secs_f64()
        );
        if let Some(dir) = &args.out_dir {
            std::fs::write(
                dir.join("report.json"),
                serde_json::to_string_pretty(
                    &serde_json::json!({"summary": summary, "clips": rows}),
                )?,
            )?;
        }
        Ok(())
    })
}
