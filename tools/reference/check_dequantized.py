"""Loads a folder written by `framecast-quantize dequantize` with diffusers and
runs it, next to the original checkpoint, on the same inputs.

    framecast-quantize convert PIPE BUNDLE
    framecast-quantize dequantize BUNDLE DEQ
    python tools/reference/check_dequantized.py PIPE DEQ [--exact]

Prints per component the relative RMS difference of the outputs (a measure
of what quantisation costs); --exact requires bit-identical weights (a bundle
converted with --weights f32) and identical outputs.
"""

import argparse
from pathlib import Path

import torch
from diffusers import LTXConditionPipeline


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).float().pow(2).mean().sqrt() / b.float().pow(2).mean().sqrt().clamp_min(1e-12)).item()


def run(pipe: LTXConditionPipeline, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t5 = pipe.text_encoder.config
    tr = pipe.transformer.config
    ids = torch.randint(0, t5.vocab_size, (1, 8), generator=g)
    text = pipe.text_encoder(ids).last_hidden_state
    latents = torch.randn(1, 4 * 2 * 2, tr.in_channels, generator=g)
    noise = pipe.transformer(
        hidden_states=latents,
        encoder_hidden_states=text,
        timestep=torch.tensor([500.0]),
        encoder_attention_mask=torch.ones(1, 8),
        num_frames=4,
        height=2,
        width=2,
        return_dict=False,
    )[0]
    z = torch.randn(1, pipe.vae.config.latent_channels, 2, 2, 2, generator=g)
    frames = pipe.vae.decode(z, temb=torch.tensor([0.05]), return_dict=False)[0]
    return {"text_encoder": text, "transformer": noise, "vae": frames}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("original", type=Path)
    ap.add_argument("dequantized", type=Path)
    ap.add_argument("--exact", action="store_true")
    args = ap.parse_args()
    a = LTXConditionPipeline.from_pretrained(args.original, torch_dtype=torch.float32)
    b = LTXConditionPipeline.from_pretrained(args.dequantized, torch_dtype=torch.float32)
    with torch.no_grad():
        for name in ("text_encoder", "transformer", "vae"):
            sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
            assert sa.keys() == sb.keys(), f"{name}: parameter names differ"
            if args.exact:
                for k in sa:
                    assert torch.equal(sa[k].float(), sb[k]), f"{name}.{k} differs"
        ra, rb = run(a), run(b)
    for name in ra:
        d = rel(rb[name], ra[name])
        print(f"{name:<13} output {tuple(rb[name].shape)}  relative RMS difference {d:.4f}")
        assert torch.isfinite(rb[name]).all(), f"{name}: non-finite output"
        if args.exact:
            assert d == 0.0, f"{name}: outputs differ"
    print("ok: diffusers loads and runs the dequantized pipeline")


if __name__ == "__main__":
    main()
