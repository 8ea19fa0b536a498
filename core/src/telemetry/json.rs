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
        self.write_bytes(text.as_bytes());
    }

    fn write_bytes(&self, line: &[u8]) {
        let mut writer = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

        // A closed stderr must not stop the workload; the event is lost and nothing else can say so.
        let _ = writer.write_all(line).and_then(|()| writer.flush());
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

/// Writes an event as the same JSON object [`event_line`] builds, keys sorted, followed by a
/// newline, straight into `out` without building a JSON tree: the egress proxy writes one per
/// request.
fn write_event_line(out: &mut Vec<u8>, resource: &Resource, event: &Event) {
    out.extend_from_slice(b"{\"attributes\":");
    write_object(out, event.attributes.iter().map(|(key, value)| (*key, value)));
    if let Some(body) = &event.body {
        out.extend_from_slice(b",\"body\":");
        write_string(out, body);
    }
    out.extend_from_slice(b",\"event_name\":");
    write_string(out, event.name);
    out.extend_from_slice(b",\"resource\":");
    write_object(out, resource.attributes.iter().map(|(key, value)| (key.as_str(), value)));
    out.extend_from_slice(b",\"severity_number\":");
    out.extend_from_slice(event.severity.number().to_string().as_bytes());
    out.extend_from_slice(b",\"severity_text\":");
    write_string(out, event.severity.as_str());
    out.extend_from_slice(b",\"timestamp\":");
    write_string(out, &timestamp(event.time));
    out.extend_from_slice(b"}\n");
}

/// Writes attributes as a JSON object with sorted keys; of repeated keys the last one counts, as
/// in a map.
fn write_object<'a>(out: &mut Vec<u8>, attributes: impl Iterator<Item = (&'a str, &'a Value)>) {
    let mut sorted: Vec<(&str, &Value)> = attributes.collect();
    sorted.sort_by_key(|(key, _)| *key);

    out.push(b'{');
    let mut first = true;
    for (index, (key, value)) in sorted.iter().enumerate() {
        if sorted.get(index + 1).is_some_and(|(next, _)| next == key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(out, key);
        out.push(b':');
        // Writing into a Vec does not fail, and these values serialise without error.
        let _ = serde_json::to_writer(&mut *out, value);
    }
    out.push(b'}');
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *out, text);
}

impl Exporter for JsonLinesExporter {
    fn emit(&self, resource: &Resource, event: &Event) {
        let mut line = Vec::with_capacity(1024);
        write_event_line(&mut line, resource, event);
        self.write_bytes(&line);
    }

    fn count(&self, name: &'static str, value: u64, attributes: &[(&'static str, Value)]) {
        let mut key = Vec::with_capacity(128);
        write_object(&mut key, attributes.iter().map(|(k, v)| (*k, v)));
        let key = String::from_utf8(key).unwrap_or_default();
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
    fn written_line_matches_the_json_tree() {
        let mut resource = Resource::default();
        resource.set(attributes::SERVICE_NAME, "quote \" and \\ and \u{1}");
        let event = Event::new(names::EGRESS_DECISION, Severity::Warn)
            .with_body("line\nbreak")
            .with(attributes::SERVER_PORT, 443u32)
            .with(attributes::DURATION_MS, 0.25)
            .with(attributes::DECISION, "deny")
            .with(attributes::EGRESS_AUDITED, false)
            .with(attributes::PROCESS_COMMAND_ARGS, vec!["a".to_owned(), "é".to_owned()])
            .with(attributes::DECISION, "allow");

        let mut line = Vec::new();
        write_event_line(&mut line, &resource, &event);

        assert_eq!(line.last(), Some(&b'\n'));
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, event_line(&resource, &event));
        assert_eq!(parsed["attributes"]["palisade.decision"], "allow");
        assert_eq!(line[..line.len() - 1], event_line(&resource, &event).to_string().into_bytes()[..]);
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
