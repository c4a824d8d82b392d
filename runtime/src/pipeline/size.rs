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

/// What a caller asked for, every part optional: explicit sides, or an
/// aspect ratio with a short side; frames, or seconds at a rate.
#[derive(Clone, Debug, Default)]
pub struct SizeRequest {
    pub width: Option<usize>,
    pub height: Option<usize>,
    pub aspect: Option<(usize, usize)>,
    pub resolution: Option<usize>,
    pub frames: Option<usize>,
    pub seconds: Option<f64>,
    pub fps: Option<f64>,
}

/// A request made concrete: what was asked (after defaults), the valid size
/// used, and the frame rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResolvedSize {
    pub asked: VideoSize,
    pub size: VideoSize,
    pub fps: f64,
}

impl ResolvedSize {
    /// Whether the size had to be snapped.
    pub fn snapped(&self) -> bool {
        self.asked != self.size
    }
}

/// Parses `W:H` (e.g. `16:9`).
pub fn parse_aspect(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected W:H such as 16:9"))?;
    let parse = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
    let (w, h) = (parse(w)?, parse(h)?);
    if w == 0 || h == 0 {
        return Err(format!("{s:?}: both sides must be positive"));
    }
    Ok((w, h))
}

/// Fills a request from the model's native settings (`defaults`: its size,
/// length and rate where it declares them; else 16:9 at 320 pixels, two
/// seconds at 24 fps) and snaps it to a size the VAE can make.
pub fn resolve(
    req: &SizeRequest,
    defaults: &crate::bundle::ModelDefaults,
    spatial: usize,
    temporal: usize,
) -> Result<ResolvedSize, String> {
    let fps = req.fps.or(defaults.fps).unwrap_or(24.0);
    if !(fps.is_finite() && fps > 0.0 && fps <= 240.0) {
        return Err(format!("frame rate {fps} is out of range (0 to 240 fps)"));
    }
    let native = defaults.width.zip(defaults.height);
    let resolution = req
        .resolution
        .or(native.map(|(w, h)| w.min(h)))
        .unwrap_or(320);
    let (width, height) = match (req.width, req.height, req.aspect) {
        (Some(w), Some(h), None) => (w, h),
        (None, None, Some(a)) => from_aspect(a, resolution, spatial),
        (None, None, None) => match (native, req.resolution) {
            (Some(wh), None) => wh,
            _ => from_aspect((16, 9), resolution, spatial),
        },
        _ => {
            return Err(
                "give either width and height, or an aspect ratio (with a resolution)".into(),
            );
        }
    };
    let frames = match (req.frames, req.seconds) {
        (Some(f), None) => f,
        (None, Some(s)) if s.is_finite() && s > 0.0 => (s * fps).round() as usize + 1,
        (None, Some(s)) => return Err(format!("duration {s} s is not positive")),
        (None, None) => defaults
            .frames
            .unwrap_or_else(|| (2.0 * fps).round() as usize + 1),
        _ => return Err("give frames or seconds, not both".into()),
    };
    let asked = VideoSize {
        width,
        height,
        frames,
    };
    Ok(ResolvedSize {
        asked,
        size: snap(asked, spatial, temporal),
        fps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fill_from_the_model_and_snap() {
        let demo = crate::bundle::ModelDefaults {
            width: Some(256),
            height: Some(256),
            frames: Some(25),
            fps: Some(24.0),
            ..Default::default()
        };
        let none = crate::bundle::ModelDefaults::default();
        let r = resolve(&SizeRequest::default(), &demo, 32, 8).unwrap();
        assert_eq!(
            (r.size.width, r.size.height, r.size.frames, r.fps),
            (256, 256, 25, 24.0)
        );
        assert!(!r.snapped());
        // An aspect ratio takes the model's short side; seconds its rate.
        let r = resolve(
            &SizeRequest {
                aspect: Some((16, 9)),
                seconds: Some(2.0),
                ..Default::default()
            },
            &demo,
            32,
            8,
        )
        .unwrap();
        assert_eq!((r.size.width, r.size.height, r.size.frames), (448, 256, 49));
        // Without model defaults: 16:9 at 320, two seconds at 24 fps.
        let r = resolve(&SizeRequest::default(), &none, 32, 8).unwrap();
        assert_eq!((r.size.width, r.size.height, r.size.frames), (576, 320, 49));
        let r = resolve(
            &SizeRequest {
                width: Some(250),
                height: Some(130),
                frames: Some(30),
                ..Default::default()
            },
            &none,
            32,
            8,
        )
        .unwrap();
        assert!(r.snapped());
        assert_eq!((r.size.width, r.size.height, r.size.frames), (256, 128, 33));
        assert!(
            resolve(
                &SizeRequest {
                    width: Some(64),
                    ..Default::default()
                },
                &none,
                32,
                8
            )
            .is_err()
        );
        assert!(
            resolve(
                &SizeRequest {
                    frames: Some(9),
                    seconds: Some(1.0),
                    ..Default::default()
                },
                &none,
                32,
                8
            )
            .is_err()
        );
        assert_eq!(parse_aspect("9:16"), Ok((9, 16)));
        assert!(parse_aspect("9x16").is_err() && parse_aspect("0:1").is_err());
    }

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
