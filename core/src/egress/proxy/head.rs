//! Parsing and validation of proxy request heads.
//!
//! The proxy reads request heads itself, rather than through a server library, because it must
//! see every framing header as the client sent it: a request with both `Content-Length` and
//! `Transfer-Encoding`, with differing `Content-Length` values, or with a transfer coding other
//! than `chunked` is rejected here, before anything is forwarded.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::egress::host::{parse_destination, Destination};

/// The maximum number of header fields in one request head.
pub const MAX_HEADERS: usize = 100;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub host: Destination,
    pub port: u16,
}

/// The request target of a proxy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `CONNECT host:port`.
    Tunnel(Authority),
    /// `GET http://host:port/path`: the authority and the origin-form path with its query.
    Forward { authority: Authority, path: String },
}

impl Target {
    pub fn authority(&self) -> &Authority {
        match self {
            Self::Tunnel(authority) | Self::Forward { authority, .. } => authority,
        }
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// A parsed, validated request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    pub target: Target,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: HeaderMap,
    pub body: BodyFraming,
    /// Whether the connection closes after this request (HTTP/1.0 without keep-alive, or
    /// `Connection: close`).
    pub close: bool,
    pub expect_continue: bool,
}

/// Why a request head was rejected; every variant is answered with 400 except
/// [`HeadError::TooLarge`] (431).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is larger than {limit} bytes")]
    TooLarge { limit: usize },

    #[error("the request head has more than {MAX_HEADERS} header fields")]
    TooManyHeaders,

    #[error("malformed request head: {0}")]
    Syntax(String),

    #[error("unsupported HTTP version 1.{0}")]
    Version(u8),

    #[error("invalid request target {target:?}: {reason}")]
    Target { target: String, reason: String },

    #[error("the request has both Content-Length and Transfer-Encoding")]
    LengthAndChunked,

    #[error("invalid Content-Length {0:?}: write one decimal number")]
    InvalidLength(String),

    #[error("the request has Content-Length values that differ")]
    ConflictingLengths,

    #[error("unsupported Transfer-Encoding {0:?}: only a single \"chunked\" coding is accepted")]
    TransferEncoding(String),

    #[error("the Host header {host:?} names another destination than the request target")]
    HostMismatch { host: String },

    #[error("the request has more than one Host header")]
    DuplicateHost,
}

/// Parses the head at the start of `buffer`.
///
/// Returns `Ok(None)` while the head is incomplete, and otherwise the head with the number of
/// bytes it took. `max_bytes` bounds the head; a longer one is [`HeadError::TooLarge`] even
/// when it is still incomplete.
pub fn parse(buffer: &[u8], max_bytes: usize) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut fields);
    let status = request.parse(buffer).map_err(|error| match error {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        other => HeadError::Syntax(other.to_string()),
    });
    let length = match status? {
        httparse::Status::Complete(length) if length <= max_bytes => length,
        httparse::Status::Partial if buffer.len() <= max_bytes => return Ok(None),
        _ => return Err(HeadError::TooLarge { limit: max_bytes }),
    };

    let method = request.method.unwrap_or_default();
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Syntax(format!("invalid method {method:?}")))?;
    let minor_version = request.version.unwrap_or_default();
    if minor_version > 1 {
        return Err(HeadError::Version(minor_version));
    }
    let target = request.path.unwrap_or_default();
    let target = parse_target(&method, target)?;

    let mut headers = HeaderMap::with_capacity(request.headers.len());
    for field in request.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Syntax(format!("invalid header name {:?}", field.name)))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| HeadError::Syntax(format!("invalid value in header {:?}", field.name)))?;
        headers.append(name, value);
    }

    let body = body_framing(&headers, minor_version)?;
    check_host_header(&headers, &target)?;
    let close = wants_close(&headers, minor_version);
    let expect_continue =
        headers.get(http::header::EXPECT).is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));

    let head = RequestHead { method, target, minor_version, headers, body, close, expect_continue };
    Ok(Some((head, length)))
}

