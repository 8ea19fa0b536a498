//! `palisade-extension`: the Palisade Lambda extension, installed as
//! `/opt/extensions/palisade-extension`.

#![forbid(unsafe_code)]

mod api;
mod config;
mod error;
mod http;
mod integrity;
mod invocation;
mod lifecycle;
mod listener;
mod processes;
mod trace;

use std::process::ExitCode;

use anyhow::Context;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PALISADE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).init();

    match run() {
        Ok(lifecycle::Exit::Shutdown) => ExitCode::SUCCESS,
        Ok(lifecycle::Exit::InitFailed) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "extension failed");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<lifecycle::Exit> {
    let runtime_api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| error::ApiError::NoRuntimeApi)?;
    // Lambda requires the registered name to be the extension's file name.
    let name = std::env::args_os()
        .next()
        .and_then(|path| std::path::Path::new(&path).file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "palisade-extension".to_owned());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    Ok(runtime.block_on(lifecycle::run(runtime_api, name))?)
}
