//! Learning a policy: what a supervised run observed, and the smallest policy that allows it.
//!
//! Paths are generalised only as far as needed to stay reviewable. A file read alone keeps its
//! own rule, and files read from one directory become a rule on that directory. Three or more
//! sibling rules become a rule on their parent, but never on `/` or on a top-level directory
//! such as `/usr` or `/etc`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::observe::Observed;
use super::report::syscall_name;
use crate::policy::{Policy, PolicyError};
use crate::sys::seccomp::Notification;

/// A rule is never widened to a directory with fewer components than this (`/usr/lib` has two).
const MIN_GENERALISED_DEPTH: usize = 2;

/// Sibling directories that collapse into a rule on their parent.
const SIBLINGS_TO_COLLAPSE: usize = 3;

/// Everything a learning run saw the workload do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Observations {
    pub syscalls: BTreeSet<String>,
    pub executed: BTreeSet<PathBuf>,
    pub read: BTreeSet<PathBuf>,
    /// Files opened for writing.
    pub written: BTreeSet<PathBuf>,
    /// Files created, removed or renamed; the rule goes on their directory.
    pub changed: BTreeSet<PathBuf>,
    pub connected: BTreeSet<SocketAddr>,
    /// Addresses reached through the egress proxy, by IP address rather than name.
    pub proxied: BTreeSet<SocketAddr>,
    /// Host names reached through the egress proxy, with their ports.
    pub hosts: BTreeMap<String, BTreeSet<u16>>,
}

impl Observations {
    pub(super) fn record(&mut self, notification: &Notification, observed: Observed) {
        self.syscalls.insert(syscall_name(notification.nr));
        match observed {
            Observed::Nothing => {}
            Observed::Execute(path) => {
                self.executed.insert(path);
            }
            Observed::Read(path) => {
                self.read.insert(path);
            }
            Observed::Write(path) => {
                self.written.insert(path);
            }
            Observed::Change(path) => {
                self.changed.insert(path);
            }
            Observed::Connect(address) => {
                self.connected.insert(address);
            }
        }
    }

    /// Adds the destinations of the `palisade.egress.decision` events in `json_lines`, as the
    /// egress proxy writes them in audit mode. Returns how many events were read.
    pub fn add_egress_events(&mut self, json_lines: &str) -> usize {
        let mut count = 0;
        for line in json_lines.lines().filter(|line| line.starts_with('{')) {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if event["event_name"] != crate::telemetry::names::EGRESS_DECISION {
                continue;
            }
            let attributes = &event["attributes"];
            let host = attributes[crate::telemetry::attributes::SERVER_ADDRESS].as_str();
            let port = attributes[crate::telemetry::attributes::SERVER_PORT]
                .as_u64()
                .and_then(|port| u16::try_from(port).ok());
            let (Some(host), Some(port)) = (host, port) else { continue };
            count += 1;
            match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
                Ok(address) => {
                    self.proxied.insert(SocketAddr::new(address, port));
                }
                Err(_) => {
                    self.hosts.entry(host.to_ascii_lowercase()).or_default().insert(port);
                }
            }
        }
        count
    }

    /// Writes the observations as JSON; the file appears complete or not at all.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, path)
    }

    pub fn read_from(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }

    /// Builds the smallest policy that allows what was observed, as YAML and parsed.
    pub fn to_policy(&self, name: &str, command: &[String]) -> Result<LearnedPolicy, PolicyError> {
        let rules = self.rules();
        let yaml = rules.to_yaml(name, command);
        let policy = Policy::from_yaml(&yaml, Path::new("learned policy"))?;
        Ok(LearnedPolicy { yaml, policy, rules })
    }

    /// Builds the rules of the learned policy, before they are written out.
    pub fn rules(&self) -> LearnedRules {
        let execute: BTreeSet<PathBuf> = self.executed.iter().map(|path| canonical(path)).collect();

        let mut write: BTreeSet<PathBuf> = self.written.iter().map(|path| pseudo_or(path, canonical)).collect();
        write.extend(self.changed.iter().filter_map(|path| path.parent()).map(canonical));
        let write = without_covered(write);

        let read_files: BTreeSet<PathBuf> =
            self.read.iter().map(|path| pseudo_or(path, canonical)).filter(|path| !covered_by(path, &write)).collect();
        let read = without_covered(generalise(read_files));

        let mut destinations: BTreeMap<u16, BTreeSet<std::net::IpAddr>> = BTreeMap::new();
        for address in self.connected.iter().chain(&self.proxied) {
            destinations.entry(address.port()).or_default().insert(address.ip());
        }

        LearnedRules {
            execute,
            read,
            write,
            syscalls: self.syscalls.clone(),
            connect_tcp: self.connected.iter().map(SocketAddr::port).collect(),
            destinations,
            hosts: host_rules(&self.hosts),
        }
    }
}

