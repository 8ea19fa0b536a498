//! Invoke phase: the event goes to the runtime and to every extension registered for INVOKE; the
//! phase ends when the runtime has responded and every such extension called `/next` again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::millis_since;
use crate::api::runtime_result_body;
use crate::outcome::{InvokeOutcome, ShutdownReason, Status};
use crate::record::{unix_ms, RecordKind};
use crate::state::{ActiveInvoke, AgentStatus, Delivery, EventType, Phase, RuntimeInvoke, RuntimeResult, Sandbox};
use crate::telemetry::platform_event;
use crate::{Error, InvokeRequest};

/// Runs one invoke; `init_duration_ms` is reported in `platform.report` of the first invoke.
/// Returns the outcome and, when the sandbox must be reset, the shutdown reason.
pub(crate) async fn run(
    sandbox: &Arc<Sandbox>,
    request: InvokeRequest,
    init_duration_ms: Option<f64>,
) -> Result<(InvokeOutcome, Option<ShutdownReason>), Error> {
    let config = &sandbox.config;
    let request_id = request.request_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let trace_id = request.trace_id.clone().unwrap_or_else(new_trace_id);
    let function_arn = request.invoked_function_arn.clone().unwrap_or_else(|| config.function_arn());
    let deadline_ms = unix_ms() + config.timeout.as_millis() as u64;
    let deadline = tokio::time::Instant::now() + config.timeout;

    {
        let state = sandbox.lock();
        if state.phase != Phase::Idle {
            return Err(Error::NotReady { state: state.phase.name() });
        }
    }
    super::thaw(sandbox);

    let started = Instant::now();
    let tracing_context = json!({ "type": "X-Amzn-Trace-Id", "value": trace_id });
    let extension_event = json!({
        "eventType": "INVOKE",
        "deadlineMs": deadline_ms,
        "requestId": request_id,
        "invokedFunctionArn": function_arn,
        "tracing": tracing_context,
    });
    sandbox.record(RecordKind::InvokeStarted, None, json!({ "requestId": request_id }));
    sandbox.telemetry.emit_platform(&platform_event(
        "platform.start",
        json!({ "requestId": request_id, "version": config.function_version, "tracing": tracing_context }),
    ));
    {
        let mut state = sandbox.lock();
        state.phase = Phase::Invoke;
        state.fatal_error = None;
        state.invoke = Some(ActiveInvoke { request_id: request_id.clone(), delivered_to_runtime: None, result: None });
        state.runtime.push(Delivery::Runtime(RuntimeInvoke {
            request_id: request_id.clone(),
            deadline_ms,
            function_arn,
            trace_id,
            client_context: request.client_context.clone(),
            cognito_identity: request.cognito_identity.clone(),
            payload: request.payload.clone(),
        }));
        for extension in &mut state.extensions {
            if extension.events.contains(&EventType::Invoke) && extension.agent.is_live() {
                extension.agent.push(Delivery::Extension(extension_event.clone()));
            }
        }
    }
    sandbox.bump();

    // The runtime's response (or error, or exit, or the deadline).
    let responded = sandbox
        .wait_until(deadline, |state| {
            state.invoke.as_ref().is_some_and(|i| i.result.is_some())
                || matches!(state.runtime.status, AgentStatus::Exited | AgentStatus::Failed(_))
        })
        .await;
    let (result, runtime_done_at, delivered_at) = {
        let state = sandbox.lock();
        let invoke = state.invoke.as_ref();
        let result = invoke.and_then(|i| i.result.clone());
        let delivered = invoke.and_then(|i| i.delivered_to_runtime);
        (result.as_ref().map(|(r, _)| r.clone()), result.map(|(_, at)| at), delivered)
    };
    let runtime_duration_ms = millis(runtime_done_at.unwrap_or_else(Instant::now) - started);
    let (mut status, mut error_type) = match (&result, responded) {
        (Some(RuntimeResult::TooLarge), _) => (Status::Error, Some("Function.ResponseSizeTooLarge".to_owned())),
        (Some(_), _) => (Status::Success, None),
        (None, true) => (Status::Failure, Some("Runtime.ExitError".to_owned())),
        (None, false) => (Status::Timeout, Some("Sandbox.Timedout".to_owned())),
    };
    emit_runtime_done(
        sandbox,
        &request_id,
        status,
        error_type.as_deref(),
        runtime_duration_ms,
        &result,
        delivered_at,
        runtime_done_at,
        &tracing_context,
    );

    // The runtime and the extensions signal the end of their invoke work with /next.
    if status == Status::Success {
        let finished = sandbox
            .wait_until(deadline, |state| {
                state.runtime.is_done()
                    && state
                        .extensions
                        .iter()
                        .filter(|e| e.events.contains(&EventType::Invoke))
                        .all(|e| e.agent.is_done())
            })
            .await;
        if !finished {
            status = Status::Timeout;
            error_type = Some("Sandbox.Timedout".to_owned());
        }
    }
    let fatal = sandbox.lock().fatal_error.clone();
    if let (Status::Success, Some((fatal_type, _))) = (status, &fatal) {
        status = Status::Failure;
        error_type = Some(fatal_type.clone());
    }
    // NOTE: an extension that exits during an invoke resets the sandbox as a failure. The
    // documentation does not give the error type, so the emulator uses "Extension.Crash".
    let (extension_crashed, runtime_exited) = {
        let state = sandbox.lock();
        (
            state.extensions.iter().any(|e| e.external && e.agent.status == AgentStatus::Exited),
            state.runtime.status == AgentStatus::Exited,
        )
    };
    if status == Status::Success && runtime_exited {
        status = Status::Failure;
        error_type = Some("Runtime.ExitError".to_owned());
    } else if status == Status::Success && extension_crashed {
        status = Status::Failure;
        error_type = Some("Extension.Crash".to_owned());
    }

    let duration_ms = millis_since(started);
    let billed_duration_ms = duration_ms.ceil() as u64;
    let max_memory_used_mb = sandbox.processes.max_memory_used_mb();
    let mut metrics = json!({
        "durationMs": duration_ms,
        "billedDurationMs": billed_duration_ms,
        "memorySizeMB": config.memory_size_mb,
        "maxMemoryUsedMB": max_memory_used_mb,
    });
    if let Some(init) = init_duration_ms {
        metrics["initDurationMs"] = json!(init);
    }
    let mut report = json!({
        "requestId": request_id,
        "status": status.as_str(),
        "metrics": metrics,
        "tracing": tracing_context,
    });
    if let Some(error_type) = &error_type {
        report["errorType"] = json!(error_type);
    }
    sandbox.telemetry.emit_platform(&platform_event("platform.report", report));

    let function_error_type = match &result {
        Some(RuntimeResult::Error { error_type, .. }) => Some(error_type.clone()),
        _ => None,
    };
    let body = match &result {
        Some(result) => runtime_result_body(result).to_vec(),
        None => json!({
            "errorType": error_type.clone().unwrap_or_default(),
            "errorMessage": match status {
                Status::Timeout => format!("Task timed out after {:.2} seconds", config.timeout.as_secs_f64()),
                _ => "The runtime exited before responding".to_owned(),
            },
        })
        .to_string()
        .into_bytes(),
    };
    sandbox.record(
        RecordKind::InvokeDone,
        None,
        json!({ "requestId": request_id, "status": status.as_str(), "errorType": error_type, "durationMs": duration_ms }),
    );

    // NOTE: the documentation does not say whether an oversized response resets the sandbox;
    // the runtime stays healthy, so the emulator keeps it.
    let too_large = matches!(result, Some(RuntimeResult::TooLarge));
    let reset = match status {
        Status::Success => None,
        Status::Error if too_large => None,
        Status::Timeout => Some(ShutdownReason::Timeout),
        Status::Failure | Status::Error => Some(ShutdownReason::Failure),
    };
    {
        let mut state = sandbox.lock();
        state.invoke = None;
        state.phase = Phase::Idle;
    }
    if reset.is_none() {
        super::freeze(sandbox);
    }
    let outcome = InvokeOutcome {
        request_id,
        status,
        error_type,
        function_error_type,
        body,
        runtime_duration_ms,
        duration_ms,
        billed_duration_ms,
        max_memory_used_mb,
        init_duration_ms,
    };
    Ok((outcome, reset))
}

