//! The `lambda-emulator` binary: flags in, JSON report out.

mod common;

use std::process::Command;

use common::{fixture, python, Workspace};
use serde_json::Value;

#[test]
fn binary_prints_json_report() {
    let workspace = Workspace::new();
    workspace.add_executable("curl-ext", &std::fs::read_to_string(fixture("curl_extension.sh")).unwrap());
    let output = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .arg("--extensions-dir")
        .arg(workspace.extensions_dir())
        .arg("--task-root")
        .arg(workspace.root())
        .args(["--pass-env", "PATH", "--env"])
        .arg(format!("CURL_EXTENSION_OUT_DIR={}", workspace.out_dir().display()))
        .args(["--function-name", "cli-fn", "--payload", r#"{"a":1}"#, "--payload", r#"{"b":2}"#])
        .args(["--idle-ms", "50", "--shutdown-reason", "timeout", "--"])
        .arg(python())
        .arg(fixture("runtime.py"))
        .output()
        .expect("run lambda-emulator");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report on stdout");
    assert_eq!(report["init"]["status"], "success");
    assert_eq!(report["init"]["extensions"][0]["name"], "curl-ext");
    let invokes = report["invokes"].as_array().unwrap();
    assert_eq!(invokes.len(), 2);
    let body: Value = serde_json::from_str(invokes[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["echo"]["a"], 1);
    assert_eq!(invokes[1]["status"], "success");
    assert_eq!(report["shutdown"]["reason"], "timeout");
    assert_eq!(report["shutdown"]["budget_ms"], 2_000);

    let record = report["record"].as_array().unwrap();
    let kinds: Vec<&str> = record.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["init_started", "extension_register", "init_done", "invoke_done", "frozen", "thawed", "shutdown_done"]
    {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(record.windows(2).all(|w| w[0]["elapsed_us"].as_u64() <= w[1]["elapsed_us"].as_u64()));
    let events = std::fs::read_to_string(workspace.out_dir().join("curl-ext.events")).unwrap();
    assert!(events.contains(r#""shutdownReason":"timeout""#), "{events}");
}

#[test]
fn binary_rejects_bad_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .args(["--env", "NOEQUALS", "--", "true"])
        .output()
        .expect("run lambda-emulator");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid --env value \"NOEQUALS\""), "{stderr}");
}
