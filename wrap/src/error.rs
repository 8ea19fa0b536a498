use std::path::PathBuf;
use std::process::ExitCode;

use palisade_core::enforce::EnforceError;
use palisade_core::policy::PolicyError;

/// Exit status for invalid arguments (sysexits EX_USAGE).
pub const EXIT_USAGE: u8 = 64;
/// Exit status for a policy that cannot be enforced (sysexits EX_OSERR).
pub const EXIT_ENFORCEMENT: u8 = 71;
/// Exit status for a missing, unreadable or invalid policy (sysexits EX_CONFIG).
pub const EXIT_POLICY: u8 = 78;
/// Exit status for a command that exists but cannot be executed, as shells use.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit status for a command that was not found, as shells use.
pub const EXIT_NOT_FOUND: u8 = 127;

#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    #[error("{0}")]
    Usage(String),

    #[error(transparent)]
    Policy(#[from] PolicyError),

    #[error(transparent)]
    Enforce(#[from] EnforceError),

    #[error("{}: command not found; give an absolute path or add its directory to PATH", .0.display())]
    NotFound(PathBuf),

    #[error("{}: cannot execute: {reason}", path.display())]
    NotExecutable { path: PathBuf, reason: String },

    #[error("seccomp supervisor: {0}")]
    Supervisor(String),
}

impl WrapError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Policy(_) => EXIT_POLICY,
            Self::Enforce(_) | Self::Supervisor(_) => EXIT_ENFORCEMENT,
            Self::NotFound(_) => EXIT_NOT_FOUND,
            Self::NotExecutable { .. } => EXIT_NOT_EXECUTABLE,
        }
    }

    /// Writes the error as one line on stderr and returns its exit status.
    pub fn report(&self) -> ExitCode {
        eprintln!("palisade-wrap: {self}");
        ExitCode::from(self.exit_code())
    }
}
