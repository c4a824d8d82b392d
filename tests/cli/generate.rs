//! `framecast generate` end to end: the native binary on a converted tiny
//! fixture writes an MP4 that ffprobe accepts with the requested frame count,
//! size and rate, whose decoded frames equal `--frames-out` up to codec loss.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use framecast::bundle::WeightDType;
use framecast_tests::{Fixture, gpu, psnr};

/// The `framecast` binary that `cargo test` builds beside this test.
fn binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("test binary has no target dir")?;
    let bin = dir.join(format!("framecast{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p framecast` (the workspace's `cargo test` does)",
        bin.display()
    );
    Ok(bin)
}

/// ffprobe and ffmpeg, or None when they are absent and not required.
fn tools() -> Option<()> {
    let ok = Command::new("ffprobe").arg("-version").output().is_ok();
    if !ok {
        let required = std::env::var("FRAMECAST_REQUIRE_TOOLS").as_deref() == Ok("1");
        assert!(
            !required,
            "ffprobe is missing and FRAMECAST_REQUIRE_TOOLS=1"
        );
        eprintln!("skipped: ffprobe/ffmpeg not installed (apt-get install ffmpeg)");
        return None;
    }
    Some(())
}

fn write_latents(fx: &Fixture, path: &Path) -> Result<()> {
    let (shape, values) = fx.tensor("latents");
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), &bytes)?;
    safetensors::serialize_to_file([("latents", view)], None, path)?;
    Ok(())
}

fn read_frames(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let t = st.tensor("frames")?;
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}

fn probe(path: &Path) -> Result<serde_json::Value> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()?;
    if !out.status.success() {
        bail!(
            "ffprobe rejected {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The decoded frames as `pix_fmt` (rgb24, or gray: the luma plane).
fn decode(path: &Path, pix_fmt: &str) -> Result<Vec<f32>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", pix_fmt, "-"])
        .output()?;
    ensure!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout.iter().map(|&b| b as f32 / 255.0).collect())
}

/// BT.601 luma of RGB triples.
fn luma_of(rgb: &[f32]) -> Vec<f32> {
    rgb.chunks_exact(3)
        .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
        .collect()
}

#[test]
fn generate_writes_a_playable_mp4_matching_its_frames() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let fx = Fixture::open("v090")?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let tmp = tempfile::tempdir()?;
    let latents = tmp.path().join("latents.safetensors");
    write_latents(&fx, &latents)?;
    let clip = tmp.path().join("clip.mp4");
    let frames_out = tmp.path().join("frames.safetensors");
    let c = &fx.call;
    let out = Command::new(binary()?)
        .arg("generate")
        .arg("--model")
        .arg(&bundle.dir)
        .args(["--prompt", c["prompt"].as_str().unwrap()])
        .args([
            "--width", "64", "--height", "96", "--frames", "9", "--fps", "25",
        ])
        .args([
            "--timesteps",
            "1000,900,500",
            "--guidance",
            "1",
            "--seed",
            "99",
        ])
        .args([
            "--max-sequence-length",
            "32",
            "--decode-timestep",
            "0",
            "--decode-noise-scale",
            "0",
        ])
        .arg("--latents")
        .arg(&latents)
        .arg("--out")
        .arg(&clip)
        .arg("--frames-out")
        .arg(&frames_out)
        .arg("--f32")
        .output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "framecast generate failed:\n{log}");
    let info = probe(&clip)?;
    let s = &info["streams"][0];
    eprintln!(
        "ffprobe: {} {}x{} {} frames at {}",
        s["codec_name"], s["width"], s["height"], s["nb_read_frames"], s["r_frame_rate"]
    );
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(s["pix_fmt"], "yuv420p");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(64), Some(96))
    );
    assert_eq!(s["nb_read_frames"].as_str(), Some("9"));
    assert_eq!(s["r_frame_rate"].as_str(), Some("25/1"));

    let (shape, frames) = read_frames(&frames_out)?;
    assert_eq!(shape, [9, 96, 64, 3]);
    let vs_diffusers = psnr(&frames, fx.values("frames"));
    let (rgb, gray) = (decode(&clip, "rgb24")?, decode(&clip, "gray")?);
    let (vs_codec, luma) = (psnr(&rgb, &frames), psnr(&gray, &luma_of(&frames)));
    eprintln!(
        "--frames-out vs diffusers: {vs_diffusers:.1} dB; MP4 vs --frames-out: luma \
         {luma:.1} dB, RGB {vs_codec:.1} dB"
    );
    assert!(
        vs_diffusers >= 45.0,
        "frames-out vs diffusers {vs_diffusers:.1} dB"
    );
    // yuv420p keeps luma at full resolution and halves chroma both ways; a
    // random-weight clip is close to per-pixel noise, whose chroma the
    // subsampling cannot keep, so the codec is judged on luma.
    assert!(luma >= 25.0, "MP4 luma vs frames-out {luma:.1} dB");

    // The other outputs: a GIF and a folder of PNG frames.
    for (name, check) in [("clip.gif", "gif"), ("frames", "png")] {
        let path = tmp.path().join(name);
        let out = Command::new(binary()?)
            .arg("generate")
            .arg("--model")
            .arg(&bundle.dir)
            .args([
                "--prompt",
                "a red ball",
                "--aspect",
                "1:1",
                "--resolution",
                "64",
            ])
            .args([
                "--frames",
                "8",
                "--steps",
                "2",
                "--seed",
                "5",
                "--max-sequence-length",
                "32",
            ])
            .arg("--out")
            .arg(&path)
            .output()?;
        let log = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "{name}: {log}");
        // 8 frames is not k * 8 + 1: the CLI says what it used instead.
        assert!(log.contains("using 64x64 with 9 frames"), "{log}");
        let target = if check == "png" {
            path.join("frame_0008.png")
        } else {
            path.clone()
        };
        let info = probe(&target)?;
        assert_eq!(info["streams"][0]["codec_name"], check, "{name}");
        if check == "gif" {
            assert_eq!(info["streams"][0]["nb_read_frames"].as_str(), Some("9"));
        }
    }
    Ok(())
}

