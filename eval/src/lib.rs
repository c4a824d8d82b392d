//! Measures how well a generated clip of the shapes world follows its
//! prompt: the object's colour (its dominant hue), its shape (two
//! rotation-free features of its silhouette), its motion (the centroid's
//! trajectory and the area's trend) and temporal stability (flicker).
//!
//! The object is found without knowing the background: the shapes world's
//! backgrounds are dark, light or grey tones and its objects saturated,
//! bright colours, so an object pixel is one with high chroma and value.

pub mod raster;

/// The named colours of `tools/shapes/shapes.py`, as sRGB bytes.
pub const COLOURS: &[(&str, [u8; 3])] = &[
    ("red", [225, 35, 35]),
    ("orange", [250, 140, 20]),
    ("yellow", [245, 220, 30]),
    ("green", [40, 190, 60]),
    ("cyan", [30, 205, 225]),
    ("blue", [40, 70, 230]),
    ("purple", [145, 55, 205]),
    ("pink", [245, 110, 185]),
];
pub const SHAPES: &[&str] = &["circle", "square", "triangle", "star", "cross"];

/// Chroma (max - min of r, g, b in [0, 1]) and value an object pixel has
/// at least; no background of the shapes world reaches both.
const MIN_CHROMA: f32 = 0.3;
const MIN_VALUE: f32 = 0.35;
/// Fewer object pixels than this (per frame) count as no object.
const MIN_PIXELS: usize = 12;

/// A clip: frames [F, H, W, 3], RGB in [0, 1].
pub struct Clip<'a> {
    pub frames: &'a [f32],
    pub num_frames: usize,
    pub height: usize,
    pub width: usize,
}

/// The object in one frame: its largest connected region of object pixels.
#[derive(Clone, Debug)]
pub struct Blob {
    pub area: usize,
    pub cx: f32,
    pub cy: f32,
    /// Area over the area of the circle through its far pixels.
    pub fill: f32,
    /// Area over the area of its convex hull.
    pub solidity: f32,
    /// Hue histogram of its pixels (36 bins of 10 degrees).
    pub hues: [f32; 36],
}

#[derive(Clone, Debug)]
pub struct Analysis {
    /// Per frame; None where no object was found.
    pub blobs: Vec<Option<Blob>>,
    pub colour: Option<&'static str>,
    pub shape: Option<&'static str>,
    /// Centroid displacement first to last, in fractions of width/height.
    pub dx: f32,
    pub dy: f32,
    /// Largest downward excursion from the first frame, fraction of height.
    pub max_drop: f32,
    /// Area of the last frames over the area of the first.
    pub area_ratio: f32,
    /// Largest second difference of the frames' mean luminance.
    pub flicker: f32,
    /// Largest relative second difference of the object's area.
    pub area_jitter: f32,
}

fn hsv(p: [f32; 3]) -> (f32, f32, f32) {
    let max = p[0].max(p[1]).max(p[2]);
    let min = p[0].min(p[1]).min(p[2]);
    let c = max - min;
    let h = if c <= 0.0 {
        0.0
    } else if max == p[0] {
        60.0 * ((p[1] - p[2]) / c)
    } else if max == p[1] {
        60.0 * (2.0 + (p[2] - p[0]) / c)
    } else {
        60.0 * (4.0 + (p[0] - p[1]) / c)
    };
    (h.rem_euclid(360.0), c, max)
}

