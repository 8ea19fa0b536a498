//! The extension's lifecycle: register, set up protection, subscribe to telemetry, then serve
//! INVOKE and SHUTDOWN events until Lambda shuts the environment down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_core::egress::proxy::{PolicyHandle, Proxy, ProxyConfig};
use palisade_core::policy::{self, FailureMode, LoadedPolicy};
use palisade_core::telemetry::{Resource, SpanSink, Telemetry};

use crate::api::{ExtensionsApi, NextEvent};
use crate::config::Config;
use crate::error::{ApiError, ConfigError};
use crate::integrity::Check;
use crate::invocation::{InvokeStart, Tracker};
use crate::{listener, processes, trace};

/// Egress decision events kept between two drains.
const EGRESS_EVENT_BUFFER: usize = 4_096;

/// Time kept free at the end of the shutdown budget, so that the extension exits before SIGKILL.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(100);

/// How the lifecycle ended.
#[derive(Debug)]
pub enum Exit {
    /// SHUTDOWN was handled.
    Shutdown,
    /// A configuration error was reported through `/extension/init/error`; Lambda fails the init.
    InitFailed,
}

/// Protection that could be set up; every part is absent when a configuration error let the
/// function run unprotected (`failureMode: open`).
struct Protection {
    tracker: Tracker,
    execute: Option<Vec<PathBuf>>,
    integrity: Option<Check>,
}

/// Runs the extension until SHUTDOWN, or until a configuration error failed the init.
pub async fn run(runtime_api: String, name: String) -> Result<Exit, ApiError> {
    let api = ExtensionsApi::register(&runtime_api, &name).await?;
    tracing::info!(function = %api.function_name, "registered");

    // Without valid settings nothing is known about the policy either, so the init fails.
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            report_closed(&api, &error).await?;
            return Ok(Exit::InitFailed);
        }
    };
    let protection = match setup(&config, &api, &name) {
        Ok(protection) => protection,
        Err((error, FailureMode::Closed)) => {
            report_closed(&api, &error).await?;
            return Ok(Exit::InitFailed);
        }
        Err((error, FailureMode::Open)) => {
            tracing::error!(%error, error_type = error.error_type(), "configuration error; the function runs unprotected (failureMode: open)");
            unprotected(&api)
        }
    };

    // The Telemetry API subscription must happen during init, before the first `/next`.
    let (bound, mut platform_events) = listener::start(config.telemetry_address()).await?;
    api.subscribe_telemetry(&format!("http://sandbox.localdomain:{}/", bound.port())).await?;
    let tracker = protection.tracker.clone();
    tokio::spawn(async move {
        while let Some(event) = platform_events.recv().await {
            tracker.platform_event(&event);
        }
    });

    if let Some(check) = protection.integrity {
        let tracker = protection.tracker.clone();
        std::thread::spawn(move || {
            for event in check.run() {
                tracker.record(event);
            }
        });
    }
    tokio::spawn(processes::watch(protection.tracker.clone(), protection.execute, config.process_scan));

    serve(&api, &protection.tracker, config.flush_timeout).await
}

/// Handles events until SHUTDOWN.
async fn serve(api: &ExtensionsApi, tracker: &Tracker, flush_timeout: Duration) -> Result<Exit, ApiError> {
    loop {
        match api.next().await? {
            NextEvent::Invoke { request_id, invoked_function_arn, tracing: trace_header, .. } => {
                let context = trace_header.as_ref().and_then(trace::parse);
                tracing::debug!(%request_id, "invoke");
                tracker.begin(InvokeStart { request_id, function_arn: invoked_function_arn, context });

                // Spans of earlier invokes are already exporting on their own thread. With a flush
                // timeout the extension also waits for them before `/next`, because the environment
                // may be frozen right after it; the wait runs off this thread, so that the proxy
                // keeps serving the function meanwhile.
                if !flush_timeout.is_zero() && !tracker.export_idle() {
                    let exporting = tracker.clone();
                    let drained = tokio::task::spawn_blocking(move || exporting.flush(flush_timeout)).await;
                    if !drained.unwrap_or(false) {
                        tracing::debug!("span export still running; continuing");
                    }
                }
            }
            NextEvent::Shutdown { shutdown_reason, deadline_ms } => {
                tracing::info!(reason = %shutdown_reason, "shutdown");
                drain(tracker, deadline_ms).await;
                return Ok(Exit::Shutdown);
            }
        }
    }
}

