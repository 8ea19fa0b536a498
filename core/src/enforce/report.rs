//! What an enforcement puts in force, for the `palisade.policy.applied` event and `policy explain`.

use serde::Serialize;

use super::{Availability, LandlockPlan, SeccompPlan};
use crate::policy::{LoadedPolicy, Mode};
use crate::telemetry::{attributes, names, Event, Severity};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub mode: Mode,
    /// The kernel's Landlock ABI version, 0 when it has none.
    pub landlock_abi: i32,
    /// `enforced`, `partial` (some rights degraded) or `not applied`.
    pub landlock_status: String,
    pub landlock_note: Option<String>,
    pub rights_enforced: Vec<String>,
    pub rights_degraded: Vec<String>,
    pub paths_missing: Vec<String>,
    pub implicit_execute: Vec<String>,
    /// `enforced` or, in audit mode, `logging`.
    pub seccomp_status: String,
    /// Whether calls outside the allow-list go to a supervisor that reports them.
    pub seccomp_supervised: bool,
    pub seccomp_filter_length: usize,
    pub syscalls_allowed: usize,
    pub default_errno: String,
}

impl Report {
    pub(super) fn new(landlock: &LandlockPlan, seccomp: &SeccompPlan) -> Self {
        let landlock_status = if landlock.skipped.is_some() {
            "not applied"
        } else if landlock.degraded.is_empty() {
            "enforced"
        } else {
            "partial"
        };
        let paths = |paths: &[std::path::PathBuf]| paths.iter().map(|path| path.display().to_string()).collect();
        Self {
            mode: seccomp.mode,
            landlock_abi: landlock.availability.abi(),
            landlock_status: landlock_status.to_owned(),
            landlock_note: landlock.skipped.map(str::to_owned),
            rights_enforced: landlock.enforced.iter().map(|right| (*right).to_owned()).collect(),
            rights_degraded: landlock.degraded.iter().map(|right| (*right).to_owned()).collect(),
            paths_missing: paths(&landlock.paths_missing),
            implicit_execute: paths(&landlock.implicit_execute),
            seccomp_status: match seccomp.mode {
                Mode::Enforce => "enforced",
                Mode::Audit => "logging",
            }
            .to_owned(),
            seccomp_supervised: seccomp.supervise,
            seccomp_filter_length: seccomp.filter_length(),
            syscalls_allowed: seccomp.allowed.len(),
            default_errno: seccomp.default_errno.name().to_owned(),
        }
    }

    /// Returns whether anything the policy requests is not in force.
    pub fn is_degraded(&self) -> bool {
        self.landlock_status != "enforced" || !self.paths_missing.is_empty() || self.mode == Mode::Audit
    }

    /// Builds the `palisade.policy.applied` event for this report.
    pub fn to_event(&self, policy: &LoadedPolicy, command: &[String]) -> Event {
        let severity = if self.is_degraded() { Severity::Warn } else { Severity::Info };
        let body = format!(
            "policy {} applied: Landlock {} (ABI {}), seccomp {}{} ({} system calls allowed)",
            policy.policy.name(),
            self.landlock_status,
            self.landlock_abi,
            self.seccomp_status,
            if self.seccomp_supervised { ", supervised" } else { "" },
            self.syscalls_allowed
        );
        Event::new(names::POLICY_APPLIED, severity)
            .with_body(body)
            .with(attributes::POLICY_NAME, policy.policy.name())
            .with(attributes::POLICY_HASH, policy.hash.as_str())
            .with(attributes::POLICY_PATH, policy.source.display().to_string())
            .with(attributes::POLICY_MODE, mode_name(self.mode))
            .with(attributes::LANDLOCK_ABI, self.landlock_abi)
            .with(attributes::LANDLOCK_STATUS, self.landlock_status.as_str())
            .with(attributes::LANDLOCK_RIGHTS_ENFORCED, self.rights_enforced.clone())
            .with(attributes::LANDLOCK_RIGHTS_DEGRADED, self.rights_degraded.clone())
            .with(attributes::LANDLOCK_PATHS_MISSING, self.paths_missing.clone())
            .with_optional(attributes::REASON, self.landlock_note.clone())
            .with(attributes::SECCOMP_STATUS, self.seccomp_status.as_str())
            .with(attributes::SECCOMP_FILTER_LENGTH, self.seccomp_filter_length)
            .with(attributes::SECCOMP_SYSCALLS_ALLOWED, self.syscalls_allowed)
            .with(attributes::SECCOMP_DEFAULT_ERRNO, self.default_errno.as_str())
            .with(attributes::PROCESS_PID, i64::from(std::process::id()))
            .with_optional(attributes::PROCESS_EXECUTABLE_PATH, command.first().cloned())
            .with(attributes::PROCESS_COMMAND_ARGS, command.to_vec())
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    }
}

impl Availability {
    /// A short description for reports.
    pub fn describe(self) -> String {
        match self {
            Self::Available { abi } => format!("available, ABI {abi}"),
            Self::NotEnabled => "built in but not enabled".to_owned(),
            Self::NotImplemented => "not supported by this kernel".to_owned(),
        }
    }
}