fn hue_distance(a: f32, b: f32) -> f32 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// The named colour whose hue is nearest `hue`.
pub fn nearest_colour(hue: f32) -> &'static str {
    COLOURS
        .iter()
        .map(|(name, rgb)| {
            let (h, _, _) = hsv(rgb.map(|v| v as f32 / 255.0));
            (hue_distance(h, hue), *name)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
        .unwrap_or("red")
}

/// The object's largest connected region in a boolean mask, as pixel
/// indices.
fn largest_region(mask: &[bool], w: usize, h: usize) -> Vec<usize> {
    let mut seen = vec![false; mask.len()];
    let mut best = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut region = Vec::new();
        seen[start] = true;
        stack.push(start);
        while let Some(i) = stack.pop() {
            region.push(i);
            let (x, y) = (i % w, i / w);
            let mut visit = |j: usize| {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        if region.len() > best.len() {
            best = region;
        }
    }
    best
}

/// Area of the convex hull of points (Andrew's monotone chain).
fn hull_area(mut pts: Vec<(i64, i64)>) -> f64 {
    pts.sort_unstable();
    pts.dedup();
    if pts.len() < 3 {
        return 0.0;
    }
    let cross = |o: (i64, i64), a: (i64, i64), b: (i64, i64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(i64, i64)> = Vec::with_capacity(pts.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(i64, i64)>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    let n = hull.len();
    let twice: i64 = (0..n)
        .map(|i| {
            let (a, b) = (hull[i], hull[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    twice.abs() as f64 / 2.0
}

/// The object in one frame [H, W, 3].
pub fn blob(frame: &[f32], w: usize, h: usize) -> Option<Blob> {
    let mut mask = vec![false; w * h];
    let mut hue = vec![0.0f32; w * h];
    for i in 0..w * h {
        let p = [frame[i * 3], frame[i * 3 + 1], frame[i * 3 + 2]];
        let (hh, c, v) = hsv(p);
        mask[i] = c >= MIN_CHROMA && v >= MIN_VALUE;
        hue[i] = hh;
    }
    let region = largest_region(&mask, w, h);
    if region.len() < MIN_PIXELS {
        return None;
    }
    let n = region.len() as f32;
    let (sx, sy) = region.iter().fold((0.0f32, 0.0f32), |(sx, sy), &i| {
        (sx + (i % w) as f32 + 0.5, sy + (i / w) as f32 + 0.5)
    });
    let (cx, cy) = (sx / n, sy / n);
    let mut dist: Vec<f32> = region
        .iter()
        .map(|&i| {
            let (x, y) = ((i % w) as f32 + 0.5 - cx, (i / w) as f32 + 0.5 - cy);
            (x * x + y * y).sqrt()
        })
        .collect();
    dist.sort_unstable_by(|a, b| a.total_cmp(b));
    let r = dist[((dist.len() - 1) as f32 * 0.98) as usize] + 0.5;
    let fill = n / (std::f32::consts::PI * r * r);
    let corners: Vec<(i64, i64)> = region
        .iter()
        .flat_map(|&i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)]
        })
        .collect();
    let solidity = (n as f64 / hull_area(corners).max(1.0)) as f32;
    let mut hues = [0.0f32; 36];
    for &i in &region {
        hues[((hue[i] / 10.0) as usize).min(35)] += 1.0;
    }
    Some(Blob {
        area: region.len(),
        cx,
        cy,
        fill,
        solidity,
        hues,
    })
}

/// Shape features of the ideal shapes, measured the same way on their
/// rasterisation (so the classifier and its templates cannot disagree on
/// conventions).
pub fn shape_templates() -> Vec<(&'static str, f32, f32)> {
    let size = 128;
    SHAPES
        .iter()
        .map(|&s| {
            let img = raster::render(
                size,
                size,
                &[raster::Object::new(
                    s,
                    [1.0, 0.0, 0.0],
                    64.0,
                    64.0,
                    36.0,
                    0.0,
                )],
                [0.0; 3],
            );
            let b = blob(&img, size, size).expect("template renders");
            (s, b.fill, b.solidity)
        })
        .collect()
}

/// The template nearest (fill, solidity).
pub fn classify_shape(
    templates: &[(&'static str, f32, f32)],
    fill: f32,
    solidity: f32,
) -> &'static str {
    templates
        .iter()
        .map(|&(name, f, s)| ((f - fill).powi(2) + (s - solidity).powi(2), name))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
        .unwrap_or("circle")
}

fn mean_of(values: impl Iterator<Item = f32>) -> Option<f32> {
    let (s, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| s / n as f32)
}

pub fn analyse(clip: &Clip, templates: &[(&'static str, f32, f32)]) -> Analysis {
    let (w, h) = (clip.width, clip.height);
    let px = w * h * 3;
    let blobs: Vec<Option<Blob>> = (0..clip.num_frames)
        .map(|f| blob(&clip.frames[f * px..(f + 1) * px], w, h))
        .collect();
    let found: Vec<(usize, &Blob)> = blobs
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
        .collect();

    // Colour: the peak of the summed hue histogram, refined by the mean
    // hue of its bin and neighbours.
    let mut hist = [0.0f32; 36];
    for (_, b) in &found {
        for (h, v) in hist.iter_mut().zip(b.hues.iter()) {
            *h += v;
        }
    }
    let colour = if found.is_empty() {
        None
    } else {
        let peak = (0..36)
            .max_by(|&a, &b| hist[a].total_cmp(&hist[b]))
            .unwrap_or(0);
        let (mut sx, mut sy) = (0.0f32, 0.0f32);
        for d in [35, 0, 1] {
            let bin = (peak + d) % 36;
            let a = ((bin as f32 + 0.5) * 10.0).to_radians();
            sx += hist[bin] * a.cos();
            sy += hist[bin] * a.sin();
        }
        Some(nearest_colour(sy.atan2(sx).to_degrees().rem_euclid(360.0)))
    };

    // Shape: a vote over frames.
    let mut votes = std::collections::BTreeMap::<&str, usize>::new();
    for (_, b) in &found {
        *votes
            .entry(classify_shape(templates, b.fill, b.solidity))
            .or_default() += 1;
    }
    let shape = votes.into_iter().max_by_key(|&(_, n)| n).map(|(s, _)| s);

    // Motion: the first and last three frames with an object.
    let k = 3.min(found.len());
    let head = &found[..k];
    let tail = &found[found.len() - k..];
    let m =
        |set: &[(usize, &Blob)], f: &dyn Fn(&Blob) -> f32| mean_of(set.iter().map(|(_, b)| f(b)));
    let (dx, dy, area_ratio, max_drop) = if found.len() >= 2 {
        let x0 = m(head, &|b| b.cx).unwrap_or(0.0);
        let y0 = m(head, &|b| b.cy).unwrap_or(0.0);
        let a0 = m(head, &|b| b.area as f32).unwrap_or(1.0);
        let drop = found.iter().map(|(_, b)| b.cy - y0).fold(0.0f32, f32::max);
        (
            (m(tail, &|b| b.cx).unwrap_or(0.0) - x0) / w as f32,
            (m(tail, &|b| b.cy).unwrap_or(0.0) - y0) / h as f32,
            m(tail, &|b| b.area as f32).unwrap_or(1.0) / a0.max(1.0),
            drop / h as f32,
        )
    } else {
        (0.0, 0.0, 1.0, 0.0)
    };

    // Stability: second differences over time.
    let luma: Vec<f32> = (0..clip.num_frames)
        .map(|f| {
            let fr = &clip.frames[f * px..(f + 1) * px];
            fr.chunks_exact(3)
                .map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2])
                .sum::<f32>()
                / (w * h) as f32
        })
        .collect();
    let flicker = luma
        .windows(3)
        .map(|v| (v[1] - 0.5 * (v[0] + v[2])).abs())
        .fold(0.0f32, f32::max);
    let areas: Vec<f32> = blobs
        .iter()
        .map(|b| b.as_ref().map_or(0.0, |b| b.area as f32))
        .collect();
    let area_jitter = areas
        .windows(3)
        .map(|v| (v[1] - 0.5 * (v[0] + v[2])).abs() / v[1].max(0.5 * (v[0] + v[2])).max(1.0))
        .fold(0.0f32, f32::max);
    Analysis {
        blobs,
        colour,
        shape,
        dx,
        dy,
        max_drop,
        area_ratio,
        flicker,
        area_jitter,
    }
}

/// Whether the measured motion is the one asked for. Translations need a
/// move of a tenth of the frame along the named axis (and more than along
/// the other); a bounce, a fall of a sixth of the height at some point;
/// growing or shrinking, an area change of 40% (30% down).
pub fn motion_matches(motion: &str, a: &Analysis) -> bool {
    let (dx, dy) = (a.dx, a.dy);
    match motion {
        "right" => dx > 0.1 && dx.abs() > dy.abs(),
        "left" => dx < -0.1 && dx.abs() > dy.abs(),
        "down" => dy > 0.1 && dy.abs() > dx.abs(),
        "up" => dy < -0.1 && dy.abs() > dx.abs(),
        "bounce" => a.max_drop > 1.0 / 6.0,
        "grow" => a.area_ratio > 1.4,
        "shrink" => a.area_ratio < 0.7,
        _ => false,
    }
}

/// No flicker: the frame's mean luminance changes smoothly (second
/// difference under 1.5% of full scale) and so does the object's area
/// (under 35%, relative), with the object found in every frame.
pub fn stable(a: &Analysis) -> bool {
    a.flicker < 0.015 && a.area_jitter < 0.35 && a.blobs.iter().all(Option::is_some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raster::Object;

    fn clip_of(frames: &[Vec<f32>], w: usize, h: usize) -> Vec<f32> {
        let _ = (w, h);
        frames.concat()
    }

    fn colour(name: &str) -> [f32; 3] {
        COLOURS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c.map(|v| v as f32 / 255.0))
            .unwrap()
    }

    #[test]
    fn classifies_every_shape_at_sizes_and_rotations() {
        let t = shape_templates();
        for &s in SHAPES {
            for (r, angle) in [(14.0, 0.0), (22.0, 0.4), (30.0, -0.25), (40.0, 1.1)] {
                let img = raster::render(
                    128,
                    128,
                    &[Object::new(s, colour("blue"), 60.0, 66.0, r, angle)],
                    [0.05, 0.05, 0.07],
                );
                let b = blob(&img, 128, 128).unwrap();
                assert_eq!(
                    classify_shape(&t, b.fill, b.solidity),
                    s,
                    "{s} r {r} angle {angle}: fill {} solidity {}",
                    b.fill,
                    b.solidity
                );
            }
        }
    }

    #[test]
    fn finds_each_colour_on_each_kind_of_background() {
        let t = shape_templates();
        let backgrounds = [
            [0.05, 0.05, 0.06],
            [0.47, 0.47, 0.49],
            [0.93, 0.93, 0.92],
            [0.07, 0.09, 0.27],
            [0.88, 0.82, 0.7],
        ];
        for (name, _) in COLOURS {
            for bg in backgrounds {
                let img = raster::render(
                    96,
                    96,
                    &[Object::new("square", colour(name), 40.0, 50.0, 16.0, 0.2)],
                    bg,
                );
                let a = analyse(
                    &Clip {
                        frames: &img,
                        num_frames: 1,
                        height: 96,
                        width: 96,
                    },
                    &t,
                );
                assert_eq!(a.colour, Some(*name), "{name} on {bg:?}");
            }
        }
    }

    #[test]
    fn measures_motion_and_stability() {
        let t = shape_templates();
        let (w, h, n) = (128, 96, 9);
        let make = |f: &dyn Fn(f32) -> (f32, f32, f32)| {
            let frames: Vec<Vec<f32>> = (0..n)
                .map(|i| {
                    let (x, y, r) = f(i as f32 / (n - 1) as f32);
                    raster::render(
                        w,
                        h,
                        &[Object::new("circle", colour("green"), x, y, r, 0.0)],
                        [0.9, 0.9, 0.9],
                    )
                })
                .collect();
            clip_of(&frames, w, h)
        };
        let cases: [(&str, Box<dyn Fn(f32) -> (f32, f32, f32)>); 6] = [
            ("right", Box::new(|p| (30.0 + 60.0 * p, 48.0, 12.0))),
            ("left", Box::new(|p| (100.0 - 60.0 * p, 48.0, 12.0))),
            ("up", Box::new(|p| (64.0, 75.0 - 45.0 * p, 12.0))),
            ("down", Box::new(|p| (64.0, 20.0 + 50.0 * p, 12.0))),
            ("grow", Box::new(|p| (64.0, 48.0, 8.0 + 10.0 * p))),
            ("shrink", Box::new(|p| (64.0, 48.0, 18.0 - 10.0 * p))),
        ];
        for (motion, f) in &cases {
            let frames = make(f.as_ref());
            let a = analyse(
                &Clip {
                    frames: &frames,
                    num_frames: n,
                    height: h,
                    width: w,
                },
                &t,
            );
            for (other, _) in &cases {
                assert_eq!(
                    motion_matches(other, &a),
                    other == motion,
                    "{motion} read as {other}: {a:?}"
                );
            }
            assert!(stable(&a), "{motion}: {a:?}");
            assert_eq!(a.colour, Some("green"));
            assert_eq!(a.shape, Some("circle"));
        }
        // A fall and bounce reads as a bounce; a flash of a white frame as flicker.
        let bounce = make(&|p| {
            (
                64.0,
                20.0 + 60.0 * (1.0 - (2.0 * p - 1.2).powi(2)).max(0.0),
                10.0,
            )
        });
        let a = analyse(
            &Clip {
                frames: &bounce,
                num_frames: n,
                height: h,
                width: w,
            },
            &t,
        );
        assert!(motion_matches("bounce", &a), "{a:?}");
        let mut flash = make(cases[0].1.as_ref());
        let px = w * h * 3;
        for v in &mut flash[4 * px..5 * px] {
            *v = (*v + 0.3).min(1.0);
        }
        let a = analyse(
            &Clip {
                frames: &flash,
                num_frames: n,
                height: h,
                width: w,
            },
            &t,
        );
        assert!(!stable(&a), "{a:?}");
    }
}
