//! `framecast generate`: a clip from a prompt, natively.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use framecast::bundle::{BundleLoader, Manifest, ShardSource};
use framecast::gpu::DType;
use framecast::models::Weights;
use framecast::pipeline::size::{SizeRequest, parse_aspect, resolve};
use framecast::pipeline::{Cancel, Event, GenerateOptions, LtxPipeline, Video};
use framecast::{AdapterChoice, Gpu};

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A bundle folder or an https URL of one [default: the embedded demo model]
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    prompt: String,
    /// What to steer away from (with --guidance above 1)
    #[arg(long)]
    negative_prompt: Option<String>,
    #[arg(long)]
    width: Option<usize>,
    #[arg(long)]
    height: Option<usize>,
    /// Aspect ratio instead of --width/--height: 16:9, 9:16, 1:1, 4:3, 3:4
    #[arg(long, value_parser = parse_aspect)]
    aspect: Option<(usize, usize)>,
    /// Pixels on the short side with --aspect [default: the model's, else 320]
    #[arg(long)]
    resolution: Option<usize>,
    /// Frames (k x the VAE's temporal compression + 1; others are snapped)
    /// [default: the model's, else 2 seconds]
    #[arg(long)]
    frames: Option<usize>,
    /// Duration instead of --frames
    #[arg(long)]
    seconds: Option<f64>,
    /// Frames per second [default: the model's, else 24]
    #[arg(long)]
    fps: Option<f64>,
    /// Denoising steps of the default schedule [default: the model's, else 8]
    #[arg(long)]
    steps: Option<usize>,
    /// An explicit schedule on diffusers' 0-1000 scale, e.g. 1000,993,987,981,975,909,725,421
    #[arg(long, value_delimiter = ',')]
    timesteps: Option<Vec<f32>>,
    /// Classifier-free guidance scale; 1 runs no negative branch
    /// [default: the model's, else 1]
    #[arg(long)]
    guidance: Option<f32>,
    /// Same seed, same clip [default: a random one, printed]
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 256)]
    max_sequence_length: usize,
    /// Initial noise: a safetensors file with `latents` [1, C, F', H', W']
    #[arg(long)]
    latents: Option<PathBuf>,
    #[arg(long, default_value_t = 0.05)]
    decode_timestep: f32,
    /// Noise mixed into the latents before decoding [default: the decode timestep]
    #[arg(long)]
    decode_noise_scale: Option<f32>,
    /// The clip: .mp4 (H.264), .gif, or a folder of PNG frames (no extension)
    #[arg(long, default_value = "clip.mp4")]
    out: PathBuf,
    /// Also write the raw frames: safetensors `frames`, f32 [F, H, W, 3] in [0, 1]
    #[arg(long)]
    frames_out: Option<PathBuf>,
    /// f32 activations even where the adapter has shader-f16
    #[arg(long)]
    f32: bool,
}

/// One line of progress on stderr, redrawn in place.
struct Bar {
    label: String,
    started: Instant,
}

impl Bar {
    fn new(label: &str) -> Bar {
        Bar {
            label: label.to_string(),
            started: Instant::now(),
        }
    }

