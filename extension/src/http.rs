//! A minimal HTTP/1.1 client over one TCP connection per request, for the Lambda APIs on the
//! loopback Runtime API address.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::ApiError;

/// A response's status, headers and whole body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends one request to `authority` (`host:port`) and reads the whole response. There is no
/// client timeout, because `/next` is a long poll that ends only when Lambda has an event.
pub async fn send(
    authority: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Response, ApiError> {
    let failed = |reason: String| ApiError::Request { method: method.to_string(), path: path.to_owned(), reason };

    let stream = TcpStream::connect(authority).await.map_err(|error| failed(error.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| failed(error.to_string()))?;
    tokio::spawn(connection);

    let mut request = Request::builder().method(method.clone()).uri(path).header("host", authority);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(Full::new(Bytes::from(body))).map_err(|error| failed(error.to_string()))?;

    let response = sender.send_request(request).await.map_err(|error| failed(error.to_string()))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|error| failed(error.to_string()))?.to_bytes();
    Ok(Response { status: parts.status, headers: parts.headers, body })
}
