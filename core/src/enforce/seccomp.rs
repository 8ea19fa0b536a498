//! The seccomp allow-list: profiles plus `allow` minus `deny`, compiled with seccompiler and
//! installed on every thread.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::{profiles, EnforceError};
use crate::policy::{ErrnoName, Mode, SyscallName, SyscallRules};

/// System calls for io_uring, which bypasses seccomp for the operations it submits.
const IO_URING: [&str; 3] = ["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// The clone flags that create namespaces; clone is allowed only without them.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64
    | 0x80; // CLONE_NEWTIME, missing from older libc releases.

/// On x86_64, system call numbers with this bit set use the x32 ABI; the filter denies them all.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A compiled seccomp filter and what it allows.
#[derive(Debug, Clone)]
pub struct SeccompPlan {
    pub allowed: BTreeSet<SyscallName>,
    pub default_errno: ErrnoName,
    pub mode: Mode,
    /// Whether clone is restricted to calls without namespace flags.
    pub clone_restricted: bool,
    pub program: BpfProgram,
}

impl SeccompPlan {
    /// Compiles the allow-list of `rules`. In audit mode, calls outside it are allowed and
    /// logged by the kernel (SECCOMP_RET_LOG) instead of failing.
    pub fn build(rules: &SyscallRules, mode: Mode) -> Result<Self, EnforceError> {
        let allowed = allowed_syscalls(rules)?;
        let execve: SyscallName = "execve".parse().expect("execve exists on every architecture");
        if !allowed.contains(&execve) {
            return Err(EnforceError::ExecveDenied);
        }

        // Namespaces stay closed unless the policy opens them by name.
        let namespaces_allowed =
            ["unshare", "setns"].iter().any(|name| allowed.iter().any(|syscall| syscall.name() == *name));
        let clone_restricted = !namespaces_allowed;

        let mut filter_rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for syscall in &allowed {
            let rules = if syscall.name() == "clone" && clone_restricted {
                vec![clone_without_namespaces()?]
            } else {
                Vec::new()
            };
            filter_rules.insert(i64::from(syscall.sysno().id()), rules);
        }

        let errno = u32::try_from(rules.default_errno.number()).expect("errno values are positive");
        let mismatch = match mode {
            Mode::Enforce => SeccompAction::Errno(errno),
            Mode::Audit => SeccompAction::Log,
        };
        let filter = SeccompFilter::new(filter_rules, mismatch, SeccompAction::Allow, target_arch()?)
            .map_err(|error| EnforceError::SeccompCompile(error.to_string()))?;
        let compiled: BpfProgram = filter
            .try_into()
            .map_err(|error: seccompiler::BackendError| EnforceError::SeccompCompile(error.to_string()))?;

        let program = with_x32_denied(compiled, errno);
        Ok(Self { allowed, default_errno: rules.default_errno, mode, clone_restricted, program })
    }

    /// Number of BPF instructions; the kernel accepts at most 4096 per filter.
    pub fn filter_length(&self) -> usize {
        self.program.len()
    }

    /// The program in the kernel's binary layout: `struct sock_filter` entries of 8 bytes in
    /// native byte order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.program.len() * 8);
        for instruction in &self.program {
            bytes.extend_from_slice(&instruction.code.to_ne_bytes());
            bytes.push(instruction.jt);
            bytes.push(instruction.jf);
            bytes.extend_from_slice(&instruction.k.to_ne_bytes());
        }
        bytes
    }

    /// Installs the filter on every thread of the process (SECCOMP_FILTER_FLAG_TSYNC).
    pub fn install(&self) -> Result<(), EnforceError> {
        seccompiler::apply_filter_all_threads(&self.program)
            .map_err(|error| EnforceError::SeccompInstall(error.to_string()))
    }
}

/// Profiles plus `allow` minus `deny`, and io_uring only when `allow` names it.
fn allowed_syscalls(rules: &SyscallRules) -> Result<BTreeSet<SyscallName>, EnforceError> {
    let mut allowed = profiles::syscalls_of(&rules.profiles)?;
    allowed.retain(|syscall| !IO_URING.contains(&syscall.name()) || rules.allow.contains(syscall));
    allowed.extend(rules.allow.iter().copied());
    for denied in &rules.deny {
        allowed.remove(denied);
    }
    Ok(allowed)
}

