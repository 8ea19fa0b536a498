//! Telemetry API (`PUT /2022-07-01/telemetry`).

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use super::extensions::identify;
use super::{error_response, ApiRequest, HttpResponse};
use crate::record::RecordKind;
use crate::state::Sandbox;
use crate::telemetry::{parse_subscription, platform_event};

/// Subscribes the calling extension. Responds 200 `"OK"` or 400 `ValidationError`.
// NOTE: the developer guide says subscription happens during extension init but not how Lambda
// responds to a later Subscribe call. The emulator accepts it at any time.
pub(crate) fn subscribe(sandbox: &Arc<Sandbox>, request: &ApiRequest) -> (HttpResponse, Option<String>) {
    let (id, name) = match identify(sandbox, request) {
        Ok(found) => found,
        Err(error) => return (error.into_response(), None),
    };
    let subscription = match parse_subscription(&request.body, &sandbox.config.sandbox_hosts) {
        Ok(subscription) => subscription,
        Err(error) => {
            let message = error.0.join("; ");
            return (error_response(StatusCode::BAD_REQUEST, "ValidationError", &message), Some(name));
        }
    };

    let types: Vec<&str> = subscription.streams.iter().map(|s| s.name()).collect();
    sandbox.record(
        RecordKind::TelemetrySubscribe,
        Some(&name),
        json!({
            "schemaVersion": subscription.schema_version,
            "types": types,
            "uri": subscription.uri,
            "deliverTo": subscription.address.to_string(),
            "maxItems": subscription.max_items,
            "maxBytes": subscription.max_bytes,
            "timeoutMs": subscription.timeout.as_millis() as u64,
        }),
    );
    let event = platform_event(
        "platform.telemetrySubscription",
        json!({ "name": name, "state": "Subscribed", "types": types }),
    );
    sandbox.telemetry.subscribe(sandbox, &id, &name, subscription);
    sandbox.telemetry.emit_platform(&event);

    let mut response = Response::new(Full::new(Bytes::from_static(b"\"OK\"")));
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    (response, Some(name))
}
