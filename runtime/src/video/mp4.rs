//! H.264 (openh264, yuv420p, BT.601 limited range) in an MP4 container that
//! browsers play.

use std::io::{Seek, Write};

use ::mp4::{
    AvcConfig, FourCC, MediaConfig, Mp4Config, Mp4Sample, Mp4Writer, TrackConfig, TrackType,
};
use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, QpRange, RateControlMode, VuiConfig,
};
use openh264::formats::{RgbaSliceU8, YUVBuffer};

use super::{Clip, VideoError};

/// Ticks per frame; the track's timescale is `fps * TICKS`, so fractional
/// rates such as 23.976 are exact to a thousandth.
const TICKS: u32 = 1000;

fn enc(e: impl std::fmt::Display) -> VideoError {
    VideoError::Encode(e.to_string())
}

/// NAL units of an Annex B stream, without their start codes.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i] == 0 && stream[i + 1] == 0 && stream[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
            // A four-byte start code leaves one more zero before the next unit.
            while end > s && stream[end - 1] == 0 && k + 1 < starts.len() {
                end -= 1;
            }
            &stream[s..end]
        })
        .collect()
}

/// Encodes `clip` as H.264 in MP4 into `out`.
pub fn write<W: Write + Seek>(clip: &Clip, out: W) -> Result<W, VideoError> {
    clip.check()?;
    if clip.width % 2 != 0 || clip.height % 2 != 0 {
        return Err(VideoError::OddSize {
            width: clip.width,
            height: clip.height,
        });
    }
    // A clip to keep: about one bit per pixel per frame, and a quantiser
    // ceiling so busy frames keep their detail rather than meet the rate.
    let bps = (clip.width as f64 * clip.height as f64 * clip.fps).clamp(5e5, 5e7) as u32;
    let config = EncoderConfig::new()
        .max_frame_rate(FrameRate::from_hz(clip.fps as f32))
        .bitrate(BitRate::from_bps(bps))
        .qp(QpRange::new(0, 20))
        .rate_control_mode(RateControlMode::Quality)
        // Rate control may otherwise drop frames of small, busy clips: every
        // frame must become a sample, or the file is shorter than asked.
        .skip_frames(false)
        .vui(VuiConfig::bt601());
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config).map_err(enc)?;
    let (w, h) = (clip.width as usize, clip.height as usize);

    let mut sps = None;
    let mut pps = None;
    let mut samples = Vec::with_capacity(clip.frames.len());
    for (i, frame) in clip.frames.iter().enumerate() {
        if i == 0 {
            encoder.force_intra_frame();
        }
        let yuv = YUVBuffer::from_rgba8_source(RgbaSliceU8::new(frame, (w, h)));
        let stream = encoder.encode(&yuv).map_err(enc)?.to_vec();
        let mut avcc = Vec::with_capacity(stream.len());
        let mut is_sync = false;
        for nal in nal_units(&stream) {
            match nal.first().map(|b| b & 0x1F) {
                Some(7) => sps = Some(nal.to_vec()),
                Some(8) => pps = Some(nal.to_vec()),
                Some(t) => {
                    is_sync |= t == 5;
                    avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    avcc.extend_from_slice(nal);
                }
                None => {}
            }
        }
        if avcc.is_empty() {
            return Err(VideoError::Encode(format!(
                "the encoder produced no picture for frame {i}"
            )));
        }
        samples.push((avcc, is_sync));
    }
    let (Some(sps), Some(pps)) = (sps, pps) else {
        return Err(VideoError::Encode("the encoder produced no SPS/PPS".into()));
    };

    let timescale = (clip.fps * TICKS as f64).round() as u32;
    let mp4_config = Mp4Config {
        major_brand: FourCC::from(*b"isom"),
        minor_version: 512,
        compatible_brands: ["isom", "iso2", "avc1", "mp41"]
            .iter()
            .map(|b| FourCC::from(b.as_bytes().try_into().unwrap_or(*b"isom")))
            .collect(),
        timescale,
    };
    let mut writer = Mp4Writer::write_start(out, &mp4_config).map_err(enc)?;
    writer
        .add_track(&TrackConfig {
            track_type: TrackType::Video,
            timescale,
            language: "und".into(),
            media_conf: MediaConfig::AvcConfig(AvcConfig {
                width: clip.width as u16,
                height: clip.height as u16,
                seq_param_set: sps,
                pic_param_set: pps,
            }),
        })
        .map_err(enc)?;
    for (i, (bytes, is_sync)) in samples.into_iter().enumerate() {
        let sample = Mp4Sample {
            start_time: i as u64 * TICKS as u64,
            duration: TICKS,
            rendering_offset: 0,
            is_sync,
            bytes: bytes.into(),
        };
        writer.write_sample(1, &sample).map_err(enc)?;
    }
    writer.write_end().map_err(enc)?;
    Ok(writer.into_writer())
}

/// Encodes `clip` into the file at `path` (written beside it, then renamed).
pub fn write_file(clip: &Clip, path: &std::path::Path) -> Result<(), VideoError> {
    let io = |e: std::io::Error| VideoError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let tmp = path.with_extension("mp4.partial");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut file = write(clip, std::io::BufWriter::new(file))?;
    file.flush().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::nal_units;

    #[test]
    fn annex_b_splits_on_three_and_four_byte_start_codes() {
        let s = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = nal_units(&s);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
    }
}
