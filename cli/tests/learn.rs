//! `palisade learn` against a real Python program, then the learned policy enforced on the same
//! program; `palisade policy diff` and the unexercised-rule report on the result.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PYTHON: &str = "/usr/bin/python3.11";

const APP: &str = r#"
import subprocess, sys, urllib.request
source, out_dir, port = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(source).read().strip()
with open(out_dir + "/out.txt", "w") as handle:
    handle.write(data.upper())
child = subprocess.run(["/usr/bin/echo", "child"], capture_output=True, text=True, check=True).stdout.strip()
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
print("app-ok", child, body)
"#;

fn palisade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
}

fn wrap_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_palisade")).with_file_name("palisade-wrap");
    assert!(path.exists(), "{} is missing: run the tests with `cargo test --workspace`", path.display());
    path
}

/// Serves `HTTP/1.0 200` with body `served` to every connection on loopback.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 6\r\n\r\nserved");
        }
    });
    port
}

struct App {
    input_dir: tempfile::TempDir,
    output_dir: tempfile::TempDir,
    port: u16,
}

impl App {
    fn new() -> Self {
        assert!(Path::new(PYTHON).exists(), "{PYTHON} is required: install it with `apt-get install -y python3.11`");
        let input_dir = tempfile::tempdir().unwrap();
        std::fs::write(input_dir.path().join("app.py"), APP).unwrap();
        std::fs::write(input_dir.path().join("input.txt"), "learned\n").unwrap();
        let output_dir = tempfile::Builder::new().prefix("palisade-learn-out").tempdir_in("/tmp").unwrap();
        Self { input_dir, output_dir, port: http_server() }
    }

    fn command(&self) -> Vec<String> {
        vec![
            PYTHON.to_owned(),
            self.input_dir.path().join("app.py").display().to_string(),
            self.input_dir.path().join("input.txt").display().to_string(),
            self.output_dir.path().display().to_string(),
            self.port.to_string(),
        ]
    }
}

