//! The `palisade.policy.applied` event: its content, its OTLP export, and what it says when the
//! kernel offers no Landlock.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{policy, probe_policy, wrap, wrap_command, WRAP};

#[test]
fn applied_event_describes_enforcement() {
    let policy = probe_policy("  syscalls: {profiles: [base], defaultErrno: EPERM}\n");

    let run = support::probe_under(&policy.path, &["write", "/dev/null"]);

    assert_eq!(run.stdout.trim(), "ok", "{}", run.stderr);
    let event = run.event("palisade.policy.applied");
    let attributes = &event["attributes"];
    assert_eq!(attributes["palisade.policy.name"], "test");
    assert!(attributes["palisade.policy.hash"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(attributes["palisade.policy.mode"], "enforce");
    assert!(attributes["palisade.landlock.abi"].as_i64().unwrap() >= 1);
    assert_eq!(attributes["palisade.landlock.status"], "enforced");
    let enforced: Vec<&str> = attributes["palisade.landlock.rights_enforced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(enforced.contains(&"fs.write_file"), "{enforced:?}");
    assert_eq!(attributes["palisade.seccomp.status"], "enforced");
    assert!(attributes["palisade.seccomp.filter_length"].as_i64().unwrap() > 100);
    assert_eq!(attributes["palisade.seccomp.default_errno"], "EPERM");
    assert_eq!(event["resource"]["service.name"], "palisade-wrap");
}

#[test]
fn command_keeps_launcher_pid() {
    let policy =
        policy("  process: {execute: [/usr/bin/dash, /bin/dash]}\n  filesystem: {read: [/usr, /lib, /lib64, /etc]}\n");

    let run = wrap(&policy.path, &["/bin/dash", "-c", "echo $$"]);

    let event = run.event("palisade.policy.applied");
    assert_eq!(event["attributes"]["process.pid"].to_string(), run.stdout.trim(), "{}", run.stderr);
}

/// Accepts one OTLP/HTTP request on loopback and returns its path, content type and body.
fn receive_one_request(listener: TcpListener) -> mpsc::Receiver<(String, String, Vec<u8>)> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut content_length = 0;
            let mut content_type = String::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header == "\r\n" || header.is_empty() {
                    break;
                }
                let (name, value) = header.split_once(':').unwrap();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => content_length = value.trim().parse().unwrap(),
                    "content-type" => content_type = value.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body).unwrap();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            if sender.send((path, content_type, body)).is_err() {
                return;
            }
        }
    });
    receiver
}

fn first_logs_request(receiver: &mpsc::Receiver<(String, String, Vec<u8>)>) -> (String, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok((path, content_type, body)) = receiver.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        if path == "/v1/logs" {
            return (content_type, body);
        }
    }
    panic!("no request to /v1/logs arrived");
}

/// Runs the probe writing to /dev/null under palisade-wrap, exporting to `endpoint` over OTLP.
fn probe_write_exporting_to(endpoint: &str) -> std::process::Output {
    let policy = probe_policy("");
    let probe = support::probe();
    wrap_command(&policy.path, &[probe.to_str().unwrap(), "write", "/dev/null"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .output()
        .unwrap()
}

#[test]
fn applied_event_exported_over_otlp_protobuf() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = receive_one_request(listener);
    let output = probe_write_exporting_to(&endpoint);

    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&output.stderr));
    let (content_type, body) = first_logs_request(&requests);
    assert_eq!(content_type, "application/x-protobuf");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("palisade.policy.applied"), "event name missing from the export");
    assert!(body.contains("palisade.landlock.abi"));
    assert!(body.contains("palisade-wrap"), "service.name missing from the resource");
}

#[test]
fn applied_event_exported_over_otlp_json() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = receive_one_request(listener);
    let policy = probe_policy("");
    let probe = support::probe();

    let output = wrap_command(&policy.path, &[probe.to_str().unwrap(), "write", "/dev/null"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (content_type, body) = first_logs_request(&requests);
    assert_eq!(content_type, "application/json");
    let document: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let record = &document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["eventName"], "palisade.policy.applied", "{document}");
}

