//! Per-invoke span assembly: the security events of each invoke and its `platform.report`
//! metrics, finished into one span when the report arrives or the extension shuts down.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use palisade_core::telemetry::{attributes, Event, EventCollector, Span, SpanSink, TraceContext, Value};
use serde_json::Value as Json;

/// Name of the span of one invoke.
pub const SPAN_NAME: &str = "palisade.invoke";

/// `platform.report` metrics, as span attributes.
pub const REPORT_DURATION_MS: &str = "aws.lambda.report.duration_ms";
pub const REPORT_BILLED_DURATION_MS: &str = "aws.lambda.report.billed_duration_ms";
pub const REPORT_MEMORY_SIZE_MB: &str = "aws.lambda.report.memory_size_mb";
pub const REPORT_MAX_MEMORY_USED_MB: &str = "aws.lambda.report.max_memory_used_mb";
pub const REPORT_INIT_DURATION_MS: &str = "aws.lambda.report.init_duration_ms";
pub const REPORT_STATUS: &str = "aws.lambda.report.status";
/// Set when the span was finished without its `platform.report` (shutdown came first).
pub const REPORT_MISSING: &str = "aws.lambda.report.missing";
/// Security events dropped because an invoke had more than the per-invoke limit.
pub const EVENTS_DROPPED: &str = "palisade.events.dropped";
/// Spans dropped so far because the export queue was full.
pub const SPANS_DROPPED: &str = "palisade.spans.dropped";
pub const CLOUD_RESOURCE_ID: &str = "cloud.resource_id";

/// Maximum security events kept per invoke; more are counted in [`EVENTS_DROPPED`].
const MAX_EVENTS_PER_INVOKE: usize = 1_000;

/// The fields of an INVOKE event that its span uses.
#[derive(Debug, Clone)]
pub struct InvokeStart {
    pub request_id: String,
    pub function_arn: String,
    pub context: Option<TraceContext>,
}

#[derive(Debug)]
struct Invocation {
    start: InvokeStart,
    started: SystemTime,
    runtime_done: Option<SystemTime>,
    report: Vec<(&'static str, Value)>,
    reported: bool,
    error: Option<String>,
    events: Vec<Event>,
    events_dropped: u64,
}

impl Invocation {
    fn record(&mut self, event: Event) {
        if self.events.len() < MAX_EVENTS_PER_INVOKE {
            self.events.push(event);
        } else {
            self.events_dropped += 1;
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Invokes whose span is not finished yet, oldest first; the last one is current.
    open: Vec<Invocation>,
    current: Option<String>,
    /// Events recorded before the first invoke, such as the init integrity check.
    before_first: Vec<Event>,
    function_name: String,
}

/// The shared per-invoke state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: Arc<Mutex<State>>,
    collector: Option<EventCollector>,
    sink: SpanSink,
}

impl Tracker {
    /// `collector` supplies the egress proxy's decision events.
    pub fn new(sink: SpanSink, collector: Option<EventCollector>, function_name: String) -> Self {
        let state = State { function_name, ..State::default() };
        Self { state: Arc::new(Mutex::new(state)), collector, sink }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Attributes an event to the current invoke (or to the first one, before any invoke).
    pub fn record(&self, event: Event) {
        let mut state = self.lock();
        record_into(&mut state, event);
    }

    /// Moves the collected egress events into the current invoke.
    pub fn absorb(&self) {
        let Some(collector) = &self.collector else { return };
        let events = collector.drain();
        if events.is_empty() {
            return;
        }
        let mut state = self.lock();
        for event in events {
            record_into(&mut state, event);
        }
    }

    /// Opens the span of a new invoke, after attributing what was collected to the previous one.
    pub fn begin(&self, start: InvokeStart) {
        self.absorb();
        let mut state = self.lock();
        let events = std::mem::take(&mut state.before_first);
        state.current = Some(start.request_id.clone());
        state.open.push(Invocation {
            start,
            started: SystemTime::now(),
            runtime_done: None,
            report: Vec::new(),
            reported: false,
            error: None,
            events,
            events_dropped: 0,
        });
    }

    /// Handles one Telemetry API event; a `platform.report` finishes its invoke's span.
    pub fn platform_event(&self, event: &Json) {
        let kind = event["type"].as_str().unwrap_or_default();
        let record = &event["record"];
        let Some(request_id) = record["requestId"].as_str() else { return };
        let time = event["time"].as_str().and_then(|time| humantime::parse_rfc3339_weak(time).ok());

        match kind {
            "platform.runtimeDone" => {
                let mut state = self.lock();
                if let Some(invocation) = find(&mut state, request_id) {
                    invocation.runtime_done = Some(time.unwrap_or_else(SystemTime::now));
                    note_status(invocation, record);
                }
            }
            "platform.report" => {
                self.absorb_if_current(request_id);
                let mut state = self.lock();
                let Some(invocation) = find(&mut state, request_id) else { return };
                invocation.report = report_attributes(record);
                invocation.reported = true;
                note_status(invocation, record);
                drop(state);
                self.finish_reported();
            }
            _ => {}
        }
    }

    fn absorb_if_current(&self, request_id: &str) {
        if self.lock().current.as_deref() == Some(request_id) {
            self.absorb();
        }
    }

    /// Whether every opened invoke has its `platform.report`.
    pub fn all_reported(&self) -> bool {
        self.lock().open.is_empty()
    }

    /// Submits the spans of reported invokes.
    fn finish_reported(&self) {
        let finished: Vec<Invocation> = {
            let mut state = self.lock();
            let (reported, open): (Vec<_>, Vec<_>) = state.open.drain(..).partition(|invocation| invocation.reported);
            state.open = open;
            reported
        };
        for invocation in finished {
            self.submit(invocation);
        }
    }

    /// Finishes every open span, reported or not, at shutdown.
    pub fn finish_all(&self) {
        self.absorb();
        let open: Vec<Invocation> = std::mem::take(&mut self.lock().open);
        for invocation in open {
            self.submit(invocation);
        }
    }

    /// Waits for queued spans to be exported, at most `timeout`; returns whether they were.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.sink.flush(timeout)
    }

