//! The probe's own behaviour without confinement, so the kernel tests can trust its answers.
//!
//! These tests also make `cargo test --workspace` build the probe binary, which the launcher's
//! tests run from the shared target directory.

use std::process::Command;

const PROBE: &str = env!("CARGO_BIN_EXE_palisade-probe");

fn probe(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(PROBE).args(args).output().expect("run the probe");
    (output.status.code(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn write_succeeds_unconfined() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("file");

    let (status, stdout) = probe(&["write", target.to_str().unwrap()]);

    assert_eq!(stdout, "ok");
    assert_eq!(status, Some(0));
    assert_eq!(std::fs::read_to_string(target).unwrap(), "probe\n");
}

#[test]
fn missing_file_reports_enoent() {
    let (status, stdout) = probe(&["read", "/nonexistent/palisade-probe"]);

    assert_eq!(stdout, "ENOENT");
    assert_eq!(status, Some(1));
}

#[test]
fn refused_connection_reports_errno() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    // The listener is closed again, so nothing accepts on the port.
    let (_, stdout) = probe(&["connect", &port.to_string()]);

    assert_eq!(stdout, "ECONNREFUSED");
}

#[test]
fn exec_replaces_the_probe() {
    let (status, stdout) = probe(&["exec", PROBE, "write", "/dev/null"]);

    assert_eq!(stdout, "ok");
    assert_eq!(status, Some(0));
}

#[test]
fn unknown_action_is_usage_error() {
    let (status, _) = probe(&["fly"]);

    assert_eq!(status, Some(2));
}

#[test]
#[cfg(target_arch = "x86_64")]
fn x32_syscall_unfiltered_is_enosys_here() {
    // Kernels built without x32 support answer ENOSYS themselves; the launcher's tests use a
    // distinct errno so that they see the filter's answer, not this one.
    let (_, stdout) = probe(&["x32-getpid"]);

    assert!(stdout == "ENOSYS" || stdout == "ok", "{stdout}");
}
