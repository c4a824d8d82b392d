//! `framecast storyboard`: several shots, each with its prompt, length and
//! optional picture, generated in order and joined into one video. A shot
//! without a picture continues the previous one: it is conditioned on that
//! shot's last frames, so motion and look carry over the cut. Shots that
//! start afresh (a picture, or `"continue": false`) are joined with an
//! optional cross-fade.
//!
//! The file (JSON; paths relative to it):
//!
//! ```json
//! {
//!   "aspect": "16:9", "resolution": 128, "fps": 24, "seed": 7,
//!   "steps": 10, "guidance": 5, "negative_prompt": "blurry",
//!   "crossfade": 0.25,
//!   "shots": [
//!     {"prompt": "a red ball falls and bounces", "seconds": 1.5, "image": "ball.png"},
//!     {"prompt": "the red ball slides to the right", "seconds": 1},
//!     {"prompt": "a blue star spins", "seconds": 1, "continue": false, "seed": 3}
//!   ]
//! }
//! ```
//!
//! Everything but `shots` and each shot's `prompt` is optional: the size,
//! rate and sampling default to the model's, a shot lasts one second, the
//! seeds count up from `seed`, and `crossfade` is 0.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use framecast::pipeline::size::{SizeRequest, parse_aspect, resolve};
use framecast::pipeline::{
    Cancel, Condition, DEFAULT_DECODE_TIMESTEP, Fit, Frames, GenerateOptions, Video,
};
use framecast::video::input::read_picture;
use serde::Deserialize;

use super::generate::{open_model, progress, write_clip, write_frames};

