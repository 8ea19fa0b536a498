//! The bootstrap form on provided.al2 and provided.al2023, where Lambda ignores
//! AWS_LAMBDA_EXEC_WRAPPER: the function's `bootstrap` executes `palisade-wrap -- ./function`.
//! The function is this test program, built on the `lambda_runtime` crate.
//!
//! This target runs without the libtest harness because it is two programs in one. Run by
//! `cargo test`, it starts the emulator with a bootstrap that wraps a copy of this program. Started
//! with AWS_LAMBDA_RUNTIME_API set, it is that function.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use lambda_runtime::{service_fn, LambdaEvent};
use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, ShutdownReason, Status};
use serde_json::{json, Value};
use support::{events_named, Layout, Receiver, Target};

/// Sends `GET url` through the forward proxy named by HTTP_PROXY, as an HTTP client library
/// would, and returns the response status or the error.
fn fetch(url: &str) -> Value {
    let Ok(proxy) = std::env::var("HTTP_PROXY") else { return json!("error: HTTP_PROXY is not set") };
    let proxy = proxy.trim_start_matches("http://").trim_end_matches('/');
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let attempt = || -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(proxy)?;
        write!(stream, "GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.split_whitespace().nth(1).and_then(|status| status.parse().ok()).unwrap_or(0);
        Ok(status)
    };
    attempt().map_or_else(|error| json!(format!("error: {error}")), |status| json!(status))
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    let (payload, _context) = event.into_parts();
    let mut result = json!({});
    if let Some(url) = payload["allowed"].as_str() {
        result["allowed"] = fetch(url);
    }
    if let Some(url) = payload["denied"].as_str() {
        result["denied"] = fetch(url);
    }
    if let Some(path) = payload["write"].as_str() {
        result["write"] = match std::fs::write(path, "written by the function\n") {
            Ok(()) => json!("ok"),
            Err(error) => json!(format!("error: {error}")),
        };
    }
    if payload.get("exec").is_some() {
        result["exec"] = match std::process::Command::new("/bin/sleep").arg("0.3").status() {
            Ok(status) if status.success() => json!("ok"),
            Ok(status) => json!(format!("error: {status}")),
            Err(error) => json!(format!("error: {error}")),
        };
    }
    Ok(result)
}

fn run_as_function() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if let Err(error) = runtime.block_on(lambda_runtime::run(service_fn(handler))) {
        eprintln!("lambda_runtime stopped: {error}");
        std::process::exit(1);
    }
}