    /// Whether no span waits for export.
    pub fn export_idle(&self) -> bool {
        self.sink.is_idle()
    }

    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.sink.shutdown(timeout)
    }

    fn submit(&self, invocation: Invocation) {
        let function_name = self.lock().function_name.clone();
        let Invocation { start, started, runtime_done, mut report, reported, error, events, events_dropped } =
            invocation;

        let mut span_attributes: Vec<(&'static str, Value)> = vec![
            (attributes::FAAS_INVOCATION_ID, Value::from(start.request_id)),
            (attributes::FAAS_NAME, Value::from(function_name)),
        ];
        if !start.function_arn.is_empty() {
            span_attributes.push((CLOUD_RESOURCE_ID, Value::from(start.function_arn)));
        }
        span_attributes.append(&mut report);
        if !reported {
            span_attributes.push((REPORT_MISSING, Value::from(true)));
        }
        span_attributes.push((EVENTS_DROPPED, Value::from(events_dropped)));
        span_attributes.push((SPANS_DROPPED, Value::from(self.sink.dropped())));

        let end = runtime_done.unwrap_or_else(SystemTime::now).max(started);
        self.sink.submit(Span {
            name: SPAN_NAME.to_owned(),
            context: start.context,
            start: started,
            end,
            attributes: span_attributes,
            events,
            error,
        });
    }
}

fn record_into(state: &mut State, event: Event) {
    let current = state.current.clone();
    match current.and_then(|id| state.open.iter_mut().find(|invocation| invocation.start.request_id == id)) {
        Some(invocation) => invocation.record(event),
        None if state.current.is_none() => state.before_first.push(event),
        // The current invoke's span was already finished; the event arrived late and is kept in
        // the next invoke's span.
        None => state.before_first.push(event),
    }
}

fn find<'a>(state: &'a mut State, request_id: &str) -> Option<&'a mut Invocation> {
    state.open.iter_mut().find(|invocation| invocation.start.request_id == request_id)
}

