//! The quantizer end to end on the tiny LTX fixture (tools/reference/
//! tiny_pipeline.py): convert, verify, load with the runtime's loader,
//! dequantize, and every failure the issue lists.

use std::fs;
use std::path::{Path, PathBuf};

use framecast::bundle::{BundleError, BundleLoader, FsSource, TensorData, WeightDType};
use framecast_quantize::checkpoint::Checkpoint;
use framecast_quantize::{Options, convert, dequantize, verify};
use half::f16;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-ltx")
}

/// Small shards, so tensors split across shards and shards hold many tensors.
fn opts(weights: WeightDType) -> Options {
    Options {
        weights,
        shard_size: 16 << 10,
        ..Options::default()
    }
}

fn load(dir: &Path) -> Result<Vec<TensorData>, BundleError> {
    pollster::block_on(async {
        let mut loader = BundleLoader::open(FsSource::new(dir)).await?;
        loader.load_all(&mut |_| {}).await
    })
}

/// Copies the fixture so a test can damage it.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn round_trip_within_half_a_step_and_exact_where_it_should_be() {
    let ck = Checkpoint::open(&fixture()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for weights in [
        WeightDType::Q4,
        WeightDType::Q8,
        WeightDType::F16,
        WeightDType::F32,
    ] {
        let out = tmp.path().join(weights.name());
        let summary = convert(&fixture(), &out, &opts(weights)).unwrap();
        verify::verify(&out).unwrap();
        let tensors = load(&out).unwrap();
        assert_eq!(tensors.len(), ck.tensors.len());
        assert!(
            summary.manifest.shards.len() > 3,
            "small shards make several"
        );
        let (mut quantised, mut split) = (0, 0);
        for t in &tensors {
            let e = &t.entry;
            let src = ck
                .tensors
                .iter()
                .find(|s| s.component == e.component && s.name == e.name)
                .unwrap();
            let want = ck.read_f32(src, 0..src.numel()).unwrap();
            let got = t.to_f32();
            assert_eq!(got.len(), want.len(), "{}", e.key());
            split += usize::from(e.parts.len() > 1);
            match e.dtype {
                WeightDType::Q4 | WeightDType::Q8 => {
                    quantised += 1;
                    let kind = e.dtype.quant().unwrap();
                    for (g, (w, d)) in want.chunks(e.group).zip(got.chunks(e.group)).enumerate() {
                        let absmax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let step = f16::from_f32(absmax / kind.qmax()).to_f32();
                        // Half a step, plus the f16 rounding of the scale at the extreme.
                        let tol = step / 2.0 + step * kind.qmax() * 1e-3;
                        for (a, b) in w.iter().zip(d) {
                            assert!((a - b).abs() <= tol, "{} group {g}: {a} vs {b}", e.key());
                        }
                    }
                    let err = e.error.expect("quantised tensors carry their error");
                    assert!(err.sqnr_db > 15.0, "{}: {} dB", e.key(), err.sqnr_db);
                }
                WeightDType::F16 => {
                    // Exact for f16 sources, the nearest f16 otherwise.
                    for (a, b) in want.iter().zip(&got) {
                        assert_eq!(f16::from_f32(*a).to_f32(), *b, "{}", e.key());
                    }
                }
                WeightDType::F32 => assert_eq!(want, got, "{}", e.key()),
            }
        }
        if weights.quant().is_some() {
            assert!(quantised > 40, "{weights:?}: only {quantised} quantised");
        } else {
            assert_eq!(quantised, 0);
        }
        assert!(split > 0, "{weights:?}: no tensor was split across shards");
    }
}

#[test]
fn output_is_byte_identical_run_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    convert(&fixture(), &a, &opts(WeightDType::Q4)).unwrap();
    convert(&fixture(), &b, &opts(WeightDType::Q4)).unwrap();
    let mut names: Vec<_> = fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() > 3);
    for n in names {
        assert_eq!(
            fs::read(a.join(&n)).unwrap(),
            fs::read(b.join(&n)).unwrap(),
            "{n:?}"
        );
    }
}

#[test]
fn one_corrupt_byte_fails_verify_and_load_naming_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("b");
    let m = convert(&fixture(), &out, &opts(WeightDType::Q4))
        .unwrap()
        .manifest;
    let shard = &m.shards[m.shards.len() / 2];
    let path = out.join(&shard.file);
    let mut bytes = fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    let err = verify::verify(&out).unwrap_err().to_string();
    assert!(err.contains(&shard.file), "{err}");
    let err = load(&out).unwrap_err();
    assert!(
        matches!(&err, BundleError::ShardHash { file, .. } if file == &shard.file),
        "{err}"
    );
}

