//! Name resolution for the proxy.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Name, TokioResolver};

use super::ProxyError;

/// Where the proxy sends DNS queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResolverSettings {
    /// `/etc/resolv.conf` and `/etc/hosts`.
    #[default]
    System,
    /// These name servers over UDP (and TCP for truncated answers), plus `/etc/hosts`.
    NameServers(Vec<SocketAddr>),
}

/// A DNS resolver; each call is one lookup whose answers the caller checks and dials.
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: TokioResolver,
}

impl Resolver {
    pub fn new(settings: &ResolverSettings, timeout: Duration) -> Result<Self, ProxyError> {
        let mut builder = match settings {
            ResolverSettings::System => {
                TokioResolver::builder_tokio().map_err(|error| ProxyError::Resolver(error.to_string()))?
            }
            ResolverSettings::NameServers(servers) => {
                let mut group = NameServerConfigGroup::new();
                for server in servers {
                    group.merge(NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true));
                }
                let config = ResolverConfig::from_parts(None, Vec::new(), group);
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(ResolverOpts::default())
            }
        };

        let options = builder.options_mut();
        options.use_hosts_file = ResolveHosts::Always;
        options.timeout = timeout;
        options.attempts = 2;
        // Answers are cached no longer than their TTL, so a TTL of 0 means a new query each time.
        options.positive_min_ttl = None;
        Ok(Self { inner: builder.build() })
    }

    /// Looks up the A and AAAA addresses of a normalised name, as a fully qualified name so that
    /// no search domain is appended.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ProxyError> {
        let fqdn = Name::from_ascii(format!("{name}."))
            .map_err(|error| ProxyError::Lookup { name: name.to_owned(), reason: error.to_string() })?;
        let lookup = self
            .inner
            .lookup_ip(fqdn)
            .await
            .map_err(|error| ProxyError::Lookup { name: name.to_owned(), reason: error.to_string() })?;
        Ok(lookup.iter().collect())
    }
}
