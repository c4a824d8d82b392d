//! The bundle loader: file system and HTTP sources (Range resume, the shard
//! cache, integrity errors), progress events, and the row-split GPU upload.
//! The HTTP server is a tiny one on 127.0.0.1 that each test starts itself.

mod common;

use std::fs;
use std::path::Path;

use common::http::Server;
use common::{Built, build_bundle};
use framecast::bundle::{
    BundleError, BundleLoader, FsSource, HttpSource, Progress, ShardSource, TensorData,
};

fn load<S: ShardSource>(source: S) -> Result<(Vec<TensorData>, Vec<Progress>), BundleError> {
    pollster::block_on(async {
        let mut loader = BundleLoader::open(source).await?;
        let mut events = Vec::new();
        let tensors = loader.load_all(&mut |p| events.push(p.clone())).await?;
        Ok((tensors, events))
    })
}

fn same(a: &[TensorData], b: &Built) {
    assert_eq!(a.len(), b.values.len());
    for t in a {
        let want = &b.values[&t.entry.name];
        assert_eq!(&t.to_f32(), want, "{}", t.entry.name);
    }
}

#[test]
fn file_system_load_streams_every_tensor_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_bundle(dir.path());
    let (tensors, events) = load(FsSource::new(dir.path())).unwrap();
    same(&tensors, &built);
    assert!(built.manifest.shards.len() >= 3);
    // Per component: done never goes back and ends at the total.
    for c in built.manifest.components.keys() {
        let mine: Vec<&Progress> = events.iter().filter(|p| &p.component == c).collect();
        assert!(!mine.is_empty(), "no progress for {c}");
        assert!(mine.windows(2).all(|w| w[0].done <= w[1].done));
        let last = mine[mine.len() - 1];
        assert_eq!(last.done, last.total, "{c}");
    }
}

#[test]
fn tensors_arrive_with_the_shard_that_completes_them() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_bundle(dir.path());
    pollster::block_on(async {
        let mut loader = BundleLoader::open(FsSource::new(dir.path())).await.unwrap();
        let mut seen = 0;
        let mut shard = 0;
        while let Some(batch) = loader.next(&mut |_| {}).await.unwrap() {
            for t in &batch {
                let last = t.entry.parts.iter().map(|p| p.shard).max().unwrap();
                assert_eq!(last, shard, "{} handed out late or early", t.entry.name);
            }
            seen += batch.len();
            shard += 1;
        }
        assert_eq!(seen, built.values.len());
    });
}

#[test]
fn http_load_matches_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_bundle(dir.path());
    let server = Server::start(dir.path());
    let (tensors, _) = load(HttpSource::new(&server.url())).unwrap();
    same(&tensors, &built);
}

#[test]
fn http_resumes_a_transfer_that_broke_off() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_bundle(dir.path());
    let file = built.manifest.shards[1].file.clone();
    let server = Server::start(dir.path());
    server.cut_first(&file, 700);
    let (tensors, _) = load(HttpSource::new(&server.url())).unwrap();
    same(&tensors, &built);
    let log = server.requests();
    assert!(
        log.contains(&format!("/{file} bytes=700-")),
        "no resumed request in {log:?}"
    );
}

#[test]
fn http_cache_resumes_partial_files_and_serves_verified_shards() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let built = build_bundle(dir.path());
    let shard = built.manifest.shards[0].clone();
    // An earlier run stopped half way through shard 0.
    let bytes = fs::read(dir.path().join(&shard.file)).unwrap();
    let half = bytes.len() / 2;
    fs::write(
        cache.path().join(format!("{}.part", shard.sha256)),
        &bytes[..half],
    )
    .unwrap();
    let server = Server::start(dir.path());
    let source = HttpSource::new(&server.url()).with_cache(cache.path());
    let (tensors, _) = load(source).unwrap();
    same(&tensors, &built);
    assert!(
        server
            .requests()
            .contains(&format!("/{} bytes={half}-", shard.file))
    );
    for s in &built.manifest.shards {
        let cached = cache.path().join(format!("{}.bin", s.sha256));
        assert_eq!(
            fs::read(cached).unwrap(),
            fs::read(dir.path().join(&s.file)).unwrap()
        );
    }
    // A second load takes every shard from the cache, and a corrupt cache
    // entry is noticed and fetched again.
    let victim = cache
        .path()
        .join(format!("{}.bin", built.manifest.shards[2].sha256));
    let mut damaged = fs::read(&victim).unwrap();
    damaged[10] ^= 0xff;
    fs::write(&victim, damaged).unwrap();
    server.clear_requests();
    let source = HttpSource::new(&server.url()).with_cache(cache.path());
    let (tensors, _) = load(source).unwrap();
    same(&tensors, &built);
    let log = server.requests();
    let shard_requests: Vec<&String> = log.iter().filter(|r| r.contains(".bin")).collect();
    assert_eq!(
        shard_requests,
        vec![&format!("/{} -", built.manifest.shards[2].file)],
        "{log:?}"
    );
}