/// The rules of a learned policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnedRules {
    pub execute: BTreeSet<PathBuf>,
    pub read: BTreeSet<PathBuf>,
    pub write: BTreeSet<PathBuf>,
    pub syscalls: BTreeSet<String>,
    /// Ports the workload itself connected to.
    pub connect_tcp: BTreeSet<u16>,
    /// Ports reached directly or through the egress proxy, with the addresses reached on each.
    pub destinations: BTreeMap<u16, BTreeSet<std::net::IpAddr>>,
    /// Host patterns reached through the egress proxy, grouped by the ports they were reached on.
    pub hosts: BTreeMap<BTreeSet<u16>, BTreeSet<String>>,
}

impl LearnedRules {
    fn to_yaml(&self, name: &str, command: &[String]) -> String {
        let quote = |text: &str| serde_json::to_string(text).expect("strings serialise");
        let paths = |paths: &BTreeSet<PathBuf>| -> String {
            if paths.is_empty() {
                return " []\n".to_owned();
            }
            let mut text = String::from("\n");
            for path in paths {
                let _ = writeln!(text, "      - {}", quote(&path.to_string_lossy()));
            }
            text
        };

        let mut yaml = String::new();
        let _ = writeln!(yaml, "# Learned by `palisade learn` from: {}", command.join(" ").replace('\n', " "));
        let _ = writeln!(yaml, "# Review every rule before enforcing it.");
        let _ = writeln!(yaml, "apiVersion: palisade.dev/v1alpha1");
        let _ = writeln!(yaml, "kind: WorkloadPolicy");
        let _ = writeln!(yaml, "metadata:\n  name: {}", quote(name));
        let _ = writeln!(yaml, "spec:\n  mode: enforce");
        let _ = write!(yaml, "  process:\n    execute:{}", paths(&self.execute));
        let _ = write!(yaml, "  filesystem:\n    read:{}    write:{}", paths(&self.read), paths(&self.write));
        let _ = writeln!(yaml, "  syscalls:\n    profiles: []\n    supervise: true\n    allow:");
        for syscall in &self.syscalls {
            let _ = writeln!(yaml, "      - {syscall}");
        }
        let ports: Vec<String> = self.connect_tcp.iter().map(u16::to_string).collect();
        let _ = writeln!(yaml, "  network:\n    connectTcp: [{}]", ports.join(", "));
        let _ = writeln!(yaml, "  egress:\n    default: deny");
        if self.destinations.is_empty() && self.hosts.is_empty() {
            let _ = writeln!(yaml, "    allow: []");
        } else {
            let _ = writeln!(yaml, "    allow:");
            for (ports, hosts) in &self.hosts {
                let hosts: Vec<String> = hosts.iter().map(|host| quote(host)).collect();
                let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
                let _ = writeln!(yaml, "      - hosts: [{}]\n        ports: [{}]", hosts.join(", "), ports.join(", "));
            }
            for (port, addresses) in &self.destinations {
                let cidrs: Vec<String> =
                    addresses.iter().map(|address| quote(&ipnet::IpNet::from(*address).to_string())).collect();
                let _ = writeln!(yaml, "      - cidrs: [{}]\n        ports: [{port}]", cidrs.join(", "));
            }
        }
        yaml
    }
}

