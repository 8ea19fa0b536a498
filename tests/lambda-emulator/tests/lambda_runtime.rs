//! The Rust `lambda_runtime` crate against the emulator.
//!
//! This test target runs without the libtest harness because it is two programs in one. Run by
//! `cargo test`, it starts the emulator with its own executable as the runtime command. Started
//! by the emulator (AWS_LAMBDA_RUNTIME_API is set), it is that runtime.

mod common;

use common::Workspace;
use lambda_runtime::{service_fn, LambdaEvent};
use palisade_lambda_emulator::{Emulator, InvokeRequest, ShutdownReason, Status};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let (payload, context) = event.into_parts();
    if payload.get("fail").is_some() {
        return Err("requested failure".into());
    }
    Ok(json!({
        "payload": payload,
        "request_id": context.request_id,
        "arn": context.invoked_function_arn,
        "deadline": context.deadline,
        "xray": context.xray_trace_id,
        "custom": context.client_context.map(|c| c.custom),
        "identity_id": context.identity.map(|i| i.identity_id),
        "function_name": context.env_config.function_name,
    }))
}

fn run_as_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if let Err(error) = runtime.block_on(lambda_runtime::run(service_fn(handler))) {
        eprintln!("lambda_runtime stopped: {error}");
        std::process::exit(1);
    }
}

async fn lambda_runtime_runs_handler() {
    let workspace = Workspace::new();
    workspace.add_python_extension("observer", &["--exit-on-shutdown"]);
    let this_program = std::env::current_exe().expect("path of this test program");
    let emulator = Emulator::start(workspace.config_with_runtime(vec![this_program.display().to_string()]))
        .await
        .expect("start emulator");
    assert_eq!(emulator.init_report().status, Status::Success, "{:?}", emulator.init_report());

    let mut request = InvokeRequest::new(r#"{"question":42}"#);
    request.client_context = Some(r#"{"custom":{"tenant":"t-1"},"environment":{"locale":"en"}}"#.to_owned());
    request.cognito_identity = Some(r#"{"cognitoIdentityId":"id-7","cognitoIdentityPoolId":"pool-7"}"#.to_owned());
    let outcome = emulator.invoke(request).await.expect("invoke");
    let failed = emulator.invoke(InvokeRequest::new(r#"{"fail":true}"#)).await.expect("failing invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    let body = outcome.json().expect("JSON response");
    assert_eq!(body["payload"], json!({"question": 42}));
    assert_eq!(body["request_id"], json!(outcome.request_id));
    assert_eq!(body["arn"], "arn:aws:lambda:us-east-1:123456789012:function:palisade-test");
    let deadline = body["deadline"].as_u64().unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(deadline > now_ms.saturating_sub(10_000), "deadline {deadline}");
    assert!(deadline < now_ms + 3_000, "deadline {deadline}");
    assert!(body["xray"].as_str().unwrap().starts_with("Root=1-"), "{body}");
    assert_eq!(body["custom"], json!({"tenant": "t-1"}));
    assert_eq!(body["identity_id"], "id-7");
    assert_eq!(body["function_name"], "palisade-test");

    assert_eq!(failed.status, Status::Success, "a handler error keeps the runtime: {failed:?}");
    assert!(failed.function_error_type.is_some());
    assert_eq!(failed.json().unwrap()["errorMessage"], "requested failure");
}

fn main() {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        run_as_runtime();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    println!("test lambda_runtime_runs_handler ...");
    runtime.block_on(lambda_runtime_runs_handler());
    println!("test lambda_runtime_runs_handler ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
