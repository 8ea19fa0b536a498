//! The egress allow-list engine: host and address matching for outbound connections and, with
//! the `egress-proxy` feature, the HTTP forward proxy that enforces it.
//!
//! [`Engine`] decides; [`proxy::Proxy`] serves HTTP/1.1 forward requests and `CONNECT` tunnels on
//! a listener, resolving names itself and dialling only addresses the engine allowed.

pub mod address;
pub mod host;
#[cfg(feature = "egress-proxy")]
pub mod proxy;
mod rules;

pub use host::{parse_destination, Destination, HostError};
pub use rules::{Action, Engine, NameCheck, Reason, Verdict};
