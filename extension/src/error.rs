use std::path::PathBuf;

use palisade_core::egress::proxy::ProxyError;
use palisade_core::integrity::IntegrityError;
use palisade_core::policy::PolicyError;
use palisade_core::telemetry::TelemetryError;

/// A failed call to the Extensions or Telemetry API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("AWS_LAMBDA_RUNTIME_API is not set; the extension runs only inside Lambda or an emulator of it")]
    NoRuntimeApi,

    #[error("{method} {path} failed: {reason}")]
    Request { method: String, path: String, reason: String },

    #[error("{method} {path} returned HTTP {status}: {body}")]
    Status { method: &'static str, path: String, status: u16, body: String },

    #[error("the register response has no Lambda-Extension-Identifier header")]
    MissingIdentifier,

    #[error("invalid event from {path}: {reason}")]
    InvalidEvent { path: String, reason: String },

    #[error("failed to listen for telemetry on {address}: {source}")]
    TelemetryListen { address: String, source: std::io::Error },
}

/// A configuration problem that keeps protection from starting; reported to Lambda through
/// `/extension/init/error`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Policy(#[from] PolicyError),

    #[error("invalid {variable} {value:?}: {reason}")]
    Variable { variable: &'static str, value: String, reason: String },

    #[error("failed to start the egress proxy on 127.0.0.1:{port}: {reason}; set PALISADE_PROXY_PORT to a free port")]
    Proxy { port: u16, reason: String },

    #[error(transparent)]
    ProxySetup(#[from] ProxyError),

    #[error("failed to load the integrity manifest {}: {source}", path.display())]
    Manifest { path: PathBuf, source: IntegrityError },

    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

impl ConfigError {
    /// The `Lambda-Extension-Function-Error-Type` value, in Lambda's `Category.Reason` form.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Policy(_) => "Palisade.PolicyInvalid",
            Self::Variable { .. } => "Palisade.ConfigInvalid",
            Self::Proxy { .. } | Self::ProxySetup(_) => "Palisade.ProxyUnavailable",
            Self::Manifest { .. } => "Palisade.ManifestInvalid",
            Self::Telemetry(_) => "Palisade.TelemetryInvalid",
        }
    }
}
