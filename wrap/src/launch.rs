//! The launch sequence: load the policy, resolve the command, prepare enforcement, start the
//! seccomp supervisor, report, apply, hand the listener to the supervisor, execute the command in
//! place.

use std::convert::Infallible;
use std::os::fd::BorrowedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use palisade_core::enforce::{EnforceError, Prepared, SeccompPlan};
use palisade_core::policy::{self, FailureMode, LoadedPolicy};
use palisade_core::telemetry::{attributes, names, Event, Resource, Severity, Telemetry};

use crate::args::Invocation;
use crate::command;
use crate::error::WrapError;
use crate::supervisor::Supervisor;

/// Default bound on exporting the launch events, in milliseconds.
const DEFAULT_TELEMETRY_TIMEOUT_MS: u64 = 500;

/// Runs the launch sequence; returns only when the command could not be started.
pub fn run(invocation: Invocation) -> WrapError {
    match launch(invocation) {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

fn launch(invocation: Invocation) -> Result<Infallible, WrapError> {
    crate::lambda::configure_environment();
    let policy_path = policy::locate(invocation.policy.as_deref())?;
    let loaded = policy::load(&policy_path)?;

    // A missing or non-executable command is reported before anything is enforced.
    let program = command::resolve(&invocation.command[0])?;
    let command_args: Vec<String> = invocation.command.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();

    // The supervisor is forked first, while the launcher has one thread and before telemetry can
    // start exporter threads. Nothing is applied yet, so it is confined by nothing. Preparing
    // has not filled the heap yet either, so the fork copies fewer pages.
    let learning = invocation.learn.is_some();
    let supervisor = (learning || loaded.policy.spec.syscalls.supervise)
        .then(|| Supervisor::start(&loaded, invocation.learn.as_ref()));

    let handoff = match &supervisor {
        Some(Ok(supervisor)) => Some(supervisor.socket()),
        _ => None,
    };
    let prepared = prepare(&loaded, learning, handoff);
    let telemetry = telemetry();
    let timeout = telemetry_timeout();

    let (prepared, supervisor) = match (prepared, supervisor) {
        (Ok(prepared), Some(Ok(supervisor))) => (Some(prepared), Some(supervisor)),
        (Ok(prepared), None) => (Some(prepared), None),
        (Ok(_), Some(Err(reason))) => {
            let error = EnforceError::SeccompInstall(format!("cannot start the seccomp supervisor: {reason}"));
            fail(&telemetry, &loaded, error, &command_args, timeout)?;
            (None, None)
        }
        (Err(error), supervisor) => {
            if let Some(Ok(supervisor)) = supervisor {
                let _ = supervisor.dismiss();
            }
            fail(&telemetry, &loaded, error, &command_args, timeout)?;
            (None, None)
        }
    };

    if let Some(prepared) = prepared {
        // The event goes out before the filter is installed, so that exporting it is not subject
        // to the workload's own allow-lists; prepare already settled what apply puts in force.
        let event = prepared.report().to_event(&loaded, &command_args);
        telemetry.emit(event.clone());
        // A failed export (an unreachable collector, an error status) makes shutdown fail.
        if let Err(error) = telemetry.shutdown(timeout) {
            // The event must not be lost with the exporter: it goes to stderr instead.
            eprintln!("palisade-wrap: {error}; writing the event to stderr");
            stderr_telemetry().emit(event);
        }

        if let Err(error) = apply(prepared, supervisor) {
            let stderr = stderr_telemetry();
            fail(&stderr, &loaded, error, &command_args, timeout)?;
        }
    }

    let error = Command::new(&program).arg0(&invocation.command[0]).args(&invocation.command[1..]).exec();
    let error = exec_error(program, error);

    // The policy may be in force by now and keep an exporter from its collector, so this event
    // goes to stderr, where the launcher's own error line goes too.
    let stderr = stderr_telemetry();
    stderr.emit(exec_failed_event(&loaded, &error, &command_args));
    Err(error)
}

/// Returns telemetry that writes JSON lines to stderr, for events that must not depend on an
/// exporter.
fn stderr_telemetry() -> Telemetry {
    Telemetry::json_lines(Resource::detect("palisade-wrap"), std::io::stderr())
}

/// Describes a command that could not be executed after the policy was prepared or applied.
fn exec_failed_event(loaded: &LoadedPolicy, error: &WrapError, command_args: &[String]) -> Event {
    let error_type = match error {
        WrapError::NotFound(_) => "not_found",
        _ => "not_executable",
    };
    Event::new(names::EXEC_FAILED, Severity::Error)
        .with_body(format!("policy {}: the command did not start: {error}", loaded.policy.name()))
        .with(attributes::POLICY_NAME, loaded.policy.name())
        .with(attributes::POLICY_HASH, loaded.hash.as_str())
        .with(attributes::ERROR_TYPE, error_type)
        .with(attributes::REASON, error.to_string())
        .with(attributes::PROCESS_COMMAND_ARGS, command_args.to_vec())
}

/// Prepares the policy and checks `enforcement: strict`; a learning run replaces the seccomp
/// allow-list with one that hands every call to the supervisor. With a supervisor, only the
/// supervised filter is compiled, for the listener to go over `handoff`.
fn prepare(loaded: &LoadedPolicy, learning: bool, handoff: Option<BorrowedFd<'_>>) -> Result<Prepared, EnforceError> {
    let mut prepared = match handoff {
        Some(handoff) if !learning => Prepared::for_supervisor(&loaded.policy, handoff)?,
        _ => Prepared::new(&loaded.policy)?,
    };
    prepared.check_strict()?;
    if learning {
        prepared.seccomp = SeccompPlan::learning(loaded.policy.spec.syscalls.default_errno)?;
    }
    Ok(prepared)
}

/// Applies the policy; with a supervisor, installs the supervised filter and hands its listener
/// over. When the kernel refuses a listener the plain filter is in force and the supervisor,
/// given nothing, exits.
fn apply(prepared: Prepared, supervisor: Option<Supervisor>) -> Result<(), EnforceError> {
    let Some(supervisor) = supervisor else {
        prepared.apply()?;
        return Ok(());
    };

    let handed_over = match prepared.apply_supervised(supervisor.socket()) {
        Ok((_report, Some(listener))) => supervisor.hand_over(listener),
        Ok((_report, None)) => supervisor.dismiss(),
        Err(error) => {
            // Reaped even so: with failureMode open the command still runs, and must not have it
            // as a child.
            let _ = supervisor.dismiss();
            return Err(error);
        }
    };
    handed_over.map_err(|error| EnforceError::SeccompInstall(error.to_string()))
}

/// Reports an enforcement failure and returns the error, unless the policy sets `failureMode: open`.
fn fail(
    telemetry: &Telemetry,
    loaded: &LoadedPolicy,
    error: EnforceError,
    command_args: &[String],
    timeout: Duration,
) -> Result<(), WrapError> {
    let fail_open = loaded.policy.spec.failure_mode == FailureMode::Open;
    let outcome = if fail_open {
        "running the command unprotected (failureMode: open)"
    } else {
        "not starting the command (failureMode: closed)"
    };
    telemetry.emit(
        Event::new(names::POLICY_FAILED, Severity::Error)
            .with_body(format!("policy {} cannot be enforced: {error}; {outcome}", loaded.policy.name()))
            .with(attributes::POLICY_NAME, loaded.policy.name())
            .with(attributes::POLICY_HASH, loaded.hash.as_str())
            .with(attributes::ERROR_TYPE, error_type(&error))
            .with(attributes::REASON, error.to_string())
            .with(attributes::PROCESS_COMMAND_ARGS, command_args.to_vec()),
    );
    let _ = telemetry.shutdown(timeout);

    if fail_open {
        eprintln!("palisade-wrap: {error}; {outcome}");
        Ok(())
    } else {
        Err(WrapError::Enforce(error))
    }
}

fn error_type(error: &EnforceError) -> &'static str {
    match error {
        EnforceError::StrictUnmet(_) => "strict_unmet",
        EnforceError::ExecveDenied => "execve_denied",
        EnforceError::PolicyPath { .. } => "policy_path",
        EnforceError::LandlockRuleset(_) | EnforceError::LandlockNotEnforced => "landlock",
        EnforceError::SeccompCompile(_) | EnforceError::SeccompInstall(_) | EnforceError::Profile { .. } => "seccomp",
        EnforceError::UnsupportedArchitecture(_) => "architecture",
        EnforceError::NoNewPrivs(_) => "no_new_privs",
    }
}

fn exec_error(program: std::path::PathBuf, error: std::io::Error) -> WrapError {
    match error.raw_os_error() {
        // The file exists, so what is missing is its interpreter: a `#!` line or ELF loader.
        Some(errno) if errno == nix::errno::Errno::ENOENT as i32 && program.exists() => WrapError::NotExecutable {
            path: program,
            reason: "its interpreter (the #! line or the ELF program interpreter) was not found".to_owned(),
        },
        Some(libc_enoent) if libc_enoent == nix::errno::Errno::ENOENT as i32 => WrapError::NotFound(program),
        Some(errno) if errno == nix::errno::Errno::EACCES as i32 => WrapError::NotExecutable {
            path: program,
            reason: format!("{error}; if the policy confines it, add it to spec.process.execute"),
        },
        _ => WrapError::NotExecutable { path: program, reason: error.to_string() },
    }
}

/// The launcher's telemetry: OTLP when an endpoint is configured, JSON lines on stderr otherwise.
/// A telemetry configuration error falls back to stderr and says so, because it must not keep the
/// workload from starting.
fn telemetry() -> Telemetry {
    let resource = Resource::detect("palisade-wrap");
    match Telemetry::from_env(resource.clone(), telemetry_timeout()) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("palisade-wrap: {error}; writing events to stderr instead");
            Telemetry::json_lines(resource, std::io::stderr())
        }
    }
}

fn telemetry_timeout() -> Duration {
    let millis = std::env::var("PALISADE_TELEMETRY_TIMEOUT_MS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_TELEMETRY_TIMEOUT_MS);
    Duration::from_millis(millis)
}
