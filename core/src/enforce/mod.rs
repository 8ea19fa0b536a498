//! Enforcement of a policy on the current process: no_new_privs, Landlock and seccomp.
//!
//! Enforcement is prepared first and applied second. Preparing builds the kernel ruleset with every
//! rule and compiles the BPF program, so a policy the kernel rejects fails before anything is
//! applied, and the report describes exactly what the apply step puts in force.

mod bpf;
pub(crate) mod elf;
pub mod landlock;
mod profiles;
mod report;
pub mod seccomp;

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

pub use self::landlock::{Availability, LandlockPlan, ResolvedPath};
pub use self::report::Report;
pub use self::seccomp::{InstallError, SeccompPlan};
use crate::policy::{Enforcement, Policy};

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("built-in seccomp profile {profile} is invalid: {reason}")]
    Profile { profile: &'static str, reason: String },

    #[error("the policy's system call allow-list leaves out execve, so the command cannot be started: remove execve from spec.syscalls.deny")]
    ExecveDenied,

    #[error("cannot compile the seccomp filter: {0}")]
    SeccompCompile(String),

    #[error("cannot install the seccomp filter: {0}")]
    SeccompInstall(String),

    #[error("seccomp filters are not supported on {0}")]
    UnsupportedArchitecture(&'static str),

    #[error("cannot build the Landlock ruleset: {0}")]
    LandlockRuleset(String),

    #[error("the kernel did not enforce the Landlock ruleset")]
    LandlockNotEnforced,

    #[error("cannot open policy path {} for a Landlock rule: {source}", path.display())]
    PolicyPath { path: PathBuf, source: std::io::Error },

    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(nix::errno::Errno),

    #[error("enforcement is strict but this kernel cannot enforce all of the policy: {}; set spec.enforcement to bestEffort to run with what it can enforce", .0.join("; "))]
    StrictUnmet(Vec<String>),
}

/// A policy prepared for this kernel, ready to apply.
#[derive(Debug)]
pub struct Prepared {
    pub landlock: LandlockPlan,
    pub seccomp: SeccompPlan,
    enforcement: Enforcement,
}

impl Prepared {
    /// Prepares `policy` for the running kernel.
    pub fn new(policy: &Policy) -> Result<Self, EnforceError> {
        Self::with_availability(policy, Availability::detect())
    }

    /// Prepares `policy` for the running kernel and a supervisor that gets the listener over
    /// `handoff`; with `spec.syscalls.supervise`, only the supervised filter is compiled.
    pub fn for_supervisor(policy: &Policy, handoff: BorrowedFd<'_>) -> Result<Self, EnforceError> {
        if !policy.spec.syscalls.supervise {
            return Self::new(policy);
        }
        let landlock = LandlockPlan::prepare(&policy.spec, Availability::detect())?;
        let seccomp = SeccompPlan::build_supervised(&policy.spec.syscalls, policy.spec.mode, handoff)?;
        Ok(Self { landlock, seccomp, enforcement: policy.spec.enforcement })
    }

    /// Prepares `policy` as if the kernel offered `availability` of Landlock.
    pub fn with_availability(policy: &Policy, availability: Availability) -> Result<Self, EnforceError> {
        let landlock = LandlockPlan::prepare(&policy.spec, availability)?;
        let seccomp = SeccompPlan::build(&policy.spec.syscalls, policy.spec.mode)?;
        Ok(Self { landlock, seccomp, enforcement: policy.spec.enforcement })
    }

    /// Describes what applying will put in force.
    pub fn report(&self) -> Report {
        Report::new(&self.landlock, &self.seccomp)
    }

    /// Checks `enforcement: strict`: every rule must be enforceable here.
    pub fn check_strict(&self) -> Result<(), EnforceError> {
        if self.enforcement != Enforcement::Strict {
            return Ok(());
        }
        let mut unmet = Vec::new();
        if let Some(reason) = self.landlock.skipped {
            unmet.push(format!("Landlock is not applied ({reason})"));
        }
        if !self.landlock.degraded.is_empty() {
            unmet.push(format!(
                "Landlock ABI {} lacks {}",
                self.landlock.availability.abi(),
                self.landlock.degraded.join(", ")
            ));
        }
        if !self.landlock.paths_missing.is_empty() {
            let paths: Vec<String> =
                self.landlock.paths_missing.iter().map(|path| path.display().to_string()).collect();
            unmet.push(format!("policy paths do not exist: {}", paths.join(", ")));
        }
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(EnforceError::StrictUnmet(unmet))
        }
    }

    /// Applies the policy to this process: no_new_privs, then Landlock on the calling thread,
    /// then the seccomp filter on every thread. Call it from the thread that will exec.
    pub fn apply(mut self) -> Result<Report, EnforceError> {
        nix::sys::prctl::set_no_new_privs().map_err(EnforceError::NoNewPrivs)?;

        self.landlock.apply()?;

        self.seccomp.install()?;
        Ok(Report::new(&self.landlock, &self.seccomp))
    }

    /// Applies the policy like [`apply`](Self::apply) but with the supervised seccomp filter:
    /// calls outside the allow-list wait for whoever reads the returned listener. `handoff` is the
    /// socket the caller sends the listener over (see [`SeccompPlan::install_supervised`]).
    ///
    /// When a filter already in force has a listener (the kernel allows one per filter chain),
    /// the plain filter is installed instead, no listener is returned and the report says so.
    pub fn apply_supervised(mut self, handoff: BorrowedFd<'_>) -> Result<(Report, Option<OwnedFd>), EnforceError> {
        nix::sys::prctl::set_no_new_privs().map_err(EnforceError::NoNewPrivs)?;

        self.landlock.apply()?;

        match self.seccomp.install_supervised(handoff) {
            Ok(listener) => Ok((Report::new(&self.landlock, &self.seccomp), Some(listener))),
            Err(InstallError::Listener(nix::errno::Errno::EBUSY)) => {
                self.seccomp.supervise = false;
                self.seccomp.install()?;
                Ok((Report::new(&self.landlock, &self.seccomp), None))
            }
            Err(InstallError::Listener(errno)) => Err(EnforceError::SeccompInstall(format!(
                "with a notification listener: {errno}; this needs Linux 5.7 or later, or set spec.syscalls.supervise to false"
            ))),
            Err(InstallError::Enforce(error)) => Err(error),
        }
    }
}
