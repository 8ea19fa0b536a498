use std::path::PathBuf;

/// Failures of integrity operations as a whole. Problems with single entries during a scan are
/// [`super::EntryError`]s in the result instead, so one unreadable file does not hide the rest.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("invalid exclude glob {pattern:?}: {reason}; escape special characters with [ ] (for example \"[*]\")")]
    InvalidGlob { pattern: String, reason: String },

    #[error("invalid root {}: roots must be absolute paths without \"..\"", path.display())]
    InvalidRoot { path: PathBuf },

    #[error("cannot read manifest {}: {source}", path.display())]
    ReadManifest { path: PathBuf, source: std::io::Error },

    #[error("cannot write manifest {}: {source}", path.display())]
    WriteManifest { path: PathBuf, source: std::io::Error },

    #[error("invalid manifest, line {line}: {message}")]
    ParseManifest { line: usize, message: String },

    #[error("manifest is not signed, but a public key was given to check it; sign it with `palisade integrity baseline --signing-key`")]
    ManifestUnsigned,

    #[error("manifest signature does not match the public key {public_key}: the manifest was changed after signing or signed with another key")]
    BadSignature { public_key: String },

    #[error("cannot read key {}: {reason}", path.display())]
    ReadKey { path: PathBuf, reason: String },

    #[error("cannot write key {}: {source}", path.display())]
    WriteKey { path: PathBuf, source: std::io::Error },

    #[error("cannot generate a key: reading /dev/urandom failed: {0}")]
    Random(std::io::Error),

    #[error("cannot start {threads} scan threads: {reason}; pass fewer threads (--threads)")]
    ThreadPool { threads: usize, reason: String },

    #[error("cannot start {backend} watch: {source}")]
    WatchInit { backend: &'static str, source: std::io::Error },

    #[error("cannot watch {}: {source}", path.display())]
    WatchAdd { path: PathBuf, source: std::io::Error },

    #[error("reading {backend} events failed: {source}")]
    WatchRead { backend: &'static str, source: std::io::Error },
}
