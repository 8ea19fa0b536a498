//! Freeze between invokes: every started process and its descendants stop until the next
//! invoke or the shutdown.

mod common;

use std::time::Duration;

use common::Workspace;
use palisade_lambda_emulator::{Emulator, InvokeRequest, RecordKind, ShutdownReason};
use serde_json::Value;

/// State letter of a process from /proc/PID/stat (`T` when stopped), or None when it is gone.
fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

fn tick_times(entries: &[Value]) -> Vec<f64> {
    entries.iter().map(|e| e["t"].as_f64().unwrap() * 1000.0).collect()
}

#[tokio::test]
async fn frozen_extension_gets_no_ticks() {
    let workspace = Workspace::new();
    workspace.add_python_extension(
        "ticker",
        &["--tick-ms", "10", "--child-tick-ms", "10", "--invoke-work-ms", "300", "--exit-on-shutdown"],
    );
    let emulator = Emulator::start(workspace.config()).await.expect("start emulator");

    emulator.invoke(InvokeRequest::new("{}")).await.expect("first invoke");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(emulator.is_frozen());
    let child_pid = workspace.journal_of("ticker", "child")[0]["pid"].as_i64().unwrap() as i32;
    let mut pids: Vec<i32> = emulator.pids().into_iter().map(|(_, pid)| pid).collect();
    pids.push(child_pid);
    for pid in &pids {
        assert_eq!(process_state(*pid), Some('T'), "pid {pid} is stopped while frozen");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    emulator.invoke(InvokeRequest::new("{}")).await.expect("second invoke");
    tokio::time::sleep(Duration::from_millis(500)).await;
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    // Frozen intervals from the record, in wall-clock milliseconds.
    let record = emulator.record();
    let mut intervals = Vec::new();
    let mut frozen_at = None;
    for entry in &record {
        match entry.kind {
            RecordKind::Frozen => frozen_at = Some(entry.unix_ms as f64),
            RecordKind::Thawed => {
                intervals.push((frozen_at.take().expect("thaw follows a freeze"), entry.unix_ms as f64))
            }
            _ => {}
        }
    }
    assert_eq!(intervals.len(), 3, "frozen after init and after each invoke: {intervals:?}");
    assert!(intervals[1].1 - intervals[1].0 >= 900.0, "the second interval spans the idle time");

    let ticks = tick_times(&workspace.journal_of("ticker", "tick"));
    let child_ticks = tick_times(&workspace.journal_of("ticker", "child_tick"));
    for (frozen, thawed) in &intervals {
        // A tick stamped just before the signal may land a few milliseconds after the record.
        let during = |t: &&f64| **t > frozen + 20.0 && **t < *thawed;
        assert_eq!(ticks.iter().filter(during).count(), 0, "extension ticked while frozen in {frozen}..{thawed}");
        assert_eq!(
            child_ticks.iter().filter(during).count(),
            0,
            "detached child ticked while frozen in {frozen}..{thawed}"
        );
    }

    // While thawed for the invokes (300 ms of extension work each), the ticks go on.
    let (_, first_thaw) = intervals[0];
    let (second_freeze, _) = intervals[1];
    let running = |t: &&f64| **t > first_thaw && **t < second_freeze;
    assert!(ticks.iter().filter(running).count() >= 5, "ticks while running: {ticks:?}");
    assert!(child_ticks.iter().filter(running).count() >= 5, "child ticks while running");

    // The detached child is killed with the sandbox.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(process_state(child_pid), None | Some('Z')), "the detached child is gone after shutdown");
}
