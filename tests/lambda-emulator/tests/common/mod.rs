//! Helpers shared by the end-to-end tests: fixture paths, a sandbox directory with extensions,
//! the journals that the fixture processes write, and curl.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use palisade_lambda_emulator::{Config, RecordEntry, RecordKind};
use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Absolute path of the Python 3 interpreter (the real one, not a shim).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let output = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 is required by these tests; install it (apt-get install python3)");
            assert!(output.status.success(), "python3 failed: {output:?}");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        })
        .clone()
}

/// Fails the test with an install hint when `tool` is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "{tool} is required by this test; install it (apt-get install {package})");
}

/// A temporary task root with an extensions directory and a directory for journals.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        std::fs::create_dir(dir.path().join("extensions")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn extensions_dir(&self) -> PathBuf {
        self.root().join("extensions")
    }

    pub fn out_dir(&self) -> PathBuf {
        self.root().join("out")
    }

    /// Installs an executable script in the extensions directory.
    pub fn add_executable(&self, name: &str, script: &str) -> PathBuf {
        let path = self.extensions_dir().join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Installs `extension.py` as extension `name` with extra command-line options.
    pub fn add_python_extension(&self, name: &str, options: &[&str]) {
        let mut command = format!(
            "exec '{}' '{}' --name '{name}' --out-dir '{}'",
            python().display(),
            fixture("extension.py").display(),
            self.out_dir().display()
        );
        for option in options {
            command.push_str(&format!(" '{option}'"));
        }
        self.add_executable(name, &format!("#!/bin/sh\n{command}\n"));
    }

    /// Builds a configuration running `runtime.py` with this workspace's extensions.
    pub fn config(&self) -> Config {
        self.config_with_runtime(vec![python().display().to_string(), fixture("runtime.py").display().to_string()])
    }

    pub fn config_with_runtime(&self, runtime_command: Vec<String>) -> Config {
        let mut environment = BTreeMap::new();
        environment.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_default());
        environment.insert("RUNTIME_OUT_DIR".to_owned(), self.out_dir().display().to_string());
        environment.insert("CURL_EXTENSION_OUT_DIR".to_owned(), self.out_dir().display().to_string());
        Config {
            extensions_dir: Some(self.extensions_dir()),
            runtime_command,
            task_root: self.root().to_owned(),
            environment,
            ..Config::default()
        }
    }

    /// Lines of `out/<name>.jsonl` written by a fixture.
    pub fn journal(&self, name: &str) -> Vec<Value> {
        let path = self.out_dir().join(format!("{name}.jsonl"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad journal line {line:?}: {e}")))
            .collect()
    }

    /// Journal entries whose `what` is `what`.
    pub fn journal_of(&self, name: &str, what: &str) -> Vec<Value> {
        self.journal(name).into_iter().filter(|entry| entry["what"] == what).collect()
    }
}

/// Index of the first entry of `kind` (for `subject` when given) matching `detail`.
pub fn position(
    record: &[RecordEntry],
    kind: RecordKind,
    subject: Option<&str>,
    detail: impl Fn(&Value) -> bool,
) -> usize {
    record
        .iter()
        .position(|e| e.kind == kind && (subject.is_none() || e.subject.as_deref() == subject) && detail(&e.detail))
        .unwrap_or_else(|| panic!("no {kind:?} entry for {subject:?} in the record: {record:#?}"))
}

pub fn any(_: &Value) -> bool {
    true
}

/// Runs curl and returns (HTTP status, parsed JSON body or Null).
pub fn curl(args: &[&str]) -> (u16, Value) {
    require_tool("curl", "curl");
    let output = Command::new("curl").args(["-sS", "-w", "\n%{http_code}"]).args(args).output().expect("run curl");
    assert!(output.status.success(), "curl {args:?} failed: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("curl output ends with the status");
    (status.trim().parse().expect("HTTP status"), serde_json::from_str(body).unwrap_or(Value::Null))
}
