//! Reading input: every source file, YAML file, standard input and directory that `netc` reads
//! goes through here, so that the same bounds hold everywhere (docs/cli.md, "Input limits"):
//!
//! - a regular file's size is checked before it is read, and nothing larger than
//!   [`max_input_bytes`] is read (`NETC_MAX_INPUT_BYTES` changes the bound);
//! - streams (standard input, pipes, `/dev/...`) are read up to the same bound and refused beyond
//!   it, so `netc check /dev/zero` stops instead of filling memory;
//! - text that is not UTF-8 is refused with the file, line and column of the first bad byte;
//! - a directory is read as its regular files only: special files (FIFOs, devices, sockets) are
//!   refused, and symbolic links are refused when they lead outside the directory (a link inside
//!   it is skipped: what it points to is read under its own name).
//!
//! The callers decide what an error means for their exit code: for sources these are coded
//! diagnostics (E0002, E0003), for YAML an input error naming the file.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The default bound on one input, in bytes: far above any real policy repository or cluster dump
/// (100k arrows are about 4 MB; `kubectl get pods -A -o yaml` is about 10 KB a pod), far below what
/// would exhaust a CI runner's memory.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 256 << 20;

/// The environment variable that overrides [`DEFAULT_MAX_INPUT_BYTES`].
pub const MAX_INPUT_ENV: &str = "NETC_MAX_INPUT_BYTES";

/// The bound on one input: `NETC_MAX_INPUT_BYTES` when set to a number, else the default.
pub fn max_input_bytes() -> u64 {
    std::env::var(MAX_INPUT_ENV).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_MAX_INPUT_BYTES)
}

/// Why an input could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system's error (no such file, permission denied, a directory, ...).
    Io(String),
    /// Larger than the bound; `bytes` is the size when it was known before reading (a regular
    /// file), `None` for a stream cut off at the bound.
    TooLarge { bytes: Option<u64>, limit: u64 },
    /// Not UTF-8; the bytes as read, and the offset of the first invalid one.
    NotUtf8 { bytes: Vec<u8>, offset: usize },
}

impl ReadError {
    /// One line for `error: NAME: ...`.
    pub fn message(&self) -> String {
        match self {
            ReadError::Io(e) => e.clone(),
            ReadError::TooLarge { bytes: Some(bytes), limit } => format!(
                "file too large ({bytes} bytes; netc reads at most {limit}, set {MAX_INPUT_ENV} to change this)"
            ),
            ReadError::TooLarge { bytes: None, limit } => format!(
                "input too large (more than {limit} bytes; netc reads at most {limit}, set {MAX_INPUT_ENV} to change this)"
            ),
            ReadError::NotUtf8 { bytes, offset } => {
                let (line, column) = line_column(bytes, *offset);
                format!(
                    "{line}:{column}: not UTF-8 (byte 0x{:02x} at offset {offset}); save the file as UTF-8",
                    bytes.get(*offset).copied().unwrap_or_default()
                )
            }
        }
    }
}

/// 1-based line and column (in characters of the valid text before it) of byte `offset`.
pub fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}

/// Read `path` (`-`: standard input) as bytes, within the bound.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    let limit = max_input_bytes();
    if path == Path::new("-") {
        return read_capped(std::io::stdin().lock(), limit, 0);
    }
    let meta = std::fs::metadata(path).map_err(|e| ReadError::Io(e.to_string()))?;
    if meta.is_dir() {
        return Err(ReadError::Io("is a directory".to_owned()));
    }
    if meta.is_file() && meta.len() > limit {
        return Err(ReadError::TooLarge { bytes: Some(meta.len()), limit });
    }
    let file = std::fs::File::open(path).map_err(|e| ReadError::Io(e.to_string()))?;
    let hint = if meta.is_file() { meta.len() } else { 0 };
    read_capped(file, limit, hint)
}

/// Read at most `limit` bytes; one more means the input is too large (a file that grew since its
/// size was checked, or a stream).
fn read_capped(reader: impl Read, limit: u64, hint: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(hint.min(limit)).unwrap_or(0));
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| ReadError::Io(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { bytes: None, limit });
    }
    Ok(bytes)
}

/// Read `path` (`-`: standard input) as UTF-8 text, within the bound.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        ReadError::NotUtf8 { bytes: e.into_bytes(), offset }
    })
}

/// The files under `dir` (recursively) whose names end with one of `extensions` (`.np`), sorted.
///
/// Only regular files are returned. A FIFO, device or socket with such a name is an error (it
/// could hang the read or never end); a symbolic link is an error when it leads outside `dir`
/// (`z.np -> /proc/self/environ` would print the environment in a diagnostic), and skipped when it
/// stays inside, where its target is read under its own name (or, not being named like an input,
/// is read through the link). Directories reached through links are not entered.
pub fn files_in_tree(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, String> {
    let root = std::fs::canonicalize(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    walk(dir, &root, extensions, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, root: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let named_like_input = |p: &Path| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| extensions.iter().any(|e| n.ends_with(e)))
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        // `file_type` does not follow links.
        let kind = entry.file_type().map_err(|e| format!("{}: {e}", path.display()))?;
        if kind.is_dir() {
            walk(&path, root, extensions, out)?;
        } else if kind.is_symlink() {
            let target = std::fs::canonicalize(&path);
            let inside = target.as_ref().is_ok_and(|t| t.starts_with(root));
            if !inside {
                if named_like_input(&path) {
                    return Err(format!(
                        "{} is a symbolic link that leads outside {}; in a directory netc reads only the \
                         files inside it (copy the file in, or name it on the command line)",
                        path.display(),
                        dir.display()
                    ));
                }
                continue;
            }
            let Ok(target) = target else { continue };
            let target_is_file = std::fs::metadata(&target).is_ok_and(|m| m.is_file());
            if named_like_input(&path) && target_is_file && !named_like_input(&target) {
                out.push(path);
            }
        } else if named_like_input(&path) {
            if !kind.is_file() {
                return Err(format!(
                    "{} is not a regular file (a FIFO, device or socket); in a directory netc reads only \
                     regular files",
                    path.display()
                ));
            }
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_of_the_line() {
        assert_eq!(line_column(b"ab\nc\xc3\xa9d\xff", 7), (2, 4));
        assert_eq!(line_column(b"\xff", 0), (1, 1));
    }

    #[test]
    fn streams_are_cut_at_the_bound() {
        let long = std::io::repeat(b'a');
        assert!(matches!(read_capped(long, 10, 0), Err(ReadError::TooLarge { bytes: None, limit: 10 })));
        assert_eq!(
            read_capped(&b"0123456789"[..], 10, 0).map_err(|e| e.message()).ok(),
            Some(b"0123456789".to_vec())
        );
    }
}
