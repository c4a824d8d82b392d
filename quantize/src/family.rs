//! The model families the quantizer knows: which pipelines they are, which
//! component classes they need, and the order their weights are used in.

use crate::checkpoint::{CheckpointError, SourceTensor};

pub enum Role {
    Weights,
    Tokenizer,
    Scheduler,
    Ignored,
}

pub struct Family {
    pub name: &'static str,
    pub pipelines: &'static [&'static str],
    /// (component, accepted classes).
    pub classes: &'static [(&'static str, &'static [&'static str])],
    pub required: &'static [&'static str],
    /// Components in execution order; a component's `late` prefixes form a
    /// later stage (the VAE's encoder runs after its decoder: it is only
    /// needed for image and video conditioning).
    pub stages: &'static [(&'static str, &'static [&'static str])],
    /// Name prefixes used before a component's repeated blocks (embeddings,
    /// input projections): they load first in their stage.
    pub head: &'static [&'static str],
    /// Name prefixes used after the blocks (output norms and projections):
    /// they load last in their stage.
    pub tail: &'static [&'static str],
}

pub static FAMILIES: &[Family] = &[Family {
    name: "ltx",
    pipelines: &[
        "LTXPipeline",
        "LTXConditionPipeline",
        "LTXImageToVideoPipeline",
    ],
    classes: &[
        ("transformer", &["LTXVideoTransformer3DModel"]),
        ("vae", &["AutoencoderKLLTXVideo"]),
        ("text_encoder", &["T5EncoderModel"]),
    ],
    required: &["transformer", "vae", "text_encoder"],
    stages: &[
        ("text_encoder", &[]),
        ("transformer", &[]),
        ("vae", &["encoder.", "quant_conv."]),
    ],
    head: &[
        "shared.",
        "encoder.embed_tokens.",
        "proj_in.",
        "time_embed.",
        "caption_projection.",
        "latents_",
        "decoder.conv_in.",
        "encoder.conv_in.",
    ],
    tail: &[
        "encoder.final_layer_norm.",
        "norm_out.",
        "proj_out.",
        "scale_shift_table",
        "decoder.norm_out.",
        "decoder.conv_out.",
        "decoder.last_",
        "encoder.norm_out.",
        "encoder.conv_out.",
    ],
}];

pub fn detect(pipeline_class: &str) -> Result<&'static Family, CheckpointError> {
    FAMILIES
        .iter()
        .find(|f| f.pipelines.contains(&pipeline_class))
        .ok_or_else(|| {
            let known: Vec<&str> = FAMILIES.iter().flat_map(|f| f.pipelines).copied().collect();
            CheckpointError::Unsupported(format!(
                "unknown architecture: model_index.json names pipeline {pipeline_class:?}; \
                 framecast converts {}",
                known.join(", ")
            ))
        })
}

impl Family {
    pub fn role(&self, component: &str) -> Role {
        match component {
            "tokenizer" => Role::Tokenizer,
            "scheduler" => Role::Scheduler,
            c if self.classes.iter().any(|(n, _)| *n == c) => Role::Weights,
            _ => Role::Ignored,
        }
    }

    pub fn check_class(&self, component: &str, class: &str) -> Result<(), CheckpointError> {
        let ok = self
            .classes
            .iter()
            .any(|(n, classes)| *n == component && classes.contains(&class));
        if ok {
            Ok(())
        } else {
            Err(CheckpointError::Unsupported(format!(
                "unknown architecture: component {component} is a {class}, which the {} \
                 family does not use",
                self.name
            )))
        }
    }
}

/// Sort key putting a tensor in execution order: stage, then head, blocks,
/// tail, then names with numbers compared as numbers (`blocks.2` before
/// `blocks.10`).
pub fn order_key(family: &Family, t: &SourceTensor) -> (usize, u8, Vec<NamePiece>) {
    let mut stage = usize::MAX;
    let mut index = 0;
    for (component, late) in family.stages {
        if *component == t.component {
            stage = index + usize::from(late.iter().any(|p| t.name.starts_with(p)));
            break;
        }
        index += 2;
    }
    let name = t.name.as_str();
    // Prefixes match from the start of the name, so block-local names such
    // as `transformer_blocks.3.scale_shift_table` stay with their block.
    let rank = if family.head.iter().any(|p| name.starts_with(p)) {
        0
    } else if family.tail.iter().any(|p| name.starts_with(p)) {
        2
    } else {
        1
    };
    (stage, rank, natural(name))
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamePiece {
    Number(u64),
    Text(String),
}

fn natural(name: &str) -> Vec<NamePiece> {
    name.split('.')
        .map(|p| match p.parse::<u64>() {
            Ok(n) => NamePiece::Number(n),
            Err(_) => NamePiece::Text(p.to_string()),
        })
        .collect()
}
