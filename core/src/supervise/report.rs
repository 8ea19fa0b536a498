//! Events for supervised system calls, with repeats counted and rate-limited.
//!
//! The first call of a system call by a thread is reported at once. Further calls of the same
//! system call by the same thread are counted and reported at most once per
//! [`REPEAT_INTERVAL`](super::REPEAT_INTERVAL), with `palisade.repeat_count` saying how many
//! calls the event stands for. Across all threads at most [`EVENTS_PER_INTERVAL`] events go out
//! per interval; the rest wait, counted, for the next one.

use std::collections::HashMap;
use std::time::Instant;

use super::proc::ProcessInfo;
use super::{Config, Decision, REPEAT_INTERVAL};
use crate::sys::seccomp::Notification;
use crate::telemetry::{attributes, names, Event, Severity, Telemetry};

/// Maximum events sent per interval. Calls beyond it are counted and reported later.
pub const EVENTS_PER_INTERVAL: u64 = 200;

/// Maximum (thread, system call) pairs tracked. Past it, every pending count is reported and
/// the table starts over.
const MAX_TRACKED: usize = 4096;

#[derive(Debug)]
struct Entry {
    process: Option<ProcessInfo>,
    nr: i32,
    arch: u32,
    args: [u64; 6],
    pending: u64,
    last_emitted: Option<Instant>,
}

/// What every event of one supervisor says about the policy and the decision.
#[derive(Debug)]
struct Labels {
    event_name: &'static str,
    severity: Severity,
    decision: &'static str,
    errno: Option<&'static str>,
    mode: &'static str,
    policy_name: String,
    policy_hash: String,
}

#[derive(Debug)]
pub(super) struct Reporter {
    telemetry: Telemetry,
    labels: Labels,
    entries: HashMap<(u32, i32), Entry>,
    window_start: Instant,
    window_events: u64,
    emitted: u64,
}

impl Reporter {
    pub(super) fn new(config: &Config, telemetry: Telemetry) -> Self {
        let (event_name, severity, decision, errno, mode) = match &config.decision {
            Decision::Deny(errno) => (names::SYSCALL_DENIED, Severity::Warn, "deny", Some(errno.name()), "enforce"),
            Decision::Audit | Decision::Learn(_) => (names::SYSCALL_AUDITED, Severity::Info, "allow", None, "audit"),
        };
        let labels = Labels {
            event_name,
            severity,
            decision,
            errno,
            mode,
            policy_name: config.policy_name.clone(),
            policy_hash: config.policy_hash.clone(),
        };
        Self { telemetry, labels, entries: HashMap::new(), window_start: Instant::now(), window_events: 0, emitted: 0 }
    }

    /// Counts one call; `process` reads what /proc says about the caller, the first time only.
    pub(super) fn record(&mut self, notification: &Notification, process: impl FnOnce() -> Option<ProcessInfo>) {
        if self.entries.len() >= MAX_TRACKED {
            self.flush_all();
            self.entries.clear();
        }
        let now = Instant::now();
        let key = (notification.tid, notification.nr);
        // NOTE: /proc is read once per (thread, system call); if the thread executes another
        // program, later counts of the same call still name the first executable.
        let entry = self.entries.entry(key).or_insert_with(|| Entry {
            process: process(),
            nr: notification.nr,
            arch: notification.arch,
            args: notification.args,
            pending: 0,
            last_emitted: None,
        });
        entry.pending += 1;
        entry.args = notification.args;

        let first = entry.last_emitted.is_none();
        if first && self.take_budget(now) {
            self.emit(key, now);
        }
    }

    /// Reports the counts whose interval has passed.
    pub(super) fn flush_due(&mut self, now: Instant) {
        let due: Vec<(u32, i32)> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                entry.pending > 0 && entry.last_emitted.is_none_or(|last| now.duration_since(last) >= REPEAT_INTERVAL)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            if !self.take_budget(now) {
                return;
            }
            self.emit(key, now);
        }
    }

    /// Reports every pending count, whatever the budget; used when the workload is gone.
    pub(super) fn flush_all(&mut self) {
        let now = Instant::now();
        let pending: Vec<(u32, i32)> =
            self.entries.iter().filter(|(_, entry)| entry.pending > 0).map(|(key, _)| *key).collect();
        for key in pending {
            self.emit(key, now);
        }
        let _ = self.telemetry.flush(REPEAT_INTERVAL);
    }

    pub(super) fn emitted(&self) -> u64 {
        self.emitted
    }

    fn take_budget(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= REPEAT_INTERVAL {
            self.window_start = now;
            self.window_events = 0;
        }
        if self.window_events >= EVENTS_PER_INTERVAL {
            return false;
        }
        self.window_events += 1;
        true
    }

    /// Reports the pending count of `key` and starts a new interval for it.
    fn emit(&mut self, key: (u32, i32), now: Instant) {
        let Some(entry) = self.entries.get_mut(&key) else { return };
        let event = build_event(&self.labels, entry);
        entry.pending = 0;
        entry.last_emitted = Some(now);
        self.emitted += 1;
        self.telemetry.emit(event);
    }
}

fn build_event(labels: &Labels, entry: &Entry) -> Event {
    let syscall = syscall_name(entry.nr);
    let pid = entry.process.as_ref().map(|process| process.pid);
    let executable = entry.process.as_ref().and_then(|process| process.executable.clone());
    let outcome = match labels.errno {
        Some(errno) => format!("denied with {errno}"),
        None => "let through (audit mode)".to_owned(),
    };
    let body = format!(
        "system call {syscall} outside the allow-list {outcome}: pid {}, {}{}",
        pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string()),
        executable.as_ref().map_or_else(|| "executable unknown".to_owned(), |path| path.display().to_string()),
        if entry.pending > 1 { format!(", {} calls", entry.pending) } else { String::new() }
    );
    Event::new(labels.event_name, labels.severity)
        .with_body(body)
        .with(attributes::SYSCALL_NAME, syscall.clone())
        .with(attributes::SYSCALL_NUMBER, entry.nr)
        .with(attributes::SYSCALL_ARCH, arch_name(entry.arch))
        .with(attributes::SYSCALL_ARGS, entry.args.iter().map(|arg| format!("{arg:#x}")).collect::<Vec<_>>())
        .with(attributes::REPEAT_COUNT, entry.pending)
        .with(attributes::DECISION, labels.decision)
        .with_optional(attributes::SECCOMP_DEFAULT_ERRNO, labels.errno)
        .with_optional(attributes::PROCESS_PID, pid)
        .with_optional(attributes::PROCESS_EXECUTABLE_PATH, executable.map(|path| path.display().to_string()))
        .with(attributes::POLICY_NAME, labels.policy_name.as_str())
        .with(attributes::POLICY_HASH, labels.policy_hash.as_str())
        .with(attributes::POLICY_MODE, labels.mode)
}

/// The system call's name on this architecture, or `syscall_N` for a number it does not know.
pub(super) fn syscall_name(nr: i32) -> String {
    usize::try_from(nr)
        .ok()
        .and_then(syscalls::Sysno::new)
        .map_or_else(|| format!("syscall_{nr}"), |sysno| sysno.name().to_owned())
}

/// The architecture named by an AUDIT_ARCH_* value.
pub(super) fn arch_name(arch: u32) -> &'static str {
    match arch {
        0xC000_003E => "x86_64",
        0x4000_0003 => "x86",
        0xC000_00B7 => "aarch64",
        0x4000_0028 => "arm",
        0xC000_00F3 => "riscv64",
        _ => "unknown",
    }
}
