//! The egress proxy server.
