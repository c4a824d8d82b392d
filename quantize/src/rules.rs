//! Which tensors are quantised and which keep more precision.
//!
//! By default the `--weights` type goes to every matrix-like weight whose
//! rows split into whole groups, and norms, biases, embedding tables,
//! modulation tables and small tensors stay f16 (f32 under `--weights f32`).
//! `--keep GLOB=TYPE` rules come first, in the order given.

use framecast::bundle::WeightDType;

/// Names that stay at the higher precision whatever their shape: they are
/// small, or they are lookup tables and scales rather than matrices whose
/// products average quantisation noise out.
pub const DEFAULT_KEEP: &[&str] = &[
    "*norm*",
    "*.bias",
    "*embed_tokens*",
    "shared.weight",
    "*relative_attention_bias*",
    "*scale_shift_table*",
    "*latents_mean*",
    "*latents_std*",
];

#[derive(Clone, Debug)]
pub struct Rule {
    pub pattern: String,
    pub dtype: WeightDType,
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Rule, String> {
        let (pattern, dtype) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("{s:?}: expected GLOB=TYPE, e.g. 'vae/*=f16'"))?;
        Ok(Rule {
            pattern: pattern.to_string(),
            dtype: dtype.parse()?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Rules {
    pub weights: WeightDType,
    pub group: usize,
    /// Tensors with fewer elements stay at the higher precision.
    pub min_elements: usize,
    pub rules: Vec<Rule>,
}

/// What to store a tensor as, and why (for the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub dtype: WeightDType,
    pub reason: &'static str,
}

impl Rules {
    /// The precision of tensors that are not quantised.
    pub fn keep(&self) -> WeightDType {
        if self.weights == WeightDType::F32 {
            WeightDType::F32
        } else {
            WeightDType::F16
        }
    }

    pub fn decide(&self, component: &str, name: &str, shape: &[usize]) -> Decision {
        let rows = shape.first().copied().unwrap_or(1);
        let row_len: usize = shape.iter().skip(1).product();
        let numel = rows * row_len;
        let groups_fit = shape.len() >= 2 && row_len.is_multiple_of(self.group) && numel > 0;
        let keep = |reason| Decision {
            dtype: self.keep(),
            reason,
        };
        let key = format!("{component}/{name}");
        // A pattern with a `/` matches `component/name`; one without, the name.
        let matches = |p: &str| glob(p, if p.contains('/') { &key } else { name });
        if let Some(rule) = self.rules.iter().find(|r| matches(&r.pattern)) {
            if rule.dtype.quant().is_some() && !groups_fit {
                return keep("rule asks for q4/q8, but rows are not whole groups");
            }
            return Decision {
                dtype: rule.dtype,
                reason: "rule",
            };
        }
        if self.weights.quant().is_none() {
            return Decision {
                dtype: self.weights,
                reason: "--weights",
            };
        }
        if DEFAULT_KEEP.iter().any(|p| glob(p, name)) {
            return keep("norm, bias or table");
        }
        if shape.len() < 2 {
            return keep("vector");
        }
        if numel < self.min_elements {
            return keep("small");
        }
        if !groups_fit {
            return keep("rows are not whole groups");
        }
        Decision {
            dtype: self.weights,
            reason: "--weights",
        }
    }
}

/// `*` matches any run of characters (dots included), `?` any one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Backtracking point: the last `*` and where its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*norm*", "blocks.0.norm1.weight"));
        assert!(glob("*.bias", "a.b.bias"));
        assert!(!glob("*.bias", "a.bias.weight"));
        assert!(glob("vae/*", "vae/decoder.conv_in.weight"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*", ""));
        assert!(glob("**x*", "yyxyy"));
    }

    #[test]
    fn defaults_keep_norms_biases_tables_and_odd_shapes() {
        let rules = Rules {
            weights: WeightDType::Q4,
            group: 32,
            min_elements: 1024,
            rules: vec![
                "vae/*=f32".parse().unwrap(),
                "*.to_q.weight=q8".parse().unwrap(),
            ],
        };
        let d = |c: &str, n: &str, s: &[usize]| rules.decide(c, n, s).dtype;
        use WeightDType::*;
        assert_eq!(d("transformer", "blocks.0.ff.weight", &[64, 64]), Q4);
        assert_eq!(d("transformer", "blocks.0.attn.to_q.weight", &[64, 64]), Q8);
        assert_eq!(d("transformer", "blocks.0.ff.bias", &[64]), F16);
        assert_eq!(d("transformer", "blocks.0.norm1.weight", &[64, 64]), F16);
        assert_eq!(d("text_encoder", "shared.weight", &[64, 64]), F16);
        assert_eq!(d("transformer", "proj.weight", &[64, 48]), F16);
        assert_eq!(d("transformer", "tiny.weight", &[4, 32]), F16);
        assert_eq!(d("vae", "decoder.conv.weight", &[64, 64]), F32);
        // A rule asking for q4 where rows are not whole groups falls back.
        assert_eq!(d("transformer", "x.to_q.weight", &[64, 48]), F16);
    }
}
