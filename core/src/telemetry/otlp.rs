//! OTLP/HTTP export through the OpenTelemetry SDK, with a blocking HTTP client so that no async
//! runtime is needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider};
use opentelemetry::metrics::{Counter, MeterProvider};
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use super::{Event, Exporter, Resource, Severity, TelemetryError, Value};

/// The last export that failed, shared by an exporter's HTTP clients. The SDK only logs a
/// failed export internally, so the exporter reads this on flush and shutdown to report it.
type LastFailure = Arc<Mutex<Option<String>>>;

/// An HTTP client for the OTLP exporter built on ureq, whose calls block the exporter's own
/// background thread.
#[derive(Debug, Clone)]
struct BlockingClient {
    agent: ureq::Agent,
    failure: LastFailure,
}

impl BlockingClient {
    fn new(timeout: Duration, failure: LastFailure) -> Self {
        let config = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build();
        Self { agent: config.into(), failure }
    }

    fn record_failure(&self, message: String) {
        *self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(message);
    }
}

#[async_trait::async_trait]
impl HttpClient for BlockingClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let uri = parts.uri.to_string();
        let request = Request::from_parts(parts, body.to_vec());
        let response = match self.agent.run(request) {
            Ok(response) => response,
            Err(error) => {
                self.record_failure(format!("OTLP export to {uri} failed: {error}"));
                return Err(error.into());
            }
        };
        if !response.status().is_success() {
            self.record_failure(format!("OTLP export to {uri} was answered with status {}", response.status()));
        }

        let (parts, mut body) = response.into_parts();
        let bytes = body.read_to_vec()?;
        Ok(Response::from_parts(parts, Bytes::from(bytes)))
    }
}

pub(super) struct OtlpExporter {
    loggers: SdkLoggerProvider,
    logger: SdkLogger,
    meters: SdkMeterProvider,
    counters: Mutex<HashMap<&'static str, Counter<u64>>>,
    failure: LastFailure,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter").finish_non_exhaustive()
    }
}

/// Reads `OTEL_EXPORTER_OTLP_LOGS_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL`; the OTLP
/// specification's default is `http/protobuf`.
fn protocol_from_env() -> Result<Protocol, TelemetryError> {
    signal_protocol_from_env("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
}

/// Reads the protocol of one signal from `signal_variable`, then `OTEL_EXPORTER_OTLP_PROTOCOL`.
fn signal_protocol_from_env(signal_variable: &str) -> Result<Protocol, TelemetryError> {
    let value =
        std::env::var(signal_variable).or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")).unwrap_or_default();
    match value.trim() {
        "" | "http/protobuf" => Ok(Protocol::HttpBinary),
        "http/json" => Ok(Protocol::HttpJson),
        other => Err(TelemetryError::UnsupportedProtocol(other.to_owned())),
    }
}

fn sdk_resource(resource: &Resource) -> opentelemetry_sdk::Resource {
    let attributes = resource.attributes.iter().map(|(key, value)| KeyValue::new(key.clone(), otel_value(value)));
    opentelemetry_sdk::Resource::builder_empty().with_attributes(attributes).build()
}

fn otel_value(value: &Value) -> opentelemetry::Value {
    match value {
        Value::Bool(value) => (*value).into(),
        Value::Int(value) => (*value).into(),
        Value::Double(value) => (*value).into(),
        Value::String(value) => value.clone().into(),
        Value::StringList(values) => opentelemetry::Value::Array(
            values.iter().cloned().map(opentelemetry::StringValue::from).collect::<Vec<_>>().into(),
        ),
    }
}

fn any_value(value: &Value) -> AnyValue {
    match value {
        Value::Bool(value) => AnyValue::Boolean(*value),
        Value::Int(value) => AnyValue::Int(*value),
        Value::Double(value) => AnyValue::Double(*value),
        Value::String(value) => AnyValue::String(value.clone().into()),
        Value::StringList(values) => {
            AnyValue::ListAny(Box::new(values.iter().map(|value| AnyValue::String(value.clone().into())).collect()))
        }
    }
}

fn severity(severity: Severity) -> opentelemetry::logs::Severity {
    match severity {
        Severity::Debug => opentelemetry::logs::Severity::Debug,
        Severity::Info => opentelemetry::logs::Severity::Info,
        Severity::Warn => opentelemetry::logs::Severity::Warn,
        Severity::Error => opentelemetry::logs::Severity::Error,
    }
}

fn build_error(error: impl std::fmt::Display) -> TelemetryError {
    let endpoint = super::ENDPOINT_VARIABLES.iter().find_map(|name| std::env::var(name).ok()).unwrap_or_default();
    TelemetryError::InvalidEndpoint { endpoint, reason: error.to_string() }
}

impl OtlpExporter {
    /// Builds log and metric exporters from the `OTEL_EXPORTER_OTLP_*` variables.
    pub(super) fn from_env(resource: &Resource, timeout: Duration) -> Result<Self, TelemetryError> {
        let protocol = protocol_from_env()?;
        let resource = sdk_resource(resource);
        let failure = LastFailure::default();

        let log_exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_timeout(timeout)
            .with_http_client(BlockingClient::new(timeout, failure.clone()))
            .build()
            .map_err(build_error)?;
        let loggers =
            SdkLoggerProvider::builder().with_resource(resource.clone()).with_batch_exporter(log_exporter).build();
        let logger = loggers.logger("palisade");

        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_timeout(timeout)
            .with_http_client(BlockingClient::new(timeout, failure.clone()))
            .build()
            .map_err(build_error)?;
        let meters =
            SdkMeterProvider::builder().with_resource(resource).with_periodic_exporter(metric_exporter).build();

        Ok(Self { loggers, logger, meters, counters: Mutex::default(), failure })
    }
}

impl Exporter for OtlpExporter {
    fn emit(&self, _resource: &Resource, event: &Event) {
        let mut record = self.logger.create_log_record();
        record.set_event_name(event.name);
        record.set_timestamp(event.time);
        record.set_observed_timestamp(std::time::SystemTime::now());
        record.set_severity_number(severity(event.severity));
        record.set_severity_text(event.severity.as_str());
        if let Some(body) = &event.body {
            record.set_body(AnyValue::String(body.clone().into()));
        }
        for (key, value) in &event.attributes {
            record.add_attribute(*key, any_value(value));
        }
        self.logger.emit(record);
    }

    fn count(&self, name: &'static str, value: u64, attributes: &[(&'static str, Value)]) {
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let counter = counters.entry(name).or_insert_with(|| self.meters.meter("palisade").u64_counter(name).build());
        let attributes: Vec<KeyValue> =
            attributes.iter().map(|(key, value)| KeyValue::new(*key, otel_value(value))).collect();
        counter.add(value, &attributes);
    }

    fn flush(&self, _resource: &Resource, _timeout: Duration) -> Result<(), TelemetryError> {
        // Each export request is bounded by the HTTP client's timeout, so these return in bounded time.
        let logs = self.loggers.force_flush();
        let metrics = self.meters.force_flush();
        logs.and(metrics).map_err(|error| TelemetryError::Flush(error.to_string()))?;
        self.take_failure()
    }

    fn shutdown(&self, _resource: &Resource, timeout: Duration) -> Result<(), TelemetryError> {
        let logs = self.loggers.shutdown_with_timeout(timeout);
        let metrics = self.meters.shutdown_with_timeout(timeout);
        logs.and(metrics).map_err(|error| TelemetryError::Flush(error.to_string()))?;
        self.take_failure()
    }
}

