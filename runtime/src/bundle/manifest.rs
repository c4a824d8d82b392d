//! `manifest.json`: what a bundle holds and where. The quantizer writes it,
//! the loader reads it; [`Manifest::parse`] accepts only manifests whose every
//! offset, size and reference is possible, so later code can index freely.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BundleError;
use super::layout::{ALIGN, Part, Region, RowLayout, WeightDType};

/// The `format` field of every manifest.
pub const FORMAT: &str = "framecast-bundle";
/// Bumped on any change a reader of the previous version would misread.
pub const FORMAT_VERSION: u64 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
/// Hex digits of the sha256 in a shard's file name (`<prefix>.bin`).
pub const SHARD_NAME_HEX: usize = 16;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u64,
    /// Model family, e.g. `ltx`.
    pub family: String,
    /// The checkpoint's `model_index.json`.
    pub pipeline: Value,
    /// Weight-bearing components (`transformer`, `vae`, `text_encoder`).
    pub components: BTreeMap<String, Component>,
    /// The tokenizer folder's JSON files by name (`tokenizer.json`, ...).
    #[serde(default)]
    pub tokenizer: BTreeMap<String, Value>,
    /// `scheduler/scheduler_config.json`.
    #[serde(default)]
    pub scheduler: Option<Value>,
    /// What the model was trained for (the checkpoint's `framecast.json`),
    /// used where a caller leaves a setting out.
    #[serde(default, skip_serializing_if = "ModelDefaults::is_empty")]
    pub defaults: ModelDefaults,
    pub quantization: Quantization,
    pub shards: Vec<ShardEntry>,
    /// In load order: text encoder, transformer, VAE decoder, VAE encoder.
    pub tensors: Vec<TensorEntry>,
}

/// A model's native settings. Every field is optional; published
/// checkpoints carry none, the demo model all of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f32>,
    /// An explicit schedule (diffusers' 0-1000 scale), used when a caller
    /// gives neither steps nor timesteps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timesteps: Option<Vec<f32>>,
    /// The sizes it was trained at, [width, height].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<[usize; 2]>,
    /// A linear map from (normalised) latent channels to RGB in [0, 1], for
    /// cheap previews while denoising.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<LatentPreview>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentPreview {
    /// One [r, g, b] row per latent channel.
    pub weights: Vec<[f32; 3]>,
    pub bias: [f32; 3],
}

impl ModelDefaults {
    pub fn is_empty(&self) -> bool {
        *self == ModelDefaults::default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// `diffusers` or `transformers`, from model_index.json.
    pub library: String,
    pub class: String,
    /// The component's config.json.
    pub config: Value,
}

/// The settings the quantizer ran with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    pub weights: WeightDType,
    pub group: usize,
    pub shard_size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub file: String,
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// The checkpoint's own name, unique within its component.
    pub name: String,
    pub component: String,
    pub dtype: WeightDType,
    pub shape: Vec<usize>,
    /// Quantisation group along a row (q4/q8), 0 otherwise.
    #[serde(default)]
    pub group: usize,
    /// `f32`, `f16` or `bf16`: what the checkpoint stored.
    pub source_dtype: String,
    pub parts: Vec<Part>,
    /// The quantisation error, for q4/q8 tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<QuantError>,
}

/// Signal-to-quantisation-noise ratio and largest absolute error of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantError {
    /// `null` in JSON when infinite (an exact copy).
    #[serde(with = "infinite_as_null")]
    pub sqnr_db: f64,
    pub max_abs: f64,
}

mod infinite_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

impl TensorEntry {
    pub fn layout(&self) -> Result<RowLayout, BundleError> {
        RowLayout::new(self.dtype, &self.shape, self.group)
            .map_err(|e| BundleError::tensor(&self.key(), e))
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// `component/name`: unique across the bundle.
    pub fn key(&self) -> String {
        format!("{}/{}", self.component, self.name)
    }

    /// Bytes in the bundle (values and scales, no padding).
    pub fn stored_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.values.bytes + p.scales.map_or(0, |s| s.bytes))
            .sum()
    }

    /// Bytes the checkpoint used for this tensor.
    pub fn source_bytes(&self) -> u64 {
        let size = match self.source_dtype.as_str() {
            "f32" => 4,
            _ => 2,
        };
        self.numel() as u64 * size
    }
}

impl ShardEntry {
    /// The content-addressed file name of a shard with this sha256.
    pub fn file_name(sha256: &str) -> String {
        format!("{}.bin", &sha256[..SHARD_NAME_HEX.min(sha256.len())])
    }
}

/// Just enough to tell a manifest of another version from a broken one.
#[derive(Deserialize)]
struct Probe {
    format: Option<String>,
    format_version: Option<u64>,
}

