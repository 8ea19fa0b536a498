//! Seccomp supervision against the real kernel: the supervisor's denied and audited events, their
//! counting, the plain mode, and what happens to the workload when the supervisor dies.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{probe, probe_policy, probe_under, wrap_command};

/// An errno no probed call returns on its own, so seeing it proves the filter or the supervisor
/// responded.
const DISTINCT_ERRNO: &str = "EHWPOISON";

/// The process name the supervisor gives itself.
const SUPERVISOR_NAME: &str = "pal-supervisor";

fn events_named(run: &support::Run, name: &str) -> Vec<serde_json::Value> {
    run.events().into_iter().filter(|event| event["event_name"] == name).collect()
}

#[test]
fn denied_call_reported_with_name_pid_and_executable() {
    let policy = probe_policy(&format!("  syscalls: {{profiles: [base], defaultErrno: {DISTINCT_ERRNO}}}\n"));

    let run = probe_under(&policy.path, &["syscall", "ptrace"]);

    assert_eq!(run.stdout.trim(), DISTINCT_ERRNO, "{}", run.stderr);
    let applied = run.event("palisade.policy.applied");
    let denied = run.event("palisade.syscall.denied");
    let attributes = &denied["attributes"];
    assert_eq!(attributes["palisade.syscall.name"], "ptrace");
    assert_eq!(attributes["process.pid"], applied["attributes"]["process.pid"], "{}", run.stderr);
    assert_eq!(attributes["process.executable.path"], probe().to_str().unwrap());
    assert_eq!(attributes["palisade.seccomp.default_errno"], DISTINCT_ERRNO);
    assert_eq!(attributes["palisade.syscall.arch"], std::env::consts::ARCH);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(attributes["palisade.syscall.number"], 101);
    assert_eq!(attributes["palisade.syscall.args"].as_array().unwrap().len(), 6);
    assert_eq!(attributes["palisade.repeat_count"], 1);
    assert_eq!(attributes["palisade.policy.name"], "test");
    assert_eq!(denied["severity_text"], "WARN");
}

#[test]
fn audited_call_continues_and_is_reported() {
    let policy =
        probe_policy(&format!("  mode: audit\n  syscalls: {{profiles: [base], defaultErrno: {DISTINCT_ERRNO}}}\n"));

    let run = probe_under(&policy.path, &["syscall", "ptrace"]);

    // PTRACE_TRACEME succeeds once the supervisor lets it continue.
    assert_eq!(run.stdout.trim(), "ok", "{}", run.stderr);
    let applied = run.event("palisade.policy.applied");
    let audited = run.event("palisade.syscall.audited");
    let attributes = &audited["attributes"];
    assert_eq!(attributes["palisade.syscall.name"], "ptrace");
    assert_eq!(attributes["process.pid"], applied["attributes"]["process.pid"]);
    assert_eq!(attributes["palisade.decision"], "allow");
    assert_eq!(attributes["palisade.policy.mode"], "audit");
    assert!(events_named(&run, "palisade.syscall.denied").is_empty(), "{}", run.stderr);
}

#[test]
fn audited_shell_call_is_reported() {
    // A real program outside Palisade's test tools: dash, with the clone3 its libc tries first
    // left out of the base profile.
    let policy = support::policy(
        "  mode: audit\n  process: {execute: [/usr/bin/dash, /bin/dash, /usr/bin/true]}\n  filesystem: {read: [/usr, /lib, /lib64, /etc]}\n  syscalls: {profiles: [base], deny: [getppid]}\n",
    );

    let run = support::wrap(&policy.path, &["/bin/dash", "-c", "echo $PPID; /usr/bin/true"]);

    assert_eq!(run.status, Some(0), "{}", run.stderr);
    let applied = run.event("palisade.policy.applied");
    let audited = events_named(&run, "palisade.syscall.audited");
    let getppid = audited
        .iter()
        .find(|event| event["attributes"]["palisade.syscall.name"] == "getppid")
        .unwrap_or_else(|| panic!("no audited getppid in {}", run.stderr));
    assert_eq!(getppid["attributes"]["process.pid"], applied["attributes"]["process.pid"]);
    assert!(getppid["attributes"]["process.executable.path"].as_str().unwrap().ends_with("dash"));
}

#[test]
fn repeated_calls_are_counted_in_few_events() {
    let policy = probe_policy(&format!("  syscalls: {{profiles: [base], defaultErrno: {DISTINCT_ERRNO}}}\n"));

    let run = probe_under(&policy.path, &["repeat-syscall", "ptrace", "500"]);

    assert_eq!(run.stdout.trim(), DISTINCT_ERRNO, "{}", run.stderr);
    let denied = events_named(&run, "palisade.syscall.denied");
    let total: i64 = denied.iter().map(|event| event["attributes"]["palisade.repeat_count"].as_i64().unwrap()).sum();
    assert_eq!(total, 500, "{}", run.stderr);
    assert!(denied.len() <= 3, "{} events for 500 calls", denied.len());
}

