//! Tokenisation against what the diffusers pipeline produced for the same
//! tokenizer.json (tests/fixtures/ltx/*/reference.json).

use framecast::models::tokenizer::PromptTokenizer;

#[test]
fn prompts_tokenise_like_diffusers() {
    for variant in ["v095", "v090"] {
        let dir = format!(
            "{}/../tests/fixtures/ltx/{variant}",
            env!("CARGO_MANIFEST_DIR")
        );
        let json = std::fs::read(format!("{dir}/pipeline/tokenizer/tokenizer.json")).unwrap();
        let reference: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/reference.json")).unwrap(),
        )
        .unwrap();
        let max_len = reference["call"]["max_sequence_length"].as_u64().unwrap() as usize;
        let tok = PromptTokenizer::from_json(&json, "<pad>").unwrap();
        for case in reference["tokenizer"].as_array().unwrap() {
            let prompt = case["prompt"].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
            let mask: Vec<u32> = serde_json::from_value(case["mask"].clone()).unwrap();
            let got = tok.encode(prompt, max_len).unwrap();
            assert_eq!(got.ids, want, "{variant}: ids of {prompt:?}");
            assert_eq!(got.mask, mask, "{variant}: mask of {prompt:?}");
            assert_eq!(
                got.truncated,
                prompt.split_whitespace().count() > 30,
                "{variant}: truncation of {prompt:?}"
            );
        }
    }
}

#[test]
fn a_broken_tokenizer_json_is_an_error() {
    assert!(PromptTokenizer::from_json(b"{not json", "<pad>").is_err());
}
