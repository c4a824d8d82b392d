//! Reading a diffusers pipeline folder: `model_index.json`, each component's
//! config and safetensors weights (single files or shards with an
//! `*.index.json`), the tokenizer's JSON files and the scheduler config.
//! Weights are memory-mapped; nothing is read until a tensor is converted.

use std::collections::BTreeMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::family::{self, Family};
use framecast::bundle::{Component, ModelDefaults};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: not a valid safetensors file ({message}); is it truncated?")]
    Safetensors { path: String, message: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("tensor {name} contains {what} (element {index}); the checkpoint is damaged")]
    NotFinite {
        name: String,
        what: &'static str,
        index: usize,
    },
}

fn file_err(path: &Path, message: impl ToString) -> CheckpointError {
    CheckpointError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceDType {
    F32,
    F16,
    BF16,
}

impl SourceDType {
    pub fn size(self) -> usize {
        match self {
            SourceDType::F32 => 4,
            SourceDType::F16 | SourceDType::BF16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SourceDType::F32 => "f32",
            SourceDType::F16 => "f16",
            SourceDType::BF16 => "bf16",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SourceTensor {
    pub component: String,
    pub name: String,
    pub dtype: SourceDType,
    pub shape: Vec<usize>,
    file: usize,
    bytes: Range<usize>,
}

impl SourceTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn key(&self) -> String {
        format!("{}/{}", self.component, self.name)
    }
}

pub struct Checkpoint {
    pub dir: PathBuf,
    pub family: &'static Family,
    pub pipeline: Value,
    pub components: BTreeMap<String, Component>,
    pub tokenizer: BTreeMap<String, Value>,
    pub scheduler: Option<Value>,
    /// `framecast.json` beside `model_index.json`, where the model has one.
    pub defaults: ModelDefaults,
    /// Every weight, in the order the bundle stores them.
    pub tensors: Vec<SourceTensor>,
    maps: Vec<Mmap>,
}

pub fn read_json(path: &Path) -> Result<Value, CheckpointError> {
    let text = fs::read(path).map_err(|e| file_err(path, e))?;
    serde_json::from_slice(&text).map_err(|e| file_err(path, format!("invalid JSON: {e}")))
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let pipeline = read_json(&dir.join("model_index.json"))?;
        let class = pipeline
            .get("_class_name")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        let family = family::detect(class)?;
        let mut ck = Checkpoint {
            dir: dir.to_path_buf(),
            family,
            pipeline: pipeline.clone(),
            components: BTreeMap::new(),
            tokenizer: BTreeMap::new(),
            scheduler: None,
            defaults: ModelDefaults::default(),
            tensors: Vec::new(),
            maps: Vec::new(),
        };
        let defaults_file = dir.join("framecast.json");
        if defaults_file.is_file() {
            ck.defaults = serde_json::from_value(read_json(&defaults_file)?)
                .map_err(|e| file_err(&defaults_file, format!("unexpected contents: {e}")))?;
        }
        let Some(entries) = pipeline.as_object() else {
            return Err(file_err(&dir.join("model_index.json"), "not a JSON object"));
        };
        for (name, entry) in entries {
            if name.starts_with('_') {
                continue;
            }
            // ["library", "Class"]; [null, null] marks an absent optional component.
            let (Some(library), Some(class)) = (
                entry.get(0).and_then(Value::as_str),
                entry.get(1).and_then(Value::as_str),
            ) else {
                continue;
            };
            let sub = dir.join(name);
            match family.role(name) {
                family::Role::Tokenizer => ck.tokenizer = read_tokenizer(&sub)?,
                family::Role::Scheduler => {
                    ck.scheduler = Some(read_json(&sub.join("scheduler_config.json"))?)
                }
                family::Role::Weights => {
                    family.check_class(name, class)?;
                    let config = read_json(&sub.join("config.json"))?;
                    ck.read_weights(name, &sub)?;
                    ck.components.insert(
                        name.clone(),
                        Component {
                            library: library.to_string(),
                            class: class.to_string(),
                            config,
                        },
                    );
                }
                family::Role::Ignored => {}
            }
        }
        for required in family.required {
            if !ck.components.contains_key(*required) {
                return Err(CheckpointError::Unsupported(format!(
                    "{}: model_index.json lists no {required:?} component",
                    dir.display()
                )));
            }
        }
        let order = family::order_key;
        ck.tensors.sort_by_key(|t| order(family, t));
        Ok(ck)
    }

    /// Maps the component's safetensors files (through the index if sharded).
    fn read_weights(&mut self, component: &str, sub: &Path) -> Result<(), CheckpointError> {
        let listing = fs::read_dir(sub).map_err(|e| file_err(sub, e))?;
        let mut names: Vec<String> = listing
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        // Prefer the default variant (no `.fp16.` infix) when several exist.
        let index = names
            .iter()
            .filter(|n| n.ends_with(".safetensors.index.json"))
            .min_by_key(|n| n.matches('.').count());
        let files: Vec<String> = match index {
            Some(index) => {
                let path = sub.join(index);
                let v = read_json(&path)?;
                let map = v
                    .get("weight_map")
                    .and_then(Value::as_object)
                    .ok_or_else(|| file_err(&path, "no weight_map"))?;
                let mut files: Vec<String> = map
                    .values()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect();
                files.sort();
                files.dedup();
                files
            }
            None => names
                .iter()
                .filter(|n| n.ends_with(".safetensors"))
                .min_by_key(|n| n.matches('.').count())
                .cloned()
                .into_iter()
                .collect(),
        };
        if files.is_empty() {
            return Err(file_err(sub, "no .safetensors weights"));
        }
        for f in files {
            if f.contains('/') || f.contains('\\') {
                return Err(file_err(sub, format!("index names a file outside: {f}")));
            }
            self.map_file(component, &sub.join(f))?;
        }
        Ok(())
    }

    fn map_file(&mut self, component: &str, path: &Path) -> Result<(), CheckpointError> {
        let file = fs::File::open(path).map_err(|e| file_err(path, e))?;
        // SAFETY: the file is only read; a checkpoint changed on disk while we
        // convert it gives wrong numbers (the hashes then describe those), not
        // memory unsafety in practice on the platforms we run.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| file_err(path, e))?;
        // Tensors are read front to back: let the kernel read ahead and drop
        // pages behind us, rather than keep the whole checkpoint resident.
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        let st_err = |e: safetensors::SafeTensorError| CheckpointError::Safetensors {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let (n, meta) = SafeTensors::read_metadata(&map).map_err(st_err)?;
        let base = 8 + n;
        let file_index = self.maps.len();
        for (name, info) in meta.tensors() {
            let dtype = match info.dtype {
                Dtype::F32 => SourceDType::F32,
                Dtype::F16 => SourceDType::F16,
                Dtype::BF16 => SourceDType::BF16,
                other => {
                    return Err(CheckpointError::Unsupported(format!(
                        "{}: tensor {name} is {other:?}; only f32, f16 and bf16 weights are read",
                        path.display()
                    )));
                }
            };
            if self
                .tensors
                .iter()
                .any(|t| t.component == component && t.name == name)
            {
                return Err(file_err(path, format!("tensor {name} appears twice")));
            }
            self.tensors.push(SourceTensor {
                component: component.to_string(),
                name,
                dtype,
                shape: info.shape.clone(),
                file: file_index,
                bytes: base + info.data_offsets.0..base + info.data_offsets.1,
            });
        }
        self.maps.push(map);
        Ok(())
    }

    /// Elements `range` (row-major) of `t` as f32; NaN or Inf is an error
    /// naming the tensor.
    pub fn read_f32(
        &self,
        t: &SourceTensor,
        range: Range<usize>,
    ) -> Result<Vec<f32>, CheckpointError> {
        let size = t.dtype.size();
        let bytes = &self.maps[t.file]
            [t.bytes.start + range.start * size..t.bytes.start + range.end * size];
        let out: Vec<f32> = match t.dtype {
            SourceDType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            SourceDType::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            SourceDType::BF16 => bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        };
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(CheckpointError::NotFinite {
                name: t.key(),
                what: if out[i].is_nan() { "NaN" } else { "Inf" },
                index: range.start + i,
            });
        }
        Ok(out)
    }

    /// The raw bytes of elements `range` (for copies that need no conversion).
    pub fn raw(&self, t: &SourceTensor, range: Range<usize>) -> &[u8] {
        let size = t.dtype.size();
        &self.maps[t.file][t.bytes.start + range.start * size..t.bytes.start + range.end * size]
    }

    /// Bytes of weights in the checkpoint.
    pub fn source_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes.len() as u64).sum()
    }
}

fn read_tokenizer(dir: &Path) -> Result<BTreeMap<String, Value>, CheckpointError> {
    let mut out = BTreeMap::new();
    let listing = fs::read_dir(dir).map_err(|e| file_err(dir, e))?;
    for entry in listing.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            out.insert(name, read_json(&entry.path())?);
        }
    }
    if !out.contains_key("tokenizer.json") {
        return Err(file_err(
            &dir.join("tokenizer.json"),
            "missing: the runtime needs a fast tokenizer's tokenizer.json; write one with \
             transformers' T5TokenizerFast.from_pretrained(DIR).save_pretrained(DIR)",
        ));
    }
    Ok(out)
}
