use std::path::PathBuf;

use super::{DEFAULT_POLICY_PATHS, POLICY_ENV};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {}: {source}; check the path and its permissions", path.display())]
    Read { path: PathBuf, source: std::io::Error },

    #[error("policy {} is {size} bytes; the maximum is {max} bytes", path.display(), max = super::MAX_POLICY_BYTES)]
    TooLarge { path: PathBuf, size: u64 },

    #[error("policy {} is not UTF-8 text (invalid byte at offset {offset}); save it as UTF-8", path.display())]
    NotUtf8 { path: PathBuf, offset: usize },

    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, column: usize, message: String },

    #[error("{}: {message}", path.display())]
    Rule { path: PathBuf, message: String },

    #[error(
        "no policy given: pass --policy FILE, set {POLICY_ENV}, or install one at {}",
        DEFAULT_POLICY_PATHS.join(", ")
    )]
    NotFound,
}

impl PolicyError {
    pub(super) fn from_yaml(path: &std::path::Path, error: &serde_yaml_ng::Error) -> Self {
        let text = error.to_string();
        let Some(location) = error.location() else {
            return Self::Parse { path: path.to_owned(), line: 1, column: 1, message: text };
        };

        // The library appends " at line L column C" to its message; the location goes first here.
        let suffix = format!(" at line {} column {}", location.line(), location.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text);
        Self::Parse {
            path: path.to_owned(),
            line: location.line(),
            column: location.column(),
            message: message.to_owned(),
        }
    }
}
