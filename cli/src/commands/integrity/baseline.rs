//! `palisade integrity baseline`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use palisade_core::integrity::{self, IntegrityError, ScanOptions};

use super::progress::ProgressLine;
use super::scope::ScopeArgs;
use super::{configure_threads, report_error, scan_threads, EXIT_CLEAN, EXIT_ERROR};

#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// Where to write the manifest.
    #[arg(short, long, value_name = "MANIFEST")]
    output: PathBuf,
    /// Sign the manifest with this ed25519 secret key (from `palisade integrity keygen`).
    #[arg(long, value_name = "KEY")]
    signing_key: Option<PathBuf>,
    /// Threads that walk, read and hash files; 0 uses 8 per CPU (at most 64), because a scan
    /// of files outside the page cache mostly waits for reads.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(args: BaselineArgs) -> u8 {
    configure_threads(args.threads);
    let (scope, algorithm) = match args.scope.resolve() {
        Ok(resolved) => resolved,
        Err(error) => return report_error(&error),
    };
    let signing_key = match args.signing_key.as_deref().map(integrity::read_signing_key).transpose() {
        Ok(key) => key,
        Err(error) => return report_error(&error),
    };

    // Scan.
    let progress = ProgressLine::start();
    let options = ScanOptions {
        algorithm,
        prefix: args.scope.root.clone(),
        descend_pseudo: args.scope.descend_pseudo,
        progress: Some(progress.counters()),
        threads: scan_threads(args.threads),
    };
    let baseline = match integrity::baseline(&scope, &options) {
        Ok(baseline) => baseline,
        Err(error) => return report_error(&error),
    };
    drop(progress);

    // Write the manifest: to a temporary file first, so a reader never sees a partial one.
    let bytes = match &signing_key {
        Some(key) => baseline.manifest.encode_signed(key),
        None => baseline.manifest.encode(),
    };
    if let Err(error) = write_atomically(&args.output, &bytes) {
        return report_error(&error);
    }
    eprintln!("recorded {} entries in {}", baseline.manifest.entries.len(), args.output.display());

    // Entries that could not be recorded fail the command.
    for error in &baseline.errors {
        eprintln!("error: {error}");
    }
    for path in &baseline.changed_while_reading {
        eprintln!(
            "error: {} changed while it was hashed; it is recorded without a digest, record it again when it is not being written",
            integrity::escape_path(path)
        );
    }
    if baseline.errors.is_empty() && baseline.changed_while_reading.is_empty() {
        EXIT_CLEAN
    } else {
        EXIT_ERROR
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<(), IntegrityError> {
    let error = |source| IntegrityError::WriteManifest { path: path.to_owned(), source };
    let temporary = PathBuf::from(format!("{}.tmp.{}", path.display(), std::process::id()));

    let mut file = std::fs::File::create(&temporary).map_err(error)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}
