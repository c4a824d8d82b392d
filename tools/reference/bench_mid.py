"""The "bench-mid" LTX pipeline: random weights at a mid size, and diffusers
timing it on the CPU, for the end-to-end benchmark (BENCHMARKS.md).

Transformer 8 layers x 1024 (16 heads x 64), captions of 256 channels
projected to 1024; a 0.9.0-style VAE with 32/64/128/256 channels and patch
size 4 (32x spatial, 8x temporal compression, 128 latent channels); a small
T5 encoder (2 layers x 256). At 512x320 and 49 frames the transformer sees
16 x 10 x 7 = 1120 tokens; 8 steps, no CFG.

    python tools/reference/bench_mid.py build DIR          # the pipeline, diffusers layout
    python tools/reference/bench_mid.py time DIR --threads 2 [--json OUT]

`time` runs LTXConditionPipeline on DIR as framecast's benchmark does (the
same prompt, size, steps and schedule) and prints per-stage seconds and the
process's peak resident memory above what it held before the call
(weights included: they are loaded inside the measured span).
"""

import argparse
import json
import threading
import time
from pathlib import Path

import torch

import ltx_configs as cfg

TRANSFORMER_MID = {
    **cfg.TRANSFORMER_2B,
    "num_attention_heads": 16,
    "attention_head_dim": 64,
    "cross_attention_dim": 1024,
    "num_layers": 8,
    "caption_channels": 256,
}

VAE_MID = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "block_out_channels": (32, 64, 128, 256),
    "down_block_types": ("LTXVideoDownBlock3D",) * 4,
    "decoder_block_out_channels": (32, 64, 128, 256),
    "layers_per_block": (4, 3, 3, 3, 4),
    "decoder_layers_per_block": (4, 3, 3, 3, 4),
    "spatio_temporal_scaling": (True, True, True, False),
    "decoder_spatio_temporal_scaling": (True, True, True, False),
    "decoder_inject_noise": (False,) * 5,
    "downsample_type": ("conv",) * 4,
    "upsample_residual": (False,) * 4,
    "upsample_factor": (1,) * 4,
    "timestep_conditioning": False,
    "patch_size": 4,
    "patch_size_t": 1,
    "resnet_norm_eps": 1e-6,
    "scaling_factor": 1.0,
    "encoder_causal": True,
    "decoder_causal": False,
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}

T5_MID = {
    **cfg.T5_XXL,
    "vocab_size": 1024,
    "d_model": 256,
    "d_kv": 64,
    "d_ff": 1024,
    "num_layers": 2,
    "num_heads": 4,
    "dropout_rate": 0.0,
}

# What both sides run.
CALL = {
    "prompt": "a red ball bounces on a blue floor",
    "width": 512,
    "height": 320,
    "num_frames": 49,
    "frame_rate": 24,
    "num_inference_steps": 8,
    "guidance_scale": 1.0,
    "max_sequence_length": 256,
    "decode_timestep": 0.0,
    "decode_noise_scale": 0.0,
    "seed": 0,
}


def build(out: Path, seed: int = 0):
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    pipe = LTXConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**cfg.SCHEDULER),
        vae=AutoencoderKLLTXVideo(**VAE_MID),
        text_encoder=T5EncoderModel(T5Config(**T5_MID)),
        tokenizer=cfg.tiny_tokenizer(T5_MID["vocab_size"]),
        transformer=LTXVideoTransformer3DModel(**TRANSFORMER_MID),
    )
    pipe.save_pretrained(out)
    (out / "bench_mid.json").write_text(json.dumps({"call": CALL}, indent=2) + "\n")
    params = {k: sum(p.numel() for p in getattr(pipe, k).parameters()) for k in ("text_encoder", "transformer", "vae")}
    print(json.dumps({"out": str(out), "params": params}))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakRss:
    """Samples the resident set every few milliseconds."""

    def __init__(self):
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


@torch.no_grad()
def time_it(folder: Path, threads: int, out_json: Path | None):
    from diffusers import LTXConditionPipeline

    torch.set_num_threads(threads)
    call = dict(CALL)
    seed = call.pop("seed")
    baseline = rss_bytes()
    stages = {}
    with PeakRss() as peak:
        t0 = time.perf_counter()
        pipe = LTXConditionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
        stages["load"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        embeds, mask, _, _ = pipe.encode_prompt(
            call.pop("prompt"), do_classifier_free_guidance=False, max_sequence_length=call["max_sequence_length"]
        )
        stages["text encoding"] = time.perf_counter() - t0
        steps = []

        def on_step(p, i, t, kw):
            steps.append(time.perf_counter())
            return kw

        t0 = denoise_start = time.perf_counter()
        latents = pipe(
            prompt_embeds=embeds,
            prompt_attention_mask=mask,
            generator=torch.Generator().manual_seed(seed),
            output_type="latent",
            callback_on_step_end=on_step,
            **call,
        ).frames
        stages["denoising"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        s, ts = pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio
        z = pipe._unpack_latents(latents, (call["num_frames"] - 1) // ts + 1, call["height"] // s, call["width"] // s, 1, 1)
        z = pipe._denormalize_latents(z, pipe.vae.latents_mean, pipe.vae.latents_std, pipe.vae.config.scaling_factor)
        video = pipe.vae.decode(z, None, return_dict=False)[0]
        stages["decoding"] = time.perf_counter() - t0
    result = {
        "threads": threads,
        "torch": torch.__version__,
        "seconds": {k: round(v, 3) for k, v in stages.items()},
        # The first from the call's start: it includes preparing the latents.
        "step_seconds": [round(b - a, 3) for a, b in zip([denoise_start] + steps, steps)],
        "video_shape": list(video.shape),
        "peak_rss_mib_above_start": round((peak.peak - baseline) / 2**20, 1),
        "peak_rss_mib": round(peak.peak / 2**20, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if out_json:
        out_json.write_text(text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["build", "time"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.what == "build":
        build(args.folder)
    else:
        time_it(args.folder, args.threads, args.json)


if __name__ == "__main__":
    main()