#[derive(Args, Debug)]
pub struct StoryboardArgs {
    /// The storyboard (JSON, see `framecast storyboard --help` and README)
    file: PathBuf,
    /// A bundle folder or an https URL [default: the file's `model`, else the demo model]
    #[arg(long)]
    model: Option<String>,
    /// The joined video: .mp4, .webm, .gif or a folder of PNG frames
    #[arg(long, default_value = "storyboard.mp4")]
    out: PathBuf,
    /// Also write each shot as it was generated, into this folder (shot-1.mp4, ...)
    #[arg(long)]
    shots_dir: Option<PathBuf>,
    /// Also write the joined film's raw frames: safetensors `frames`, f32 [F, H, W, 3] in [0, 1]
    #[arg(long)]
    frames_out: Option<PathBuf>,
    /// f32 activations even where the adapter has shader-f16
    #[arg(long)]
    f32: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Storyboard {
    pub model: Option<String>,
    pub width: Option<usize>,
    pub height: Option<usize>,
    pub aspect: Option<String>,
    pub resolution: Option<usize>,
    pub fps: Option<f64>,
    pub seed: Option<u64>,
    pub steps: Option<usize>,
    pub guidance: Option<f32>,
    pub negative_prompt: Option<String>,
    /// Seconds of cross-fade between shots that start afresh.
    #[serde(default)]
    pub crossfade: f64,
    pub shots: Vec<Shot>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Shot {
    pub prompt: String,
    pub seconds: Option<f64>,
    /// New frames instead of `seconds`.
    pub frames: Option<usize>,
    /// A picture (PNG/JPEG) as the shot's first frame.
    pub image: Option<PathBuf>,
    /// Continue the previous shot [default: true unless `image` is given].
    #[serde(rename = "continue")]
    pub continues: Option<bool>,
    pub seed: Option<u64>,
}

/// Frame counts k x temporal + 1 nearest to `n` (at least temporal + 1).
fn snap_frames(n: usize, temporal: usize) -> usize {
    let k = ((n.max(1) - 1) as f64 / temporal as f64).round().max(1.0) as usize;
    k * temporal + 1
}

pub fn read(path: &Path) -> Result<Storyboard> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let board: Storyboard = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a storyboard", path.display()))?;
    if board.shots.is_empty() {
        bail!("{}: the storyboard has no shots", path.display());
    }
    for (i, s) in board.shots.iter().enumerate() {
        if s.prompt.trim().is_empty() {
            bail!("{}: shot {} has an empty prompt", path.display(), i + 1);
        }
        if s.seconds.is_some() && s.frames.is_some() {
            bail!(
                "{}: shot {} gives both seconds and frames",
                path.display(),
                i + 1
            );
        }
    }
    if !(board.crossfade >= 0.0 && board.crossfade.is_finite()) {
        bail!("{}: crossfade must be 0 or more seconds", path.display());
    }
    Ok(board)
}

pub async fn run(args: StoryboardArgs) -> Result<()> {
    let board = read(&args.file)?;
    let base = args.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let model = args.model.clone().or(board.model.clone());
    let (gpu, manifest, pipe) = open_model(model.as_deref(), args.f32).await?;
    let (spatial, temporal) = (pipe.spatial_compression(), pipe.temporal_compression());
    let d = &manifest.defaults;
    let request = SizeRequest {
        width: board.width,
        height: board.height,
        aspect: board
            .aspect
            .as_deref()
            .map(parse_aspect)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        resolution: board.resolution,
        frames: Some(temporal + 1),
        seconds: None,
        fps: board.fps,
    };
    let resolved = resolve(&request, d, spatial, temporal).map_err(anyhow::Error::msg)?;
    let (w, h, fps) = (resolved.size.width, resolved.size.height, resolved.fps);
    let frame = w * h * 3;
    let default_seconds = d.frames.map_or(1.0, |f| (f - 1) as f64 / fps);
    let seed0 = board.seed.unwrap_or(0);
    let mut film: Vec<f32> = Vec::new();
    let mut film_frames = 0;
    let fade = (board.crossfade * fps).round() as usize;
    for (i, shot) in board.shots.iter().enumerate() {
        let new = shot
            .frames
            .unwrap_or_else(|| (shot.seconds.unwrap_or(default_seconds) * fps).round() as usize)
            .max(1);
        let continues = i > 0 && shot.continues.unwrap_or(shot.image.is_none());
        let mut conditions = Vec::new();
        if let Some(p) = &shot.image {
            let picture = read_picture(&base.join(p))?;
            conditions.push(Condition {
                frames: picture.fit(w, h, Fit::Crop),
                frame_index: 0,
                strength: 1.0,
            });
        }
        let carried = if continues {
            let carried = snap_frames(temporal + 1, temporal).min(film_frames);
            let carried = (carried - 1) / temporal * temporal + 1;
            let last = film[(film_frames - carried) * frame..film_frames * frame].to_vec();
            conditions.push(Condition {
                frames: Frames::new(last, carried, h, w)?,
                frame_index: 0,
                strength: 1.0,
            });
            carried
        } else {
            0
        };
        let frames = snap_frames(carried + new + usize::from(carried == 0), temporal);
        let seed = shot.seed.unwrap_or(seed0 + i as u64);
        eprintln!(
            "shot {}/{}: {:?}, {frames} frames{}, seed {seed}",
            i + 1,
            board.shots.len(),
            shot.prompt,
            if continues {
                format!(" (continuing from the last {carried})")
            } else {
                String::new()
            }
        );
        let opts = GenerateOptions {
            prompt: shot.prompt.clone(),
            negative_prompt: board.negative_prompt.clone(),
            width: w,
            height: h,
            num_frames: frames,
            frame_rate: fps,
            num_inference_steps: board.steps.or(d.steps).unwrap_or(8),
            timesteps: if board.steps.is_some() {
                None
            } else {
                d.timesteps.clone()
            },
            guidance_scale: board.guidance.or(d.guidance).unwrap_or(1.0),
            seed,
            conditions,
            decode_timestep: DEFAULT_DECODE_TIMESTEP,
            ..GenerateOptions::default()
        };
        let video = pipe
            .generate(&gpu, &opts, &mut progress(), &Cancel::new())
            .await?;
        if let Some(dir) = &args.shots_dir {
            std::fs::create_dir_all(dir)?;
            write_clip(&video, &dir.join(format!("shot-{}.mp4", i + 1)))?;
        }
        let shot_frames = &video.frames;
        if continues {
            film.extend_from_slice(&shot_frames[carried * frame..]);
            film_frames += video.num_frames - carried;
        } else {
            let f = if i == 0 {
                0
            } else {
                fade.min(film_frames - 1).min(video.num_frames - 1)
            };
            // Cross-fade the film's last f frames into the shot's first f.
            for k in 0..f {
                let a = (k + 1) as f32 / (f + 1) as f32;
                let at = (film_frames - f + k) * frame;
                for j in 0..frame {
                    film[at + j] = (1.0 - a) * film[at + j] + a * shot_frames[k * frame + j];
                }
            }
            film.extend_from_slice(&shot_frames[f * frame..]);
            film_frames += video.num_frames - f;
        }
    }
    let film = Video {
        frames: film,
        num_frames: film_frames,
        height: h,
        width: w,
        fps,
    };
    write_clip(&film, &args.out)?;
    eprintln!(
        "wrote {} ({w}x{h}, {} shots, {film_frames} frames, {:.2} s at {fps} fps)",
        args.out.display(),
        board.shots.len(),
        film_frames as f64 / fps
    );
    if let Some(path) = &args.frames_out {
        write_frames(&film, path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_snap_to_the_vae() {
        assert_eq!(snap_frames(25, 4), 25);
        assert_eq!(snap_frames(29, 8), 33);
        assert_eq!(snap_frames(1, 8), 9);
        assert_eq!(snap_frames(5 + 24, 4), 29);
    }
}
