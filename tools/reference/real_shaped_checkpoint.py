"""Writes a real-shaped LTX-Video 2B 0.9.8 + T5-XXL pipeline with random bf16 weights.

For size and throughput measurements of the quantizer: the shapes and names
are those of the published checkpoint (the 2B transformer, which 0.9.8
shares with 0.9.5; the 0.9.5+ VAE; T5 v1.1 XXL; diffusers layout, sharded safetensors
with index files), the values are random. Streams tensor by tensor, so memory
stays near one 128 MiB pool of random values whatever the model size.

    python tools/reference/real_shaped_checkpoint.py /work/bigckpt
"""

import argparse
import json
import struct
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
from transformers import T5Config, T5EncoderModel

import ltx_configs as cfg

POOL = 64 << 20  # random bf16 values reused (at shifting offsets) for every tensor
MAX_SHARD = 5 << 30  # what diffusers' conversion script uses


def shapes(model: torch.nn.Module) -> list[tuple[str, list[int]]]:
    """Names and shapes of what save_pretrained writes: parameters (tied ones
    once, as named_parameters dedupes them) and persistent buffers."""
    out = [(n, list(p.shape)) for n, p in model.named_parameters()]
    for prefix, module in model.named_modules():
        for name, buf in module._buffers.items():
            if buf is not None and name not in module._non_persistent_buffers_set:
                out.append((f"{prefix}.{name}" if prefix else name, list(buf.shape)))
    return out


def write_sharded(folder: Path, stem: str, tensors, pool: np.ndarray, rng: np.random.Generator):
    """Writes `stem-0000i-of-0000n.safetensors` files plus `stem.safetensors.index.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    groups, current, size = [], [], 0
    for name, shape in tensors:
        nbytes = int(np.prod(shape, dtype=np.int64)) * 2
        if current and size + nbytes > MAX_SHARD:
            groups.append(current)
            current, size = [], 0
        current.append((name, shape))
        size += nbytes
    groups.append(current)
    weight_map, total = {}, 0
    for i, group in enumerate(groups):
        fname = f"{stem}-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        header, offset = {}, 0
        for name, shape in group:
            nbytes = int(np.prod(shape, dtype=np.int64)) * 2
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        total += offset
        head = json.dumps(header, separators=(",", ":")).encode()
        head += b" " * (-len(head) % 8)
        with open(folder / fname, "wb") as f:
            f.write(struct.pack("<Q", len(head)))
            f.write(head)
            for name, shape in group:
                remaining = int(np.prod(shape, dtype=np.int64))
                while remaining:
                    start = int(rng.integers(0, POOL))
                    n = min(remaining, POOL - start)
                    f.write(memoryview(pool[start : start + n]).cast("B"))
                    remaining -= n
        print(f"  {folder.name}/{fname}: {offset / 2**30:.2f} GiB")
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / f"{stem}.safetensors.index.json").write_text(json.dumps(index, indent=2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    # bf16 bits are the top half of f32 bits: normal(0, 0.02) without NaN or Inf.
    pool = (rng.standard_normal(POOL, dtype=np.float32) * 0.02).view(np.uint32) >> 16
    pool = pool.astype(np.uint16)

    with torch.device("meta"):
        transformer = LTXVideoTransformer3DModel(**cfg.TRANSFORMER_2B)
        vae = AutoencoderKLLTXVideo(**cfg.VAE_095)
        t5_config = T5Config(**cfg.T5_XXL)
        text_encoder = T5EncoderModel(t5_config)

    write_sharded(out / "transformer", "diffusion_pytorch_model", shapes(transformer), pool, rng)
    transformer.save_config(out / "transformer")
    write_sharded(out / "vae", "diffusion_pytorch_model", shapes(vae), pool, rng)
    vae.save_config(out / "vae")
    write_sharded(out / "text_encoder", "model", shapes(text_encoder), pool, rng)
    t5_config.architectures = ["T5EncoderModel"]
    t5_config.save_pretrained(out / "text_encoder")
    cfg.tiny_tokenizer(t5_config.vocab_size).save_pretrained(out / "tokenizer")
    FlowMatchEulerDiscreteScheduler(**cfg.SCHEDULER_098).save_config(out / "scheduler")
    index = {"_class_name": "LTXConditionPipeline", **cfg.MODEL_INDEX_CLASSES}
    (out / "model_index.json").write_text(json.dumps(index, indent=2))


if __name__ == "__main__":
    main()
