//! A clip as an animated GIF (each frame quantised to its own 256-colour
//! palette by the `gif` crate's NeuQuant), looping forever.

use std::path::Path;

use super::{Clip, VideoError};

pub fn write_file(clip: &Clip, path: &Path) -> Result<(), VideoError> {
    clip.check()?;
    let io = |e: &dyn std::fmt::Display| VideoError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let (w, h) = (
        u16::try_from(clip.width)
            .map_err(|_| VideoError::Encode("GIF frames are at most 65535 wide".into()))?,
        u16::try_from(clip.height)
            .map_err(|_| VideoError::Encode("GIF frames are at most 65535 high".into()))?,
    );
    let file = std::fs::File::create(path).map_err(|e| io(&e))?;
    let mut encoder =
        ::gif::Encoder::new(std::io::BufWriter::new(file), w, h, &[]).map_err(|e| io(&e))?;
    encoder
        .set_repeat(::gif::Repeat::Infinite)
        .map_err(|e| io(&e))?;
    // GIF delays are in hundredths of a second.
    let delay = (100.0 / clip.fps).round().max(1.0) as u16;
    for frame in &clip.frames {
        let mut rgba = frame.clone();
        let mut f = ::gif::Frame::from_rgba_speed(w, h, &mut rgba, 10);
        f.delay = delay;
        encoder.write_frame(&f).map_err(|e| io(&e))?;
    }
    Ok(())
}