#[allow(clippy::too_many_arguments)]
fn emit_runtime_done(
    sandbox: &Sandbox,
    request_id: &str,
    status: Status,
    error_type: Option<&str>,
    duration_ms: f64,
    result: &Option<RuntimeResult>,
    delivered_at: Option<Instant>,
    done_at: Option<Instant>,
    tracing_context: &Value,
) {
    let produced_bytes = match result {
        Some(RuntimeResult::Response(body)) | Some(RuntimeResult::Error { body, .. }) => body.len(),
        _ => 0,
    };
    let mut record = json!({
        "requestId": request_id,
        "status": status.as_str(),
        "metrics": { "durationMs": duration_ms, "producedBytes": produced_bytes },
        "tracing": tracing_context,
    });
    if let (Some(delivered), Some(done)) = (delivered_at, done_at) {
        // The emulator reads the whole response body before recording it, so the response
        // latency covers the handler and the response duration is zero.
        let start = std::time::SystemTime::now() - delivered.elapsed();
        let response_start = std::time::SystemTime::now() - done.elapsed();
        record["spans"] = json!([
            { "name": "responseLatency", "start": crate::telemetry::format_time(start), "durationMs": millis(done - delivered) },
            { "name": "responseDuration", "start": crate::telemetry::format_time(response_start), "durationMs": 0.0 },
        ]);
    }
    if let Some(error_type) = error_type {
        record["errorType"] = json!(error_type);
    }
    sandbox.telemetry.emit_platform(&platform_event("platform.runtimeDone", record));
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

/// X-Ray trace header: `Root=1-{epoch seconds, hex}-{96 random bits};Parent={64 bits};Sampled=0`.
fn new_trace_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{:08x}-{};Parent={};Sampled=0", unix_ms() / 1000, &random[..24], &parent[..16])
}
