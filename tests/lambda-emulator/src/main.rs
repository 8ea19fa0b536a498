//! `lambda-emulator`: runs a Lambda execution environment with real processes, sends the given
//! invokes, shuts it down, and prints the results and the record as JSON.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, ShutdownReason};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "lambda-emulator", about = "Emulates the AWS Lambda execution environment and prints a JSON report")]
struct Args {
    /// Directory whose executables start as external extensions (like /opt/extensions).
    #[arg(long)]
    extensions_dir: Option<PathBuf>,
    /// Working directory of the runtime and value of LAMBDA_TASK_ROOT [default: current directory].
    #[arg(long)]
    task_root: Option<PathBuf>,
    /// Value of _HANDLER.
    #[arg(long, default_value = "function.handler")]
    handler: String,
    #[arg(long, default_value = "palisade-test")]
    function_name: String,
    #[arg(long, default_value = "$LATEST")]
    function_version: String,
    #[arg(long, default_value_t = 128)]
    memory_size_mb: u32,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "123456789012")]
    account_id: String,
    /// Value of AWS_LAMBDA_EXEC_WRAPPER; the runtime then starts as WRAPPER RUNTIME_COMMAND...
    #[arg(long)]
    exec_wrapper: Option<PathBuf>,
    /// Function environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Copies this variable from the emulator's own environment into the function's (repeatable).
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// Function timeout in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    timeout_ms: u64,
    /// Init phase limit in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    init_timeout_ms: u64,
    /// Overrides the documented shutdown budget (2,000 ms with external extensions), in milliseconds.
    #[arg(long)]
    shutdown_budget_ms: Option<u64>,
    /// Address of the Runtime API server.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Telemetry destination host mapping HOST=IP (repeatable) [default: sandbox.localdomain=127.0.0.1].
    #[arg(long = "sandbox-host", value_name = "HOST=IP")]
    sandbox_hosts: Vec<String>,
    /// Keeps the processes running between invokes instead of freezing them.
    #[arg(long)]
    no_freeze: bool,
    /// Invoke payload (repeatable, sent in order).
    #[arg(long = "payload", value_name = "JSON")]
    payloads: Vec<String>,
    /// File with one invoke payload per line, sent after the --payload ones.
    #[arg(long)]
    payloads_file: Option<PathBuf>,
    /// Pause after init and after each invoke, in milliseconds (the sandbox stays frozen).
    #[arg(long, default_value_t = 0)]
    idle_ms: u64,
    /// shutdownReason of the SHUTDOWN event: spindown, timeout or failure.
    #[arg(long, default_value = "spindown")]
    shutdown_reason: String,
    /// Writes the JSON report here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Runtime command and its arguments.
    #[arg(last = true, required = true)]
    runtime_command: Vec<String>,
}

fn parse_pair(pair: &str, flag: &str) -> anyhow::Result<(String, String)> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => bail!("invalid {flag} value {pair:?}; expected KEY=VALUE"),
    }
}

fn build_config(args: &Args) -> anyhow::Result<Config> {
    let mut environment = BTreeMap::new();
    for name in &args.pass_env {
        if let Ok(value) = std::env::var(name) {
            environment.insert(name.clone(), value);
        }
    }
    for pair in &args.env {
        let (key, value) = parse_pair(pair, "--env")?;
        environment.insert(key, value);
    }
    let mut config = Config {
        extensions_dir: args.extensions_dir.clone(),
        runtime_command: args.runtime_command.clone(),
        exec_wrapper: args.exec_wrapper.clone(),
        task_root: match &args.task_root {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("failed to read the current directory")?,
        },
        handler: args.handler.clone(),
        function_name: args.function_name.clone(),
        function_version: args.function_version.clone(),
        memory_size_mb: args.memory_size_mb,
        region: args.region.clone(),
        account_id: args.account_id.clone(),
        environment,
        timeout: Duration::from_millis(args.timeout_ms),
        init_timeout: Duration::from_millis(args.init_timeout_ms),
        shutdown_budget: args.shutdown_budget_ms.map(Duration::from_millis),
        listen: args.listen,
        freeze: !args.no_freeze,
        ..Config::default()
    };
    if !args.sandbox_hosts.is_empty() {
        config.sandbox_hosts.clear();
        for pair in &args.sandbox_hosts {
            let (host, ip) = parse_pair(pair, "--sandbox-host")?;
            let ip: IpAddr = ip.parse().with_context(|| format!("invalid IP address in --sandbox-host {pair:?}"))?;
            config.sandbox_hosts.insert(host, ip);
        }
    }
    Ok(config)
}

fn shutdown_reason(name: &str) -> anyhow::Result<ShutdownReason> {
    match name {
        "spindown" => Ok(ShutdownReason::Spindown),
        "timeout" => Ok(ShutdownReason::Timeout),
        "failure" => Ok(ShutdownReason::Failure),
        other => bail!("invalid --shutdown-reason {other:?}; use spindown, timeout or failure"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = build_config(&args)?;
    let reason = shutdown_reason(&args.shutdown_reason)?;
    let mut payloads = args.payloads.clone();
    if let Some(path) = &args.payloads_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        payloads.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned));
    }
    let idle = Duration::from_millis(args.idle_ms);

    let emulator = Emulator::start(config).await?;
    tokio::time::sleep(idle).await;
    let mut invokes = Vec::new();
    for payload in payloads {
        if emulator.is_shut_down() {
            break;
        }
        invokes.push(emulator.invoke(InvokeRequest::new(payload)).await?);
        tokio::time::sleep(idle).await;
    }
    let shutdown = if emulator.is_shut_down() { None } else { Some(emulator.shutdown(reason).await?) };

    let report = json!({
        "runtimeApi": emulator.runtime_api().to_string(),
        "init": emulator.init_report(),
        "invokes": invokes,
        "shutdown": shutdown,
        "record": emulator.record(),
        "logs": emulator.logs(),
    });
    let text = serde_json::to_string_pretty(&report)?;
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}
