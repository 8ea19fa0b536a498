//! Extensions API (`/2020-01-01/extension/...`).
//!
//! The developer guide lists only the status codes (400, 403, 500). The error types are those of
//! Lambda's runtime API server as published in the AWS Lambda Runtime Interface Emulator
//! (`Extension.InvalidExtensionName`, `Extension.MissingExtensionIdentifier`, ...). That server
//! responds 403 Forbidden to every validation failure.

use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::{accepted, error_response, json_response, ApiError, ApiRequest, HttpResponse};
use crate::record::RecordKind;
use crate::state::{Agent, AgentStatus, Delivery, EventType, Extension, Phase, Sandbox, MAX_EXTENSIONS};
use crate::telemetry::platform_event;

pub(crate) const NAME_HEADER: &str = "Lambda-Extension-Name";
pub(crate) const IDENTIFIER_HEADER: &str = "Lambda-Extension-Identifier";
pub(crate) const ERROR_TYPE_HEADER: &str = "Lambda-Extension-Function-Error-Type";
const ACCEPT_FEATURE_HEADER: &str = "Lambda-Extension-Accept-Feature";
const EVENT_IDENTIFIER_HEADER: &str = "Lambda-Extension-Event-Identifier";

fn forbidden(error_type: &str, message: &str) -> HttpResponse {
    error_response(StatusCode::FORBIDDEN, error_type, message)
}

fn forbidden_error(error_type: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, error_type, message)
}

/// Checks the `Lambda-Extension-Identifier` header; returns the registered extension's id and
/// name, or the error response.
pub(crate) fn identify(sandbox: &Sandbox, request: &ApiRequest) -> Result<(String, String), ApiError> {
    let Some(id) = request.header(IDENTIFIER_HEADER).filter(|v| !v.is_empty()) else {
        return Err(forbidden_error(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        ));
    };
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(forbidden_error("Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier"));
    }
    match sandbox.lock().extension_by_id(id) {
        Some(extension) => Ok((extension.id.clone(), extension.name.clone())),
        None => Err(forbidden_error("Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier")),
    }
}

fn parse_events(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| forbidden_error("InvalidRequestFormat", error.to_string()))?;
    if !value.is_object() {
        return Err(forbidden_error("InvalidRequestFormat", "the request body should be a JSON object"));
    }
    if value["configurationKeys"].as_array().is_some_and(|keys| !keys.is_empty()) {
        return Err(forbidden_error(
            "InvalidRequestFormat",
            "configurationKeys are deprecated; use environment variables instead",
        ));
    }
    match &value["events"] {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| forbidden_error("InvalidRequestFormat", "events should be an array of strings"))
            })
            .collect(),
        _ => Err(forbidden_error("InvalidRequestFormat", "events should be an array of strings")),
    }
}

/// `POST /extension/register`.
pub(crate) fn register(sandbox: &Arc<Sandbox>, request: &ApiRequest) -> (HttpResponse, Option<String>) {
    let Some(name) = request.header(NAME_HEADER).filter(|n| !n.is_empty()).map(str::to_owned) else {
        return (forbidden("Extension.InvalidExtensionName", "Empty extension name"), None);
    };
    let subject = Some(name.clone());
    let names = match parse_events(&request.body) {
        Ok(names) => names,
        Err(error) => return (error.into_response(), subject),
    };

    let (response, events) = {
        let mut state = sandbox.lock();
        let external = state.external_names.contains(&name);
        let mut events = Vec::new();
        for event in &names {
            let parsed = match event.as_str() {
                "INVOKE" => EventType::Invoke,
                "SHUTDOWN" if external => EventType::Shutdown,
                "SHUTDOWN" => {
                    return (
                        forbidden(
                            "Extension.InvalidEventType",
                            "SHUTDOWN: internal extensions cannot register for the SHUTDOWN event",
                        ),
                        subject,
                    )
                }
                other => {
                    return (
                        forbidden(
                            "Extension.InvalidEventType",
                            &format!("{other}: unknown event; use INVOKE or SHUTDOWN"),
                        ),
                        subject,
                    )
                }
            };
            if !events.contains(&parsed) {
                events.push(parsed);
            }
        }

        // External extensions register during extension init; internal ones until the runtime's
        // first /next ends runtime init.
        let open = state.phase == Phase::Init && state.runtime.status == AgentStatus::Starting;
        if state.extension_by_name(&name).is_some() {
            return (
                forbidden("Extension.InvalidExtensionState", &format!("Extension {name} is already registered")),
                subject,
            );
        }
        if !open {
            return (forbidden("Extension.RegistrationClosed", "Extension registration closed already"), subject);
        }
        if state.extensions.len() >= MAX_EXTENSIONS {
            return (
                forbidden("Extension.TooManyExtensions", &format!("Extension limit ({MAX_EXTENSIONS}) reached")),
                subject,
            );
        }

        let id = uuid::Uuid::new_v4().to_string();
        state.extensions.push(Extension {
            id: id.clone(),
            name: name.clone(),
            external,
            events: events.clone(),
            agent: Agent::new(),
        });

        let config = &sandbox.config;
        let mut body = json!({
            "functionName": config.function_name,
            "functionVersion": config.function_version,
            "handler": config.handler,
        });
        let features = request.header(ACCEPT_FEATURE_HEADER).unwrap_or_default();
        if features.split(',').any(|f| f.trim() == "accountId") {
            body["accountId"] = json!(config.account_id);
        }
        let mut response = json_response(StatusCode::OK, &body);
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(IDENTIFIER_HEADER, value);
        }
        sandbox.record(
            RecordKind::ExtensionRegister,
            Some(&name),
            json!({ "id": id, "events": events, "external": external }),
        );
        (response, events)
    };

    sandbox.telemetry.emit_platform(&platform_event(
        "platform.extension",
        json!({ "name": name, "state": "Ready", "events": events }),
    ));
    sandbox.bump();
    (response, subject)
}

