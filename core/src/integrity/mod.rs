//! File integrity: baselines, verification and change watching.
//!
//! One API serves every Palisade component:
//! - the Lambda extension verifies `/var/task` and `/opt` at init with [`verify`];
//! - the sidecar verifies the application container's root through `/proc/PID/root`, by setting
//!   [`ScanOptions::prefix`];
//! - the node sensor records host files with [`baseline`] and follows them with [`watch::Watcher`].
//!
//! ```no_run
//! use palisade_core::integrity::{self, Manifest, Scope, ScanOptions, VerifyOptions};
//!
//! let scope = Scope::new(["/usr/bin".into()], [], [])?;
//! let baseline = integrity::baseline(&scope, &ScanOptions::default())?;
//! let bytes = baseline.manifest.encode();
//!
//! let manifest = Manifest::decode(&bytes, None)?;
//! let options = VerifyOptions { metadata_fast_path: true, ..VerifyOptions::default() };
//! let report = integrity::verify(&manifest, &options)?;
//! for change in &report.changes {
//!     println!("{} {}", change.kind.as_str(), change.path.display());
//! }
//! # Ok::<(), integrity::IntegrityError>(())
//! ```
//!
//! Symbolic links are recorded and never followed. Special files (FIFOs, sockets, devices) are
//! recorded from `lstat` without being opened, and regular files are opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` before reading. Pseudo-filesystems are not
//! descended unless [`ScanOptions::descend_pseudo`] is set. An entry that cannot be read is
//! returned as an [`EntryError`], never left out silently.

mod digest;
mod entry;
mod error;
mod events;
mod manifest;
mod pseudo;
mod scan;
mod scope;
mod sys;
mod verify;
pub mod watch;

pub use crate::policy::DigestAlgorithm;
pub use digest::digest_bytes;
pub use entry::{escape, escape_path, unescape, Entry, EntryKind, EntryNote, Timestamp};
pub use error::IntegrityError;
pub use events::{change_event, coverage_lost_event, verified_event};
pub use manifest::{Manifest, FORMAT_VERSION};
pub use scan::{default_threads, scan, EntryError, Progress, Scan, ScanOptions};
pub use scope::Scope;
pub use verify::{compare, compare_entry, verify, AttributeChange, Change, ChangeKind, Report, VerifyOptions};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// A recorded baseline and what went wrong while recording it.
#[derive(Debug)]
pub struct Baseline {
    pub manifest: Manifest,
    /// Entries that could not be recorded completely; the manifest lacks them.
    pub errors: Vec<EntryError>,
    /// Files that changed while being hashed; the manifest records them without a digest.
    pub changed_while_reading: Vec<std::path::PathBuf>,
}

/// Records every entry under the scope's roots.
pub fn baseline(scope: &Scope, options: &ScanOptions) -> Result<Baseline, IntegrityError> {
    let scan = scan(scope, options)?;
    let mut entries = scan.entries;
    for entry in &mut entries {
        if scan.changed_while_reading.binary_search(&entry.path).is_ok() {
            entry.digest = None;
        }
    }

    let manifest = Manifest {
        algorithm: options.algorithm,
        descend_pseudo: options.descend_pseudo,
        scope: scope.clone(),
        entries,
    };
    Ok(Baseline { manifest, errors: scan.errors, changed_while_reading: scan.changed_while_reading })
}

/// Reads an ed25519 signing key: a file with the 32-byte secret seed as 64 hex digits.
pub fn read_signing_key(path: &std::path::Path) -> Result<SigningKey, IntegrityError> {
    let seed = read_key_bytes(path)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads an ed25519 public key: a file with the 32-byte key as 64 hex digits.
pub fn read_verifying_key(path: &std::path::Path) -> Result<VerifyingKey, IntegrityError> {
    let bytes = read_key_bytes(path)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|error| IntegrityError::ReadKey { path: path.to_owned(), reason: error.to_string() })
}

fn read_key_bytes(path: &std::path::Path) -> Result<[u8; 32], IntegrityError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| IntegrityError::ReadKey { path: path.to_owned(), reason: error.to_string() })?;
    hex::decode(text.trim()).ok().and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| IntegrityError::ReadKey {
        path: path.to_owned(),
        reason: "expected 64 hex digits (a 32-byte ed25519 key)".to_owned(),
    })
}

/// Generates a signing key from the kernel's random source.
pub fn generate_signing_key() -> Result<SigningKey, IntegrityError> {
    use std::io::Read;

    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut seed))
        .map_err(IntegrityError::Random)?;
    Ok(SigningKey::from_bytes(&seed))
}
