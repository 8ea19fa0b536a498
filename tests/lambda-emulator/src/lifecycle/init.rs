//! Init phase: extension init, runtime init, function init.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::millis_since;
use crate::outcome::{ExtensionInfo, InitReport, Status};
use crate::process::{spawn, Role};
use crate::record::RecordKind;
use crate::state::{AgentStatus, EventType, Phase, Sandbox, State};
use crate::telemetry::platform_event;
use crate::Error;

/// Starts the extensions and the runtime and waits until all of them called `/next`.
pub(crate) async fn run(sandbox: &Arc<Sandbox>, runtime_api: std::net::SocketAddr) -> Result<InitReport, Error> {
    let config = &sandbox.config;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + config.init_timeout;
    sandbox.record(RecordKind::InitStarted, None, json!({ "timeoutMs": config.init_timeout.as_millis() as u64 }));
    sandbox.telemetry.emit_platform(&platform_event(
        "platform.initStart",
        json!({
            "initializationType": "on-demand",
            "phase": "init",
            "functionName": config.function_name,
            "functionVersion": config.function_version,
        }),
    ));

    // Extension init: every executable of the extensions directory, then their registrations.
    let executables = match &config.extensions_dir {
        Some(dir) => list_executables(dir)?,
        None => Vec::new(),
    };
    let names: Vec<String> = executables.iter().map(|(name, _)| name.clone()).collect();
    sandbox.lock().external_names = names.clone();
    let extension_env = config.base_environment(runtime_api);
    for (name, path) in &executables {
        let argv = vec![path.display().to_string()];
        spawn(sandbox, name, Role::Extension(name.clone()), &argv, &extension_env, Some(&config.task_root))?;
    }
    sandbox
        .wait_until(deadline, |state| {
            state.fatal_error.is_some()
                || names.iter().all(|name| state.extensions.iter().any(|e| &e.name == name))
                || unregistered_exited(sandbox, state, &names)
        })
        .await;

    // Runtime init: starts once every external extension registered.
    let all_registered = {
        let state = sandbox.lock();
        state.fatal_error.is_none() && names.iter().all(|name| state.extensions.iter().any(|e| &e.name == name))
    };
    if all_registered {
        start_runtime(sandbox, runtime_api)?;
        sandbox
            .wait_until(deadline, |state| state.runtime.status != AgentStatus::Starting || state.fatal_error.is_some())
            .await;
    } else {
        let mut state = sandbox.lock();
        if state.fatal_error.is_none() && unregistered_exited(sandbox, &state, &names) {
            state.record_fatal("Extension.Crash", "extension");
        }
    }
    let runtime_status = runtime_init_status(&sandbox.lock());
    let mut runtime_done =
        json!({ "initializationType": "on-demand", "phase": "init", "status": runtime_status.0.as_str() });
    if let Some(error_type) = &runtime_status.1 {
        runtime_done["errorType"] = json!(error_type);
    }
    sandbox.telemetry.emit_platform(&platform_event("platform.initRuntimeDone", runtime_done));

    // Init ends when the runtime and every extension called /next.
    let completed = sandbox
        .wait_until(deadline, |state| {
            state.fatal_error.is_some()
                || state.runtime.status == AgentStatus::Exited
                || state.extensions.iter().any(|e| e.agent.status == AgentStatus::Exited)
                || (state.runtime.status == AgentStatus::Ready && state.extensions.iter().all(|e| e.agent.is_done()))
        })
        .await;
    let (status, error_type) = {
        let mut state = sandbox.lock();
        final_status(&mut state, completed)
    };
    let duration_ms = millis_since(started);
    let mut record = json!({
        "initializationType": "on-demand",
        "phase": "init",
        "status": status.as_str(),
        "metrics": { "durationMs": duration_ms },
    });
    if let Some(error_type) = &error_type {
        record["errorType"] = json!(error_type);
    }
    sandbox.telemetry.emit_platform(&platform_event("platform.initReport", record));

    let extensions = sandbox
        .lock()
        .extensions
        .iter()
        .map(|e| ExtensionInfo {
            id: e.id.clone(),
            name: e.name.clone(),
            external: e.external,
            events: e
                .events
                .iter()
                .map(|event| match event {
                    EventType::Invoke => "INVOKE".to_owned(),
                    EventType::Shutdown => "SHUTDOWN".to_owned(),
                })
                .collect(),
        })
        .collect();
    sandbox.record(
        RecordKind::InitDone,
        None,
        json!({ "status": status.as_str(), "errorType": error_type, "durationMs": duration_ms }),
    );
    if status == Status::Success {
        sandbox.lock().phase = Phase::Idle;
        super::freeze(sandbox);
    }
    Ok(InitReport { status, error_type, duration_ms, extensions })
}

fn start_runtime(sandbox: &Arc<Sandbox>, runtime_api: std::net::SocketAddr) -> Result<(), Error> {
    let config = &sandbox.config;
    // Managed runtimes start the wrapper with the runtime's command line as its arguments.
    let mut argv = Vec::new();
    if let Some(wrapper) = &config.exec_wrapper {
        argv.push(wrapper.display().to_string());
    }
    argv.extend(config.runtime_command.iter().cloned());
    let env = config.runtime_environment(runtime_api);
    spawn(sandbox, "runtime", Role::Runtime, &argv, &env, Some(&config.task_root))?;
    Ok(())
}

/// Returns whether an external extension exited without registering.
fn unregistered_exited(sandbox: &Sandbox, state: &State, names: &[String]) -> bool {
    sandbox.processes.list().iter().any(|p| {
        !p.running
            && matches!(&p.role, Role::Extension(name) if names.contains(name)
                && !state.extensions.iter().any(|e| &e.name == name))
    })
}

fn runtime_init_status(state: &State) -> (Status, Option<String>) {
    match &state.runtime.status {
        AgentStatus::Ready | AgentStatus::Busy => (Status::Success, None),
        AgentStatus::Failed(error_type) => (Status::Error, Some(error_type.clone())),
        AgentStatus::Exited => (Status::Failure, Some("Runtime.ExitError".to_owned())),
        AgentStatus::Starting => match &state.fatal_error {
            Some((error_type, _)) => (Status::Failure, Some(error_type.clone())),
            None => (Status::Timeout, None),
        },
    }
}

fn final_status(state: &mut State, completed: bool) -> (Status, Option<String>) {
    if let Some((error_type, _)) = &state.fatal_error {
        return (Status::Error, Some(error_type.clone()));
    }
    if state.runtime.status == AgentStatus::Exited {
        return (Status::Failure, Some("Runtime.ExitError".to_owned()));
    }
    // NOTE: the documentation does not name the error type of an extension that exits during
    // init; the emulator reports "Extension.Crash".
    if state.extensions.iter().any(|e| e.agent.status == AgentStatus::Exited) {
        return (Status::Failure, Some("Extension.Crash".to_owned()));
    }
    if !completed {
        return (Status::Timeout, None);
    }
    (Status::Success, None)
}

/// Executable regular files of `dir`, sorted by name.
fn list_executables(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, Error> {
    use std::os::unix::fs::PermissionsExt;

    let read_error = |source| Error::ReadExtensionsDir { path: dir.to_owned(), source };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let path = entry.path();
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if metadata.is_file() && metadata.permissions().mode() & 0o111 != 0 {
            found.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    found.sort();
    Ok(found)
}