/// `GET /extension/event/next`: marks the extension done with its last event and long-polls.
pub(crate) async fn next(sandbox: &Arc<Sandbox>, request: &ApiRequest) -> (HttpResponse, Option<String>) {
    let (id, name) = match identify(sandbox, request) {
        Ok(found) => found,
        Err(error) => return (error.into_response(), None),
    };
    let subject = Some(name.clone());
    let notify = {
        let mut state = sandbox.lock();
        let Some(extension) = state.extension_by_id(&id) else {
            return (forbidden("Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier"), subject);
        };
        if let AgentStatus::Failed(error_type) = &extension.agent.status {
            let message = format!("Extension {name} reported {error_type}; no further API calls succeed");
            return (forbidden("Extension.InvalidExtensionState", &message), subject);
        }
        if extension.agent.queue.is_empty() {
            extension.agent.status = AgentStatus::Ready;
        }
        extension.agent.notify.clone()
    };
    sandbox.record(RecordKind::ExtensionNext, Some(&name), Value::Null);
    sandbox.bump();

    loop {
        let event = {
            let mut state = sandbox.lock();
            match state.extension_by_id(&id) {
                Some(extension) => match extension.agent.queue.pop_front() {
                    Some(Delivery::Extension(event)) => {
                        extension.agent.status = AgentStatus::Busy;
                        Some(event)
                    }
                    Some(Delivery::Runtime(_)) | None => None,
                },
                None => None,
            }
        };
        if let Some(event) = event {
            sandbox.record(
                RecordKind::ExtensionEventDelivered,
                Some(&name),
                json!({ "eventType": event["eventType"], "requestId": event["requestId"] }),
            );
            sandbox.bump();
            let mut response = json_response(StatusCode::OK, &event);
            let event_id = uuid::Uuid::new_v4().to_string();
            for (header, value) in [(EVENT_IDENTIFIER_HEADER, event_id.as_str()), (IDENTIFIER_HEADER, id.as_str())] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().insert(header, value);
                }
            }
            return (response, subject);
        }
        notify.notified().await;
    }
}

/// `POST /extension/init/error` (`during_init`) and `POST /extension/exit/error`.
pub(crate) fn report_error(
    sandbox: &Arc<Sandbox>,
    request: &ApiRequest,
    during_init: bool,
) -> (HttpResponse, Option<String>) {
    let (id, name) = match identify(sandbox, request) {
        Ok(found) => found,
        Err(error) => return (error.into_response(), None),
    };
    let subject = Some(name.clone());
    let Some(error_type) = request.header(ERROR_TYPE_HEADER).filter(|v| !v.is_empty()).map(str::to_owned) else {
        return (forbidden("Extension.MissingHeader", &format!("{ERROR_TYPE_HEADER} not found")), subject);
    };
    {
        let mut state = sandbox.lock();
        let in_init = state.phase == Phase::Init;
        let Some(extension) = state.extension_by_id(&id) else {
            return (forbidden("Extension.UnknownExtensionIdentifier", "Unknown Lambda-Extension-Identifier"), subject);
        };
        if let AgentStatus::Failed(previous) = &extension.agent.status {
            let message = format!("Extension {name} already reported {previous}");
            return (forbidden("Extension.InvalidExtensionState", &message), subject);
        }
        if during_init && !in_init {
            return (
                forbidden(
                    "Extension.InvalidExtensionState",
                    &format!("Extension {name} cannot report an init error after the Init phase"),
                ),
                subject,
            );
        }
        extension.agent.status = AgentStatus::Failed(error_type.clone());
        state.record_fatal(&error_type, &name);
    }
    let kind = if during_init { RecordKind::ExtensionInitError } else { RecordKind::ExtensionExitError };
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    sandbox.record(kind, Some(&name), json!({ "errorType": error_type, "body": body }));
    sandbox.bump();
    (accepted(), subject)
}
