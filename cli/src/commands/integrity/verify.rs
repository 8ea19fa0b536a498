//! `palisade integrity verify`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use palisade_core::integrity::{self, IntegrityError, Manifest, ScanOptions, VerifyOptions};
use palisade_core::telemetry::{Resource, Telemetry};

use super::output::{report_json, report_table};
use super::progress::ProgressLine;
use super::{configure_threads, report_error, scan_threads, EXIT_CLEAN, EXIT_DRIFT, EXIT_ERROR};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The manifest written by `palisade integrity baseline`.
    manifest: PathBuf,
    /// A directory that stands for / when checking: an extracted image or /proc/PID/root.
    #[arg(long, value_name = "PREFIX")]
    root: Option<PathBuf>,
    /// Require a valid signature by this ed25519 public key (KEY.pub from `palisade integrity keygen`).
    #[arg(long, value_name = "KEY")]
    public_key: Option<PathBuf>,
    /// Reuse recorded digests of files whose size, mtime, ctime and inode are unchanged (never
    /// for high-assurance roots).
    #[arg(long)]
    fast: bool,
    /// Ignore inode and ctime, which differ on every copy or extraction of a tree.
    #[arg(long)]
    ignore_identity: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Also emit OpenTelemetry events (`palisade.integrity.changed` per change and
    /// `palisade.integrity.verified`): to the OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT, else
    /// as JSON lines on stderr.
    #[arg(long)]
    events: bool,
    /// Threads that walk, read and hash files; 0 uses 8 per CPU (at most 64), because a scan
    /// of files outside the page cache mostly waits for reads.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

pub fn run(args: VerifyArgs) -> u8 {
    configure_threads(args.threads);
    let manifest = match read_manifest(&args) {
        Ok(manifest) => manifest,
        Err(error) => return report_error(&error),
    };
    let telemetry = match args.events.then(|| Telemetry::from_env(Resource::detect("palisade"), Duration::from_secs(5)))
    {
        Some(Ok(telemetry)) => Some(telemetry),
        Some(Err(error)) => return report_error(&error),
        None => None,
    };

    // Scan and compare.
    let progress = ProgressLine::start();
    let options = VerifyOptions {
        scan: ScanOptions {
            prefix: args.root.clone(),
            progress: Some(progress.counters()),
            threads: scan_threads(args.threads),
            ..ScanOptions::default()
        },
        metadata_fast_path: args.fast,
        ignore_identity: args.ignore_identity,
    };
    let report = match integrity::verify(&manifest, &options) {
        Ok(report) => report,
        Err(error) => return report_error(&error),
    };
    drop(progress);

    // Report.
    match args.format {
        Format::Table => print!("{}", report_table(&report)),
        Format::Json => println!("{}", report_json(&report)),
    }
    if let Some(telemetry) = telemetry {
        for change in &report.changes {
            telemetry.emit(integrity::change_event(change, None));
        }
        telemetry.emit(integrity::verified_event(&report, &args.manifest, args.root.as_deref()));
        if let Err(error) = telemetry.shutdown(Duration::from_secs(5)) {
            eprintln!("error: {error}");
        }
    }

    if !report.errors.is_empty() {
        EXIT_ERROR
    } else if !report.changes.is_empty() {
        EXIT_DRIFT
    } else {
        EXIT_CLEAN
    }
}

fn read_manifest(args: &VerifyArgs) -> Result<Manifest, IntegrityError> {
    let trusted_key = args.public_key.as_deref().map(integrity::read_verifying_key).transpose()?;
    let bytes = std::fs::read(&args.manifest)
        .map_err(|source| IntegrityError::ReadManifest { path: args.manifest.clone(), source })?;
    Manifest::decode(&bytes, trusted_key.as_ref())
}
