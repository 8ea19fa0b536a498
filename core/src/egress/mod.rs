//! The egress allow-list engine: host and address matching for outbound connections.

pub mod host;
