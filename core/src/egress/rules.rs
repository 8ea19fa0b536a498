//! The compiled egress allow-list and its decisions.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::address::{network_contains, special_purpose};
use crate::policy::{EgressDefault, EgressRule, LoadedPolicy, Mode};

/// Whether a connection may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The cause of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A rule matched; its id is in [`Verdict::rule`].
    Rule,
    /// No rule matched, so `egress.default` applied.
    Default,
    /// The address is special-purpose (loopback, private, link-local ...) and no allow rule's
    /// CIDR contains it.
    SpecialPurpose(&'static str),
    /// The address is one the proxy listens on (set by the proxy, not by the engine).
    ProxyItself,
    /// The name could not be resolved (set by the proxy, not by the engine).
    LookupFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rule => "rule",
            Self::Default => "default",
            Self::SpecialPurpose(class) => class,
            Self::ProxyItself => "proxy-itself",
            Self::LookupFailed => "lookup-failed",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    /// The matching rule's [`EgressRule::display_id`].
    pub rule: Option<String>,
    pub reason: Reason,
}

impl Verdict {
    fn rule(action: Action, rule: &CompiledRule) -> Self {
        Self { action, rule: Some(rule.id.clone()), reason: Reason::Rule }
    }

    pub fn is_allowed(&self) -> bool {
        self.action == Action::Allow
    }
}

/// What a host name alone decides, before it is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameCheck {
    /// The name is decided without its addresses: a deny rule names it, or no allow rule could
    /// match any of its addresses.
    Decided(Verdict),
    /// Each resolved address must go through [`Engine::check_address`].
    Resolve,
}

#[derive(Debug)]
struct CompiledRule {
    id: String,
    cidrs: Vec<IpNet>,
    /// Empty means every port.
    ports: Vec<u16>,
}

impl CompiledRule {
    fn matches_port(&self, port: u16) -> bool {
        self.ports.is_empty() || self.ports.contains(&port)
    }
}

/// One list of rules (allow or deny) with hash indexes on host names.
#[derive(Debug, Default)]
struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Exact host name to the indexes of the rules naming it, in policy order.
    exact: HashMap<String, Vec<usize>>,
    /// Parent domain of a `*.domain` pattern to the indexes of the rules naming it.
    wildcard: HashMap<String, Vec<usize>>,
    /// Indexes of rules with at least one CIDR.
    with_cidrs: Vec<usize>,
}

impl RuleSet {
    fn compile(list: &'static str, rules: &[EgressRule]) -> Self {
        let mut set = Self::default();
        for (index, rule) in rules.iter().enumerate() {
            for pattern in &rule.hosts {
                let map = if pattern.is_wildcard() { &mut set.wildcard } else { &mut set.exact };
                let indexes = map.entry(pattern.name().to_owned()).or_default();
                if indexes.last() != Some(&index) {
                    indexes.push(index);
                }
            }
            if !rule.cidrs.is_empty() {
                set.with_cidrs.push(index);
            }
            set.rules.push(CompiledRule {
                id: rule.display_id(list, index),
                cidrs: rule.cidrs.iter().map(|cidr| cidr.net()).collect(),
                ports: rule.ports.iter().map(|port| port.get()).collect(),
            });
        }
        set
    }

    /// Finds the first rule, in policy order, whose hosts match `name` and whose ports include
    /// `port`.
    fn match_name(&self, name: &str, port: u16) -> Option<&CompiledRule> {
        let exact = self.exact.get(name).into_iter().flatten();
        // `*.example.com` matches names with at least one label before `example.com`.
        let parents = name.match_indices('.').map(|(dot, _)| &name[dot + 1..]);
        let wildcard = parents.filter_map(|parent| self.wildcard.get(parent)).flatten();
        exact
            .chain(wildcard)
            .copied()
            .filter(|index| self.rules[*index].matches_port(port))
            .min()
            .map(|index| &self.rules[index])
    }

    /// Finds the first rule whose CIDRs contain `address` and whose ports include `port`.
    fn match_address(&self, address: IpAddr, port: u16) -> Option<&CompiledRule> {
        self.with_cidrs.iter().map(|index| &self.rules[*index]).find(|rule| {
            rule.matches_port(port) && rule.cidrs.iter().any(|network| network_contains(*network, address))
        })
    }