fn note_status(invocation: &mut Invocation, record: &Json) {
    match record["status"].as_str() {
        Some("success") | None => {}
        Some(status) => {
            let error_type = record["errorType"].as_str().unwrap_or_default();
            invocation.error = Some(format!("{status} {error_type}").trim().to_owned());
        }
    }
}

fn report_attributes(record: &Json) -> Vec<(&'static str, Value)> {
    let metrics = &record["metrics"];
    let mut report = vec![(REPORT_STATUS, Value::from(record["status"].as_str().unwrap_or("unknown")))];
    for (key, name) in [
        (REPORT_DURATION_MS, "durationMs"),
        (REPORT_BILLED_DURATION_MS, "billedDurationMs"),
        (REPORT_MEMORY_SIZE_MB, "memorySizeMB"),
        (REPORT_MAX_MEMORY_USED_MB, "maxMemoryUsedMB"),
        (REPORT_INIT_DURATION_MS, "initDurationMs"),
    ] {
        if let Some(value) = metrics[name].as_f64() {
            report.push((key, Value::from(value)));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use palisade_core::telemetry::{names, Resource, Severity};
    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, Default)]
    struct Lines(Arc<StdMutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn spans(lines: &Lines) -> Vec<Json> {
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    fn start(id: &str) -> InvokeStart {
        InvokeStart { request_id: id.into(), function_arn: String::new(), context: None }
    }

    #[test]
    fn report_finishes_span_with_metrics() {
        let lines = Lines::default();
        let tracker = Tracker::new(SpanSink::json_lines(&Resource::default(), lines.clone(), 8), None, "f".into());
        tracker.record(Event::new(names::INTEGRITY_VERIFIED, Severity::Info));

        tracker.begin(start("r1"));
        tracker.record(Event::new(names::PROCESS_STARTED, Severity::Warn));
        tracker.platform_event(&json!({"time": "2026-01-01T00:00:00.100Z", "type": "platform.report",
            "record": {"requestId": "r1", "status": "success", "metrics": {"durationMs": 1.5, "billedDurationMs": 2,
            "memorySizeMB": 128, "maxMemoryUsedMB": 40}}}));
        assert!(tracker.flush(Duration::from_secs(5)));

        let spans = spans(&lines);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["attributes"]["faas.invocation_id"], "r1");
        assert_eq!(spans[0]["attributes"][REPORT_DURATION_MS], 1.5);
        assert_eq!(spans[0]["attributes"][REPORT_MAX_MEMORY_USED_MB], 40.0);
        let names: Vec<&str> =
            spans[0]["events"].as_array().unwrap().iter().map(|e| e["event_name"].as_str().unwrap()).collect();
        assert_eq!(names, ["palisade.integrity.verified", "palisade.process.started"]);
    }

    #[test]
    fn shutdown_finishes_unreported_span() {
        let lines = Lines::default();
        let tracker = Tracker::new(SpanSink::json_lines(&Resource::default(), lines.clone(), 8), None, "f".into());
        tracker.begin(start("r1"));

        tracker.finish_all();
        assert!(tracker.flush(Duration::from_secs(5)));

        let spans = spans(&lines);
        assert_eq!(spans[0]["attributes"][REPORT_MISSING], true);
    }

    #[test]
    fn events_attributed_to_their_invoke() {
        let lines = Lines::default();
        let tracker = Tracker::new(SpanSink::json_lines(&Resource::default(), lines.clone(), 8), None, "f".into());

        tracker.begin(start("r1"));
        tracker.record(Event::new(names::EGRESS_DECISION, Severity::Info));
        tracker.begin(start("r2"));
        tracker.record(Event::new(names::PROCESS_STARTED, Severity::Info));
        tracker.finish_all();
        assert!(tracker.flush(Duration::from_secs(5)));

        let spans = spans(&lines);
        assert_eq!(spans[0]["events"][0]["event_name"], "palisade.egress.decision");
        assert_eq!(spans[1]["events"][0]["event_name"], "palisade.process.started");
        assert_eq!(spans[0]["events"].as_array().unwrap().len(), 1);
    }
}
