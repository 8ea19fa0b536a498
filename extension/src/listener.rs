//! The Telemetry API destination: an HTTP server that receives batches of platform events.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// Listens on `address` and sends every received event (one element of a POSTed JSON array) to
/// the returned channel. Returns the bound address.
pub async fn start(address: SocketAddr) -> Result<(SocketAddr, mpsc::UnboundedReceiver<serde_json::Value>), ApiError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ApiError::TelemetryListen { address: address.to_string(), source })?;
    let bound =
        listener.local_addr().map_err(|source| ApiError::TelemetryListen { address: address.to_string(), source })?;
    let (sender, receiver) = mpsc::unbounded_channel();

    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a telemetry connection");
                    continue;
                }
            };
            let sender = sender.clone();
            let service = service_fn(move |request| receive(request, sender.clone()));
            tokio::spawn(async move {
                if let Err(error) =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
                {
                    tracing::debug!(%error, "telemetry connection ended with an error");
                }
            });
        }
    });
    Ok((bound, receiver))
}

async fn receive(
    request: Request<Incoming>,
    sender: mpsc::UnboundedSender<serde_json::Value>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, "failed to read a telemetry batch");
            return Ok(status(StatusCode::BAD_REQUEST));
        }
    };

    match serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
        Ok(events) => {
            for event in events {
                let _ = sender.send(event);
            }
            Ok(status(StatusCode::OK))
        }
        Err(error) => {
            tracing::warn!(%error, bytes = body.len(), "invalid telemetry batch");
            Ok(status(StatusCode::BAD_REQUEST))
        }
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}
