//! Shared state of the execution environment, read and changed by the API handlers and by the
//! lifecycle procedures.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::process::ProcessTable;
use crate::record::{RecordKind, Recorder};
use crate::telemetry::TelemetryHub;

/// Maximum number of extensions per function, enforced by the Register API.
pub(crate) const MAX_EXTENSIONS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Init,
    /// Between invokes: the sandbox is frozen.
    Idle,
    Invoke,
    Shutdown,
    Terminated,
}

impl Phase {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::Init => "initializing",
            Phase::Idle => "idle",
            Phase::Invoke => "invoking",
            Phase::Shutdown => "shutting down",
            Phase::Terminated => "shut down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum EventType {
    Invoke,
    Shutdown,
}

/// State of an agent (runtime or extension) in the Next protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentStatus {
    /// Started or registered, has not called `/next` yet.
    Starting,
    /// Waiting in `/next` with nothing queued: done with the current phase.
    Ready,
    /// Has an event queued or being processed.
    Busy,
    /// Reported `/init/error` or `/exit/error` with this error type.
    Failed(String),
    /// The process exited.
    Exited,
}

#[derive(Debug)]
pub(crate) struct Agent {
    pub status: AgentStatus,
    pub queue: VecDeque<Delivery>,
    pub notify: Arc<Notify>,
}

impl Agent {
    pub(crate) fn new() -> Self {
        Self { status: AgentStatus::Starting, queue: VecDeque::new(), notify: Arc::new(Notify::new()) }
    }

    /// Queues an event and marks the agent busy until its next `/next` call finds nothing queued.
    pub(crate) fn push(&mut self, delivery: Delivery) {
        self.queue.push_back(delivery);
        if matches!(self.status, AgentStatus::Starting | AgentStatus::Ready) {
            self.status = AgentStatus::Busy;
        }
        self.notify.notify_one();
    }

    /// Neither failed nor exited: can still receive events.
    pub(crate) fn is_live(&self) -> bool {
        !matches!(self.status, AgentStatus::Exited | AgentStatus::Failed(_))
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.status, AgentStatus::Ready | AgentStatus::Exited | AgentStatus::Failed(_))
    }
}

/// An event waiting for an agent's `/next` call.
#[derive(Debug, Clone)]
pub(crate) enum Delivery {
    /// An INVOKE or SHUTDOWN event body for an extension.
    Extension(Value),
    /// An invoke for the runtime.
    Runtime(RuntimeInvoke),
}

#[derive(Debug, Clone)]
pub(crate) struct RuntimeInvoke {
    pub request_id: String,
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub payload: Bytes,
}

#[derive(Debug)]
pub(crate) struct Extension {
    pub id: String,
    pub name: String,
    /// Started by the emulator from the extensions directory (as opposed to an internal
    /// extension registered from inside the runtime process).
    pub external: bool,
    pub events: Vec<EventType>,
    pub agent: Agent,
}

/// How the runtime finished the current invoke.
#[derive(Debug, Clone)]
pub(crate) enum RuntimeResult {
    Response(Bytes),
    /// The runtime's `/error` call: error type header and body.
    Error {
        error_type: String,
        body: Bytes,
    },
    /// The response exceeded the payload limit.
    TooLarge,
}

#[derive(Debug)]
pub(crate) struct ActiveInvoke {
    pub request_id: String,
    pub delivered_to_runtime: Option<Instant>,
    pub result: Option<(RuntimeResult, Instant)>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub phase: Phase,
    pub extensions: Vec<Extension>,
    /// File names of the executables in the extensions directory.
    pub external_names: Vec<String>,
    pub runtime: Agent,
    pub invoke: Option<ActiveInvoke>,
    /// First fatal error of the current phase: `(error type, source)`.
    pub fatal_error: Option<(String, String)>,
}

impl State {
    pub(crate) fn extension_by_id(&mut self, id: &str) -> Option<&mut Extension> {
        self.extensions.iter_mut().find(|e| e.id == id)
    }

    pub(crate) fn extension_by_name(&mut self, name: &str) -> Option<&mut Extension> {
        self.extensions.iter_mut().find(|e| e.name == name)
    }

    pub(crate) fn record_fatal(&mut self, error_type: &str, source: &str) {
        if self.fatal_error.is_none() {
            self.fatal_error = Some((error_type.to_owned(), source.to_owned()));
        }
    }
}

/// Everything the API handlers and the lifecycle procedures share.
#[derive(Debug)]
pub(crate) struct Sandbox {
    pub config: Config,
    state: Mutex<State>,
    /// Bumped on every state change that a lifecycle procedure may wait for.
    changed: watch::Sender<u64>,
    pub recorder: Recorder,
    pub telemetry: TelemetryHub,
    pub processes: ProcessTable,
    /// True while the processes are frozen.
    pub frozen: watch::Sender<bool>,
    /// True while telemetry delivery waits: from a freeze until the next invoke, and during
    /// shutdown until the extensions have received SHUTDOWN.
    pub telemetry_paused: watch::Sender<bool>,
}

impl Sandbox {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        Arc::new(Self {
            config,
            state: Mutex::new(State {
                phase: Phase::Init,
                extensions: Vec::new(),
                external_names: Vec::new(),
                runtime: Agent::new(),
                invoke: None,
                fatal_error: None,
            }),
            changed: watch::channel(0).0,
            recorder: Recorder::new(),
            telemetry: TelemetryHub::new(),
            processes: ProcessTable::default(),
            frozen: watch::channel(false).0,
            telemetry_paused: watch::channel(false).0,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the lifecycle procedures waiting in [`Sandbox::wait_until`].
    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn record(&self, kind: RecordKind, subject: Option<&str>, detail: Value) {
        self.recorder.push(kind, subject, detail);
    }

    /// Waits until `condition` is true or `deadline` passes, and returns the condition's value.
    pub(crate) async fn wait_until(
        &self,
        deadline: tokio::time::Instant,
        mut condition: impl FnMut(&State) -> bool,
    ) -> bool {
        let mut changes = self.changed.subscribe();
        loop {
            if condition(&self.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as the sandbox, so only the deadline ends the wait.
                Ok(Err(_)) | Err(_) => return condition(&self.lock()),
            }
        }
    }
}
