//! Streams a bundle shard by shard, in the manifest's (execution) order:
//! each shard is verified as it arrives and the tensors it completes are
//! handed out at once, so the text encoder can run while the VAE downloads.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::BundleError;
use super::manifest::Manifest;
use super::source::{ShardSource, verify_shard};
use super::tensor::TensorData;

/// Bytes received so far for one component, of its total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub component: String,
    pub done: u64,
    pub total: u64,
}

/// A region of a shard that counts towards a component's progress.
#[derive(Clone, Debug)]
struct Span {
    end: u64,
    bytes: u64,
    component: usize,
}

pub struct BundleLoader<S> {
    source: S,
    manifest: Arc<Manifest>,
    components: Vec<String>,
    totals: Vec<u64>,
    /// Bytes of finished shards per component.
    finished: Vec<u64>,
    /// Per shard: its regions sorted by end offset.
    spans: Vec<Vec<Span>>,
    /// Per shard: the tensors whose last part is there.
    completes: Vec<Vec<usize>>,
    /// Per shard: the last shard any tensor with a part in it ends in.
    last_use: Vec<usize>,
    held: Vec<Option<Arc<Vec<u8>>>>,
    next: usize,
}

impl<S: ShardSource> BundleLoader<S> {
    /// Fetches, parses and validates the manifest.
    pub async fn open(source: S) -> Result<BundleLoader<S>, BundleError> {
        let bytes = source.manifest().await?;
        let manifest = Manifest::parse(&bytes)?;
        Self::with_manifest(source, manifest)
    }

    /// A loader for a manifest already in hand (validated again here: every
    /// index below relies on it).
    pub fn with_manifest(source: S, manifest: Manifest) -> Result<BundleLoader<S>, BundleError> {
        manifest.validate()?;
        let n = manifest.shards.len();
        let components: Vec<String> = manifest.components.keys().cloned().collect();
        let index: BTreeMap<&str, usize> = components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut totals = vec![0; components.len()];
        let mut spans = vec![Vec::new(); n];
        let mut completes = vec![Vec::new(); n];
        let mut last_use: Vec<usize> = (0..n).collect();
        for (t, entry) in manifest.tensors.iter().enumerate() {
            let c = index.get(entry.component.as_str()).copied().unwrap_or(0);
            let last = entry.parts.iter().map(|p| p.shard).max().unwrap_or(0);
            for p in &entry.parts {
                for r in std::iter::once(p.values).chain(p.scales) {
                    totals[c] += r.bytes;
                    spans[p.shard].push(Span {
                        end: r.offset + r.bytes,
                        bytes: r.bytes,
                        component: c,
                    });
                }
                last_use[p.shard] = last_use[p.shard].max(last);
            }
            if let Some(list) = completes.get_mut(last) {
                list.push(t);
            }
        }
        for s in &mut spans {
            s.sort_by_key(|s| s.end);
        }
        Ok(BundleLoader {
            source,
            manifest: Arc::new(manifest),
            finished: vec![0; components.len()],
            components,
            totals,
            spans,
            completes,
            last_use,
            held: vec![None; n],
            next: 0,
        })
    }

    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// Shards still to come.
    pub fn remaining(&self) -> usize {
        self.manifest.shards.len() - self.next
    }

    /// Fetches and verifies the next shard and returns the tensors it
    /// completes (possibly none); `None` once every shard is in.
    pub async fn next(
        &mut self,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Option<Vec<TensorData>>, BundleError> {
        let i = self.next;
        let Some(shard) = self.manifest.shards.get(i).cloned() else {
            return Ok(None);
        };
        let mut reported = self.finished.clone();
        let bytes = {
            let (spans, components, totals, finished) = (
                &self.spans[i],
                &self.components,
                &self.totals,
                &self.finished,
            );
            let mut on_bytes = |received: u64| {
                let mut now = finished.clone();
                for s in spans.iter() {
                    // Whole regions, plus the received share of a partial one.
                    let start = s.end - s.bytes;
                    if received > start {
                        now[s.component] += s.bytes.min(received - start);
                    }
                }
                for (c, (&n, r)) in now.iter().zip(reported.iter_mut()).enumerate() {
                    if n != *r {
                        *r = n;
                        progress(&Progress {
                            component: components[c].clone(),
                            done: n,
                            total: totals[c],
                        });
                    }
                }
            };
            self.source.shard(&shard, &mut on_bytes).await?
        };
        verify_shard(&shard, &bytes)?;
        for s in &self.spans[i] {
            self.finished[s.component] += s.bytes;
        }
        self.held[i] = Some(Arc::new(bytes));
        let mut done = Vec::new();
        for &t in &self.completes[i] {
            let entry = self.manifest.tensors[t].clone();
            let shards = entry
                .parts
                .iter()
                .map(|p| {
                    self.held[p.shard]
                        .clone()
                        .ok_or_else(|| BundleError::tensor(&entry.key(), "shard not held"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            done.push(TensorData::new(entry, shards)?);
        }
        // Keep a shard only while a tensor still to come has a part in it.
        for j in 0..=i {
            if self.last_use[j] <= i {
                self.held[j] = None;
            }
        }
        self.next += 1;
        Ok(Some(done))
    }

    /// Loads everything (a convenience for tools and tests).
    pub async fn load_all(
        &mut self,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<Vec<TensorData>, BundleError> {
        let mut all = Vec::new();
        while let Some(batch) = self.next(progress).await? {
            all.extend(batch);
        }
        Ok(all)
    }
}