#[test]
fn plain_mode_answers_in_the_kernel_without_events() {
    let policy =
        probe_policy(&format!("  syscalls: {{profiles: [base], defaultErrno: {DISTINCT_ERRNO}, supervise: false}}\n"));

    let run = probe_under(&policy.path, &["syscall", "ptrace"]);

    assert_eq!(run.stdout.trim(), DISTINCT_ERRNO, "{}", run.stderr);
    assert!(events_named(&run, "palisade.syscall.denied").is_empty(), "{}", run.stderr);
    assert!(!run.event("palisade.policy.applied")["body"].as_str().unwrap().contains("supervised"));
}

/// Finds the supervisor forked by the launcher whose command line contained `marker`: the
/// supervisor is a copy of the launcher, so it keeps that command line, under its own name.
fn supervisor_of(marker: &str) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let has_marker = cmdline.split(|byte| *byte == 0).any(|arg| arg == marker.as_bytes());
        if name.trim_end() == SUPERVISOR_NAME && has_marker {
            return Some(pid);
        }
    }
    None
}

fn parent_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|line| line.strip_prefix("PPid:")).unwrap().trim().parse().unwrap()
}

/// Starts the probe waiting under `mode`, kills its supervisor, lets it call ptrace, returns what
/// the call returned.
fn ptrace_after_supervisor_killed(mode: &str) -> String {
    let policy =
        probe_policy(&format!("  mode: {mode}\n  syscalls: {{profiles: [base], defaultErrno: {DISTINCT_ERRNO}}}\n"));
    let go = policy.dir.path().join("go");
    let probe = probe();
    let mut child =
        wrap_command(&policy.path, &[probe.to_str().unwrap(), "wait-then-syscall", go.to_str().unwrap(), "ptrace"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let supervisor = supervisor_of(go.to_str().unwrap()).expect("a supervisor process for the workload");
    assert_ne!(parent_of(supervisor), child.id(), "the supervisor must not be the workload's child");
    let killed = std::process::Command::new("kill").args(["-KILL", &supervisor.to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{supervisor}/cmdline")).exists()
        && std::fs::read(format!("/proc/{supervisor}/cmdline")).is_ok_and(|cmdline| !cmdline.is_empty())
    {
        assert!(Instant::now() < deadline, "the supervisor did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(&go, b"").unwrap();

    line.clear();
    stdout.read_line(&mut line).unwrap();
    child.wait().unwrap();
    line.trim().to_owned()
}

#[test]
fn supervisor_death_fails_trapped_calls_in_enforce_mode() {
    assert_eq!(ptrace_after_supervisor_killed("enforce"), "ENOSYS");
}

#[test]
fn supervisor_death_fails_trapped_calls_in_audit_mode() {
    // Audit mode lets ptrace through while the supervisor lives; without it the call fails.
    assert_eq!(ptrace_after_supervisor_killed("audit"), "ENOSYS");
}

#[test]
fn command_starts_without_child_processes() {
    let policy = support::policy(
        "  process: {execute: [/usr/bin/dash, /bin/dash]}\n  filesystem: {read: [/usr, /lib, /lib64, /etc, /proc]}\n",
    );

    // dash's own `read` reads the list, so the shell starts no process of its own first.
    let run = support::wrap(&policy.path, &["/bin/dash", "-c", "read c < /proc/$$/task/$$/children; echo \"[$c]\""]);

    assert_eq!(run.stdout.trim(), "[]", "{}", run.stderr);
    assert!(run.event("palisade.policy.applied")["body"].as_str().unwrap().contains("supervised"));
}

#[test]
fn denied_shell_call_is_reported() {
    let policy = support::policy(
        "  process: {execute: [/usr/bin/dash, /bin/dash]}\n  filesystem: {read: [/usr, /lib, /lib64, /etc]}\n  syscalls: {profiles: [base], deny: [getppid], defaultErrno: EPERM}\n",
    );

    let run = support::wrap(&policy.path, &["/bin/dash", "-c", "echo $PPID"]);

    let applied = run.event("palisade.policy.applied");
    let denied = events_named(&run, "palisade.syscall.denied");
    let getppid = denied
        .iter()
        .find(|event| event["attributes"]["palisade.syscall.name"] == "getppid")
        .unwrap_or_else(|| panic!("no denied getppid in {}", run.stderr));
    assert_eq!(getppid["attributes"]["process.pid"], applied["attributes"]["process.pid"]);
    assert!(getppid["attributes"]["process.executable.path"].as_str().unwrap().ends_with("dash"));
    assert_eq!(getppid["attributes"]["palisade.seccomp.default_errno"], "EPERM");
    // glibc's getppid wrapper returns -1 for the failed call, and dash prints it as $PPID.
    assert_eq!(run.stdout.trim(), "-1", "{}", run.stderr);
}
