//! Subcommands of the native binary that are more than a few lines.

pub mod generate;
pub mod storyboard;

/// The embedded demo model's bundle: `models/demo` beside the binary, else
/// in this source tree.
pub fn demo_model_dir() -> Option<std::path::PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("models/demo")));
    let in_repo = Some(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/demo"));
    [beside, in_repo]
        .into_iter()
        .flatten()
        .find(|d| d.join("manifest.json").is_file())
}
