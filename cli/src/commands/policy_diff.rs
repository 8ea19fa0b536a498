//! `palisade policy diff OLD NEW`: what changes between two policies, rule by rule, and how the
//! effective system call allow-list changes once profiles are expanded.

use std::collections::BTreeSet;
use std::fmt::Display;

use palisade_core::enforce::SeccompPlan;
use palisade_core::policy::{EgressRule, Policy};

/// One changed rule: `+` added in NEW, `-` removed from OLD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub added: bool,
    pub key: &'static str,
    pub value: String,
}

impl Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", if self.added { '+' } else { '-' }, self.key, self.value)
    }
}

/// Every rule that differs between `old` and `new`.
pub fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let (old, new) = (&old.spec, &new.spec);
    let mut changes = Vec::new();
    let mut compare = |key: &'static str, old: BTreeSet<String>, new: BTreeSet<String>| {
        changes.extend(old.difference(&new).map(|value| Change { added: false, key, value: value.clone() }));
        changes.extend(new.difference(&old).map(|value| Change { added: true, key, value: value.clone() }));
    };

    compare("spec.mode", one(name_of(&old.mode)), one(name_of(&new.mode)));
    compare("spec.enforcement", one(name_of(&old.enforcement)), one(name_of(&new.enforcement)));
    compare("spec.failureMode", one(name_of(&old.failure_mode)), one(name_of(&new.failure_mode)));
    compare("spec.process.execute", strings(&old.process.execute), strings(&new.process.execute));
    compare("spec.filesystem.read", strings(&old.filesystem.read), strings(&new.filesystem.read));
    compare("spec.filesystem.write", strings(&old.filesystem.write), strings(&new.filesystem.write));
    compare(
        "spec.syscalls.profiles",
        old.syscalls.profiles.iter().map(|profile| profile.as_str().to_owned()).collect(),
        new.syscalls.profiles.iter().map(|profile| profile.as_str().to_owned()).collect(),
    );
    compare("spec.syscalls.allow", strings(&old.syscalls.allow), strings(&new.syscalls.allow));
    compare("spec.syscalls.deny", strings(&old.syscalls.deny), strings(&new.syscalls.deny));
    compare("spec.syscalls.defaultErrno", one(old.syscalls.default_errno), one(new.syscalls.default_errno));
    compare("spec.syscalls.supervise", one(old.syscalls.supervise), one(new.syscalls.supervise));
    compare("(effective system calls)", effective_syscalls(old), effective_syscalls(new));
    compare("spec.network.connectTcp", strings(&old.network.connect_tcp), strings(&new.network.connect_tcp));
    compare("spec.network.bindTcp", strings(&old.network.bind_tcp), strings(&new.network.bind_tcp));
    compare("spec.network.unrestrictedTcp", one(old.network.unrestricted_tcp), one(new.network.unrestricted_tcp));
    compare("spec.scope.abstractUnixSocket", one(old.scope.abstract_unix_socket), one(new.scope.abstract_unix_socket));
    compare("spec.scope.signal", one(old.scope.signal), one(new.scope.signal));
    compare("spec.egress.default", one(name_of(&old.egress.default)), one(name_of(&new.egress.default)));
    compare("spec.egress.allow", egress(&old.egress.allow), egress(&new.egress.allow));
    compare("spec.egress.deny", egress(&old.egress.deny), egress(&new.egress.deny));
    compare("spec.integrity.paths", strings(&old.integrity.paths), strings(&new.integrity.paths));
    compare("spec.integrity.exclude", strings(&old.integrity.exclude), strings(&new.integrity.exclude));
    compare(
        "spec.integrity.highAssurance",
        strings(&old.integrity.high_assurance),
        strings(&new.integrity.high_assurance),
    );
    compare("spec.integrity.algorithm", one(name_of(&old.integrity.algorithm)), one(name_of(&new.integrity.algorithm)));
    changes
}

fn one(value: impl Display) -> BTreeSet<String> {
    BTreeSet::from([value.to_string()])
}

fn strings<T: Display>(values: &[T]) -> BTreeSet<String> {
    values.iter().map(ToString::to_string).collect()
}

/// The spelling of an enumerated value in the policy file, such as `bestEffort`.
fn name_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

/// The system calls the policy allows once profiles, `allow` and `deny` are combined.
fn effective_syscalls(spec: &palisade_core::policy::Spec) -> BTreeSet<String> {
    match SeccompPlan::build(&spec.syscalls, spec.mode) {
        Ok(plan) => plan.allowed.iter().map(ToString::to_string).collect(),
        Err(error) => one(format!("(cannot be built: {error})")),
    }
}

/// Egress rules compared by what they match, ignoring their ids.
fn egress(rules: &[EgressRule]) -> BTreeSet<String> {
    rules
        .iter()
        .map(|rule| {
            let mut destinations: Vec<String> = rule.hosts.iter().map(ToString::to_string).collect();
            destinations.extend(rule.cidrs.iter().map(ToString::to_string));
            let ports = if rule.ports.is_empty() {
                "any port".to_owned()
            } else {
                format!("ports {}", rule.ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
            };
            format!("{} on {ports}", destinations.join(", "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(spec: &str) -> Policy {
        let text = format!("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n{spec}");
        Policy::from_yaml(&text, Path::new("p.yaml")).unwrap()
    }

    #[test]
    fn identical_policies_have_no_changes() {
        let policy = parse("  filesystem: {read: [/usr]}\n");
        assert!(diff(&policy, &policy).is_empty());
    }

    #[test]
    fn added_and_removed_rules_are_listed() {
        let old = parse("  filesystem: {read: [/usr, /etc]}\n  syscalls: {profiles: [base]}\n");
        let new = parse("  filesystem: {read: [/usr, /opt]}\n  syscalls: {profiles: [base], allow: [ptrace]}\n");

        let changes: Vec<String> = diff(&old, &new).iter().map(ToString::to_string).collect();

        assert!(changes.contains(&"- spec.filesystem.read: /etc".to_owned()), "{changes:?}");
        assert!(changes.contains(&"+ spec.filesystem.read: /opt".to_owned()), "{changes:?}");
        assert!(changes.contains(&"+ spec.syscalls.allow: ptrace".to_owned()), "{changes:?}");
        assert!(changes.contains(&"+ (effective system calls): ptrace".to_owned()), "{changes:?}");
        assert_eq!(changes.len(), 4, "{changes:?}");
    }
}