#[test]
fn dequantize_writes_a_diffusers_folder_that_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    convert(&fixture(), &bundle, &opts(WeightDType::Q4)).unwrap();
    let out = tmp.path().join("pipe");
    dequantize::dequantize(&bundle, &out, false).unwrap();
    for f in [
        "model_index.json",
        "tokenizer/tokenizer.json",
        "scheduler/scheduler_config.json",
        "text_encoder/model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "transformer/config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The written folder is itself a valid input, holding what the bundle holds.
    let back = Checkpoint::open(&out).unwrap();
    let tensors = load(&bundle).unwrap();
    assert_eq!(back.tensors.len(), tensors.len());
    for t in &tensors {
        let s = back
            .tensors
            .iter()
            .find(|s| s.component == t.entry.component && s.name == t.entry.name)
            .unwrap();
        assert_eq!(s.shape, t.entry.shape);
        assert_eq!(
            back.read_f32(s, 0..s.numel()).unwrap(),
            t.to_f32(),
            "{}",
            t.entry.key()
        );
    }
    // And converting it at f32 is exact.
    let again = tmp.path().join("again");
    convert(&out, &again, &opts(WeightDType::F32)).unwrap();
    for (a, b) in load(&again).unwrap().iter().zip(&tensors) {
        assert_eq!(a.to_f32(), b.to_f32(), "{}", a.entry.key());
    }
}

/// Converts a damaged copy of the fixture; the error must mention `needle`
/// and no bundle (nor a temporary folder) may be left behind.
fn fails(damage: impl Fn(&Path), needle: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(&fixture(), &src);
    damage(&src);
    let out = tmp.path().join("out");
    let err = format!(
        "{:#}",
        convert(&src, &out, &opts(WeightDType::Q4)).unwrap_err()
    );
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("src")],
        "left behind: {left:?}"
    );
}

fn edit_json(path: &Path, f: impl Fn(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    f(&mut v);
    fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    fails(
        |d| fs::remove_file(d.join("model_index.json")).unwrap(),
        "model_index.json",
    );
    fails(
        |d| fs::remove_file(d.join("vae/config.json")).unwrap(),
        "vae/config.json",
    );
    fails(
        |d| {
            fs::remove_file(
                d.join("transformer/diffusion_pytorch_model-00003-of-00005.safetensors"),
            )
            .unwrap()
        },
        "00003-of-00005",
    );
    fails(
        |d| {
            edit_json(&d.join("model_index.json"), |v| {
                v["_class_name"] = "FluxPipeline".into()
            })
        },
        "unknown architecture",
    );
    fails(
        |d| {
            edit_json(&d.join("model_index.json"), |v| {
                v["vae"][1] = "AutoencoderKLWan".into()
            })
        },
        "unknown architecture",
    );
    fails(
        |d| {
            let p = d.join("vae/diffusion_pytorch_model.safetensors");
            let bytes = fs::read(&p).unwrap();
            fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
        },
        "truncated",
    );
    fails(
        |d| {
            fs::write(
                d.join("text_encoder/model.safetensors"),
                b"\x10\0\0\0\0\0\0\0{not json}     ",
            )
            .unwrap()
        },
        "not a valid safetensors file",
    );
    // A NaN in one weight: the error names it.
    fails(
        |d| {
            let p = d.join("text_encoder/model.safetensors");
            let mut bytes = fs::read(&p).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
            let name = "encoder.block.1.layer.0.SelfAttention.q.weight";
            let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + n;
            // bf16 NaN at element 5.
            bytes[start + 10..start + 12].copy_from_slice(&0x7fc0u16.to_le_bytes());
            fs::write(&p, bytes).unwrap();
        },
        "text_encoder/encoder.block.1.layer.0.SelfAttention.q.weight contains NaN",
    );
}

#[test]
fn bad_manifests_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("b");
    convert(&fixture(), &out, &opts(WeightDType::Q4)).unwrap();
    let manifest = out.join("manifest.json");
    let original = fs::read(&manifest).unwrap();
    let check = |f: &dyn Fn(&mut serde_json::Value), needle: &str| {
        fs::write(&manifest, &original).unwrap();
        edit_json(&manifest, f);
        let err = format!("{:#}", verify::verify(&out).unwrap_err());
        assert!(err.contains(needle), "{needle:?} not in: {err}");
        assert!(load(&out).unwrap_err().to_string().contains(needle));
    };
    check(&|v| v["format_version"] = 99.into(), "version 99");
    check(
        &|v| v["tensors"][3]["parts"][0]["values"]["offset"] = 1_000_000_000u64.into(),
        "past the end",
    );
    check(
        &|v| v["tensors"][3]["parts"][0]["values"]["offset"] = 8.into(),
        "unaligned",
    );
    check(
        &|v| v["tensors"][3]["parts"][0]["shard"] = 9999.into(),
        "out of range",
    );
    check(&|v| v["tensors"][3]["shape"][0] = 100000.into(), "tensor");
    check(
        &|v| {
            v["tensors"][4] = v["tensors"][3].clone();
            v["tensors"][4]["name"] = "copy".into();
        },
        "overlap",
    );
    check(&|v| v["shards"][0]["sha256"] = "00".into(), "sha256");
    check(
        &|v| v["tensors"] = "many".into(),
        "not a framecast bundle manifest",
    );
    // A missing shard is named too.
    fs::write(&manifest, &original).unwrap();
    let m = verify::read_manifest(&out).unwrap();
    fs::remove_file(out.join(&m.shards[1].file)).unwrap();
    let err = format!("{:#}", verify::verify(&out).unwrap_err());
    assert!(err.contains(&m.shards[1].file), "{err}");
}
