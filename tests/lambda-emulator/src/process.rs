//! Processes of the sandbox: start with captured output, freeze, thaw and kill.
//!
//! Each process starts in its own process group, so a signal to the group reaches the children it
//! forks. Descendants that leave the group (with `setsid` or `setpgid`) are found through `/proc`
//! and signalled one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::record::RecordKind;
use crate::state::{AgentStatus, Sandbox};
use crate::telemetry::LogSource;
use crate::Error;

/// Role of a started process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// An external extension, named by its file name.
    Extension(String),
    Runtime,
}

#[derive(Debug, Clone)]
pub(crate) struct ProcessInfo {
    pub name: String,
    pub role: Role,
    pub pid: i32,
    pub running: bool,
}

#[derive(Debug, Default)]
pub(crate) struct ProcessTable {
    processes: Mutex<Vec<ProcessInfo>>,
    /// Descendants outside the started process groups that the last freeze stopped.
    stray_stopped: Mutex<BTreeSet<i32>>,
    /// Every such descendant seen so far, with the pid of the started process it descends from:
    /// an orphan is no longer found through its parent, so SIGKILL also goes to these.
    strays_seen: Mutex<BTreeMap<i32, i32>>,
}

impl ProcessTable {
    pub(crate) fn list(&self) -> Vec<ProcessInfo> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_exited(&self, pid: i32) {
        let mut processes = self.processes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = processes.iter_mut().find(|p| p.pid == pid) {
            p.running = false;
        }
    }

    /// Lists every started process group. A group outlives its leader while the leader's
    /// children run, so groups of exited leaders are included. Signalling an empty group fails
    /// with ESRCH, which is ignored.
    fn all_groups(&self) -> Vec<(String, i32)> {
        self.list().into_iter().map(|p| (p.name, p.pid)).collect()
    }

    /// Sends SIGSTOP to every started process group and to descendants outside them.
    pub(crate) fn freeze(&self) -> usize {
        let groups = self.all_groups();
        let strays = strays(&groups);
        for (_, pgid) in &groups {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGSTOP);
        }
        for pid in strays.keys() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGSTOP);
        }
        let count = groups.len() + strays.len();
        self.strays_seen.lock().unwrap_or_else(|e| e.into_inner()).extend(strays.iter());
        *self.stray_stopped.lock().unwrap_or_else(|e| e.into_inner()) = strays.into_keys().collect();
        count
    }

    /// Sends SIGCONT to what [`ProcessTable::freeze`] stopped.
    pub(crate) fn thaw(&self) {
        for (_, pgid) in self.all_groups() {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGCONT);
        }
        let strays = std::mem::take(&mut *self.stray_stopped.lock().unwrap_or_else(|e| e.into_inner()));
        for pid in strays {
            let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
        }
    }

    /// Sends `signal` to the process group of every started process that `select` accepts, and
    /// to their descendants outside it. Returns the names of those whose leader was running.
    pub(crate) fn signal(&self, signal: Signal, select: impl Fn(&ProcessInfo) -> bool) -> Vec<String> {
        let chosen: Vec<ProcessInfo> = self.list().into_iter().filter(|p| select(p)).collect();
        let groups: Vec<(String, i32)> = chosen.iter().map(|p| (p.name.clone(), p.pid)).collect();
        let mut targets: BTreeSet<i32> = strays(&groups).into_keys().collect();
        if signal == Signal::SIGKILL {
            let seen = self.strays_seen.lock().unwrap_or_else(|e| e.into_inner());
            let leaders: BTreeSet<i32> = groups.iter().map(|(_, pid)| *pid).collect();
            targets.extend(seen.iter().filter(|(_, leader)| leaders.contains(leader)).map(|(pid, _)| *pid));
        }
        for pid in targets {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        for (_, pgid) in &groups {
            let _ = killpg(Pid::from_raw(*pgid), signal);
        }
        chosen.into_iter().filter(|p| p.running).map(|p| p.name).collect()
    }

    /// Peak resident memory of the started processes (VmHWM summed), in MiB.
    pub(crate) fn max_memory_used_mb(&self) -> u64 {
        let kib: u64 = self.list().iter().filter(|p| p.running).filter_map(|p| vm_hwm_kib(p.pid)).sum();
        kib.div_ceil(1024)
    }
}

