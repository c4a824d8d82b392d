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
use framecast::pipeline::{
    Cancel, Condition, Event, Fit, Frames, GenerateOptions, LtxPipeline, Tiling, Video, VideoInput,
};
use framecast::video::input::{read_clip, read_picture};
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
    #[arg(long, default_value_t = framecast::pipeline::DEFAULT_DECODE_TIMESTEP)]
    decode_timestep: f32,
    /// Noise mixed into the latents before decoding [default: the decode timestep]
    #[arg(long)]
    decode_noise_scale: Option<f32>,
    /// The clip: .mp4 (H.264), .webm (VP9), .gif, or a folder of PNG frames (no extension)
    #[arg(long, default_value = "clip.mp4")]
    out: PathBuf,
    /// Also write the raw frames: safetensors `frames`, f32 [F, H, W, 3] in [0, 1]
    #[arg(long)]
    frames_out: Option<PathBuf>,
    /// f32 activations even where the adapter has shader-f16
    #[arg(long)]
    f32: bool,
    /// A picture (PNG or JPEG) as the first frame: image-to-video
    #[arg(long)]
    image: Option<PathBuf>,
    /// How closely the first frame holds to --image (1 pins it)
    #[arg(long, default_value_t = 1.0)]
    image_strength: f32,
    /// A picture pinned at a later frame, FRAME:FILE (repeatable), e.g. 24:last.png
    #[arg(long, value_parser = parse_keyframe)]
    keyframe: Vec<(usize, PathBuf)>,
    /// Pictures of another aspect: crop (cover the frame, centred) or pad
    #[arg(long, default_value = "crop", value_parser = Fit::parse)]
    fit: Fit,
    /// Video-to-video: re-generate this clip (.mp4, .gif or a folder of
    /// frames), keeping its aspect and length unless a size is given
    #[arg(long)]
    video: Option<PathBuf>,
    /// How much of --video is re-imagined: near 0 keeps it, 1 ignores it
    #[arg(long, default_value_t = 0.6)]
    denoise_strength: f64,
    /// Continue this clip: its last frames start the new one, and --out
    /// holds the clip followed by the continuation
    #[arg(long)]
    extend: Option<PathBuf>,
    /// Frames of --extend carried over (k x the temporal compression + 1)
    /// [default: the temporal compression + 1]
    #[arg(long)]
    extend_frames: Option<usize>,
    /// Noise on pinned frames each step, times (t/1000)^2; helps motion
    #[arg(long, default_value_t = 0.15)]
    image_cond_noise_scale: f32,
    /// Long clips: denoise windows of this many frames one after another
    /// (k x the temporal compression + 1), each continuing the last
    #[arg(long)]
    temporal_tile: Option<usize>,
    /// Frames neighbouring windows share (a multiple of the temporal
    /// compression) [default: twice the temporal compression]
    #[arg(long)]
    temporal_overlap: Option<usize>,
    /// How closely a window holds to the frames it shares with the last
    #[arg(long, default_value_t = 0.5)]
    temporal_overlap_strength: f32,
}

fn parse_keyframe(s: &str) -> Result<(usize, PathBuf), String> {
    let (frame, file) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected FRAME:FILE such as 24:last.png"))?;
    let frame = frame
        .trim()
        .parse::<usize>()
        .map_err(|e| format!("{s:?}: the frame: {e}"))?;
    Ok((frame, PathBuf::from(file)))
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

pub(crate) fn write_frames(video: &Video, path: &Path) -> Result<()> {
    let bytes: Vec<u8> = video.frames.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![video.num_frames, video.height, video.width, 3],
        &bytes,
    )?;
    safetensors::serialize_to_file([("frames", view)], None, path)?;
    Ok(())
}

pub(crate) fn write_clip(video: &Video, path: &Path) -> Result<()> {
    let clip = video.to_clip();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp4") => framecast::video::mp4::write_file(&clip, path)?,
        Some("gif") => framecast::video::gif::write_file(&clip, path)?,
        Some("webm") => framecast::video::webm::write_file(&clip, path)?,
        None => framecast::video::png::write_dir(&clip, path)?,
        Some(other) => {
            bail!("unknown output type .{other}: use .mp4, .webm, .gif or a folder name")
        }
    }
    Ok(())
}

