//! The shapes world's objects drawn in Rust, with the geometry of
//! `tools/shapes/shapes.py` (circumradius r, apex up, angle in radians): for
//! the shape classifier's templates, for tests, and for conditioning images.

use std::f32::consts::PI;

#[derive(Clone, Debug)]
pub struct Object {
    pub shape: &'static str,
    pub rgb: [f32; 3],
    pub x: f32,
    pub y: f32,
    pub r: f32,
    pub angle: f32,
}

impl Object {
    pub fn new(shape: &str, rgb: [f32; 3], x: f32, y: f32, r: f32, angle: f32) -> Object {
        let shape = crate::SHAPES
            .iter()
            .copied()
            .find(|s| *s == shape)
            .unwrap_or("circle");
        Object {
            shape,
            rgb,
            x,
            y,
            r,
            angle,
        }
    }
}

fn inside_polygon(u: f32, v: f32, pts: &[(f32, f32)]) -> bool {
    let mut inside = false;
    for i in 0..pts.len() {
        let (x0, y0) = pts[i];
        let (x1, y1) = pts[(i + 1) % pts.len()];
        if (y0 > v) != (y1 > v) && u < x0 + (v - y0) * (x1 - x0) / (y1 - y0) {
            inside = !inside;
        }
    }
    inside
}

/// Whether (u, v) lies in the unit shape (circumradius 1, centred, v down).
pub fn inside(shape: &str, u: f32, v: f32) -> bool {
    match shape {
        "circle" => u * u + v * v <= 1.0,
        "square" => {
            let a = 1.0 / 2f32.sqrt();
            u.abs() <= a && v.abs() <= a
        }
        "cross" => {
            let arm = 0.34;
            (u.abs() <= arm && v.abs() <= 1.0) || (v.abs() <= arm && u.abs() <= 1.0)
        }
        "triangle" => {
            let pts: Vec<(f32, f32)> = (0..3)
                .map(|i| {
                    let a = -PI / 2.0 + 2.0 * PI * i as f32 / 3.0;
                    (a.cos(), a.sin())
                })
                .collect();
            inside_polygon(u, v, &pts)
        }
        "star" => {
            let pts: Vec<(f32, f32)> = (0..10)
                .map(|i| {
                    let rr = if i % 2 == 0 { 1.0 } else { 0.45 };
                    let a = -PI / 2.0 + i as f32 * PI / 5.0;
                    (rr * a.cos(), rr * a.sin())
                })
                .collect();
            inside_polygon(u, v, &pts)
        }
        _ => false,
    }
}

/// An image [H, W, 3] in [0, 1]: the objects over a plain background, each
/// pixel's coverage from 3 x 3 samples.
pub fn render(w: usize, h: usize, objects: &[Object], background: [f32; 3]) -> Vec<f32> {
    let mut img: Vec<f32> = (0..w * h).flat_map(|_| background).collect();
    const SS: usize = 3;
    for o in objects {
        let (c, s) = ((-o.angle).cos(), (-o.angle).sin());
        let x0 = (o.x - o.r - 1.0).floor().max(0.0) as usize;
        let x1 = ((o.x + o.r + 2.0).ceil() as usize).min(w);
        let y0 = (o.y - o.r - 1.0).floor().max(0.0) as usize;
        let y1 = ((o.y + o.r + 2.0).ceil() as usize).min(h);
        for py in y0..y1 {
            for px in x0..x1 {
                let mut hits = 0;
                for sy in 0..SS {
                    for sx in 0..SS {
                        let gx = px as f32 + (sx as f32 + 0.5) / SS as f32 - o.x;
                        let gy = py as f32 + (sy as f32 + 0.5) / SS as f32 - o.y;
                        let (u, v) = (c * gx - s * gy, s * gx + c * gy);
                        if inside(o.shape, u / o.r, v / o.r) {
                            hits += 1;
                        }
                    }
                }
                let cov = hits as f32 / (SS * SS) as f32;
                let i = (py * w + px) * 3;
                for ch in 0..3 {
                    img[i + ch] = img[i + ch] * (1.0 - cov) + o.rgb[ch] * cov;
                }
            }
        }
    }
    img
}