    fn show(&self, done: f64, total: f64, extra: &str) {
        let frac = if total > 0.0 {
            (done / total).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let filled = (frac * 30.0).round() as usize;
        eprint!(
            "\r{:<14} [{}{}] {:>3.0}% {extra} ({:.1} s)   ",
            self.label,
            "#".repeat(filled),
            ".".repeat(30 - filled),
            frac * 100.0,
            self.started.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        eprintln!();
    }
}

async fn load<S: ShardSource>(source: S) -> Result<(Manifest, Weights)> {
    let mut loader = BundleLoader::open(source).await?;
    let manifest = (**loader.manifest()).clone();
    let total: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    let bar = Bar::new("loading model");
    let mut done = std::collections::BTreeMap::new();
    let tensors = loader
        .load_all(&mut |p| {
            done.insert(p.component.clone(), p.done);
            let sum: u64 = done.values().sum();
            bar.show(
                sum as f64,
                total as f64,
                &format!("{} MB, {}", sum >> 20, p.component),
            );
        })
        .await?;
    bar.show(1.0, 1.0, &format!("{} MB", total >> 20));
    bar.finish();
    Ok((manifest, Weights::from_tensors(tensors)))
}

fn default_model() -> Result<String> {
    match super::demo_model_dir() {
        Some(dir) => Ok(dir.display().to_string()),
        None => bail!(
            "no --model given and no demo model found (models/demo beside the binary or in the \
             repository); pass --model <bundle dir or URL>"
        ),
    }
}

fn read_latents(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let t = st
        .tensor("latents")
        .with_context(|| format!("{} has no tensor `latents`", path.display()))?;
    if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 5 || t.shape()[0] != 1 {
        bail!(
            "{}: `latents` must be f32 [1, C, F', H', W'], got {:?} {:?}",
            path.display(),
            t.dtype(),
            t.shape()
        );
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn write_frames(video: &Video, path: &Path) -> Result<()> {
    let bytes: Vec<u8> = video.frames.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![video.num_frames, video.height, video.width, 3],
        &bytes,
    )?;
    safetensors::serialize_to_file([("frames", view)], None, path)?;
    Ok(())
}

fn write_clip(video: &Video, path: &Path) -> Result<()> {
    let clip = video.to_clip();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp4") => framecast::video::mp4::write_file(&clip, path)?,
        Some("gif") => framecast::video::gif::write_file(&clip, path)?,
        Some("webm") => bail!(
            "WebM output is not available natively yet (no well-kept VP9 encoder crate); \
             use .mp4, .gif or a folder name for PNG frames"
        ),
        None => framecast::video::png::write_dir(&clip, path)?,
        Some(other) => bail!("unknown output type .{other}: use .mp4, .gif or a folder name"),
    }
    Ok(())
}

pub async fn run(args: GenerateArgs) -> Result<()> {
    let model = match &args.model {
        Some(m) => m.clone(),
        None => default_model()?,
    };
    let (manifest, weights) = if model.starts_with("http://") || model.starts_with("https://") {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir)
            .join("framecast/shards");
        load(framecast::bundle::HttpSource::new(&model).with_cache(cache)).await?
    } else {
        load(framecast::bundle::FsSource::new(&model)).await?
    };
    let gpu = Gpu::new(&AdapterChoice::from_env()).await?;
    let act = if gpu.caps.f16 && !args.f32 {
        DType::F16
    } else {
        DType::F32
    };
    eprintln!("adapter: {} ({act:?} activations)", gpu.describe());
    let pipe = LtxPipeline::load(&gpu, &manifest, &weights, act)?;
    drop(weights);
    let (spatial, temporal) = (pipe.spatial_compression(), pipe.temporal_compression());

    let native = &manifest.defaults;
    let request = SizeRequest {
        width: args.width,
        height: args.height,
        aspect: args.aspect,
        resolution: args.resolution,
        frames: args.frames,
        seconds: args.seconds,
        fps: args.fps,
    };
    let resolved = resolve(&request, native, spatial, temporal).map_err(anyhow::Error::msg)?;
    let (size, fps) = (resolved.size, resolved.fps);
    if resolved.snapped() {
        let asked = resolved.asked;
        eprintln!(
            "size: {}x{} with {} frames is not valid for this model; using {}x{} with {} frames",
            asked.width, asked.height, asked.frames, size.width, size.height, size.frames
        );
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            % 1_000_000_007
    });
    let opts = GenerateOptions {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        width: size.width,
        height: size.height,
        num_frames: size.frames,
        frame_rate: fps,
        num_inference_steps: args.steps.or(native.steps).unwrap_or(8),
        timesteps: match (&args.timesteps, args.steps) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => None,
            (None, None) => native.timesteps.clone(),
        },
        guidance_scale: args.guidance.or(native.guidance).unwrap_or(1.0),
        guidance_rescale: 0.0,
        seed,
        max_sequence_length: args.max_sequence_length,
        latents: args.latents.as_deref().map(read_latents).transpose()?,
        decode_timestep: args.decode_timestep,
        decode_noise_scale: args.decode_noise_scale,
        preview: false,
    };
    eprintln!(
        "generating {}x{}, {} frames at {} fps ({:.2} s), seed {seed}",
        size.width,
        size.height,
        size.frames,
        fps,
        size.frames as f64 / fps
    );
    let mut bar: Option<Bar> = None;
    let mut on_event = |e: Event| match e {
        Event::StageStarted(stage) => {
            let b = Bar::new(stage.name());
            b.show(0.0, 1.0, "");
            bar = Some(b);
        }
        Event::Step {
            index,
            total,
            timestep,
        } => {
            if let Some(b) = &bar {
                b.show(
                    (index + 1) as f64,
                    total as f64,
                    &format!("step {}/{total}, t {timestep:.0}", index + 1),
                );
            }
        }
        Event::StageFinished { .. } => {
            if let Some(b) = bar.take() {
                b.show(1.0, 1.0, "");
                b.finish();
            }
        }
        Event::Preview { .. } => {}
    };
    let video = pipe
        .generate(&gpu, &opts, &mut on_event, &Cancel::new())
        .await?;
    write_clip(&video, &args.out)?;
    eprintln!(
        "wrote {} ({}x{}, {} frames, {} fps); peak GPU memory {} MiB",
        args.out.display(),
        video.width,
        video.height,
        video.num_frames,
        video.fps,
        gpu.memory().peak.div_ceil(1 << 20)
    );
    if let Some(path) = &args.frames_out {
        write_frames(&video, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