#[test]
fn a_corrupt_or_missing_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let built = build_bundle(dir.path());
    let file = built.manifest.shards[1].file.clone();
    let path = dir.path().join(&file);
    let mut bytes = fs::read(&path).unwrap();
    bytes[3] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let server = Server::start(dir.path());
    let cache = tempfile::tempdir().unwrap();
    for err in [
        load(FsSource::new(dir.path())).unwrap_err(),
        load(HttpSource::new(&server.url())).unwrap_err(),
        load(HttpSource::new(&server.url()).with_cache(cache.path())).unwrap_err(),
    ] {
        assert!(
            matches!(&err, BundleError::ShardHash { file: f, .. } if f == &file),
            "{err}"
        );
    }
    // Bad bytes are never kept to resume from.
    assert!(fs::read_dir(cache.path()).unwrap().all(|e| {
        let name = e.unwrap().file_name().into_string().unwrap();
        !name.starts_with(&built.manifest.shards[1].sha256)
    }));
    fs::remove_file(&path).unwrap();
    let err = load(HttpSource::new(&server.url()).with_attempts(1)).unwrap_err();
    assert!(
        err.to_string().contains(&file) && err.to_string().contains("404"),
        "{err}"
    );
    let err = load(FsSource::new(dir.path())).unwrap_err();
    assert!(err.to_string().contains(&file), "{err}");
    let err = load(HttpSource::new(&format!("{}/nowhere", server.url()))).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
}

#[test]
fn upload_splits_by_rows_under_the_binding_limit() {
    let Some(gpu) = common::gpu() else { return };
    let dir = tempfile::tempdir().unwrap();
    build_bundle(dir.path());
    let (tensors, _) = load(FsSource::new(dir.path())).unwrap();
    for t in &tensors {
        let l = *t.layout();
        // A limit of 7 rows' values: splits every tensor of more rows.
        let limit = l.values_bytes(7).max(4);
        let parts = t.upload_split(gpu, limit).unwrap();
        assert_eq!(parts.len(), l.rows.div_ceil(7), "{}", t.entry.name);
        let whole = t.upload(gpu).unwrap();
        assert_eq!(whole.len(), 1);
        // Read every part back and compare with the bundle's own bytes.
        let mut values = Vec::new();
        let mut scales = Vec::new();
        for p in &parts {
            assert!(p.values.bytes() <= limit.div_ceil(4) * 4);
            let v = pollster::block_on(gpu.read_bytes(&p.values)).unwrap();
            values.extend_from_slice(&v[..l.values_bytes(p.rows.len()) as usize]);
            if let Some(s) = &p.scales {
                let b = pollster::block_on(gpu.read_bytes(s)).unwrap();
                scales.extend_from_slice(&b[..p.rows.len() * l.groups_per_row() * 2]);
            }
        }
        let want: Vec<u8> = (0..t.entry.parts.len())
            .flat_map(|i| t.values(i).to_vec())
            .collect();
        assert_eq!(values, want, "{}", t.entry.name);
        if l.dtype.quant().is_some() {
            let want: Vec<u8> = (0..t.entry.parts.len())
                .flat_map(|i| {
                    let rows = t.entry.parts[i].rows[1] - t.entry.parts[i].rows[0];
                    t.scales(i).unwrap()[..rows * l.groups_per_row() * 2].to_vec()
                })
                .collect();
            assert_eq!(scales, want, "{}", t.entry.name);
        }
    }
}

#[test]
fn paths_in_errors_are_readable() {
    let err = load(FsSource::new(Path::new("/nonexistent/bundle"))).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/bundle/manifest.json"),
        "{err}"
    );
}
