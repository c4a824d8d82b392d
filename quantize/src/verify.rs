//! `verify` (structure and every hash) and `inspect` (the tensor table,
//! sizes, compression and the worst-quantised tensors).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use framecast::bundle::{MANIFEST_FILE, Manifest, verify_shard};

pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::parse(&bytes).with_context(|| path.display().to_string())
}

/// Checks the manifest and every shard; returns the manifest.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let m = read_manifest(dir)?;
    for shard in &m.shards {
        let path = dir.join(&shard.file);
        let bytes = fs::read(&path).with_context(|| format!("shard {}", shard.file))?;
        verify_shard(shard, &bytes)?;
    }
    Ok(m)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A readable report; `all` adds the whole tensor table.
pub fn inspect(dir: &Path, worst: usize, all: bool) -> Result<String> {
    let m = read_manifest(dir)?;
    let mut s = String::new();
    let q = &m.quantization;
    writeln!(
        s,
        "{}: format {} family {}, weights {} (group {}), {} tensors",
        dir.display(),
        m.format_version,
        m.family,
        q.weights.name(),
        q.group,
        m.tensors.len()
    )?;
    let largest = m.shards.iter().map(|s| s.bytes).max().unwrap_or(0);
    writeln!(
        s,
        "shards: {} totalling {:.1} MB (largest {:.1} MB, cap {:.1} MB)\n",
        m.shards.len(),
        mb(m.total_bytes()),
        mb(largest),
        mb(q.shard_size)
    )?;
    // Per component and dtype: tensors, source bytes, stored bytes.
    let mut by: BTreeMap<(String, &str), (usize, u64, u64)> = BTreeMap::new();
    for t in &m.tensors {
        let e = by.entry((t.component.clone(), t.dtype.name())).or_default();
        e.0 += 1;
        e.1 += t.source_bytes();
        e.2 += t.stored_bytes();
    }
    writeln!(
        s,
        "{:<14} {:<5} {:>8} {:>12} {:>12} {:>7}",
        "component", "type", "tensors", "source MB", "bundle MB", "ratio"
    )?;
    let (mut src, mut dst) = (0, 0);
    for ((c, d), (n, a, b)) in &by {
        writeln!(
            s,
            "{c:<14} {d:<5} {n:>8} {:>12.1} {:>12.1} {:>6.2}x",
            mb(*a),
            mb(*b),
            *a as f64 / (*b).max(1) as f64
        )?;
        src += a;
        dst += b;
    }
    writeln!(
        s,
        "{:<14} {:<5} {:>8} {:>12.1} {:>12.1} {:>6.2}x (shards incl. alignment: {:.1} MB)\n",
        "total",
        "",
        m.tensors.len(),
        mb(src),
        mb(dst),
        src as f64 / dst.max(1) as f64,
        mb(m.total_bytes())
    )?;
    let mut quantised: Vec<_> = m.tensors.iter().filter(|t| t.error.is_some()).collect();
    quantised.sort_by(|a, b| {
        let key =
            |t: &&framecast::bundle::TensorEntry| t.error.map_or(f64::INFINITY, |e| e.sqnr_db);
        key(a).total_cmp(&key(b))
    });
    if !quantised.is_empty() {
        writeln!(s, "worst quantised tensors (lowest SQNR):")?;
        for t in quantised.iter().take(worst) {
            if let Some(e) = t.error {
                writeln!(
                    s,
                    "  {:>7.2} dB  max|err| {:.3e}  {:<3} {} {:?}",
                    e.sqnr_db,
                    e.max_abs,
                    t.dtype.name(),
                    t.key(),
                    t.shape
                )?;
            }
        }
    }
    if all {
        writeln!(
            s,
            "\n{:<70} {:<4} {:<20} {:<10} {:>10} {:>9}",
            "tensor", "type", "shape", "shards", "bytes", "SQNR dB"
        )?;
        for t in &m.tensors {
            let shards: Vec<String> = t.parts.iter().map(|p| p.shard.to_string()).collect();
            let sqnr = t
                .error
                .map_or("-".to_string(), |e| format!("{:.2}", e.sqnr_db));
            writeln!(
                s,
                "{:<70} {:<4} {:<20} {:<10} {:>10} {:>9}",
                t.key(),
                t.dtype.name(),
                format!("{:?}", t.shape),
                shards.join(","),
                t.stored_bytes(),
                sqnr
            )?;
        }
    }
    Ok(s)
}
