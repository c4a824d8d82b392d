"""Tiny random-weight LTX-Video pipelines and what diffusers computes with them.

For each variant this writes, under <out>/<variant>/:
  pipeline/        the pipeline in diffusers' own on-disk layout (save_pretrained)
  reference.safetensors
                   per-component activations captured during one real
                   LTXConditionPipeline run (hooks), plus a standalone VAE
                   encode/decode, and the final frames
  reference.json   the call's parameters (prompt, sizes, steps, seed, ...)

The initial latents are the generator's first draw (the pipeline ignores
`latents` when denoise_strength is 1), recorded as `latents`, so Rust can
reproduce the run without torch's RNG. Decode noise is off (scale 0).

    python tools/reference/ltx_fixtures.py tests/fixtures/ltx
"""

import json
import os
import sys
import tempfile

import sentencepiece as spm
import torch
from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline,
                       LTXVideoTransformer3DModel)
from diffusers.utils.torch_utils import randn_tensor
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel, T5Tokenizer

WORDS = ("a red green blue yellow purple orange white black ball circle square triangle star moves "
         "slides falls bounces rotates grows shrinks to the left right up down on floor small big "
         "quickly slowly over under and with background").split()


def make_tokenizer(workdir):
    """A SentencePiece unigram tokenizer trained offline on caption-like text."""
    import random
    rnd = random.Random(0)
    corpus = os.path.join(workdir, "corpus.txt")
    with open(corpus, "w") as f:
        for _ in range(2000):
            f.write(" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 9))) + "\n")
    prefix = os.path.join(workdir, "sp")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=64, model_type="unigram",
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0,
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    # transformers 5: building from (piece, score) pairs tokenises exactly like SentencePiece.
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return T5Tokenizer(vocab=vocab, extra_ids=0, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def make_text_encoder(vocab_size):
    config = T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
                      is_encoder_decoder=False, use_cache=False)
    return T5EncoderModel(config)


def make_transformer(latent_channels):
    # Like LTX-2B (rms_norm_across_heads, gelu-approximate, biases) but 2 layers of 4 heads x 8.
    return LTXVideoTransformer3DModel(in_channels=latent_channels, out_channels=latent_channels,
                                      num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                      num_layers=2, caption_channels=32)


VAES = {
    # The 0.9.5+ structure (timestep-conditioned decoder, residual upsamplers,
    # spatial/temporal downsamplers) with small channels.
    "v095": dict(latent_channels=8, block_out_channels=(4, 8, 16, 16, 16),
                 down_block_types=("LTXVideo095DownBlock3D",) * 4,
                 decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
                 decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, True),
                 decoder_spatio_temporal_scaling=(True, True, True),
                 decoder_inject_noise=(False, False, False, False),
                 downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
                 upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
                 patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
                 spatial_compression_ratio=32, temporal_compression_ratio=8),
    # The 0.9.0 structure: no timestep conditioning, conv downsamplers.
    "v090": dict(latent_channels=8, block_out_channels=(4, 8, 16, 16),
                 down_block_types=("LTXVideoDownBlock3D",) * 4, decoder_block_out_channels=(4, 8, 16, 16),
                 layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
                 spatio_temporal_scaling=(True, True, True, False),
                 decoder_spatio_temporal_scaling=(True, True, True, False),
                 decoder_inject_noise=(False, False, False, False, False),
                 downsample_type=("conv", "conv", "conv", "conv"), upsample_residual=(False,) * 4,
                 upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=4, patch_size_t=1,
                 encoder_causal=True, decoder_causal=False),
}

CALLS = {
    # Non-square, several latent frames, CFG with a negative prompt, default schedule.
    "v095": dict(prompt="a red ball bounces on a blue floor", negative_prompt="blurry", width=96, height=64,
                 num_frames=17, frame_rate=24, num_inference_steps=3, guidance_scale=3.0, seed=1234,
                 max_sequence_length=32, decode_timestep=0.05, decode_noise_scale=0.0),
    # Explicit timesteps (as the distilled models use), no CFG.
    "v090": dict(prompt="a small yellow square slides to the left", negative_prompt=None, width=64, height=96,
                 num_frames=9, frame_rate=25, timesteps=[1000.0, 900.0, 500.0], guidance_scale=1.0, seed=99,
                 max_sequence_length=32, decode_timestep=0.0, decode_noise_scale=0.0),
}


