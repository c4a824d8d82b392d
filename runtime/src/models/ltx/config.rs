//! Component configurations, read from the checkpoint's `config.json` files
//! (diffusers field names), with named presets for the published models.

use serde::Deserialize;

/// `LTXVideoTransformer3DModel`'s config.json.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct TransformerConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub patch_size: usize,
    pub patch_size_t: usize,
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub cross_attention_dim: usize,
    pub num_layers: usize,
    pub activation_fn: String,
    pub qk_norm: String,
    pub norm_elementwise_affine: bool,
    pub norm_eps: f64,
    pub caption_channels: usize,
    pub attention_bias: bool,
    pub attention_out_bias: bool,
}

impl Default for TransformerConfig {
    /// diffusers' constructor defaults, which are LTX-Video 2B (0.9.0 to 0.9.8).
    fn default() -> Self {
        TransformerConfig::ltx_2b()
    }
}

impl TransformerConfig {
    /// LTX-Video 2B (all 0.9.x releases): 28 layers, 32 heads x 64.
    /// Source: diffusers scripts/convert_ltx_to_diffusers.py, get_transformer_config.
    pub fn ltx_2b() -> Self {
        TransformerConfig {
            in_channels: 128,
            out_channels: 128,
            patch_size: 1,
            patch_size_t: 1,
            num_attention_heads: 32,
            attention_head_dim: 64,
            cross_attention_dim: 2048,
            num_layers: 28,
            activation_fn: "gelu-approximate".into(),
            qk_norm: "rms_norm_across_heads".into(),
            norm_elementwise_affine: false,
            norm_eps: 1e-6,
            caption_channels: 4096,
            attention_bias: true,
            attention_out_bias: true,
        }
    }

    /// LTX-Video 13B (0.9.7+): 48 layers, 32 heads x 128, cross dim 4096.
    /// Source: diffusers scripts/convert_ltx_to_diffusers.py ("0.9.7").
    pub fn ltx_13b() -> Self {
        TransformerConfig {
            attention_head_dim: 128,
            cross_attention_dim: 4096,
            num_layers: 48,
            ..Self::ltx_2b()
        }
    }

    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }
}

/// `AutoencoderKLLTXVideo`'s config.json.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub latent_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub decoder_block_out_channels: Vec<usize>,
    pub layers_per_block: Vec<usize>,
    pub decoder_layers_per_block: Vec<usize>,
    pub spatio_temporal_scaling: Vec<bool>,
    pub decoder_spatio_temporal_scaling: Vec<bool>,
    pub decoder_inject_noise: Vec<bool>,
    pub downsample_type: Vec<String>,
    pub upsample_residual: Vec<bool>,
    pub upsample_factor: Vec<usize>,
    pub timestep_conditioning: bool,
    pub patch_size: usize,
    pub patch_size_t: usize,
    pub resnet_norm_eps: f64,
    pub scaling_factor: f64,
    pub encoder_causal: bool,
    pub decoder_causal: bool,
    pub spatial_compression_ratio: Option<usize>,
    pub temporal_compression_ratio: Option<usize>,
}

impl Default for VaeConfig {
    /// diffusers' constructor defaults: the 0.9.0 VAE.
    fn default() -> Self {
        VaeConfig::v090()
    }
}

impl VaeConfig {
    /// The 0.9.0 VAE. Source: convert_ltx_to_diffusers.py get_vae_config("0.9.0").
    pub fn v090() -> Self {
        VaeConfig {
            in_channels: 3,
            out_channels: 3,
            latent_channels: 128,
            block_out_channels: vec![128, 256, 512, 512],
            down_block_types: vec!["LTXVideoDownBlock3D".into(); 4],
            decoder_block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: vec![4, 3, 3, 3, 4],
            decoder_layers_per_block: vec![4, 3, 3, 3, 4],
            spatio_temporal_scaling: vec![true, true, true, false],
            decoder_spatio_temporal_scaling: vec![true, true, true, false],
            decoder_inject_noise: vec![false; 5],
            downsample_type: vec!["conv".into(); 4],
            upsample_residual: vec![false; 4],
            upsample_factor: vec![1; 4],
            timestep_conditioning: false,
            patch_size: 4,
            patch_size_t: 1,
            resnet_norm_eps: 1e-6,
            scaling_factor: 1.0,
            encoder_causal: true,
            decoder_causal: false,
            spatial_compression_ratio: None,
            temporal_compression_ratio: None,
        }
    }

