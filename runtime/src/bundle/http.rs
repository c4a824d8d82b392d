//! Bundles over HTTP(S) natively (ureq), with Range requests to resume a shard
//! whose transfer broke off, and an optional shard cache on disk
//! (content-addressed, so bundles that share a shard share its file).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::BundleError;
use super::manifest::{MANIFEST_FILE, ShardEntry};
use super::source::{ShardSource, sha256_hex};

/// A manifest larger than this is refused (a real one is a few MB).
const MANIFEST_LIMIT: u64 = 256 << 20;
const CHUNK: usize = 256 << 10;

pub struct HttpSource {
    base: String,
    agent: ureq::Agent,
    cache: Option<PathBuf>,
    /// Attempts per shard; each one resumes where the last one stopped.
    attempts: u32,
}

impl HttpSource {
    /// `base` is the URL of the bundle folder (`.../manifest.json` is beside the shards).
    pub fn new(base: &str) -> HttpSource {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build();
        HttpSource {
            base: base.trim_end_matches('/').to_string(),
            agent: config.into(),
            cache: None,
            attempts: 4,
        }
    }

    /// Keeps verified shards, and partial downloads, in `dir`.
    pub fn with_cache(mut self, dir: impl Into<PathBuf>) -> HttpSource {
        self.cache = Some(dir.into());
        self
    }

    pub fn with_attempts(mut self, attempts: u32) -> HttpSource {
        self.attempts = attempts.max(1);
        self
    }

    /// `$XDG_CACHE_HOME/framecast`, else `~/.cache/framecast`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let from = |var: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        from("XDG_CACHE_HOME")
            .or_else(|| from("HOME").map(|h| h.join(".cache")))
            .map(|d| d.join("framecast"))
    }

    fn url(&self, file: &str) -> String {
        format!("{}/{file}", self.base)
    }

    /// A cached shard, if present and intact; a corrupt one is deleted.
    fn cached(&self, shard: &ShardEntry) -> Option<Vec<u8>> {
        let path = self.cache.as_ref()?.join(format!("{}.bin", shard.sha256));
        let bytes = fs::read(&path).ok()?;
        if bytes.len() as u64 == shard.bytes && sha256_hex(&bytes) == shard.sha256 {
            return Some(bytes);
        }
        log::warn!("{}: corrupt cache entry, fetching again", path.display());
        let _ = fs::remove_file(&path);
        None
    }

    /// One GET of `url` from byte `from` on, appended to `out` (and to `part`).
    /// Returns Ok(false) when the transfer broke off and may be resumed.
    fn get_from(
        &self,
        url: &str,
        out: &mut Vec<u8>,
        part: &mut Option<fs::File>,
        expected: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<bool, BundleError> {
        let http = |message: String| BundleError::Http {
            url: url.to_string(),
            message,
        };
        let mut request = self.agent.get(url);
        let from = out.len() as u64;
        if from > 0 {
            request = request.header("Range", &format!("bytes={from}-"));
        }
        let response = match request.call() {
            Ok(r) => r,
            // Connection-level failures are worth another attempt.
            Err(e) => {
                log::warn!("{url}: {e}");
                return Ok(false);
            }
        };
        let status = response.status().as_u16();
        match status {
            206 if from > 0 => {
                let start = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(from) {
                    return Err(http(format!(
                        "asked for bytes from {from}, the server sent a range from {start:?}"
                    )));
                }
            }
            200 => {
                // The server ignored the range (or there was none): start over.
                out.clear();
                if let Some(f) = part.as_mut() {
                    f.set_len(0).map_err(|e| http(e.to_string()))?;
                }
            }
            416 => {
                // Our partial copy is longer than the file: discard it.
                out.clear();
                if let Some(f) = part.as_mut() {
                    f.set_len(0).map_err(|e| http(e.to_string()))?;
                }
                return Ok(false);
            }
            s if (500..600).contains(&s) => {
                log::warn!("{url}: HTTP {s}");
                return Ok(false);
            }
            s => return Err(http(format!("HTTP {s}"))),
        }
        let mut reader = response.into_body().into_reader();
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(e) => {
                    log::warn!("{url}: transfer broke off at {} bytes: {e}", out.len());
                    return Ok(false);
                }
            };
            if out.len() as u64 + n as u64 > expected {
                return Err(http(format!("more than the expected {expected} bytes")));
            }
            out.extend_from_slice(&chunk[..n]);
            if let Some(f) = part.as_mut() {
                f.write_all(&chunk[..n]).map_err(|e| http(e.to_string()))?;
            }
            progress(out.len() as u64);
        }
    }

    fn fetch_shard(
        &self,
        shard: &ShardEntry,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<u8>, BundleError> {
        if let Some(bytes) = self.cached(shard) {
            progress(bytes.len() as u64);
            return Ok(bytes);
        }
        let url = self.url(&shard.file);
        let io = |p: &Path, e: std::io::Error| BundleError::io(p.display(), e);
        let paths = match &self.cache {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
                Some((
                    dir.join(format!("{}.part", shard.sha256)),
                    dir.join(format!("{}.bin", shard.sha256)),
                ))
            }
            None => None,
        };
        // Resume from what an earlier run left, if anything.
        let mut out = match &paths {
            Some((part, _)) => fs::read(part).unwrap_or_default(),
            None => Vec::new(),
        };
        if out.len() as u64 > shard.bytes {
            out.clear();
        }
        let mut part = match &paths {
            Some((p, _)) => {
                let f = fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(p)
                    .map_err(|e| io(p, e))?;
                f.set_len(out.len() as u64).map_err(|e| io(p, e))?;
                let mut f = f;
                std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).map_err(|e| io(p, e))?;
                Some(f)
            }
            None => None,
        };
        let mut complete = out.len() as u64 == shard.bytes;
        for _ in 0..self.attempts {
            if complete {
                break;
            }
            complete = self.get_from(&url, &mut out, &mut part, shard.bytes, progress)?
                && out.len() as u64 == shard.bytes;
        }
        drop(part);
        if !complete {
            return Err(BundleError::Http {
                url,
                message: format!(
                    "gave up after {} attempts with {} of {} bytes",
                    self.attempts,
                    out.len(),
                    shard.bytes
                ),
            });
        }
        if let Some((part, done)) = &paths {
            if sha256_hex(&out) == shard.sha256 {
                fs::rename(part, done).map_err(|e| io(done, e))?;
            } else {
                // Never resume from bytes that cannot be right.
                let _ = fs::remove_file(part);
            }
        }
        Ok(out)
    }
}

impl ShardSource for HttpSource {
    fn describe(&self) -> String {
        self.base.clone()
    }

    async fn manifest(&self) -> Result<Vec<u8>, BundleError> {
        let url = self.url(MANIFEST_FILE);
        let http = |message: String| BundleError::Http {
            url: url.clone(),
            message,
        };
        let response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| http(e.to_string()))?;
        if response.status().as_u16() != 200 {
            return Err(http(format!("HTTP {}", response.status().as_u16())));
        }
        let mut out = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(MANIFEST_LIMIT)
            .read_to_end(&mut out)
            .map_err(|e| http(e.to_string()))?;
        Ok(out)
    }

    async fn shard(
        &self,
        shard: &ShardEntry,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<u8>, BundleError> {
        self.fetch_shard(shard, progress)
    }
}
