//! Watches the processes of the execution environment: every process under the extension's
//! parent (Lambda's init) that the extension has not seen yet is reported once per executable,
//! with its command line, and checked against the policy's `process.execute` list.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use palisade_core::telemetry::{attributes, names, Event, Severity};

use crate::invocation::Tracker;

/// Reports process starts until the task is dropped, scanning every `interval`.
pub async fn watch(tracker: Tracker, execute: Option<Vec<PathBuf>>, interval: Duration) {
    let own_pid = std::process::id();
    let root = std::os::unix::process::parent_id();
    let mut seen: HashSet<(u32, PathBuf)> = HashSet::new();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        ticker.tick().await;
        for pid in descendants(root) {
            if pid == own_pid {
                continue;
            }
            let Ok(executable) = std::fs::read_link(format!("/proc/{pid}/exe")) else { continue };
            if !seen.insert((pid, executable.clone())) {
                continue;
            }
            tracker.record(started_event(pid, &executable, execute.as_deref()));
        }
    }
}

/// Every descendant of `root`, read from `/proc/PID/task/TID/children`.
fn descendants(root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else { continue };
            for child in children.split_whitespace().filter_map(|child| child.parse().ok()) {
                found.push(child);
                stack.push(child);
            }
        }
    }
    found
}

/// Whether the policy lets `executable` run: it is listed, or lies under a listed directory.
/// `None` means the policy has no `process.execute` list, which allows every executable.
pub fn allowed(executable: &Path, execute: Option<&[PathBuf]>) -> bool {
    execute.is_none_or(|list| list.iter().any(|entry| executable.starts_with(entry)))
}

fn started_event(pid: u32, executable: &Path, execute: Option<&[PathBuf]>) -> Event {
    let arguments: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|byte| *byte == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let parent = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|stat| parent_pid(&stat));

    let allowed = allowed(executable, execute);
    let (severity, decision, body) = match allowed {
        true => (Severity::Info, "allow", format!("process started: {}", executable.display())),
        false => {
            (Severity::Warn, "deny", format!("process started outside spec.process.execute: {}", executable.display()))
        }
    };
    Event::new(names::PROCESS_STARTED, severity)
        .with_body(body)
        .with(attributes::PROCESS_PID, pid)
        .with_optional(attributes::PROCESS_PARENT_PID, parent)
        .with(attributes::PROCESS_EXECUTABLE_PATH, executable.display().to_string())
        .with(attributes::PROCESS_COMMAND_ARGS, arguments)
        .with(attributes::DECISION, decision)
}

/// The parent pid from `/proc/PID/stat`, whose second field (the command name) may contain spaces.
fn parent_pid(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_list_matches_files_and_directories() {
        let list = vec![PathBuf::from("/usr/bin/python3.12"), PathBuf::from("/var/task/bin")];

        assert!(allowed(Path::new("/usr/bin/python3.12"), Some(&list)));
        assert!(allowed(Path::new("/var/task/bin/tool"), Some(&list)));
        assert!(!allowed(Path::new("/usr/bin/curl"), Some(&list)));
        assert!(!allowed(Path::new("/usr/bin/python3.1"), Some(&list)));
        assert!(allowed(Path::new("/usr/bin/curl"), None));
    }

    #[test]
    fn parent_pid_read_past_spaced_name() {
        assert_eq!(parent_pid("42 (my prog) S 7 42 42 0"), Some(7));
    }

    #[test]
    fn child_process_seen_as_descendant() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();

        let found = descendants(std::process::id());
        child.kill().unwrap();
        child.wait().unwrap();

        assert!(found.contains(&child.id()), "{found:?}");
    }
}
