//! Delivery task of one subscription: buffers events and sends a batch when it reaches maxItems
//! or maxBytes, when timeoutMs has passed since its first event, or on a flush request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::subscription::Protocol;
use super::{Message, Subscription, TelemetryEvent};
use crate::record::RecordKind;
use crate::state::Sandbox;

/// Attempts per batch before it is dropped.
// NOTE: the documentation says Lambda retries with backoff but gives no count or delays.
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

struct Batch {
    events: Vec<Arc<TelemetryEvent>>,
    bytes: usize,
    opened: Option<Instant>,
}

impl Batch {
    fn new() -> Self {
        Self { events: Vec::new(), bytes: 0, opened: None }
    }
}

pub(super) async fn run(
    sandbox: Arc<Sandbox>,
    name: String,
    subscription: Subscription,
    mut receiver: mpsc::UnboundedReceiver<Message>,
) {
    let mut batch = Batch::new();
    let mut tcp: Option<TcpStream> = None;
    loop {
        let message = match batch.opened {
            Some(opened) => {
                tokio::select! {
                    message = receiver.recv() => message,
                    () = tokio::time::sleep_until(opened + subscription.timeout) => Some(Message::Flush),
                }
            }
            None => receiver.recv().await,
        };
        let full = match message {
            None => {
                send(&sandbox, &name, &subscription, &mut tcp, &mut batch).await;
                return;
            }
            Some(Message::Flush) => true,
            Some(Message::Event(event)) => {
                batch.bytes += event.json.len();
                batch.events.push(event);
                batch.opened.get_or_insert_with(Instant::now);
                batch.events.len() >= subscription.max_items || batch.bytes >= subscription.max_bytes
            }
        };
        if full {
            send(&sandbox, &name, &subscription, &mut tcp, &mut batch).await;
        }
    }
}

async fn send(
    sandbox: &Sandbox,
    name: &str,
    subscription: &Subscription,
    tcp: &mut Option<TcpStream>,
    batch: &mut Batch,
) {
    let events = std::mem::take(&mut batch.events);
    *batch = Batch::new();
    if events.is_empty() {
        return;
    }

    // A frozen subscriber cannot read, so delivery waits for the thaw.
    let mut paused = sandbox.telemetry_paused.subscribe();
    let _ = paused.wait_for(|paused| !*paused).await;

    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let mut backoff = FIRST_BACKOFF;
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        let result = match subscription.protocol {
            Protocol::Http => post(subscription, &events).await,
            Protocol::Tcp => write_ndjson(subscription, tcp, &events).await,
        };
        match result {
            Ok(status) => {
                sandbox.record(
                    RecordKind::TelemetryDelivered,
                    Some(name),
                    json!({ "count": events.len(), "types": types, "status": status, "attempt": attempt }),
                );
                return;
            }
            Err(error) => {
                tracing::debug!(extension = name, %error, attempt, "telemetry delivery failed");
                last_error = error;
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
    // TODO: Lambda reports dropped records to the subscriber with platform.logsDropped; the
    // emulator only records the drop.
    tracing::warn!(extension = name, error = %last_error, count = events.len(), "telemetry batch dropped");
    sandbox.record(
        RecordKind::TelemetryDeliveryFailed,
        Some(name),
        json!({ "count": events.len(), "types": types, "error": last_error }),
    );
}

fn json_array(events: &[Arc<TelemetryEvent>]) -> String {
    let mut body = String::from("[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&event.json);
    }
    body.push(']');
    body
}

async fn post(subscription: &Subscription, events: &[Arc<TelemetryEvent>]) -> Result<u16, String> {
    let stream = TcpStream::connect(subscription.address)
        .await
        .map_err(|e| format!("connect to {}: {e}", subscription.address))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let request = http::Request::post(subscription.path.as_str())
        .header(http::header::HOST, subscription.host_header.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json_array(events))))
        .map_err(|e| format!("build request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("POST {}: {e}", subscription.uri))?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("POST {} returned {status}", subscription.uri))
    }
}

async fn write_ndjson(
    subscription: &Subscription,
    tcp: &mut Option<TcpStream>,
    events: &[Arc<TelemetryEvent>],
) -> Result<u16, String> {
    if tcp.is_none() {
        let stream = TcpStream::connect(subscription.address)
            .await
            .map_err(|e| format!("connect to {}: {e}", subscription.address))?;
        *tcp = Some(stream);
    }
    let mut lines = String::new();
    for event in events {
        lines.push_str(&event.json);
        lines.push('\n');
    }
    let stream = tcp.as_mut().ok_or("no TCP connection")?;
    if let Err(error) = stream.write_all(lines.as_bytes()).await {
        *tcp = None;
        return Err(format!("write to {}: {error}", subscription.address));
    }
    Ok(0)
}