    /// Checks whether a CIDR of any rule contains `address`, whatever the rule's ports.
    fn names_address(&self, address: IpAddr) -> bool {
        self.with_cidrs
            .iter()
            .any(|index| self.rules[*index].cidrs.iter().any(|network| network_contains(*network, address)))
    }

    /// Checks whether any rule with CIDRs applies to `port`.
    fn has_cidrs_for_port(&self, port: u16) -> bool {
        self.with_cidrs.iter().any(|index| self.rules[*index].matches_port(port))
    }
}

/// The egress allow-list of one policy, compiled for matching.
///
/// Decisions go in this order. A deny rule that matches the name or the address wins. A
/// special-purpose address is denied unless a CIDR of some allow rule contains it, whatever that
/// rule's ports. An allow rule that matches the name or the address, and the port, allows.
/// Otherwise `egress.default` applies. So a host rule alone never reaches a special-purpose address: a
/// name that resolves to 10.0.0.5 also needs a CIDR such as 10.0.0.0/8 in an allow rule of the
/// same policy, and a rule with that CIDR and `ports: [1]` names the range without opening it.
#[derive(Debug)]
pub struct Engine {
    mode: Mode,
    default: EgressDefault,
    policy_hash: String,
    policy_name: String,
    allow: RuleSet,
    deny: RuleSet,
}

impl Engine {
    pub fn new(loaded: &LoadedPolicy) -> Self {
        let spec = &loaded.policy.spec;
        Self {
            mode: spec.mode,
            default: spec.egress.default,
            policy_hash: loaded.hash.clone(),
            policy_name: loaded.policy.name().to_owned(),
            allow: RuleSet::compile("allow", &spec.egress.allow),
            deny: RuleSet::compile("deny", &spec.egress.deny),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn policy_hash(&self) -> &str {
        &self.policy_hash
    }

    pub fn policy_name(&self) -> &str {
        &self.policy_name
    }

    /// Returns the number of allow and deny rules.
    pub fn rule_count(&self) -> usize {
        self.allow.rules.len() + self.deny.rules.len()
    }

    /// Decides what can be decided from a normalised host name and port alone.
    ///
    /// A name is denied without a lookup when a deny rule names it, or when the default is deny,
    /// no allow rule names it and no allow rule has CIDRs for the port. Skipping the lookup keeps
    /// denied names out of DNS queries.
    pub fn check_name(&self, name: &str, port: u16) -> NameCheck {
        if let Some(rule) = self.deny.match_name(name, port) {
            return NameCheck::Decided(Verdict::rule(Action::Deny, rule));
        }

        let named = self.allow.match_name(name, port).is_some();
        if self.default == EgressDefault::Deny && !named && !self.allow.has_cidrs_for_port(port) {
            return NameCheck::Decided(Verdict { action: Action::Deny, rule: None, reason: Reason::Default });
        }
        NameCheck::Resolve
    }

    /// Decides a connection to `address`, reached through `name` when the client sent a name.
    pub fn check_address(&self, name: Option<&str>, address: IpAddr, port: u16) -> Verdict {
        let deny =
            name.and_then(|name| self.deny.match_name(name, port)).or_else(|| self.deny.match_address(address, port));
        if let Some(rule) = deny {
            return Verdict::rule(Action::Deny, rule);
        }

        if let Some(class) = special_purpose(address) {
            if !self.allow.names_address(address) {
                return Verdict { action: Action::Deny, rule: None, reason: Reason::SpecialPurpose(class) };
            }
        }

        let by_name = name.and_then(|name| self.allow.match_name(name, port));
        match by_name.or_else(|| self.allow.match_address(address, port)) {
            Some(rule) => Verdict::rule(Action::Allow, rule),
            None => self.default_verdict(),
        }
    }

    fn default_verdict(&self) -> Verdict {
        let action = match self.default {
            EgressDefault::Allow => Action::Allow,
            EgressDefault::Deny => Action::Deny,
        };
        Verdict { action, rule: None, reason: Reason::Default }
    }
}

#[cfg(test)]
mod tests;