/// A learned policy: the YAML written for review, and the same policy parsed.
#[derive(Debug, Clone)]
pub struct LearnedPolicy {
    pub yaml: String,
    pub policy: Policy,
    pub rules: LearnedRules,
}

/// Returns the real path, when it exists.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// /proc paths name processes that will not exist again: they become a rule on /proc.
fn pseudo_or(path: &Path, otherwise: impl Fn(&Path) -> PathBuf) -> PathBuf {
    if path.starts_with("/proc") {
        PathBuf::from("/proc")
    } else {
        otherwise(path)
    }
}

fn depth(path: &Path) -> usize {
    path.components().filter(|component| matches!(component, std::path::Component::Normal(_))).count()
}

fn covered_by(path: &Path, rules: &BTreeSet<PathBuf>) -> bool {
    rules.iter().any(|rule| path.starts_with(rule))
}

/// Drops every path that another path of the set contains.
fn without_covered(paths: BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    paths.iter().filter(|path| !paths.iter().any(|other| other != *path && path.starts_with(other))).cloned().collect()
}

/// Files read from one directory become the directory; sibling directories become their parent.
fn generalise(files: BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let mut by_parent: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut rules = BTreeSet::new();
    for path in files {
        let is_directory = std::fs::metadata(&path).is_ok_and(|metadata| metadata.is_dir());
        match path.parent() {
            Some(parent) if !is_directory && depth(parent) >= MIN_GENERALISED_DEPTH && !is_pseudo(&path) => {
                by_parent.entry(parent.to_owned()).or_default().insert(path);
            }
            _ => {
                rules.insert(path);
            }
        }
    }
    for (parent, files) in by_parent {
        if files.len() >= 2 {
            rules.insert(parent);
        } else {
            rules.extend(files);
        }
    }

    loop {
        let rules_now = without_covered(rules.clone());
        let mut children: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for rule in &rules_now {
            if let Some(parent) = rule.parent().filter(|parent| depth(parent) >= MIN_GENERALISED_DEPTH) {
                *children.entry(parent.to_owned()).or_default() += 1;
            }
        }
        let collapse: Vec<PathBuf> = children
            .into_iter()
            .filter(|(parent, count)| *count >= SIBLINGS_TO_COLLAPSE && !is_pseudo(parent))
            .map(|(parent, _)| parent)
            .collect();
        if collapse.is_empty() {
            return rules_now;
        }
        rules = rules_now.into_iter().filter(|rule| !collapse.iter().any(|parent| rule.starts_with(parent))).collect();
        rules.extend(collapse);
    }
}

/// Host names become egress host patterns: two or more names under one parent domain become
/// `*.parent`, unless the parent is a top-level domain (`*.com` is never written). Names with the
/// same set of ports share a rule.
fn host_rules(hosts: &BTreeMap<String, BTreeSet<u16>>) -> BTreeMap<BTreeSet<u16>, BTreeSet<String>> {
    let mut by_parent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for host in hosts.keys() {
        if let Some((_, parent)) = host.split_once('.').filter(|(_, parent)| parent.contains('.')) {
            by_parent.entry(parent).or_default().push(host);
        }
    }

    let mut rules: BTreeMap<BTreeSet<u16>, BTreeSet<String>> = BTreeMap::new();
    for (host, ports) in hosts {
        let parent = host.split_once('.').map(|(_, parent)| parent);
        let siblings = parent.and_then(|parent| by_parent.get(parent)).map_or(0, Vec::len);
        let pattern = match parent {
            Some(parent) if siblings >= 2 => format!("*.{parent}"),
            _ => host.clone(),
        };
        rules.entry(ports.clone()).or_default().insert(pattern);
    }
    // A wildcard and one of its names may have landed under different port sets: merge the ports.
    let mut merged: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
    for (ports, patterns) in rules {
        for pattern in patterns {
            merged.entry(pattern).or_default().extend(ports.iter().copied());
        }
    }
    let mut grouped: BTreeMap<BTreeSet<u16>, BTreeSet<String>> = BTreeMap::new();
    for (pattern, ports) in merged {
        grouped.entry(ports).or_default().insert(pattern);
    }
    grouped
}

