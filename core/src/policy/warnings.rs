//! Rules that weaken a policy without making it invalid.

use std::fmt;
use std::path::Path;

use super::{EgressDefault, Mode, Policy, PolicyPath};

/// A rule that makes the policy weaker than it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where in the policy, as a dotted key path.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Executables that run other files given as arguments, so allowing them allows any script the
/// workload can read.
const INTERPRETERS: [&str; 16] = [
    "python", "node", "nodejs", "perl", "ruby", "php", "lua", "java", "sh", "bash", "dash", "zsh", "ksh", "busybox",
    "deno", "bun",
];

/// System calls that let a confined program escape or inspect other processes.
const DANGEROUS_SYSCALLS: [&str; 15] = [
    "memfd_create",
    "ptrace",
    "process_vm_writev",
    "process_vm_readv",
    "mount",
    "umount2",
    "unshare",
    "setns",
    "bpf",
    "io_uring_setup",
    "kexec_load",
    "init_module",
    "finit_module",
    "pivot_root",
    "userfaultfd",
];

/// Lists the rules of `policy` that weaken it, in policy order.
pub fn weakening_rules(policy: &Policy) -> Vec<Warning> {
    let spec = &policy.spec;
    let mut warnings = Vec::new();
    let mut warn = |key: String, message: String| warnings.push(Warning { key, message });

    if spec.mode == Mode::Audit {
        warn("spec.mode".into(), "audit mode reports violations but denies nothing".into());
    }

    for (index, path) in spec.process.execute.iter().enumerate() {
        let key = format!("spec.process.execute[{index}]");
        if let Some(name) = interpreter_name(path.as_path()) {
            warn(
                key.clone(),
                format!("{path} is an interpreter ({name}): it can run any script the workload can read"),
            );
        }
        if is_dynamic_loader(path.as_path()) {
            warn(key.clone(), format!("{path} is the dynamic loader: it can run any readable file as a program"));
        }
        if path.as_path() == Path::new("/") {
            warn(key.clone(), "\"/\" allows executing every file".into());
        }
        for write in &spec.filesystem.write {
            if overlaps(path, write) {
                warn(
                    key.clone(),
                    format!("{path} is also writable through {write}: the workload can write a program and run it"),
                );
            }
        }
    }

    // Landlock checks execve, not executable mappings, so the loader of an allowed dynamic
    // executable, granted execute implicitly, can run any file the workload wrote.
    if !spec.filesystem.write.is_empty() {
        let executables = spec.process.execute.iter().map(PolicyPath::as_path);
        for loader in crate::enforce::elf::interpreters_of(executables) {
            warn(
                "spec.process.execute".into(),
                format!(
                    "the dynamic loader {} is granted execute for the listed executables, and with writable paths the workload can run any file it writes as `{} FILE`; prefer statically linked programs or keep written files out of reach",
                    loader.display(),
                    loader.display()
                ),
            );
        }
    }

    for (index, path) in spec.filesystem.write.iter().enumerate() {
        if path.as_path() == Path::new("/") {
            warn(format!("spec.filesystem.write[{index}]"), "\"/\" allows writing every file".into());
        }
    }

    for (index, name) in spec.syscalls.allow.iter().enumerate() {
        if DANGEROUS_SYSCALLS.contains(&name.name()) {
            warn(
                format!("spec.syscalls.allow[{index}]"),
                format!("{name} lets the workload escape its confinement or inspect other processes"),
            );
        }
    }

    if spec.egress.default == EgressDefault::Allow {
        warn("spec.egress.default".into(), "allow lets the workload reach every destination not denied".into());
    }
    warnings
}

fn interpreter_name(path: &Path) -> Option<&'static str> {
    let file_name = path.file_name()?.to_str()?;
    INTERPRETERS.iter().copied().find(|name| {
        // Versioned names count too: python3, python3.11, node20.
        file_name.strip_prefix(name).is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

fn is_dynamic_loader(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("ld-linux") || name.starts_with("ld-musl") || name == "ld.so")
}

/// Whether one path is the other or lies beneath it.
fn overlaps(first: &PolicyPath, second: &PolicyPath) -> bool {
    first.as_path().starts_with(second.as_path()) || second.as_path().starts_with(first.as_path())
}
