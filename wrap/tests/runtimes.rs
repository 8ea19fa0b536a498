//! The built-in seccomp profiles against real language runtimes: each runs a small program that
//! starts threads, writes a file and starts a subprocess.

mod support;

use std::path::Path;

use support::{policy, real_executable, wrap};

fn runtime_policy(
    profile: &str,
    executable: &Path,
    extra_execute: &[&str],
    workdir: &Path,
    network: &str,
) -> support::PolicyFile {
    let mut execute = vec![executable.display().to_string()];
    execute.extend(extra_execute.iter().map(|path| path.to_string()));
    policy(&format!(
        "  process: {{execute: [{}]}}\n  filesystem: {{read: [/], write: [{}, /dev/null]}}\n  syscalls: {{profiles: [{profile}]}}\n{network}",
        execute.join(", "),
        workdir.display()
    ))
}

#[test]
fn cpython_311_runs_under_python_profile() {
    let python = real_executable("python3", &["-c", "import sys; print(sys.executable)"]);
    let version = std::process::Command::new(&python).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.starts_with("Python 3.11"), "CPython 3.11 is required, found {version}");
    let workdir = tempfile::tempdir().unwrap();
    let script = workdir.path().join("app.py");
    std::fs::write(
        &script,
        r#"
import hashlib, json, os, subprocess, sys, threading, asyncio
results = []
worker = threading.Thread(target=lambda: results.append(sum(range(1000))))
worker.start(); worker.join()
path = os.path.join(sys.argv[1], "out.json")
with open(path, "w") as handle:
    json.dump({"sum": results[0], "digest": hashlib.sha256(b"x").hexdigest()}, handle)
subprocess.run(["/usr/bin/true"], check=True)
asyncio.run(asyncio.sleep(0.01))
print("python-ok", results[0])
"#,
    )
    .unwrap();
    let policy = runtime_policy("python", &python, &["/usr/bin/true"], workdir.path(), "");

    let run =
        wrap(&policy.path, &[python.to_str().unwrap(), script.to_str().unwrap(), workdir.path().to_str().unwrap()]);

    assert_eq!(run.status, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("python-ok 499500"), "{}", run.stdout);
    assert!(workdir.path().join("out.json").exists());
}

#[test]
fn node_20_runs_under_node_profile() {
    let node = real_executable("node", &["-e", "console.log(process.execPath)"]);
    let version = std::process::Command::new(&node).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(version.starts_with("v20."), "Node.js 20 is required, found {version}");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let workdir = tempfile::tempdir().unwrap();
    let script = workdir.path().join("app.js");
    std::fs::write(
        &script,
        r#"
const fs = require('fs'), http = require('http'), path = require('path'), cp = require('child_process');
const { Worker } = require('worker_threads');
const [dir, port] = process.argv.slice(2);
fs.writeFileSync(path.join(dir, 'out.txt'), 'node');
const worker = new Worker('require("worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
worker.on('message', (answer) => {
  const server = http.createServer((req, res) => res.end('pong')).listen(Number(port), '127.0.0.1', () => {
    http.get(`http://127.0.0.1:${port}/`, (res) => {
      let body = '';
      res.on('data', (chunk) => body += chunk);
      res.on('end', () => {
        server.close();
        cp.execFileSync('/usr/bin/true');
        console.log('node-ok', answer, body);
      });
    });
  });
});
"#,
    )
    .unwrap();
    let network = format!("  network: {{connectTcp: [{port}], bindTcp: [{port}]}}\n");
    let policy = runtime_policy("node", &node, &["/usr/bin/true"], workdir.path(), &network);

    let run = wrap(
        &policy.path,
        &[node.to_str().unwrap(), script.to_str().unwrap(), workdir.path().to_str().unwrap(), &port.to_string()],
    );

    assert_eq!(run.status, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("node-ok 42 pong"), "{}", run.stdout);
}

#[test]
fn jvm_runs_under_jvm_profile() {
    let java = real_executable("sh", &["-c", "readlink -f \"$(command -v java)\""]);
    let workdir = tempfile::tempdir().unwrap();
    let source = workdir.path().join("App.java");
    std::fs::write(
        &source,
        r#"
public class App {
    public static void main(String[] args) throws Exception {
        int[] answer = new int[1];
        Thread worker = new Thread(() -> answer[0] = 6 * 7);
        worker.start();
        worker.join();
        java.nio.file.Files.writeString(java.nio.file.Path.of(args[0], "out.txt"), "jvm");
        System.out.println("jvm-ok " + answer[0]);
    }
}
"#,
    )
    .unwrap();
    let policy = runtime_policy("jvm", &java, &[], workdir.path(), "");

    // The source-file launcher compiles App.java in memory, which exercises the JIT and GC threads.
    let run = wrap(
        &policy.path,
        &[
            java.to_str().unwrap(),
            "-Xshare:off",
            "-XX:-UsePerfData",
            source.to_str().unwrap(),
            workdir.path().to_str().unwrap(),
        ],
    );

    assert_eq!(run.status, Some(0), "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("jvm-ok 42"), "{}", run.stdout);
}
