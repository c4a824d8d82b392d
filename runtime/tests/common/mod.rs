//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use framecast::bundle::{
    Component, FORMAT, FORMAT_VERSION, Manifest, Quantization, RowLayout, ShardEntry, ShardPacker,
    TensorEntry, WeightDType, sha256_hex,
};
use framecast::kernels::testing::Rng;
use framecast::quant::quantize;
use framecast::{AdapterChoice, Gpu};
use half::f16;

/// The test adapter, or None (the test then passes with a note) unless
/// FRAMECAST_REQUIRE_GPU=1.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(
        || match pollster::block_on(Gpu::new(&AdapterChoice::from_env())) {
            Ok(g) => {
                eprintln!("adapter: {}", g.describe());
                Some(g)
            }
            Err(e) => {
                let required = std::env::var("FRAMECAST_REQUIRE_GPU").as_deref() == Ok("1");
                assert!(!required, "no adapter and FRAMECAST_REQUIRE_GPU=1: {e}");
                eprintln!("skipped: no GPU adapter ({e})");
                None
            }
        },
    )
    .as_ref()
}

pub struct Built {
    pub manifest: Manifest,
    /// What each tensor must decode to.
    pub values: HashMap<String, Vec<f32>>,
}

/// Writes a small bundle by hand (the quantizer's own tests cover real
/// checkpoints): q4, q8, f16 and f32 tensors, 2 KiB shards so that tensors
/// split across shards, with an odd number of groups per row for one.
pub fn build_bundle(dir: &Path) -> Built {
    let specs: &[(&str, &str, WeightDType, &[usize])] = &[
        ("text_encoder", "embed", WeightDType::F16, &[33, 7]),
        ("text_encoder", "proj.weight", WeightDType::Q8, &[20, 96]),
        ("transformer", "blocks.0.weight", WeightDType::Q4, &[40, 96]),
        ("transformer", "blocks.0.bias", WeightDType::F32, &[40]),
        ("transformer", "blocks.1.weight", WeightDType::Q4, &[64, 64]),
        ("vae", "conv.weight", WeightDType::F16, &[9, 4, 3, 3]),
    ];
    let mut rng = Rng::new(11);
    let mut packer = ShardPacker::new(2048).unwrap();
    let mut shards: Vec<Vec<u8>> = Vec::new();
    let mut tensors = Vec::new();
    let mut values = HashMap::new();
    for &(component, name, dtype, shape) in specs {
        let group = if dtype.quant().is_some() { 32 } else { 0 };
        let layout = RowLayout::new(dtype, shape, group).unwrap();
        let w = rng.normal_vec(layout.numel(), 0.5);
        let parts = packer.place(name, &layout).unwrap();
        let mut decoded = Vec::new();
        for p in &parts {
            let k = layout.row_len;
            let rows = &w[p.rows[0] * k..p.rows[1] * k];
            let (v, s): (Vec<u8>, Vec<u8>) = match dtype.quant() {
                Some(kind) => {
                    let q = quantize(rows, p.rows[1] - p.rows[0], k, group, kind).unwrap();
                    decoded.extend(q.dequantize());
                    let v = q.values.iter().flat_map(|x| x.to_le_bytes()).collect();
                    let s = q
                        .scale_words()
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect();
                    (v, s)
                }
                None if dtype == WeightDType::F16 => {
                    let h: Vec<f16> = rows.iter().map(|&x| f16::from_f32(x)).collect();
                    decoded.extend(h.iter().map(|x| x.to_f32()));
                    (h.iter().flat_map(|x| x.to_le_bytes()).collect(), Vec::new())
                }
                None => {
                    decoded.extend_from_slice(rows);
                    (
                        rows.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        Vec::new(),
                    )
                }
            };
            while shards.len() <= p.shard {
                shards.push(Vec::new());
            }
            let buf = &mut shards[p.shard];
            let mut put = |offset: u64, bytes: &[u8]| {
                let end = offset as usize + bytes.len();
                if buf.len() < end {
                    buf.resize(end, 0);
                }
                buf[offset as usize..end].copy_from_slice(bytes);
            };
            put(p.values.offset, &v);
            if let Some(r) = p.scales {
                put(r.offset, &s);
            }
        }
        values.insert(name.to_string(), decoded);
        tensors.push(TensorEntry {
            name: name.to_string(),
            component: component.to_string(),
            dtype,
            shape: shape.to_vec(),
            group,
            source_dtype: "f32".into(),
            parts,
            error: None,
        });
    }
    let mut entries = Vec::new();
    for bytes in &shards {
        let sha256 = sha256_hex(bytes);
        let file = ShardEntry::file_name(&sha256);
        fs::write(dir.join(&file), bytes).unwrap();
        entries.push(ShardEntry {
            file,
            bytes: bytes.len() as u64,
            sha256,
        });
    }
    let component = |class: &str| Component {
        library: "diffusers".into(),
        class: class.into(),
        config: serde_json::json!({}),
    };
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        family: "ltx".into(),
        pipeline: serde_json::json!({"_class_name": "LTXConditionPipeline"}),
        components: BTreeMap::from([
            ("text_encoder".to_string(), component("T5EncoderModel")),
            (
                "transformer".to_string(),
                component("LTXVideoTransformer3DModel"),
            ),
            ("vae".to_string(), component("AutoencoderKLLTXVideo")),
        ]),
        tokenizer: BTreeMap::new(),
        scheduler: None,
        defaults: Default::default(),
        quantization: Quantization {
            weights: WeightDType::Q4,
            group: 32,
            shard_size: 2048,
        },
        shards: entries,
        tensors,
    };
    fs::write(dir.join("manifest.json"), manifest.to_json().unwrap()).unwrap();
    Built { manifest, values }
}
