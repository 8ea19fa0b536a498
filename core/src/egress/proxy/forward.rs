//! Forwarding absolute-form HTTP requests.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::body::{self, UpstreamBody};
use super::client::{write_error, ClientConnection};
use super::head::{Authority, BodyFraming, RequestHead, Target};
use super::report::{self, DecisionRecord};
use super::route::{self, Refusal};
use super::Shared;

/// Header fields that describe one hop and are never forwarded (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// An upstream HTTP/1.1 connection kept for the next request of the same client connection.
#[derive(Debug)]
pub(super) struct Upstream {
    address: SocketAddr,
    sender: SendRequest<UpstreamBody>,
}

/// Forwards one request and relays its response. Returns whether the client connection can carry
/// another request.
pub(super) async fn run(
    shared: &Shared,
    connection: &mut ClientConnection,
    head: RequestHead,
    upstream: &mut Option<Upstream>,
) -> bool {
    let started = Instant::now();
    let engine = shared.policy.engine();
    let Target::Forward { authority, path } = &head.target else {
        return false;
    };
    let mut record = DecisionRecord::pending(connection.address, &head.method, authority, &engine, started);

    // Decide, then reuse the kept upstream connection only when it goes to the chosen address.
    let route = match route::route(shared, &engine, authority).await {
        Ok(route) => route,
        Err(Refusal { status, verdict, address, message }) => {
            record.verdict = verdict;
            record.address = address;
            record.status = Some(status.as_u16());
            report::decision(&shared.telemetry, &record);
            let _ = write_error(&mut connection.writer, status, &message).await;
            return false;
        }
    };
    record.verdict = route.verdict;
    record.address = Some(route.address);
    record.audited = route.audited;

    let reusable = upstream.take().filter(|kept| kept.address == route.address && kept.sender.is_ready());
    let mut sender = match reusable {
        Some(kept) => kept.sender,
        None => match dial(shared, route.address).await {
            Ok(sender) => sender,
            Err((status, error_type, message)) => {
                record.status = Some(status.as_u16());
                record.error_type = Some(error_type);
                report::decision(&shared.telemetry, &record);
                let _ = write_error(&mut connection.writer, status, &message).await;
                return false;
            }
        },
    };

    if head.expect_continue && connection.writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
        return false;
    }

    // Send the request while the body streams from the client.
    let request = upstream_request(&head, authority, path);
    let (body, frames) = match head.body {
        BodyFraming::None => (UpstreamBody::empty(), None),
        framing => {
            let (body, frames) = UpstreamBody::channel(framing);
            (body, Some(frames))
        }
    };
    let request = request.body(body).expect("the request parts were validated when the head was parsed");
    let idle = shared.limits.idle_timeout;
    let pump = async {
        match frames {
            Some(frames) => body::pump(&mut connection.reader, head.body, frames, idle).await,
            None => Ok(0),
        }
    };
    let (response, pumped) = tokio::join!(sender.send_request(request), pump);

    let response = match (response, pumped) {
        (_, Err(error)) if error.is_framing() => {
            record.status = Some(400);
            record.error_type = Some("invalid_request_body");
            report::decision(&shared.telemetry, &record);
            report::rejected(&shared.telemetry, "bad-request");
            let _ = write_error(&mut connection.writer, StatusCode::BAD_REQUEST, &error.to_string()).await;
            return false;
        }
        (_, Err(error)) => {
            tracing::debug!(%error, "request body read failed");
            record.error_type = Some("client_body_failed");
            report::decision(&shared.telemetry, &record);
            return false;
        }
        (Err(error), Ok(sent)) => {
            record.bytes_sent = sent;
            record.status = Some(502);
            record.error_type = Some("upstream_failed");
            report::decision(&shared.telemetry, &record);
            let _ = write_error(
                &mut connection.writer,
                StatusCode::BAD_GATEWAY,
                &format!("the upstream server failed: {error}"),
            )
            .await;
            return false;
        }
        (Ok(response), Ok(sent)) => {
            record.bytes_sent = sent;
            response
        }
    };
    record.status = Some(response.status().as_u16());

    let client_close = head.close;
    let relayed = write_response(&mut connection.writer, response, &head).await;
    let keep_alive = match relayed {
        Ok((received, response_keeps)) => {
            record.bytes_received = received;
            !client_close && response_keeps
        }
        Err(error) => {
            tracing::debug!(%error, "relaying the response failed");
            record.error_type = Some("response_relay_failed");
            false
        }
    };
    report::decision(&shared.telemetry, &record);

    if keep_alive {
        *upstream = Some(Upstream { address: route.address, sender });
    }
    keep_alive
}