/// Waits for the last `platform.report` (which Lambda may deliver after SHUTDOWN), then exports
/// every span, all within the shutdown deadline.
async fn drain(tracker: &Tracker, deadline_ms: u64) {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = || deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(SHUTDOWN_MARGIN);

    let report_wait = left() / 2;
    let waited = tokio::time::timeout(report_wait, async {
        while !tracker.all_reported() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    if waited.is_err() {
        tracing::warn!("the last platform.report did not arrive before the shutdown deadline");
    }

    tracker.finish_all();
    let timeout = left();
    if !tokio::task::spawn_blocking({
        let tracker = tracker.clone();
        move || tracker.shutdown(timeout)
    })
    .await
    .unwrap_or(false)
    {
        tracing::warn!("span export did not finish before the shutdown deadline; spans were lost");
    }
}

/// Loads the policy, starts the egress proxy and prepares the span sink and integrity check. On
/// error, also returns the failure mode that applies: the policy's, or `closed` without one.
fn setup(config: &Config, api: &ExtensionsApi, name: &str) -> Result<Protection, (ConfigError, FailureMode)> {
    let loaded = load_policy().map_err(|error| (error, FailureMode::Closed))?;
    let failure_mode = loaded.policy.spec.failure_mode;
    let fail = |error: ConfigError| (error, failure_mode);

    let mut resource = Resource::detect("palisade-extension");
    if !api.function_name.is_empty() {
        resource.set(palisade_core::telemetry::attributes::FAAS_NAME, api.function_name.as_str());
    }
    let sink =
        SpanSink::from_env(&resource, config.export_timeout, config.span_queue).map_err(|error| fail(error.into()))?;

    let (telemetry, collector) = Telemetry::collecting(resource, EGRESS_EVENT_BUFFER);
    start_proxy(config, &loaded, telemetry).map_err(fail)?;

    let integrity = Check::load(config.manifest.as_deref(), config.integrity_prefix.as_deref(), name).map_err(fail)?;
    let execute = loaded.policy.spec.process.execute.iter().map(|path| path.as_path().to_owned()).collect();

    tracing::info!(policy = %loaded.policy.name(), proxy = %config.proxy_address(), "protection ready");
    Ok(Protection {
        tracker: Tracker::new(sink, Some(collector), api.function_name.clone()),
        execute: Some(execute),
        integrity: Some(integrity),
    })
}

fn load_policy() -> Result<LoadedPolicy, ConfigError> {
    let path = policy::locate(None)?;
    Ok(policy::load(&path)?)
}

fn start_proxy(config: &Config, loaded: &LoadedPolicy, telemetry: Telemetry) -> Result<(), ConfigError> {
    let handle = Arc::new(PolicyHandle::load(&loaded.source, telemetry.clone())?);
    let proxy = Proxy::new(handle, telemetry, ProxyConfig::default())?;

    let address = config.proxy_address();
    let listener = std::net::TcpListener::bind(address)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|error| ConfigError::Proxy { port: address.port(), reason: error.to_string() })?;

    tokio::spawn(async move {
        if let Err(error) = proxy.serve(listener).await {
            tracing::error!(%error, "the egress proxy stopped");
        }
    });
    Ok(())
}

/// The state of a function running unprotected: spans still go out, to stderr when the span
/// sink itself was the problem.
fn unprotected(api: &ExtensionsApi) -> Protection {
    let resource = Resource::detect("palisade-extension");
    let sink = SpanSink::json_lines(&resource, std::io::stderr(), 256);
    Protection { tracker: Tracker::new(sink, None, api.function_name.clone()), execute: None, integrity: None }
}

/// Logs a configuration error and reports it through `/extension/init/error`.
async fn report_closed(api: &ExtensionsApi, error: &ConfigError) -> Result<(), ApiError> {
    tracing::error!(%error, error_type = error.error_type(), "configuration error; failing the init (failureMode: closed)");
    api.init_error(error).await
}
