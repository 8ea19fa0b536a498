//! Validation of a Telemetry API Subscribe request body.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;

use super::Stream;

/// Schema versions accepted by `PUT /2022-07-01/telemetry`.
pub(crate) const SCHEMA_VERSIONS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];

// Buffering limits from the "Configuring memory usage and buffering" table of the Telemetry API
// page. NOTE: the pages disagree on the maxItems default. That table gives 10,000 and the
// Subscribe reference 1,000 (both give a minimum of 1,000 and a maximum of 10,000), and the
// emulator uses 1,000.
pub(crate) const MAX_ITEMS: (u64, u64, u64) = (1_000, 1_000, 10_000);
pub(crate) const MAX_BYTES: (u64, u64, u64) = (262_144, 262_144, 1_048_576);
pub(crate) const TIMEOUT_MS: (u64, u64, u64) = (1_000, 25, 30_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// POST of a JSON array per batch.
    Http,
    /// Newline-delimited JSON over one TCP connection.
    Tcp,
}

/// A validated subscription.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub schema_version: String,
    pub streams: Vec<Stream>,
    pub protocol: Protocol,
    /// The URI as the extension sent it.
    pub uri: String,
    /// Where the emulator delivers, after mapping the sandbox host name.
    pub address: SocketAddr,
    pub host_header: String,
    pub path: String,
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// The messages of every failed check, joined by `; ` in the response, as in the documented
/// example `URI port is not provided; types should not be empty`.
#[derive(Debug)]
pub(crate) struct SubscriptionError(pub Vec<String>);

/// Validates a Subscribe request body.
pub(crate) fn parse_subscription(
    body: &[u8],
    sandbox_hosts: &BTreeMap<String, IpAddr>,
) -> Result<Subscription, SubscriptionError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| SubscriptionError(vec![format!("request body is not valid JSON: {error}")]))?;
    if !value.is_object() {
        return Err(SubscriptionError(vec!["request body should be a JSON object".to_owned()]));
    }
    let mut errors = Vec::new();

    let schema_version = value["schemaVersion"].as_str().unwrap_or_default().to_owned();
    if schema_version.is_empty() {
        errors.push("schemaVersion should not be empty".to_owned());
    } else if !SCHEMA_VERSIONS.contains(&schema_version.as_str()) {
        errors.push(format!("schemaVersion {schema_version:?} is not supported; use one of {SCHEMA_VERSIONS:?}"));
    }

    let destination = parse_destination(&value["destination"], sandbox_hosts, &mut errors);
    let streams = parse_types(&value["types"], &mut errors);

    let buffering = &value["buffering"];
    if !buffering.is_null() && !buffering.is_object() {
        errors.push("buffering should be an object".to_owned());
    }
    let max_items = parse_limit(buffering, "maxItems", MAX_ITEMS, &mut errors);
    let max_bytes = parse_limit(buffering, "maxBytes", MAX_BYTES, &mut errors);
    let timeout_ms = parse_limit(buffering, "timeoutMs", TIMEOUT_MS, &mut errors);

    match destination {
        Some((protocol, uri, address, host_header, path)) if errors.is_empty() => Ok(Subscription {
            schema_version,
            streams,
            protocol,
            uri,
            address,
            host_header,
            path,
            max_items: max_items as usize,
            max_bytes: max_bytes as usize,
            timeout: Duration::from_millis(timeout_ms),
        }),
        _ => Err(SubscriptionError(errors)),
    }
}

type Destination = (Protocol, String, SocketAddr, String, String);

