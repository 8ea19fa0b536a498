//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "palisade-sidecar",
    version,
    about = "Palisade's sidecar: enforces the workload policy beside a workload"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the egress allow-list proxy (HTTP forward proxy and CONNECT tunnels).
    Proxy(ProxyArgs),
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The policy file; its `egress` section is enforced. SIGHUP or a change of the file reloads it.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,

    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3128")]
    pub listen: SocketAddr,

    /// Client connections served at once; further clients get 503.
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_connections: usize,

    /// Time allowed for a request head to arrive once it started, for example `10s`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub header_timeout: Duration,

    /// Time a keep-alive connection may wait for its next request, or a body for its next bytes.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub idle_timeout: Duration,

    /// Time a CONNECT tunnel may pass no byte in either direction before it is closed.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = positive_duration)]
    pub tunnel_idle_timeout: Duration,

    /// Maximum size of a request head in bytes; a larger head gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024,
          value_parser = RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024))]
    pub max_header_bytes: usize,

    /// Time allowed to connect to an upstream server.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = positive_duration)]
    pub connect_timeout: Duration,

    /// A DNS server to query instead of those in /etc/resolv.conf; repeat for several.
    #[arg(long = "dns-server", value_name = "ADDR")]
    pub dns_servers: Vec<SocketAddr>,

    /// How often the policy file is checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = positive_duration)]
    pub reload_interval: Duration,

    /// Worker threads of the async runtime; 0 uses one per CPU.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = RangedU64ValueParser::<usize>::new().range(0..=1024))]
    pub threads: usize,
}

/// Parses a duration such as `10s` or `500ms` that is longer than zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() {
        return Err("must be longer than zero, for example 10s".to_owned());
    }
    Ok(duration)
}
