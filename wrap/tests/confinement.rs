//! The launcher against the real kernel: Landlock filesystem rules and the seccomp filter.

mod support;

use support::{policy, probe, probe_policy, probe_under, wrap};

/// An errno no probed call returns on its own, so seeing it proves the filter answered.
const DISTINCT_ERRNO: &str = "EHWPOISON";

fn syscall_policy() -> support::PolicyFile {
    probe_policy(&format!("  syscalls: {{profiles: [base], defaultErrno: {DISTINCT_ERRNO}}}\n"))
}

#[test]
fn write_outside_write_paths_fails_with_eacces() {
    let policy = probe_policy("");
    let target = policy.dir.path().join("outside.txt");

    let run = probe_under(&policy.path, &["write", target.to_str().unwrap()]);

    assert_eq!(run.stdout.trim(), "EACCES", "stderr: {}", run.stderr);
    assert_eq!(run.status, Some(1));
    assert!(!target.exists());
}

#[test]
fn write_inside_write_paths_succeeds() {
    let workdir = tempfile::tempdir().unwrap();
    let policy = probe_policy(&format!(
        "  filesystem: {{read: [/usr, /lib, /lib64, /etc], write: [{}]}}\n",
        workdir.path().display()
    ));
    let target = workdir.path().join("inside.txt");

    let run = probe_under(&policy.path, &["write", target.to_str().unwrap()]);

    assert_eq!(run.stdout.trim(), "ok", "stderr: {}", run.stderr);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "probe\n");
}

#[test]
fn read_outside_read_paths_fails() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    let policy = probe_policy("");

    let run = probe_under(&policy.path, &["read", secret.to_str().unwrap()]);

    assert_eq!(run.stdout.trim(), "EACCES", "stderr: {}", run.stderr);
}

#[test]
fn exec_outside_execute_fails() {
    let policy = probe_policy("");

    let run = probe_under(&policy.path, &["exec", "/usr/bin/id"]);

    assert_eq!(run.stdout.trim(), "EACCES", "stderr: {}", run.stderr);
}

#[test]
fn exec_inside_execute_succeeds() {
    let probe = probe();
    let policy = probe_policy("");

    // The probe executes itself, which the policy allows; the second probe writes to /dev/null.
    let run = probe_under(&policy.path, &["exec", probe.to_str().unwrap(), "write", "/dev/null"]);

    assert_eq!(run.stdout.trim(), "ok", "stderr: {}", run.stderr);
}

#[test]
fn command_outside_execute_is_not_started() {
    let policy = probe_policy("");

    let run = wrap(&policy.path, &["/usr/bin/id"]);

    assert_eq!(run.status, Some(126), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("spec.process.execute"), "{}", run.stderr);
    let failed = run.event("palisade.exec.failed");
    assert_eq!(failed["severity_text"], "ERROR", "{}", run.stderr);
    assert_eq!(failed["attributes"]["error.type"], "not_executable", "{}", run.stderr);
}

macro_rules! denied_syscall_test {
    ($name:ident, $syscall:literal) => {
        #[test]
        fn $name() {
            let policy = syscall_policy();

            let run = probe_under(&policy.path, &["syscall", $syscall]);

            assert_eq!(run.stdout.trim(), DISTINCT_ERRNO, "stderr: {}", run.stderr);
        }
    };
}

denied_syscall_test!(ptrace_fails_with_configured_errno, "ptrace");
denied_syscall_test!(mount_fails_with_configured_errno, "mount");
denied_syscall_test!(unshare_fails_with_configured_errno, "unshare");
denied_syscall_test!(io_uring_setup_fails_with_configured_errno, "io_uring_setup");
denied_syscall_test!(bpf_fails_with_configured_errno, "bpf");
denied_syscall_test!(clone3_fails_with_configured_errno, "clone3");

#[test]
fn default_errno_is_enosys() {
    let policy = probe_policy("");

    let run = probe_under(&policy.path, &["syscall", "ptrace"]);

    assert_eq!(run.stdout.trim(), "ENOSYS", "stderr: {}", run.stderr);
}

