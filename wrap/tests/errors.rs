//! Bad input: every class gives one line on stderr naming the file or value, its documented exit
//! status, and starts nothing.

mod support;

use std::process::Command;

use support::{policy, probe_policy, wrap, WRAP};

const EXIT_USAGE: i32 = 64;
const EXIT_ENFORCEMENT: i32 = 71;
const EXIT_POLICY: i32 = 78;

fn assert_one_line(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.starts_with('{')).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
}

#[test]
fn missing_policy_file() {
    let run = wrap(std::path::Path::new("/nonexistent/policy.yaml"), &["/bin/true"]);

    assert_eq!(run.status, Some(EXIT_POLICY));
    assert!(run.stderr.contains("/nonexistent/policy.yaml"), "{}", run.stderr);
    assert_one_line(&run.stderr);
}

#[test]
fn unreadable_policy_is_reported() {
    // A directory cannot be read as a file, even by root.
    let dir = tempfile::tempdir().unwrap();

    let run = wrap(dir.path(), &["/bin/true"]);

    assert_eq!(run.status, Some(EXIT_POLICY));
    assert!(run.stderr.contains("cannot read policy"), "{}", run.stderr);
}

#[test]
fn no_policy_anywhere() {
    let output = Command::new(WRAP).args(["--", "/bin/true"]).env_remove("PALISADE_POLICY").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    // The default paths do not exist on a test machine.
    assert_eq!(output.status.code(), Some(EXIT_POLICY), "{stderr}");
    assert!(stderr.contains("PALISADE_POLICY"), "{stderr}");
}

#[test]
fn policy_from_environment() {
    let policy = probe_policy("");
    let probe = support::probe();

    let output = Command::new(WRAP)
        .arg(&probe)
        .args(["write", "/dev/null"])
        .env("PALISADE_POLICY", &policy.path)
        .output()
        .unwrap();

    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn invalid_policies_name_location_and_value() {
    let cases = [
        ("  mode: enforce\n  bogus: 1\n", "6:3", "unknown field `bogus`"),
        ("  network: {connectTcp: [99999]}\n", "5:", "invalid port 99999"),
        ("  egress: {allow: [{cidrs: [\"10.0.0.0/99\"]}]}\n", "5:", "invalid CIDR \"10.0.0.0/99\""),
        ("  integrity: {exclude: [\"a[\"]}\n", "5:", "invalid glob \"a[\""),
        ("  syscalls: {allow: [opennat]}\n", "5:", "unknown system call \"opennat\""),
        ("  syscalls: {defaultErrno: ENOPE}\n", "5:", "unknown errno \"ENOPE\""),
        ("  process: {execute: relative/path}\n", "5:", "invalid type"),
        ("  filesystem: {read: [usr]}\n", "5:", "policy paths must be absolute"),
        ("  mode: \"unterminated\n", "", "quoted scalar"),
    ];
    for (spec, location, message) in cases {
        let policy = policy(spec);

        let run = wrap(&policy.path, &["/bin/true"]);

        assert_eq!(run.status, Some(EXIT_POLICY), "{spec}: {}", run.stderr);
        let expected_prefix = format!("palisade-wrap: {}:{location}", policy.path.display());
        assert!(run.stderr.starts_with(&expected_prefix), "{spec}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{spec}: {}", run.stderr);
        assert_one_line(&run.stderr);
    }
}

#[test]
fn command_not_found_exits_127() {
    let policy = probe_policy("");

    let run = wrap(&policy.path, &["palisade-no-such-command"]);

    assert_eq!(run.status, Some(127));
    assert!(run.stderr.contains("palisade-no-such-command: command not found"), "{}", run.stderr);
    assert!(run.events().is_empty(), "nothing should be reported as applied: {}", run.stderr);
}

#[test]
fn command_not_executable_exits_126() {
    let policy = probe_policy("");
    let script = policy.dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();

    let run = wrap(&policy.path, &[script.to_str().unwrap()]);

    assert_eq!(run.status, Some(126));
    assert!(run.stderr.contains("cannot execute"), "{}", run.stderr);
}

#[test]
fn missing_interpreter_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/nonexistent/interpreter\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let policy = policy(&format!(
        "  process: {{execute: [{}]}}\n  filesystem: {{read: [/usr, /lib, /lib64, /etc]}}\n",
        script.display()
    ));

    let run = wrap(&policy.path, &[script.to_str().unwrap()]);

    assert_eq!(run.status, Some(126), "{}", run.stderr);
    assert!(run.stderr.contains("interpreter"), "{}", run.stderr);
    assert_eq!(run.event("palisade.exec.failed")["attributes"]["error.type"], "not_executable");
}

#[test]
fn missing_command_is_usage_error() {
    let policy = probe_policy("");

    let output = Command::new(WRAP).arg("--policy").arg(&policy.path).output().unwrap();

    assert_eq!(output.status.code(), Some(EXIT_USAGE));
}

#[test]
fn strict_mode_refuses_missing_paths() {
    let policy =
        probe_policy("  enforcement: strict\n  filesystem: {read: [/usr, /lib, /lib64, /etc, /palisade-missing]}\n");

    let run = support::probe_under(&policy.path, &["write", "/dev/null"]);

    assert_eq!(run.status, Some(EXIT_ENFORCEMENT), "{}", run.stderr);
    assert!(run.stderr.contains("/palisade-missing"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "the probe must not run: {}", run.stdout);
    let event = run.event("palisade.policy.failed");
    assert_eq!(event["attributes"]["error.type"], "strict_unmet");
}

#[test]
fn best_effort_reports_missing_paths() {
    let policy =
        probe_policy("  filesystem: {read: [/usr, /lib, /lib64, /etc, /palisade-missing], write: [/dev/null]}\n");

    let run = support::probe_under(&policy.path, &["write", "/dev/null"]);

    assert_eq!(run.stdout.trim(), "ok", "{}", run.stderr);
    let event = run.event("palisade.policy.applied");
    assert_eq!(event["attributes"]["palisade.landlock.paths_missing"][0], "/palisade-missing");
    assert_eq!(event["severity_text"], "WARN");
}

#[test]
fn denying_execve_is_rejected_before_start() {
    let policy = probe_policy("  syscalls: {deny: [execve]}\n");

    let run = support::probe_under(&policy.path, &["write", "/dev/null"]);

    assert_eq!(run.status, Some(EXIT_ENFORCEMENT), "{}", run.stderr);
    assert!(run.stderr.contains("execve"), "{}", run.stderr);
}

#[test]
fn failure_mode_open_runs_unprotected_and_says_so() {
    let policy = probe_policy("  enforcement: strict\n  failureMode: open\n  filesystem: {read: [/usr, /lib, /lib64, /etc, /palisade-missing], write: [/dev/null]}\n");
    let outside = policy.dir.path().join("unprotected.txt");

    let run = support::probe_under(&policy.path, &["write", outside.to_str().unwrap()]);

    assert_eq!(run.stdout.trim(), "ok", "{}", run.stderr);
    assert!(run.stderr.contains("running the command unprotected"), "{}", run.stderr);
    run.event("palisade.policy.failed");
}