impl OtlpExporter {
    /// Returns the last export failure since the previous call as an error.
    fn take_failure(&self) -> Result<(), TelemetryError> {
        match self.failure.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            Some(message) => Err(TelemetryError::Export(message)),
            None => Ok(()),
        }
    }
}

/// Exports spans through the OTLP/HTTP span exporter, called from the span sink's own thread.
pub(super) struct OtlpSpanWriter {
    exporter: opentelemetry_otlp::SpanExporter,
}

impl std::fmt::Debug for OtlpSpanWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSpanWriter").finish_non_exhaustive()
    }
}

/// Reads `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then `OTEL_EXPORTER_OTLP_PROTOCOL`.
fn traces_protocol_from_env() -> Result<Protocol, TelemetryError> {
    signal_protocol_from_env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
}

impl OtlpSpanWriter {
    /// Builds the span exporter from the `OTEL_EXPORTER_OTLP_*` variables.
    pub(super) fn from_env(resource: &Resource, timeout: Duration) -> Result<Self, TelemetryError> {
        use opentelemetry_sdk::trace::SpanExporter as _;

        let protocol = traces_protocol_from_env()?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_timeout(timeout)
            .with_http_client(BlockingClient::new(timeout, LastFailure::default()))
            .build()
            .map_err(build_error)?;
        exporter.set_resource(&sdk_resource(resource));
        Ok(Self { exporter })
    }
}

impl super::span::SpanWriter for OtlpSpanWriter {
    fn write(&mut self, spans: Vec<super::Span>) -> Result<(), TelemetryError> {
        use opentelemetry_sdk::trace::SpanExporter as _;

        let batch = spans.into_iter().map(span_data).collect();
        // The HTTP client blocks inside the future, so polling it to completion here is the export.
        futures_executor::block_on(self.exporter.export(batch))
            .map_err(|error| TelemetryError::Flush(error.to_string()))
    }
}

fn span_data(span: super::Span) -> opentelemetry_sdk::trace::SpanData {
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};

    let (trace_id, parent, sampled) = match span.context {
        Some(context) => (context.trace_id, context.parent_span_id, context.sampled),
        None => (super::random_id::<16>(), None, true),
    };
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    let span_context = SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(super::random_id()),
        flags,
        false,
        TraceState::NONE,
    );

    let events = span
        .events
        .iter()
        .map(|event| {
            let mut attributes: Vec<KeyValue> =
                event.attributes.iter().map(|(key, value)| KeyValue::new(*key, otel_value(value))).collect();
            attributes.push(KeyValue::new("log.severity", event.severity.as_str()));
            if let Some(body) = &event.body {
                attributes.push(KeyValue::new("log.body", body.clone()));
            }
            opentelemetry::trace::Event::new(event.name, event.time, attributes, 0)
        })
        .collect();
    let mut span_events = opentelemetry_sdk::trace::SpanEvents::default();
    span_events.events = events;

    opentelemetry_sdk::trace::SpanData {
        span_context,
        parent_span_id: parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: parent.is_some(),
        span_kind: SpanKind::Server,
        name: span.name.into(),
        start_time: span.start,
        end_time: span.end,
        attributes: span.attributes.iter().map(|(key, value)| KeyValue::new(*key, otel_value(value))).collect(),
        dropped_attributes_count: 0,
        events: span_events,
        links: opentelemetry_sdk::trace::SpanLinks::default(),
        status: match span.error {
            Some(description) => Status::error(description),
            None => Status::Unset,
        },
        instrumentation_scope: opentelemetry::InstrumentationScope::builder("palisade").build(),
    }
}