def randomize(module, generator):
    """Freshly initialised LTX modules zero some projections (e.g. scale_shift_table, the
    timestep-conditioning tables); give every parameter nonzero values so parity tests
    see every weight."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def build(variant, workdir):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    tokenizer = make_tokenizer(workdir)
    text_encoder = make_text_encoder(tokenizer.vocab_size).eval()
    transformer = make_transformer(VAES[variant]["latent_channels"]).eval()
    vae = AutoencoderKLLTXVideo(**VAES[variant]).eval()
    for m in (text_encoder, transformer, vae):
        randomize(m, g)
    with torch.no_grad():
        # Non-trivial latent statistics so (de)normalisation is exercised.
        vae.latents_mean.copy_(torch.randn(vae.latents_mean.shape, generator=g) * 0.1)
        vae.latents_std.copy_(1.0 + torch.rand(vae.latents_std.shape, generator=g))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False)
    return LTXConditionPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                transformer=transformer)


def capture(module, name, store, first_only=True):
    """Records a module's tensor inputs and output: its first call only, or
    every call as name.0, name.1, ..."""
    calls = [0]

    def hook(_module, args, kwargs, output):
        if first_only and calls[0] > 0:
            return
        prefix = name if first_only else f"{name}.{calls[0]}"
        calls[0] += 1
        for k, v in kwargs.items():
            if isinstance(v, torch.Tensor):
                store[f"{prefix}.{k}"] = v.detach().float().contiguous().clone()
        for i, v in enumerate(args):
            if isinstance(v, torch.Tensor):
                store[f"{prefix}.arg{i}"] = v.detach().float().contiguous().clone()
        out = output[0] if isinstance(output, (tuple, list)) else getattr(output, "sample", output)
        if hasattr(out, "last_hidden_state"):
            out = out.last_hidden_state
        store[prefix + ".out"] = out.detach().float().contiguous().clone()
    return module.register_forward_hook(hook, with_kwargs=True)


def run(variant, out_root):
    out = os.path.join(out_root, variant)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        pipe = build(variant, work)
        pipe.save_pretrained(os.path.join(out, "pipeline"), safe_serialization=True)
    # Reload from disk: the fixture is what the saved files compute.
    pipe = LTXConditionPipeline.from_pretrained(os.path.join(out, "pipeline"))
    for m in (pipe.text_encoder, pipe.transformer, pipe.vae):
        m.eval()
    call = dict(CALLS[variant])
    seed = call.pop("seed")
    store = {}
    hooks = [capture(pipe.text_encoder, "text_encoder", store, first_only=False),
             capture(pipe.transformer, "transformer", store)]
    decode_store = {}
    hooks.append(capture(pipe.vae.decoder, "vae_decoder", decode_store))

    # The initial noise is the generator's first draw: record it.
    num_latent_frames = (call["num_frames"] - 1) // pipe.vae_temporal_compression_ratio + 1
    shape = (1, pipe.transformer.config.in_channels, num_latent_frames,
             call["height"] // pipe.vae_spatial_compression_ratio,
             call["width"] // pipe.vae_spatial_compression_ratio)
    store["latents"] = randn_tensor(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)

    with torch.no_grad():
        tokens = pipe.tokenizer(call["prompt"], padding="max_length", max_length=call["max_sequence_length"],
                                truncation=True, add_special_tokens=True, return_tensors="pt")
        store["prompt_input_ids"] = tokens.input_ids.float()
        store["prompt_attention_mask"] = tokens.attention_mask.float()
        frames = pipe(**call, generator=torch.Generator().manual_seed(seed), output_type="pt").frames
    for h in hooks:
        h.remove()
    store["frames"] = frames[0].permute(0, 2, 3, 1).contiguous()  # [F, H, W, 3] in [0, 1]
    # The decoder's input (after denormalisation and decode noise); its output
    # is `frames` before postprocessing, so only the input is kept.
    store.update({k: v for k, v in decode_store.items() if not k.endswith(".out")})

    # A standalone VAE round: encode a random video (posterior mean) and decode a random latent.
    with torch.no_grad():
        g = torch.Generator().manual_seed(7)
        video = torch.rand((1, 3, 9, 32, 64), generator=g) * 2 - 1
        store["vae_encode.in"] = video
        store["vae_encode.mean"] = pipe.vae.encode(video).latent_dist.mean.contiguous()
        z = torch.randn((1, pipe.vae.config.latent_channels, 2, 1, 2), generator=g)
        store["vae_decode.in"] = z
        t = torch.tensor([0.05]) if pipe.vae.config.timestep_conditioning else None
        store["vae_decode.out"] = pipe.vae.decode(z, t, return_dict=False)[0].contiguous()
    store = {k: v.contiguous() for k, v in store.items()}
    save_file(store, os.path.join(out, "reference.safetensors"))
    call["seed"] = seed
    # Tokenisation as the pipeline does it: padded to max_length, truncated with </s> kept.
    prompts = [call["prompt"], "", "A Red BALL, bounces!! on the floor... 42 ünïcode",
               " ".join(["a red ball bounces"] * 20), "zebra quokka"]
    tokenizer_cases = []
    for p in prompts:
        t = pipe.tokenizer(p, padding="max_length", max_length=call["max_sequence_length"], truncation=True,
                           add_special_tokens=True)
        tokenizer_cases.append({"prompt": p, "ids": t.input_ids, "mask": t.attention_mask})
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"call": call, "tokenizer": tokenizer_cases,
                   "tensors": {k: list(v.shape) for k, v in sorted(store.items())}}, f, indent=1)
    print(variant, {k: tuple(v.shape) for k, v in sorted(store.items())})


if __name__ == "__main__":
    for v in VAES:
        run(v, sys.argv[1])
