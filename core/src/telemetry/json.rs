use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map};

use super::{names, Event, Exporter, Resource, Severity, TelemetryError, Value};

/// Writes each event as one JSON object per line, and counter totals as a `palisade.metrics`
/// line on flush when they changed.
pub struct JsonLinesExporter {
    writer: Mutex<Box<dyn Write + Send>>,
    counters: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    /// Totals keyed by counter name and the JSON form of its attributes.
    totals: BTreeMap<(&'static str, String), u64>,
    changed: bool,
}

impl std::fmt::Debug for JsonLinesExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesExporter").finish_non_exhaustive()
    }
}

impl JsonLinesExporter {
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self { writer: Mutex::new(Box::new(writer)), counters: Mutex::default() }
    }

    fn write_line(&self, line: &serde_json::Value) {
        let mut text = line.to_string();
        text.push('\n');
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

        // A closed stderr must not stop the workload; the event is lost and nothing else can say so.
        let _ = writer.write_all(text.as_bytes()).and_then(|()| writer.flush());
    }
}

/// Renders a timestamp as RFC 3339 in UTC with nanoseconds.
fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

fn attributes_object<'a>(attributes: impl Iterator<Item = (&'a str, &'a Value)>) -> Map<String, serde_json::Value> {
    attributes
        .map(|(key, value)| (key.to_owned(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null)))
        .collect()
}

/// Serialises an event as the JSON line the exporter writes.
pub(super) fn event_line(resource: &Resource, event: &Event) -> serde_json::Value {
    let mut line = json!({
        "timestamp": timestamp(event.time),
        "severity_text": event.severity.as_str(),
        "severity_number": event.severity.number(),
        "event_name": event.name,
    });
    if let Some(body) = &event.body {
        line["body"] = json!(body);
    }
    line["attributes"] = serde_json::Value::Object(attributes_object(event.attributes.iter().map(|(k, v)| (*k, v))));
    line["resource"] =
        serde_json::Value::Object(attributes_object(resource.attributes.iter().map(|(k, v)| (k.as_str(), v))));
    line
}

impl Exporter for JsonLinesExporter {
    fn emit(&self, resource: &Resource, event: &Event) {
        self.write_line(&event_line(resource, event));
    }

    fn count(&self, name: &'static str, value: u64, attributes: &[(&'static str, Value)]) {
        let key = serde_json::Value::Object(attributes_object(attributes.iter().map(|(k, v)| (*k, v)))).to_string();
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counters.totals.entry((name, key)).or_default() += value;
        counters.changed = true;
    }

    fn flush(&self, resource: &Resource, _timeout: Duration) -> Result<(), TelemetryError> {
        let snapshot: Vec<serde_json::Value> = {
            let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if !counters.changed {
                return Ok(());
            }
            counters.changed = false;
            counters
                .totals
                .iter()
                .map(|((name, attributes), total)| {
                    let attributes: serde_json::Value = serde_json::from_str(attributes).unwrap_or_default();
                    json!({"name": name, "value": total, "attributes": attributes})
                })
                .collect()
        };

        let event = Event::new(names::METRICS, Severity::Info);
        let mut line = event_line(resource, &event);
        line["counters"] = json!(snapshot);
        self.write_line(&line);
        Ok(())
    }

    fn shutdown(&self, resource: &Resource, timeout: Duration) -> Result<(), TelemetryError> {
        self.flush(resource, timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::telemetry::{attributes, Telemetry};

    #[derive(Clone, Default)]
    struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buffer: &SharedBuffer) -> Vec<serde_json::Value> {
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn event_written_as_one_line() {
        let buffer = SharedBuffer::default();
        let mut resource = Resource::default();
        resource.set(attributes::SERVICE_NAME, "test");
        let telemetry = Telemetry::json_lines(resource, buffer.clone());

        telemetry.emit(
            Event::new(names::POLICY_APPLIED, Severity::Info)
                .with(attributes::LANDLOCK_ABI, 7u32)
                .with(attributes::POLICY_HASH, "sha256:00"),
        );

        let lines = lines(&buffer);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["event_name"], "palisade.policy.applied");
        assert_eq!(lines[0]["attributes"]["palisade.landlock.abi"], 7);
        assert_eq!(lines[0]["resource"]["service.name"], "test");
        assert!(lines[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn counters_flushed_only_when_changed() {
        let buffer = SharedBuffer::default();
        let telemetry = Telemetry::json_lines(Resource::default(), buffer.clone());
        telemetry.count("palisade.egress.decisions", 2, &[(attributes::DECISION, "deny".into())]);
        telemetry.count("palisade.egress.decisions", 3, &[(attributes::DECISION, "deny".into())]);

        telemetry.flush(Duration::from_secs(1)).unwrap();
        telemetry.flush(Duration::from_secs(1)).unwrap();

        let lines = lines(&buffer);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["counters"][0]["value"], 5);
        assert_eq!(lines[0]["counters"][0]["attributes"]["palisade.decision"], "deny");
    }
}
