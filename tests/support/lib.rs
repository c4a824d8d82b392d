//! Shared by the workspace integration tests: the test adapter, the diffusers
//! fixtures under `tests/fixtures/ltx/<variant>/`, their conversion through
//! the quantizer into bundles, and the error figures the parity bars use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use framecast::bundle::{BundleLoader, FsSource, WeightDType};
use framecast::models::Weights;
use framecast::{AdapterChoice, Gpu};

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

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One diffusers fixture: `pipeline/` (diffusers layout), the recorded
/// tensors of `reference.safetensors` and the call of `reference.json`.
pub struct Fixture {
    pub variant: String,
    pub dir: PathBuf,
    pub call: serde_json::Value,
    tensors: Tensors,
}

impl Fixture {
    pub fn open(variant: &str) -> Result<Fixture> {
        let dir = repo_root().join("tests/fixtures/ltx").join(variant);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("reference.json"))?)?;
        let tensors = read_f32_tensors(&dir.join("reference.safetensors"))?;
        Ok(Fixture {
            variant: variant.to_string(),
            dir,
            call: json["call"].clone(),
            tensors,
        })
    }

    /// A recorded tensor: (shape, values).
    pub fn tensor(&self, name: &str) -> &(Vec<usize>, Vec<f32>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{}: no tensor {name} in the fixture", self.variant))
    }

    pub fn values(&self, name: &str) -> &[f32] {
        &self.tensor(name).1
    }

    /// The final frames diffusers makes from the weights of a q4 bundle
    /// (`tools/reference/ltx_q4_frames.py`): (shape, values).
    pub fn q4_frames(&self) -> Result<(Vec<usize>, Vec<f32>)> {
        let mut t = read_f32_tensors(&self.dir.join("reference_q4.safetensors"))?;
        t.remove("frames")
            .context("reference_q4.safetensors has no `frames`")
    }

    pub fn pipeline_dir(&self) -> PathBuf {
        self.dir.join("pipeline")
    }

    /// The fixture converted by the quantizer at `weights` (f32, q4, ...)
    /// into a fresh temporary bundle.
    pub fn bundle(&self, weights: WeightDType) -> Result<Bundle> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("bundle");
        let opts = framecast_quantize::Options {
            weights,
            // Small shards, so tensors of the fixture span several.
            shard_size: 256 << 10,
            ..Default::default()
        };
        framecast_quantize::convert(&self.pipeline_dir(), &dir, &opts)
            .with_context(|| format!("converting the {} fixture", self.variant))?;
        Ok(Bundle { _tmp: tmp, dir })
    }
}

pub type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Every tensor of a fixture file as f32 values: f32 as stored, f16
/// (frames kept small) and u8 (pixels) converted.
pub fn read_f32_tensors(path: &Path) -> Result<Tensors> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            safetensors::Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            safetensors::Dtype::U8 => data.iter().map(|&v| v as f32).collect(),
            other => anyhow::bail!("{name}: fixtures are f32, f16 or u8, not {other:?}"),
        };
        tensors.insert(name.to_string(), (view.shape().to_vec(), values));
    }
    Ok(tensors)
}

/// A converted bundle in a temporary folder (removed on drop).
pub struct Bundle {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Bundle {
    /// Every tensor of the bundle, loaded and verified.
    pub fn weights(&self) -> Result<Weights> {
        pollster::block_on(async {
            let mut loader = BundleLoader::open(FsSource::new(&self.dir)).await?;
            let all = loader.load_all(&mut |_| {}).await?;
            Ok(Weights::from_tensors(all))
        })
    }

    pub fn manifest(&self) -> Result<framecast::bundle::Manifest> {
        Ok(framecast::bundle::Manifest::parse(&std::fs::read(
            self.dir.join("manifest.json"),
        )?)?)
    }
}

/// `|a - b| / |b|` over all elements.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += ((g - w) as f64).powi(2);
        den += (w as f64).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// PSNR in dB of `got` against `want`, both in [0, 1] (peak 1).
pub fn psnr(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let mse = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| ((g - w) as f64).powi(2))
        .sum::<f64>()
        / got.len().max(1) as f64;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}