/// Connects to `address` and starts an HTTP/1.1 client connection on it.
async fn dial(
    shared: &Shared,
    address: SocketAddr,
) -> Result<SendRequest<UpstreamBody>, (StatusCode, &'static str, String)> {
    let stream = match tokio::time::timeout(shared.limits.connect_timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            return Err((StatusCode::BAD_GATEWAY, "connect_failed", format!("failed to connect to {address}: {error}")))
        }
        Err(_) => {
            return Err((StatusCode::GATEWAY_TIMEOUT, "connect_timeout", format!("connecting to {address} timed out")))
        }
    };
    let _ = stream.set_nodelay(true);

    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|error| {
        (StatusCode::BAD_GATEWAY, "connect_failed", format!("HTTP handshake with {address} failed: {error}"))
    })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, %address, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Builds the origin-form request sent upstream: hop-by-hop fields removed, `Host` set.
fn upstream_request(head: &RequestHead, authority: &Authority, path: &str) -> http::request::Builder {
    let mut headers = strip_hop_by_hop(&head.headers);
    headers.remove(header::EXPECT);
    if !headers.contains_key(header::HOST) {
        let host = match authority.port {
            80 => authority_host(authority),
            port => format!("{}:{port}", authority_host(authority)),
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, value);
        }
    }

    let mut builder = Request::builder().method(head.method.clone()).uri(path).version(Version::HTTP_11);
    if let Some(target) = builder.headers_mut() {
        *target = headers;
    }
    builder
}

fn authority_host(authority: &Authority) -> String {
    match authority.host {
        crate::egress::Destination::Address(std::net::IpAddr::V6(address)) => format!("[{address}]"),
        ref host => host.to_string(),
    }
}

/// Copies `headers` without hop-by-hop fields and without the fields `Connection` names.
fn strip_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(name) && !named.contains(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// Writes the upstream response to the client. Returns the body bytes relayed and whether the
/// connection can carry another request.
async fn write_response(
    writer: &mut OwnedWriteHalf,
    response: Response<Incoming>,
    request: &RequestHead,
) -> io::Result<(u64, bool)> {
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let no_body = request.method == http::Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    // An HTTP/1.0 client cannot read chunked coding, so an unknown length ends with the connection.
    let chunked = !no_body && length.is_none() && request.minor_version == 1;
    let close = request.close || (!no_body && length.is_none() && !chunked);

    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(
        format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("")).as_bytes(),
    );
    for (name, value) in &strip_hop_by_hop(&parts.headers) {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");

    // The head goes out with the first body frame, so a small response takes one write.
    let mut relayed = 0u64;
    let mut pending = Some(head);
    if !no_body {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(io::Error::other)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            relayed += data.len() as u64;
            let mut out = pending.take().unwrap_or_default();
            encode_body_data(&mut out, &data, chunked);
            writer.write_all(&out).await?;
        }
    }
    let mut out = pending.take().unwrap_or_default();
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        writer.write_all(&out).await?;
    }
    if close {
        writer.shutdown().await?;
    }
    Ok((relayed, !close))
}

/// Appends body data to `out`, as one chunk when `chunked`.
fn encode_body_data(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    }
    out.extend_from_slice(data);
    if chunked {
        out.extend_from_slice(b"\r\n");
    }
}
