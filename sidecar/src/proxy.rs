//! The `proxy` command: load the policy, serve, reload on SIGHUP or file change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use palisade_core::egress::proxy::{Limits, PolicyHandle, Proxy, ProxyConfig, ResolverSettings};
use palisade_core::telemetry::{Resource, Telemetry};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::ProxyArgs;

/// Bound on one telemetry export.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often counter totals are flushed to the telemetry exporter.
const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

pub fn run(arguments: ProxyArgs) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if arguments.threads > 0 {
        runtime.worker_threads(arguments.threads);
    }
    let runtime = runtime.enable_all().build().context("failed to start the async runtime")?;
    runtime.block_on(serve(arguments))
}

async fn serve(arguments: ProxyArgs) -> anyhow::Result<()> {
    let telemetry = Telemetry::from_env(Resource::detect("palisade-sidecar"), EXPORT_TIMEOUT)?;
    let policy = PolicyHandle::load(&arguments.policy, telemetry.clone())
        .with_context(|| format!("failed to load the policy {}", arguments.policy.display()))?;
    let policy = Arc::new(policy);

    let config = ProxyConfig {
        limits: Limits {
            max_connections: arguments.max_connections,
            header_read_timeout: arguments.header_timeout,
            idle_timeout: arguments.idle_timeout,
            tunnel_idle_timeout: arguments.tunnel_idle_timeout,
            max_header_bytes: arguments.max_header_bytes,
            connect_timeout: arguments.connect_timeout,
            ..Limits::default()
        },
        resolver: match arguments.dns_servers.is_empty() {
            true => ResolverSettings::System,
            false => ResolverSettings::NameServers(arguments.dns_servers.clone()),
        },
    };
    let proxy = Proxy::new(Arc::clone(&policy), telemetry.clone(), config)?;
    let listener = tokio::net::TcpListener::bind(arguments.listen)
        .await
        .with_context(|| format!("failed to listen on {}", arguments.listen))?;

    tokio::spawn(Arc::clone(&policy).watch(arguments.reload_interval));
    tokio::spawn(reload_on_sighup(Arc::clone(&policy)));
    tokio::spawn(flush_periodically(telemetry.clone()));

    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    tokio::select! {
        result = proxy.serve(listener) => result?,
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
    }

    if let Err(error) = telemetry.shutdown(EXPORT_TIMEOUT) {
        tracing::warn!(%error, "telemetry shutdown failed");
    }
    Ok(())
}

async fn reload_on_sighup(policy: Arc<PolicyHandle>) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(hangup) => hangup,
        Err(error) => {
            tracing::error!(%error, "failed to handle SIGHUP; the policy reloads only when its file changes");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading the policy");
        // An invalid policy was logged and reported by `reload`, and the old one stays.
        let _ = policy.reload();
    }
}

async fn flush_periodically(telemetry: Telemetry) {
    let mut ticker = tokio::time::interval(FLUSH_INTERVAL);
    loop {
        ticker.tick().await;
        if let Err(error) = telemetry.flush(EXPORT_TIMEOUT) {
            tracing::warn!(%error, "telemetry flush failed");
        }
    }
}
