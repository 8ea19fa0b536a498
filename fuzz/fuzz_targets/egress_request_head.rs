//! Fuzzes the egress proxy's request-head parser with arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_core::egress::proxy::head::{self, BodyFraming, Target};

/// The proxy's default head limit.
const MAX_HEAD_BYTES: usize = 32 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(Some((head, length))) = head::parse(data, MAX_HEAD_BYTES) else {
        return;
    };

    assert!(length <= data.len());
    assert!(length <= MAX_HEAD_BYTES);
    assert!(head.minor_version <= 1);
    assert_ne!(head.target.authority().port, 0);
    if let Target::Tunnel(_) = head.target {
        assert_eq!(head.method, http::Method::CONNECT);
    }

    // Accepted framing is never ambiguous.
    let has_length = head.headers.contains_key(http::header::CONTENT_LENGTH);
    let has_coding = head.headers.contains_key(http::header::TRANSFER_ENCODING);
    assert!(!has_length || !has_coding, "Content-Length and Transfer-Encoding both accepted");
    if head.body == BodyFraming::Chunked {
        assert!(has_coding);
        assert_eq!(head.minor_version, 1);
    }
    assert!(head.headers.get_all(http::header::HOST).iter().count() <= 1);
});
