//! The one event schema and its export.
//!
//! Every security event is an OpenTelemetry log record with an event name from [`names`] and
//! attributes from [`attributes`]. Counters sit beside the events. With an OTLP endpoint in the
//! standard `OTEL_EXPORTER_OTLP_*` variables both go to it over OTLP/HTTP; without one, events and
//! counter snapshots are written as JSON lines on stderr (in Lambda these land in CloudWatch Logs).

pub mod attributes;
mod collect;
mod event;
mod json;
pub mod names;
#[cfg(feature = "otlp")]
mod otlp;
mod resource;
mod span;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

pub use collect::EventCollector;
pub use event::{Event, Severity, Value};
pub use json::JsonLinesExporter;
pub use resource::Resource;
pub use span::{random_id, traces_endpoint_configured, Span, SpanSink, TraceContext, TRACES_ENDPOINT_VARIABLES};

/// The endpoint variables whose presence selects OTLP export.
pub const ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "unsupported OTEL_EXPORTER_OTLP_PROTOCOL {0:?}: set it to \"http/protobuf\" or \"http/json\" and point the endpoint at the collector's OTLP/HTTP port (4318 by default)"
    )]
    UnsupportedProtocol(String),

    #[error("invalid OTLP endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },

    #[error("OTLP export is not built into this binary; unset {} or rebuild with the `otlp` feature", ENDPOINT_VARIABLES.join(" and "))]
    OtlpUnavailable,

    #[error("telemetry flush failed: {0}")]
    Flush(String),

    #[error("{0}; events in that export were lost")]
    Export(String),
}

/// Where events go.
trait Exporter: Send + Sync + std::fmt::Debug {
    fn emit(&self, resource: &Resource, event: &Event);
    fn count(&self, name: &'static str, value: u64, attributes: &[(&'static str, Value)]);
    fn flush(&self, resource: &Resource, timeout: Duration) -> Result<(), TelemetryError>;
    fn shutdown(&self, resource: &Resource, timeout: Duration) -> Result<(), TelemetryError>;
}

/// A handle for emitting events and counting; cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry {
    resource: Arc<Resource>,
    exporter: Arc<dyn Exporter>,
}

impl Telemetry {
    /// Builds the exporter the environment selects: OTLP when an endpoint variable is set,
    /// otherwise JSON lines on stderr. `export_timeout` bounds each OTLP request.
    pub fn from_env(resource: Resource, export_timeout: Duration) -> Result<Self, TelemetryError> {
        if !otlp_endpoint_configured() {
            return Ok(Self::json_lines(resource, std::io::stderr()));
        }

        validate_endpoints()?;

        #[cfg(feature = "otlp")]
        {
            let exporter = otlp::OtlpExporter::from_env(&resource, export_timeout)?;
            Ok(Self { resource: Arc::new(resource), exporter: Arc::new(exporter) })
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = export_timeout;
            Err(TelemetryError::OtlpUnavailable)
        }
    }

    /// Writes events as JSON lines to `writer`.
    pub fn json_lines(resource: Resource, writer: impl Write + Send + 'static) -> Self {
        Self { resource: Arc::new(resource), exporter: Arc::new(JsonLinesExporter::new(writer)) }
    }

    /// Keeps up to `capacity` events in memory for the returned collector to drain; events beyond
    /// that are dropped and counted.
    pub fn collecting(resource: Resource, capacity: usize) -> (Self, EventCollector) {
        let (exporter, collector) = collect::CollectingExporter::new(capacity);
        (Self { resource: Arc::new(resource), exporter: Arc::new(exporter) }, collector)
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    pub fn emit(&self, event: Event) {
        self.exporter.emit(&self.resource, &event);
    }

    /// Adds `value` to the counter `name` with the given attributes.
    pub fn count(&self, name: &'static str, value: u64, attributes: &[(&'static str, Value)]) {
        self.exporter.count(name, value, attributes);
    }

    /// Sends what is buffered, waiting at most about `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), TelemetryError> {
        self.exporter.flush(&self.resource, timeout)
    }

    /// Flushes and stops the exporter's background work.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), TelemetryError> {
        self.exporter.shutdown(&self.resource, timeout)
    }
}

/// Checks every OTLP endpoint variable that is set, because the SDK replaces an endpoint it
/// cannot parse with its default (http://localhost:4318) without saying so.
fn validate_endpoints() -> Result<(), TelemetryError> {
    let variables = ENDPOINT_VARIABLES
        .iter()
        .chain(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"].iter());
    for name in variables {
        let Some(endpoint) = std::env::var(name).ok().filter(|value| !value.is_empty()) else { continue };
        let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
        let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
        match host {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {}
            _ => {
                return Err(TelemetryError::InvalidEndpoint {
                    endpoint,
                    reason: format!(
                        "{name} must be an http:// or https:// URL with a host, such as http://127.0.0.1:4318"
                    ),
                })
            }
        }
    }
    Ok(())
}

/// Whether an OTLP endpoint variable is set to a non-empty value.
pub fn otlp_endpoint_configured() -> bool {
    ENDPOINT_VARIABLES.iter().any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}
