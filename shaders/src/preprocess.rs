//! A line preprocessor for what WGSL `override` constants cannot express.

use std::collections::HashSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreprocessError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PreprocessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for PreprocessError {}

/// Expands `#include` and `#if`/`#else`/`#endif` in `source`.
pub fn preprocess(
    file: &str,
    source: &str,
    flags: &[&str],
    resolve: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<String, PreprocessError> {
    let mut out = String::with_capacity(source.len() * 2);
    let mut included = HashSet::new();
    expand(file, source, flags, resolve, &mut included, &mut out)?;
    Ok(out)
}

fn expand(
    file: &str,
    source: &str,
    flags: &[&str],
    resolve: &dyn Fn(&str) -> Option<&'static str>,
    included: &mut HashSet<String>,
    out: &mut String,
) -> Result<(), PreprocessError> {
    let err = |line: usize, message: String| PreprocessError {
        file: file.to_string(),
        line,
        message,
    };
    // Each entry: (this branch is taken, some enclosing branch is dropped, seen #else).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool, bool)]| stack.iter().all(|&(taken, _, _)| taken);
    for (i, line) in source.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("#if ") {
            let cond = rest.trim();
            let (negate, name) = match cond.strip_prefix('!') {
                Some(name) => (true, name.trim()),
                None => (false, cond),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(n, format!("bad #if condition '{cond}'")));
            }
            let outer = active(&stack);
            stack.push((flags.contains(&name) != negate, !outer, false));
        } else if trimmed.starts_with("#else") {
            let top = stack
                .last_mut()
                .ok_or_else(|| err(n, "#else without #if".into()))?;
            if top.2 {
                return Err(err(n, "second #else".into()));
            }
            *top = (!top.0, top.1, true);
        } else if trimmed.starts_with("#endif") {
            stack
                .pop()
                .ok_or_else(|| err(n, "#endif without #if".into()))?;
        } else if let Some(rest) = trimmed.strip_prefix("#include ") {
            if !active(&stack) {
                continue;
            }
            let name = rest.trim().trim_matches('"');
            if included.insert(name.to_string()) {
                let text =
                    resolve(name).ok_or_else(|| err(n, format!("unknown include '{name}'")))?;
                expand(name, text, flags, resolve, included, out)?;
            }
        } else if trimmed.starts_with('#') {
            return Err(err(n, format!("unknown directive '{trimmed}'")));
        } else if active(&stack) {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(err(source.lines().count(), "#if without #endif".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<&'static str> {
        None
    }

    #[test]
    fn flags_select_branches_and_nest() {
        let src = "a\n#if X\nb\n#if !Y\nc\n#else\nd\n#endif\n#else\ne\n#endif\nf\n";
        assert_eq!(preprocess("t", src, &[], &none).unwrap(), "a\ne\nf\n");
        assert_eq!(preprocess("t", src, &["X"], &none).unwrap(), "a\nb\nc\nf\n");
        assert_eq!(
            preprocess("t", src, &["X", "Y"], &none).unwrap(),
            "a\nb\nd\nf\n"
        );
    }

    #[test]
    fn includes_expand_once_and_unknown_ones_fail() {
        let resolve = |name: &str| (name == "common/x.wgsl").then_some("x\n");
        let src = "#include \"common/x.wgsl\"\n#include \"common/x.wgsl\"\ny\n";
        assert_eq!(preprocess("t", src, &[], &resolve).unwrap(), "x\ny\n");
        let e = preprocess("t", "#include \"nope\"\n", &[], &resolve).unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn unbalanced_directives_are_errors() {
        assert!(preprocess("t", "#if X\n", &[], &none).is_err());
        assert!(preprocess("t", "#endif\n", &[], &none).is_err());
        assert!(preprocess("t", "#else\n", &[], &none).is_err());
        assert!(preprocess("t", "#pragma\n", &[], &none).is_err());
    }
}
