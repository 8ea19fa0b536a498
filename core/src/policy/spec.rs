//! The `spec` section of a workload policy: one struct per subsection.

use serde::{Deserialize, Serialize};

use super::values::{Cidr, ErrnoName, GlobPattern, HostPattern, PolicyPath, Port, SyscallName};

/// What happens when a rule would deny an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Deny the action and report it.
    #[default]
    Enforce,
    /// Let the action through and report what enforce mode would have denied.
    Audit,
}

/// What the launcher does when the kernel cannot enforce part of the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Enforcement {
    /// Enforce what the kernel supports and report every right it could not enforce.
    #[default]
    BestEffort,
    /// Refuse to start the workload unless every rule is enforced.
    Strict,
}

/// What a component does when it cannot start its protection (a configuration error, a failed
/// integrity check at start-up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Stop the workload.
    #[default]
    Closed,
    /// Run the workload unprotected and report that it runs unprotected.
    Open,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Spec {
    pub mode: Mode,
    pub enforcement: Enforcement,
    pub failure_mode: FailureMode,
    pub process: ProcessRules,
    pub filesystem: FilesystemRules,
    pub syscalls: SyscallRules,
    pub network: NetworkRules,
    pub scope: ScopeRules,
    pub egress: EgressRules,
    pub integrity: IntegrityRules,
}

/// Programs the workload may execute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ProcessRules {
    /// Files or directories whose files may be executed (and mapped executable).
    pub execute: Vec<PolicyPath>,
}

/// Filesystem access, enforced with Landlock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct FilesystemRules {
    /// Files or directories the workload may read (and list).
    pub read: Vec<PolicyPath>,
    /// Files or directories the workload may read, create, modify and remove.
    pub write: Vec<PolicyPath>,
}

/// The system call allow-list, enforced with seccomp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SyscallRules {
    /// Built-in profiles whose system calls are allowed: `base`, `python`, `node`, `jvm`.
    pub profiles: Vec<ProfileName>,
    /// System calls allowed in addition to the profiles.
    pub allow: Vec<SyscallName>,
    /// System calls removed from the allow-list; `deny` wins over `allow` and the profiles.
    pub deny: Vec<SyscallName>,
    /// The error returned by a system call outside the allow-list.
    pub default_errno: ErrnoName,
    /// Hand system calls outside the allow-list to a supervisor process, which answers them
    /// (`defaultErrno` in enforce mode, let through in audit mode) and reports each one. With
    /// `false` the filter answers them itself and nothing is reported.
    pub supervise: bool,
}

impl Default for SyscallRules {
    fn default() -> Self {
        Self {
            profiles: vec![ProfileName::Base],
            allow: Vec::new(),
            deny: Vec::new(),
            default_errno: ErrnoName::ENOSYS,
            supervise: true,
        }
    }
}

/// A built-in seccomp profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProfileName {
    Base,
    Python,
    Node,
    Jvm,
}

impl ProfileName {
    pub const ALL: [ProfileName; 4] = [Self::Base, Self::Python, Self::Node, Self::Jvm];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Python => "python",
            Self::Node => "node",
            Self::Jvm => "jvm",
        }
    }
}

/// TCP ports the workload may connect to or bind, enforced with Landlock (ABI 4 and later).
///
/// An empty `connectTcp` list with Landlock network rules in force denies every TCP connect, so
/// a workload that talks through the egress proxy lists the proxy's port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NetworkRules {
    pub connect_tcp: Vec<Port>,
    pub bind_tcp: Vec<Port>,
    /// Leave TCP connect and bind unrestricted by Landlock (the egress proxy still applies).
    pub unrestricted_tcp: bool,
}

/// IPC scoping, enforced with Landlock (ABI 6 and later): the workload cannot reach abstract
/// unix sockets or signal processes created outside its sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ScopeRules {
    pub abstract_unix_socket: bool,
    pub signal: bool,
}

impl Default for ScopeRules {
    fn default() -> Self {
        Self { abstract_unix_socket: true, signal: true }
    }
}

/// Outbound connections through the egress proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EgressRules {
    pub default: EgressDefault,
    #[serde(deserialize_with = "rules_with_destinations")]
    pub allow: Vec<EgressRule>,
    /// Rules that deny; a matching deny rule wins over every allow rule.
    #[serde(deserialize_with = "rules_with_destinations")]
    pub deny: Vec<EgressRule>,
}

/// Reads a list of egress rules and rejects a rule that names no destination while the list
/// is parsed, so that the error carries the list's location and the rule's index.
fn rules_with_destinations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<EgressRule>, D::Error> {
    struct Rules;

    impl<'de> serde::de::Visitor<'de> for Rules {
        type Value = Vec<EgressRule>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a list of egress rules")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<Self::Value, A::Error> {
            let mut rules = Vec::new();
            while let Some(rule) = sequence.next_element::<EgressRule>()? {
                if rule.hosts.is_empty() && rule.cidrs.is_empty() {
                    return Err(serde::de::Error::custom(format!(
                        "rule [{}] of the list (counting from 0) names no destination: add `hosts:` or `cidrs:` to it",
                        rules.len()
                    )));
                }
                rules.push(rule);
            }
            Ok(rules)
        }
    }

    deserializer.deserialize_seq(Rules)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EgressDefault {
    #[default]
    Deny,
    Allow,
}

/// One egress rule: a destination matches when its host matches one of `hosts` or its address
/// is inside one of `cidrs`, and its port is in `ports` (an empty `ports` list matches every port).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EgressRule {
    /// A name reported in egress events; defaults to `allow[N]` or `deny[N]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub hosts: Vec<HostPattern>,
    pub cidrs: Vec<Cidr>,
    pub ports: Vec<Port>,
}

/// Files whose integrity is checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IntegrityRules {
    /// Roots to record and verify.
    pub paths: Vec<PolicyPath>,
    /// Globs of paths to leave out, matched against absolute paths.
    pub exclude: Vec<GlobPattern>,
    /// Roots that are always re-hashed on verification, never trusted from metadata.
    pub high_assurance: Vec<PolicyPath>,
    /// The content digest: `blake3` or `sha256`.
    pub algorithm: DigestAlgorithm,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    #[default]
    Blake3,
    Sha256,
}
