//! Shutdown phase: SIGTERM to the runtime, SHUTDOWN to the extensions, SIGKILL when the budget
//! runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::json;

use super::millis_since;
use crate::config::{
    RUNTIME_GRACEFUL_SHUTDOWN, SHUTDOWN_BUDGET_EXTERNAL, SHUTDOWN_BUDGET_INTERNAL, SHUTDOWN_BUDGET_NONE,
};
use crate::outcome::{ShutdownReason, ShutdownReport};
use crate::process::Role;
use crate::record::{unix_ms, RecordKind};
use crate::state::{AgentStatus, Delivery, EventType, Phase, Sandbox};
use crate::Error;

/// How long telemetry waits for the extensions to receive SHUTDOWN before it resumes.
const SHUTDOWN_HANDOVER: Duration = Duration::from_millis(100);

/// How long delivery tasks may keep sending after the processes are killed.
const TELEMETRY_DRAIN: Duration = Duration::from_millis(500);

pub(crate) async fn run(sandbox: &Arc<Sandbox>, reason: ShutdownReason) -> Result<ShutdownReport, Error> {
    let started = Instant::now();
    let (external, internal) = {
        let mut state = sandbox.lock();
        if matches!(state.phase, Phase::Shutdown | Phase::Terminated) {
            return Err(Error::NotReady { state: state.phase.name() });
        }
        state.phase = Phase::Shutdown;
        (state.extensions.iter().any(|e| e.external), state.extensions.iter().any(|e| !e.external))
    };
    let budget = sandbox.config.shutdown_budget.unwrap_or(if external {
        SHUTDOWN_BUDGET_EXTERNAL
    } else if internal {
        SHUTDOWN_BUDGET_INTERNAL
    } else {
        SHUTDOWN_BUDGET_NONE
    });
    let deadline = tokio::time::Instant::now() + budget;
    let deadline_ms = unix_ms() + budget.as_millis() as u64;
    sandbox.record(
        RecordKind::ShutdownStarted,
        None,
        json!({ "reason": reason.as_str(), "budgetMs": budget.as_millis() as u64 }),
    );
    super::thaw_processes(sandbox);

    // Runtime: SIGTERM and a short graceful period when extensions are registered, then SIGKILL.
    if external || internal {
        sandbox.processes.signal(Signal::SIGTERM, |p| p.role == Role::Runtime);
        let graceful = tokio::time::Instant::now() + RUNTIME_GRACEFUL_SHUTDOWN.min(budget);
        sandbox.wait_until(graceful, |state| state.runtime.status == AgentStatus::Exited).await;
    }
    for name in sandbox.processes.signal(Signal::SIGKILL, |p| p.role == Role::Runtime) {
        sandbox.record(RecordKind::ProcessKilled, Some(&name), json!({ "afterBudget": false }));
    }

    // Extensions registered for SHUTDOWN get the event, then the rest of the budget.
    // NOTE: the Extensions API page shows deadlineMs as "time remaining in milliseconds"; like
    // INVOKE's deadlineMs, the emulator sends the deadline in milliseconds since the Unix epoch.
    let event = json!({
        "eventType": "SHUTDOWN",
        "shutdownReason": reason.as_str(),
        "deadlineMs": deadline_ms,
    });
    {
        let mut state = sandbox.lock();
        for extension in &mut state.extensions {
            if extension.events.contains(&EventType::Shutdown) && extension.agent.is_live() {
                extension.agent.push(Delivery::Extension(event.clone()));
            }
        }
    }
    sandbox.bump();

    // Telemetry buffered since the last freeze (the last invoke's platform.report in
    // particular) follows the SHUTDOWN event, as extensions observe in Lambda.
    // NOTE: the documentation does not state this order; the emulator makes it deterministic.
    let handed_over = tokio::time::Instant::now() + SHUTDOWN_HANDOVER;
    sandbox
        .wait_until(handed_over.min(deadline), |state| {
            state.extensions.iter().all(|e| e.agent.queue.is_empty() || !e.agent.is_live())
        })
        .await;
    sandbox.telemetry_paused.send_replace(false);
    sandbox.telemetry.flush_all();
    let finished = sandbox
        .wait_until(deadline, |state| {
            state.extensions.iter().filter(|e| e.events.contains(&EventType::Shutdown)).all(|e| e.agent.is_done())
        })
        .await;

    let killed = sandbox.processes.signal(Signal::SIGKILL, |_| true);
    for name in &killed {
        sandbox.record(RecordKind::ProcessKilled, Some(name), json!({ "afterBudget": !finished }));
    }
    let all_exited = tokio::time::Instant::now() + Duration::from_millis(500);
    while sandbox.processes.list().iter().any(|p| p.running) && tokio::time::Instant::now() < all_exited {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    for task in sandbox.telemetry.close_all() {
        let abort = task.abort_handle();
        if tokio::time::timeout(TELEMETRY_DRAIN, task).await.is_err() {
            abort.abort();
        }
    }

    sandbox.lock().phase = Phase::Terminated;
    let duration_ms = millis_since(started);
    sandbox.record(
        RecordKind::ShutdownDone,
        None,
        json!({ "durationMs": duration_ms, "killed": killed, "budgetExhausted": !finished }),
    );
    Ok(ShutdownReport {
        reason,
        budget_ms: budget.as_millis() as u64,
        duration_ms,
        budget_exhausted: !finished,
        killed,
    })
}