/// Runs `command` without the caller's proxy and telemetry settings, except those it sets itself.
fn output(command: &mut Command) -> Output {
    let explicit: Vec<std::ffi::OsString> = command.get_envs().map(|(name, _)| name.to_owned()).collect();
    for variable in ["http_proxy", "HTTP_PROXY", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] {
        if !explicit.iter().any(|name| name == variable) {
            command.env_remove(variable);
        }
    }
    command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn learn(app: &App, out: &Path, extra: &[&str]) -> Output {
    output(palisade().arg("learn").arg("--out").arg(out).args(extra).arg("--").args(app.command()))
}

#[test]
fn learned_policy_runs_the_program_in_enforce_mode() {
    let app = App::new();
    let policy_dir = tempfile::tempdir().unwrap();
    let learned = policy_dir.path().join("learned.yaml");

    let learning = learn(&app, &learned, &[]);

    assert!(learning.status.success(), "{}", text(&learning.stderr));
    assert!(text(&learning.stdout).contains("app-ok child served"), "{}", text(&learning.stdout));
    let loaded = palisade_core::policy::load(&learned).unwrap();
    let spec = &loaded.policy.spec;
    let yaml = std::fs::read_to_string(&learned).unwrap();

    // Small enough to review: no allow-all paths, a short system call list.
    for rule in spec.process.execute.iter().chain(&spec.filesystem.read).chain(&spec.filesystem.write) {
        let depth = rule.as_path().components().count() - 1;
        assert!(depth >= 2 || rule.as_path().is_file(), "rule {rule} is too broad:\n{yaml}");
    }
    let execute: Vec<String> = spec.process.execute.iter().map(ToString::to_string).collect();
    assert_eq!(execute, ["/usr/bin/echo", PYTHON], "{yaml}");
    assert!(spec.filesystem.write.iter().any(|rule| rule.as_path() == app.output_dir.path()), "{yaml}");
    assert!(spec.syscalls.profiles.is_empty(), "{yaml}");
    assert!(spec.syscalls.allow.len() < 120, "{yaml}");
    assert!(spec.syscalls.allow.iter().any(|syscall| syscall.name() == "connect"), "{yaml}");
    assert_eq!(spec.network.connect_tcp.iter().map(|port| port.get()).collect::<Vec<_>>(), [app.port], "{yaml}");
    assert_eq!(spec.egress.allow[0].cidrs[0].to_string(), "127.0.0.1/32");

    // The same program under the learned policy, enforced and supervised.
    std::fs::remove_file(app.output_dir.path().join("out.txt")).unwrap();
    let mut enforced = Command::new(wrap_binary());
    enforced.arg("--policy").arg(&learned).arg("--").args(app.command());
    let enforced = output(&mut enforced);

    let stderr = text(&enforced.stderr);
    assert!(enforced.status.success(), "{stderr}");
    assert!(text(&enforced.stdout).contains("app-ok child served"), "{}", text(&enforced.stdout));
    assert_eq!(std::fs::read_to_string(app.output_dir.path().join("out.txt")).unwrap(), "LEARNED");
    assert!(stderr.contains("\"palisade.policy.mode\":\"enforce\""), "{stderr}");
    assert!(!stderr.contains("palisade.syscall.denied"), "{stderr}");
}

#[test]
fn learned_policy_denies_unlearned_reads() {
    let app = App::new();
    let policy_dir = tempfile::tempdir().unwrap();
    let learned = policy_dir.path().join("learned.yaml");
    assert!(learn(&app, &learned, &[]).status.success());
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("secret"), "s").unwrap();
    let script = app.input_dir.path().join("app.py");
    // The learned program, changed to read a file it never read while learning.
    std::fs::write(&script, format!("print(open({:?}).read())\n", secret_dir.path().join("secret"))).unwrap();

    let mut enforced = Command::new(wrap_binary());
    enforced.arg("--policy").arg(&learned).arg("--").args(app.command());
    let enforced = output(&mut enforced);

    assert!(!enforced.status.success());
    assert!(text(&enforced.stderr).contains("PermissionError"), "{}", text(&enforced.stderr));
}

#[test]
fn stale_rules_and_diff_against_a_broader_policy() {
    let app = App::new();
    let policy_dir = tempfile::tempdir().unwrap();
    let learned = policy_dir.path().join("learned.yaml");
    let broad = policy_dir.path().join("broad.yaml");
    std::fs::write(
        &broad,
        format!(
            "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  process: {{execute: [{PYTHON}, /usr/bin/echo, /usr/bin/curl]}}\n  filesystem: {{read: [/usr, /etc, /opt/palisade-never], write: [{}, /var/tmp]}}\n  syscalls: {{profiles: [python], allow: [ptrace]}}\n",
            app.output_dir.path().display()
        ),
    )
    .unwrap();

    let learning = learn(&app, &learned, &["--against", broad.to_str().unwrap()]);
    let diff = output(palisade().args(["policy", "diff"]).arg(&broad).arg(&learned));
    let same = output(palisade().args(["policy", "diff"]).arg(&learned).arg(&learned));

    let report = text(&learning.stdout);
    assert!(learning.status.success(), "{}", text(&learning.stderr));
    assert!(report.contains("spec.process.execute: /usr/bin/curl was never executed"), "{report}");
    assert!(report.contains("nothing under /opt/palisade-never was opened"), "{report}");
    assert!(report.contains("spec.filesystem.write: nothing under /var/tmp was written"), "{report}");
    assert!(report.contains("spec.syscalls.allow: ptrace was never called"), "{report}");
    assert!(!report.contains("/usr/bin/echo was never"), "{report}");
    let changes = text(&diff.stdout);
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff.stderr));
    assert!(changes.contains("- spec.process.execute: /usr/bin/curl"), "{changes}");
    assert!(changes.contains("- spec.syscalls.profiles: python"), "{changes}");
    assert!(changes.contains("- (effective system calls): "), "{changes}");
    assert_eq!(same.status.code(), Some(0));
    assert!(same.stdout.is_empty());
}