/// Device and kernel files keep exact rules: a directory rule there grants far more.
fn is_pseudo(path: &Path) -> bool {
    path.starts_with("/dev") || path.starts_with("/sys")
}

/// Rules of `policy` that nothing in `observations` used: candidates for removal.
pub fn unexercised_rules(policy: &Policy, observations: &Observations) -> Vec<String> {
    let spec = &policy.spec;
    let mut stale = Vec::new();
    let touched: Vec<&PathBuf> = observations
        .read
        .iter()
        .chain(&observations.written)
        .chain(&observations.changed)
        .chain(&observations.executed)
        .collect();

    for rule in &spec.process.execute {
        if !under(rule.as_path(), observations.executed.iter()) {
            stale.push(format!("spec.process.execute: {rule} was never executed"));
        }
    }
    for rule in &spec.filesystem.read {
        if !under(rule.as_path(), touched.iter().copied()) {
            stale.push(format!("spec.filesystem.read: nothing under {rule} was opened"));
        }
    }
    for rule in &spec.filesystem.write {
        let written = observations.written.iter().chain(&observations.changed);
        if !under(rule.as_path(), written) {
            stale.push(format!("spec.filesystem.write: nothing under {rule} was written"));
        }
    }
    for syscall in &spec.syscalls.allow {
        if !observations.syscalls.contains(syscall.name()) {
            stale.push(format!("spec.syscalls.allow: {syscall} was never called"));
        }
    }
    for port in &spec.network.connect_tcp {
        if !observations.connected.iter().any(|address| address.port() == port.get()) {
            stale.push(format!("spec.network.connectTcp: nothing connected to port {port}"));
        }
    }
    for (index, rule) in spec.egress.allow.iter().enumerate() {
        // Host names are known only from the egress proxy's events; without them, a rule that
        // names only hosts cannot be judged.
        if rule.cidrs.is_empty() && observations.hosts.is_empty() {
            continue;
        }
        let port_matches = |port: u16| rule.ports.is_empty() || rule.ports.iter().any(|allowed| allowed.get() == port);
        let address_used =
            observations.connected.iter().chain(&observations.proxied).any(|address| {
                rule.cidrs.iter().any(|cidr| cidr.contains(address.ip())) && port_matches(address.port())
            });
        let host_used = observations.hosts.iter().any(|(host, ports)| {
            rule.hosts.iter().any(|pattern| host_matches(pattern, host)) && ports.iter().any(|port| port_matches(*port))
        });
        let used = address_used || host_used;
        if !used {
            stale.push(format!(
                "spec.egress.allow[{index}] ({}): no connection matched it",
                rule.display_id("allow", index)
            ));
        }
    }
    stale
}

/// Checks whether `host` (lower case, no trailing dot) matches `pattern`.
fn host_matches(pattern: &crate::policy::HostPattern, host: &str) -> bool {
    if pattern.is_wildcard() {
        host.strip_suffix(pattern.name()).is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
    } else {
        host == pattern.name()
    }
}

