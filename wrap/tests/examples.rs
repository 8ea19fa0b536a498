//! The policies under examples/ run their example programs, and `palisade policy check` accepts
//! them. Each test deploys the example to a temporary directory that stands in for /var/task.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{free_port, wrap, Run};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").join("examples")
}

/// Copies an example's policy with its deployment paths and port replaced.
fn deploy_policy(example: &str, replacements: &[(&str, String)], destination: &Path) -> PathBuf {
    let mut text = std::fs::read_to_string(examples_dir().join(example).join("policy.yaml")).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "{example}/policy.yaml no longer mentions {from}");
        text = text.replace(from, to);
    }
    let path = destination.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_denials_absent(run: &Run) {
    let applied = run.event("palisade.policy.applied");
    assert_eq!(applied["attributes"]["palisade.landlock.status"], "enforced", "{}", run.stderr);
}

#[test]
fn python_service_example_runs() {
    let task_root = tempfile::tempdir().unwrap();
    std::fs::copy(examples_dir().join("python-service/app.py"), task_root.path().join("app.py")).unwrap();
    let port = free_port();
    let policy = deploy_policy(
        "python-service",
        &[("/var/task", task_root.path().display().to_string()), ("8080", port.to_string())],
        task_root.path(),
    );
    let data_dir = task_root.path().join("orders");

    let app = task_root.path().join("app.py");
    let run = wrap(
        &policy,
        &["/usr/bin/python3.11", app.to_str().unwrap(), "--self-test", &port.to_string(), data_dir.to_str().unwrap()],
    );

    assert_eq!(run.status, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("python-service stored"), "{}", run.stdout);
    assert!(data_dir.join("order-42.json").exists());
    assert_denials_absent(&run);
}

#[test]
fn node_service_example_runs() {
    let task_root = tempfile::tempdir().unwrap();
    std::fs::copy(examples_dir().join("node-service/app.js"), task_root.path().join("app.js")).unwrap();
    let port = free_port();
    let policy = deploy_policy(
        "node-service",
        &[("/var/task", task_root.path().display().to_string()), ("8080", port.to_string())],
        task_root.path(),
    );
    let data_dir = task_root.path().join("orders");

    let app = task_root.path().join("app.js");
    let run = wrap(
        &policy,
        &["/usr/bin/node", app.to_str().unwrap(), "--self-test", &port.to_string(), data_dir.to_str().unwrap()],
    );

    assert_eq!(run.status, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("node-service stored"), "{}", run.stdout);
    assert!(data_dir.join("order-7.json").exists());
    assert_denials_absent(&run);
}

/// Builds the example service statically, as examples/demo.sh does, in a target directory of its
/// own so that it does not wait on the cargo lock of the running test build.
fn build_static_demo() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = std::env::temp_dir().join("palisade-example-target");
    let status = Command::new(cargo)
        .args(["rustc", "--release", "--quiet", "--offline", "-p", "palisade-demo", "--target-dir"])
        .arg(&target_dir)
        .args(["--", "-C", "target-feature=+crt-static"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo to build the example service");
    assert!(status.success(), "building the static example service failed");
    target_dir.join("release/palisade-demo")
}

#[test]
fn static_binary_example_blocks_every_intrusion() {
    let demo = build_static_demo();
    let install_dir = tempfile::tempdir().unwrap();
    let service = install_dir.path().join("orders-service");
    std::fs::copy(&demo, &service).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let policy = deploy_policy(
        "static-binary",
        &[
            ("/var/tmp/palisade-demo/orders-service", service.display().to_string()),
            ("/tmp/palisade-demo", data_dir.path().display().to_string()),
        ],
        install_dir.path(),
    );

    let run = wrap(&policy, &[service.to_str().unwrap(), data_dir.path().to_str().unwrap()]);

    assert_eq!(run.status, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("every intrusion attempt was blocked"), "{}", run.stdout);
    for intrusion in
        ["/etc/shadow", "/usr/local/bin/backdoor", "execute /bin/sh", "ptrace", "unshare", "127.0.0.1:5432"]
    {
        let line =
            run.stdout.lines().find(|line| line.contains(intrusion)).unwrap_or_else(|| panic!("{intrusion} not tried"));
        assert!(line.contains("[denied]"), "{line}");
    }
    assert!(data_dir.path().join("orders.json").exists());
    assert!(!Path::new("/usr/local/bin/backdoor").exists());
}

#[test]
fn every_example_policy_checks() {
    let palisade = Path::new(support::WRAP).with_file_name("palisade");
    assert!(palisade.exists(), "{} is missing: run the tests with `cargo test --workspace`", palisade.display());
    for example in ["python-service", "node-service", "static-binary"] {
        let output = Command::new(&palisade)
            .args(["policy", "check"])
            .arg(examples_dir().join(example).join("policy.yaml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{example}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains("valid policy"), "{example}");
    }
}
