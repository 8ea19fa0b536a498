//! `palisade integrity watch` against the real kernel: every change kind on a watched tree is
//! reported within one second with both backends, and a queue overflow is reported as lost
//! coverage followed by a correct rescan.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(1);

/// Serialises the tests in this file: the overflow tests create 100,000 files, which would show
/// up in fanotify's filesystem-wide marks of the other tests and compete for the CPU.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running `palisade integrity watch` whose stdout lines arrive on a channel.
struct Watch {
    child: Child,
    lines: Receiver<Value>,
}

impl Watch {
    fn start(root: &Path, backend: &str) -> Self {
        let mut child = palisade()
            .args(["integrity", "watch", "--backend", backend])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start palisade integrity watch");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value =
                    serde_json::from_str(&line).unwrap_or_else(|error| panic!("invalid JSON line ({error}): {line}"));
                if sender.send(value).is_err() {
                    return;
                }
            }
        });

        let watch = Self { child, lines };
        let ready = watch.next(Duration::from_secs(30)).expect("watch printed no ready line within 30 s");
        assert_eq!(ready["event"], "ready", "first line: {ready}");
        assert_eq!(ready["backend"], backend, "backend in use: {ready}");
        watch
    }

    fn next(&self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(value) => Some(value),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("palisade integrity watch exited"),
        }
    }

    fn signal(&self, signal: &str) {
        run_ok("kill", &[format!("-{signal}").as_ref(), self.child.id().to_string().as_ref()]);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies every change kind on a watched tree and checks that each expected `(path, change)`
/// is reported within one second; with fanotify, also that the change names a process.
fn check_change_kinds(backend: &str) {
    let _serial = serial();
    require_root();
    require_program("setfattr", "attr");
    require_program("setcap", "libcap2-bin");

    let mut failures = Vec::new();
    for mutation in mutations() {
        let scratch = scratch_dir();
        let root = scratch.path().join("tree");
        build_tree(&root, false);
        let watch = Watch::start(&root, backend);

        (mutation.apply)(&root);
        let applied = Instant::now();

        let mut missing: BTreeSet<(String, String)> =
            expected_report(&root, &mutation).into_iter().map(|(path, change, _)| (path, change)).collect();
        let mut attributed = BTreeSet::new();
        while !missing.is_empty() {
            let Some(remaining) = DEADLINE.checked_sub(applied.elapsed()) else { break };
            let Some(line) = watch.next(remaining) else { break };
            if line["event"] != "changed" {
                continue;
            }
            let key = (line["path"].as_str().unwrap().to_owned(), line["change"].as_str().unwrap().to_owned());
            if line["pid"].is_u64() {
                attributed.insert(key.0.clone());
            }
            missing.remove(&key);
        }
        if !missing.is_empty() {
            failures.push(format!("{}: not reported within {DEADLINE:?}: {missing:?}", mutation.name));
        }
        if backend == "fanotify" {
            for (path, _, _) in expected_report(&root, &mutation) {
                if !attributed.contains(&path) {
                    failures.push(format!("{}: no process reported for {path}", mutation.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fanotify_reports_each_change_kind() {
    check_change_kinds("fanotify");
}

#[test]
fn inotify_reports_each_change_kind() {
    check_change_kinds("inotify");
}

/// Stops the watcher, makes 100,000 short-lived files so the kernel queue (16,384 events by
/// default) overflows, plus two lasting changes, and resumes it: the watcher must report lost
/// coverage, then exactly the two lasting changes from its rescan.
fn check_overflow(backend: &str) {
    let _serial = serial();
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let churn = root.join("var/churn");
    std::fs::create_dir(&churn).unwrap();
    let watch = Watch::start(&root, backend);

    watch.signal("STOP");
    for index in 0..100_000 {
        let path = churn.join(index.to_string());
        std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
    }
    std::fs::remove_file(root.join("etc/secret")).unwrap();
    write_file(&root.join("etc/added"), b"added while the watcher was stopped\n", 0o644);
    watch.signal("CONT");

    let mut lost = false;
    let mut rescanned = None;
    let mut changes = BTreeSet::new();
    let started = Instant::now();
    while rescanned.is_none() && started.elapsed() < Duration::from_secs(60) {
        let Some(line) = watch.next(Duration::from_secs(5)) else { continue };
        match line["event"].as_str().unwrap() {
            "coverage_lost" => lost = true,
            "rescanned" => rescanned = Some(line["changes"].as_u64().unwrap()),
            "changed" if lost => {
                changes
                    .insert((line["path"].as_str().unwrap().to_owned(), line["change"].as_str().unwrap().to_owned()));
            }
            _ => {}
        }
    }

    assert!(lost, "no coverage_lost event after 100,000 changes");
    assert_eq!(rescanned, Some(2), "rescan change count");
    let expected: BTreeSet<(String, String)> = [
        (root.join("etc/added").display().to_string(), "added".to_owned()),
        (root.join("etc/secret").display().to_string(), "removed".to_owned()),
    ]
    .into();
    assert_eq!(changes, expected);
}

#[test]
fn fanotify_overflow_reports_coverage_lost_and_rescans() {
    check_overflow("fanotify");
}

#[test]
fn inotify_overflow_reports_coverage_lost_and_rescans() {
    check_overflow("inotify");
}
