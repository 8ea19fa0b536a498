//! The egress proxy: an HTTP/1.1 forward proxy and `CONNECT` tunnel server that enforces the
//! policy's egress rules.
//!
//! Each request goes through the same steps: read and validate the head ([`head`]), decide with
//! the [`Engine`](crate::egress::Engine) of the policy in force, resolve a name once and check
//! every answer, dial only an address that passed, relay, and report the decision as a
//! `palisade.egress.decision` event.

mod body;
mod client;
mod connection;
mod forward;
pub mod head;
mod reload;
mod report;
mod resolve;
mod route;
mod tunnel;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::telemetry::Telemetry;

pub use reload::{PolicyHandle, ReloadOutcome};
pub use resolve::{Resolver, ResolverSettings};

/// Bounds on what one client or all clients together can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Client connections served at once; further clients get 503 and are closed.
    pub max_connections: usize,
    /// Time from the first byte of a request head to its end; past it the client gets 408.
    pub header_read_timeout: Duration,
    /// Time a connection may wait for the next request, or a body for its next bytes.
    pub idle_timeout: Duration,
    /// Time a `CONNECT` tunnel may pass no byte in either direction before it is closed.
    pub tunnel_idle_timeout: Duration,
    /// Maximum size of a request head in bytes; a larger head gets 431.
    pub max_header_bytes: usize,
    /// Time allowed for the TCP connection to an upstream server.
    pub connect_timeout: Duration,
    /// Time allowed for one DNS query.
    pub lookup_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(600),
            max_header_bytes: 32 * 1024,
            connect_timeout: Duration::from_secs(10),
            lookup_timeout: Duration::from_secs(5),
        }
    }
}

/// Settings of a [`Proxy`].
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub limits: Limits,
    pub resolver: ResolverSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("failed to set up the DNS resolver: {0}; check /etc/resolv.conf")]
    Resolver(String),

    #[error("DNS lookup of {name:?} failed: {reason}")]
    Lookup { name: String, reason: String },

    #[error("failed to read the listening address: {0}")]
    LocalAddress(#[source] std::io::Error),
}

/// State shared by every connection of one proxy.
#[derive(Debug)]
struct Shared {
    policy: Arc<PolicyHandle>,
    resolver: Resolver,
    telemetry: Telemetry,
    limits: Limits,
    permits: Arc<Semaphore>,
    /// The addresses the proxy listens on; it never dials them.
    own_addresses: RwLock<Vec<SocketAddr>>,
}

/// An egress proxy; cheap to clone, and every clone serves under the same policy and limits.
#[derive(Debug, Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    pub fn new(policy: Arc<PolicyHandle>, telemetry: Telemetry, config: ProxyConfig) -> Result<Self, ProxyError> {
        let resolver = Resolver::new(&config.resolver, config.limits.lookup_timeout)?;
        let shared = Shared {
            policy,
            resolver,
            telemetry,
            permits: Arc::new(Semaphore::new(config.limits.max_connections)),
            limits: config.limits,
            own_addresses: RwLock::default(),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    pub fn policy(&self) -> &Arc<PolicyHandle> {
        &self.shared.policy
    }

    /// Accepts and serves connections on `listener` until the returned future is dropped.
    ///
    /// Accept errors (such as running out of file descriptors) are logged and retried after a
    /// short pause, so this returns only when the listener's address cannot be read.
    pub async fn serve(&self, listener: TcpListener) -> Result<(), ProxyError> {
        let local = listener.local_addr().map_err(ProxyError::LocalAddress)?;
        self.shared.own_addresses.write().unwrap_or_else(|poisoned| poisoned.into_inner()).push(local);
        tracing::info!(address = %local, "egress proxy listening");

        loop {
            let (stream, client) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed, retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Small request heads and responses go out at once rather than waiting for an ACK.
            let _ = stream.set_nodelay(true);

            let shared = Arc::clone(&self.shared);
            match Arc::clone(&self.shared.permits).try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        connection::serve(&shared, stream, client).await;
                        drop(permit);
                    });
                }
                Err(_) => {
                    tokio::spawn(async move { connection::reject_busy(&shared, stream, client).await });
                }
            }
        }
    }
}
