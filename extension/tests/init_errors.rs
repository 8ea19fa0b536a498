//! Configuration errors at init: reported through `/extension/init/error`, then the policy's
//! `failureMode` decides whether the function fails or runs unprotected.

mod support;

use std::collections::BTreeMap;

use palisade_lambda_emulator::{Config, Emulator, InvokeRequest, RecordKind, ShutdownReason, Status};
use support::{python, require_python_module, Layout};

const VALID_POLICY: &str = "apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {name: init-errors}
spec:
  failureMode: open
  egress: {default: deny}
";

async fn start(layout: &Layout, variables: &[(&str, String)]) -> Emulator {
    require_python_module("awslambdaric", "awslambdaric");
    std::fs::copy(support::fixture("app.py"), layout.task().join("app.py")).unwrap();
    let mut environment: BTreeMap<String, String> =
        variables.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect();
    environment.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_default());
    environment.insert("PALISADE_PROXY_PORT".to_owned(), support::free_port().to_string());
    environment.insert("PALISADE_INTEGRITY_PREFIX".to_owned(), layout.root().display().to_string());
    let config = Config {
        extensions_dir: Some(layout.opt().join("extensions")),
        runtime_command: vec![python().display().to_string(), "-m".into(), "awslambdaric".into(), "app.handler".into()],
        task_root: layout.task(),
        handler: "app.handler".into(),
        environment,
        ..Config::default()
    };
    Emulator::start(config).await.expect("start the emulator")
}

fn extension_log(emulator: &Emulator) -> String {
    emulator.logs().iter().map(|line| format!("{line:?}\n")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_policy_fails_init() {
    let layout = Layout::new();
    let policy = layout.root().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec: {egress: {default: sometimes}}\n",
    )
    .unwrap();

    let emulator = start(&layout, &[("PALISADE_POLICY", policy.display().to_string())]).await;

    let init = emulator.init_report();
    assert_ne!(init.status, Status::Success, "{init:?}");
    assert_eq!(init.error_type.as_deref(), Some("Palisade.PolicyInvalid"), "{init:?}");
    let reported = emulator.record().iter().any(|entry| {
        entry.kind == RecordKind::ExtensionInitError && entry.detail["errorType"] == "Palisade.PolicyInvalid"
    });
    assert!(reported, "{:#?}", emulator.record());
    assert!(extension_log(&emulator).contains("failureMode: closed"), "{}", extension_log(&emulator));
}

#[tokio::test(flavor = "multi_thread")]
async fn open_failure_mode_runs_unprotected() {
    let layout = Layout::new();
    let policy = layout.root().join("policy.yaml");
    std::fs::write(&policy, VALID_POLICY).unwrap();
    let manifest = layout.root().join("broken.manifest");
    std::fs::write(&manifest, "not a manifest\n").unwrap();

    let emulator = start(
        &layout,
        &[("PALISADE_POLICY", policy.display().to_string()), ("PALISADE_MANIFEST", manifest.display().to_string())],
    )
    .await;
    let init = emulator.init_report().clone();
    let outcome = emulator.invoke(InvokeRequest::new("{}")).await.expect("invoke");
    emulator.shutdown(ShutdownReason::Spindown).await.expect("shutdown");

    assert_eq!(init.status, Status::Success, "{init:?}");
    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    let log = extension_log(&emulator);
    assert!(log.contains("Palisade.ManifestInvalid"), "{log}");
    assert!(log.contains("runs unprotected (failureMode: open)"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_variable_fails_init() {
    let layout = Layout::new();
    let policy = layout.root().join("policy.yaml");
    std::fs::write(&policy, VALID_POLICY).unwrap();

    let emulator = start(
        &layout,
        &[("PALISADE_POLICY", policy.display().to_string()), ("PALISADE_FLUSH_TIMEOUT_MS", "soon".to_owned())],
    )
    .await;

    let init = emulator.init_report();
    assert_eq!(init.error_type.as_deref(), Some("Palisade.ConfigInvalid"), "{init:?}");
}