fn parse_destination(
    destination: &Value,
    sandbox_hosts: &BTreeMap<String, IpAddr>,
    errors: &mut Vec<String>,
) -> Option<Destination> {
    if !destination.is_object() {
        errors.push("destination should not be empty".to_owned());
        return None;
    }
    let protocol = match destination["protocol"].as_str() {
        Some("HTTP") => Some(Protocol::Http),
        Some("TCP") => Some(Protocol::Tcp),
        Some(other) => {
            errors.push(format!("destination protocol {other:?} is invalid; use \"HTTP\" or \"TCP\""));
            None
        }
        None => {
            errors.push("destination protocol should not be empty".to_owned());
            None
        }
    };
    let Some(uri) = destination["URI"].as_str().filter(|u| !u.is_empty()) else {
        errors.push("URI should not be empty".to_owned());
        return None;
    };
    let parsed: http::Uri = match uri.parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(format!("URI {uri:?} is invalid: {error}"));
            return None;
        }
    };
    if protocol == Some(Protocol::Http) && parsed.scheme_str() != Some("http") {
        errors.push(format!("URI {uri:?} should use the http scheme; Lambda does not deliver over HTTPS"));
    }
    let Some(port) = parsed.port_u16() else {
        errors.push("URI port is not provided".to_owned());
        return None;
    };
    let host = parsed.host().unwrap_or_default();
    // NOTE: the documentation says only that Lambda delivers to destinations inside the
    // execution environment. The emulator accepts the mapped sandbox host names and loopback
    // addresses, and rejects every other host so that no telemetry leaves this machine.
    let ip = match sandbox_hosts.get(host) {
        Some(ip) => *ip,
        None => match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) if ip.is_loopback() => ip,
            _ => {
                errors.push(format!(
                    "URI host {host:?} is not inside the execution environment; use {}",
                    sandbox_hosts.keys().cloned().collect::<Vec<_>>().join(" or ")
                ));
                return None;
            }
        },
    };
    let path = parsed.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
    Some((protocol?, uri.to_owned(), SocketAddr::new(ip, port), format!("{host}:{port}"), path))
}

fn parse_types(types: &Value, errors: &mut Vec<String>) -> Vec<Stream> {
    let Some(list) = types.as_array().filter(|l| !l.is_empty()) else {
        errors.push("types should not be empty".to_owned());
        return Vec::new();
    };
    let mut streams = Vec::new();
    for item in list {
        match item.as_str().and_then(Stream::parse) {
            Some(stream) if !streams.contains(&stream) => streams.push(stream),
            Some(_) => {}
            None => errors.push(format!("type {item} is invalid; use \"platform\", \"function\" or \"extension\"")),
        }
    }
    streams
}

fn parse_limit(buffering: &Value, name: &str, (default, min, max): (u64, u64, u64), errors: &mut Vec<String>) -> u64 {
    let value = &buffering[name];
    if value.is_null() {
        return default;
    }
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => n,
        _ => {
            errors.push(format!("buffering {name} {value} is out of range; use an integer from {min} to {max}"));
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn hosts() -> BTreeMap<String, IpAddr> {
        BTreeMap::from([("sandbox.localdomain".to_owned(), IpAddr::V4(Ipv4Addr::LOCALHOST))])
    }

    #[test]
    fn subscription_maps_sandbox_host_and_defaults() {
        let body = br#"{"schemaVersion":"2022-12-13","types":["platform","function"],
            "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/t"}}"#;
        let sub = parse_subscription(body, &hosts()).expect("valid subscription");
        assert_eq!(sub.address, "127.0.0.1:4243".parse().unwrap());
        assert_eq!(sub.path, "/t");
        assert_eq!(sub.max_items, 1_000);
        assert_eq!(sub.max_bytes, 262_144);
        assert_eq!(sub.timeout, Duration::from_millis(1_000));
        assert_eq!(sub.streams, vec![Stream::Platform, Stream::Function]);
    }

    #[test]
    fn subscription_reports_every_error() {
        let body = br#"{"schemaVersion":"2022-07-01","types":[],
            "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#;
        let err = parse_subscription(body, &hosts()).unwrap_err();
        assert_eq!(err.0, vec!["URI port is not provided", "types should not be empty"]);
    }

    #[test]
    fn subscription_rejects_limits_outside_range() {
        for (name, value) in [
            ("maxItems", 999),
            ("maxItems", 10_001),
            ("maxBytes", 262_143),
            ("maxBytes", 1_048_577),
            ("timeoutMs", 24),
            ("timeoutMs", 30_001),
        ] {
            let body = format!(
                r#"{{"schemaVersion":"2022-12-13","types":["platform"],"buffering":{{"{name}":{value}}},
                "destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234"}}}}"#
            );
            let err = parse_subscription(body.as_bytes(), &hosts()).unwrap_err();
            assert_eq!(err.0.len(), 1, "{name}={value}: {:?}", err.0);
            assert!(err.0[0].contains(name), "{:?}", err.0);
        }
    }

    #[test]
    fn subscription_rejects_hosts_outside_sandbox() {
        let body = br#"{"schemaVersion":"2022-12-13","types":["platform"],
            "destination":{"protocol":"HTTP","URI":"http://example.com:80"}}"#;
        let err = parse_subscription(body, &hosts()).unwrap_err();
        assert!(err.0[0].contains("not inside the execution environment"), "{:?}", err.0);
    }
}
