//! The HTTP server behind `AWS_LAMBDA_RUNTIME_API`: Runtime, Extensions and Telemetry APIs.

mod extensions;
mod runtime;
mod telemetry;

pub(crate) use runtime::result_body as runtime_result_body;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::record::RecordKind;
use crate::state::Sandbox;

pub(crate) type HttpResponse = Response<Full<Bytes>>;

pub(crate) const RUNTIME_PREFIX: &str = "/2018-06-01/runtime";
pub(crate) const EXTENSION_PREFIX: &str = "/2020-01-01/extension";
pub(crate) const TELEMETRY_PATH: &str = "/2022-07-01/telemetry";

/// Accepts connections until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, sandbox: Arc<Sandbox>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed on the Runtime API listener");
                continue;
            }
        };
        let sandbox = sandbox.clone();
        let service = service_fn(move |request| {
            let sandbox = sandbox.clone();
            async move { Ok::<_, Infallible>(handle(&sandbox, request).await) }
        });
        let span = tracing::debug_span!("runtime_api_connection", %peer);
        tokio::spawn(
            async move {
                // Title case, as Lambda's Go server sends them: some clients compare header
                // names case-sensitively.
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .title_case_headers(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "Runtime API connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
}

/// A parsed request: what the handlers need, with the body read.
pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn handle(sandbox: &Arc<Sandbox>, request: Request<Incoming>) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequestFormat",
                &format!("failed to read the request body: {error}"),
            )
        }
    };
    let request = ApiRequest { method: parts.method, path: parts.uri.path().to_owned(), headers: parts.headers, body };

    let (response, subject) = route(sandbox, &request).await;

    sandbox.record(
        RecordKind::ApiRequest,
        subject.as_deref(),
        json!({
            "method": request.method.as_str(),
            "path": request.path,
            "status": response.status().as_u16(),
        }),
    );
    response
}

/// Dispatches to the handler; returns the response and the caller's name when known.
async fn route(sandbox: &Arc<Sandbox>, request: &ApiRequest) -> (HttpResponse, Option<String>) {
    let path = request.path.as_str();
    let method = &request.method;
    if let Some(rest) = path.strip_prefix(RUNTIME_PREFIX) {
        let subject = Some("runtime".to_owned());
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let response = match (method, segments.as_slice()) {
            (&Method::GET, ["invocation", "next"]) => runtime::next(sandbox).await,
            (&Method::POST, ["invocation", id, "response"]) => runtime::response(sandbox, id, request),
            (&Method::POST, ["invocation", id, "error"]) => runtime::error(sandbox, id, request),
            (&Method::POST, ["init", "error"]) => runtime::init_error(sandbox, request),
            (_, ["invocation", "next"] | ["invocation", _, "response" | "error"] | ["init", "error"]) => {
                method_not_allowed(method, path)
            }
            _ => not_found(path),
        };
        return (response, subject);
    }
    if let Some(rest) = path.strip_prefix(EXTENSION_PREFIX) {
        return match (method, rest) {
            (&Method::POST, "/register") => extensions::register(sandbox, request),
            (&Method::GET, "/event/next") => extensions::next(sandbox, request).await,
            (&Method::POST, "/init/error") => extensions::report_error(sandbox, request, true),
            (&Method::POST, "/exit/error") => extensions::report_error(sandbox, request, false),
            (_, "/register" | "/event/next" | "/init/error" | "/exit/error") => {
                (method_not_allowed(method, path), None)
            }
            _ => (not_found(path), None),
        };
    }
    if path.trim_end_matches('/') == TELEMETRY_PATH {
        return match *method {
            Method::PUT => telemetry::subscribe(sandbox, request),
            _ => (method_not_allowed(method, path), None),
        };
    }
    (not_found(path), None)
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// An error response before it is rendered; small enough to return in a `Result`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self { status, error_type, message: message.into() }
    }

    pub(crate) fn into_response(self) -> HttpResponse {
        error_response(self.status, self.error_type, &self.message)
    }
}

/// Builds an error response with the body shape of the Runtime and Extensions APIs.
pub(crate) fn error_response(status: StatusCode, error_type: &str, message: &str) -> HttpResponse {
    json_response(status, &json!({ "errorMessage": message, "errorType": error_type }))
}

/// `202 Accepted` with the status body of the Runtime and Extensions APIs.
pub(crate) fn accepted() -> HttpResponse {
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

fn not_found(path: &str) -> HttpResponse {
    error_response(StatusCode::NOT_FOUND, "NotFound", &format!("no API at {path}"))
}

fn method_not_allowed(method: &Method, path: &str) -> HttpResponse {
    error_response(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &format!("{method} is not allowed on {path}"))
}
