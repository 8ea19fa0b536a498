//! Init, Invoke and Shutdown ordering with a Python extension and a Python runtime.

mod common;

use std::time::Duration;

use common::{any, position, Workspace};
use palisade_lambda_emulator::{Emulator, InvokeRequest, RecordKind, ShutdownReason, Status};
use serde_json::{json, Value};

#[tokio::test]
async fn register_next_invoke_shutdown_ordering() {
    let workspace = Workspace::new();
    workspace.add_python_extension("observer", &["--exit-on-shutdown"]);
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    assert_eq!(emulator.init_report().status, Status::Success, "{:?}", emulator.init_report());

    let mut request = InvokeRequest::new(r#"{"n":1}"#);
    request.client_context = Some(r#"{"custom":{"k":"v"}}"#.to_owned());
    request.cognito_identity = Some(r#"{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}"#.to_owned());
    let first = emulator.invoke(request).await.expect("first invoke");
    let second = emulator.invoke(InvokeRequest::new(r#"{"n":2}"#)).await.expect("second invoke");
    let shutdown = emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(first.status, Status::Success);
    assert_eq!(first.json().unwrap()["echo"], json!({"n": 1}));
    assert_eq!(second.json().unwrap()["requestId"], json!(second.request_id));
    assert!(first.init_duration_ms.is_some(), "first invoke reports the init duration");
    assert!(second.init_duration_ms.is_none(), "later invokes do not");
    assert!(shutdown.killed.is_empty(), "the extension exits by itself: {shutdown:?}");
    assert!(!shutdown.budget_exhausted);
    assert_eq!(shutdown.budget_ms, 2_000);

    // Init: the extension starts and registers before the runtime starts.
    let record = emulator.record();
    let ext_started = position(&record, RecordKind::ProcessStarted, Some("observer"), any);
    let registered = position(&record, RecordKind::ExtensionRegister, Some("observer"), any);
    let runtime_started = position(&record, RecordKind::ProcessStarted, Some("runtime"), any);
    let runtime_ready = position(&record, RecordKind::RuntimeNext, Some("runtime"), any);
    let ext_ready = position(&record, RecordKind::ExtensionNext, Some("observer"), any);
    let init_done = position(&record, RecordKind::InitDone, None, any);
    assert!(ext_started < registered);
    assert!(registered < runtime_started, "the runtime starts after every extension registered");
    assert!(runtime_ready < init_done);
    assert!(ext_ready < init_done);

    // Invoke: delivered to both, done after the runtime responded and the extension called /next.
    for outcome in [&first, &second] {
        let id = outcome.request_id.as_str();
        let for_id = |d: &Value| d["requestId"] == id;
        let started = position(&record, RecordKind::InvokeStarted, None, for_id);
        let to_runtime = position(&record, RecordKind::RuntimeInvokeDelivered, None, for_id);
        let to_ext = position(&record, RecordKind::ExtensionEventDelivered, Some("observer"), for_id);
        let response = position(&record, RecordKind::RuntimeResponse, None, for_id);
        let done = position(&record, RecordKind::InvokeDone, None, for_id);
        let ext_next_after = record[to_ext..]
            .iter()
            .position(|e| e.kind == RecordKind::ExtensionNext)
            .map(|i| i + to_ext)
            .expect("the extension calls /next after the INVOKE");
        assert!(started < to_runtime);
        assert!(started < to_ext);
        assert!(to_runtime < response);
        assert!(response < done);
        assert!(ext_next_after < done, "the invoke ends after the extension's next /next");
    }

    // Shutdown: SHUTDOWN is delivered, the extension exits, then the phase ends.
    let shutdown_started = position(&record, RecordKind::ShutdownStarted, None, any);
    let shutdown_event =
        position(&record, RecordKind::ExtensionEventDelivered, Some("observer"), |d| d["eventType"] == "SHUTDOWN");
    let ext_exited = position(&record, RecordKind::ProcessExited, Some("observer"), any);
    let shutdown_done = position(&record, RecordKind::ShutdownDone, None, any);
    assert!(shutdown_started < shutdown_event);
    assert!(shutdown_event < ext_exited);
    assert!(ext_exited < shutdown_done);

    // What the extension received.
    let register = &workspace.journal_of("observer", "register")[0];
    assert_eq!(register["status"], 200);
    assert_eq!(
        register["body"],
        json!({
            "functionName": "palisade-test",
            "functionVersion": "$LATEST",
            "handler": "function.handler",
            "accountId": "123456789012",
        })
    );
    let events: Vec<Value> =
        workspace.journal_of("observer", "event").into_iter().map(|e| e["event"].clone()).collect();
    assert_eq!(events.len(), 3, "{events:#?}");
    let invoke = &events[0];
    assert_eq!(invoke["eventType"], "INVOKE");
    assert_eq!(invoke["requestId"], json!(first.request_id));
    assert_eq!(invoke["invokedFunctionArn"], "arn:aws:lambda:us-east-1:123456789012:function:palisade-test");
    assert_eq!(invoke["tracing"]["type"], "X-Amzn-Trace-Id");
    assert!(invoke["tracing"]["value"].as_str().unwrap().starts_with("Root=1-"));
    let invoked_at_ms = workspace.journal_of("observer", "event")[0]["t"].as_f64().unwrap() * 1000.0;
    let deadline = invoke["deadlineMs"].as_f64().unwrap();
    assert!((deadline - invoked_at_ms - 3_000.0).abs() < 500.0, "deadlineMs is about now + timeout");
    let shutdown_event = &events[2];
    assert_eq!(shutdown_event["eventType"], "SHUTDOWN");
    assert_eq!(shutdown_event["shutdownReason"], "spindown");
    let shutdown_at_ms = workspace.journal_of("observer", "event")[2]["t"].as_f64().unwrap() * 1000.0;
    let shutdown_deadline = shutdown_event["deadlineMs"].as_f64().unwrap();
    assert!(shutdown_deadline > shutdown_at_ms, "the deadline is in the future");
    assert!(shutdown_deadline - shutdown_at_ms <= 2_000.0, "within the 2,000 ms budget");

    // What the runtime received: every documented invoke header.
    let invokes = workspace.journal_of("runtime", "invoke");
    let headers = &invokes[0]["headers"];
    assert_eq!(headers["Lambda-Runtime-Aws-Request-Id"], json!(first.request_id));
    assert_eq!(headers["Lambda-Runtime-Invoked-Function-Arn"], invoke["invokedFunctionArn"]);
    assert_eq!(headers["Lambda-Runtime-Trace-Id"], invoke["tracing"]["value"]);
    assert_eq!(headers["Lambda-Runtime-Deadline-Ms"], json!(deadline.to_string()));
    assert_eq!(headers["Lambda-Runtime-Client-Context"], r#"{"custom":{"k":"v"}}"#);
    assert_eq!(
        headers["Lambda-Runtime-Cognito-Identity"],
        r#"{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}"#
    );
    let second_headers = &invokes[1]["headers"];
    assert!(second_headers.get("Lambda-Runtime-Client-Context").is_none(), "sent only when set");
    assert!(second_headers.get("Lambda-Runtime-Cognito-Identity").is_none(), "sent only when set");
}

#[tokio::test]
async fn invoke_waits_for_extension_next() {
    let workspace = Workspace::new();
    workspace.add_python_extension("slow", &["--invoke-work-ms", "600", "--exit-on-shutdown"]);
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    let outcome = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(outcome.status, Status::Success);
    assert!(outcome.runtime_duration_ms < 400.0, "{outcome:?}");
    assert!(outcome.duration_ms >= 600.0, "the phase includes the extension's work: {outcome:?}");
    assert_eq!(outcome.billed_duration_ms, outcome.duration_ms.ceil() as u64);
}

#[tokio::test]
async fn runtime_environment_and_exec_wrapper() {
    let workspace = Workspace::new();
    workspace.add_python_extension("envcheck", &["--exit-on-shutdown"]);
    let wrapper = workspace.root().join("wrapper.sh");
    let args_file = workspace.out_dir().join("wrapper-args");
    std::fs::write(&wrapper, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexec \"$@\"\n", args_file.display()))
        .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut config = workspace.config();
    config.exec_wrapper = Some(wrapper.clone());
    config.handler = "app.handler".to_owned();
    let runtime_command = config.runtime_command.clone();
    let emulator = Emulator::start(config).await.expect("start emulator");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let wrapper_args: Vec<String> =
        std::fs::read_to_string(&args_file).expect("the wrapper ran").lines().map(str::to_owned).collect();
    assert_eq!(wrapper_args, runtime_command, "the wrapper gets the runtime command line");

    let start = &workspace.journal_of("runtime", "start")[0];
    let env = &start["env"];
    assert_eq!(env["AWS_LAMBDA_EXEC_WRAPPER"], json!(wrapper.display().to_string()));
    assert_eq!(env["_HANDLER"], "app.handler");
    assert_eq!(env["LAMBDA_TASK_ROOT"], json!(workspace.root().display().to_string()));
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "palisade-test");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "128");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], json!(emulator.runtime_api().to_string()));
    assert_eq!(start["argv"][0], json!(runtime_command[1]));

    // Extensions see the function environment but not the runtime-only variables.
    let ext_env = &workspace.journal_of("envcheck", "start")[0]["env"];
    assert_eq!(ext_env["AWS_LAMBDA_RUNTIME_API"], env["AWS_LAMBDA_RUNTIME_API"]);
    assert_eq!(ext_env["AWS_LAMBDA_EXEC_WRAPPER"], env["AWS_LAMBDA_EXEC_WRAPPER"]);
    assert_eq!(ext_env["AWS_LAMBDA_FUNCTION_NAME"], "palisade-test");
    for runtime_only in ["_HANDLER", "LAMBDA_TASK_ROOT", "AWS_EXECUTION_ENV", "LAMBDA_RUNTIME_DIR"] {
        assert!(ext_env.get(runtime_only).is_none(), "{runtime_only} is runtime-only: {ext_env}");
    }
}

#[tokio::test]
async fn invoke_timeout_resets_sandbox() {
    let workspace = Workspace::new();
    workspace.add_python_extension("watch", &["--exit-on-shutdown"]);
    let mut config = workspace.config();
    config.timeout = Duration::from_millis(500);
    let emulator = Emulator::start(config).await.expect("start emulator");

    let outcome = emulator.invoke(InvokeRequest::new(r#"{"sleep_ms":3000}"#)).await.expect("invoke");

    assert_eq!(outcome.status, Status::Timeout);
    assert_eq!(outcome.error_type.as_deref(), Some("Sandbox.Timedout"));
    assert_eq!(outcome.json().unwrap()["errorType"], "Sandbox.Timedout");
    assert!(emulator.is_shut_down(), "a timeout resets the sandbox");
    let shutdown = workspace
        .journal_of("watch", "event")
        .into_iter()
        .find(|e| e["event"]["eventType"] == "SHUTDOWN")
        .expect("the extension gets SHUTDOWN");
    assert_eq!(shutdown["event"]["shutdownReason"], "timeout");
    assert!(emulator.invoke(InvokeRequest::new("{}")).await.is_err(), "no invoke after the reset");
}

#[tokio::test]
async fn runtime_crash_is_failure() {
    let workspace = Workspace::new();
    workspace.add_python_extension("watch", &["--exit-on-shutdown"]);
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    let outcome = emulator.invoke(InvokeRequest::new(r#"{"exit":3}"#)).await.expect("invoke");

    assert_eq!(outcome.status, Status::Failure);
    assert_eq!(outcome.error_type.as_deref(), Some("Runtime.ExitError"));
    let shutdown = workspace
        .journal_of("watch", "event")
        .into_iter()
        .find(|e| e["event"]["eventType"] == "SHUTDOWN")
        .expect("the extension gets SHUTDOWN");
    assert_eq!(shutdown["event"]["shutdownReason"], "failure");
}

#[tokio::test]
async fn function_error_is_reported() {
    let workspace = Workspace::new();
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    let outcome = emulator.invoke(InvokeRequest::new(r#"{"error":"boom"}"#)).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    // A handled function error leaves the runtime healthy: the invoke status stays success.
    assert_eq!(outcome.status, Status::Success);
    assert_eq!(outcome.function_error_type.as_deref(), Some("Unhandled"));
    assert_eq!(outcome.json().unwrap()["errorMessage"], "boom");
}

#[tokio::test]
async fn runtime_init_error_fails_init() {
    let workspace = Workspace::new();
    workspace.add_python_extension("watch", &["--exit-on-shutdown"]);
    let mut config = workspace.config();
    config.environment.insert("RUNTIME_INIT_ERROR".to_owned(), "Runtime.ImportModuleError".to_owned());
    let emulator = Emulator::start(config).await.expect("start emulator");

    let init = emulator.init_report();
    assert_eq!(init.status, Status::Error);
    assert_eq!(init.error_type.as_deref(), Some("Runtime.ImportModuleError"));
    let record = emulator.record();
    let init_error = position(&record, RecordKind::RuntimeInitError, Some("runtime"), |d| {
        d["errorType"] == "Runtime.ImportModuleError" && d["body"]["errorMessage"] == "init failed"
    });
    let accepted = position(&record, RecordKind::ApiRequest, Some("runtime"), |d| {
        d["path"] == "/2018-06-01/runtime/init/error" && d["status"] == 202
    });
    assert!(init_error < accepted);
    assert!(emulator.is_shut_down());
    let shutdown = workspace
        .journal_of("watch", "event")
        .into_iter()
        .find(|e| e["event"]["eventType"] == "SHUTDOWN")
        .expect("the extension gets SHUTDOWN");
    assert_eq!(shutdown["event"]["shutdownReason"], "failure");
    assert!(emulator.invoke(InvokeRequest::new("{}")).await.is_err());
}

#[tokio::test]
async fn unregistered_extension_times_out_init() {
    let workspace = Workspace::new();
    workspace.add_executable("sleeper", "#!/bin/sh\nexec sleep 30\n");
    let mut config = workspace.config();
    config.init_timeout = Duration::from_millis(500);
    let emulator = Emulator::start(config).await.expect("start emulator");

    let init = emulator.init_report();
    assert_eq!(init.status, Status::Timeout, "{init:?}");
    assert!(init.duration_ms >= 500.0, "{init:?}");
    let record = emulator.record();
    assert!(
        !record.iter().any(|e| e.kind == RecordKind::ProcessStarted && e.subject.as_deref() == Some("runtime")),
        "the runtime does not start before every extension registered"
    );
    let killed = position(&record, RecordKind::ProcessKilled, Some("sleeper"), any);
    let exited = position(&record, RecordKind::ProcessExited, Some("sleeper"), any);
    assert!(killed < exited);
    assert!(emulator.is_shut_down());
}

#[tokio::test]
async fn extension_crash_fails_init() {
    let workspace = Workspace::new();
    workspace.add_executable("crasher", "#!/bin/sh\nexit 3\n");
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    let init = emulator.init_report();
    assert_ne!(init.status, Status::Success, "{init:?}");
    assert_eq!(init.error_type.as_deref(), Some("Extension.Crash"));
    assert!(init.duration_ms < 5_000.0, "a crash ends init before the limit: {init:?}");
    assert!(emulator.is_shut_down());
}

#[tokio::test]
async fn extension_exit_error_resets_sandbox() {
    let workspace = Workspace::new();
    workspace.add_python_extension("quitter", &["--exit-error-on-invoke", "Extension.GivingUp"]);
    workspace.add_python_extension("watch", &["--exit-on-shutdown"]);
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    let outcome = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");

    assert_eq!(outcome.status, Status::Failure, "{outcome:?}");
    assert_eq!(outcome.error_type.as_deref(), Some("Extension.GivingUp"));
    let record = emulator.record();
    let exit_error = position(&record, RecordKind::ExtensionExitError, Some("quitter"), |d| {
        d["errorType"] == "Extension.GivingUp" && d["body"]["errorMessage"] == "giving up"
    });
    let shutdown = position(&record, RecordKind::ShutdownStarted, None, |d| d["reason"] == "failure");
    assert!(exit_error < shutdown);
    assert!(emulator.is_shut_down());
    let watch_shutdown = workspace
        .journal_of("watch", "event")
        .into_iter()
        .find(|e| e["event"]["eventType"] == "SHUTDOWN")
        .expect("the other extension gets SHUTDOWN");
    assert_eq!(watch_shutdown["event"]["shutdownReason"], "failure");
}
