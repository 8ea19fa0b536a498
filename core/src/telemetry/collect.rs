//! An exporter that keeps events in memory for a caller to drain, so that a component can attach
//! the events of one unit of work (an invoke) to that unit's span.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Event, Exporter, Resource, TelemetryError, Value};

#[derive(Debug)]
struct Buffer {
    events: Mutex<VecDeque<Event>>,
    capacity: usize,
    dropped: AtomicU64,
}

/// The draining side of [`super::Telemetry::collecting`].
#[derive(Debug, Clone)]
pub struct EventCollector {
    buffer: Arc<Buffer>,
}

impl EventCollector {
    /// Removes and returns every buffered event, oldest first.
    pub fn drain(&self) -> Vec<Event> {
        let mut events = self.buffer.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        events.drain(..).collect()
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.buffer.dropped.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub(super) struct CollectingExporter {
    buffer: Arc<Buffer>,
}

impl CollectingExporter {
    pub(super) fn new(capacity: usize) -> (Self, EventCollector) {
        let buffer =
            Arc::new(Buffer { events: Mutex::default(), capacity: capacity.max(1), dropped: AtomicU64::new(0) });
        (Self { buffer: Arc::clone(&buffer) }, EventCollector { buffer })
    }
}

impl Exporter for CollectingExporter {
    fn emit(&self, _resource: &Resource, event: &Event) {
        let mut events = self.buffer.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if events.len() >= self.buffer.capacity {
            self.buffer.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        events.push_back(event.clone());
    }

    // NOTE: counters are not kept; the collected events carry the same information per invoke.
    fn count(&self, _name: &'static str, _value: u64, _attributes: &[(&'static str, Value)]) {}

    fn flush(&self, _resource: &Resource, _timeout: Duration) -> Result<(), TelemetryError> {
        Ok(())
    }

    fn shutdown(&self, _resource: &Resource, _timeout: Duration) -> Result<(), TelemetryError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::telemetry::{names, Event, Resource, Severity, Telemetry};

    #[test]
    fn collector_drains_and_counts_overflow() {
        let (telemetry, collector) = Telemetry::collecting(Resource::default(), 2);

        for _ in 0..3 {
            telemetry.emit(Event::new(names::EGRESS_DECISION, Severity::Info));
        }

        assert_eq!(collector.drain().len(), 2);
        assert_eq!(collector.dropped(), 1);
        assert!(collector.drain().is_empty());
    }
}
