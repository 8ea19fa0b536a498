//! Validated scalar values of a policy.
//!
//! Each type checks its input while the YAML is deserialised, so a bad value is reported with the
//! line and column it was written at.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{de, Deserialize, Deserializer, Serialize};

/// Implements `Deserialize` through `FromStr` and `Serialize` through `Display`.
macro_rules! string_value_impls {
    ($type:ty, $expecting:literal) => {
        impl<'de> ::serde::Deserialize<'de> for $type {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;

                impl ::serde::de::Visitor<'_> for Visitor {
                    type Value = $type;

                    fn expecting(&self, formatter: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        formatter.write_str($expecting)
                    }

                    fn visit_str<E: ::serde::de::Error>(self, value: &str) -> Result<$type, E> {
                        value.parse().map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(Visitor)
            }
        }

        impl ::serde::Serialize for $type {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

pub(super) use string_value_impls;

/// A TCP or UDP port number, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    pub fn new(value: u16) -> Option<Self> {
        (value != 0).then_some(Self(value))
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = Port;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a port number from 1 to 65535")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Port, E> {
                u16::try_from(value)
                    .ok()
                    .and_then(Port::new)
                    .ok_or_else(|| E::custom(format_args!("invalid port {value}: write a port number from 1 to 65535")))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Port, E> {
                match u64::try_from(value) {
                    Ok(value) => self.visit_u64(value),
                    Err(_) => Err(E::custom(format_args!("invalid port {value}: write a port number from 1 to 65535"))),
                }
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Port, E> {
                Err(E::custom(format_args!(
                    "invalid port {value:?}: write the port as a number from 1 to 65535, without quotes"
                )))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// An absolute, normalised filesystem path from a policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyPath(PathBuf);

impl PolicyPath {
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl FromStr for PolicyPath {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if !value.starts_with('/') {
            return Err(format!(
                "invalid path {value:?}: policy paths must be absolute, for example \"/{}\"",
                value.trim_start_matches("./")
            ));
        }
        if value.contains('\0') {
            return Err(format!("invalid path {value:?}: a path cannot contain a NUL byte"));
        }

        let mut normalised = PathBuf::from("/");
        for component in Path::new(value).components() {
            match component {
                std::path::Component::Normal(part) => normalised.push(part),
                std::path::Component::ParentDir => {
                    return Err(format!("invalid path {value:?}: \"..\" is not allowed, write the path it leads to"))
                }
                _ => {}
            }
        }
        Ok(Self(normalised))
    }
}

impl fmt::Display for PolicyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

string_value_impls!(PolicyPath, "an absolute path");

/// A shell-style glob (`*`, `**`, `?`, `[...]`, `{a,b}`) matched against absolute paths.
#[derive(Debug, Clone)]
pub struct GlobPattern {
    source: String,
    glob: globset::Glob,
}

impl GlobPattern {
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn glob(&self) -> &globset::Glob {
        &self.glob
    }
}

impl PartialEq for GlobPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for GlobPattern {}

impl FromStr for GlobPattern {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let glob = globset::GlobBuilder::new(value).literal_separator(true).build().map_err(|error| {
            format!(
                "invalid glob {value:?}: {}; escape special characters with [ ] (for example \"[*]\")",
                error.kind()
            )
        })?;
        Ok(Self { source: value.to_owned(), glob })
    }
}

impl fmt::Display for GlobPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

string_value_impls!(GlobPattern, "a glob pattern");

/// A system call name known on the architecture Palisade was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyscallName(syscalls::Sysno);

impl SyscallName {
    pub fn sysno(self) -> syscalls::Sysno {
        self.0
    }

    pub fn from_sysno(sysno: syscalls::Sysno) -> Self {
        Self(sysno)
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl FromStr for SyscallName {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        value.parse::<syscalls::Sysno>().map(Self).map_err(|_| {
            let lowered = value.trim().to_ascii_lowercase();
            let hint = match lowered.trim_start_matches("sys_").trim_start_matches("__nr_").parse::<syscalls::Sysno>() {
                Ok(sysno) if sysno.name() != value => format!("write \"{}\"", sysno.name()),
                _ => format!(
                    "write the name as in the {} system call table, for example \"openat\"",
                    std::env::consts::ARCH
                ),
            };
            format!("unknown system call {value:?} on {}: {hint}", std::env::consts::ARCH)
        })
    }
}

impl fmt::Display for SyscallName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

string_value_impls!(SyscallName, "a system call name");

/// An errno name such as `ENOSYS` or `EPERM`, returned by denied system calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrnoName(syscalls::Errno);

impl ErrnoName {
    pub const ENOSYS: Self = Self(syscalls::Errno::ENOSYS);

    pub fn number(self) -> i32 {
        self.0.into_raw()
    }

    pub fn name(self) -> &'static str {
        self.0.name().unwrap_or("EUNKNOWN")
    }
}

impl Default for ErrnoName {
    fn default() -> Self {
        Self::ENOSYS
    }
}

impl FromStr for ErrnoName {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        // Linux errno values are below 4096; the kernel reserves that range for error returns.
        (1..4096).map(syscalls::Errno::new).find(|errno| errno.name() == Some(value)).map(Self).ok_or_else(|| {
            format!("unknown errno {value:?}: write a name such as ENOSYS, EPERM or EACCES (upper case)")
        })
    }
}

impl fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

string_value_impls!(ErrnoName, "an errno name such as ENOSYS");

/// An IPv4 or IPv6 network in CIDR notation, with the host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn net(self) -> IpNet {
        self.0
    }

    pub fn contains(self, address: IpAddr) -> bool {
        self.0.contains(&address)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let net = match value.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match value.parse::<IpAddr>() {
                Ok(address) => IpNet::from(address),
                Err(_) => {
                    return Err(format!(
                        "invalid CIDR {value:?}: write an address and prefix length such as \"10.0.0.0/8\" or \"2001:db8::/32\""
                    ))
                }
            },
        };
        if net.trunc() != net {
            return Err(format!(
                "invalid CIDR {value:?}: host bits are set below the prefix; write \"{}\"",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_value_impls!(Cidr, "a CIDR such as 10.0.0.0/8");

/// A destination host pattern: an exact DNS name, or `*.example.com` for every subdomain of
/// `example.com` (not `example.com` itself).
///
/// The stored form is lower case ASCII (IDNA punycode for international names) without a
/// trailing dot, so matching compares labels byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// The name, or for a wildcard the suffix after `*.`.
    name: String,
    wildcard: bool,
}

impl HostPattern {
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The exact name, or the parent domain of a wildcard pattern.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (wildcard, rest) = match value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        if rest.contains('*') {
            return Err(format!(
                "invalid host pattern {value:?}: a wildcard is allowed only as the whole first label, as in \"*.example.com\""
            ));
        }
        if rest.parse::<IpAddr>().is_ok() {
            return Err(format!(
                "invalid host pattern {value:?}: this is an IP address; put it under `cidrs` as \"{rest}/{}\"",
                if rest.contains(':') { 128 } else { 32 }
            ));
        }

        let name = crate::egress::host::normalize_host(rest)
            .map_err(|reason| format!("invalid host pattern {value:?}: {reason}"))?;
        Ok(Self { name, wildcard })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)
    }
}

string_value_impls!(HostPattern, "a host name or *.domain pattern");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_must_be_absolute() {
        let error = "tmp".parse::<PolicyPath>().unwrap_err();
        assert!(error.contains("\"/tmp\""), "{error}");
    }

    #[test]
    fn path_is_normalised() {
        let path: PolicyPath = "/usr//lib/./x/".parse().unwrap();
        assert_eq!(path.as_path(), Path::new("/usr/lib/x"));
    }

    #[test]
    fn path_rejects_parent_components() {
        assert!("/usr/../etc".parse::<PolicyPath>().is_err());
    }

    #[test]
    fn syscall_name_suggests_spelling() {
        let error = "SYS_openat".parse::<SyscallName>().unwrap_err();
        assert!(error.contains("write \"openat\""), "{error}");
    }

    #[test]
    fn errno_names_resolve() {
        assert_eq!("EPERM".parse::<ErrnoName>().unwrap().number(), libc::EPERM);
        assert_eq!("ENOSYS".parse::<ErrnoName>().unwrap().number(), libc::ENOSYS);
        assert!("eperm".parse::<ErrnoName>().is_err());
    }

    #[test]
    fn cidr_rejects_host_bits() {
        let error = "10.1.2.3/8".parse::<Cidr>().unwrap_err();
        assert!(error.contains("10.0.0.0/8"), "{error}");
    }

    #[test]
    fn cidr_accepts_bare_address() {
        let cidr: Cidr = "192.0.2.1".parse().unwrap();
        assert_eq!(cidr.to_string(), "192.0.2.1/32");
    }

    #[test]
    fn host_pattern_wildcard_only_first_label() {
        assert!("api.*.example.com".parse::<HostPattern>().is_err());
        let pattern: HostPattern = "*.Example.COM.".parse().unwrap();
        assert!(pattern.is_wildcard());
        assert_eq!(pattern.name(), "example.com");
    }

    #[test]
    fn host_pattern_rejects_addresses() {
        let error = "10.0.0.1".parse::<HostPattern>().unwrap_err();
        assert!(error.contains("cidrs"), "{error}");
    }
}
