"""The demo model's components: LTX-Video's architecture at a size that
trains on a CPU in an hour and ships in a bundle of a few MB.

The VAE is 0.9.0-style (four down blocks, patch 4) with two spatio-temporal
scalings instead of the published models' three: 16x spatial and 4x
temporal compression instead of 32x and 8x. A VAE this small, trained for
minutes on a CPU, did not learn the published compression (reconstructions
stayed at about 16 dB, colours lost, after 1100 steps); at 16x/4x it learns
quickly, and the runtime reads the compression from the config anyway.
"""

# Native size and length: 128 x 128, 25 frames (about one second at 24 fps).
WIDTH, HEIGHT, FRAMES, FPS = 128, 128, 25, 24
# Sizes the transformer trains on (the VAE is fully convolutional and trains
# on crops), in turn: square twice as often as 16:9 and 9:16.
SIZES = ((128, 128), (224, 128), (128, 224))
BUCKETS = ((128, 128), (224, 128), (128, 128), (128, 224))
MAX_SEQUENCE_LENGTH = 256

VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 64,
    "block_out_channels": (24, 48, 64, 64),
    "down_block_types": ("LTXVideoDownBlock3D",) * 4,
    "decoder_block_out_channels": (24, 48, 64, 64),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
    "spatio_temporal_scaling": (True, True, False, False),
    "decoder_spatio_temporal_scaling": (True, True, False, False),
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
    "spatial_compression_ratio": 16,
    "temporal_compression_ratio": 4,
}

T5 = {
    "vocab_size": 192,  # set from the trained tokenizer
    "d_model": 128,
    "d_kv": 32,
    "d_ff": 256,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
    "dropout_rate": 0.0,
    "layer_norm_epsilon": 1e-6,
    "is_encoder_decoder": False,
    "use_cache": False,
}

TRANSFORMER = {
    "in_channels": 64,
    "out_channels": 64,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 6,
    "attention_head_dim": 32,
    "cross_attention_dim": 192,
    "num_layers": 4,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 128,
    "attention_bias": True,
    "attention_out_bias": True,
}

SCHEDULER = {"use_dynamic_shifting": False, "shift": 1.0}
