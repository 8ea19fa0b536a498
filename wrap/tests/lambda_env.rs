//! The Lambda environment: inside Lambda (AWS_LAMBDA_RUNTIME_API set) palisade-wrap points the
//! command at the extension's egress proxy; elsewhere it leaves the proxy variables alone.

mod support;

use std::collections::BTreeMap;

use support::{policy, wrap_command};

const ENV: &str = "/usr/bin/env";

fn permissive_policy() -> support::PolicyFile {
    policy("  process: {execute: [/]}\n  filesystem: {read: [/]}\n")
}

/// Runs `env` under palisade-wrap with `variables` and returns the environment it printed.
fn environment_of_command(variables: &[(&str, &str)]) -> BTreeMap<String, String> {
    let policy = permissive_policy();
    let mut command = wrap_command(&policy.path, &[ENV]);
    for name in ["AWS_LAMBDA_RUNTIME_API", "PALISADE_PROXY_PORT", "NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        command.env_remove(name);
    }
    command.envs(variables.iter().copied());

    let output = command.output().expect("run palisade-wrap");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn lambda_sets_proxy_variables() {
    let environment = environment_of_command(&[("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")]);

    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        assert_eq!(environment.get(name).map(String::as_str), Some("http://127.0.0.1:3128"), "{name}");
    }
    let no_proxy = environment.get("NO_PROXY").expect("NO_PROXY set");
    let entries: Vec<&str> = no_proxy.split(',').collect();
    for host in ["127.0.0.1", "sandbox.localdomain", "localhost", "169.254.0.0/16"] {
        assert!(entries.contains(&host), "{host} missing from NO_PROXY {no_proxy}");
    }
    assert_eq!(environment.get("no_proxy"), Some(no_proxy));
}

#[test]
fn lambda_proxy_port_and_runtime_host() {
    let environment = environment_of_command(&[
        ("AWS_LAMBDA_RUNTIME_API", "169.254.100.1:9001"),
        ("PALISADE_PROXY_PORT", "4100"),
        ("NO_PROXY", "internal.example"),
    ]);

    assert_eq!(environment.get("HTTPS_PROXY").map(String::as_str), Some("http://127.0.0.1:4100"));
    let no_proxy = environment.get("NO_PROXY").expect("NO_PROXY set");
    assert!(no_proxy.starts_with("169.254.100.1,"), "{no_proxy}");
    assert!(no_proxy.ends_with(",internal.example"), "{no_proxy}");
}

#[test]
fn outside_lambda_proxy_untouched() {
    let environment = environment_of_command(&[]);

    assert_eq!(environment.get("HTTP_PROXY"), None);
    assert_eq!(environment.get("NO_PROXY"), None);
}
