//! A line preprocessor for what WGSL `override` constants cannot express.
//!
//! - `#include "common/<name>.wgsl"` pastes a snippet (once per module);
//! - `#if FLAG`, `#if !FLAG`, `#else`, `#endif` keep or drop lines;
//! - `#repeat NAME COUNT` ... `#endrepeat` writes the enclosed lines COUNT
//!   times with `{NAME}` replaced by 0, 1, ... (nesting allowed). COUNT is a
//!   number or the name of a define, a flag written `NAME=VALUE`;
//! - `{NAME}` anywhere else is replaced by the value of the define NAME.
//!
//! Kernels use `#repeat` for register blocking: WGSL arrays indexed in loops
//! end up in memory on some compilers (lavapipe), named values stay in
//! registers.

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

/// Expands `#include`, `#if`/`#else`/`#endif` and `#repeat` in `source`.
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
    let lines: Vec<&str> = source.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = (i + 1, lines[i]);
        i += 1;
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("#repeat ") {
            let end = matching_endrepeat(&lines, i)
                .ok_or_else(|| err(n, "#repeat without #endrepeat".into()))?;
            let body = lines[i..end].join("\n");
            i = end + 1;
            if !active(&stack) {
                continue;
            }
            let mut words = rest.split_whitespace();
            let (name, count) = match (words.next(), words.next(), words.next()) {
                (Some(name), Some(count), None) => (name, count),
                _ => return Err(err(n, format!("bad #repeat '{rest}': want NAME COUNT"))),
            };
            let count = repeat_count(count, flags).ok_or_else(|| {
                err(
                    n,
                    format!("#repeat count '{count}' is neither a number nor a define"),
                )
            })?;
            let pattern = format!("{{{name}}}");
            for k in 0..count {
                let text = body.replace(&pattern, &k.to_string());
                expand(file, &text, flags, resolve, included, out)?;
            }
        } else if trimmed.starts_with("#endrepeat") {
            return Err(err(n, "#endrepeat without #repeat".into()));
        } else if let Some(rest) = trimmed.strip_prefix("#if ") {
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
            let mut line = line.to_string();
            for (name, value) in flags.iter().filter_map(|f| f.split_once('=')) {
                line = line.replace(&format!("{{{name}}}"), value);
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    if !stack.is_empty() {
        return Err(err(lines.len(), "#if without #endif".into()));
    }
    Ok(())
}

/// The index of the `#endrepeat` closing a `#repeat` whose body starts at `start`.
fn matching_endrepeat(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, line) in lines.iter().enumerate().skip(start) {
        let t = line.trim_start();
        if t.starts_with("#repeat ") {
            depth += 1;
        } else if t.starts_with("#endrepeat") {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

/// A literal count, or the value of the define `NAME=VALUE` among `flags`.
fn repeat_count(count: &str, flags: &[&str]) -> Option<usize> {
    if let Ok(n) = count.parse() {
        return Some(n);
    }
    flags
        .iter()
        .find_map(|f| f.strip_prefix(count)?.strip_prefix('=')?.parse().ok())
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
    fn repeats_substitute_their_index_and_nest() {
        let src = "#repeat i 2\n#repeat j N\na{i}{j}\n#endrepeat\n#if X\nx{i}\n#endif\n#endrepeat\nz{N}\n";
        assert_eq!(
            preprocess("t", src, &["N=3", "X"], &none).unwrap(),
            "a00\na01\na02\nx0\na10\na11\na12\nx1\nz3\n"
        );
        assert_eq!(
            preprocess("t", src, &["N=1"], &none).unwrap(),
            "a00\na10\nz1\n"
        );
        // A repeat inside a dropped branch needs no define.
        assert_eq!(
            preprocess(
                "t",
                "#if X\n#repeat i N\na\n#endrepeat\n#endif\nb\n",
                &[],
                &none
            )
            .unwrap(),
            "b\n"
        );
    }

    #[test]
    fn bad_repeats_are_errors() {
        assert!(preprocess("t", "#repeat i 2\na\n", &[], &none).is_err());
        assert!(preprocess("t", "a\n#endrepeat\n", &[], &none).is_err());
        assert!(preprocess("t", "#repeat i N\na\n#endrepeat\n", &[], &none).is_err());
        assert!(preprocess("t", "#repeat i\na\n#endrepeat\n", &[], &none).is_err());
    }

    #[test]
    fn unbalanced_directives_are_errors() {
        assert!(preprocess("t", "#if X\n", &[], &none).is_err());
        assert!(preprocess("t", "#endif\n", &[], &none).is_err());
        assert!(preprocess("t", "#else\n", &[], &none).is_err());
        assert!(preprocess("t", "#pragma\n", &[], &none).is_err());
    }
}
