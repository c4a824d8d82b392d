//! Where shards come from. One trait serves the file system, HTTP and (with
//! the browser issue) `fetch`; the loader above it verifies every byte.

use std::future::Future;

use sha2::{Digest, Sha256};

use super::BundleError;
use super::manifest::ShardEntry;

/// A place that holds a bundle's `manifest.json` and shards.
///
/// Sources need not check hashes: the loader verifies every shard it gets.
/// Native sources do blocking I/O inside their futures (they complete on the
/// first poll); run the loader on its own thread to overlap it with compute.
pub trait ShardSource {
    /// Where this is, for messages: a folder, a URL.
    fn describe(&self) -> String;

    /// The bytes of `manifest.json`.
    fn manifest(&self) -> impl Future<Output = Result<Vec<u8>, BundleError>>;

    /// The bytes of one shard; `progress(received)` is called as they arrive.
    fn shard(
        &self,
        shard: &ShardEntry,
        progress: &mut dyn FnMut(u64),
    ) -> impl Future<Output = Result<Vec<u8>, BundleError>>;
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails unless `bytes` are exactly the shard the manifest describes.
pub fn verify_shard(shard: &ShardEntry, bytes: &[u8]) -> Result<(), BundleError> {
    if bytes.len() as u64 != shard.bytes {
        return Err(BundleError::ShardSize {
            file: shard.file.clone(),
            expected: shard.bytes,
            found: bytes.len() as u64,
        });
    }
    let found = sha256_hex(bytes);
    if found != shard.sha256 {
        return Err(BundleError::ShardHash {
            file: shard.file.clone(),
            expected: shard.sha256.clone(),
            found,
        });
    }
    Ok(())
}

/// A bundle folder on a local disk.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Clone, Debug)]
pub struct FsSource {
    dir: std::path::PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl FsSource {
    pub fn new(dir: impl Into<std::path::PathBuf>) -> FsSource {
        FsSource { dir: dir.into() }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ShardSource for FsSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    async fn manifest(&self) -> Result<Vec<u8>, BundleError> {
        let path = self.dir.join(super::MANIFEST_FILE);
        std::fs::read(&path).map_err(|e| BundleError::io(path.display(), e))
    }

    async fn shard(
        &self,
        shard: &ShardEntry,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<u8>, BundleError> {
        use std::io::Read;
        let path = self.dir.join(&shard.file);
        let err = |e: std::io::Error| BundleError::io(path.display(), e);
        let mut file = std::fs::File::open(&path).map_err(err)?;
        // Read in pieces so progress moves on slow disks too; never trust
        // the manifest's size for the allocation beyond a sane cap.
        let mut out = Vec::with_capacity(shard.bytes.min(1 << 30) as usize);
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut chunk).map_err(err)?;
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
            progress(out.len() as u64);
        }
        Ok(out)
    }
}
