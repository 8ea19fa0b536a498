//! Emulator of the AWS Lambda execution environment for end-to-end tests: the Runtime API, the
//! Extensions API and the Telemetry API on one HTTP server, the Init/Invoke/Shutdown lifecycle
//! with real processes, the freeze between invokes, and a timestamped record of everything.
//!
//! ```no_run
//! # async fn example() -> Result<(), palisade_lambda_emulator::Error> {
//! use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, ShutdownReason};
//!
//! let config = Config {
//!     extensions_dir: Some("/opt/extensions".into()),
//!     runtime_command: vec!["/var/runtime/bootstrap".into()],
//!     ..Config::default()
//! };
//! let emulator = Emulator::start(config).await?;
//! let outcome = emulator.invoke(InvokeRequest::new(r#"{"hello":"world"}"#)).await?;
//! println!("{}", String::from_utf8_lossy(&outcome.body));
//! let report = emulator.shutdown(ShutdownReason::Spindown).await?;
//! println!("killed: {:?}", report.killed);
//! let record = emulator.record();
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod api;
mod config;
mod error;
mod lifecycle;
mod outcome;
mod process;
mod record;
mod state;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::{
    Config, DEFAULT_INIT_TIMEOUT, RUNTIME_GRACEFUL_SHUTDOWN, SANDBOX_HOST, SHUTDOWN_BUDGET_EXTERNAL,
    SHUTDOWN_BUDGET_INTERNAL, SHUTDOWN_BUDGET_NONE,
};
pub use error::Error;
pub use outcome::{ExtensionInfo, InitReport, InvokeOutcome, ShutdownReason, ShutdownReport, Status};
pub use record::{RecordEntry, RecordKind};
pub use telemetry::LogLine;

use state::{Phase, Sandbox};

/// One invoke to send.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub payload: Bytes,
    /// `Lambda-Runtime-Aws-Request-Id`; a random UUID when unset.
    pub request_id: Option<String>,
    /// `Lambda-Runtime-Trace-Id`; a new X-Ray trace header when unset.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Invoked-Function-Arn`; the function's ARN when unset.
    pub invoked_function_arn: Option<String>,
    /// `Lambda-Runtime-Client-Context`, sent only when set.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity`, sent only when set.
    pub cognito_identity: Option<String>,
}

impl InvokeRequest {
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self { payload: payload.into(), ..Self::default() }
    }
}

/// A running execution environment. Dropping it kills every process it started.
#[derive(Debug)]
pub struct Emulator {
    sandbox: Arc<Sandbox>,
    runtime_api: SocketAddr,
    server: JoinHandle<()>,
    init: InitReport,
    /// Serializes invokes. The flag is true until the first invoke after init.
    invoke_slot: tokio::sync::Mutex<bool>,
}

impl Emulator {
    /// Starts the Runtime API server and runs the Init phase. Returns once init ends; a failed
    /// init is reported in [`Emulator::init_report`] and the sandbox is then shut down with
    /// reason `failure`.
    // NOTE: Lambda retries a failed init at the next invoke (a "suppressed init"); the emulator
    // does not, and rejects invokes after a failed init.
    pub async fn start(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| Error::Bind { addr: config.listen, source })?;
        let runtime_api = listener.local_addr().map_err(|source| Error::Bind { addr: config.listen, source })?;
        let sandbox = Sandbox::new(config);
        let server = tokio::spawn(api::serve(listener, sandbox.clone()));
        tracing::info!(%runtime_api, "Runtime API listening");

        let init = match lifecycle::init::run(&sandbox, runtime_api).await {
            Ok(init) => init,
            Err(error) => {
                sandbox.processes.signal(nix::sys::signal::Signal::SIGKILL, |_| true);
                server.abort();
                return Err(error);
            }
        };
        if init.status != Status::Success {
            tracing::warn!(status = ?init.status, error_type = ?init.error_type, "init failed");
            lifecycle::shutdown::run(&sandbox, ShutdownReason::Failure).await?;
        }
        Ok(Self { sandbox, runtime_api, server, init, invoke_slot: tokio::sync::Mutex::new(true) })
    }

    /// Address to use as `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> SocketAddr {
        self.runtime_api
    }

    pub fn init_report(&self) -> &InitReport {
        &self.init
    }

    /// Sends one invoke and waits for the end of its Invoke phase. Concurrent calls queue up
    /// and run one at a time, as in one execution environment. A timeout or a failure resets
    /// the sandbox, which is shut down with reason `timeout` or `failure` before this returns.
    pub async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutcome, Error> {
        let mut first = self.invoke_slot.lock().await;
        let init_duration = first.then_some(self.init.duration_ms);
        let (outcome, reset) = lifecycle::invoke::run(&self.sandbox, request, init_duration).await?;
        *first = false;
        if let Some(reason) = reset {
            lifecycle::shutdown::run(&self.sandbox, reason).await?;
        }
        Ok(outcome)
    }

    /// Runs the Shutdown phase.
    pub async fn shutdown(&self, reason: ShutdownReason) -> Result<ShutdownReport, Error> {
        let _slot = self.invoke_slot.lock().await;
        lifecycle::shutdown::run(&self.sandbox, reason).await
    }

    /// Copy of the record so far.
    pub fn record(&self) -> Vec<RecordEntry> {
        self.sandbox.recorder.snapshot()
    }

    /// Output lines of the runtime and the extensions so far.
    pub fn logs(&self) -> Vec<LogLine> {
        self.sandbox.telemetry.logs()
    }

    /// Returns whether the sandbox processes are stopped right now.
    pub fn is_frozen(&self) -> bool {
        *self.sandbox.frozen.borrow()
    }

    /// Returns whether the sandbox has been shut down (by [`Emulator::shutdown`] or by a reset).
    pub fn is_shut_down(&self) -> bool {
        self.sandbox.lock().phase == Phase::Terminated
    }

    /// Process ids of the started processes by name (`runtime` or an extension's file name).
    pub fn pids(&self) -> Vec<(String, i32)> {
        self.sandbox.processes.list().into_iter().map(|p| (p.name, p.pid)).collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.sandbox.processes.signal(nix::sys::signal::Signal::SIGCONT, |_| true);
        self.sandbox.processes.signal(nix::sys::signal::Signal::SIGKILL, |_| true);
        self.server.abort();
    }
}
