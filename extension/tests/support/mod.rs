//! Helpers for the layer's end-to-end tests: the layer directory, the palisade-wrap binary, HTTP
//! targets on loopback, and an independent OTLP receiver that decodes what the layer exports.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use palisade_core::integrity::{self, ScanOptions, Scope};
use serde_json::Value;

pub const EXTENSION: &str = env!("CARGO_BIN_EXE_palisade-extension");

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The real Python 3 interpreter, with symbolic links resolved.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let output = Command::new("python3")
                .args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"])
                .output()
                .expect("python3 is required by these tests; install it (apt-get install python3)");
            assert!(output.status.success(), "python3 failed: {output:?}");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// Fails with an install hint unless `module` imports in Python.
pub fn require_python_module(module: &str, package: &str) {
    let status = Command::new(python()).args(["-c", &format!("import {module}")]).status().expect("run python3");
    assert!(
        status.success(),
        "the Python package {package} is required by this test; install it with `python3 -m pip install {package}`"
    );
}

/// Builds palisade-wrap with the same profile and target directory as this test and returns it.
pub fn wrap_binary() -> PathBuf {
    static WRAP: OnceLock<PathBuf> = OnceLock::new();
    WRAP.get_or_init(|| {
        let extension = PathBuf::from(EXTENSION);
        let profile_dir = extension.parent().expect("the extension binary sits in the profile directory");
        let target_dir = profile_dir.parent().expect("the profile directory sits in the target directory");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "-p", "palisade-wrap", "--bin", "palisade-wrap"])
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build for palisade-wrap");
        assert!(status.success(), "building palisade-wrap failed");
        profile_dir.join("palisade-wrap")
    })
    .clone()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An HTTP server on a loopback address that responds to every request with `200 ok` and counts them.
