//! Pictures and clips read from files, for conditioning: a PNG or JPEG
//! picture; a clip as H.264 in MP4 (the mp4 demuxer and openh264), an
//! animated GIF, or a folder of PNG/JPEG frames in name order.

use std::path::Path;

use ::mp4::{Mp4Reader, TrackType};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

use super::VideoError;
use crate::pipeline::Frames;

fn read_error(path: &Path, message: impl ToString) -> VideoError {
    VideoError::Read {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// One picture as a single frame.
pub fn read_picture(path: &Path) -> Result<Frames, VideoError> {
    let img = image::open(path)
        .map_err(|e| read_error(path, format!("{e} (PNG or JPEG pictures are read)")))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Frames::from_rgb8(img.as_raw(), 1, h as usize, w as usize).map_err(|e| read_error(path, e))
}

/// A clip and its frame rate where the file has one.
pub fn read_clip(path: &Path) -> Result<(Frames, Option<f64>), VideoError> {
    if path.is_dir() {
        return read_folder(path).map(|f| (f, None));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("mp4") | Some("m4v") | Some("mov") => read_mp4(path),
        Some("gif") => read_gif(path),
        Some("png") | Some("jpg") | Some("jpeg") => read_picture(path).map(|f| (f, None)),
        _ => Err(read_error(
            path,
            "clips are read from .mp4 (H.264), .gif or a folder of PNG/JPEG frames",
        )),
    }
}

fn collect(path: &Path, frames: Vec<(usize, usize, Vec<u8>)>) -> Result<Frames, VideoError> {
    let Some(&(w, h, _)) = frames.first() else {
        return Err(read_error(path, "no frames"));
    };
    let mut rgb = Vec::with_capacity(frames.len() * w * h * 3);
    for (i, (fw, fh, data)) in frames.iter().enumerate() {
        if (*fw, *fh) != (w, h) {
            return Err(read_error(
                path,
                format!("frame {i} is {fw}x{fh}, the first {w}x{h}"),
            ));
        }
        rgb.extend_from_slice(data);
    }
    Frames::from_rgb8(&rgb, frames.len(), h, w).map_err(|e| read_error(path, e))
}

fn read_folder(dir: &Path) -> Result<Frames, VideoError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| read_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(|e| e.to_ascii_lowercase())
                    .as_deref(),
                Some("png") | Some("jpg") | Some("jpeg")
            )
        })
        .collect();
    names.sort();
    let frames = names
        .iter()
        .map(|p| {
            let f = read_picture(p)?;
            Ok((
                f.width,
                f.height,
                f.data.iter().map(|&v| (v * 255.0).round() as u8).collect(),
            ))
        })
        .collect::<Result<Vec<_>, VideoError>>()?;
    collect(dir, frames)
}

fn read_gif(path: &Path) -> Result<(Frames, Option<f64>), VideoError> {
    use image::AnimationDecoder;
    let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(file))
        .map_err(|e| read_error(path, e))?;
    let mut delay_ms = None;
    let mut frames = Vec::new();
    for frame in decoder.into_frames() {
        let frame = frame.map_err(|e| read_error(path, e))?;
        let (num, den) = frame.delay().numer_denom_ms();
        if den > 0 && num > 0 {
            delay_ms.get_or_insert(num as f64 / den as f64);
        }
        let rgba = frame.into_buffer();
        let (w, h) = rgba.dimensions();
        let rgb = rgba.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
        frames.push((w as usize, h as usize, rgb));
    }
    Ok((collect(path, frames)?, delay_ms.map(|d| 1000.0 / d)))
}

