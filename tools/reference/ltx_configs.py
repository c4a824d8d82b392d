"""Component configurations for LTX-Video pipelines, tiny and real-sized.

The real sizes come from diffusers' `scripts/convert_ltx_to_diffusers.py`
(`get_transformer_config` for the 2B models, `get_vae_config("0.9.5")`, which
0.9.7 and 0.9.8 share) and from google/t5-v1_1-xxl's config.json. The tiny
ones keep every module type of the real ones (0.9.5 down blocks, timestep
conditioning, gated-GELU T5) at widths that make a fixture of a few hundred KB.
"""

TRANSFORMER_2B = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "attention_head_dim": 64,
    "cross_attention_dim": 2048,
    "num_layers": 28,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 4096,
    "attention_bias": True,
    "attention_out_bias": True,
}

VAE_095 = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "block_out_channels": (128, 256, 512, 1024, 2048),
    "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
    "decoder_block_out_channels": (256, 512, 1024),
    "layers_per_block": (4, 6, 6, 2, 2),
    "decoder_layers_per_block": (5, 5, 5, 5),
    "spatio_temporal_scaling": (True, True, True, True),
    "decoder_spatio_temporal_scaling": (True, True, True),
    "decoder_inject_noise": (False, False, False, False),
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "upsample_residual": (True, True, True),
    "upsample_factor": (2, 2, 2),
    "timestep_conditioning": True,
    "patch_size": 4,
    "patch_size_t": 1,
    "resnet_norm_eps": 1e-6,
    "scaling_factor": 1.0,
    "encoder_causal": True,
    "decoder_causal": False,
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}

T5_XXL = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
}

# Widths are multiples of 32 where a weight should be quantised (the q4 group
# is 32 along the input dimension) and deliberately not elsewhere (the VAE's
# 3 * 4 * 4 patch input), so fixtures exercise both paths of the quantizer.
# The VAE decoder's widths halve at every upsampling, as in the real model
# (diffusers' up blocks then need no timestep-conditioned input resnet).
TRANSFORMER_TINY = {
    **TRANSFORMER_2B,
    "in_channels": 32,
    "out_channels": 32,
    "num_attention_heads": 2,
    "attention_head_dim": 32,
    "cross_attention_dim": 64,
    "num_layers": 2,
    "caption_channels": 64,
}

VAE_TINY = {
    **VAE_095,
    "latent_channels": 32,
    "block_out_channels": (8, 16, 16, 32, 32),
    "decoder_block_out_channels": (8, 16, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1),
}

T5_TINY = {
    **T5_XXL,
    "vocab_size": 64,
    "d_model": 64,
    "d_kv": 32,
    "d_ff": 128,
    "num_layers": 2,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 16,
}

# FlowMatchEulerDiscreteScheduler settings of the 0.9.5 and 0.9.7 conversions.
SCHEDULER = {"use_dynamic_shifting": False}

# Those of the 0.9.8 conversion (the script's default branch): a
# resolution-dependent shift.
SCHEDULER_098 = {
    "use_dynamic_shifting": True,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": 0.1,
}

MODEL_INDEX_CLASSES = {
    "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5TokenizerFast"],
    "transformer": ["diffusers", "LTXVideoTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLLTXVideo"],
}


def tiny_tokenizer(vocab_size: int):
    """A T5 fast tokenizer over a made-up Unigram vocabulary.

    No hub access here, so T5's real sentencepiece model is not available;
    the fixtures need a tokenizer.json of the right kind, not T5's words.
    """
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    letters = "▁abcdefghijklmnopqrstuvwxyz"
    for i, ch in enumerate(letters):
        pieces.append((ch, -1.0 - i * 0.01))
    words = ["▁a", "▁the", "▁cat", "▁red", "▁ball", "▁on", "▁blue", "▁sky", "▁dog", "▁runs"]
    pieces += [(w, -0.5) for w in words]
    while len(pieces) < vocab_size:
        pieces.append((f"▁w{len(pieces)}", -5.0))
    return T5TokenizerFast(vocab=pieces[:vocab_size], extra_ids=0, model_max_length=128)
