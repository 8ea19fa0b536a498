//! Built-in seccomp profiles: reviewed data files under `profiles/`, one group of system calls per
//! reason. build.rs compiles them into the `PROFILES` table.

use std::collections::BTreeSet;

use super::EnforceError;
use crate::policy::{ProfileName, SyscallName};

include!(concat!(env!("OUT_DIR"), "/profiles.rs"));

/// The included profiles and system call names of one profile.
fn entry(profile: ProfileName) -> Result<(&'static [&'static str], &'static [&'static str]), EnforceError> {
    PROFILES
        .iter()
        .find(|(name, _, _)| *name == profile.as_str())
        .map(|(_, includes, syscalls)| (*includes, *syscalls))
        .ok_or(EnforceError::Profile { profile: profile.as_str(), reason: "missing from the build".into() })
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
        let (includes, names) = entry(profile)?;
        for include in includes {
            let included =
                ProfileName::ALL.into_iter().find(|candidate| candidate.as_str() == *include).ok_or_else(|| {
                    EnforceError::Profile {
                        profile: profile.as_str(),
                        reason: format!("includes unknown profile {include}"),
                    }
                })?;
            pending.push(included);
        }
        syscalls.extend(names.iter().filter_map(|name| name.parse::<SyscallName>().ok()));
    }
    Ok(syscalls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_resolves() {
        for profile in ProfileName::ALL {
            let syscalls = syscalls_of(&[profile]).unwrap();
            assert!(syscalls.len() > 100, "{} allows only {}", profile.as_str(), syscalls.len());
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn profile_names_exist_on_x86_64() {
        // Every name must be a real system call on x86_64 so that a typo cannot hide.
        for (profile, _, names) in PROFILES {
            for name in *names {
                assert!(name.parse::<syscalls::Sysno>().is_ok(), "{profile}: unknown system call {name}");
            }
        }
    }

    #[test]
    fn escape_calls_are_left_out() {
        let all = syscalls_of(&ProfileName::ALL).unwrap();
        for name in
            ["ptrace", "mount", "unshare", "setns", "bpf", "io_uring_setup", "clone3", "kexec_load", "memfd_create"]
        {
            assert!(!all.contains(&name.parse().unwrap()), "{name} is allowed by a profile");
        }
    }
}