/// README's main command: the embedded demo model, no --model, no size:
/// an MP4 that ffprobe accepts, at the model's native size and length.
#[test]
fn readme_main_command_writes_the_demo_models_clip() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let clip = tmp.path().join("clip.mp4");
    let out = Command::new(binary()?)
        .args([
            "generate",
            "--prompt",
            "a green triangle moves to the right",
            "--seed",
            "7",
        ])
        .arg("--out")
        .arg(&clip)
        .output()?;
    ensure!(
        out.status.success(),
        "framecast generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = probe(&clip)?;
    let s = &info["streams"][0];
    assert_eq!(s["codec_name"], "h264");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(128), Some(128))
    );
    assert_eq!(s["nb_read_frames"].as_str(), Some("25"));
    assert_eq!(s["r_frame_rate"].as_str(), Some("24/1"));
    Ok(())
}

/// A prompt longer than the model reads still makes a clip, and the CLI
/// says how much of it was ignored and what to do.
#[test]
fn a_prompt_too_long_is_reported() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let fx = Fixture::open("v095")?;
    let bundle = fx.bundle(WeightDType::F32)?;
    let tmp = tempfile::tempdir()?;
    let log = run_ok(
        Command::new(binary()?)
            .arg("generate")
            .arg("--model")
            .arg(&bundle.dir)
            .args(["--prompt", "a red ball bounces on a blue floor"])
            .args([
                "--max-sequence-length",
                "4",
                "--steps",
                "1",
                "--frames",
                "9",
            ])
            .args(["--width", "96", "--height", "64"])
            .arg("--out")
            .arg(tmp.path().join("clip.gif")),
    )?;
    assert!(
        log.contains("tokens and the model reads only the first 4")
            && log.contains("--max-sequence-length"),
        "{log}"
    );
    let log = run_ok(
        Command::new(binary()?)
            .arg("generate")
            .arg("--model")
            .arg(&bundle.dir)
            .args(["--prompt", "a red ball", "--steps", "1", "--frames", "9"])
            .args(["--width", "96", "--height", "64"])
            .arg("--out")
            .arg(tmp.path().join("short.gif")),
    )?;
    assert!(!log.contains("reads only the first"), "{log}");
    Ok(())
}

/// `.webm`: VP9 in WebM, from the demo model (smooth frames, so the codec
/// is judged on RGB): ffprobe's codec, size, frame count and duration, and
/// the decoded frames against `--frames-out`.
#[test]
fn webm_output_is_vp9_matching_its_frames() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let clip = tmp.path().join("clip.webm");
    let frames = tmp.path().join("frames.safetensors");
    run_ok(
        Command::new(binary()?)
            .args(["generate", "--prompt", "a blue square slides to the left"])
            .args(["--seed", "3", "--steps", "4"])
            .arg("--out")
            .arg(&clip)
            .arg("--frames-out")
            .arg(&frames),
    )?;
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_streams",
            "-show_format",
        ])
        .args(["-of", "json"])
        .arg(&clip)
        .output()?;
    ensure!(out.status.success(), "ffprobe rejected the WebM");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let s = &info["streams"][0];
    assert_eq!(s["codec_name"], "vp9");
    assert_eq!(s["pix_fmt"], "yuv420p");
    assert_eq!(info["format"]["format_name"], "matroska,webm");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(128), Some(128))
    );
    assert_eq!(s["nb_read_frames"].as_str(), Some("25"));
    let duration: f64 = info["format"]["duration"].as_str().unwrap_or("0").parse()?;
    assert!((duration - 25.0 / 24.0).abs() < 0.01, "duration {duration}");
    let (_, want) = read_frames(&frames)?;
    let got = decode(&clip, "rgb24")?;
    assert_eq!(got.len(), want.len());
    let db = psnr(&got, &want);
    eprintln!("WebM (VP9) vs --frames-out: RGB {db:.1} dB");
    assert!(db >= 30.0, "WebM vs frames-out {db:.1} dB");
    Ok(())
}