impl Manifest {
    /// Parses and validates `manifest.json`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, BundleError> {
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if probe.format.as_deref() != Some(FORMAT) {
            return Err(BundleError::Malformed(format!(
                "the \"format\" field is {:?}, not {FORMAT:?}",
                probe.format
            )));
        }
        match probe.format_version {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(BundleError::Version {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            None => return Err(BundleError::Malformed("no format_version".into())),
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Pretty JSON, deterministic (configs are sorted maps).
    pub fn to_json(&self) -> Result<Vec<u8>, BundleError> {
        let mut v =
            serde_json::to_vec_pretty(self).map_err(|e| BundleError::Malformed(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Checks every reference, offset and size; see the module docs.
    pub fn validate(&self) -> Result<(), BundleError> {
        let mut files = HashSet::new();
        for s in &self.shards {
            let hex_ok = s.sha256.len() == 64
                && s.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                return Err(BundleError::invalid(format!(
                    "shard {}: sha256 {:?} is not 64 lowercase hex digits",
                    s.file, s.sha256
                )));
            }
            // Content addressing is what lets a CDN cache shards forever.
            if s.file != ShardEntry::file_name(&s.sha256) {
                return Err(BundleError::invalid(format!(
                    "shard {:?} is not named after its sha256 ({})",
                    s.file,
                    ShardEntry::file_name(&s.sha256)
                )));
            }
            if !files.insert(&s.file) {
                return Err(BundleError::invalid(format!(
                    "shard {} listed twice",
                    s.file
                )));
            }
        }
        let mut regions: Vec<Vec<(Region, usize)>> = vec![Vec::new(); self.shards.len()];
        let mut keys = HashSet::new();
        for (t_index, t) in self.tensors.iter().enumerate() {
            let key = t.key();
            if !self.components.contains_key(&t.component) {
                return Err(BundleError::invalid(format!(
                    "tensor {key}: no component {:?}",
                    t.component
                )));
            }
            if !keys.insert(key.clone()) {
                return Err(BundleError::invalid(format!("tensor {key} listed twice")));
            }
            let layout = t.layout()?;
            if t.parts.is_empty() {
                return Err(BundleError::invalid(format!("tensor {key} has no parts")));
            }
            let mut next_row = 0;
            for p in &t.parts {
                let bad = |what: String| BundleError::invalid(format!("tensor {key}: {what}"));
                if p.rows[0] != next_row || p.rows[1] < p.rows[0] || p.rows[1] > layout.rows {
                    return Err(bad(format!(
                        "part rows {:?} do not continue from row {next_row} of {}",
                        p.rows, layout.rows
                    )));
                }
                next_row = p.rows[1];
                let shard = self
                    .shards
                    .get(p.shard)
                    .ok_or_else(|| bad(format!("shard index {} out of range", p.shard)))?;
                let rows = p.rows[1] - p.rows[0];
                let expected = (layout.values_bytes(rows), layout.scales_bytes(rows));
                if (p.values.bytes, p.scales.map(|s| s.bytes)) != expected {
                    return Err(bad(format!(
                        "rows {:?} need {expected:?} bytes of values and scales, the part has \
                         {} and {:?}",
                        p.rows,
                        p.values.bytes,
                        p.scales.map(|s| s.bytes)
                    )));
                }
                for r in std::iter::once(p.values).chain(p.scales) {
                    let fits = r.end().is_some_and(|end| end <= shard.bytes);
                    if r.offset % ALIGN != 0 || !fits {
                        return Err(bad(format!(
                            "region {}+{} is unaligned or past the end of shard {} ({} bytes)",
                            r.offset, r.bytes, shard.file, shard.bytes
                        )));
                    }
                    regions[p.shard].push((r, t_index));
                }
            }
            if next_row != layout.rows {
                return Err(BundleError::invalid(format!(
                    "tensor {key}: parts cover {next_row} of {} rows",
                    layout.rows
                )));
            }
        }
        for (shard, mut list) in regions.into_iter().enumerate() {
            list.sort_by_key(|(r, _)| r.offset);
            for pair in list.windows(2) {
                let ((a, ta), (b, tb)) = (pair[0], pair[1]);
                if a.offset + a.bytes > b.offset {
                    return Err(BundleError::invalid(format!(
                        "tensors {} and {} overlap in shard {}",
                        self.tensors[ta].key(),
                        self.tensors[tb].key(),
                        self.shards[shard].file
                    )));
                }
            }
        }
        Ok(())
    }

    /// Total bytes of all shards.
    pub fn total_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    pub fn tensor(&self, component: &str, name: &str) -> Option<&TensorEntry> {
        self.tensors
            .iter()
            .find(|t| t.component == component && t.name == name)
    }
}
