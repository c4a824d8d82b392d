//! The WGSL kernels of framecast and the one registry that names them.
//!
//! Every kernel family lives in one `.wgsl` file; shared snippets live in
//! `common/`. Specialisation uses WGSL `override` constants where they reach
//! (tile and workgroup sizes) and a tiny line preprocessor where they do not
//! (element type, optional bindings):
//!
//! - `#include "common/<name>.wgsl"` pastes a snippet (once per module);
//! - `#if FLAG`, `#if !FLAG`, `#else`, `#endif` keep or drop lines by the
//!   variant's flags (nesting allowed).
//!
//! The flag `F16` is special only by convention: `common/precision.wgsl`
//! turns it into `enable f16;` and `alias act = f16;` (otherwise `f32`), the
//! element type of activations. Accumulation is f32 in every kernel.

mod preprocess;

pub use preprocess::{PreprocessError, preprocess};

/// One kernel family: one WGSL file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kernel {
    Elementwise,
    Conv3d,
    Rearrange,
}

/// A set of preprocessor flags that the naga test validates for a family.
pub type Variant = &'static [&'static str];

impl Kernel {
    pub const ALL: &'static [Kernel] = &[Kernel::Elementwise, Kernel::Conv3d, Kernel::Rearrange];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Elementwise => "elementwise",
            Kernel::Conv3d => "conv3d",
            Kernel::Rearrange => "rearrange",
        }
    }

    /// The family's WGSL source before preprocessing.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Elementwise => include_str!("../elementwise.wgsl"),
            Kernel::Conv3d => include_str!("../conv3d.wgsl"),
            Kernel::Rearrange => include_str!("../rearrange.wgsl"),
        }
    }

    /// Every flag combination the runtime may ask for; the naga test checks each.
    pub fn variants(self) -> &'static [Variant] {
        const PRECISION: &[Variant] = &[&[], &["F16"]];
        // Optional bias x activation precision x weight path x weight storage.
        const CONV3D: &[Variant] = &[
            &[],
            &["WEIGHT_F16"],
            &["SUBGROUPS"],
            &["SUBGROUPS", "WEIGHT_F16"],
            &["F16"],
            &["F16", "WEIGHT_F16"],
            &["F16", "SUBGROUPS"],
            &["F16", "SUBGROUPS", "WEIGHT_F16"],
            &["BIAS"],
            &["BIAS", "WEIGHT_F16"],
            &["BIAS", "SUBGROUPS"],
            &["BIAS", "SUBGROUPS", "WEIGHT_F16"],
            &["BIAS", "F16"],
            &["BIAS", "F16", "WEIGHT_F16"],
            &["BIAS", "F16", "SUBGROUPS"],
            &["BIAS", "F16", "SUBGROUPS", "WEIGHT_F16"],
        ];
        match self {
            Kernel::Elementwise | Kernel::Rearrange => PRECISION,
            Kernel::Conv3d => CONV3D,
        }
    }
}

/// Shared snippets that kernels `#include`.
pub fn common(name: &str) -> Option<&'static str> {
    Some(match name {
        "common/precision.wgsl" => include_str!("../common/precision.wgsl"),
        "common/index.wgsl" => include_str!("../common/index.wgsl"),
        _ => return None,
    })
}

/// The preprocessed WGSL of `kernel` with `flags` set.
pub fn wgsl(kernel: Kernel, flags: &[&str]) -> Result<String, PreprocessError> {
    preprocess(kernel.name(), kernel.source(), flags, &common)
}
