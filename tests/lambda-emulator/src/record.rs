//! Timestamped log of every API call and lifecycle transition, for assertions and benchmarks.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

/// What happened; serialized in snake case (`extension_register`, `invoke_done`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Any request to the Runtime API server, with its method, path and response status.
    ApiRequest,
    ProcessStarted,
    ProcessExited,
    ProcessKilled,
    ExtensionRegister,
    /// An extension called `/extension/event/next`.
    ExtensionNext,
    /// An INVOKE or SHUTDOWN event was returned to an extension's `/next` call.
    ExtensionEventDelivered,
    ExtensionInitError,
    ExtensionExitError,
    RuntimeNext,
    /// An invoke was returned to the runtime's `/next` call.
    RuntimeInvokeDelivered,
    RuntimeResponse,
    RuntimeError,
    RuntimeInitError,
    TelemetrySubscribe,
    TelemetryDelivered,
    TelemetryDeliveryFailed,
    InitStarted,
    InitDone,
    InvokeStarted,
    InvokeDone,
    ShutdownStarted,
    ShutdownDone,
    Frozen,
    Thawed,
}

/// One entry of the record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordEntry {
    /// Position in the record, starting at 0.
    pub seq: u64,
    /// Microseconds since the emulator started, from a monotonic clock.
    pub elapsed_us: u64,
    /// Wall-clock time in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub kind: RecordKind,
    /// Extension name, process name or `runtime`, when the entry concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

#[derive(Debug)]
pub(crate) struct Recorder {
    started: Instant,
    entries: Mutex<Vec<RecordEntry>>,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Self { started: Instant::now(), entries: Mutex::new(Vec::new()) }
    }

    pub(crate) fn push(&self, kind: RecordKind, subject: Option<&str>, detail: Value) {
        let elapsed_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let seq = entries.len() as u64;
        tracing::debug!(?kind, subject, %detail, "record");
        entries.push(RecordEntry {
            seq,
            elapsed_us,
            unix_ms: unix_ms(),
            kind,
            subject: subject.map(str::to_owned),
            detail,
        });
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordEntry> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}
