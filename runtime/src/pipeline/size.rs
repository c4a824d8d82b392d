//! Valid clip sizes: width and height multiples of the VAE's spatial
//! compression, frame counts `k * temporal + 1`, both read from the config.

/// A clip size in pixels and frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoSize {
    pub width: usize,
    pub height: usize,
    pub frames: usize,
}

impl VideoSize {
    /// Whether the size suits a VAE with these compressions.
    pub fn is_valid(&self, spatial: usize, temporal: usize) -> bool {
        self.width > 0
            && self.height > 0
            && self.width.is_multiple_of(spatial)
            && self.height.is_multiple_of(spatial)
            && self.frames >= 1
            && (self.frames - 1).is_multiple_of(temporal)
    }

    /// Latent frames, rows and columns.
    pub fn latent(&self, spatial: usize, temporal: usize) -> [usize; 3] {
        [
            (self.frames.saturating_sub(1)) / temporal + 1,
            self.height / spatial,
            self.width / spatial,
        ]
    }
}

/// The nearest valid size: each side rounded to the nearest multiple of
/// `spatial` (at least one), frames to the nearest `k * temporal + 1`.
pub fn snap(size: VideoSize, spatial: usize, temporal: usize) -> VideoSize {
    let side = |v: usize| (((v + spatial / 2) / spatial).max(1)) * spatial;
    let k = (size.frames.saturating_sub(1) + temporal / 2) / temporal;
    VideoSize {
        width: side(size.width),
        height: side(size.height),
        frames: k * temporal + 1,
    }
}

/// Width and height for an aspect ratio `w:h` near `resolution` pixels on
/// the short side, snapped to multiples of `spatial`.
pub fn from_aspect(aspect: (usize, usize), resolution: usize, spatial: usize) -> (usize, usize) {
    let (aw, ah) = (aspect.0.max(1) as f64, aspect.1.max(1) as f64);
    let short = resolution as f64;
    let (w, h) = if aw >= ah {
        (short * aw / ah, short)
    } else {
        (short, short * ah / aw)
    };
    let side = |v: f64| (((v / spatial as f64).round() as usize).max(1)) * spatial;
    (side(w), side(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapping_rounds_to_the_nearest_valid_size() {
        let s = snap(
            VideoSize {
                width: 500,
                height: 330,
                frames: 50,
            },
            32,
            8,
        );
        assert_eq!((s.width, s.height, s.frames), (512, 320, 49));
        assert!(s.is_valid(32, 8));
        let tiny = snap(
            VideoSize {
                width: 3,
                height: 0,
                frames: 0,
            },
            32,
            8,
        );
        assert_eq!((tiny.width, tiny.height, tiny.frames), (32, 32, 1));
        assert!(
            !VideoSize {
                width: 96,
                height: 64,
                frames: 16
            }
            .is_valid(32, 8)
        );
    }

    #[test]
    fn aspect_ratios_keep_the_short_side() {
        assert_eq!(from_aspect((16, 9), 320, 32), (576, 320));
        assert_eq!(from_aspect((9, 16), 320, 32), (320, 576));
        assert_eq!(from_aspect((1, 1), 256, 32), (256, 256));
        assert_eq!(from_aspect((4, 3), 256, 32), (352, 256));
    }
}
