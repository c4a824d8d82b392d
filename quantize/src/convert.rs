//! `convert`: a diffusers pipeline folder to a bundle. Tensors are cut into
//! row chunks that are quantised in parallel a window at a time and written
//! in order, so the output is byte-identical whatever the thread count.

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use framecast::bundle::{
    FORMAT, FORMAT_VERSION, Manifest, QuantError, Quantization, RowLayout, TensorEntry, WeightDType,
};
use framecast::quant::{ErrorStats, quantize};
use half::f16;
use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, SourceDType, SourceTensor};
use crate::progress::ProgressBar;
use crate::rules::{Rule, Rules};
use crate::writer::BundleWriter;

/// Elements per parallel job.
const JOB_ELEMENTS: usize = 1 << 21;
/// Source bytes quantised before their results are written out: bounds memory.
const WINDOW_BYTES: u64 = 256 << 20;

#[derive(Clone, Debug)]
pub struct Options {
    pub weights: WeightDType,
    pub group: usize,
    pub shard_size: u64,
    pub min_elements: usize,
    pub rules: Vec<Rule>,
    /// Replace an existing output folder.
    pub force: bool,
    /// Print a line per quantised tensor.
    pub verbose: bool,
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            weights: WeightDType::Q4,
            group: 32,
            shard_size: 64 << 20,
            min_elements: 1024,
            rules: Vec::new(),
            force: false,
            verbose: false,
            progress: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub manifest: Manifest,
    pub source_bytes: u64,
    pub bundle_bytes: u64,
    pub seconds: f64,
}

struct Job {
    tensor: usize,
    rows: Range<usize>,
}

struct Chunk {
    values: Vec<u8>,
    scales: Vec<f16>,
    error: ErrorStats,
}

struct Plan<'a> {
    t: &'a SourceTensor,
    entry: TensorEntry,
    layout: RowLayout,
}

pub fn convert(src: &Path, out: &Path, opts: &Options) -> Result<Summary> {
    let start = Instant::now();
    let ck = Checkpoint::open(src)?;
    let rules = Rules {
        weights: opts.weights,
        group: opts.group,
        min_elements: opts.min_elements,
        rules: opts.rules.clone(),
    };
    let mut plans = Vec::new();
    for t in &ck.tensors {
        if t.numel() == 0 {
            eprintln!("warning: {} has no elements; left out", t.key());
            continue;
        }
        let mut dtype = rules.decide(&t.component, &t.name, &t.shape).dtype;
        if dtype == WeightDType::F16 && t.dtype != SourceDType::F16 && exceeds_f16(&ck, t)? {
            eprintln!("note: {} exceeds the f16 range; kept as f32", t.key());
            dtype = WeightDType::F32;
        }
        let group = if dtype.quant().is_some() {
            opts.group
        } else {
            0
        };
        let entry = TensorEntry {
            name: t.name.clone(),
            component: t.component.clone(),
            dtype,
            shape: t.shape.clone(),
            group,
            source_dtype: t.dtype.name().to_string(),
            parts: Vec::new(),
            error: None,
        };
        let layout = entry.layout()?;
        plans.push(Plan { t, entry, layout });
    }

    let mut jobs = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let rows_per = (JOB_ELEMENTS / p.layout.row_len.max(1)).max(1);
        let mut r = 0;
        while r < p.layout.rows {
            let end = (r + rows_per).min(p.layout.rows);
            jobs.push(Job {
                tensor: i,
                rows: r..end,
            });
            r = end;
        }
    }

    let total = ck.source_bytes();
    let mut bar = ProgressBar::new(total, opts.progress);
    let mut writer = BundleWriter::create(out, opts.shard_size, opts.force)?;
    let mut stats = vec![ErrorStats::default(); plans.len()];
    let mut next = 0;
    while next < jobs.len() {
        let mut end = next;
        let mut bytes = 0u64;
        while end < jobs.len() && (end == next || bytes < WINDOW_BYTES) {
            let p = &plans[jobs[end].tensor];
            bytes += (jobs[end].rows.len() * p.layout.row_len * p.t.dtype.size()) as u64;
            end += 1;
        }
        let chunks: Vec<Chunk> = jobs[next..end]
            .par_iter()
            .map(|job| encode(&ck, &plans[job.tensor], job.rows.clone()))
            .collect::<Result<_>>()?;
        for (job, chunk) in jobs[next..end].iter().zip(chunks) {
            let p = &plans[job.tensor];
            if job.rows.start == 0 {
                writer.begin(p.entry.clone())?;
            }
            writer.rows(&chunk.values, &chunk.scales, job.rows.len())?;
            stats[job.tensor].merge(&chunk.error);
            bar.advance(
                (job.rows.len() * p.layout.row_len * p.t.dtype.size()) as u64,
                &p.t.key(),
            );
            if job.rows.end == p.layout.rows {
                let error = p.entry.dtype.quant().map(|_| QuantError {
                    sqnr_db: stats[job.tensor].sqnr_db(),
                    max_abs: stats[job.tensor].max_abs,
                });
                if let (Some(e), true) = (error, opts.verbose) {
                    bar.println(&format!(
                        "{:<3} {:<72} {:>16} SQNR {:>6.2} dB  max|err| {:.3e}",
                        p.entry.dtype.name(),
                        p.t.key(),
                        format!("{:?}", p.entry.shape),
                        e.sqnr_db,
                        e.max_abs
                    ));
                }
                writer.end(error)?;
            }
        }
        next = end;
    }
    bar.finish();

    let manifest = Manifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        family: ck.family.name.to_string(),
        pipeline: ck.pipeline.clone(),
        components: ck.components.clone(),
        tokenizer: ck.tokenizer.clone(),
        scheduler: ck.scheduler.clone(),
        defaults: ck.defaults.clone(),
        quantization: Quantization {
            weights: opts.weights,
            group: opts.group,
            shard_size: opts.shard_size,
        },
        shards: Vec::new(),
        tensors: Vec::new(),
    };
    let manifest = writer
        .finish(manifest)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(Summary {
        bundle_bytes: manifest.total_bytes(),
        source_bytes: total,
        seconds: start.elapsed().as_secs_f64(),
        manifest,
    })
}

