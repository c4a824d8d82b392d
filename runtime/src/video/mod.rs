//! Frames and the files they become. RGBA8 frames are what the GPU's video
//! kernels produce and what encoders (here openh264, in the browser
//! WebCodecs) consume.

#[cfg(all(feature = "video", not(target_arch = "wasm32")))]
pub mod gif;
#[cfg(all(feature = "video", not(target_arch = "wasm32")))]
pub mod input;
#[cfg(all(feature = "video", not(target_arch = "wasm32")))]
pub mod mp4;
#[cfg(all(feature = "video", not(target_arch = "wasm32")))]
pub mod png;
#[cfg(all(feature = "video", not(target_arch = "wasm32")))]
pub mod webm;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum VideoError {
    #[error("a clip needs at least one frame")]
    Empty,
    #[error("frame {index} has {got} bytes, expected {want} ({width}x{height} RGBA)")]
    FrameSize {
        index: usize,
        got: usize,
        want: usize,
        width: u32,
        height: u32,
    },
    #[error("H.264 and VP9 need even width and height, got {width}x{height}")]
    OddSize { width: u32, height: u32 },
    #[error("frame rate must be positive and at most 240, got {0}")]
    BadFps(f64),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error("writing {path}: {message}")]
    Io { path: String, message: String },
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
}

/// A clip as RGBA8 frames of one size.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Each `width * height * 4` bytes, rows top to bottom.
    pub frames: Vec<Vec<u8>>,
}

impl Clip {
    pub fn check(&self) -> Result<(), VideoError> {
        if self.frames.is_empty() {
            return Err(VideoError::Empty);
        }
        if !(self.fps > 0.0 && self.fps <= 240.0) {
            return Err(VideoError::BadFps(self.fps));
        }
        let want = self.width as usize * self.height as usize * 4;
        for (index, f) in self.frames.iter().enumerate() {
            if f.len() != want {
                return Err(VideoError::FrameSize {
                    index,
                    got: f.len(),
                    want,
                    width: self.width,
                    height: self.height,
                });
            }
        }
        Ok(())
    }

    /// Seconds the clip lasts.
    pub fn duration(&self) -> f64 {
        self.frames.len() as f64 / self.fps
    }
}
