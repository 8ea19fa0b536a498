//! DNS host name normalisation shared by policy parsing and the egress engine.

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

#[cfg(test)]
mod tests {
    use super::*;

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