/// Whether a bf16/f32 tensor has values f16 cannot hold.
fn exceeds_f16(ck: &Checkpoint, t: &SourceTensor) -> Result<bool> {
    let n = t.numel();
    let ranges: Vec<Range<usize>> = (0..n)
        .step_by(JOB_ELEMENTS)
        .map(|s| s..(s + JOB_ELEMENTS).min(n))
        .collect();
    let over = ranges
        .into_par_iter()
        .map(|r| {
            Ok(ck
                .read_f32(t, r)?
                .iter()
                .any(|v| v.abs() > f16::MAX.to_f32()))
        })
        .collect::<Result<Vec<bool>>>()?;
    Ok(over.into_iter().any(|o| o))
}

/// Rows `rows` of a tensor in its bundle type.
fn encode(ck: &Checkpoint, p: &Plan, rows: Range<usize>) -> Result<Chunk> {
    let k = p.layout.row_len;
    let elems = rows.start * k..rows.end * k;
    let mut error = ErrorStats::default();
    let (values, scales) = match p.entry.dtype {
        WeightDType::Q4 | WeightDType::Q8 => {
            let w = ck.read_f32(p.t, elems)?;
            let kind = p.entry.dtype.quant().context("internal: no quant kind")?;
            let q = quantize(&w, rows.len(), k, p.entry.group, kind).with_context(|| p.t.key())?;
            error.add(&w, &q.dequantize());
            let bytes = q.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (bytes, q.scales)
        }
        WeightDType::F16 if p.t.dtype == SourceDType::F16 => {
            // Exact copy; read_f32 still rejects NaN and Inf.
            ck.read_f32(p.t, elems.clone())?;
            (ck.raw(p.t, elems).to_vec(), Vec::new())
        }
        WeightDType::F16 => {
            let w = ck.read_f32(p.t, elems)?;
            let bytes = w
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect();
            (bytes, Vec::new())
        }
        WeightDType::F32 => {
            let w = ck.read_f32(p.t, elems)?;
            (w.iter().flat_map(|v| v.to_le_bytes()).collect(), Vec::new())
        }
    };
    Ok(Chunk {
        values,
        scales,
        error,
    })
}
