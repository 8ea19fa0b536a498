//! Shutdown phase: SHUTDOWN event, the 2,000 ms budget, and SIGKILL of what is still running.

mod common;

use std::time::Duration;

use common::{any, position, Workspace};
use palisade_lambda_emulator::{Emulator, InvokeRequest, RecordKind, ShutdownReason};

#[tokio::test]
async fn sigkill_after_budget() {
    let workspace = Workspace::new();
    workspace.add_python_extension("stubborn", &["--ignore-shutdown"]);
    workspace.add_python_extension("polite", &["--exit-on-shutdown"]);
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");

    let report = emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert!(report.budget_exhausted, "{report:?}");
    assert_eq!(report.killed, vec!["stubborn".to_owned()]);
    assert!(report.duration_ms >= 2_000.0, "{report:?}");
    assert!(report.duration_ms < 3_000.0, "{report:?}");

    let record = emulator.record();
    let started = &record[position(&record, RecordKind::ShutdownStarted, None, any)];
    let delivered =
        position(&record, RecordKind::ExtensionEventDelivered, Some("stubborn"), |d| d["eventType"] == "SHUTDOWN");
    let killed = &record[position(&record, RecordKind::ProcessKilled, Some("stubborn"), |d| d["afterBudget"] == true)];
    let exited = &record[position(&record, RecordKind::ProcessExited, Some("stubborn"), any)];
    assert!(delivered > started.seq as usize);
    let waited_ms = (killed.elapsed_us - started.elapsed_us) / 1000;
    assert!((2_000..2_500).contains(&waited_ms), "SIGKILL {waited_ms} ms after the SHUTDOWN phase began");
    assert_eq!(exited.detail["signal"], 9, "the stubborn extension dies of SIGKILL");
    let polite_exit = &record[position(&record, RecordKind::ProcessExited, Some("polite"), any)];
    assert_eq!(polite_exit.detail["code"], 0, "the polite extension exits by itself");

    let shutdown_event = workspace
        .journal_of("stubborn", "event")
        .into_iter()
        .find(|e| e["event"]["eventType"] == "SHUTDOWN")
        .expect("the stubborn extension got SHUTDOWN");
    let deadline = shutdown_event["event"]["deadlineMs"].as_u64().unwrap();
    assert!(deadline.abs_diff(started.unix_ms + 2_000) <= 50, "deadlineMs is the end of the budget");
}

#[tokio::test]
async fn runtime_gets_sigterm_before_shutdown_event() {
    let workspace = Workspace::new();
    workspace.add_python_extension("polite", &["--exit-on-shutdown"]);
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    let record = emulator.record();
    let runtime_exit = position(&record, RecordKind::ProcessExited, Some("runtime"), any);
    let shutdown_event =
        position(&record, RecordKind::ExtensionEventDelivered, Some("polite"), |d| d["eventType"] == "SHUTDOWN");
    assert_eq!(record[runtime_exit].detail["signal"], 15, "the runtime gets SIGTERM");
    assert!(runtime_exit < shutdown_event);
}

#[tokio::test]
async fn no_extensions_means_zero_budget() {
    let workspace = Workspace::new();
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");
    emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");

    let report = emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(report.budget_ms, 0);
    assert!(report.duration_ms < 1_000.0, "{report:?}");
    let record = emulator.record();
    let exited = &record[position(&record, RecordKind::ProcessExited, Some("runtime"), any)];
    assert_eq!(exited.detail["signal"], 9, "without extensions the runtime is killed at once");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
