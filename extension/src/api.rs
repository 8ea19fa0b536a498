//! The Lambda Extensions API (`2020-01-01`) and the Telemetry API subscription (`2022-07-01`).

use http::Method;
use serde::Deserialize;

use crate::error::{ApiError, ConfigError};
use crate::http::{send, Response};

const REGISTER: &str = "/2020-01-01/extension/register";
const NEXT: &str = "/2020-01-01/extension/event/next";
const INIT_ERROR: &str = "/2020-01-01/extension/init/error";
const TELEMETRY: &str = "/2022-07-01/telemetry";

/// The `tracing` object of an INVOKE event.
#[derive(Debug, Clone, Deserialize)]
pub struct Tracing {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// An event returned by `/extension/event/next`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "eventType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NextEvent {
    #[serde(rename_all = "camelCase")]
    Invoke {
        request_id: String,
        #[serde(default)]
        invoked_function_arn: String,
        #[serde(default)]
        tracing: Option<Tracing>,
    },
    #[serde(rename_all = "camelCase")]
    Shutdown { shutdown_reason: String, deadline_ms: u64 },
}

/// A registered extension's client.
#[derive(Debug, Clone)]
pub struct ExtensionsApi {
    authority: String,
    identifier: String,
    /// `functionName` from the register response.
    pub function_name: String,
}

fn check(method: &'static str, path: &str, response: &Response, expected: u16) -> Result<(), ApiError> {
    if response.status.as_u16() == expected {
        return Ok(());
    }
    Err(ApiError::Status {
        method,
        path: path.to_owned(),
        status: response.status.as_u16(),
        body: String::from_utf8_lossy(&response.body).chars().take(512).collect(),
    })
}

impl ExtensionsApi {
    /// Registers for INVOKE and SHUTDOWN under `name`, which must be the extension's file name.
    pub async fn register(authority: &str, name: &str) -> Result<Self, ApiError> {
        let body = br#"{"events":["INVOKE","SHUTDOWN"]}"#.to_vec();
        let response = send(authority, Method::POST, REGISTER, &[("Lambda-Extension-Name", name)], body).await?;
        check("POST", REGISTER, &response, 200)?;

        let identifier = response
            .headers
            .get("Lambda-Extension-Identifier")
            .and_then(|value| value.to_str().ok())
            .ok_or(ApiError::MissingIdentifier)?
            .to_owned();

        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Registered {
            #[serde(default)]
            function_name: String,
        }
        let registered: Registered = serde_json::from_slice(&response.body).unwrap_or_default();
        Ok(Self { authority: authority.to_owned(), identifier, function_name: registered.function_name })
    }

    /// Subscribes to platform telemetry, delivered by HTTP POST to `destination`.
    pub async fn subscribe_telemetry(&self, destination: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({
            "schemaVersion": "2022-12-13",
            "destination": {"protocol": "HTTP", "URI": destination},
            "types": ["platform"],
            "buffering": {"maxItems": 1000, "maxBytes": 262_144, "timeoutMs": 25},
        });
        let response = send(
            &self.authority,
            Method::PUT,
            TELEMETRY,
            &[("Lambda-Extension-Identifier", &self.identifier)],
            body.to_string().into_bytes(),
        )
        .await?;
        check("PUT", TELEMETRY, &response, 200)
    }

    /// Long-polls for the next event.
    pub async fn next(&self) -> Result<NextEvent, ApiError> {
        let response =
            send(&self.authority, Method::GET, NEXT, &[("Lambda-Extension-Identifier", &self.identifier)], Vec::new())
                .await?;
        check("GET", NEXT, &response, 200)?;
        serde_json::from_slice(&response.body)
            .map_err(|error| ApiError::InvalidEvent { path: NEXT.to_owned(), reason: error.to_string() })
    }

    /// Reports a configuration error during init; Lambda then fails the init phase.
    pub async fn init_error(&self, error: &ConfigError) -> Result<(), ApiError> {
        let (path, error_type, message) = (INIT_ERROR, error.error_type(), error.to_string());
        let body = serde_json::json!({"errorMessage": message, "errorType": error_type, "stackTrace": []});
        let response = send(
            &self.authority,
            Method::POST,
            path,
            &[("Lambda-Extension-Identifier", &self.identifier), ("Lambda-Extension-Function-Error-Type", error_type)],
            body.to_string().into_bytes(),
        )
        .await?;
        check("POST", path, &response, 202)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_event_parses_tracing() {
        let body = r#"{"eventType":"INVOKE","deadlineMs":1700000000000,"requestId":"r-1",
            "invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:f",
            "tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}"#;

        let NextEvent::Invoke { request_id, tracing, .. } = serde_json::from_str(body).unwrap() else {
            panic!("expected INVOKE");
        };

        assert_eq!(request_id, "r-1");
        assert_eq!(tracing.unwrap().kind, "X-Amzn-Trace-Id");
    }

    #[test]
    fn shutdown_event_parses_reason() {
        let body = r#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1700000000000}"#;

        let event: NextEvent = serde_json::from_str(body).unwrap();

        assert!(matches!(event, NextEvent::Shutdown { shutdown_reason, .. } if shutdown_reason == "spindown"));
    }
}
