//! `palisade integrity`: baseline, verify and watch.

mod baseline;
mod output;
mod progress;
mod scope;
mod verify;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// The tree matches the manifest.
pub const EXIT_CLEAN: u8 = 0;
/// The tree differs from the manifest.
pub const EXIT_DRIFT: u8 = 1;
/// The check could not be completed: bad arguments, an unreadable or tampered manifest, or
/// entries that could not be read.
pub const EXIT_ERROR: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum IntegrityCommand {
    /// Record a manifest of every entry under the given roots or the policy's integrity paths.
    ///
    /// Exit status: 0 when every entry was recorded, 2 on an error (the manifest is still written
    /// when only single entries failed, and those are listed).
    Baseline(baseline::BaselineArgs),
    /// Compare a tree with a manifest and report added, removed and changed entries.
    ///
    /// Exit status: 0 when the tree matches the manifest, 1 when it differs, 2 when the check
    /// could not be completed (unreadable or tampered manifest, unreadable entries).
    Verify(verify::VerifyArgs),
    /// Watch the roots for changes and report each one as it happens, with the process that made
    /// it when the kernel reports it (fanotify).
    ///
    /// Runs until interrupted. Exit status: 2 when the watch cannot start or fails.
    Watch(watch::WatchArgs),
    /// Generate an ed25519 key pair for signing manifests: KEY (secret) and KEY.pub.
    Keygen {
        /// Where to write the secret key; the public key goes to the same path with ".pub" added.
        #[arg(short, long, value_name = "KEY")]
        output: PathBuf,
    },
}

pub fn run(command: IntegrityCommand) -> ExitCode {
    let code = match command {
        IntegrityCommand::Baseline(args) => baseline::run(args),
        IntegrityCommand::Verify(args) => verify::run(args),
        IntegrityCommand::Watch(args) => watch::run(args),
        IntegrityCommand::Keygen { output } => keygen(&output),
    };
    ExitCode::from(code)
}

fn keygen(output: &std::path::Path) -> u8 {
    use palisade_core::integrity::{generate_signing_key, IntegrityError};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let key = match generate_signing_key() {
        Ok(key) => key,
        Err(error) => return report_error(&error),
    };
    let public_path = PathBuf::from(format!("{}.pub", output.display()));
    let write = |path: &std::path::Path, text: String, mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|source| IntegrityError::WriteKey { path: path.to_owned(), source })
    };

    let written = write(output, format!("{}\n", hex::encode(key.to_bytes())), 0o600)
        .and_then(|()| write(&public_path, format!("{}\n", hex::encode(key.verifying_key().as_bytes())), 0o644));
    match written {
        Ok(()) => {
            eprintln!("wrote secret key {} and public key {}", output.display(), public_path.display());
            EXIT_CLEAN
        }
        Err(error) => report_error(&error),
    }
}

/// Prints an error that stops the command and returns the error exit status.
fn report_error(error: &dyn std::fmt::Display) -> u8 {
    eprintln!("error: {error}");
    EXIT_ERROR
}

/// Returns the scan thread count for `--threads`, using the default count for 0.
fn scan_threads(threads: usize) -> usize {
    if threads == 0 {
        palisade_core::integrity::default_threads()
    } else {
        threads
    }
}

/// Sets the number of threads for the work after a scan (comparing, encoding). 0 keeps the
/// default of one per CPU. Scans run on a pool of their own (`ScanOptions::threads`).
fn configure_threads(threads: usize) {
    if threads > 0 {
        // Fails only when the pool was already built, which the command line never does.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
}
