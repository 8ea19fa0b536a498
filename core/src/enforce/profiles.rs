//! Built-in seccomp profiles: reviewed data files under `profiles/`, one group of system calls per
//! reason.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::EnforceError;
use crate::policy::{ProfileName, SyscallName};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    #[serde(default)]
    include: Vec<ProfileName>,
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    #[allow(dead_code, reason = "the reason is for reviewers of the data file")]
    reason: String,
    syscalls: Vec<String>,
}

fn source(profile: ProfileName) -> &'static str {
    match profile {
        ProfileName::Base => include_str!("profiles/base.yaml"),
        ProfileName::Python => include_str!("profiles/python.yaml"),
        ProfileName::Node => include_str!("profiles/node.yaml"),
        ProfileName::Jvm => include_str!("profiles/jvm.yaml"),
    }
}

/// The system calls a set of profiles allows, with their includes, on this architecture.
///
/// Names that do not exist on this architecture (`open` on aarch64, say) are skipped: profiles
/// list the calls of every supported architecture.
pub fn syscalls_of(profiles: &[ProfileName]) -> Result<BTreeSet<SyscallName>, EnforceError> {
    let mut pending: Vec<ProfileName> = profiles.to_vec();
    let mut seen = BTreeSet::new();
    let mut syscalls = BTreeSet::new();

    while let Some(profile) = pending.pop() {
        if !seen.insert(profile) {
            continue;
        }
        let file: ProfileFile = serde_yaml_ng::from_str(source(profile))
            .map_err(|error| EnforceError::Profile { profile: profile.as_str(), reason: error.to_string() })?;
        debug_assert_eq!(file.name, profile.as_str());

        pending.extend(file.include);
        for group in file.groups {
            syscalls.extend(group.syscalls.iter().filter_map(|name| name.parse::<SyscallName>().ok()));
        }
    }
    Ok(syscalls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_parses() {
        for profile in ProfileName::ALL {
            let syscalls = syscalls_of(&[profile]).unwrap();
            assert!(syscalls.len() > 100, "{} allows only {}", profile.as_str(), syscalls.len());
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn profile_names_exist_on_x86_64() {
        // Every name must be a real system call on x86_64 so that a typo cannot hide.
        for profile in ProfileName::ALL {
            let file: ProfileFile = serde_yaml_ng::from_str(source(profile)).unwrap();
            for name in file.groups.iter().flat_map(|group| &group.syscalls) {
                assert!(name.parse::<syscalls::Sysno>().is_ok(), "{}: unknown system call {name}", profile.as_str());
            }
        }
    }

    #[test]
    fn escape_calls_are_left_out() {
        let all = syscalls_of(&ProfileName::ALL).unwrap();
        for name in ["ptrace", "mount", "unshare", "setns", "bpf", "io_uring_setup", "clone3", "kexec_load"] {
            assert!(!all.contains(&name.parse().unwrap()), "{name} is allowed by a profile");
        }
    }
}
