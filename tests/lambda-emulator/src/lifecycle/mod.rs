//! The execution environment lifecycle: Init, Invoke and Shutdown phases, with the freeze
//! between invokes.

pub(crate) mod init;
pub(crate) mod invoke;
pub(crate) mod shutdown;

use std::time::Instant;

use serde_json::json;

use crate::record::RecordKind;
use crate::state::Sandbox;

/// Stops every process of the sandbox until [`thaw`].
pub(crate) fn freeze(sandbox: &Sandbox) {
    if !sandbox.config.freeze || *sandbox.frozen.borrow() {
        return;
    }
    sandbox.frozen.send_replace(true);
    sandbox.telemetry_paused.send_replace(true);
    let count = sandbox.processes.freeze();
    sandbox.record(RecordKind::Frozen, None, json!({ "signalled": count }));
}

/// Resumes the processes and the telemetry delivery.
pub(crate) fn thaw(sandbox: &Sandbox) {
    thaw_processes(sandbox);
    sandbox.telemetry_paused.send_replace(false);
}

/// Resumes the processes but leaves telemetry delivery paused.
pub(crate) fn thaw_processes(sandbox: &Sandbox) {
    if !*sandbox.frozen.borrow() {
        return;
    }
    // Recorded before SIGCONT and Frozen after SIGSTOP, so that the recorded frozen interval
    // lies within the time the processes were stopped.
    sandbox.record(RecordKind::Thawed, None, serde_json::Value::Null);
    sandbox.processes.thaw();
    sandbox.frozen.send_replace(false);
}

pub(crate) fn millis_since(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1_000.0
}
