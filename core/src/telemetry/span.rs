//! Per-invocation spans: one span per unit of work (a Lambda invoke), carrying the security
//! events that happened during it as span events.
//!
//! [`SpanSink`] exports spans from its own thread through a bounded queue, so that a slow or
//! absent backend costs queued memory and a dropped-span count, never the caller's time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Event, Resource, TelemetryError, Value};

/// The endpoint variables whose presence selects OTLP span export.
pub const TRACES_ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// A W3C trace context: the trace a span belongs to and the span it continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    /// The remote parent span, when the caller sent one.
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
}

/// A finished span with its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    /// The trace to join; `None` starts a new trace.
    pub context: Option<TraceContext>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<(&'static str, Value)>,
    pub events: Vec<Event>,
    /// Set when the unit of work failed; exported as an error status with this description.
    pub error: Option<String>,
}

/// Where finished spans are written.
pub(super) trait SpanWriter: Send + std::fmt::Debug {
    fn write(&mut self, spans: Vec<Span>) -> Result<(), TelemetryError>;
}

#[derive(Debug, Default)]
struct Queue {
    spans: VecDeque<Span>,
    exporting: bool,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    failed_exports: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A handle for submitting finished spans; cheap to clone.
#[derive(Debug, Clone)]
pub struct SpanSink {
    shared: Arc<Shared>,
}

impl SpanSink {
    /// Exports over OTLP/HTTP when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, otherwise writes one JSON line per span on stderr.
    /// `export_timeout` bounds each export request; at most `capacity` spans wait in the queue.
    pub fn from_env(resource: &Resource, export_timeout: Duration, capacity: usize) -> Result<Self, TelemetryError> {
        if !traces_endpoint_configured() {
            return Ok(Self::json_lines(resource, std::io::stderr(), capacity));
        }

        #[cfg(feature = "otlp")]
        {
            let writer = super::otlp::OtlpSpanWriter::from_env(resource, export_timeout)?;
            Ok(Self::start(Box::new(writer), capacity))
        }
        #[cfg(not(feature = "otlp"))]
        {
            let _ = export_timeout;
            Err(TelemetryError::OtlpUnavailable)
        }
    }

    /// Writes spans as JSON lines to `writer`.
    pub fn json_lines(resource: &Resource, writer: impl std::io::Write + Send + 'static, capacity: usize) -> Self {
        Self::start(Box::new(JsonSpanWriter { resource: resource.clone(), writer: Box::new(writer) }), capacity)
    }

    fn start(mut writer: Box<dyn SpanWriter>, capacity: usize) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            failed_exports: AtomicU64::new(0),
        });

        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("palisade-spans".into())
            .spawn(move || export_loop(&worker, writer.as_mut()))
            .map_or_else(
                |error| {
                    tracing::error!(%error, "failed to start the span export thread; spans will be dropped");
                    shared.lock().closed = true;
                },
                drop,
            );
        Self { shared }
    }

    /// Queues a span for export without waiting; drops it and counts it when the queue is full.
    pub fn submit(&self, span: Span) {
        let mut queue = self.shared.lock();
        if queue.closed || queue.spans.len() >= self.shared.capacity {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.spans.push_back(span);
        self.shared.changed.notify_all();
    }

    /// Waits until every queued span was exported (or failed), at most `timeout`; returns whether
    /// the queue drained in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queue = self.shared.lock();
        while !queue.closed && (queue.exporting || !queue.spans.is_empty()) {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) else {
                return false;
            };
            queue = self.shared.changed.wait_timeout(queue, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        true
    }

    /// Whether nothing is queued or being exported, checked without waiting.
    pub fn is_idle(&self) -> bool {
        let queue = self.shared.lock();
        queue.closed || (!queue.exporting && queue.spans.is_empty())
    }

    /// Flushes, then stops the export thread.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let drained = self.flush(timeout);
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        drained
    }

    /// Spans dropped because the queue was full or the sink was shut down.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Export requests that failed; their spans are lost.
    pub fn failed_exports(&self) -> u64 {
        self.shared.failed_exports.load(Ordering::Relaxed)
    }
}

/// Writes each span as one JSON object per line, with its events in the JSON lines event form.
struct JsonSpanWriter {
    resource: Resource,
    writer: Box<dyn std::io::Write + Send>,
}