fn parse_target(method: &Method, target: &str) -> Result<Target, HeadError> {
    let invalid = |reason: &str| HeadError::Target { target: target.to_owned(), reason: reason.to_owned() };

    if method == Method::CONNECT {
        return parse_authority(target, None).map(Target::Tunnel).map_err(|reason| invalid(&reason));
    }

    let Some(rest) = strip_prefix_ignore_case(target, "http://") else {
        return Err(if target.starts_with('/') {
            invalid("this is a forward proxy: send the absolute URL (http://host/path) or use CONNECT")
        } else if strip_prefix_ignore_case(target, "https://").is_some() {
            invalid("the proxy does not originate TLS: use CONNECT for https URLs")
        } else {
            invalid("only absolute http:// URLs and CONNECT are accepted")
        });
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if path.contains('#') {
        return Err(invalid("a request target cannot carry a fragment"));
    }

    let authority = parse_authority(authority, Some(80)).map_err(|reason| invalid(&reason))?;
    let path = match path.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_owned(),
    };
    Ok(Target::Forward { authority, path })
}

/// Parses `host[:port]`, with the port required when `default_port` is `None`.
fn parse_authority(text: &str, default_port: Option<u16>) -> Result<Authority, String> {
    if text.contains('@') {
        return Err("user information (user@host) is not accepted in a proxy request".to_owned());
    }

    let (host, port) = match text.rfind(':') {
        // A colon inside brackets belongs to an IPv6 address.
        Some(colon) if !text[colon..].contains(']') => (&text[..colon], Some(&text[colon + 1..])),
        _ => (text, None),
    };
    let port = match (port, default_port) {
        (Some(port), _) => parse_port(port)?,
        (None, Some(default)) => default,
        (None, None) => return Err("the port is missing: write host:port".to_owned()),
    };
    let host = parse_destination(host).map_err(|error| error.to_string())?;
    Ok(Authority { host, port })
}

/// Parses a port from 1 to 65535 written as plain decimal digits.
fn parse_port(text: &str) -> Result<u16, String> {
    let invalid = || format!("invalid port {text:?}: write a number from 1 to 65535");
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        _ => Err(invalid()),
    }
}

fn body_framing(headers: &HeaderMap, minor_version: u8) -> Result<BodyFraming, HeadError> {
    let mut length = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > 19 || !trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(HeadError::InvalidLength(text));
        }
        let parsed: u64 = trimmed.parse().map_err(|_| HeadError::InvalidLength(text.clone()))?;
        match length {
            Some(previous) if previous != parsed => return Err(HeadError::ConflictingLengths),
            _ => length = Some(parsed),
        }
    }

    let mut codings = headers.get_all(http::header::TRANSFER_ENCODING).iter();
    let chunked = match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(value), None) if value.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => true,
        (Some(value), _) => {
            return Err(HeadError::TransferEncoding(String::from_utf8_lossy(value.as_bytes()).into_owned()))
        }
    };
    if chunked && minor_version == 0 {
        return Err(HeadError::TransferEncoding("chunked in an HTTP/1.0 request".to_owned()));
    }

    match (length, chunked) {
        (Some(_), true) => Err(HeadError::LengthAndChunked),
        (Some(0), false) | (None, false) => Ok(BodyFraming::None),
        (Some(length), false) => Ok(BodyFraming::Length(length)),
        (None, true) => Ok(BodyFraming::Chunked),
    }
}

/// Checks that a `Host` header, when present, names the request target's host and port.
fn check_host_header(headers: &HeaderMap, target: &Target) -> Result<(), HeadError> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return match headers.contains_key(http::header::HOST) {
            true => Err(HeadError::DuplicateHost),
            false => Ok(()),
        };
    };

    let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
    let mismatch = || HeadError::HostMismatch { host: text.clone() };
    // For an http URL, a Host header without a port names the scheme's default port (RFC 9110,
    // section 7.2). CONNECT has no scheme, so clients send the tunnel's host alone, for its port.
    let default_port = match target {
        Target::Forward { .. } => 80,
        Target::Tunnel(authority) => authority.port,
    };
    let authority = parse_authority(text.trim(), Some(default_port)).map_err(|_| mismatch())?;
    if authority != *target.authority() {
        return Err(mismatch());
    }
    Ok(())
}

