//! `CONNECT` tunnels.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::client::{write_error, ClientConnection};
use super::head::RequestHead;
use super::report::{self, DecisionRecord};
use super::route::{self, Refusal};
use super::Shared;

/// Bytes copied per read inside a tunnel. The buffer is allocated only while data flows, so an
/// idle tunnel has no copy buffer.
const COPY_CHUNK: usize = 16 * 1024;

/// Decides a `CONNECT` request and, when allowed, relays bytes both ways until either side
/// closes.
pub(super) async fn run(shared: &Shared, connection: ClientConnection, head: RequestHead) {
    let started = Instant::now();
    let engine = shared.policy.engine();
    let authority = head.target.authority();
    let ClientConnection { reader, mut writer, address: client } = connection;
    let mut record = DecisionRecord::pending(client, &head.method, authority, &engine, started);

    let route = match route::route(shared, &engine, authority).await {
        Ok(route) => route,
        Err(Refusal { status, verdict, address, message }) => {
            record.verdict = verdict;
            record.address = address;
            record.status = Some(status.as_u16());
            report::decision(&shared.telemetry, &record);
            let _ = write_error(&mut writer, status, &message).await;
            return;
        }
    };
    record.verdict = route.verdict;
    record.address = Some(route.address);
    record.audited = route.audited;

    let upstream = match tokio::time::timeout(shared.limits.connect_timeout, TcpStream::connect(route.address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, address = %route.address, "upstream connect failed");
            record.status = Some(502);
            record.error_type = Some("connect_failed");
            report::decision(&shared.telemetry, &record);
            let _ = write_error(
                &mut writer,
                StatusCode::BAD_GATEWAY,
                &format!("failed to connect to {}: {error}", route.address),
            )
            .await;
            return;
        }
        Err(_) => {
            record.status = Some(504);
            record.error_type = Some("connect_timeout");
            report::decision(&shared.telemetry, &record);
            let _ = write_error(
                &mut writer,
                StatusCode::GATEWAY_TIMEOUT,
                &format!("connecting to {} timed out", route.address),
            )
            .await;
            return;
        }
    };
    let _ = upstream.set_nodelay(true);

    if let Err(error) = writer.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await {
        tracing::debug!(%error, "client went away before the tunnel opened");
        return;
    }
    record.status = Some(200);

    // Relay both ways until both sides closed, or until no byte moved for the idle timeout.
    let (client_read, leftover) = reader.into_parts();
    let (upstream_read, upstream_write) = upstream.into_split();
    let activity = Activity::new();
    let relay = async {
        tokio::join!(
            copy(client_read, upstream_write, leftover, &activity.sent, &activity),
            copy(upstream_read, writer, Bytes::new(), &activity.received, &activity),
        )
    };
    tokio::select! {
        _ = relay => {}
        () = activity.idle_for(shared.limits.tunnel_idle_timeout) => {
            tracing::debug!(timeout = ?shared.limits.tunnel_idle_timeout, "idle tunnel closed");
            record.error_type = Some("tunnel_idle_timeout");
        }
    }
    record.bytes_sent = activity.sent.load(Ordering::Relaxed);
    record.bytes_received = activity.received.load(Ordering::Relaxed);
    report::decision(&shared.telemetry, &record);
}

/// Byte counts of a tunnel and the time its last byte moved.
#[derive(Debug)]
struct Activity {
    sent: AtomicU64,
    received: AtomicU64,
    started: Instant,
    /// Milliseconds from `started` to the last byte copied.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(elapsed, Ordering::Relaxed);
    }

    /// Completes once no byte moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// Copies `first` and then everything `from` yields to `to`, and shuts down `to`'s write side at
/// the end of stream. Adds the bytes copied to `copied`.
async fn copy(from: OwnedReadHalf, mut to: OwnedWriteHalf, first: Bytes, copied: &AtomicU64, activity: &Activity) {
    if !first.is_empty() {
        if to.write_all(&first).await.is_err() {
            return;
        }
        copied.fetch_add(first.len() as u64, Ordering::Relaxed);
        activity.touch();
    }
    drop(first);

    loop {
        if from.readable().await.is_err() {
            break;
        }
        let mut buffer = vec![0u8; COPY_CHUNK];
        match read_ready(&from, &mut buffer) {
            Ok(Some(0)) | Err(_) => break,
            Ok(Some(length)) => {
                if to.write_all(&buffer[..length]).await.is_err() {
                    break;
                }
                copied.fetch_add(length as u64, Ordering::Relaxed);
                activity.touch();
            }
            Ok(None) => continue,
        }
    }
    let _ = to.shutdown().await;
}

/// Reads what is ready without waiting: `Ok(None)` when nothing was.
fn read_ready(from: &OwnedReadHalf, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    match from.try_read(buffer) {
        Ok(length) => Ok(Some(length)),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(error) => Err(error),
    }
}
