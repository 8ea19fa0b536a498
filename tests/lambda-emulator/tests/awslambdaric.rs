//! The real Python runtime interface client (awslambdaric from PyPI) against the emulator.

mod common;

use std::process::Command;
use std::sync::Once;

use common::{python, Workspace};
use palisade_lambda_emulator::{Emulator, InvokeRequest, RecordKind, ShutdownReason, Status};
use serde_json::json;

const HANDLER: &str = r#"
import os


def handler(event, context):
    print("handler says hi", flush=True)
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "custom": context.client_context.custom if context.client_context else None,
        "identity_id": context.identity.cognito_identity_id if context.identity else None,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }


def fail(event, context):
    raise ValueError("bad input")
"#;

/// Installs awslambdaric with pip when it is missing; fails with the reason when it cannot.
fn ensure_awslambdaric() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(install_awslambdaric);
}

fn install_awslambdaric() {
    let importable =
        || Command::new(python()).args(["-c", "import awslambdaric"]).status().map(|s| s.success()).unwrap_or(false);
    if importable() {
        return;
    }
    let output =
        Command::new(python()).args(["-m", "pip", "install", "--quiet", "awslambdaric"]).output().expect("run pip");
    assert!(
        output.status.success(),
        "awslambdaric is required by this test and `python3 -m pip install awslambdaric` failed; \
         install it by hand (it needs a C++ toolchain when no wheel fits):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(importable(), "awslambdaric was installed but cannot be imported");
}

fn runtime_command(handler: &str) -> Vec<String> {
    vec![python().display().to_string(), "-m".to_owned(), "awslambdaric".to_owned(), handler.to_owned()]
}

#[tokio::test]
async fn awslambdaric_runs_handler() {
    ensure_awslambdaric();
    let workspace = Workspace::new();
    workspace.add_python_extension("observer", &["--exit-on-shutdown"]);
    std::fs::write(workspace.root().join("app.py"), HANDLER).unwrap();
    let mut config = workspace.config_with_runtime(runtime_command("app.handler"));
    config.handler = "app.handler".to_owned();
    let emulator = Emulator::start(config).await.expect("start emulator");
    assert_eq!(emulator.init_report().status, Status::Success, "{:?}", emulator.init_report());

    let mut request = InvokeRequest::new(r#"{"question":42}"#);
    request.client_context = Some(r#"{"custom":{"tenant":"t-1"},"env":{},"client":{}}"#.to_owned());
    request.cognito_identity = Some(r#"{"cognitoIdentityId":"id-7","cognitoIdentityPoolId":"pool-7"}"#.to_owned());
    let outcome = emulator.invoke(request).await.expect("invoke");
    let second = emulator.invoke(InvokeRequest::new(r#"[1,2]"#)).await.expect("second invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    let body = outcome.json().expect("JSON response");
    assert_eq!(body["event"], json!({"question": 42}));
    assert_eq!(body["request_id"], json!(outcome.request_id));
    assert_eq!(body["arn"], "arn:aws:lambda:us-east-1:123456789012:function:palisade-test");
    let remaining = body["remaining_ms"].as_i64().unwrap();
    assert!(remaining > 0, "remaining time from the deadline header: {remaining}");
    assert!(remaining <= 3_000, "remaining time from the deadline header: {remaining}");
    assert_eq!(body["function_name"], "palisade-test");
    assert_eq!(body["memory"], "128");
    assert_eq!(body["custom"], json!({"tenant": "t-1"}));
    assert_eq!(body["identity_id"], "id-7");
    assert!(body["trace"].as_str().unwrap().starts_with("Root=1-"), "{body}");
    assert_eq!(second.json().unwrap()["event"], json!([1, 2]));
    assert!(emulator.logs().iter().any(|l| l.process == "runtime" && l.line.contains("handler says hi")));
}

#[tokio::test]
async fn awslambdaric_reports_handler_error() {
    ensure_awslambdaric();
    let workspace = Workspace::new();
    std::fs::write(workspace.root().join("app.py"), HANDLER).unwrap();
    let emulator =
        Emulator::start(workspace.config_with_runtime(runtime_command("app.fail"))).await.expect("start emulator");

    let outcome = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(outcome.status, Status::Success, "a handled error keeps the runtime: {outcome:?}");
    assert_eq!(outcome.function_error_type.as_deref(), Some("Unhandled"));
    let body = outcome.json().unwrap();
    assert_eq!(body["errorType"], "ValueError");
    assert_eq!(body["errorMessage"], "bad input");
}

#[tokio::test]
async fn awslambdaric_reports_import_error_at_init() {
    ensure_awslambdaric();
    let workspace = Workspace::new();
    let emulator = Emulator::start(workspace.config_with_runtime(runtime_command("missing_module.handler")))
        .await
        .expect("start emulator");

    let init = emulator.init_report();
    assert_eq!(init.status, Status::Error, "{init:?}");
    assert_eq!(init.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    let record = emulator.record();
    let init_error =
        record.iter().find(|e| e.kind == RecordKind::RuntimeInitError).expect("awslambdaric calls /runtime/init/error");
    let message = init_error.detail["body"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("missing_module"), "{message}");
    assert!(emulator.is_shut_down());
}
