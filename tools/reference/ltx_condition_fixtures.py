"""What diffusers' LTXConditionPipeline computes with conditioning, on the
tiny v095 fixture pipeline (tests/fixtures/ltx/v095/pipeline, made by
ltx_fixtures.py):

  image      an image as frame 0 at strength 1 (image-to-video)
  keyframes  frame 0 at strength 0.8 and a keyframe at frame 8 (the last) at strength
             1 (appended conditioning tokens with their own coordinates)
  video      video-to-video: the clip's latents noised to the schedule at
             denoise_strength 0.6, SDEdit-style

Writes <fixture>/condition.safetensors (the input pixels as uint8 [F, H, W,
3], the generator's first draw as `<case>.noise`, the final frames as
`<case>.frames`, f16 [F, H, W, 3] in [0, 1], small enough to commit) and condition.json (each
call's parameters).

Two things are fixed so that another runtime can reproduce the runs without
torch's RNG: the conditioning latents are the VAE posterior's mode, not a
sample from it (framecast uses the mode), and the per-step noise on hard
conditioning tokens (`image_cond_noise_scale`) is off.

    python tools/reference/ltx_condition_fixtures.py tests/fixtures/ltx/v095
"""

import json
import os
import sys

import numpy as np
import torch
from diffusers import LTXConditionPipeline
from diffusers.pipelines.ltx import pipeline_ltx_condition
from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from safetensors.torch import save_file

pipeline_ltx_condition.retrieve_latents = lambda output, generator=None, sample_mode="sample": output.latent_dist.mode()

BASE = dict(prompt="a red ball bounces on a blue floor", negative_prompt="blurry", width=96, height=64,
            num_frames=9, frame_rate=24, num_inference_steps=3, guidance_scale=3.0, max_sequence_length=32,
            decode_timestep=0.05, decode_noise_scale=0.0, image_cond_noise_scale=0.0)


def picture(seed: int, width: int, height: int, frames: int = 1) -> np.ndarray:
    """A smooth gradient with a moving disc: uint8 [F, H, W, 3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    base = rng.uniform(0, 1, 3)
    tilt = rng.uniform(-0.5, 0.5, 3)
    disc = rng.uniform(0, 1, 3)
    out = []
    for f in range(frames):
        img = np.clip(base + tilt * (x[..., None] + y[..., None]), 0, 1)
        cx, cy = 0.2 + 0.03 * f, 0.3 + 0.01 * f
        inside = (x - cx) ** 2 + (y - cy) ** 2 < 0.15 ** 2
        img[inside] = disc
        out.append((img * 255).round().astype(np.uint8))
    return np.stack(out)


def pil(frame: np.ndarray) -> Image.Image:
    return Image.fromarray(frame)


def main(fixture: str):
    pipe = LTXConditionPipeline.from_pretrained(os.path.join(fixture, "pipeline"))
    for m in (pipe.text_encoder, pipe.transformer, pipe.vae):
        m.eval()
    w, h, f = BASE["width"], BASE["height"], BASE["num_frames"]
    shape = (1, pipe.transformer.config.in_channels, (f - 1) // pipe.vae_temporal_compression_ratio + 1,
             h // pipe.vae_spatial_compression_ratio, w // pipe.vae_spatial_compression_ratio)
    first, last = picture(1, w, h)[0], picture(2, w, h)[0]
    clip = picture(3, w, h, f)
    store = {"image.first": torch.from_numpy(first), "image.last": torch.from_numpy(last),
             "video.input": torch.from_numpy(clip)}
    cases = {
        "image": dict(seed=11, conditions=[LTXVideoCondition(image=pil(first), frame_index=0, strength=1.0)]),
        "keyframes": dict(seed=12, conditions=[LTXVideoCondition(image=pil(first), frame_index=0, strength=0.8),
                                               LTXVideoCondition(image=pil(last), frame_index=8, strength=1.0)]),
        "video": dict(seed=13, num_inference_steps=5, denoise_strength=0.6),
    }
    calls = {}
    with torch.no_grad():
        for name, extra in cases.items():
            call = {**BASE, **extra}
            seed = call.pop("seed")
            store[f"{name}.noise"] = randn_tensor(shape, generator=torch.Generator().manual_seed(seed),
                                                  dtype=torch.float32)
            if name == "video":
                pixels = torch.from_numpy(clip).permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0
                z = pipe.vae.encode(pixels).latent_dist.mode()
                z = pipe._normalize_latents(z, pipe.vae.latents_mean, pipe.vae.latents_std)
                store["video.latents"] = z
                call["latents"] = z
            frames = pipe(**call, generator=torch.Generator().manual_seed(seed), output_type="pt").frames
            store[f"{name}.frames"] = frames[0].permute(0, 2, 3, 1).half().contiguous()
            call.pop("latents", None)
            conds = call.pop("conditions", [])
            call["conditions"] = [{"image": "image.first" if i == 0 else "image.last", "frame_index": c.frame_index,
                                   "strength": c.strength} for i, c in enumerate(conds)]
            call["seed"] = seed
            calls[name] = call
            print(name, tuple(frames.shape))
    save_file({k: v.contiguous() for k, v in store.items()}, os.path.join(fixture, "condition.safetensors"))
    with open(os.path.join(fixture, "condition.json"), "w") as fh:
        json.dump({"calls": calls, "tensors": {k: list(v.shape) for k, v in sorted(store.items())}}, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