/// What README's main command shows: a green object moving right, measured
/// by the evaluation's analysis of the raw frames. (Its shape is not
/// checked: the demo model does not draw a clean triangle yet, see
/// BENCHMARKS.md.)
#[test]
fn readme_main_command_makes_a_green_object_move_right() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let clip = tmp.path().join("clip.mp4");
    let frames_out = tmp.path().join("frames.safetensors");
    let out = Command::new(binary()?)
        .args([
            "generate",
            "--prompt",
            "a green triangle moves to the right",
            "--seed",
            "7",
        ])
        .arg("--out")
        .arg(&clip)
        .arg("--frames-out")
        .arg(&frames_out)
        .output()?;
    ensure!(
        out.status.success(),
        "framecast generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = probe(&clip)?;
    let stream = &info["streams"][0];
    let (shape, frames) = read_frames(&frames_out)?;
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(stream["width"].as_u64(), Some(shape[2] as u64));
    assert_eq!(
        stream["nb_read_frames"].as_str(),
        Some(shape[0].to_string().as_str())
    );
    let a = framecast_eval::analyse(
        &framecast_eval::Clip {
            frames: &frames,
            num_frames: shape[0],
            height: shape[1],
            width: shape[2],
        },
        &framecast_eval::shape_templates(),
    );
    eprintln!(
        "demo clip {}x{}x{}: colour {:?}, shape {:?}, dx {:+.2}, dy {:+.2}",
        shape[2], shape[1], shape[0], a.colour, a.shape, a.dx, a.dy
    );
    assert_eq!(a.colour, Some("green"), "{a:?}");
    assert!(
        framecast_eval::motion_matches("right", &a),
        "not moving right: {a:?}"
    );
    Ok(())
}

/// A red disc on a dark grey background, as the shapes world draws one:
/// 8-bit RGB `[H, W, 3]`.
fn red_disc(w: usize, h: usize, cx: f32, cy: f32, r: f32) -> Vec<u8> {
    let mut px = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            px.extend_from_slice(if d <= r {
                &[225, 35, 35]
            } else {
                &[50, 50, 55]
            });
        }
    }
    px
}

fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(out.status.success(), "framecast failed: {stderr}");
    Ok(stderr)
}

/// Image-to-video with the demo model: the first frame is the picture (up
/// to the VAE's reconstruction), far closer to it than an unconditioned
/// clip's first frame. The conditioned latent frame is held exactly (the
/// parity test `condition` checks that against diffusers); what decodes
/// from it also carries some of the later frames, since the demo VAE's
/// decoder is not causal, hence a bar of 20 dB and not the VAE's 26.7.
#[test]
fn image_to_video_starts_from_the_picture() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let png = tmp.path().join("disc.png");
    // 160x120: another aspect than the model's 128x128, centre-cropped.
    let (w, h) = (160, 120);
    let picture = red_disc(w, h, 80.0, 40.0, 18.0);
    image::save_buffer(&png, &picture, w as u32, h as u32, image::ColorType::Rgb8)?;
    let mut first_frames = Vec::new();
    for with_image in [true, false] {
        let frames_out = tmp.path().join(format!("frames-{with_image}.safetensors"));
        let mut cmd = Command::new(binary()?);
        cmd.args([
            "generate",
            "--prompt",
            "the red circle falls and bounces",
            "--seed",
            "3",
        ])
        .arg("--out")
        .arg(tmp.path().join("clip.mp4"))
        .arg("--frames-out")
        .arg(&frames_out);
        if with_image {
            cmd.arg("--image").arg(&png);
        }
        run_ok(&mut cmd)?;
        let (shape, frames) = read_frames(&frames_out)?;
        assert_eq!(&shape[1..], &[128, 128, 3]);
        first_frames.push(frames[..128 * 128 * 3].to_vec());
    }
    // The picture centre-cropped to 128x120 then scaled to 128x128 is close
    // to the same disc drawn at 128x128 (scale 128/120, offset 16 px).
    let s = 128.0 / 120.0;
    let want: Vec<f32> = red_disc(128, 128, (80.0 - 16.0) * s, 40.0 * s, 18.0 * s)
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect();
    let (with, without) = (psnr(&first_frames[0], &want), psnr(&first_frames[1], &want));
    eprintln!("frame 0 against the picture: {with:.1} dB with --image, {without:.1} dB without");
    assert!(with >= 20.0, "frame 0 is not the picture: {with:.1} dB");
    assert!(with > without + 6.0, "{with:.1} vs {without:.1} dB");
    Ok(())
}

