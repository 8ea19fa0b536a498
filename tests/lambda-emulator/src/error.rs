use std::path::PathBuf;

/// Failures of the emulator itself, as opposed to failures of the processes it runs, which are
/// reported through [`crate::InitReport`] and [`crate::InvokeOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to bind the Runtime API listener on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },

    #[error("failed to read the extensions directory {path}: {source}")]
    ReadExtensionsDir { path: PathBuf, source: std::io::Error },

    #[error("failed to start process {program:?}: {source}; check that it exists and is executable")]
    Spawn { program: String, source: std::io::Error },

    #[error("the runtime command is empty; pass the runtime executable and its arguments")]
    EmptyRuntimeCommand,

    #[error("the sandbox cannot take invokes because it is {state}")]
    NotReady { state: &'static str },

    #[error("invalid configuration value for {name}: {message}")]
    InvalidConfig { name: &'static str, message: String },
}
