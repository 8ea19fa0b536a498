//! Telemetry API: subscription, platform event records, log lines and batching limits.

mod common;

use common::{any, position, Workspace};
use palisade_lambda_emulator::{Emulator, InvokeRequest, RecordKind, ShutdownReason};
use serde_json::{json, Value};

/// Reads every batch the extension received, in arrival order, with its arrival time in ms.
fn batches(workspace: &Workspace, name: &str) -> Vec<(f64, Vec<Value>, Value)> {
    workspace
        .journal_of(name, "telemetry")
        .into_iter()
        .map(|entry| {
            let batch = entry["batch"].as_array().expect("each delivery is a JSON array").clone();
            (entry["t"].as_f64().unwrap() * 1000.0, batch, entry)
        })
        .collect()
}

fn events(workspace: &Workspace, name: &str) -> Vec<Value> {
    batches(workspace, name).into_iter().flat_map(|(_, batch, _)| batch).collect()
}

fn index_of(events: &[Value], event_type: &str, nth: usize) -> usize {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["type"] == event_type)
        .nth(nth)
        .unwrap_or_else(|| panic!("no {event_type} #{nth} in {events:#?}"))
        .0
}

#[tokio::test]
async fn platform_events_and_logs_delivered() {
    let workspace = Workspace::new();
    workspace.add_python_extension(
        "collector",
        &[
            "--telemetry-types",
            "platform,function,extension",
            "--buffering",
            r#"{"timeoutMs":25}"#,
            "--exit-on-shutdown",
        ],
    );
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    let first = emulator.invoke(InvokeRequest::new(r#"{"print":"hello from handler"}"#)).await.expect("invoke");
    let second = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(workspace.journal_of("collector", "subscribe")[0]["status"], 200);
    assert_eq!(workspace.journal_of("collector", "subscribe")[0]["body"], "\"OK\"");
    let received = batches(&workspace, "collector");
    assert!(!received.is_empty());
    for (_, batch, entry) in &received {
        assert!(!batch.is_empty(), "no empty batches");
        assert_eq!(entry["path"], "/telemetry");
        assert!(entry["host"].as_str().unwrap().starts_with("sandbox.localdomain:"), "{entry}");
        for event in batch {
            let time = event["time"].as_str().unwrap();
            assert_eq!(time.len(), 24, "ISO 8601 with milliseconds: {time}");
            assert!(time.ends_with('Z'), "UTC: {time}");
        }
    }

    let all = events(&workspace, "collector");
    let init_start = index_of(&all, "platform.initStart", 0);
    let runtime_done_init = index_of(&all, "platform.initRuntimeDone", 0);
    let init_report = index_of(&all, "platform.initReport", 0);
    let start = index_of(&all, "platform.start", 0);
    let runtime_done = index_of(&all, "platform.runtimeDone", 0);
    let report = index_of(&all, "platform.report", 0);
    let report2 = index_of(&all, "platform.report", 1);
    assert!(init_start < runtime_done_init);
    assert!(runtime_done_init < init_report);
    assert!(init_report < start);
    assert!(start < runtime_done);
    assert!(runtime_done < report);
    assert!(report < report2);

    assert_eq!(all[init_start]["record"]["initializationType"], "on-demand");
    assert_eq!(all[init_start]["record"]["phase"], "init");
    assert_eq!(all[runtime_done_init]["record"]["status"], "success");
    assert_eq!(all[init_report]["record"]["status"], "success");
    assert!(all[init_report]["record"]["metrics"]["durationMs"].as_f64().unwrap() > 0.0);
    let extension_event = &all[index_of(&all, "platform.extension", 0)]["record"];
    assert_eq!(*extension_event, json!({"name": "collector", "state": "Ready", "events": ["INVOKE", "SHUTDOWN"]}));
    let subscription = &all[index_of(&all, "platform.telemetrySubscription", 0)]["record"];
    assert_eq!(subscription["types"], json!(["platform", "function", "extension"]));

    let start_record = &all[start]["record"];
    assert_eq!(start_record["requestId"], json!(first.request_id));
    assert_eq!(start_record["version"], "$LATEST");
    assert_eq!(start_record["tracing"]["type"], "X-Amzn-Trace-Id");
    let done_record = &all[runtime_done]["record"];
    assert_eq!(done_record["requestId"], json!(first.request_id));
    assert_eq!(done_record["status"], "success");
    assert!(done_record["metrics"]["durationMs"].as_f64().is_some());
    assert!(done_record["metrics"]["producedBytes"].as_u64().unwrap() > 0);
    assert_eq!(done_record["spans"][0]["name"], "responseLatency");
    assert_eq!(done_record["spans"][1]["name"], "responseDuration");

    let report_record = &all[report]["record"];
    assert_eq!(report_record["requestId"], json!(first.request_id));
    assert_eq!(report_record["status"], "success");
    let metrics = &report_record["metrics"];
    assert!(metrics["durationMs"].as_f64().is_some());
    assert_eq!(metrics["billedDurationMs"], json!(first.billed_duration_ms));
    assert_eq!(metrics["memorySizeMB"], 128);
    assert!(metrics["maxMemoryUsedMB"].as_u64().unwrap() > 0);
    assert!(metrics["initDurationMs"].as_f64().is_some(), "the first report has initDurationMs");
    let report2_record = &all[report2]["record"];
    assert_eq!(report2_record["requestId"], json!(second.request_id));
    assert!(report2_record["metrics"].get("initDurationMs").is_none());

    let function_lines: Vec<&Value> = all.iter().filter(|e| e["type"] == "function").collect();
    assert_eq!(function_lines.len(), 1, "{function_lines:?}");
    assert_eq!(function_lines[0]["record"], "hello from handler");
    let function_line = all.iter().position(|e| e["type"] == "function").unwrap();
    assert!(start < function_line);
    assert!(function_line < runtime_done);
    assert!(all.iter().any(|e| e["type"] == "extension" && e["record"] == "[collector] initialized"));

    // The sandbox freezes right after the last invoke, so its report follows SHUTDOWN.
    let record = emulator.record();
    let shutdown_started = position(&record, RecordKind::ShutdownStarted, None, any);
    let shutdown_event =
        position(&record, RecordKind::ExtensionEventDelivered, Some("collector"), |d| d["eventType"] == "SHUTDOWN");
    let last_report = record[shutdown_started..]
        .iter()
        .find(|e| {
            e.kind == RecordKind::TelemetryDelivered
                && e.detail["types"].as_array().unwrap().iter().any(|t| t == "platform.report")
        })
        .expect("the last report is delivered during shutdown");
    assert!(shutdown_event < last_report.seq as usize, "the last report follows the SHUTDOWN event");
    let last_report_received = received.iter().any(|(_, batch, _)| {
        batch.iter().any(|e| e["type"] == "platform.report" && e["record"]["requestId"] == json!(second.request_id))
    });
    assert!(last_report_received, "the extension received the last report");
}

#[tokio::test]
async fn batches_respect_max_items() {
    let workspace = Workspace::new();
    workspace.add_python_extension(
        "collector",
        &[
            "--telemetry-types",
            "function",
            "--buffering",
            r#"{"maxItems":1000,"maxBytes":1048576,"timeoutMs":30000}"#,
            "--exit-on-shutdown",
        ],
    );
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    emulator.invoke(InvokeRequest::new(r#"{"lines":2500}"#)).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let sizes: Vec<usize> = batches(&workspace, "collector").iter().map(|(_, b, _)| b.len()).collect();
    assert_eq!(sizes, vec![1000, 1000, 500], "two full batches, the rest flushed at shutdown");
    let all = events(&workspace, "collector");
    assert!(all.iter().all(|e| e["type"] == "function"), "only the subscribed stream");
    assert_eq!(all[0]["record"], "line 000000 ");
    assert_eq!(all[2499]["record"], "line 002499 ");
}

#[tokio::test]
async fn batches_respect_max_bytes() {
    let workspace = Workspace::new();
    workspace.add_python_extension(
        "collector",
        &[
            "--telemetry-types",
            "function",
            "--buffering",
            r#"{"maxItems":10000,"maxBytes":262144,"timeoutMs":30000}"#,
            "--exit-on-shutdown",
        ],
    );
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    emulator.invoke(InvokeRequest::new(r#"{"lines":700,"width":1000}"#)).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let received = batches(&workspace, "collector");
    let total: usize = received.iter().map(|(_, b, _)| b.len()).sum();
    assert_eq!(total, 700);
    assert!(received.len() >= 3, "700 events of about 1 KiB need several 256 KiB batches");
    for (_, batch, _) in &received[..received.len() - 1] {
        let bytes: usize = batch.iter().map(|e| e.to_string().len()).sum();
        let last = batch.last().unwrap().to_string().len();
        assert!(bytes >= 262_144, "a full batch reaches maxBytes: {bytes}");
        assert!(bytes - last < 262_144, "and is sent as soon as it does: {bytes}");
    }
}

#[tokio::test]
async fn batches_respect_timeout() {
    let workspace = Workspace::new();
    workspace.add_python_extension(
        "collector",
        &[
            "--telemetry-types",
            "function",
            "--buffering",
            r#"{"maxItems":10000,"maxBytes":1048576,"timeoutMs":100}"#,
            "--exit-on-shutdown",
        ],
    );
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    emulator
        .invoke(InvokeRequest::new(r#"{"print":"first","sleep_ms":800,"print_after":"second"}"#))
        .await
        .expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let received = batches(&workspace, "collector");
    let arrival = |line: &str| {
        received
            .iter()
            .find(|(_, batch, _)| batch.iter().any(|e| e["record"] == line))
            .map(|(t, batch, _)| (*t, batch.len()))
            .unwrap_or_else(|| panic!("{line} was delivered"))
    };
    let (first_at, first_len) = arrival("first");
    let (second_at, _) = arrival("second");
    assert_eq!(first_len, 1, "the first line goes alone once timeoutMs passes");
    assert!(second_at - first_at >= 500.0, "first at {first_at}, second at {second_at}");
}

#[tokio::test]
async fn tcp_delivers_ndjson_lines() {
    let workspace = Workspace::new();
    workspace.add_python_extension(
        "collector",
        &[
            "--telemetry-types",
            "platform",
            "--telemetry-protocol",
            "TCP",
            "--buffering",
            r#"{"timeoutMs":25}"#,
            "--exit-on-shutdown",
        ],
    );
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    let outcome = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(workspace.journal_of("collector", "subscribe")[0]["status"], 200);
    let lines: Vec<Value> =
        workspace.journal_of("collector", "telemetry_line").into_iter().map(|entry| entry["event"].clone()).collect();
    let types: Vec<&str> = lines.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in
        ["platform.initStart", "platform.initReport", "platform.start", "platform.runtimeDone", "platform.report"]
    {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    let report = lines.iter().find(|e| e["type"] == "platform.report").unwrap();
    assert_eq!(report["record"]["requestId"], json!(outcome.request_id));
}