/// Video-to-video keeps the input's size and length, and at strength 0.6
/// stays far closer to the input than a fresh clip of the same prompt.
#[test]
fn video_to_video_keeps_the_clip() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let input = tmp.path().join("in.mp4");
    let input_frames = tmp.path().join("in.safetensors");
    run_ok(
        Command::new(binary()?)
            .args([
                "generate",
                "--prompt",
                "a yellow square slides left",
                "--seed",
                "5",
            ])
            .args(["--aspect", "16:9"])
            .arg("--out")
            .arg(&input)
            .arg("--frames-out")
            .arg(&input_frames),
    )?;
    let (in_shape, _) = read_frames(&input_frames)?;
    let decoded_input = decode(&input, "rgb24")?;
    let mut outs = Vec::new();
    for (seed, strength) in [("6", "0.6"), ("6", "1.0")] {
        let out = tmp.path().join(format!("out-{strength}.mp4"));
        let frames_out = tmp.path().join(format!("out-{strength}.safetensors"));
        run_ok(
            Command::new(binary()?)
                .args([
                    "generate",
                    "--prompt",
                    "a purple square slides left",
                    "--seed",
                    seed,
                ])
                .arg("--video")
                .arg(&input)
                .args(["--denoise-strength", strength])
                .arg("--out")
                .arg(&out)
                .arg("--frames-out")
                .arg(&frames_out),
        )?;
        let info = probe(&out)?;
        let s = &info["streams"][0];
        assert_eq!(
            (s["width"].as_u64(), s["height"].as_u64()),
            (Some(in_shape[2] as u64), Some(in_shape[1] as u64)),
            "video-to-video changed the size"
        );
        let (shape, frames) = read_frames(&frames_out)?;
        assert_eq!(shape, in_shape, "video-to-video changed the length");
        outs.push(psnr(&frames, &decoded_input));
    }
    eprintln!(
        "video-to-video against its input: {:.1} dB at strength 0.6, {:.1} dB at 1 (ignores it)",
        outs[0], outs[1]
    );
    assert!(outs[0] > outs[1] + 3.0, "{outs:?}");
    Ok(())
}

/// Three shots (a picture, a continuation, a fresh shot) into one MP4 whose
/// length is the shots' summed duration.
#[test]
fn storyboard_renders_three_shots_into_one_video() -> Result<()> {
    if gpu().is_none() || tools().is_none() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    image::save_buffer(
        tmp.path().join("ball.png"),
        &red_disc(128, 128, 64.0, 30.0, 16.0),
        128,
        128,
        image::ColorType::Rgb8,
    )?;
    let board = tmp.path().join("board.json");
    std::fs::write(
        &board,
        r#"{"seed": 7, "steps": 3, "shots": [
            {"prompt": "a red ball falls and bounces", "image": "ball.png", "seconds": 1},
            {"prompt": "a red ball moves to the right", "seconds": 1},
            {"prompt": "a blue star rotates", "seconds": 0.5, "continue": false}
        ]}"#,
    )?;
    let film = tmp.path().join("film.mp4");
    let log = run_ok(
        Command::new(binary()?)
            .arg("storyboard")
            .arg(&board)
            .arg("--out")
            .arg(&film)
            .arg("--shots-dir")
            .arg(tmp.path().join("shots")),
    )?;
    let info = probe(&film)?;
    let s = &info["streams"][0];
    assert_eq!(s["codec_name"], "h264");
    // 24 fps: 1 s + 1 s + 0.5 s = 60 frames, plus frame 0 of each shot that
    // starts afresh (the first and third; the second continues the first).
    assert_eq!(s["nb_read_frames"].as_str(), Some("62"), "{log}");
    for i in 1..=3 {
        assert!(tmp.path().join(format!("shots/shot-{i}.mp4")).is_file());
    }
    // The continued shot starts where the first one ended: its first frame
    // is the film's frame 24 (carried over), up to codec loss.
    let film_rgb = decode(&film, "rgb24")?;
    let shot2 = decode(&tmp.path().join("shots/shot-2.mp4"), "rgb24")?;
    let frame = 128 * 128 * 3;
    let db = psnr(&shot2[..frame], &film_rgb[20 * frame..21 * frame]);
    eprintln!("storyboard: shot 2's first frame against the film's frame 20: {db:.1} dB");
    assert!(
        db > 22.0,
        "the continuation does not start from the first shot: {db:.1} dB"
    );
    Ok(())
}
