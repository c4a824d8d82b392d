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
    Sampler,
    Rng,
    Video,
    Norm,
    Rope,
    Matmul,
    MatmulBroadcast,
    Attention,
    Conv3d,
    Rearrange,
}

/// A set of preprocessor flags that the naga test validates for a family.
pub type Variant = &'static [&'static str];

impl Kernel {
    pub const ALL: &'static [Kernel] = &[
        Kernel::Elementwise,
        Kernel::Matmul,
        Kernel::MatmulBroadcast,
        Kernel::Attention,
        Kernel::Conv3d,
        Kernel::Rearrange,
        Kernel::Norm,
        Kernel::Rope,
        Kernel::Sampler,
        Kernel::Rng,
        Kernel::Video,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Elementwise => "elementwise",
            Kernel::Sampler => "sampler",
            Kernel::Rng => "rng",
            Kernel::Video => "video",
            Kernel::Norm => "norm",
            Kernel::Rope => "rope",
            Kernel::Matmul => "matmul",
            Kernel::MatmulBroadcast => "matmul_broadcast",
            Kernel::Attention => "attention",
            Kernel::Conv3d => "conv3d",
            Kernel::Rearrange => "rearrange",
        }
    }

    /// The family's WGSL source before preprocessing.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Elementwise => include_str!("../elementwise.wgsl"),
            Kernel::Sampler => include_str!("../sampler.wgsl"),
            Kernel::Rng => include_str!("../rng.wgsl"),
            Kernel::Video => include_str!("../video.wgsl"),
            Kernel::Norm => include_str!("../norm.wgsl"),
            Kernel::Rope => include_str!("../rope.wgsl"),
            Kernel::Matmul => include_str!("../matmul.wgsl"),
            Kernel::MatmulBroadcast => include_str!("../matmul_broadcast.wgsl"),
            Kernel::Attention => include_str!("../attention.wgsl"),
            Kernel::Conv3d => include_str!("../conv3d.wgsl"),
            Kernel::Rearrange => include_str!("../rearrange.wgsl"),
        }
    }

    /// Every flag combination the runtime may ask for; the naga test checks each.
    pub fn variants(self) -> &'static [Variant] {
        const PRECISION: &[Variant] = &[&[], &["F16"]];
        // The Euler step may update the latents in place (INPLACE).
        const SAMPLER: &[Variant] = &[&[], &["F16"], &["INPLACE"], &["F16", "INPLACE"]];
        // rms_norm / layer_norm / pixel_norm: optional weight, modulation, and
        // the scale_shift_table row (only with modulation); gated_residual
        // under GATE, with or without the table row.
        const NORM: &[Variant] = &[
            &[],
            &["WEIGHT"],
            &["MOD"],
            &["MOD", "WEIGHT"],
            &["MOD", "TABLE"],
            &["MOD", "TABLE", "WEIGHT"],
            &["F16"],
            &["F16", "WEIGHT"],
            &["F16", "MOD"],
            &["F16", "MOD", "WEIGHT"],
            &["F16", "MOD", "TABLE"],
            &["F16", "MOD", "TABLE", "WEIGHT"],
            &["GATE"],
            &["GATE", "TABLE"],
            &["F16", "GATE"],
            &["F16", "GATE", "TABLE"],
        ];
        // rope_apply at either precision; rope_table (TABLE) is f32 only.
        const ROPE: &[Variant] = &[&[], &["F16"], &["TABLE"]];
        // Activation precision x weight format (q4/q8 always with K4) x K4 x bias.
        const MATMUL: &[Variant] = &[
            &[],
            &["BIAS"],
            &["K4"],
            &["BIAS", "K4"],
            &["WF16"],
            &["BIAS", "WF16"],
            &["K4", "WF16"],
            &["BIAS", "K4", "WF16"],
            &["K4", "Q8", "QUANT"],
            &["BIAS", "K4", "Q8", "QUANT"],
            &["K4", "Q4", "QUANT"],
            &["BIAS", "K4", "Q4", "QUANT"],
            &["F16"],
            &["BIAS", "F16"],
            &["F16", "K4"],
            &["BIAS", "F16", "K4"],
            &["F16", "WF16"],
            &["BIAS", "F16", "WF16"],
            &["F16", "K4", "WF16"],
            &["BIAS", "F16", "K4", "WF16"],
            &["F16", "K4", "Q8", "QUANT"],
            &["BIAS", "F16", "K4", "Q8", "QUANT"],
            &["F16", "K4", "Q4", "QUANT"],
            &["BIAS", "F16", "K4", "Q4", "QUANT"],
        ];
        // The CPU GEMM: weight format x precision x bias at the two blocks
        // the runtime picks by M, and the other blocks of `Block::ALL` (with
        // which the self-check tests q4 at f16).
        const MATMUL_BROADCAST: &[Variant] = &[
            &["COL_VECS=4", "ROW_BLOCKS=2", "SUBGROUPS"],
            &["BIAS", "COL_VECS=4", "ROW_BLOCKS=2", "SUBGROUPS"],
            &["COL_VECS=4", "ROW_BLOCKS=2", "SUBGROUPS", "WF16"],
            &["BIAS", "COL_VECS=4", "ROW_BLOCKS=2", "SUBGROUPS", "WF16"],
            &["COL_VECS=4", "Q8", "QUANT", "ROW_BLOCKS=2", "SUBGROUPS"],
            &[
                "BIAS",
                "COL_VECS=4",
                "Q8",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &["COL_VECS=4", "Q4", "QUANT", "ROW_BLOCKS=2", "SUBGROUPS"],
            &[
                "BIAS",
                "COL_VECS=4",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &["COL_VECS=4", "F16", "ROW_BLOCKS=2", "SUBGROUPS"],
            &["BIAS", "COL_VECS=4", "F16", "ROW_BLOCKS=2", "SUBGROUPS"],
            &["COL_VECS=4", "F16", "ROW_BLOCKS=2", "SUBGROUPS", "WF16"],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
                "WF16",
            ],
            &[
                "COL_VECS=4",
                "F16",
                "Q8",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "Q8",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &[
                "COL_VECS=4",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &["COL_VECS=4", "ROW_BLOCKS=1", "SUBGROUPS"],
            &["BIAS", "COL_VECS=4", "ROW_BLOCKS=1", "SUBGROUPS"],
            &["COL_VECS=4", "ROW_BLOCKS=1", "SUBGROUPS", "WF16"],
            &["BIAS", "COL_VECS=4", "ROW_BLOCKS=1", "SUBGROUPS", "WF16"],
            &["COL_VECS=4", "Q8", "QUANT", "ROW_BLOCKS=1", "SUBGROUPS"],
            &[
                "BIAS",
                "COL_VECS=4",
                "Q8",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &["COL_VECS=4", "Q4", "QUANT", "ROW_BLOCKS=1", "SUBGROUPS"],
            &[
                "BIAS",
                "COL_VECS=4",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &["COL_VECS=4", "F16", "ROW_BLOCKS=1", "SUBGROUPS"],
            &["BIAS", "COL_VECS=4", "F16", "ROW_BLOCKS=1", "SUBGROUPS"],
            &["COL_VECS=4", "F16", "ROW_BLOCKS=1", "SUBGROUPS", "WF16"],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
                "WF16",
            ],
            &[
                "COL_VECS=4",
                "F16",
                "Q8",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "Q8",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &[
                "COL_VECS=4",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=1",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=2",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=1",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=2",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=2",
                "SUBGROUPS",
            ],
            &[
                "BIAS",
                "COL_VECS=4",
                "F16",
                "Q4",
                "QUANT",
                "ROW_BLOCKS=3",
                "SUBGROUPS",
            ],
        ];
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
            Kernel::Elementwise | Kernel::Rng | Kernel::Video | Kernel::Rearrange => PRECISION,
            Kernel::Sampler => SAMPLER,
            Kernel::Norm => NORM,
            Kernel::Rope => ROPE,
            Kernel::Matmul => MATMUL,
            Kernel::MatmulBroadcast => MATMUL_BROADCAST,
            // Optional bindings (an additive key mask, a T5 bias table) and
            // the subgroup path, at both precisions.
            Kernel::Attention => &[
                &[],
                &["MASK"],
                &["T5_BIAS"],
                &["MASK", "T5_BIAS"],
                &["F16"],
                &["F16", "MASK"],
                &["F16", "T5_BIAS"],
                &["F16", "MASK", "T5_BIAS"],
                &["D4=16", "SUBGROUPS"],
                &["D4=16", "MASK", "SUBGROUPS"],
                &["D4=16", "SUBGROUPS", "T5_BIAS"],
                &["D4=16", "MASK", "SUBGROUPS", "T5_BIAS"],
                &["D4=16", "F16", "SUBGROUPS"],
                &["D4=16", "F16", "MASK", "SUBGROUPS"],
                &["D4=16", "F16", "SUBGROUPS", "T5_BIAS"],
                &["D4=16", "F16", "MASK", "SUBGROUPS", "T5_BIAS"],
            ],
            Kernel::Conv3d => CONV3D,
        }
    }
}

/// Shared snippets that kernels `#include`.
pub fn common(name: &str) -> Option<&'static str> {
    Some(match name {
        "common/precision.wgsl" => include_str!("../common/precision.wgsl"),
        "common/index.wgsl" => include_str!("../common/index.wgsl"),
        "common/linear_out.wgsl" => include_str!("../common/linear_out.wgsl"),
        _ => return None,
    })
}

/// The preprocessed WGSL of `kernel` with `flags` set.
pub fn wgsl(kernel: Kernel, flags: &[&str]) -> Result<String, PreprocessError> {
    preprocess(kernel.name(), kernel.source(), flags, &common)
}
