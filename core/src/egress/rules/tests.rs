use std::path::Path;

use super::*;
use crate::policy::Policy;

fn engine(egress: &str) -> Engine {
    let text = format!("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  egress:\n{egress}");
    let policy = Policy::from_yaml(&text, Path::new("test.yaml")).unwrap();
    let hash = policy.hash();
    Engine::new(&LoadedPolicy { policy, source: "test.yaml".into(), hash })
}

fn address_verdict(engine: &Engine, name: Option<&str>, address: &str, port: u16) -> Verdict {
    engine.check_address(name, address.parse().unwrap(), port)
}

const RULES: &str = "    allow:
      - id: api
        hosts: [api.example.com]
        ports: [443]
      - id: wildcard
        hosts: ['*.example.org']
      - id: backends
        cidrs: [127.0.0.2/32, 192.0.2.0/24]
        ports: [8080]
    deny:
      - id: blocked
        hosts: [bad.example.org]
";

#[test]
fn exact_host_matches_with_port() {
    let engine = engine(RULES);
    let verdict = address_verdict(&engine, Some("api.example.com"), "203.0.113.7", 443);
    assert_eq!(verdict.action, Action::Allow);
    assert_eq!(verdict.rule.as_deref(), Some("api"));
    assert_eq!(address_verdict(&engine, Some("api.example.com"), "203.0.113.7", 80).action, Action::Deny);
}

#[test]
fn wildcard_matches_subdomains_only() {
    let engine = engine(RULES);
    assert!(address_verdict(&engine, Some("a.example.org"), "203.0.113.7", 1).is_allowed());
    assert!(address_verdict(&engine, Some("a.b.example.org"), "203.0.113.7", 1).is_allowed());
    assert!(!address_verdict(&engine, Some("example.org"), "203.0.113.7", 1).is_allowed());
    assert!(!address_verdict(&engine, Some("badexample.org"), "203.0.113.7", 1).is_allowed());
    assert!(!address_verdict(&engine, Some("example.org.evil.com"), "203.0.113.7", 1).is_allowed());
}

#[test]
fn deny_rule_wins_over_allow() {
    let engine = engine(RULES);
    let verdict = address_verdict(&engine, Some("bad.example.org"), "203.0.113.7", 443);
    assert_eq!(verdict.action, Action::Deny);
    assert_eq!(verdict.rule.as_deref(), Some("blocked"));
    assert_eq!(engine.check_name("bad.example.org", 443), NameCheck::Decided(verdict));
}

#[test]
fn special_purpose_needs_cidr_rule() {
    let engine = engine(RULES);
    assert!(address_verdict(&engine, None, "127.0.0.2", 8080).is_allowed());
    assert!(address_verdict(&engine, None, "::ffff:127.0.0.2", 8080).is_allowed());
    let other = address_verdict(&engine, None, "127.0.0.1", 8080);
    assert_eq!(other.reason, Reason::SpecialPurpose("loopback"));
    // A host rule alone does not allow a special-purpose address.
    let rebound = address_verdict(&engine, Some("api.example.com"), "169.254.169.254", 443);
    assert_eq!(rebound.reason, Reason::SpecialPurpose("link-local"));
}

#[test]
fn host_rule_reaches_named_special_range() {
    let engine = engine(
        "    allow:
      - id: api
        hosts: [api.internal]
      - id: lab
        cidrs: [10.0.0.0/8]
        ports: [1]
",
    );
    let verdict = address_verdict(&engine, Some("api.internal"), "10.1.2.3", 443);
    assert_eq!(verdict.rule.as_deref(), Some("api"));
    assert!(verdict.is_allowed());
    // The CIDR names the range, but its rule opens only port 1.
    assert_eq!(address_verdict(&engine, None, "10.1.2.3", 443).reason, Reason::Default);
    assert!(address_verdict(&engine, Some("api.internal"), "192.168.1.1", 443).reason != Reason::Rule);
}

#[test]
fn unknown_name_denied_without_lookup() {
    let engine = engine("    allow:\n      - hosts: [api.example.com]\n");
    assert_eq!(
        engine.check_name("other.example.com", 443),
        NameCheck::Decided(Verdict { action: Action::Deny, rule: None, reason: Reason::Default })
    );
    assert_eq!(engine.check_name("api.example.com", 443), NameCheck::Resolve);
}

#[test]
fn default_allow_still_denies_special() {
    let engine = engine("    default: allow\n");
    assert!(address_verdict(&engine, None, "203.0.113.9", 80).is_allowed());
    assert!(!address_verdict(&engine, None, "10.1.2.3", 80).is_allowed());
    assert!(!address_verdict(&engine, None, "fd00:ec2::254", 80).is_allowed());
}

#[test]
fn rule_ids_default_to_position() {
    let engine = engine("    allow:\n      - hosts: [a.example]\n      - hosts: [b.example]\n");
    let verdict = address_verdict(&engine, Some("b.example"), "203.0.113.7", 443);
    assert_eq!(verdict.rule.as_deref(), Some("allow[1]"));
}