/// Checks whether any of `paths`, or the real path behind it, is `rule` or below it.
fn under<'a>(rule: &Path, mut paths: impl Iterator<Item = &'a PathBuf>) -> bool {
    paths.any(|path| path.starts_with(rule) || canonical(path).starts_with(rule))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(items: &[&str]) -> BTreeSet<PathBuf> {
        items.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn lone_file_keeps_its_own_rule() {
        assert_eq!(generalise(paths(&["/etc/ld.so.cache"])), paths(&["/etc/ld.so.cache"]));
    }

    #[test]
    fn files_of_one_directory_become_the_directory() {
        let rules = generalise(paths(&["/opt/app/lib/a.so", "/opt/app/lib/b.so"]));
        assert_eq!(rules, paths(&["/opt/app/lib"]));
    }

    #[test]
    fn never_generalises_to_top_level_directories() {
        let rules = generalise(paths(&["/etc/a", "/etc/b", "/etc/c", "/x/y", "/x/z"]));
        assert!(!rules.contains(Path::new("/")), "{rules:?}");
        assert!(!rules.contains(Path::new("/etc")), "{rules:?}");
        assert!(!rules.contains(Path::new("/x")), "{rules:?}");
    }

    #[test]
    fn sibling_directories_collapse_into_parent() {
        let rules = generalise(paths(&[
            "/opt/app/one/a",
            "/opt/app/one/b",
            "/opt/app/two/a",
            "/opt/app/two/b",
            "/opt/app/three/a",
            "/opt/app/three/b",
        ]));
        assert_eq!(rules, paths(&["/opt/app"]));
    }

    #[test]
    fn learned_policy_parses_and_lists_what_was_seen() {
        let observations = Observations {
            syscalls: ["execve", "read", "write"].iter().map(|name| (*name).to_owned()).collect(),
            executed: paths(&["/palisade-test/bin/tool"]),
            read: paths(&["/palisade-test/data/input.txt"]),
            written: paths(&["/dev/null"]),
            changed: paths(&["/palisade-test/out/result.txt"]),
            connected: ["127.0.0.1:8080".parse().unwrap()].into_iter().collect(),
            proxied: BTreeSet::new(),
            hosts: BTreeMap::new(),
        };

        let learned = observations.to_policy("tool", &["tool".to_owned()]).unwrap();

        let spec = &learned.policy.spec;
        assert_eq!(spec.syscalls.allow.len(), 3);
        assert!(spec.syscalls.profiles.is_empty());
        assert_eq!(spec.filesystem.write.len(), 2, "{}", learned.yaml);
        assert_eq!(spec.network.connect_tcp[0].get(), 8080);
        assert_eq!(spec.egress.allow[0].cidrs[0].to_string(), "127.0.0.1/32");
    }

    #[test]
    fn sibling_host_names_become_a_wildcard() {
        let mut observations = Observations::default();
        let events = [
            ("a.svc.example.com", 443),
            ("b.svc.example.com", 443),
            ("api.example.org", 443),
            ("example.net", 80),
            ("127.0.0.1", 8080),
        ]
        .iter()
        .map(|(host, port)| {
            format!(
                r#"{{"event_name":"palisade.egress.decision","attributes":{{"server.address":"{host}","server.port":{port}}}}}"#
            )
        })
        .collect::<Vec<_>>()
        .join("\n");

        assert_eq!(observations.add_egress_events(&events), 5);
        let learned = observations.to_policy("hosts", &[]).unwrap();

        let rules = &learned.rules.hosts;
        assert_eq!(
            rules[&BTreeSet::from([443])],
            BTreeSet::from(["*.svc.example.com".to_owned(), "api.example.org".to_owned()])
        );
        assert_eq!(rules[&BTreeSet::from([80])], BTreeSet::from(["example.net".to_owned()]));
        let egress = &learned.policy.spec.egress.allow;
        assert!(egress.iter().any(|rule| rule.hosts.iter().any(|host| host.is_wildcard())), "{}", learned.yaml);
        assert!(egress.iter().any(|rule| rule.cidrs.iter().any(|cidr| cidr.to_string() == "127.0.0.1/32")));
        // Destinations behind the proxy are not connected to by the workload itself.
        assert!(learned.policy.spec.network.connect_tcp.is_empty(), "{}", learned.yaml);
    }

    #[test]
    fn unexercised_rules_are_listed() {
        let observations = Observations {
            syscalls: ["execve"].iter().map(|name| (*name).to_owned()).collect(),
            executed: paths(&["/palisade-test/bin/tool"]),
            ..Observations::default()
        };
        let policy = Policy::from_yaml(
            "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  process: {execute: [/palisade-test/bin/tool, /palisade-test/bin/other]}\n  syscalls: {allow: [execve, ptrace]}\n",
            Path::new("p.yaml"),
        )
        .unwrap();

        let stale = unexercised_rules(&policy, &observations);

        assert_eq!(stale.len(), 2, "{stale:?}");
        assert!(stale[0].contains("/palisade-test/bin/other"));
        assert!(stale[1].contains("ptrace"));
    }
}
