//! Arbitrary and damaged input never panics: manifests (random bytes and
//! mutations of a real one) through parsing and loading, safetensors files
//! (truncated or with flipped bytes) through the checkpoint reader.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use framecast::bundle::{BundleLoader, FsSource, Manifest, WeightDType};
use framecast_quantize::checkpoint::Checkpoint;
use framecast_quantize::{Options, convert};
use proptest::prelude::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-ltx")
}

/// One converted bundle shared by every case (kept for the process' life).
fn bundle() -> &'static (tempfile::TempDir, Vec<u8>) {
    static B: OnceLock<(tempfile::TempDir, Vec<u8>)> = OnceLock::new();
    B.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("b");
        let opts = Options {
            weights: WeightDType::Q4,
            shard_size: 64 << 10,
            ..Options::default()
        };
        convert(&fixture(), &out, &opts).unwrap();
        let manifest = fs::read(out.join("manifest.json")).unwrap();
        (tmp, manifest)
    })
}

/// Parses, and where that succeeds loads against the real shards: any
/// outcome but a panic is fine.
fn parse_and_load(bytes: &[u8]) {
    let Ok(m) = Manifest::parse(bytes) else {
        return;
    };
    let dir = bundle().0.path().join("b");
    let Ok(mut loader) = BundleLoader::with_manifest(FsSource::new(dir), m) else {
        return;
    };
    if let Ok(tensors) = pollster::block_on(loader.load_all(&mut |_| {})) {
        for t in tensors.iter().take(8) {
            let _ = t.to_f32();
        }
    }
}

/// Rewrites the `n`th number in a JSON text.
fn replace_number(text: &str, n: usize, with: &str) -> String {
    let bytes = text.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if count == n {
                return format!("{}{with}{}", &text[..i], &text[j..]);
            }
            count += 1;
            i = j;
        } else {
            i += 1;
        }
    }
    text.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_and_load(&bytes);
    }

    #[test]
    fn mutated_numbers_never_panic(n in 0usize..3000, value in prop_oneof![
        Just("0".to_string()), Just("1".to_string()), Just("255".to_string()),
        Just("18446744073709551615".to_string()), Just("-1".to_string()),
        any::<u32>().prop_map(|v| v.to_string()), any::<u64>().prop_map(|v| v.to_string()),
    ]) {
        // Only numbers of the shard list and tensor table (configs and the
        // tokenizer hold most of the text and matter little here).
        let text = String::from_utf8(bundle().1.clone()).unwrap();
        let at = text.find("\"shards\"").unwrap();
        let mutated = replace_number(&text[at..], n, &value);
        parse_and_load(format!("{}{mutated}", &text[..at]).as_bytes());
    }

    #[test]
    fn cut_or_spliced_manifests_never_panic(a in 0usize..200_000, b in 0usize..200_000) {
        let text = &bundle().1;
        let (a, b) = (a.min(text.len()), b.min(text.len()));
        parse_and_load(&text[..a]);
        let (lo, hi) = (a.min(b), a.max(b));
        let spliced = [&text[..lo], &text[hi..]].concat();
        parse_and_load(&spliced);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn damaged_safetensors_never_panic(cut in 0usize..180_000, flip in 0usize..4096, bit in 0u8..8) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path();
        for f in ["model_index.json", "scheduler/scheduler_config.json", "tokenizer/tokenizer.json",
                  "tokenizer/tokenizer_config.json", "text_encoder/config.json",
                  "transformer/config.json", "vae/config.json"] {
            fs::create_dir_all(src.join(f).parent().unwrap()).unwrap();
            fs::copy(fixture().join(f), src.join(f)).unwrap();
        }
        // Small components by hard link would share damage with the fixture: copy.
        for d in ["transformer", "vae"] {
            for e in fs::read_dir(fixture().join(d)).unwrap() {
                let e = e.unwrap();
                fs::copy(e.path(), src.join(d).join(e.file_name())).unwrap();
            }
        }
        let mut bytes = fs::read(fixture().join("text_encoder/model.safetensors")).unwrap();
        let flip = flip.min(bytes.len() - 1);
        bytes[flip] ^= 1 << bit;
        bytes.truncate(cut.min(bytes.len()));
        fs::write(src.join("text_encoder/model.safetensors"), &bytes).unwrap();
        if let Ok(ck) = Checkpoint::open(src) {
            for t in ck.tensors.iter().filter(|t| t.component == "text_encoder") {
                let _ = ck.read_f32(t, 0..t.numel());
            }
        }
    }
}
