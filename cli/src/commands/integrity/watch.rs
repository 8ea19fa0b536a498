//! `palisade integrity watch`.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::{Args, ValueEnum};
use palisade_core::integrity::watch::{self, Backend, WatchEvent, WatchOptions};
use palisade_core::integrity::{self, escape_path, ScanOptions};
use palisade_core::telemetry::{Resource, Telemetry};
use serde_json::json;

use super::output::change_json;
use super::scope::ScopeArgs;
use super::{configure_threads, report_error, scan_threads, EXIT_ERROR};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendChoice {
    /// fanotify when permitted (root with CAP_SYS_ADMIN), else inotify.
    Auto,
    Fanotify,
    Inotify,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    scope: ScopeArgs,
    /// The kernel interface to follow changes with.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// How long to gather further events after the first one before re-checking paths, in
    /// milliseconds.
    #[arg(long, default_value_t = 50, value_name = "MS")]
    settle_ms: u64,
    /// Also emit OpenTelemetry events (`palisade.integrity.changed`,
    /// `palisade.integrity.coverage_lost`): to the OTLP endpoint in OTEL_EXPORTER_OTLP_ENDPOINT,
    /// else as JSON lines on stderr.
    #[arg(long)]
    events: bool,
    /// Threads that walk, read and hash files; 0 uses 8 per CPU (at most 64), because a scan
    /// of files outside the page cache mostly waits for reads.
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Runs until killed, printing one JSON object per line on stdout: `ready`, then `changed`,
/// `coverage_lost`, `rescanned` and `error` events.
pub fn run(args: WatchArgs) -> u8 {
    configure_threads(args.threads);
    let (scope, algorithm) = match args.scope.resolve() {
        Ok(resolved) => resolved,
        Err(error) => return report_error(&error),
    };
    let telemetry = match args.events.then(|| Telemetry::from_env(Resource::detect("palisade"), Duration::from_secs(5)))
    {
        Some(Ok(telemetry)) => Some(telemetry),
        Some(Err(error)) => return report_error(&error),
        None => None,
    };
    let options = WatchOptions {
        backend: match args.backend {
            BackendChoice::Auto => None,
            BackendChoice::Fanotify => Some(Backend::Fanotify),
            BackendChoice::Inotify => Some(Backend::Inotify),
        },
        scan: ScanOptions {
            algorithm,
            prefix: args.scope.root.clone(),
            descend_pseudo: args.scope.descend_pseudo,
            progress: None,
            threads: scan_threads(args.threads),
        },
        settle: Duration::from_millis(args.settle_ms),
    };

    let mut backend_name = "unknown";
    let mut sink = |event: WatchEvent| {
        let line = match &event {
            WatchEvent::Ready { backend, entries, fallback_reason } => {
                backend_name = backend.as_str();
                if let Some(reason) = fallback_reason {
                    eprintln!("fanotify is unavailable ({reason}); watching with inotify, without process attribution");
                }
                json!({"event": "ready", "backend": backend.as_str(), "entries": entries})
            }
            WatchEvent::Changed { change, process } => {
                if let Some(telemetry) = &telemetry {
                    let executable = process.as_ref().and_then(|process| process.executable.as_deref());
                    telemetry.emit(integrity::change_event(change, process.as_ref().map(|p| (p.pid, executable))));
                }
                let mut line = change_json(change);
                line["event"] = json!("changed");
                line["pid"] = json!(process.as_ref().map(|process| process.pid));
                line["executable"] =
                    json!(process.as_ref().and_then(|process| process.executable.as_deref()).map(escape_path));
                line
            }
            WatchEvent::CoverageLost { reason } => {
                if let Some(telemetry) = &telemetry {
                    telemetry.emit(integrity::coverage_lost_event(reason, backend_name));
                }
                json!({"event": "coverage_lost", "reason": reason})
            }
            WatchEvent::Rescanned { changes } => json!({"event": "rescanned", "changes": changes}),
            WatchEvent::Error(error) => {
                json!({"event": "error", "path": escape_path(&error.path), "operation": error.operation, "error": error.error.to_string()})
            }
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    };

    // The watch runs until the process is killed.
    static STOP: AtomicBool = AtomicBool::new(false);
    match watch::watch(&scope, &options, &STOP, &mut sink) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_ERROR
        }
    }
}