    /// The 0.9.5+ VAE (0.9.5, 0.9.7, 0.9.8): timestep-conditioned decoder.
    /// Source: convert_ltx_to_diffusers.py get_vae_config("0.9.5"/"0.9.7").
    pub fn v095() -> Self {
        VaeConfig {
            block_out_channels: vec![128, 256, 512, 1024, 2048],
            down_block_types: vec!["LTXVideo095DownBlock3D".into(); 4],
            decoder_block_out_channels: vec![256, 512, 1024],
            layers_per_block: vec![4, 6, 6, 2, 2],
            decoder_layers_per_block: vec![5, 5, 5, 5],
            spatio_temporal_scaling: vec![true; 4],
            decoder_spatio_temporal_scaling: vec![true; 3],
            decoder_inject_noise: vec![false; 4],
            downsample_type: vec![
                "spatial".into(),
                "temporal".into(),
                "spatiotemporal".into(),
                "spatiotemporal".into(),
            ],
            upsample_residual: vec![true; 3],
            upsample_factor: vec![2; 3],
            timestep_conditioning: true,
            spatial_compression_ratio: Some(32),
            temporal_compression_ratio: Some(8),
            ..Self::v090()
        }
    }

    /// Pixels per latent along height and width, as diffusers derives it.
    pub fn spatial_compression(&self) -> usize {
        self.spatial_compression_ratio.unwrap_or_else(|| {
            self.patch_size * (1 << self.spatio_temporal_scaling.iter().filter(|&&s| s).count())
        })
    }

    /// Frames per latent frame (after the first), as diffusers derives it.
    pub fn temporal_compression(&self) -> usize {
        self.temporal_compression_ratio.unwrap_or_else(|| {
            self.patch_size_t * (1 << self.spatio_temporal_scaling.iter().filter(|&&s| s).count())
        })
    }
}

/// The T5 encoder's config.json (transformers' `T5Config`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    pub relative_attention_max_distance: usize,
    pub layer_norm_epsilon: f64,
    pub feed_forward_proj: String,
}

impl Default for T5Config {
    fn default() -> Self {
        T5Config::v1_1_xxl()
    }
}

impl T5Config {
    /// google/t5-v1_1-xxl (LTX-Video's and Wan's prompt encoder).
    /// Source: that checkpoint's config.json.
    pub fn v1_1_xxl() -> Self {
        T5Config {
            vocab_size: 32128,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10240,
            num_layers: 24,
            num_heads: 64,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: "gated-gelu".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: serde::de::DeserializeOwned>(variant: &str, component: &str) -> T {
        let path = format!(
            "{}/../tests/fixtures/ltx/{variant}/pipeline/{component}/config.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn fixture_configs_parse_and_derive_the_pipeline_ratios() {
        for variant in ["v095", "v090"] {
            let t: TransformerConfig = read(variant, "transformer");
            assert_eq!(
                (t.num_attention_heads, t.attention_head_dim, t.num_layers),
                (4, 8, 2)
            );
            let v: VaeConfig = read(variant, "vae");
            // The pipeline's own ratios for these fixtures (reference.json sizes): 32 and 8.
            assert_eq!(
                (v.spatial_compression(), v.temporal_compression()),
                (32, 8),
                "{variant}"
            );
            let e: T5Config = read(variant, "text_encoder");
            assert_eq!((e.d_model, e.num_heads, e.d_kv), (32, 4, 8));
        }
        assert_eq!(VaeConfig::v090().spatial_compression(), 32);
        assert_eq!(VaeConfig::v090().temporal_compression(), 8);
        assert_eq!(TransformerConfig::ltx_2b().inner_dim(), 2048);
    }
}
