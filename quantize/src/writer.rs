//! Writes a bundle: shards filled in tensor order, content-addressed names,
//! the manifest last, all inside a temporary folder that is renamed into
//! place only once everything is written, so a failed run never leaves
//! something that looks like a bundle.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use framecast::bundle::{
    MANIFEST_FILE, Manifest, QuantError, RowLayout, ShardEntry, ShardPacker, TensorEntry,
    sha256_hex,
};
use framecast::quant::pack_f16;
use half::f16;

/// The tensor being written: its planned parts and how far it got.
struct Open {
    entry: TensorEntry,
    layout: RowLayout,
    row: usize,
    part: usize,
    scales: Vec<f16>,
}

pub struct BundleWriter {
    final_dir: PathBuf,
    tmp_dir: PathBuf,
    packer: ShardPacker,
    /// The shard being filled and its index.
    buf: Vec<u8>,
    shard: usize,
    shards: Vec<ShardEntry>,
    tensors: Vec<TensorEntry>,
    open: Option<Open>,
    finished: bool,
}

impl BundleWriter {
    /// Starts a bundle at `dir`, which must not exist unless `replace`.
    pub fn create(dir: &Path, shard_size: u64, replace: bool) -> Result<BundleWriter> {
        if dir.exists() && !replace {
            bail!("{} exists (use --force to replace it)", dir.display());
        }
        let name = dir
            .file_name()
            .with_context(|| format!("{}: not a folder name", dir.display()))?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(format!(".partial-{}", std::process::id()));
        let tmp_dir = dir.with_file_name(tmp_name);
        if tmp_dir.exists() {
            fs::remove_dir_all(&tmp_dir)
                .with_context(|| format!("removing {}", tmp_dir.display()))?;
        }
        fs::create_dir_all(&tmp_dir).with_context(|| format!("creating {}", tmp_dir.display()))?;
        Ok(BundleWriter {
            final_dir: dir.to_path_buf(),
            tmp_dir,
            packer: ShardPacker::new(shard_size)?,
            buf: Vec::new(),
            shard: 0,
            shards: Vec::new(),
            tensors: Vec::new(),
            open: None,
            finished: false,
        })
    }

    /// Plans `entry` (its `parts` are filled in); its rows follow with [`Self::rows`].
    pub fn begin(&mut self, mut entry: TensorEntry) -> Result<()> {
        if self.open.is_some() {
            bail!(
                "internal: tensor {} begun before the last one ended",
                entry.key()
            );
        }
        let layout = entry.layout()?;
        entry.parts = self.packer.place(&entry.key(), &layout)?;
        self.open = Some(Open {
            entry,
            layout,
            row: 0,
            part: 0,
            scales: Vec::new(),
        });
        Ok(())
    }

    /// Appends the next `rows` rows: their value bytes and (q4/q8) scales.
    pub fn rows(&mut self, values: &[u8], scales: &[f16], rows: usize) -> Result<()> {
        let Some(mut open) = self.open.take() else {
            bail!("internal: rows without a tensor");
        };
        let row_bytes = open.layout.values_bytes(1) as usize;
        let groups = open.layout.groups_per_row();
        if values.len() != rows * row_bytes || scales.len() != rows * groups {
            bail!(
                "internal: {} got a chunk of the wrong size",
                open.entry.key()
            );
        }
        let mut done = 0;
        while done < rows {
            let Some(part) = open.entry.parts.get(open.part).cloned() else {
                bail!("internal: {} got more rows than it has", open.entry.key());
            };
            self.switch_to(part.shard)?;
            let take = (part.rows[1] - open.row).min(rows - done);
            let at = part.values.offset as usize + (open.row - part.rows[0]) * row_bytes;
            self.put(at, &values[done * row_bytes..(done + take) * row_bytes]);
            open.scales
                .extend_from_slice(&scales[done * groups..(done + take) * groups]);
            open.row += take;
            done += take;
            if open.row == part.rows[1] {
                if let Some(region) = part.scales {
                    let words = pack_f16(&open.scales);
                    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                    self.put(region.offset as usize, &bytes);
                }
                open.scales.clear();
                open.part += 1;
            }
        }
        self.open = Some(open);
        Ok(())
    }

    /// Closes the tensor begun last.
    pub fn end(&mut self, error: Option<QuantError>) -> Result<()> {
        let Some(mut open) = self.open.take() else {
            bail!("internal: end without a tensor");
        };
        // Parts with no rows (a zero-size tensor) still name their shard.
        while let Some(part) = open.entry.parts.get(open.part) {
            if part.rows[0] != part.rows[1] {
                bail!("internal: {} ended at row {}", open.entry.key(), open.row);
            }
            let shard = part.shard;
            self.switch_to(shard)?;
            open.part += 1;
        }
        open.entry.error = error;
        self.tensors.push(open.entry);
        Ok(())
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        if self.buf.len() < at + bytes.len() {
            self.buf.resize(at + bytes.len(), 0);
        }
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn switch_to(&mut self, shard: usize) -> Result<()> {
        while self.shard < shard {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the shard being filled under its content address.
    fn flush(&mut self) -> Result<()> {
        let sha256 = sha256_hex(&self.buf);
        let file = ShardEntry::file_name(&sha256);
        let path = self.tmp_dir.join(&file);
        fs::write(&path, &self.buf).with_context(|| format!("writing {}", path.display()))?;
        self.shards.push(ShardEntry {
            file,
            bytes: self.buf.len() as u64,
            sha256,
        });
        self.buf.clear();
        self.shard += 1;
        Ok(())
    }

    /// Writes the manifest (`tensors` and `shards` filled in here) and moves
    /// the bundle into place.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<Manifest> {
        if self.open.is_some() {
            bail!("internal: finished with a tensor open");
        }
        let used = self
            .tensors
            .iter()
            .flat_map(|t| &t.parts)
            .map(|p| p.shard + 1);
        if !self.buf.is_empty() || used.max().unwrap_or(0) > self.shards.len() {
            self.flush()?;
        }
        manifest.shards = std::mem::take(&mut self.shards);
        manifest.tensors = std::mem::take(&mut self.tensors);
        manifest.validate()?;
        let path = self.tmp_dir.join(MANIFEST_FILE);
        fs::write(&path, manifest.to_json()?)
            .with_context(|| format!("writing {}", path.display()))?;
        if self.final_dir.exists() {
            fs::remove_dir_all(&self.final_dir)
                .with_context(|| format!("replacing {}", self.final_dir.display()))?;
        }
        fs::rename(&self.tmp_dir, &self.final_dir)
            .with_context(|| format!("moving {} into place", self.final_dir.display()))?;
        self.finished = true;
        Ok(manifest)
    }
}

impl Drop for BundleWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_dir_all(&self.tmp_dir);
        }
    }
}
