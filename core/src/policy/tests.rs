use std::path::Path;

use super::*;

const FULL: &str = r#"
apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {name: orders-api}
spec:
  mode: enforce
  enforcement: bestEffort
  process:   {execute: [/usr/bin/python3.11]}
  filesystem: {read: [/usr, /lib, /etc/ssl/certs], write: [/tmp]}
  syscalls:  {profiles: [python], allow: [], deny: [], defaultErrno: ENOSYS}
  network:   {connectTcp: [443], bindTcp: []}
  egress:    {default: deny, allow: [{hosts: ["api.example.com", "*.amazonaws.com"], ports: [443]}, {cidrs: ["10.0.0.0/8"], ports: [5432]}], deny: []}
  integrity: {paths: [/var/task, /opt], exclude: ["**/__pycache__/**"]}
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_yaml(text, Path::new("policy.yaml"))
}

fn parse_error(text: &str) -> (usize, usize, String) {
    match parse(text).unwrap_err() {
        PolicyError::Parse { line, column, message, .. } => (line, column, message),
        other => panic!("expected a parse error, got {other}"),
    }
}

#[test]
fn documented_example_parses() {
    let policy = parse(FULL).unwrap();
    assert_eq!(policy.name(), "orders-api");
    assert_eq!(policy.spec.syscalls.profiles, vec![ProfileName::Python]);
    assert_eq!(policy.spec.network.connect_tcp[0].get(), 443);
    assert_eq!(policy.spec.egress.allow.len(), 2);
    assert!(policy.spec.egress.allow[0].hosts[1].is_wildcard());
}

#[test]
fn hash_ignores_formatting() {
    let compact = parse(FULL).unwrap();
    let commented = parse(&FULL.replace("kind: WorkloadPolicy", "kind: WorkloadPolicy   # the kind")).unwrap();
    assert_eq!(compact.hash(), commented.hash());
    assert!(compact.hash().starts_with("sha256:"));
}

#[test]
fn unknown_key_has_location_and_choices() {
    let (line, column, message) = parse_error(&FULL.replace("write: [/tmp]", "wirte: [/tmp]"));
    assert_eq!(line, 9);
    assert!(column > 1);
    assert!(message.contains("unknown field `wirte`"), "{message}");
    assert!(message.contains("`write`"), "{message}");
}

#[test]
fn wrong_type_is_located() {
    let (line, _, message) = parse_error(&FULL.replace("connectTcp: [443]", "connectTcp: 443"));
    assert_eq!(line, 11);
    assert!(message.contains("spec.network.connectTcp"), "{message}");
}

#[test]
fn invalid_values_name_the_value() {
    let cases = [
        ("connectTcp: [443]", "connectTcp: [70000]", "invalid port 70000"),
        ("\"10.0.0.0/8\"", "\"10.0.0.0/33\"", "invalid CIDR \"10.0.0.0/33\""),
        ("defaultErrno: ENOSYS", "defaultErrno: ENOSYSX", "unknown errno \"ENOSYSX\""),
        ("allow: [], deny: []", "allow: [], deny: [ptrace, not_a_syscall]", "unknown system call \"not_a_syscall\""),
        ("\"**/__pycache__/**\"", "\"[unclosed\"", "invalid glob \"[unclosed\""),
        ("\"api.example.com\"", "\"api..example.com\"", "invalid host pattern \"api..example.com\""),
        ("/var/task,", "var/task,", "policy paths must be absolute"),
        ("profiles: [python]", "profiles: [ruby]", "unknown variant `ruby`"),
        ("mode: enforce", "mode: permissive", "unknown variant `permissive`"),
    ];
    for (from, to, expected) in cases {
        let text = FULL.replacen(from, to, 1);
        assert_ne!(text, FULL, "replacement {from:?} did not apply");
        let (line, _, message) = parse_error(&text);
        assert!(line > 1, "{to}: line {line}");
        assert!(message.contains(expected), "{to}: {message}");
    }
}

