"""Final frames of the fixture calls run by diffusers on the weights a q4
bundle holds, so the q4 path is judged against the reference running the
same weights (quantisation error excluded).

    cargo run -p framecast-quantize -- convert tests/fixtures/ltx/v095/pipeline /tmp/q4 --weights q4
    cargo run -p framecast-quantize -- dequantize /tmp/q4 /tmp/q4-deq
    python tools/reference/ltx_q4_frames.py v095 /tmp/q4-deq tests/fixtures/ltx

writes <fixtures>/<variant>/reference_q4.safetensors with `frames` [F, H, W, 3].
"""

import os
import sys

import torch
from diffusers import LTXConditionPipeline
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from ltx_fixtures import CALLS  # noqa: E402


def main(variant, deq_dir, fixtures):
    pipe = LTXConditionPipeline.from_pretrained(deq_dir)
    for m in (pipe.text_encoder, pipe.transformer, pipe.vae):
        m.eval()
    call = dict(CALLS[variant])
    seed = call.pop("seed")
    with torch.no_grad():
        # The same generator seed as the f32 fixture, so the same first draw of latents.
        frames = pipe(**call, generator=torch.Generator().manual_seed(seed), output_type="pt").frames
    out = {"frames": frames[0].permute(0, 2, 3, 1).contiguous().float()}
    save_file(out, os.path.join(fixtures, variant, "reference_q4.safetensors"))
    print(variant, tuple(out["frames"].shape))


if __name__ == "__main__":
    main(*sys.argv[1:4])
