"""Builds a tiny random-weight LTX-Video pipeline in diffusers' on-disk layout.

Every module type of the real model at a few hundred KB, saved the way
published checkpoints are: the transformer sharded (with its index.json) in
f32, the VAE in f16, the T5 encoder in bf16, a fast tokenizer, the scheduler
config. The quantizer's tests read the committed copy in
quantize/tests/fixtures/tiny-ltx; rerun this to regenerate it:

    python tools/reference/tiny_pipeline.py quantize/tests/fixtures/tiny-ltx
"""

import argparse
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXVideoTransformer3DModel
from transformers import T5Config, T5EncoderModel

import ltx_configs as cfg


def build(seed: int = 0) -> LTXConditionPipeline:
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(**cfg.TRANSFORMER_TINY)
    vae = AutoencoderKLLTXVideo(**cfg.VAE_TINY)
    text_encoder = T5EncoderModel(T5Config(**cfg.T5_TINY))
    # Random init leaves some parameters at constants (norm weights at 1,
    # biases at 0): perturb everything so round trips test real values.
    with torch.no_grad():
        for model in (transformer, vae, text_encoder):
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**cfg.SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=cfg.tiny_tokenizer(cfg.T5_TINY["vocab_size"]),
        transformer=transformer,
    )


def save(pipe: LTXConditionPipeline, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    pipe.save_pretrained(out)
    # Re-save components in the dtypes and sharding published checkpoints use.
    shutil.rmtree(out / "transformer")
    pipe.transformer.save_pretrained(out / "transformer", max_shard_size="200KB")
    shutil.rmtree(out / "vae")
    pipe.vae.to(torch.float16).save_pretrained(out / "vae")
    shutil.rmtree(out / "text_encoder")
    pipe.text_encoder.to(torch.bfloat16).save_pretrained(out / "text_encoder")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    save(build(args.seed), args.out)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {total / 1e3:.0f} KB")


if __name__ == "__main__":
    main()