/// `palisade-sidecar proxy` on `port` with `policy`, its events written to `log`.
fn start_proxy(policy: &Path, port: u16, log: &Path) -> std::process::Child {
    let sidecar = Path::new(env!("CARGO_BIN_EXE_palisade")).with_file_name("palisade-sidecar");
    assert!(sidecar.exists(), "{} is missing: run the tests with `cargo test --workspace`", sidecar.display());
    let child = Command::new(sidecar)
        .args(["proxy", "--policy"])
        .arg(policy)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy did not listen: {}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

#[test]
fn learned_policy_routes_http_through_the_egress_proxy() {
    let app = App::new();
    let directory = tempfile::tempdir().unwrap();
    let audit_policy = directory.path().join("audit.yaml");
    std::fs::write(
        &audit_policy,
        "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  mode: audit\n  egress: {default: deny}\n",
    )
    .unwrap();
    let proxy_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let proxy_url = format!("http://127.0.0.1:{proxy_port}");
    let learned = directory.path().join("learned.yaml");
    let audit_log = directory.path().join("audit.log");

    // Learning: the program reaches the server through the proxy, which audits the request.
    let mut audit_proxy = start_proxy(&audit_policy, proxy_port, &audit_log);
    let mut learning = palisade();
    learning
        .arg("learn")
        .arg("--out")
        .arg(&learned)
        .arg("--egress-events")
        .arg(&audit_log)
        .arg("--")
        .args(app.command());
    let learning = output(learning.env("http_proxy", &proxy_url).env_remove("no_proxy").env_remove("NO_PROXY"));
    audit_proxy.kill().unwrap();
    audit_proxy.wait().unwrap();

    assert!(learning.status.success(), "{}", text(&learning.stderr));
    assert!(text(&learning.stdout).contains("app-ok child served"), "{}", text(&learning.stdout));
    let spec = palisade_core::policy::load(&learned).unwrap().policy.spec;
    let yaml = std::fs::read_to_string(&learned).unwrap();
    let ports: Vec<u16> = spec.network.connect_tcp.iter().map(|port| port.get()).collect();
    assert_eq!(ports, [proxy_port], "the program connects only to the proxy:\n{yaml}");
    let server_rule = spec
        .egress
        .allow
        .iter()
        .find(|rule| rule.ports.iter().any(|port| port.get() == app.port))
        .unwrap_or_else(|| panic!("no egress rule for the server's port:\n{yaml}"));
    assert_eq!(server_rule.cidrs[0].to_string(), "127.0.0.1/32");

    // Enforcing: the same proxy port, now enforcing the learned policy.
    let enforce_log = directory.path().join("enforce.log");
    let mut enforce_proxy = start_proxy(&learned, proxy_port, &enforce_log);
    std::fs::remove_file(app.output_dir.path().join("out.txt")).unwrap();
    let mut enforced = Command::new(wrap_binary());
    enforced.arg("--policy").arg(&learned).arg("--").args(app.command());
    let enforced = output(enforced.env("http_proxy", &proxy_url).env_remove("no_proxy").env_remove("NO_PROXY"));
    enforce_proxy.kill().unwrap();
    enforce_proxy.wait().unwrap();

    assert!(enforced.status.success(), "{}", text(&enforced.stderr));
    assert!(text(&enforced.stdout).contains("app-ok child served"), "{}", text(&enforced.stdout));
    let decisions = std::fs::read_to_string(&enforce_log).unwrap();
    assert!(decisions.contains("\"palisade.decision\":\"allow\""), "{decisions}");
    assert!(!decisions.contains("\"palisade.egress.audited\":true"), "{decisions}");
}
