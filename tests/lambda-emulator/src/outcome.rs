//! Results that the library returns to its callers.

use serde::Serialize;

/// Status values of the Telemetry API `Status` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Failure,
    Error,
    Timeout,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Error => "error",
            Status::Timeout => "timeout",
        }
    }
}

/// Result of the Init phase.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    pub duration_ms: f64,
    /// Registered extensions, in registration order.
    pub extensions: Vec<ExtensionInfo>,
}

/// A registered extension.
#[derive(Debug, Clone, Serialize)]
pub struct ExtensionInfo {
    /// Value of `Lambda-Extension-Identifier`.
    pub id: String,
    pub name: String,
    pub external: bool,
    /// `INVOKE` and/or `SHUTDOWN`.
    pub events: Vec<String>,
}

/// Result of one invoke.
#[derive(Debug, Clone, Serialize)]
pub struct InvokeOutcome {
    pub request_id: String,
    /// Status of the invoke as in `platform.report`.
    pub status: Status,
    /// Error type of `platform.report` (`Runtime.ExitError`, `Sandbox.Timedout`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// `Lambda-Runtime-Function-Error-Type` of the runtime's `/error` call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_error_type: Option<String>,
    /// Response body, or error body when the runtime reported an error.
    #[serde(serialize_with = "serialize_lossy")]
    pub body: Vec<u8>,
    /// From invoke start to the runtime's response.
    pub runtime_duration_ms: f64,
    /// The whole Invoke phase: until every extension called `/next` again.
    pub duration_ms: f64,
    pub billed_duration_ms: u64,
    pub max_memory_used_mb: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
}

impl InvokeOutcome {
    /// Parses the body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

fn serialize_lossy<S: serde::Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&String::from_utf8_lossy(body))
}

/// `shutdownReason` of the SHUTDOWN event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownReason {
    Spindown,
    Timeout,
    Failure,
}

impl ShutdownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// Result of the Shutdown phase.
#[derive(Debug, Clone, Serialize)]
pub struct ShutdownReport {
    pub reason: ShutdownReason,
    pub budget_ms: u64,
    pub duration_ms: f64,
    /// True when some extension registered for SHUTDOWN neither exited nor called `/next`
    /// again within the budget.
    pub budget_exhausted: bool,
    /// Processes still running when the emulator sent SIGKILL at the end of the phase.
    pub killed: Vec<String>,
}
