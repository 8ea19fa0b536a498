//! Measures the Palisade extension against the Lambda emulator: init overhead (extension process
//! start to its first `/next`), per-invoke added latency (INVOKE delivered to the extension to
//! its next `/next`), and the extension's memory. Run through `bench/lambda/run.sh`.
//!
//! Usage: lambda_bench LAYER_DIR [INVOKES]. Started by the emulator (AWS_LAMBDA_RUNTIME_API set),
//! this program is the function: a `lambda_runtime` handler that returns its event.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use lambda_runtime::{service_fn, LambdaEvent};
use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, RecordEntry, RecordKind, ShutdownReason};
use serde_json::{json, Value};

const EXTENSION: &str = "palisade-extension";

async fn echo(event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
    Ok(event.payload)
}

/// An OTLP endpoint that accepts every request, so that span export runs as in production.
fn start_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the OTLP sink");
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                        return;
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    endpoint
}

fn policy(dir: &Path) -> PathBuf {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nmetadata: {name: bench}\nspec:\n  egress: {default: deny}\n",
    )
    .unwrap();
    path
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn extension_entries(record: &[RecordEntry], kind: RecordKind) -> Vec<&RecordEntry> {
    record.iter().filter(|entry| entry.kind == kind && entry.subject.as_deref() == Some(EXTENSION)).collect()
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn bench(layer: PathBuf, invokes: usize) -> Value {
    let work = tempfile::tempdir().unwrap();
    let mut environment = BTreeMap::new();
    environment.insert("PALISADE_POLICY".to_owned(), policy(work.path()).display().to_string());
    environment.insert("PALISADE_PROXY_PORT".to_owned(), "0".to_owned());
    environment.insert("PALISADE_MANIFEST".to_owned(), String::new());
    environment.insert("PALISADE_INTEGRITY_PREFIX".to_owned(), work.path().display().to_string());
    environment.insert("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), start_sink());
    // Settings under comparison, such as PALISADE_FLUSH_TIMEOUT_MS, pass through to the extension.
    environment.extend(std::env::vars().filter(|(name, _)| name.starts_with("PALISADE_") && name != "PALISADE_POLICY"));
    let config = Config {
        extensions_dir: Some(layer.join("extensions")),
        runtime_command: vec![std::env::current_exe().unwrap().display().to_string()],
        task_root: work.path().to_owned(),
        environment,
        ..Config::default()
    };

    let emulator = Emulator::start(config).await.expect("start the emulator");
    for index in 0..invokes {
        emulator.invoke(InvokeRequest::new(json!({"n": index}).to_string())).await.expect("invoke");
    }
    let pid =
        emulator.pids().into_iter().find(|(name, _)| name == EXTENSION).map(|(_, pid)| pid).expect("extension pid");
    let (rss, peak) = memory_kib(pid);
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");
    let record = emulator.record();

    let started = extension_entries(&record, RecordKind::ProcessStarted)[0].elapsed_us;
    let nexts = extension_entries(&record, RecordKind::ExtensionNext);
    let init_ms = (nexts[0].elapsed_us - started) as f64 / 1000.0;

    let mut latencies: Vec<f64> = Vec::new();
    for delivered in extension_entries(&record, RecordKind::ExtensionEventDelivered) {
        if delivered.detail["eventType"] != "INVOKE" {
            continue;
        }
        if let Some(next) = nexts.iter().find(|next| next.seq > delivered.seq) {
            latencies.push((next.elapsed_us - delivered.elapsed_us) as f64 / 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);

    json!({
        "invokes": latencies.len(),
        "init_ms": init_ms,
        "invoke_added_ms_p50": percentile(&latencies, 0.50),
        "invoke_added_ms_p99": percentile(&latencies, 0.99),
        "invoke_added_ms_max": latencies.last(),
        "rss_kib": rss,
        "peak_rss_kib": peak,
    })
}

fn main() {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        if let Err(error) = runtime.block_on(lambda_runtime::run(service_fn(echo))) {
            eprintln!("lambda_runtime stopped: {error}");
            std::process::exit(1);
        }
        return;
    }

    let mut arguments = std::env::args().skip(1);
    let layer = PathBuf::from(arguments.next().expect("usage: lambda_bench LAYER_DIR [INVOKES]"));
    let invokes = arguments.next().map_or(500, |count| count.parse().expect("INVOKES is a number"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(bench(layer, invokes));
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
}
