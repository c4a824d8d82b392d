"""Procedural clips of shapes in motion, with captions, for the demo model.

Everything is drawn from a seed: `clip(seed, width, height, frames)` gives
the same frames and caption on every machine. A clip holds one object (or,
now and then, two) of a named colour and shape on a plain or gradient
background, moving one of eight ways. Some colour-shape pairs never appear
in training (`HELD_OUT`): the evaluation asks for exactly those.

    python tools/shapes/shapes.py --out /tmp/shapes --count 8   # a preview
    python tools/shapes/shapes.py --out /tmp/shapes --eval-prompts tools/shapes/eval_prompts.json
"""

import argparse
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Object colours: eight well-separated hues (the evaluation tells them apart
# by the dominant hue of the object's pixels).
COLOURS = {
    "red": (225, 35, 35),
    "orange": (250, 140, 20),
    "yellow": (245, 220, 30),
    "green": (40, 190, 60),
    "cyan": (30, 205, 225),
    "blue": (40, 70, 230),
    "purple": (145, 55, 205),
    "pink": (245, 110, 185),
}
# Backgrounds: dark, light or grey tones, so the object's hue stands out.
BACKGROUNDS = {
    "black": (12, 12, 16),
    "dark grey": (55, 55, 60),
    "grey": (120, 120, 125),
    "white": (238, 238, 235),
    "navy": (18, 24, 70),
    "dark green": (16, 55, 28),
    "beige": (225, 210, 180),
    "maroon": (70, 16, 22),
}
SHAPES = ("circle", "square", "triangle", "star", "cross")
MOTIONS = ("right", "left", "up", "down", "bounce", "grow", "shrink", "rotate")

SHAPE_WORDS = {
    "circle": ("circle", "ball", "disc", "dot"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
}
MOTION_WORDS = {
    "right": ("moves to the right", "slides right", "drifts to the right", "travels right", "moves right"),
    "left": ("moves to the left", "slides left", "drifts to the left", "travels left", "moves left"),
    "up": ("moves up", "rises", "floats upward", "slides up"),
    "down": ("moves down", "sinks", "slides down", "drifts downward"),
    "bounce": ("falls and bounces", "bounces on the floor", "drops and bounces", "falls and bounces on the floor"),
    "grow": ("grows", "gets bigger", "expands"),
    "shrink": ("shrinks", "gets smaller", "contracts"),
    "rotate": ("rotates", "spins", "turns around"),
}
SIZE_WORDS = {"small": 0.09, "": 0.13, "big": 0.18, "large": 0.18}

# Colour-shape pairs no training clip contains, for the evaluation. Every
# colour and every shape still appears in training with other partners.
HELD_OUT = {
    ("red", "square"),
    ("orange", "circle"),
    ("yellow", "star"),
    ("cyan", "triangle"),
    ("blue", "cross"),
    ("purple", "circle"),
    ("pink", "triangle"),
}


@dataclass
class Thing:
    colour: str
    shape: str
    motion: str
    size_word: str
    x: float  # centre, in pixels
    y: float
    radius: float
    angle: float = 0.0


def shape_mask(shape: str, w: int, h: int, x: float, y: float, r: float, angle: float, ss: int = 3) -> np.ndarray:
    """Coverage in [0, 1] of `shape` centred at (x, y) with circumradius r,
    by supersampling ss x ss points per pixel (only inside its bounding box)."""
    mask = np.zeros((h, w), dtype=np.float32)
    x0, x1 = max(int(x - r) - 1, 0), min(int(x + r) + 2, w)
    y0, y1 = max(int(y - r) - 1, 0), min(int(y + r) + 2, h)
    if x0 >= x1 or y0 >= y1:
        return mask
    off = (np.arange(ss) + 0.5) / ss
    px = (np.arange(x0, x1)[:, None] + off[None, :]).reshape(-1)
    py = (np.arange(y0, y1)[:, None] + off[None, :]).reshape(-1)
    gx, gy = np.meshgrid(px - x, py - y)
    c, s = math.cos(-angle), math.sin(-angle)
    u, v = c * gx - s * gy, s * gx + c * gy  # object-frame coordinates, v down
    inside = inside_shape(shape, u / r, v / r)
    mask[y0:y1, x0:x1] = inside.reshape(y1 - y0, ss, x1 - x0, ss).mean(axis=(1, 3))
    return mask


def inside_shape(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Points of the unit shape (circumradius 1, centred, apex up)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        a = 1.0 / math.sqrt(2.0)
        return (np.abs(u) <= a) & (np.abs(v) <= a)
    if shape == "cross":
        arm = 0.34
        return ((np.abs(u) <= arm) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= arm) & (np.abs(u) <= 1.0))
    if shape == "triangle":
        return inside_polygon(u, v, regular_polygon(3, 1.0))
    if shape == "star":
        pts = []
        for i in range(10):
            rr = 1.0 if i % 2 == 0 else 0.45
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((rr * math.cos(a), rr * math.sin(a)))
        return inside_polygon(u, v, pts)
    raise ValueError(shape)


def regular_polygon(n: int, r: float):
    return [(r * math.cos(-math.pi / 2 + 2 * math.pi * i / n), r * math.sin(-math.pi / 2 + 2 * math.pi * i / n)) for i in range(n)]


def inside_polygon(u: np.ndarray, v: np.ndarray, pts) -> np.ndarray:
    """Even-odd rule."""
    inside = np.zeros(u.shape, dtype=bool)
    n = len(pts)
    for i in range(n):
        x0, y0 = pts[i]
        x1, y1 = pts[(i + 1) % n]
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < xi)
    return inside


def trajectory(t: Thing, w: int, h: int, frames: int, rng: random.Random):
    """Per-frame (x, y, radius, angle) of a thing."""
    out = []
    span = rng.uniform(0.35, 0.55)
    vy, y = 0.0, t.y
    g = rng.uniform(0.9, 1.3) * h * 4.0 / (frames * frames)  # px / frame^2
    spin = rng.choice((-1, 1)) * rng.uniform(0.5, 1.0) * math.pi
    for f in range(frames):
        p = f / max(frames - 1, 1)
        x, r, a = t.x, t.radius, t.angle
        if t.motion == "right":
            x = t.x + span * w * p
        elif t.motion == "left":
            x = t.x - span * w * p
        elif t.motion == "up":
            y = t.y - span * h * p
        elif t.motion == "down":
            y = t.y + span * h * p
        elif t.motion == "bounce":
            if f > 0:
                vy += g
                y += vy
                floor = h - t.radius
                if y > floor:
                    y = floor - (y - floor) * 0.6
                    vy = -abs(vy) * 0.6
        elif t.motion == "grow":
            r = t.radius * (0.55 + 0.9 * p)
        elif t.motion == "shrink":
            r = t.radius * (1.45 - 0.9 * p)
        elif t.motion == "rotate":
            a = t.angle + spin * p
        if t.motion not in ("up", "down", "bounce"):
            y = t.y
        out.append((x, y, r, a))
    return out


def place(motion: str, w: int, h: int, r: float, rng: random.Random):
    """A start position from which the motion stays in the frame."""
    m = r * 1.1
    x = rng.uniform(m, w - m)
    y = rng.uniform(m, h - m)
    if motion == "right":
        x = rng.uniform(m, w * 0.35)
    elif motion == "left":
        x = rng.uniform(w * 0.65, w - m)
    elif motion == "up":
        y = rng.uniform(h * 0.65, h - m)
    elif motion == "down":
        y = rng.uniform(m, h * 0.35)
    elif motion == "bounce":
        y = rng.uniform(m, h * 0.3)
    return x, y


def background(name: str, gradient: str, w: int, h: int, rng: random.Random) -> np.ndarray:
    base = np.array(BACKGROUNDS[name], dtype=np.float32)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    if gradient:
        other = np.clip(base + rng.choice((-1, 1)) * rng.uniform(35, 60), 0, 255)
        ramp = np.linspace(0.0, 1.0, h if gradient == "vertical" else w, dtype=np.float32)
        ramp = ramp[:, None, None] if gradient == "vertical" else ramp[None, :, None]
        img = base * (1 - ramp) + other * ramp
        img = np.broadcast_to(img, (h, w, 3)).copy()
    return img


def pick_thing(rng: random.Random, w: int, h: int, held_out: bool, avoid_colour=None, zoom: float = 1.0) -> Thing:
    """A random thing whose colour-shape pair is held out (for evaluation)
    or not (for training)."""
    while True:
        colour = rng.choice(list(COLOURS))
        shape = rng.choice(SHAPES)
        if ((colour, shape) in HELD_OUT) == held_out and colour != avoid_colour:
            break
    motion = rng.choice([m for m in MOTIONS if not (m == "rotate" and shape == "circle")])
    size_word = rng.choice(list(SIZE_WORDS))
    r = SIZE_WORDS[size_word] * min(w, h) * rng.uniform(0.85, 1.15) * zoom
    x, y = place(motion, w, h, r * (1.45 if motion == "shrink" else 1.0), rng)
    return Thing(colour, shape, motion, size_word, x, y, r, rng.uniform(-0.3, 0.3) if shape != "circle" else 0.0)


def describe(t: Thing, rng: random.Random) -> str:
    size = f"{t.size_word} " if t.size_word else ""
    first = (size or t.colour)[0]
    article = "an" if first in "aeiou" else "a"
    if not size and rng.random() < 0.2:
        article = "one"
    return f"{article} {size}{t.colour} {rng.choice(SHAPE_WORDS[t.shape])} {rng.choice(MOTION_WORDS[t.motion])}"


def caption_for(things, bg: str, rng: random.Random) -> str:
    text = " and ".join(describe(t, rng) for t in things)
    style = rng.random()
    if style < 0.45:
        return text
    if style < 0.8:
        return f"{text} on a {bg} background"
    return f"on a {bg} background, {text}"


def render(things, trajs, bg_img: np.ndarray, frames: int):
    """Frames (uint8 [F, H, W, 3]) and the objects' coverage (f32 [F, H, W])."""
    h, w, _ = bg_img.shape
    out = np.empty((frames, h, w, 3), dtype=np.uint8)
    cover = np.zeros((frames, h, w), dtype=np.float32)
    for f in range(frames):
        img = bg_img.copy()
        for t, tr in zip(things, trajs):
            x, y, r, a = tr[f]
            cov = shape_mask(t.shape, w, h, x, y, r, a)
            img = img * (1 - cov[..., None]) + np.array(COLOURS[t.colour], dtype=np.float32) * cov[..., None]
            cover[f] = np.maximum(cover[f], cov)
        out[f] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out, cover


def clip(seed: int, width: int, height: int, frames: int, held_out: bool = False, two_objects: float = 0.2, zoom: float = 1.0):
    """One clip: (frames uint8 [F, H, W, 3], caption, things, coverage
    f32 [F, H, W]). `zoom` scales the objects (the VAE trains on small
    crops with objects the size they have at the native resolution)."""
    rng = random.Random(seed)
    bg = rng.choice(list(BACKGROUNDS))
    gradient = rng.choice(("", "", "vertical", "horizontal"))
    things = [pick_thing(rng, width, height, held_out, zoom=zoom)]
    if not held_out and rng.random() < two_objects:
        things.append(pick_thing(rng, width, height, False, avoid_colour=things[0].colour, zoom=zoom))
    trajs = [trajectory(t, width, height, frames, rng) for t in things]
    video, cover = render(things, trajs, background(bg, gradient, width, height, rng), frames)
    return video, caption_for(things, bg, rng), things, cover


def clip_caption(seed: int) -> str:
    """A caption drawn as clips draw theirs, without rendering (for
    training the tokenizer)."""
    rng = random.Random(seed)
    bg = rng.choice(list(BACKGROUNDS))
    things = [pick_thing(rng, 256, 256, False)]
    if rng.random() < 0.2:
        things.append(pick_thing(rng, 256, 256, False, avoid_colour=things[0].colour))
    return caption_for(things, bg, rng)


def eval_prompts(count: int = 112, seed: int = 1234):
    """Prompts over held-out colour-shape pairs, one object, with the motions
    the evaluation can measure: [(prompt, colour, shape, motion)]."""
    rng = random.Random(seed)
    motions = ("right", "left", "up", "down", "bounce", "grow", "shrink")
    combos = sorted((c, s, m) for (c, s) in HELD_OUT for m in motions)
    out = []
    while len(out) < count:
        for c, s, m in combos:
            if len(out) == count:
                break
            word = rng.choice(SHAPE_WORDS[s])
            phrase = rng.choice(MOTION_WORDS[m])
            article = "an" if c[0] in "aeiou" else "a"
            out.append((f"{article} {c} {word} {phrase}", c, s, m))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--frames", type=int, default=25)
    ap.add_argument("--eval-prompts", type=Path, help="write the evaluation's prompts (JSON) here and stop")
    args = ap.parse_args()
    if args.eval_prompts:
        import json

        rows = [{"prompt": p, "colour": c, "shape": s, "motion": m} for p, c, s, m in eval_prompts()]
        args.eval_prompts.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"{args.eval_prompts}: {len(rows)} prompts")
        return
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        video, caption, _, _ = clip(i, args.width, args.height, args.frames)
        strip = np.concatenate([video[f] for f in range(0, args.frames, max(args.frames // 5, 1))], axis=1)
        Image.fromarray(strip).save(args.out / f"{i:03}.png")
        print(f"{i:03}: {caption}")


if __name__ == "__main__":
    main()