pub struct Target {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

impl Target {
    pub fn start(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|error| panic!("bind {ip}: {error}"));
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            }
        });
        Self { url, hits }
    }

    pub fn port(&self) -> u16 {
        self.url.trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The OTLP receiver fixture, running until dropped.
pub struct Receiver {
    child: Child,
    output: PathBuf,
    pub endpoint: String,
}

impl Receiver {
    pub fn start(dir: &Path) -> Self {
        require_python_module("opentelemetry.proto", "opentelemetry-proto");
        let output = dir.join("otlp.jsonl");
        let mut child = Command::new(python())
            .arg(fixture("otlp_receiver.py"))
            .arg(&output)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the OTLP receiver did not start: {line:?}"));
        Self { child, output, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Every decoded request so far.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// Every span received, flattened to `{name, trace_id, parent_span_id, attributes, events}`.
    pub fn spans(&self) -> Vec<Value> {
        let mut spans = Vec::new();
        for request in self.requests().iter().filter(|request| request["path"] == "/v1/traces") {
            for resource in request["body"]["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        spans.push(flatten_span(span, &resource["resource"]));
                    }
                }
            }
        }
        spans
    }

    /// Every log record received, flattened to `{event_name, attributes}`.
    pub fn log_records(&self) -> Vec<Value> {
        let mut records = Vec::new();
        for request in self.requests().iter().filter(|request| request["path"] == "/v1/logs") {
            for resource in request["body"]["resourceLogs"].as_array().into_iter().flatten() {
                for scope in resource["scopeLogs"].as_array().into_iter().flatten() {
                    for record in scope["logRecords"].as_array().into_iter().flatten() {
                        records.push(serde_json::json!({
                            "event_name": record["eventName"],
                            "attributes": attributes(&record["attributes"]),
                        }));
                    }
                }
            }
        }
        records
    }

    /// Waits until `count` spans arrived, at most 10 s.
    pub fn wait_for_spans(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flatten_span(span: &Value, resource: &Value) -> Value {
    let events: Vec<Value> = span["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| serde_json::json!({"name": event["name"], "attributes": attributes(&event["attributes"])}))
        .collect();
    serde_json::json!({
        "name": span["name"],
        "trace_id": span["traceId"],
        "parent_span_id": span["parentSpanId"],
        "attributes": attributes(&span["attributes"]),
        "resource": attributes(&resource["attributes"]),
        "events": events,
    })
}

/// Turns OTLP `[{key, value: {stringValue: ...}}]` into `{key: value}`.
fn attributes(list: &Value) -> Value {
    let mut object = serde_json::Map::new();
    for attribute in list.as_array().into_iter().flatten() {
        let value = &attribute["value"];
        let plain = if let Some(text) = value.get("stringValue") {
            text.clone()
        } else if let Some(number) = value.get("intValue") {
            // The protobuf JSON mapping renders 64-bit integers as strings.
            Value::from(number.as_str().and_then(|text| text.parse::<i64>().ok()).unwrap_or_default())
        } else if let Some(number) = value.get("doubleValue") {
            number.clone()
        } else if let Some(flag) = value.get("boolValue") {
            flag.clone()
        } else if let Some(array) = value.get("arrayValue") {
            Value::Array(
                array["values"].as_array().into_iter().flatten().map(|item| item["stringValue"].clone()).collect(),
            )
        } else {
            Value::Null
        };
        object.insert(attribute["key"].as_str().unwrap_or_default().to_owned(), plain);
    }
    Value::Object(object)
}

/// Decodes the base64 trace id of the protobuf JSON mapping into hex.
pub fn trace_id_hex(span: &Value) -> String {
    let text = span["trace_id"].as_str().unwrap_or_default();
    let output = Command::new(python())
        .args(["-c", "import base64, sys; print(base64.b64decode(sys.argv[1]).hex())", text])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Names of a span's events.
pub fn event_names(span: &Value) -> Vec<String> {
    span["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|event| event["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The events of `span` named `name`.
pub fn events_named<'a>(span: &'a Value, name: &str) -> Vec<&'a Value> {
    span["events"].as_array().into_iter().flatten().filter(|event| event["name"] == name).collect()
}

/// Reads all of a reader, for child output.
pub fn read_all(mut reader: impl Read) -> String {
    let mut text = String::new();
    let _ = reader.read_to_string(&mut text);
    text
}

/// A function package and layer laid out as in Lambda, below `root`: `/var/task` and `/opt`.
pub struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    pub fn new() -> Self {
        // Outside /tmp, because the policy lets the function write only there.
        let dir = tempfile::Builder::new().prefix("palisade-layer-").tempdir_in("/var/tmp").unwrap();
        let layout = Self { dir };
        std::fs::create_dir_all(layout.task()).unwrap();
        std::fs::create_dir_all(layout.opt().join("extensions")).unwrap();
        std::fs::copy(EXTENSION, layout.opt().join("extensions/palisade-extension")).unwrap();
        std::fs::copy(wrap_binary(), layout.opt().join("palisade-wrap")).unwrap();
        layout
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn task(&self) -> PathBuf {
        self.root().join("var/task")
    }

    pub fn opt(&self) -> PathBuf {
        self.root().join("opt")
    }

    /// Records the manifest of `/var/task` and `/opt` outside both trees.
    pub fn baseline(&self) -> PathBuf {
        let scope = Scope::new([PathBuf::from("/var/task"), PathBuf::from("/opt")], Vec::new(), Vec::new()).unwrap();
        let options = ScanOptions { prefix: Some(self.root().to_owned()), ..ScanOptions::default() };
        let baseline = integrity::baseline(&scope, &options).unwrap();
        let path = self.root().join("palisade.manifest");
        std::fs::write(&path, baseline.manifest.encode()).unwrap();
        path
    }
}

/// An exec wrapper that runs palisade-wrap under an outer palisade-wrap whose seccomp filter
/// hides Landlock, as on Lambda's 5.10 kernels.
pub fn wrapper_without_landlock(layout: &Layout) -> PathBuf {
    let outer = layout.root().join("outer.yaml");
    std::fs::write(
        &outer,
        "apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {name: hide-landlock}
spec:
  process: {execute: [/]}
  filesystem: {read: [/], write: [/]}
  syscalls: {profiles: [base, python], allow: [seccomp]}
  network: {unrestrictedTcp: true}
  scope: {abstractUnixSocket: false, signal: false}
",
    )
    .unwrap();
    let wrap = layout.opt().join("palisade-wrap");
    let script = layout.root().join("wrapper-without-landlock");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\nexec '{wrap}' --policy '{outer}' -- '{wrap}' \"$@\"\n",
            wrap = wrap.display(),
            outer = outer.display()
        ),
    );
    script
}

/// Serialises the end-to-end functions within one test binary. Each runs a whole sandbox (the
/// emulator, the extension, the runtime and their servers), and two at once on a small machine
/// can exceed the emulator's init and invoke time limits.
pub static SANDBOX: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
