//! A clip as a folder of PNG frames (`frame_0000.png`, ...).

use std::path::Path;

use super::{Clip, VideoError};

pub fn write_dir(clip: &Clip, dir: &Path) -> Result<(), VideoError> {
    clip.check()?;
    let io = |p: &Path, e: &dyn std::fmt::Display| VideoError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
    for (i, frame) in clip.frames.iter().enumerate() {
        let path = dir.join(format!("frame_{i:04}.png"));
        let file = std::fs::File::create(&path).map_err(|e| io(&path, &e))?;
        let mut encoder =
            ::png::Encoder::new(std::io::BufWriter::new(file), clip.width, clip.height);
        encoder.set_color(::png::ColorType::Rgba);
        encoder.set_depth(::png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| io(&path, &e))?;
        writer.write_image_data(frame).map_err(|e| io(&path, &e))?;
    }
    Ok(())
}
