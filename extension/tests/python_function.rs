//! The layer end to end: a Python handler run by awslambdaric under palisade-wrap (as
//! AWS_LAMBDA_EXEC_WRAPPER) against the Lambda emulator, with palisade-extension running, and
//! the exported spans decoded by an independent OTLP receiver.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, ShutdownReason, Status};
use serde_json::{json, Value};
use support::{event_names, events_named, python, require_python_module, Layout, Receiver, Target};

const TRACE_HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn policy(layout: &Layout, allowed: &Target) -> PathBuf {
    let text = format!(
        "apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {{name: lambda-e2e}}
spec:
  mode: enforce
  enforcement: bestEffort
  failureMode: closed
  process:
    execute: [{python}]
  filesystem:
    read: [/]
    write: [/tmp, /dev/null]
  syscalls: {{profiles: [python]}}
  network: {{unrestrictedTcp: true}}
  egress:
    default: deny
    allow:
      - id: allowed-target
        cidrs: [127.0.0.2/32]
        ports: [{port}]
",
        python = python().display(),
        port = allowed.port(),
    );
    let path = layout.root().join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Run {
    outcomes: Vec<Value>,
    spans: Vec<Value>,
    logs: Vec<Value>,
    request_ids: Vec<String>,
    denied_hits: usize,
    allowed_hits: usize,
    outside: PathBuf,
}

async fn run_function(landlock: bool) -> Run {
    let _sandbox = support::SANDBOX.lock().await;
    require_python_module("awslambdaric", "awslambdaric");
    let layout = Layout::new();
    std::fs::copy(support::fixture("app.py"), layout.task().join("app.py")).unwrap();
    let manifest = layout.baseline();
    // Added after the baseline: an extension the manifest does not know. It is not executable,
    // so the emulator does not start it.
    std::fs::write(layout.opt().join("extensions/unknown-extension"), "not in the manifest\n").unwrap();

    let receiver = Receiver::start(layout.root());
    let allowed = Target::start("127.0.0.2");
    let denied = Target::start("127.0.0.3");
    let policy = policy(&layout, &allowed);
    let outside = layout.task().join("written-outside-tmp.txt");

    let exec_wrapper =
        if landlock { layout.opt().join("palisade-wrap") } else { support::wrapper_without_landlock(&layout) };
    let environment: BTreeMap<String, String> = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("PALISADE_POLICY", policy.display().to_string()),
        ("PALISADE_PROXY_PORT", support::free_port().to_string()),
        ("PALISADE_MANIFEST", manifest.display().to_string()),
        ("PALISADE_INTEGRITY_PREFIX", layout.root().display().to_string()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.clone()),
        ("PALISADE_LOG", "debug".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let config = Config {
        extensions_dir: Some(layout.opt().join("extensions")),
        runtime_command: vec![python().display().to_string(), "-m".into(), "awslambdaric".into(), "app.handler".into()],
        exec_wrapper: Some(exec_wrapper),
        task_root: layout.task(),
        handler: "app.handler".into(),
        environment,
        ..Config::default()
    };

    let emulator = Emulator::start(config).await.expect("start the emulator");
    assert_eq!(emulator.init_report().status, Status::Success, "{:?}\n{}", emulator.init_report(), logs(&emulator));

    let mut first = InvokeRequest::new(json!({"allowed": allowed.url, "denied": denied.url}).to_string());
    first.trace_id = Some(TRACE_HEADER.to_owned());
    let payloads = [
        first,
        InvokeRequest::new(json!({"write": outside, "write_tmp": "/tmp/palisade-layer-test.txt"}).to_string()),
        InvokeRequest::new(json!({"exec": ["/bin/sleep", "0.3"]}).to_string()),
    ];
    let mut outcomes = Vec::new();
    let mut request_ids = Vec::new();
    for payload in payloads {
        let outcome = emulator.invoke(payload).await.expect("invoke");
        assert_eq!(outcome.status, Status::Success, "{outcome:?}\n{}", logs(&emulator));
        request_ids.push(outcome.request_id.clone());
        outcomes.push(outcome.json().expect("a JSON response"));
    }
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let spans = receiver.wait_for_spans(3);
    assert_eq!(spans.len(), 3, "one span per invoke expected: {spans:#?}\n{}", logs(&emulator));
    Run {
        outcomes,
        spans,
        logs: receiver.log_records(),
        request_ids,
        denied_hits: denied.hits(),
        allowed_hits: allowed.hits(),
        outside,
    }
}

fn logs(emulator: &Emulator) -> String {
    format!("{:#?}", emulator.logs())
}

fn span_for(run: &Run, index: usize) -> &Value {
    let id = &run.request_ids[index];
    run.spans
        .iter()
        .find(|span| span["attributes"]["faas.invocation_id"] == json!(id))
        .unwrap_or_else(|| panic!("no span for invoke {index} ({id}): {:#?}", run.spans))
}

/// Checks shared by both kernels: egress, spans, report metrics, integrity and trace context.
fn assert_common(run: &Run) {
    assert_eq!(run.outcomes[0]["allowed"], 200, "{:?}", run.outcomes[0]);
    let denied = run.outcomes[0]["denied"].as_str().unwrap_or_default();
    assert!(denied.starts_with("error: HTTP Error 403"), "{denied}");
    assert_eq!(run.denied_hits, 0, "the denied target must never be reached");
    assert_eq!(run.allowed_hits, 1);
    assert!(run.outcomes[0]["no_proxy"].as_str().unwrap().contains("sandbox.localdomain"));
    assert_eq!(run.outcomes[1]["write_tmp"], "ok");

    for (index, id) in run.request_ids.iter().enumerate() {
        let span = span_for(run, index);
        assert_eq!(span["name"], "palisade.invoke");
        assert_eq!(span["attributes"]["faas.invocation_id"], json!(id));
        assert!(span["attributes"]["aws.lambda.report.duration_ms"].as_f64().is_some(), "{span:#}");
        assert!(span["attributes"]["aws.lambda.report.billed_duration_ms"].as_f64().is_some(), "{span:#}");
        assert!(span["attributes"]["aws.lambda.report.max_memory_used_mb"].as_f64().is_some(), "{span:#}");
        assert_eq!(span["attributes"]["aws.lambda.report.status"], "success");
        assert_eq!(span["attributes"].get("aws.lambda.report.missing"), None, "{span:#}");
        assert_eq!(span["resource"]["service.name"], "palisade-extension");
    }

    let first = span_for(run, 0);
    assert_eq!(support::trace_id_hex(first), "5759e988bd862e3fe1be46a994272793");
    let decisions = events_named(first, "palisade.egress.decision");
    assert_eq!(decisions.len(), 2, "{first:#}");
    assert_eq!(decisions[0]["attributes"]["palisade.decision"], "allow");
    assert_eq!(decisions[0]["attributes"]["server.address"], "127.0.0.2");
    assert_eq!(decisions[0]["attributes"]["palisade.rule.id"], "allowed-target");
    assert_eq!(decisions[1]["attributes"]["palisade.decision"], "deny");
    assert_eq!(decisions[1]["attributes"]["server.address"], "127.0.0.3");

    // The init check runs beside the first invokes, so its events are in the span of the invoke
    // during which it finished (hashing the debug binaries of this test takes a while).
    let verified: Vec<&Value> =
        run.spans.iter().flat_map(|span| events_named(span, "palisade.integrity.verified")).collect();
    assert_eq!(verified.len(), 1, "{:#?}", run.spans);
    assert_eq!(verified[0]["attributes"]["palisade.integrity.changes"], 1, "{:#}", verified[0]);
    let unknown: Vec<&Value> = run
        .spans
        .iter()
        .flat_map(|span| events_named(span, "palisade.integrity.changed"))
        .filter(|event| event["attributes"]["palisade.reason"] == "extension not in the integrity manifest")
        .collect();
    assert_eq!(unknown.len(), 1, "{:#?}", run.spans);
    assert_eq!(unknown[0]["attributes"]["file.path"], "/opt/extensions/unknown-extension");

    for index in 1..3 {
        assert!(!event_names(span_for(run, index)).contains(&"palisade.egress.decision".to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_function_with_landlock() {
    let run = run_function(true).await;

    assert_common(&run);
    assert!(
        run.outcomes[1]["write"].as_str().unwrap().starts_with("error: Permission denied"),
        "{:?}",
        run.outcomes[1]
    );
    assert!(!run.outside.exists());
    let exec = run.outcomes[2]["exec"].as_str().unwrap();
    assert!(exec.contains("Permission denied"), "the subprocess must be blocked: {exec}");

    let applied: Vec<&Value> =
        run.logs.iter().filter(|record| record["event_name"] == "palisade.policy.applied").collect();
    assert_eq!(applied.len(), 1, "{:#?}", run.logs);
    assert_eq!(applied[0]["attributes"]["palisade.landlock.status"], "enforced");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_function_without_landlock() {
    let run = run_function(false).await;

    assert_common(&run);

    // Without Landlock the write and the subprocess cannot be blocked: policy.applied reports that,
    // and the extension reports the process start.
    let applied: Vec<&Value> =
        run.logs.iter().filter(|record| record["event_name"] == "palisade.policy.applied").collect();
    assert_eq!(applied.len(), 2, "outer and inner launcher: {:#?}", run.logs);
    let inner = applied.iter().find(|record| record["attributes"]["palisade.policy.name"] == "lambda-e2e").unwrap();
    assert_ne!(inner["attributes"]["palisade.landlock.status"], "enforced", "{inner:#}");
    assert_eq!(inner["attributes"]["palisade.seccomp.status"], "enforced", "{inner:#}");
    assert_eq!(run.outcomes[2]["exec"], "ok");

    let third = span_for(&run, 2);
    let sleeps: Vec<&Value> = events_named(third, "palisade.process.started")
        .into_iter()
        .filter(|event| event["attributes"]["process.executable.path"].as_str().unwrap_or_default().ends_with("/sleep"))
        .collect();
    assert_eq!(sleeps.len(), 1, "{third:#}");
    assert_eq!(sleeps[0]["attributes"]["palisade.decision"], "deny");
    assert_eq!(sleeps[0]["attributes"]["process.command_args"], json!(["/bin/sleep", "0.3"]));
}