fn policy(layout: &Layout, function: &std::path::Path, allowed: &Target) -> PathBuf {
    let text = format!(
        "apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {{name: bootstrap-e2e}}
spec:
  mode: enforce
  enforcement: bestEffort
  failureMode: closed
  process:
    execute: [{function}]
  filesystem:
    read: [/]
    write: [/tmp, /dev/null]
  syscalls: {{profiles: [base]}}
  network: {{unrestrictedTcp: true}}
  egress:
    default: deny
    allow:
      - id: allowed-target
        cidrs: [127.0.0.2/32]
        ports: [{port}]
",
        function = function.display(),
        port = allowed.port(),
    );
    let path = layout.root().join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn bootstrap_function(landlock: bool) {
    let _sandbox = support::SANDBOX.lock().await;
    let layout = Layout::new();
    let function = layout.task().join("function");
    std::fs::copy(std::env::current_exe().unwrap(), &function).unwrap();
    let wrap = if landlock { layout.opt().join("palisade-wrap") } else { support::wrapper_without_landlock(&layout) };
    support::write_executable(
        &layout.task().join("bootstrap"),
        &format!("#!/bin/sh\nexec '{}' -- ./function\n", wrap.display()),
    );
    let manifest = layout.baseline();

    let receiver = Receiver::start(layout.root());
    let allowed = Target::start("127.0.0.2");
    let denied = Target::start("127.0.0.3");
    let policy = policy(&layout, &function, &allowed);
    let outside = layout.task().join("written-outside-tmp.txt");

    let environment: BTreeMap<String, String> = [
        ("PALISADE_POLICY", policy.display().to_string()),
        ("PALISADE_PROXY_PORT", support::free_port().to_string()),
        ("PALISADE_MANIFEST", manifest.display().to_string()),
        ("PALISADE_INTEGRITY_PREFIX", layout.root().display().to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let config = Config {
        extensions_dir: Some(layout.opt().join("extensions")),
        runtime_command: vec![layout.task().join("bootstrap").display().to_string()],
        task_root: layout.task(),
        environment,
        ..Config::default()
    };

    let emulator = Emulator::start(config).await.expect("start the emulator");
    assert_eq!(emulator.init_report().status, Status::Success, "{:?}\n{:#?}", emulator.init_report(), emulator.logs());
    let mut outcomes = Vec::new();
    let mut request_ids = Vec::new();
    for payload in
        [json!({"allowed": allowed.url, "denied": denied.url}), json!({"write": outside}), json!({"exec": true})]
    {
        let outcome = emulator.invoke(InvokeRequest::new(payload.to_string())).await.expect("invoke");
        assert_eq!(outcome.status, Status::Success, "{outcome:?}\n{:#?}", emulator.logs());
        request_ids.push(outcome.request_id.clone());
        outcomes.push(outcome.json().expect("a JSON response"));
    }
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");
    let spans = receiver.wait_for_spans(3);

    assert_eq!(outcomes[0]["allowed"], 200, "{:?}", outcomes[0]);
    assert_eq!(outcomes[0]["denied"], 403, "{:?}", outcomes[0]);
    assert_eq!(denied.hits(), 0, "the denied target must never be reached");
    assert_eq!(spans.len(), 3, "one span per invoke expected: {spans:#?}");
    for id in &request_ids {
        let span =
            spans.iter().find(|span| span["attributes"]["faas.invocation_id"] == json!(id)).expect("span per invoke");
        assert!(span["attributes"]["aws.lambda.report.duration_ms"].as_f64().is_some(), "{span:#}");
        assert_eq!(span["attributes"].get("aws.lambda.report.missing"), None, "{span:#}");
    }
    let first = spans.iter().find(|span| span["attributes"]["faas.invocation_id"] == json!(request_ids[0])).unwrap();
    let decisions: Vec<&Value> = events_named(first, "palisade.egress.decision");
    assert_eq!(decisions.len(), 2, "{first:#}");
    assert_eq!(decisions[0]["attributes"]["palisade.decision"], "allow");
    assert_eq!(decisions[1]["attributes"]["palisade.decision"], "deny");

    let applied: Vec<Value> = receiver
        .log_records()
        .into_iter()
        .filter(|record| {
            record["event_name"] == "palisade.policy.applied"
                && record["attributes"]["palisade.policy.name"] == "bootstrap-e2e"
        })
        .collect();
    assert_eq!(applied.len(), 1);
    let third = spans.iter().find(|span| span["attributes"]["faas.invocation_id"] == json!(request_ids[2])).unwrap();
    let sleeps: Vec<&Value> = events_named(third, "palisade.process.started")
        .into_iter()
        .filter(|event| event["attributes"]["process.executable.path"].as_str().unwrap_or_default().ends_with("/sleep"))
        .collect();
    if landlock {
        assert_eq!(applied[0]["attributes"]["palisade.landlock.status"], "enforced");
        assert!(outcomes[1]["write"].as_str().unwrap().contains("Permission denied"), "{:?}", outcomes[1]);
        assert!(!outside.exists());
        assert!(outcomes[2]["exec"].as_str().unwrap().contains("Permission denied"), "{:?}", outcomes[2]);
        assert!(sleeps.is_empty(), "a blocked executable never starts: {third:#}");
    } else {
        assert_ne!(applied[0]["attributes"]["palisade.landlock.status"], "enforced");
        assert_eq!(applied[0]["attributes"]["palisade.seccomp.status"], "enforced");
        assert_eq!(outcomes[2]["exec"], "ok");
        assert_eq!(sleeps.len(), 1, "{third:#}");
        assert_eq!(sleeps[0]["attributes"]["palisade.decision"], "deny");
    }
}

fn main() {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        run_as_function();
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    for (name, landlock) in [("bootstrap_function_with_landlock", true), ("bootstrap_function_without_landlock", false)]
    {
        println!("test {name} ...");
        runtime.block_on(bootstrap_function(landlock));
        println!("test {name} ... ok");
    }
    println!("\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