fn read_mp4(path: &Path) -> Result<(Frames, Option<f64>), VideoError> {
    let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let size = file.metadata().map_err(|e| read_error(path, e))?.len();
    let mut mp4 = Mp4Reader::read_header(std::io::BufReader::new(file), size)
        .map_err(|e| read_error(path, e))?;
    let track = mp4
        .tracks()
        .values()
        .find(|t| matches!(t.track_type(), Ok(TrackType::Video)))
        .ok_or_else(|| read_error(path, "no video track"))?;
    let id = track.track_id();
    let fps = track.frame_rate();
    let not_h264 = |_| read_error(path, "the video track is not H.264 (avc1)");
    let mut head = Vec::new();
    for ps in [
        track.sequence_parameter_set().map_err(not_h264)?,
        track.picture_parameter_set().map_err(not_h264)?,
    ] {
        head.extend_from_slice(&[0, 0, 0, 1]);
        head.extend_from_slice(ps);
    }
    let count = mp4.sample_count(id).map_err(|e| read_error(path, e))?;
    let mut decoder = Decoder::new().map_err(|e| read_error(path, e))?;
    let mut frames = Vec::new();
    let mut keep = |yuv: &openh264::decoder::DecodedYUV<'_>| {
        let (w, h) = yuv.dimensions();
        let mut rgb = vec![0; w * h * 3];
        yuv.write_rgb8(&mut rgb);
        frames.push((w, h, rgb));
    };
    for sample_id in 1..=count {
        let Some(sample) = mp4
            .read_sample(id, sample_id)
            .map_err(|e| read_error(path, e))?
        else {
            continue;
        };
        // Length-prefixed NAL units (avcC, 4-byte lengths) to Annex B.
        let mut packet = if sample_id == 1 {
            head.clone()
        } else {
            Vec::new()
        };
        let mut rest = &sample.bytes[..];
        while rest.len() >= 4 {
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if n > rest.len() - 4 {
                return Err(read_error(path, format!("sample {sample_id} is truncated")));
            }
            packet.extend_from_slice(&[0, 0, 0, 1]);
            packet.extend_from_slice(&rest[4..4 + n]);
            rest = &rest[4 + n..];
        }
        if let Some(yuv) = decoder
            .decode(&packet)
            .map_err(|e| read_error(path, format!("sample {sample_id}: {e}")))?
        {
            keep(&yuv);
        }
    }
    for yuv in decoder.flush_remaining().map_err(|e| read_error(path, e))? {
        keep(&yuv);
    }
    let fps = (fps > 0.0 && fps.is_finite()).then_some(fps);
    Ok((collect(path, frames)?, fps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::Clip;

    /// A clip with a bright square moving right over a gradient.
    fn clip(frames: usize) -> Clip {
        let (w, h) = (64u32, 48u32);
        Clip {
            width: w,
            height: h,
            fps: 24.0,
            frames: (0..frames)
                .map(|f| {
                    let mut px = Vec::new();
                    for y in 0..h {
                        for x in 0..w {
                            let inside = x >= 8 + 4 * f as u32
                                && x < 24 + 4 * f as u32
                                && (16..32).contains(&y);
                            let v = if inside {
                                [230, 40, 40, 255]
                            } else {
                                [(x * 3) as u8, (y * 4) as u8, 90, 255]
                            };
                            px.extend_from_slice(&v);
                        }
                    }
                    px
                })
                .collect(),
        }
    }

    fn psnr(a: &[f32], b: &[f32]) -> f64 {
        let mse = a
            .iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        10.0 * (1.0 / mse.max(1e-12)).log10()
    }

    fn rgb(c: &Clip) -> Vec<f32> {
        c.frames
            .iter()
            .flat_map(|f| {
                f.chunks_exact(4)
                    .flat_map(|p| [p[0], p[1], p[2]])
                    .map(|v| v as f32 / 255.0)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn our_own_mp4_and_gif_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let c = clip(9);
        let mp4 = dir.path().join("c.mp4");
        crate::video::mp4::write_file(&c, &mp4).unwrap();
        let (f, fps) = read_clip(&mp4).unwrap();
        assert_eq!((f.frames, f.width, f.height), (9, 64, 48));
        assert!((fps.unwrap() - 24.0).abs() < 0.01, "{fps:?}");
        let db = psnr(&f.data, &rgb(&c));
        assert!(db > 30.0, "H.264 round trip at {db:.1} dB");

        let gif = dir.path().join("c.gif");
        crate::video::gif::write_file(&c, &gif).unwrap();
        let (g, _) = read_clip(&gif).unwrap();
        assert_eq!(g.frames, 9);
        assert!(psnr(&g.data, &rgb(&c)) > 25.0);

        let bad = dir.path().join("bad.mp4");
        std::fs::write(&bad, b"not a video").unwrap();
        let e = read_clip(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.mp4"), "{e}");
    }
}
