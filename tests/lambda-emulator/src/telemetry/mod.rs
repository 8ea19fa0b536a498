//! Telemetry API: the event stream, subscriptions and batched delivery to subscribers.

mod delivery;
mod events;
mod subscription;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub(crate) use events::{format_time, platform_event};
pub(crate) use subscription::{parse_subscription, Subscription};

use crate::state::Sandbox;

/// The three telemetry streams an extension can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Platform,
    Function,
    Extension,
}

impl Stream {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name {
            "platform" => Some(Self::Platform),
            "function" => Some(Self::Function),
            "extension" => Some(Self::Extension),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Function => "function",
            Self::Extension => "extension",
        }
    }
}

/// Which stream a captured output line belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogSource {
    Function,
    Extension,
}

/// One Telemetry API `Event` object (`time`, `type`, `record`), serialized once.
#[derive(Debug)]
pub(crate) struct TelemetryEvent {
    pub stream: Stream,
    pub event_type: String,
    pub json: String,
}

impl TelemetryEvent {
    fn new(stream: Stream, value: &Value) -> Self {
        let event_type = value["type"].as_str().unwrap_or_default().to_owned();
        Self { stream, event_type, json: value.to_string() }
    }
}

/// A captured output line of the runtime or of an extension.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// Process name: `runtime` or the extension's file name.
    pub process: String,
    pub unix_ms: u64,
    pub line: String,
}

#[derive(Debug)]
enum Message {
    Event(Arc<TelemetryEvent>),
    /// Deliver the buffered batch now.
    Flush,
}

#[derive(Debug)]
struct Subscriber {
    extension_id: String,
    streams: Vec<Stream>,
    sender: mpsc::UnboundedSender<Message>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Hub {
    history: Vec<Arc<TelemetryEvent>>,
    subscribers: Vec<Subscriber>,
    logs: Vec<LogLine>,
}

/// Fans every telemetry event out to the subscribers of its stream.
#[derive(Debug, Default)]
pub(crate) struct TelemetryHub {
    hub: Mutex<Hub>,
}

impl TelemetryHub {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Emits an event built with [`platform_event`].
    pub(crate) fn emit_platform(&self, value: &Value) {
        self.emit(Arc::new(TelemetryEvent::new(Stream::Platform, value)));
    }

    /// Emits one output line as a `function` or `extension` event.
    pub(crate) fn emit_log(&self, source: LogSource, process: &str, line: String) {
        let stream = match source {
            LogSource::Function => Stream::Function,
            LogSource::Extension => Stream::Extension,
        };
        let value = json!({
            "time": format_time(std::time::SystemTime::now()),
            "type": stream.name(),
            "record": line,
        });
        self.lock().logs.push(LogLine { process: process.to_owned(), unix_ms: crate::record::unix_ms(), line });
        self.emit(Arc::new(TelemetryEvent::new(stream, &value)));
    }

    fn emit(&self, event: Arc<TelemetryEvent>) {
        let mut hub = self.lock();
        for subscriber in &hub.subscribers {
            if subscriber.streams.contains(&event.stream) {
                let _ = subscriber.sender.send(Message::Event(event.clone()));
            }
        }
        hub.history.push(event);
    }

    pub(crate) fn logs(&self) -> Vec<LogLine> {
        self.lock().logs.clone()
    }

    /// Starts delivering to `subscription`, replacing an earlier subscription of the same
    /// extension. Events emitted since the sandbox started are replayed first.
    // NOTE: the documentation does not say whether events emitted before the Subscribe call
    // (platform.initStart in particular) reach the subscriber; the emulator replays them.
    pub(crate) fn subscribe(
        &self,
        sandbox: &Arc<Sandbox>,
        extension_id: &str,
        extension_name: &str,
        subscription: Subscription,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut hub = self.lock();
        for event in &hub.history {
            if subscription.streams.contains(&event.stream) {
                let _ = sender.send(Message::Event(event.clone()));
            }
        }
        let streams = subscription.streams.clone();
        let task = tokio::spawn(delivery::run(sandbox.clone(), extension_name.to_owned(), subscription, receiver));
        if let Some(old) = hub.subscribers.iter().position(|s| s.extension_id == extension_id) {
            let old = hub.subscribers.remove(old);
            drop(old.sender);
        }
        hub.subscribers.push(Subscriber { extension_id: extension_id.to_owned(), streams, sender, task });
    }

    /// Asks every subscriber's delivery task to send its buffered batch now.
    pub(crate) fn flush_all(&self) {
        for subscriber in &self.lock().subscribers {
            let _ = subscriber.sender.send(Message::Flush);
        }
    }

    /// Closes every subscription; each delivery task sends what it buffered and ends.
    pub(crate) fn close_all(&self) -> Vec<JoinHandle<()>> {
        let subscribers = std::mem::take(&mut self.lock().subscribers);
        subscribers.into_iter().map(|s| s.task).collect()
    }
}