/// Starts `argv` in its own process group with exactly `env`, captures its output as log lines
/// of `source`, and marks its agent exited when it ends.
pub(crate) fn spawn(
    sandbox: &Arc<Sandbox>,
    name: &str,
    role: Role,
    argv: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Result<i32, Error> {
    let (program, args) = argv.split_first().ok_or(Error::EmptyRuntimeCommand)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = command.spawn().map_err(|source| Error::Spawn { program: program.clone(), source })?;
    let pid = child.id().map(|p| p as i32).unwrap_or(-1);

    sandbox.processes.processes.lock().unwrap_or_else(|e| e.into_inner()).push(ProcessInfo {
        name: name.to_owned(),
        role: role.clone(),
        pid,
        running: true,
    });
    sandbox.record(RecordKind::ProcessStarted, Some(name), json!({ "pid": pid, "argv": argv }));

    let source = match &role {
        Role::Runtime => LogSource::Function,
        Role::Extension(_) => LogSource::Extension,
    };
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_lines(sandbox.clone(), stdout, source, name.to_owned()));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_lines(sandbox.clone(), stderr, source, name.to_owned()));
    }

    let sandbox = sandbox.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        let status = child.wait().await;
        sandbox.processes.set_exited(pid);
        let detail = match &status {
            Ok(status) => {
                json!({ "pid": pid, "code": status.code(), "signal": std::os::unix::process::ExitStatusExt::signal(status) })
            }
            Err(error) => json!({ "pid": pid, "error": error.to_string() }),
        };
        sandbox.record(RecordKind::ProcessExited, Some(&name), detail);
        mark_exited(&sandbox, &role);
    });
    Ok(pid)
}

fn mark_exited(sandbox: &Sandbox, role: &Role) {
    let mut state = sandbox.lock();
    match role {
        Role::Runtime => {
            if !matches!(state.runtime.status, AgentStatus::Failed(_)) {
                state.runtime.status = AgentStatus::Exited;
            }
        }
        Role::Extension(name) => {
            if let Some(extension) = state.extension_by_name(name) {
                if !matches!(extension.agent.status, AgentStatus::Failed(_)) {
                    extension.agent.status = AgentStatus::Exited;
                }
            }
        }
    }
    drop(state);
    sandbox.bump();
}

async fn forward_lines(sandbox: Arc<Sandbox>, stream: impl AsyncRead + Unpin, source: LogSource, name: String) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(process = %name, %line, "output");
        sandbox.telemetry.emit_log(source, &name, line);
    }
}

/// Descendants of the `groups` leaders that live in another process group, mapped to the
/// leader they descend from.
fn strays(groups: &[(String, i32)]) -> BTreeMap<i32, i32> {
    let table = proc_table();
    let leaders: BTreeSet<i32> = groups.iter().map(|(_, pid)| *pid).collect();
    let mut found = BTreeMap::new();
    let mut frontier: Vec<(i32, i32)> = leaders.iter().map(|&pid| (pid, pid)).collect();
    while let Some((parent, leader)) = frontier.pop() {
        for (&pid, &(ppid, _)) in &table {
            if ppid == parent && !found.contains_key(&pid) && !leaders.contains(&pid) {
                found.insert(pid, leader);
                frontier.push((pid, leader));
            }
        }
    }
    found.retain(|pid, _| table.get(pid).is_some_and(|(_, pgid)| !leaders.contains(pgid)));
    found
}

/// Maps pid to (ppid, pgid) for every process in `/proc`.
fn proc_table() -> BTreeMap<i32, (i32, i32)> {
    let mut table = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name may contain spaces and parentheses; fields follow the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(pgid)) =
            (fields.get(1).and_then(|s| s.parse().ok()), fields.get(2).and_then(|s| s.parse().ok()))
        {
            table.insert(pid, (ppid, pgid));
        }
    }
    table
}

fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
