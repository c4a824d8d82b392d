//! MP4 files are judged by ffprobe and decoded back by ffmpeg (Debian's
//! ffmpeg; scripts/setup.sh installs it). Without ffprobe the tests say so
//! and pass, unless FRAMECAST_REQUIRE_TOOLS=1 (set by the test command).

use std::process::Command;

use framecast::video::{Clip, mp4, png};

fn tool(name: &str) -> bool {
    let found = Command::new(name)
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("FRAMECAST_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required but not installed"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

/// A clip whose content moves: a bright square sliding right over a gradient.
fn moving_square(width: u32, height: u32, frames: usize, fps: f64) -> Clip {
    let frames = (0..frames)
        .map(|f| {
            let mut px = Vec::with_capacity((width * height * 4) as usize);
            for y in 0..height {
                for x in 0..width {
                    let inside =
                        x >= 4 + 4 * f as u32 && x < 20 + 4 * f as u32 && (8..24).contains(&y);
                    let (r, g, b) = if inside {
                        (230, 40, 40)
                    } else {
                        ((x * 255 / width) as u8, (y * 255 / height) as u8, 120)
                    };
                    px.extend_from_slice(&[r, g, b, 255]);
                }
            }
            px
        })
        .collect();
    Clip {
        width,
        height,
        fps,
        frames,
    }
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
fn mp4_is_accepted_by_ffprobe_and_decodes_to_the_frames() {
    if !tool("ffprobe") || !tool("ffmpeg") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("framecast-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (w, h, n, fps) in [
        (96u32, 64u32, 17usize, 24.0f64),
        (64, 96, 9, 25.0),
        (32, 32, 1, 30.0),
        (64, 64, 12, 23.976),
    ] {
        let clip = moving_square(w, h, n, fps);
        let path = dir.join(format!("clip_{w}x{h}_{n}.mp4"));
        mp4::write_file(&clip, &path).unwrap();
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-print_format",
                "json",
                "-show_streams",
                "-show_format",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "ffprobe rejected {path:?}: {}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
        let s = &info["streams"][0];
        assert_eq!(s["codec_name"], "h264");
        assert_eq!(s["pix_fmt"], "yuv420p");
        assert_eq!(
            (s["width"].as_u64().unwrap(), s["height"].as_u64().unwrap()),
            (w as u64, h as u64)
        );
        assert_eq!(
            s["nb_read_frames"]
                .as_str()
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            n
        );
        let rate: Vec<f64> = s["avg_frame_rate"]
            .as_str()
            .unwrap()
            .split('/')
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            (rate[0] / rate[1] - fps).abs() < 1e-3,
            "frame rate {rate:?} for {fps}"
        );
        let duration: f64 = info["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (duration - clip.duration()).abs() < 0.5 / fps + 1e-3,
            "duration {duration} vs {}",
            clip.duration()
        );

        let decoded = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-"])
            .output()
            .unwrap();
        assert!(decoded.status.success());
        let source: Vec<u8> = clip.frames.concat();
        assert_eq!(decoded.stdout.len(), source.len());
        let p = psnr(&decoded.stdout, &source);
        println!("{w}x{h}x{n} @ {fps}: ffprobe ok, decoded PSNR {p:.1} dB");
        // yuv420p halves chroma resolution; sharp coloured edges cost a few dB.
        assert!(
            p > 30.0,
            "decoded frames too far from the source: {p:.1} dB"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_clips_are_errors() {
    let mut clip = moving_square(33, 32, 2, 24.0);
    assert!(mp4::write(&clip, std::io::Cursor::new(Vec::new())).is_err());
    clip = moving_square(32, 32, 2, 0.0);
    assert!(mp4::write(&clip, std::io::Cursor::new(Vec::new())).is_err());
    clip = moving_square(32, 32, 2, 24.0);
    clip.frames[1].pop();
    assert!(mp4::write(&clip, std::io::Cursor::new(Vec::new())).is_err());
    clip.frames.clear();
    assert!(mp4::write(&clip, std::io::Cursor::new(Vec::new())).is_err());
}

#[test]
fn png_frames_round_trip() {
    let clip = moving_square(20, 10, 3, 24.0);
    let dir = std::env::temp_dir().join(format!("framecast-png-{}", std::process::id()));
    png::write_dir(&clip, &dir).unwrap();
    for (i, frame) in clip.frames.iter().enumerate() {
        let decoder = ::png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(dir.join(format!("frame_{i:04}.png"))).unwrap(),
        ));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        assert_eq!(&buf, frame);
    }
    std::fs::remove_dir_all(&dir).ok();
}
