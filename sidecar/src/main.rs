//! `palisade-sidecar`: runs Palisade's egress proxy beside a workload.

#![forbid(unsafe_code)]

mod cli;
mod proxy;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    init_logging();

    match cli.command {
        cli::Command::Proxy(arguments) => proxy::run(arguments),
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