#[test]
fn api_version_is_checked() {
    let (line, _, message) = parse_error(&FULL.replace("palisade.dev/v1alpha1", "palisade.dev/v2"));
    assert_eq!(line, 2);
    assert!(message.contains("write \"palisade.dev/v1alpha1\""), "{message}");
}

#[test]
fn invalid_yaml_is_located() {
    let (line, _, _) = parse_error("apiVersion: palisade.dev/v1alpha1\nkind: [unclosed\n");
    assert!(line >= 2);
}

#[test]
fn egress_rule_needs_destination() {
    let text = FULL.replace("{cidrs: [\"10.0.0.0/8\"], ports: [5432]}", "{ports: [5432]}");

    let (_, _, message) = parse_error(&text);

    assert!(message.contains("spec.egress.allow"), "{message}");
    assert!(message.contains("rule [1] of the list"), "{message}");
}

#[test]
fn rule_error_names_list_and_index() {
    let text = "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  egress:\n    allow:\n      - hosts: [a.example]\n      - hosts: [b.example]\n      - ports: [443]\n      - hosts: [c.example]\n";

    let (line, _, message) = parse_error(text);

    // The location is where the list starts; the index names the rule in it.
    assert!(message.contains("rule [2] of the list (counting from 0) names no destination"), "{message}");
    assert_eq!(line, 6, "{message}");
}

#[test]
fn defaults_are_secure() {
    let policy = parse("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\n").unwrap();
    assert_eq!(policy.spec.mode, Mode::Enforce);
    assert_eq!(policy.spec.egress.default, EgressDefault::Deny);
    assert_eq!(policy.spec.syscalls.default_errno, ErrnoName::ENOSYS);
    assert_eq!(policy.spec.syscalls.profiles, vec![ProfileName::Base]);
    assert!(policy.spec.scope.signal);
}

#[test]
fn interpreter_in_execute_warns() {
    let warnings = weakening_rules(&parse(FULL).unwrap());
    assert!(warnings.iter().any(|warning| warning.message.contains("interpreter")), "{warnings:?}");
}

#[test]
fn writable_executable_path_warns() {
    let text = FULL.replace("execute: [/usr/bin/python3.11]", "execute: [/tmp/bin]");
    let warnings = weakening_rules(&parse(&text).unwrap());
    assert!(warnings.iter().any(|warning| warning.message.contains("also writable")), "{warnings:?}");
}

#[test]
fn supervision_defaults_on_and_can_be_turned_off() {
    let policy = parse("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\n").unwrap();
    assert!(policy.spec.syscalls.supervise);
    let plain = parse(&FULL.replace("defaultErrno: ENOSYS}", "defaultErrno: ENOSYS, supervise: false}")).unwrap();
    assert!(!plain.spec.syscalls.supervise);
    let (_, _, message) = parse_error(&FULL.replace("defaultErrno: ENOSYS}", "defaultErrno: ENOSYS, supervise: yes}"));
    assert!(message.contains("supervise"), "{message}");
}

#[test]
fn deep_flow_nesting_rejected_quickly() {
    let nested = format!(
        "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  process: {{execute: {}{}}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );

    let (line, _, message) = parse_error(&nested);

    assert_eq!(line, 4);
    assert!(message.contains("nested more than"), "{message}");
}

#[test]
fn byte_order_mark_is_ignored() {
    let policy = parse(&format!("\u{feff}{FULL}")).unwrap();
    assert_eq!(policy.name(), "orders-api");
}

#[test]
fn long_name_rejected() {
    let text = FULL.replace("name: orders-api", &format!("name: {}", "n".repeat(300)));
    let error = parse(&text).unwrap_err();
    assert!(error.to_string().contains("metadata.name must be at most 253 bytes"), "{error}");
}

#[test]
fn oversized_and_binary_files_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let large = dir.path().join("large.yaml");
    std::fs::write(&large, vec![b'#'; MAX_POLICY_BYTES as usize + 1]).unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"apiVersion: \xff\n").unwrap();

    assert!(matches!(load(&large), Err(PolicyError::TooLarge { .. })));
    assert!(matches!(load(&binary), Err(PolicyError::NotUtf8 { offset: 12, .. })));
}
