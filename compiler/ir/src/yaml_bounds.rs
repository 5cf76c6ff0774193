//! A linear scan of YAML (or JSON) text before it reaches the YAML parser, which spends time
//! quadratic in the nesting depth of flow collections (`{a: {a: ...}}`, `[[[...]]]`): 100k levels
//! in 500 KB took 38 s of CPU before its recursion limit refused them. Nothing a Kubernetes object
//! needs is nested anywhere near [`MAX_NESTING`] levels (`kubectl get -o json` nests about 15).

/// The deepest nesting accepted, in flow collections and block levels alike; the YAML parser
/// netc uses refuses documents nested deeper than 128 anyway.
pub const MAX_NESTING: usize = 100;

/// Where the text first nests deeper than [`MAX_NESTING`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: nested more than {MAX_NESTING} levels deep; no Kubernetes object is, so this is refused before parsing",
            self.line, self.column
        )
    }
}

impl std::error::Error for TooDeep {}

/// `text` without a leading UTF-8 byte-order mark (YAML allows one; the parser would read it as
/// part of the first key).
#[must_use]
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Check that `text` nests no deeper than [`MAX_NESTING`], counting open flow collections (`{`,
/// `[` outside quotes and comments) plus block sequence entries started on one line (`- - - x`),
/// in one pass.
///
/// # Errors
/// [`TooDeep`] at the first place that goes deeper.
pub fn check_nesting(text: &str) -> Result<(), TooDeep> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut line = 1;
    let mut line_start = 0;
    // Block sequence entries opened on the current line before any other content (`- - - x`).
    let mut dashes = 0usize;
    let mut at_line_content_start = true;
    let mut i = 0;
    let too_deep = |i: usize, line: usize, line_start: usize| TooDeep {
        line,
        column: text.get(line_start..i).map_or(1, |t| t.chars().count() + 1),
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line += 1;
                line_start = i + 1;
                dashes = 0;
                at_line_content_start = true;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'"' if starts_scalar(bytes, i) => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    } else if bytes[i] == b'\n' {
                        line += 1;
                        line_start = i + 1;
                    }
                    i += 1;
                }
                at_line_content_start = false;
            }
            b'\'' if starts_scalar(bytes, i) => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            break;
                        }
                    } else if bytes[i] == b'\n' {
                        line += 1;
                        line_start = i + 1;
                    }
                    i += 1;
                }
                at_line_content_start = false;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth + dashes > MAX_NESTING {
                    return Err(too_deep(i, line, line_start));
                }
                at_line_content_start = false;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                at_line_content_start = false;
            }
            b'-' if at_line_content_start && bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace) => {
                dashes += 1;
                if depth + dashes > MAX_NESTING {
                    return Err(too_deep(i, line, line_start));
                }
            }
            _ => at_line_content_start = false,
        }
        i += 1;
    }
    Ok(())
}

/// Whether a quote at `i` opens a quoted scalar: first on its line, or after an indicator that
/// can precede a value. Elsewhere (`it's`, `a "b"`) it is part of a plain scalar, and taking it for
/// an opening quote would let the scan skip over what follows.
fn starts_scalar(bytes: &[u8], i: usize) -> bool {
    let before = bytes[..i].iter().rposition(|&b| b != b' ' && b != b'\t');
    match before {
        None => true,
        Some(j) => matches!(bytes[j], b'\n' | b'\r' | b':' | b',' | b'[' | b'{' | b'-' | b'?'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_and_dash_nesting_is_refused_at_its_place() {
        let deep = format!("a: {}x{}", "{a: ".repeat(150), "}".repeat(150));
        assert_eq!(check_nesting(&deep), Err(TooDeep { line: 1, column: 4 + 4 * 100 }));
        let brackets = format!("{}{}", "[".repeat(101), "]".repeat(101));
        assert!(check_nesting(&brackets).is_err());
        let dashes = format!("k:\n{}x\n", "- ".repeat(101));
        assert_eq!(check_nesting(&dashes).map_err(|e| e.line), Err(2));
    }

    #[test]
    fn ordinary_objects_quotes_and_comments_pass() {
        let ok = "a: {b: [1, 2, {c: d}]}\nname: \"{{{{{{[[[[\" # {{{{[[[[\nv: '[[[''[['\nx: a{b\n- - - ok\n";
        // A quote inside a plain scalar opens nothing: the nesting after it is still counted.
        let hidden = format!("a: it's \"x\n{}{}", "[".repeat(101), "]".repeat(101));
        assert!(check_nesting(&hidden).is_err());
        assert_eq!(check_nesting(ok), Ok(()));
        let wide = "[".to_owned() + &"{}, ".repeat(10_000) + "]";
        assert_eq!(check_nesting(&wide), Ok(()));
    }
}
