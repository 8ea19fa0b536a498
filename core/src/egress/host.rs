//! Host name normalisation shared by policy parsing and the egress engine, and the parsing of
//! the destination hosts clients send.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Maximum length of a DNS name in its dotted text form, without the trailing dot (RFC 1035).
const MAX_NAME_LENGTH: usize = 253;

/// Maximum length of one DNS label (RFC 1035).
const MAX_LABEL_LENGTH: usize = 63;

/// Normalises a host name for matching: one trailing dot removed, international names converted
/// to their IDNA ASCII (punycode) form, lower case.
///
/// Returns the reason when the name is malformed: empty labels, labels over 63 bytes, a name over
/// 253 bytes, or characters that are not allowed in host names.
pub fn normalize_host(value: &str) -> Result<String, String> {
    let trimmed = value.strip_suffix('.').unwrap_or(value);
    if trimmed.is_empty() {
        return Err("the name is empty".to_owned());
    }

    let ascii = idna::domain_to_ascii_strict(trimmed)
        .or_else(|_| idna::domain_to_ascii(trimmed))
        .map_err(|_| "the name is not a valid international domain name".to_owned())?;
    if ascii.len() > MAX_NAME_LENGTH {
        return Err(format!("the name is {} bytes long, the maximum is {MAX_NAME_LENGTH}", ascii.len()));
    }

    for label in ascii.split('.') {
        if label.is_empty() {
            return Err("the name has an empty label (two dots in a row, or a leading dot)".to_owned());
        }
        if label.len() > MAX_LABEL_LENGTH {
            return Err(format!("the label {label:?} is longer than {MAX_LABEL_LENGTH} bytes"));
        }
        if !label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_') {
            return Err(format!("the label {label:?} contains a character other than letters, digits, '-' and '_'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with '-'"));
        }
    }
    Ok(ascii.to_ascii_lowercase())
}

/// A destination host from a request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A DNS name in the form [`normalize_host`] returns.
    Name(String),
    Address(IpAddr),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Address(address) => address.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("invalid host {host:?}: {reason}")]
    Malformed { host: String, reason: String },

    #[error(
        "invalid host {host:?}: it reads as an IPv4 address in a non-canonical form (octal, hexadecimal, an integer or fewer than four parts); write the address as four decimal numbers"
    )]
    NonCanonicalIpv4 { host: String },
}

/// Parses the host part of a request target or `Host` header: a dotted-quad IPv4 address, a
/// bracketed IPv6 address, or a DNS name.
///
/// A host whose last label is a number (decimal, or hexadecimal with `0x`) is an IPv4 address to
/// browsers and to `inet_aton`, so such a host is accepted only as four decimal parts without
/// leading zeros. Everything else (`127.1`, `0x7f.1`, `2130706433`, `0177.0.0.1`) is rejected and
/// never reaches a resolver. The same check runs again after IDNA mapping, which turns
/// full-width digits into ASCII ones.
pub fn parse_destination(host: &str) -> Result<Destination, HostError> {
    let malformed = |reason: &str| HostError::Malformed { host: host.to_owned(), reason: reason.to_owned() };

    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(|| malformed("an IPv6 address lacks its closing ']'"))?;
        let address: Ipv6Addr = inner.parse().map_err(|_| malformed("the text in brackets is not an IPv6 address"))?;
        return Ok(Destination::Address(IpAddr::V6(address)));
    }
    if host.contains(':') {
        return Err(malformed("an IPv6 address must be written in brackets"));
    }

    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if let Ok(address) = trimmed.parse::<Ipv4Addr>() {
        return Ok(Destination::Address(IpAddr::V4(address)));
    }
    if ends_in_number(trimmed) {
        return Err(HostError::NonCanonicalIpv4 { host: host.to_owned() });
    }

    let name = normalize_host(host).map_err(|reason| HostError::Malformed { host: host.to_owned(), reason })?;
    if name.parse::<Ipv4Addr>().is_ok() || ends_in_number(&name) {
        return Err(HostError::NonCanonicalIpv4 { host: host.to_owned() });
    }
    Ok(Destination::Name(name))
}

/// Whether the last label is all decimal digits, or `0x` followed by hexadecimal digits: the
/// WHATWG URL rule for hosts that parse as IPv4.
fn ends_in_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    if !last.is_empty() && last.bytes().all(|byte| byte.is_ascii_digit()) {
        return true;
    }
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|byte| byte.is_ascii_hexdigit()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_addresses_parsed() {
        assert_eq!(parse_destination("192.0.2.1").unwrap(), Destination::Address("192.0.2.1".parse().unwrap()));
        assert_eq!(parse_destination("[::1]").unwrap(), Destination::Address("::1".parse().unwrap()));
        assert_eq!(parse_destination("Example.COM.").unwrap(), Destination::Name("example.com".to_owned()));
    }

    #[test]
    fn non_canonical_ipv4_rejected() {
        let cases = [
            "127.1",
            "127.0.1",
            "2130706433",
            "0x7f000001",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.0.0.01",
            "127.000.000.001",
            "1.2.3.4.5",
            "example.123",
            "example.0x1f",
            "\u{ff11}\u{ff12}\u{ff17}.0.0.1",
            "１２７.０.０.１",
        ];
        for host in cases {
            assert!(parse_destination(host).is_err(), "{host:?} accepted");
        }
    }

    #[test]
    fn malformed_destinations_rejected() {
        for host in ["", "::1", "[::1", "[127.0.0.1]", "a b", "a%2eb", "[fe80::1%25eth0]", "exa mple.com"] {
            assert!(parse_destination(host).is_err(), "{host:?} accepted");
        }
    }

    #[test]
    fn trailing_dot_and_case_normalised() {
        assert_eq!(normalize_host("API.Example.com.").unwrap(), "api.example.com");
    }

    #[test]
    fn international_name_becomes_punycode() {
        assert_eq!(normalize_host("bücher.example").unwrap(), "xn--bcher-kva.example");
    }

    #[test]
    fn malformed_names_rejected() {
        for name in ["", ".", "a..b", "-a.com", "a b.com", "a.com..", &"x".repeat(64)] {
            assert!(normalize_host(name).is_err(), "{name:?} accepted");
        }
    }
}