fn wants_close(headers: &HeaderMap, minor_version: u8) -> bool {
    let tokens = || {
        headers
            .get_all(http::header::CONNECTION)
            .iter()
            .chain(headers.get_all("proxy-connection"))
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .map(|token| token.trim_ascii())
    };
    if tokens().any(|token| token.eq_ignore_ascii_case(b"close")) {
        return true;
    }
    minor_version == 0 && !tokens().any(|token| token.eq_ignore_ascii_case(b"keep-alive"))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<RequestHead, HeadError> {
        parse(text.as_bytes(), 16 * 1024).map(|parsed| parsed.expect("complete head").0)
    }

    #[test]
    fn absolute_form_parsed() {
        let head = parse_text("GET http://Example.com:8080?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n").unwrap();
        let Target::Forward { authority, path } = head.target else { panic!("not a forward target") };
        assert_eq!(authority.host, Destination::Name("example.com".to_owned()));
        assert_eq!(authority.port, 8080);
        assert_eq!(path, "/?q=1");
        assert_eq!(head.body, BodyFraming::None);
    }

    #[test]
    fn connect_port_range_checked() {
        for port in ["0", "65536", "99999", "", "+80", "8a", "-1"] {
            let text = format!("CONNECT example.com:{port} HTTP/1.1\r\n\r\n");
            assert!(matches!(parse_text(&text), Err(HeadError::Target { .. })), "port {port:?} accepted");
        }
        let head = parse_text("CONNECT [::1]:65535 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(head.target.authority().port, 65535);
    }

    #[test]
    fn framing_conflicts_rejected() {
        let cases = [
            ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", HeadError::LengthAndChunked),
            ("Content-Length: 5\r\nContent-Length: 6\r\n", HeadError::ConflictingLengths),
            ("Content-Length: 5, 6\r\n", HeadError::InvalidLength("5, 6".to_owned())),
            ("Content-Length: -1\r\n", HeadError::InvalidLength("-1".to_owned())),
            ("Transfer-Encoding: gzip, chunked\r\n", HeadError::TransferEncoding("gzip, chunked".to_owned())),
        ];
        for (fields, expected) in cases {
            let text = format!("POST http://example.com/ HTTP/1.1\r\n{fields}\r\n");
            assert_eq!(parse_text(&text).unwrap_err(), expected, "{fields:?}");
        }
    }

    #[test]
    fn host_header_must_match_target() {
        let text = "GET http://example.com/ HTTP/1.1\r\nHost: internal.example\r\n\r\n";
        assert!(matches!(parse_text(text), Err(HeadError::HostMismatch { .. })));
        let text = "GET http://example.com/ HTTP/1.1\r\nHost: example.com:81\r\n\r\n";
        assert!(matches!(parse_text(text), Err(HeadError::HostMismatch { .. })));
        let text = "GET http://example.com/ HTTP/1.1\r\nHost: EXAMPLE.com.\r\n\r\n";
        assert!(parse_text(text).is_ok());
        let text = "GET http://example.com:8080/ HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert!(matches!(parse_text(text), Err(HeadError::HostMismatch { .. })));
        let text = "GET http://example.com:8080/ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n";
        assert!(parse_text(text).is_ok());
    }

    #[test]
    fn connect_host_without_port() {
        let text = "CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert!(parse_text(text).is_ok());
        let text = "CONNECT example.com:8443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
        assert!(matches!(parse_text(text), Err(HeadError::HostMismatch { .. })));
    }

    #[test]
    fn origin_form_and_userinfo_rejected() {
        for target in ["/path", "https://example.com/", "http://user@example.com/", "http://example.com/#x"] {
            let text = format!("GET {target} HTTP/1.1\r\n\r\n");
            assert!(matches!(parse_text(&text), Err(HeadError::Target { .. })), "{target}");
        }
    }

    #[test]
    fn oversized_head_rejected_before_complete() {
        let text = format!("GET http://example.com/ HTTP/1.1\r\nX: {}", "a".repeat(200));
        assert_eq!(parse(text.as_bytes(), 100).unwrap_err(), HeadError::TooLarge { limit: 100 });
        assert!(parse(b"GET http://exa", 100).unwrap().is_none());
    }
}
