//! Runtime API (`/2018-06-01/runtime/...`).
//!
//! Error types and status codes follow the Runtime API reference: 400 `InvalidRequestID` for a
//! request id that is not the current invoke, 403 `InvalidStateTransition` for a call out of
//! order, 413 `RequestEntityTooLarge` for an oversized response.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::{accepted, error_response, ApiError, ApiRequest, HttpResponse};
use crate::record::RecordKind;
use crate::state::{AgentStatus, Delivery, Phase, RuntimeInvoke, RuntimeResult, Sandbox};

/// Maximum size of a synchronous invoke response (6 MB, from the Lambda quotas page).
pub(crate) const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";

fn invalid_state(message: &str) -> HttpResponse {
    error_response(StatusCode::FORBIDDEN, "InvalidStateTransition", message)
}

/// `GET /runtime/invocation/next`: marks the runtime ready and long-polls for the next invoke.
pub(crate) async fn next(sandbox: &Arc<Sandbox>) -> HttpResponse {
    let notify = {
        let mut state = sandbox.lock();
        if let Some(invoke) = &state.invoke {
            if invoke.delivered_to_runtime.is_some() && invoke.result.is_none() {
                return invalid_state(
                    "State transition from Invoking to Ready failed for runtime: send the response or error of the current invoke first",
                );
            }
        }
        if state.runtime.queue.is_empty() && !matches!(state.runtime.status, AgentStatus::Failed(_)) {
            state.runtime.status = AgentStatus::Ready;
        }
        state.runtime.notify.clone()
    };
    sandbox.record(RecordKind::RuntimeNext, Some("runtime"), serde_json::Value::Null);
    sandbox.bump();

    loop {
        let delivery = {
            let mut state = sandbox.lock();
            let delivery = state.runtime.queue.pop_front();
            if let Some(Delivery::Runtime(invoke)) = &delivery {
                state.runtime.status = AgentStatus::Busy;
                if let Some(active) = state.invoke.as_mut().filter(|a| a.request_id == invoke.request_id) {
                    active.delivered_to_runtime = Some(Instant::now());
                }
            }
            delivery
        };
        match delivery {
            Some(Delivery::Runtime(invoke)) => {
                sandbox.record(
                    RecordKind::RuntimeInvokeDelivered,
                    Some("runtime"),
                    json!({ "requestId": invoke.request_id }),
                );
                sandbox.bump();
                return invoke_response(&invoke);
            }
            Some(Delivery::Extension(_)) | None => notify.notified().await,
        }
    }
}

fn invoke_response(invoke: &RuntimeInvoke) -> HttpResponse {
    let mut response = Response::new(Full::new(invoke.payload.clone()));
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("Lambda-Runtime-Aws-Request-Id", &invoke.request_id);
    set("Lambda-Runtime-Deadline-Ms", &invoke.deadline_ms.to_string());
    set("Lambda-Runtime-Invoked-Function-Arn", &invoke.function_arn);
    set("Lambda-Runtime-Trace-Id", &invoke.trace_id);
    if let Some(context) = &invoke.client_context {
        set("Lambda-Runtime-Client-Context", context);
    }
    if let Some(identity) = &invoke.cognito_identity {
        set("Lambda-Runtime-Cognito-Identity", identity);
    }
    set("Content-Type", "application/json");
    response
}

/// `POST /runtime/invocation/{id}/response`.
pub(crate) fn response(sandbox: &Arc<Sandbox>, request_id: &str, request: &ApiRequest) -> HttpResponse {
    let result = if request.body.len() > MAX_RESPONSE_BYTES {
        RuntimeResult::TooLarge
    } else {
        RuntimeResult::Response(request.body.clone())
    };
    let too_large = matches!(result, RuntimeResult::TooLarge);
    if let Err(error) = finish_invoke(sandbox, request_id, result) {
        return error.into_response();
    }
    sandbox.record(
        RecordKind::RuntimeResponse,
        Some("runtime"),
        json!({ "requestId": request_id, "bytes": request.body.len() }),
    );
    sandbox.bump();
    if too_large {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
        );
    }
    accepted()
}

/// `POST /runtime/invocation/{id}/error`.
pub(crate) fn error(sandbox: &Arc<Sandbox>, request_id: &str, request: &ApiRequest) -> HttpResponse {
    // NOTE: the Runtime API reference does not say what Lambda does when the error type header
    // is missing. The emulator reports "Unhandled", as Lambda does for an unhandled error.
    let error_type = request.header(ERROR_TYPE_HEADER).unwrap_or("Unhandled").to_owned();
    let result = RuntimeResult::Error { error_type: error_type.clone(), body: request.body.clone() };
    if let Err(error) = finish_invoke(sandbox, request_id, result) {
        return error.into_response();
    }
    sandbox.record(
        RecordKind::RuntimeError,
        Some("runtime"),
        json!({ "requestId": request_id, "errorType": error_type }),
    );
    sandbox.bump();
    accepted()
}

fn finish_invoke(sandbox: &Sandbox, request_id: &str, result: RuntimeResult) -> Result<(), ApiError> {
    let mut state = sandbox.lock();
    let Some(invoke) = state.invoke.as_mut().filter(|i| i.request_id == request_id && i.delivered_to_runtime.is_some())
    else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID"));
    };
    if invoke.result.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "State transition from ResponseSent to ResponseSent failed for runtime: the invoke already has a result",
        ));
    }
    invoke.result = Some((result, Instant::now()));
    Ok(())
}

/// `POST /runtime/init/error`: allowed until the runtime's first `/next`.
pub(crate) fn init_error(sandbox: &Arc<Sandbox>, request: &ApiRequest) -> HttpResponse {
    let error_type = request.header(ERROR_TYPE_HEADER).unwrap_or("Runtime.Unknown").to_owned();
    {
        let mut state = sandbox.lock();
        if state.phase != Phase::Init || state.runtime.status != AgentStatus::Starting {
            return invalid_state(
                "State transition to InitError failed for runtime: init errors are accepted only before the runtime's first /next",
            );
        }
        state.runtime.status = AgentStatus::Failed(error_type.clone());
        state.record_fatal(&error_type, "runtime");
    }
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or(serde_json::Value::Null);
    sandbox.record(RecordKind::RuntimeInitError, Some("runtime"), json!({ "errorType": error_type, "body": body }));
    sandbox.bump();
    accepted()
}

/// Body of an invoke response as the caller sees it.
pub(crate) fn result_body(result: &RuntimeResult) -> Bytes {
    match result {
        RuntimeResult::Response(body) | RuntimeResult::Error { body, .. } => body.clone(),
        RuntimeResult::TooLarge => Bytes::from(
            json!({
                "errorMessage": format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                "errorType": "Function.ResponseSizeTooLarge",
            })
            .to_string(),
        ),
    }
}