#[test]
fn unresponsive_collector_delays_exec_boundedly() {
    // The collector accepts connections but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let held = std::thread::spawn(move || listener.incoming().take(4).filter_map(Result::ok).collect::<Vec<_>>());
    let policy = probe_policy("");
    let probe = support::probe();

    let output = wrap_command(&policy.path, &[probe.to_str().unwrap(), "write", "/dev/null"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("PALISADE_TELEMETRY_TIMEOUT_MS", "300")
        .output()
        .unwrap();

    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&output.stderr));
    drop(held);
}

#[test]
fn unreachable_collector_falls_back_to_stderr() {
    // A port that was just free: connecting to it is refused.
    let endpoint = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let output = probe_write_exporting_to(&endpoint);
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok", "{stderr}");
    assert!(stderr.contains("OTLP export to"), "{stderr}");
    assert!(stderr.contains("\"event_name\":\"palisade.policy.applied\""), "{stderr}");
}

#[test]
fn unsupported_otlp_protocol_falls_back_to_stderr() {
    let policy = probe_policy("");
    let probe = support::probe();

    let output = wrap_command(&policy.path, &[probe.to_str().unwrap(), "write", "/dev/null"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(stderr.contains("unsupported OTEL_EXPORTER_OTLP_PROTOCOL \"grpc\""), "{stderr}");
    assert!(stderr.contains("\"event_name\":\"palisade.policy.applied\""), "{stderr}");
}

/// Runs palisade-wrap inside an outer palisade-wrap whose seccomp filter hides Landlock, as on a
/// kernel without it (Lambda's 5.10 kernels).
fn without_landlock(inner_policy: &std::path::Path, command: &[&str]) -> support::Run {
    let outer = policy(
        "  process: {execute: [/]}\n  filesystem: {read: [/], write: [/]}\n  syscalls: {profiles: [base], allow: [seccomp]}\n  network: {unrestrictedTcp: true}\n  scope: {abstractUnixSocket: false, signal: false}\n",
    );
    let mut nested = vec![WRAP, "--policy", inner_policy.to_str().unwrap(), "--"];
    nested.extend_from_slice(command);
    wrap(&outer.path, &nested)
}

#[test]
fn no_landlock_reports_exactly_what_applies() {
    let policy = probe_policy("  syscalls: {profiles: [base], defaultErrno: EHWPOISON}\n");
    let probe = support::probe();
    let outside = policy.dir.path().join("no-landlock.txt");

    let write = without_landlock(&policy.path, &[probe.to_str().unwrap(), "write", outside.to_str().unwrap()]);
    let ptrace = without_landlock(&policy.path, &[probe.to_str().unwrap(), "syscall", "ptrace"]);

    // The inner launcher's event is the second policy.applied line on stderr.
    let events: Vec<serde_json::Value> =
        write.events().into_iter().filter(|event| event["event_name"] == "palisade.policy.applied").collect();
    assert_eq!(events.len(), 2, "{}", write.stderr);
    let inner = &events[1]["attributes"];
    assert_eq!(inner["palisade.landlock.abi"], 0);
    assert_eq!(inner["palisade.landlock.status"], "not applied");
    assert!(inner["palisade.landlock.rights_enforced"].as_array().unwrap().is_empty());
    assert!(inner["palisade.landlock.rights_degraded"]
        .as_array()
        .unwrap()
        .iter()
        .any(|right| right == "fs.write_file"));
    assert_eq!(inner["palisade.seccomp.status"], "enforced");
    assert_eq!(events[1]["severity_text"], "WARN");
    // Without Landlock the write goes through; the seccomp filter still denies ptrace.
    assert_eq!(write.stdout.trim(), "ok", "{}", write.stderr);
    assert_eq!(ptrace.stdout.trim(), "EHWPOISON", "{}", ptrace.stderr);
}

#[test]
fn no_landlock_in_strict_mode_refuses_to_start() {
    let policy = probe_policy("  enforcement: strict\n");
    let probe = support::probe();

    let run = without_landlock(&policy.path, &[probe.to_str().unwrap(), "write", "/dev/null"]);

    assert_eq!(run.status, Some(71), "{}", run.stderr);
    assert!(run.stderr.contains("Landlock is not applied"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}
