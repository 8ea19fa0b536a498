//! The workload policy: one YAML document for Lambda functions, pods and hosts.
//!
//! Parsing is strict. An unknown key, a value of the wrong type or an invalid glob, CIDR, port,
//! host, system call or errno is rejected with the file, line and column of the offending value.

mod error;
mod spec;
mod values;
mod warnings;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use error::PolicyError;
pub use spec::{
    DigestAlgorithm, EgressDefault, EgressRule, EgressRules, Enforcement, FailureMode, FilesystemRules, IntegrityRules,
    Mode, NetworkRules, ProcessRules, ProfileName, ScopeRules, Spec, SyscallRules,
};
pub use values::{Cidr, ErrnoName, GlobPattern, HostPattern, PolicyPath, Port, SyscallName};
pub use warnings::{weakening_rules, Warning};

/// The only `apiVersion` this release reads.
pub const API_VERSION: &str = "palisade.dev/v1alpha1";

/// The only `kind` this release reads.
pub const KIND: &str = "WorkloadPolicy";

/// The environment variable naming the policy file.
pub const POLICY_ENV: &str = "PALISADE_POLICY";

/// Where a policy is looked for when neither a flag nor `PALISADE_POLICY` names one, in order:
/// the function package, the Lambda layer, the host.
pub const DEFAULT_POLICY_PATHS: [&str; 3] =
    ["/var/task/palisade.yaml", "/opt/palisade/policy.yaml", "/etc/palisade/policy.yaml"];

/// Largest policy file accepted, in bytes; real policies are a few kilobytes.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Deepest nesting of flow sequences and mappings accepted; the format itself needs four levels.
const MAX_FLOW_DEPTH: usize = 32;

/// Longest `metadata.name`, as for a DNS name.
const MAX_NAME_LENGTH: usize = 253;

/// A parsed and validated workload policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    pub api_version: ApiVersion,
    pub kind: Kind,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Spec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Metadata {
    pub name: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The `apiVersion` field; only [`API_VERSION`] is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion;

impl FromStr for ApiVersion {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == API_VERSION {
            Ok(Self)
        } else {
            Err(format!("unsupported apiVersion {value:?}: write \"{API_VERSION}\""))
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(API_VERSION)
    }
}

/// The `kind` field; only [`KIND`] is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind;

impl FromStr for Kind {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == KIND {
            Ok(Self)
        } else {
            Err(format!("unsupported kind {value:?}: write \"{KIND}\""))
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(KIND)
    }
}

values::string_value_impls!(ApiVersion, "the string \"palisade.dev/v1alpha1\"");
values::string_value_impls!(Kind, "the string \"WorkloadPolicy\"");

/// A policy together with the file it came from and its hash.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub policy: Policy,
    pub source: PathBuf,
    /// `sha256:` and the hex SHA-256 of the policy's canonical JSON form, so that formatting and
    /// comments do not change it.
    pub hash: String,
}

impl Policy {
    /// Parses a policy document; `origin` names it in error messages.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self, PolicyError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        check_flow_depth(text, origin)?;

        let policy: Policy = serde_yaml_ng::from_str(text).map_err(|error| PolicyError::from_yaml(origin, &error))?;
        policy.check_rules(origin)?;
        Ok(policy)
    }

    /// Returns the policy's hash: `sha256:` and the hex SHA-256 of its canonical JSON form.
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("a policy always serialises to JSON");
        format!("sha256:{}", hex::encode(Sha256::digest(canonical)))
    }

    /// The policy's name, or `unnamed` when `metadata.name` is empty.
    pub fn name(&self) -> &str {
        if self.metadata.name.is_empty() {
            "unnamed"
        } else {
            &self.metadata.name
        }
    }

    /// Checks rules that span several values, after every value parsed.
    fn check_rules(&self, origin: &Path) -> Result<(), PolicyError> {
        let name = &self.metadata.name;
        if name.len() > MAX_NAME_LENGTH || name.chars().any(char::is_control) {
            return Err(PolicyError::Rule {
                path: origin.to_owned(),
                message: format!(
                    "metadata.name must be at most {MAX_NAME_LENGTH} bytes without control characters; it is {} bytes",
                    name.len()
                ),
            });
        }

        Ok(())
    }
}

impl EgressRule {
    /// The rule's reported id: its `id`, or `allow[N]` / `deny[N]` from its place in the policy.
    pub fn display_id(&self, list: &str, index: usize) -> String {
        self.id.clone().unwrap_or_else(|| format!("{list}[{index}]"))
    }
}

/// Reads and parses a policy file.
pub fn load(path: &Path) -> Result<LoadedPolicy, PolicyError> {
    let read_error = |source| PolicyError::Read { path: path.to_owned(), source };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge { path: path.to_owned(), size });
    }

    let bytes = std::fs::read(path).map_err(read_error)?;
    let text = String::from_utf8(bytes)
        .map_err(|error| PolicyError::NotUtf8 { path: path.to_owned(), offset: error.utf8_error().valid_up_to() })?;
    let policy = Policy::from_yaml(&text, path)?;
    let hash = policy.hash();
    Ok(LoadedPolicy { policy, source: path.to_owned(), hash })
}

/// Rejects flow collections (`[...]`, `{...}`) nested deeper than [`MAX_FLOW_DEPTH`] before the
/// YAML parser reads them, because its cost grows with the square of the depth.
fn check_flow_depth(text: &str, origin: &Path) -> Result<(), PolicyError> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut in_comment = false;
    let (mut line, mut column) = (1usize, 0usize);

    for character in text.chars() {
        column += 1;
        if character == '\n' {
            (line, column, in_comment) = (line + 1, 0, false);
            continue;
        }
        match (quote, character) {
            _ if in_comment => {}
            (Some(open), _) if character == open => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(character),
            (None, '#') => in_comment = true,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_FLOW_DEPTH {
            return Err(PolicyError::Parse {
                path: origin.to_owned(),
                line,
                column,
                message: format!(
                    "collections are nested more than {MAX_FLOW_DEPTH} levels deep; a policy needs at most four"
                ),
            });
        }
    }
    Ok(())
}

/// Finds the policy file: the explicit path, then `PALISADE_POLICY`, then the first of
/// [`DEFAULT_POLICY_PATHS`] that exists.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, PolicyError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os(POLICY_ENV).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    DEFAULT_POLICY_PATHS
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
        .map(Path::to_owned)
        .ok_or(PolicyError::NotFound)
}

#[cfg(test)]
mod tests;