fn clone_without_namespaces() -> Result<SeccompRule, EnforceError> {
    let condition = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)
        .map_err(|error| EnforceError::SeccompCompile(error.to_string()))?;
    SeccompRule::new(vec![condition]).map_err(|error| EnforceError::SeccompCompile(error.to_string()))
}

fn target_arch() -> Result<TargetArch, EnforceError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| EnforceError::UnsupportedArchitecture(std::env::consts::ARCH))
}

/// Puts a check in front of the compiled program that fails every x32 system call with `errno`.
///
/// seccompiler validates the architecture, but x32 calls report AUDIT_ARCH_X86_64 too and differ
/// only in bit 30 of the number. The prefix jumps only forward within itself and then falls
/// through to the unchanged program, so the program's own jump offsets stay valid.
#[cfg(target_arch = "x86_64")]
fn with_x32_denied(program: BpfProgram, errno: u32) -> BpfProgram {
    const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Offsets of `nr` and `arch` in struct seccomp_data.
    const NR_OFFSET: u32 = 0;
    const ARCH_OFFSET: u32 = 4;
    const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

    let instruction = |code, jt, jf, k| sock_filter { code, jt, jf, k };
    let mut prefixed = vec![
        instruction(BPF_LD_W_ABS, 0, 0, ARCH_OFFSET),
        // Another architecture: skip to the program, whose own check rejects it.
        instruction(BPF_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        instruction(BPF_LD_W_ABS, 0, 0, NR_OFFSET),
        instruction(BPF_JSET_K, 0, 1, X32_SYSCALL_BIT),
        instruction(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | (errno & libc::SECCOMP_RET_DATA)),
    ];
    prefixed.extend(program);
    prefixed
}

#[cfg(not(target_arch = "x86_64"))]
fn with_x32_denied(program: BpfProgram, _errno: u32) -> BpfProgram {
    program
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ProfileName;

    fn rules(profiles: Vec<ProfileName>, allow: &[&str], deny: &[&str]) -> SyscallRules {
        SyscallRules {
            profiles,
            allow: allow.iter().map(|name| name.parse().unwrap()).collect(),
            deny: deny.iter().map(|name| name.parse().unwrap()).collect(),
            default_errno: ErrnoName::ENOSYS,
        }
    }

    fn allows(plan: &SeccompPlan, name: &str) -> bool {
        plan.allowed.contains(&name.parse().unwrap())
    }

    #[test]
    fn deny_wins_over_profile_and_allow() {
        let plan =
            SeccompPlan::build(&rules(vec![ProfileName::Base], &["ptrace"], &["ptrace", "socket"]), Mode::Enforce)
                .unwrap();
        assert!(!allows(&plan, "ptrace"));
        assert!(!allows(&plan, "socket"));
        assert!(allows(&plan, "read"));
    }

    #[test]
    fn io_uring_only_by_name() {
        let plan = SeccompPlan::build(&rules(vec![ProfileName::Node], &[], &[]), Mode::Enforce).unwrap();
        assert!(!allows(&plan, "io_uring_setup"));
        let plan =
            SeccompPlan::build(&rules(vec![ProfileName::Node], &["io_uring_setup"], &[]), Mode::Enforce).unwrap();
        assert!(allows(&plan, "io_uring_setup"));
    }

    #[test]
    fn execve_must_stay_allowed() {
        let error = SeccompPlan::build(&rules(vec![ProfileName::Base], &[], &["execve"]), Mode::Enforce).unwrap_err();
        assert!(matches!(error, EnforceError::ExecveDenied));
    }

    #[test]
    fn clone_restricted_unless_namespaces_allowed() {
        let plan = SeccompPlan::build(&rules(vec![ProfileName::Base], &[], &[]), Mode::Enforce).unwrap();
        assert!(plan.clone_restricted);
        let plan = SeccompPlan::build(&rules(vec![ProfileName::Base], &["unshare"], &[]), Mode::Enforce).unwrap();
        assert!(!plan.clone_restricted);
    }

    #[test]
    fn filter_fits_kernel_limit() {
        let plan = SeccompPlan::build(&rules(ProfileName::ALL.to_vec(), &[], &[]), Mode::Enforce).unwrap();
        assert!(plan.filter_length() < 4096, "{}", plan.filter_length());
    }
}
