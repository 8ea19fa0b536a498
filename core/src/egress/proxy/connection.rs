//! One client connection: a loop of request heads, each forwarded or turned into a tunnel.

use std::net::SocketAddr;

use http::StatusCode;
use tokio::net::TcpStream;
use tracing::Instrument;

use super::client::{write_error, ClientConnection, ClientReader, ReadHeadError};
use super::head::{HeadError, Target};
use super::{forward, report, tunnel, Shared};

/// Serves requests on one client connection until it closes, fails or becomes a tunnel that ends.
pub(super) async fn serve(shared: &Shared, stream: TcpStream, client: SocketAddr) {
    let span = tracing::debug_span!("connection", %client);
    async move {
        let (read, write) = stream.into_split();
        let mut connection = ClientConnection { reader: ClientReader::new(read), writer: write, address: client };
        let mut upstream = None;
        let limits = &shared.limits;

        // The first request gets the header timeout to start; later ones may wait the idle timeout.
        let mut wait = limits.header_read_timeout;
        loop {
            let head =
                match connection.reader.read_head(limits.max_header_bytes, wait, limits.header_read_timeout).await {
                    Ok(head) => head,
                    Err(error) => {
                        reject(shared, &mut connection, error).await;
                        return;
                    }
                };
            wait = limits.idle_timeout;

            if let Target::Tunnel(_) = head.target {
                tunnel::run(shared, connection, head).await;
                return;
            }
            if !forward::run(shared, &mut connection, head, &mut upstream).await {
                return;
            }
        }
    }
    .instrument(span)
    .await
}

/// Answers a request head that could not be read, when an answer is due, and counts it.
async fn reject(shared: &Shared, connection: &mut ClientConnection, error: ReadHeadError) {
    let (status, reason) = match &error {
        ReadHeadError::Closed | ReadHeadError::Idle(_) | ReadHeadError::Io(_) => return,
        ReadHeadError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "header-timeout"),
        ReadHeadError::Head(HeadError::TooLarge { .. } | HeadError::TooManyHeaders) => {
            (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "header-too-large")
        }
        ReadHeadError::Head(_) => (StatusCode::BAD_REQUEST, "bad-request"),
    };
    tracing::debug!(%error, status = status.as_u16(), "request rejected");
    report::rejected(&shared.telemetry, reason);
    let _ = write_error(&mut connection.writer, status, &error.to_string()).await;
}

/// Answers a client beyond the connection limit with 503 and closes the connection.
pub(super) async fn reject_busy(shared: &Shared, stream: TcpStream, client: SocketAddr) {
    report::rejected(&shared.telemetry, "connection-limit");
    tracing::debug!(%client, limit = shared.limits.max_connections, "connection limit reached");

    let (_read, mut write) = stream.into_split();
    let message = "the proxy is at its connection limit; retry later";
    let answer = write_error(&mut write, StatusCode::SERVICE_UNAVAILABLE, message);
    // A client that does not read must not hold this task.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), answer).await;
}
