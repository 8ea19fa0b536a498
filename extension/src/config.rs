//! Configuration from the function's environment variables.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

/// Port of the egress proxy on 127.0.0.1 when `PALISADE_PROXY_PORT` is unset. palisade-wrap
/// reads the same variable and default to point the function at the proxy.
pub const DEFAULT_PROXY_PORT: u16 = 3128;

/// No wait for span export before `/next` by default: waiting up to 50 ms raised the p99 added
/// latency per invoke from 0.9 ms to 3.7 ms in `bench/lambda/run.sh`, and exports already run on
/// their own thread as soon as an invoke's `platform.report` arrives.
pub const DEFAULT_FLUSH_TIMEOUT_MS: u64 = 0;

/// Settings of one extension run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PALISADE_PROXY_PORT`.
    pub proxy_port: u16,
    /// `PALISADE_TELEMETRY_PORT`: the Telemetry API destination port; 0 picks a free one.
    pub telemetry_port: u16,
    /// `PALISADE_MANIFEST`: the integrity manifest, instead of the default locations.
    pub manifest: Option<PathBuf>,
    /// `PALISADE_INTEGRITY_PREFIX`: where `/var/task` and `/opt` are found, for tests.
    pub integrity_prefix: Option<PathBuf>,
    /// `PALISADE_FLUSH_TIMEOUT_MS`: how long the extension waits for span export before `/next`;
    /// zero does not wait.
    pub flush_timeout: Duration,
    /// `PALISADE_EXPORT_TIMEOUT_MS`: the bound on one OTLP export request.
    pub export_timeout: Duration,
    /// `PALISADE_SPAN_QUEUE`: spans waiting for export before new ones are dropped.
    pub span_queue: usize,
    /// `PALISADE_PROCESS_SCAN_MS`: interval of the process scan.
    pub process_scan: Duration,
}

impl Config {
    /// Reads the variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            proxy_port: number("PALISADE_PROXY_PORT", DEFAULT_PROXY_PORT)?,
            telemetry_port: number("PALISADE_TELEMETRY_PORT", 0)?,
            manifest: path("PALISADE_MANIFEST"),
            integrity_prefix: path("PALISADE_INTEGRITY_PREFIX"),
            flush_timeout: Duration::from_millis(number("PALISADE_FLUSH_TIMEOUT_MS", DEFAULT_FLUSH_TIMEOUT_MS)?),
            export_timeout: Duration::from_millis(number("PALISADE_EXPORT_TIMEOUT_MS", 1_000)?),
            span_queue: number("PALISADE_SPAN_QUEUE", 256)?,
            process_scan: Duration::from_millis(number::<u64>("PALISADE_PROCESS_SCAN_MS", 5)?.max(1)),
        })
    }

    /// The egress proxy's listen address.
    pub fn proxy_address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.proxy_port))
    }

    /// The Telemetry API listener: every address, because the destination host
    /// `sandbox.localdomain` resolves to the execution environment's own address.
    pub fn telemetry_address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.telemetry_port))
    }
}

fn number<T: std::str::FromStr>(variable: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().map_err(|error: T::Err| ConfigError::Variable {
            variable,
            value: value.clone(),
            reason: error.to_string(),
        }),
        _ => Ok(default),
    }
}

fn path(variable: &str) -> Option<PathBuf> {
    std::env::var_os(variable).filter(|value| !value.is_empty()).map(PathBuf::from)
}