/// The bundle (a folder or an https URL, whose shards are cached under
/// ~/.cache/framecast; the demo model when none is given) on this machine's
/// adapter.
pub(crate) async fn open_model(
    model: Option<&str>,
    force_f32: bool,
) -> Result<(Gpu, Manifest, LtxPipeline)> {
    let model = match model {
        Some(m) => m.to_string(),
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
    let act = if gpu.caps.f16 && !force_f32 {
        DType::F16
    } else {
        DType::F32
    };
    eprintln!("adapter: {} ({act:?} activations)", gpu.describe());
    let pipe = LtxPipeline::load(&gpu, &manifest, &weights, act)?;
    Ok((gpu, manifest, pipe))
}

/// Progress bars on stderr for a run's events.
pub(crate) fn progress() -> impl FnMut(Event) {
    let mut bar: Option<Bar> = None;
    move |e: Event| match e {
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
        Event::PromptTruncated {
            negative,
            tokens,
            kept,
        } => eprintln!(
            "note: {} (--max-sequence-length)",
            Event::truncation_message(negative, tokens, kept)
        ),
    }
}

pub async fn run(args: GenerateArgs) -> Result<()> {
    let (gpu, manifest, pipe) = open_model(args.model.as_deref(), args.f32).await?;
    let (spatial, temporal) = (pipe.spatial_compression(), pipe.temporal_compression());

    let native = &manifest.defaults;
    // A clip to re-generate or continue sets the aspect, length and rate
    // unless they are given.
    let source = match (&args.video, &args.extend) {
        (Some(_), Some(_)) => bail!("give --video or --extend, not both"),
        (Some(p), None) | (None, Some(p)) => Some(read_clip(p)?),
        (None, None) => None,
    };
    let mut request = SizeRequest {
        width: args.width,
        height: args.height,
        aspect: args.aspect,
        resolution: args.resolution,
        frames: args.frames,
        seconds: args.seconds,
        fps: args.fps,
    };
    if let Some((clip, clip_fps)) = &source {
        if request.width.is_none() && request.height.is_none() && request.aspect.is_none() {
            request.aspect = Some((clip.width, clip.height));
        }
        if args.video.is_some() && request.frames.is_none() && request.seconds.is_none() {
            request.frames = Some(clip.frames);
        }
        request.fps = request.fps.or(*clip_fps);
    }
    let mut resolved = resolve(&request, native, spatial, temporal).map_err(anyhow::Error::msg)?;
    if let (Some((clip, _)), Some(_)) = (&source, &args.video) {
        // Video-to-video makes no more frames than the clip has.
        while resolved.size.frames > clip.frames && resolved.size.frames > temporal {
            resolved.size.frames -= temporal;
        }
    }
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
    let fit = |f: &Frames| f.fit(size.width, size.height, args.fit);
    let mut conditions = Vec::new();
    if let Some(path) = &args.image {
        conditions.push(Condition {
            frames: fit(&read_picture(path)?),
            frame_index: 0,
            strength: args.image_strength,
        });
    }
    let mut carried = 0;
    let mut video = None;
    if let Some((clip, _)) = &source {
        let clip = fit(clip);
        if args.extend.is_some() {
            let want = args.extend_frames.unwrap_or(temporal + 1).min(clip.frames);
            carried = (want.max(1) - 1) / temporal * temporal + 1;
            let last = Frames::new(
                clip.data[(clip.frames - carried) * size.width * size.height * 3..].to_vec(),
                carried,
                size.height,
                size.width,
            )?;
            conditions.push(Condition {
                frames: last,
                frame_index: 0,
                strength: 1.0,
            });
            eprintln!("extending: the last {carried} frames of the clip start the new one");
        } else {
            video = Some(VideoInput {
                frames: clip,
                denoise_strength: args.denoise_strength,
            });
        }
    }
    for (frame, path) in &args.keyframe {
        conditions.push(Condition {
            frames: fit(&read_picture(path)?),
            frame_index: *frame,
            strength: 1.0,
        });
    }
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
        conditions,
        video,
        image_cond_noise_scale: args.image_cond_noise_scale,
        tiling: args.temporal_tile.map(|frames| Tiling {
            frames,
            overlap: args
                .temporal_overlap
                .unwrap_or(2 * pipe.temporal_compression()),
            strength: args.temporal_overlap_strength,
        }),
    };
    eprintln!(
        "generating {}x{}, {} frames at {} fps ({:.2} s), seed {seed}",
        size.width,
        size.height,
        size.frames,
        fps,
        size.frames as f64 / fps
    );
    let windows = pipe.windows(&opts)?;
    if let (Some(t), true) = (&opts.tiling, windows.len() > 1) {
        eprintln!(
            "denoising in {} windows of {} frames, neighbours sharing at least {}",
            windows.len(),
            t.frames,
            t.overlap
        );
    }
    let mut on_event = progress();
    let mut video = pipe
        .generate(&gpu, &opts, &mut on_event, &Cancel::new())
        .await?;
    if let (Some((clip, _)), true) = (&source, args.extend.is_some()) {
        // The clip, then what follows its carried frames.
        let clip = fit(clip);
        let frame = size.width * size.height * 3;
        let mut frames = clip.data;
        frames.extend_from_slice(&video.frames[carried * frame..]);
        video.num_frames = clip.frames + video.num_frames - carried;
        video.frames = frames;
    }
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