#[test]
fn io_uring_allowed_by_name() {
    let policy = probe_policy("  syscalls: {profiles: [base], allow: [io_uring_setup], defaultErrno: EHWPOISON}\n");

    let run = probe_under(&policy.path, &["syscall", "io_uring_setup"]);

    // Allowed through the filter, the kernel itself rejects the null parameters.
    assert_eq!(run.stdout.trim(), "EFAULT", "stderr: {}", run.stderr);
}

#[test]
#[cfg(target_arch = "x86_64")]
fn x32_syscall_is_denied() {
    let policy = syscall_policy();

    let run = probe_under(&policy.path, &["x32-getpid"]);

    assert_eq!(run.stdout.trim(), DISTINCT_ERRNO, "stderr: {}", run.stderr);
}

#[test]
fn thread_created_before_filter_is_confined() {
    let policy = syscall_policy();
    let probe = probe();

    // The probe applies the policy itself, with a thread already running, outside the launcher.
    let output = std::process::Command::new(&probe)
        .args(["thread-then-apply"])
        .arg(&policy.path)
        .output()
        .expect("run the probe");

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.trim(), DISTINCT_ERRNO, "stderr: {}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn tcp_connect_limited_to_listed_ports() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = listener.local_addr().unwrap().port();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = other.local_addr().unwrap().port();
    let policy = probe_policy(&format!("  network: {{connectTcp: [{open_port}]}}\n"));

    let allowed = probe_under(&policy.path, &["connect", &open_port.to_string()]);
    let denied = probe_under(&policy.path, &["connect", &closed_port.to_string()]);

    assert_eq!(allowed.stdout.trim(), "ok", "stderr: {}", allowed.stderr);
    assert_eq!(denied.stdout.trim(), "EACCES", "stderr: {}", denied.stderr);
}

#[test]
fn symlinked_policy_path_resolves_to_target() {
    let workdir = tempfile::tempdir().unwrap();
    let real = workdir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = workdir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let policy =
        probe_policy(&format!("  filesystem: {{read: [/usr, /lib, /lib64, /etc], write: [{}]}}\n", link.display()));

    // The rule on the link covers the directory it points to, under either name.
    let through_real = probe_under(&policy.path, &["write", real.join("a").to_str().unwrap()]);
    let through_link = probe_under(&policy.path, &["write", link.join("b").to_str().unwrap()]);

    assert_eq!(through_real.stdout.trim(), "ok", "stderr: {}", through_real.stderr);
    assert_eq!(through_link.stdout.trim(), "ok", "stderr: {}", through_link.stderr);
}

#[test]
fn audit_mode_lets_denied_calls_through() {
    let policy = probe_policy("  mode: audit\n  syscalls: {profiles: [base], defaultErrno: EHWPOISON}\n");
    let outside = policy.dir.path().join("audit.txt");

    let ptrace = probe_under(&policy.path, &["syscall", "ptrace"]);
    let write = probe_under(&policy.path, &["write", outside.to_str().unwrap()]);

    assert_eq!(ptrace.stdout.trim(), "ok", "stderr: {}", ptrace.stderr);
    assert_eq!(write.stdout.trim(), "ok", "stderr: {}", write.stderr);
    let event = ptrace.event("palisade.policy.applied");
    assert_eq!(event["attributes"]["palisade.policy.mode"], "audit");
    assert_eq!(event["attributes"]["palisade.seccomp.status"], "logging");
    assert_eq!(event["attributes"]["palisade.landlock.status"], "not applied");
}

#[test]
fn policy_without_read_rules_blocks_library_loading() {
    // A dynamic program cannot even load its libraries when nothing is readable.
    let policy = policy(&format!("  process: {{execute: [{}]}}\n", probe().display()));

    let run = probe_under(&policy.path, &["write", "/dev/null"]);

    assert_ne!(run.status, Some(0), "stdout: {}", run.stdout);
}
