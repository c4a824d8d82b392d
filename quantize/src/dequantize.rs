//! `dequantize`: a bundle back to a diffusers pipeline folder in f32, so the
//! reference implementation can run exactly the weights our q4 path runs.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use framecast::bundle::{BundleLoader, FsSource, Manifest, TensorData};
use safetensors::{Dtype, View};
use serde_json::Value;

struct F32View {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(v)?;
    text.push(b'\n');
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub fn dequantize(bundle: &Path, out: &Path, force: bool) -> Result<Manifest> {
    if out.exists() && !force {
        bail!("{} exists (use --force to replace it)", out.display());
    }
    let mut loader = pollster::block_on(BundleLoader::open(FsSource::new(bundle)))?;
    let tensors: Vec<TensorData> = pollster::block_on(loader.load_all(&mut |_| {}))?;
    let manifest = (**loader.manifest()).clone();

    let mut tmp_name = out
        .file_name()
        .context("output is not a folder name")?
        .to_os_string();
    tmp_name.push(format!(".partial-{}", std::process::id()));
    let tmp = out.with_file_name(tmp_name);
    let result = write_folder(&tmp, &manifest, &tensors);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    fs::rename(&tmp, out).with_context(|| format!("moving {} into place", out.display()))?;
    Ok(manifest)
}

fn write_folder(dir: &Path, m: &Manifest, tensors: &[TensorData]) -> Result<()> {
    fs::create_dir_all(dir)?;
    write_json(&dir.join("model_index.json"), &m.pipeline)?;
    for (name, c) in &m.components {
        let sub = dir.join(name);
        fs::create_dir_all(&sub)?;
        write_json(&sub.join("config.json"), &c.config)?;
        let views: BTreeMap<&str, F32View> = tensors
            .iter()
            .filter(|t| &t.entry.component == name)
            .map(|t| {
                let data = t.to_f32().iter().flat_map(|v| v.to_le_bytes()).collect();
                (
                    t.entry.name.as_str(),
                    F32View {
                        shape: t.entry.shape.clone(),
                        data,
                    },
                )
            })
            .collect();
        // transformers names its weights model.safetensors, diffusers its own way.
        let file = if c.library == "transformers" {
            "model.safetensors"
        } else {
            "diffusion_pytorch_model.safetensors"
        };
        let mut meta = std::collections::HashMap::new();
        meta.insert("format".to_string(), "pt".to_string());
        safetensors::serialize_to_file(
            views.iter().map(|(k, v)| (*k, v)),
            Some(meta),
            &sub.join(file),
        )
        .with_context(|| format!("writing {name}/{file}"))?;
    }
    if !m.tokenizer.is_empty() {
        let sub = dir.join("tokenizer");
        fs::create_dir_all(&sub)?;
        for (file, v) in &m.tokenizer {
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                bail!("tokenizer file name {file:?} is not a plain name");
            }
            write_json(&sub.join(file), v)?;
        }
    }
    if let Some(s) = &m.scheduler {
        let sub = dir.join("scheduler");
        fs::create_dir_all(&sub)?;
        write_json(&sub.join("scheduler_config.json"), s)?;
    }
    Ok(())
}