impl std::fmt::Debug for JsonSpanWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSpanWriter").finish_non_exhaustive()
    }
}

impl SpanWriter for JsonSpanWriter {
    fn write(&mut self, spans: Vec<Span>) -> Result<(), TelemetryError> {
        for span in spans {
            let mut line = span_line(&self.resource, &span).to_string();
            line.push('\n');
            self.writer.write_all(line.as_bytes()).map_err(|error| TelemetryError::Flush(error.to_string()))?;
        }
        self.writer.flush().map_err(|error| TelemetryError::Flush(error.to_string()))
    }
}

fn span_line(resource: &Resource, span: &Span) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = span
        .attributes
        .iter()
        .map(|(key, value)| ((*key).to_owned(), serde_json::to_value(value).unwrap_or_default()))
        .collect();
    let events: Vec<serde_json::Value> = span
        .events
        .iter()
        .map(|event| {
            let mut line = super::json::event_line(resource, event);
            if let Some(object) = line.as_object_mut() {
                object.remove("resource");
            }
            line
        })
        .collect();
    let resource: serde_json::Map<String, serde_json::Value> = resource
        .attributes
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::to_value(value).unwrap_or_default()))
        .collect();

    serde_json::json!({
        "span_name": span.name,
        "trace_id": span.context.map(|context| hex::encode(context.trace_id)),
        "parent_span_id": span.context.and_then(|context| context.parent_span_id).map(hex::encode),
        "start": humantime::format_rfc3339_nanos(span.start).to_string(),
        "end": humantime::format_rfc3339_nanos(span.end).to_string(),
        "error": span.error,
        "attributes": attributes,
        "events": events,
        "resource": resource,
    })
}

fn export_loop(shared: &Shared, writer: &mut dyn SpanWriter) {
    loop {
        let batch: Vec<Span> = {
            let mut queue = shared.lock();
            while queue.spans.is_empty() && !queue.closed {
                queue = shared.changed.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if queue.spans.is_empty() {
                return;
            }
            queue.exporting = true;
            queue.spans.drain(..).collect()
        };

        let count = batch.len();
        if let Err(error) = writer.write(batch) {
            shared.failed_exports.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, spans = count, "span export failed; the spans are dropped");
        }

        shared.lock().exporting = false;
        shared.changed.notify_all();
    }
}

/// Whether a traces endpoint variable is set to a non-empty value.
pub fn traces_endpoint_configured() -> bool {
    TRACES_ENDPOINT_VARIABLES.iter().any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// A fresh span or trace identifier: a keyed hash of the time, the process and a counter. Unique,
/// but not meant to be unpredictable.
pub fn random_id<const N: usize>() -> [u8; N] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos());
    let mut hasher = blake3::Hasher::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hasher.finalize();

    let mut id = [0; N];
    id.copy_from_slice(&digest.as_bytes()[..N]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn span(name: &str) -> Span {
        Span {
            name: name.into(),
            context: None,
            start: SystemTime::now(),
            end: SystemTime::now(),
            attributes: vec![("faas.invocation_id", Value::from("r1"))],
            events: vec![Event::new("palisade.egress.decision", super::super::Severity::Warn)],
            error: None,
        }
    }

    #[test]
    fn sink_writes_flushed_spans() {
        let lines = Lines::default();
        let sink = SpanSink::json_lines(&Resource::detect("test"), lines.clone(), 4);

        sink.submit(span("invoke"));
        assert!(sink.flush(Duration::from_secs(5)));

        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["span_name"], "invoke");
        assert_eq!(line["attributes"]["faas.invocation_id"], "r1");
        assert_eq!(line["events"][0]["event_name"], "palisade.egress.decision");
    }

    #[test]
    fn full_queue_counts_dropped_spans() {
        let sink = SpanSink {
            shared: Arc::new(Shared {
                queue: Mutex::default(),
                changed: Condvar::new(),
                capacity: 2,
                dropped: AtomicU64::new(0),
                failed_exports: AtomicU64::new(0),
            }),
        };

        for _ in 0..5 {
            sink.submit(span("invoke"));
        }

        assert_eq!(sink.dropped(), 3);
        assert!(!sink.flush(Duration::from_millis(20)), "nothing exports, so the queue never drains");
    }
}
