"""The demo model's parity fixture: diffusers' LTXConditionPipeline run on
the weights the shipped bundle holds (dequantised), from given latents, so
that tests/parity/demo.rs can hold the runtime to it.

    cargo run -p framecast-quantize -- dequantize models/demo /tmp/demo-deq
    python tools/demo_model/reference.py /tmp/demo-deq tests/fixtures/demo

writes reference.safetensors (`latents` [1, C, F', H', W'] and `frames`
[F, H, W, 3]) and reference.json (the call).
"""

import json
import sys
from pathlib import Path

import torch
from diffusers import LTXConditionPipeline
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import save_file

# Small, so the fixture stays small: 64 x 96 (two aspect-ratio sides), 9
# frames, 4 steps with guidance (both CFG branches), decode noise off.
CALL = {
    "prompt": "a green triangle moves to the right",
    "negative_prompt": "",
    "width": 96,
    "height": 64,
    "num_frames": 9,
    "frame_rate": 24,
    "num_inference_steps": 4,
    "guidance_scale": 3.0,
    "max_sequence_length": 256,
    "decode_timestep": 0.0,
    "decode_noise_scale": 0.0,
    "seed": 11,
}


def main(deq: Path, out: Path):
    pipe = LTXConditionPipeline.from_pretrained(deq, torch_dtype=torch.float32)
    for m in (pipe.text_encoder, pipe.transformer, pipe.vae):
        m.eval()
    call = dict(CALL)
    seed = call.pop("seed")
    c = pipe.transformer.config.in_channels
    s, t = pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio
    shape = (1, c, (call["num_frames"] - 1) // t + 1, call["height"] // s, call["width"] // s)
    # The pipeline draws its initial noise as the generator's first draw
    # (it ignores `latents` at full denoise strength): record that draw.
    latents = randn_tensor(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    with torch.no_grad():
        frames = pipe(**call, generator=torch.Generator().manual_seed(seed), output_type="pt").frames
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {"latents": latents.contiguous(), "frames": frames[0].permute(0, 2, 3, 1).contiguous().float()},
        out / "reference.safetensors",
    )
    (out / "reference.json").write_text(json.dumps({"call": CALL}, indent=2) + "\n")
    print(out, tuple(frames.shape))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
