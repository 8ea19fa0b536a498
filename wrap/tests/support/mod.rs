//! Shared helpers for the launcher's kernel tests: policy files, the probe program, and running
//! `palisade-wrap` with its events captured.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const WRAP: &str = env!("CARGO_BIN_EXE_palisade-wrap");

/// The probe program, built beside palisade-wrap by `cargo test --workspace`.
pub fn probe() -> PathBuf {
    let path = Path::new(WRAP).with_file_name("palisade-probe");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` or `cargo build -p palisade-probe` first",
        path.display()
    );
    path
}

/// A policy file in its own temporary directory.
pub struct PolicyFile {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn policy(spec: &str) -> PolicyFile {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("policy.yaml");
    let text =
        format!("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nmetadata: {{name: test}}\nspec:\n{spec}");
    std::fs::write(&path, text).expect("write the policy");
    PolicyFile { dir, path }
}

/// A policy that lets the probe run: system libraries readable, the probe executable, and
/// `extra` lines of spec. A `filesystem:` line in `extra` replaces the default one.
pub fn probe_policy(extra: &str) -> PolicyFile {
    let filesystem = if extra.contains("filesystem:") {
        ""
    } else {
        "  filesystem: {read: [/usr, /lib, /lib64, /etc, /proc], write: [/dev/null]}\n"
    };
    let spec = format!("  process: {{execute: [{probe}]}}\n{filesystem}{extra}", probe = probe().display());
    policy(&spec)
}

pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON events palisade-wrap wrote on stderr.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with('{'))
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn event(&self, name: &str) -> serde_json::Value {
        self.events()
            .into_iter()
            .find(|event| event["event_name"] == name)
            .unwrap_or_else(|| panic!("no {name} event in stderr:\n{}", self.stderr))
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            status: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs `palisade-wrap --policy POLICY -- COMMAND...` with a clean telemetry environment.
pub fn wrap(policy: &Path, command: &[&str]) -> Run {
    wrap_command(policy, command).output().expect("run palisade-wrap").into()
}

pub fn wrap_command(policy: &Path, command: &[&str]) -> Command {
    let mut wrap = Command::new(WRAP);
    wrap.arg("--policy").arg(policy).arg("--").args(command);
    for variable in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "PALISADE_POLICY"] {
        wrap.env_remove(variable);
    }
    wrap
}

/// Runs the probe with one action under `policy`.
pub fn probe_under(policy: &Path, action: &[&str]) -> Run {
    let probe = probe();
    let mut command = vec![probe.to_str().expect("UTF-8 path")];
    command.extend_from_slice(action);
    wrap(policy, &command)
}

/// The real path of an interpreter found on PATH (following shims such as pyenv's).
pub fn real_executable(program: &str, print_path: &[&str]) -> PathBuf {
    let output = Command::new(program)
        .args(print_path)
        .output()
        .unwrap_or_else(|error| panic!("{program} is required for this test and could not run: {error}"));
    assert!(output.status.success(), "{program} failed: {}", String::from_utf8_lossy(&output.stderr));
    let path = String::from_utf8(output.stdout).expect("UTF-8 path").trim().to_owned();
    std::fs::canonicalize(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}
