//! Landlock rules from the policy: filesystem read, write and execute allow-lists, TCP ports and
//! IPC scoping, degraded to what the running kernel supports.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, RestrictionStatus, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use super::{elf, EnforceError};
use crate::policy::{Mode, PolicyPath, Spec};
use crate::sys;

/// The newest Landlock ABI this release was written and tested against.
pub const NEWEST_KNOWN_ABI: i32 = 7;

/// A right Landlock can restrict, and the ABI that introduced it.
struct Right {
    name: &'static str,
    since: i32,
    kind: RightKind,
}

enum RightKind {
    Fs,
    Net,
    Scope(Scope),
}

const RIGHTS: [Right; 20] = [
    Right { name: "fs.execute", since: 1, kind: RightKind::Fs },
    Right { name: "fs.write_file", since: 1, kind: RightKind::Fs },
    Right { name: "fs.read_file", since: 1, kind: RightKind::Fs },
    Right { name: "fs.read_dir", since: 1, kind: RightKind::Fs },
    Right { name: "fs.remove_dir", since: 1, kind: RightKind::Fs },
    Right { name: "fs.remove_file", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_char", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_dir", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_reg", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_sock", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_fifo", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_block", since: 1, kind: RightKind::Fs },
    Right { name: "fs.make_sym", since: 1, kind: RightKind::Fs },
    Right { name: "fs.refer", since: 2, kind: RightKind::Fs },
    Right { name: "fs.truncate", since: 3, kind: RightKind::Fs },
    Right { name: "net.bind_tcp", since: 4, kind: RightKind::Net },
    Right { name: "net.connect_tcp", since: 4, kind: RightKind::Net },
    Right { name: "fs.ioctl_dev", since: 5, kind: RightKind::Fs },
    Right { name: "scope.abstract_unix_socket", since: 6, kind: RightKind::Scope(Scope::AbstractUnixSocket) },
    Right { name: "scope.signal", since: 6, kind: RightKind::Scope(Scope::Signal) },
];

/// Whether the kernel offers Landlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available {
        abi: i32,
    },
    /// Built into the kernel but not enabled at boot (EOPNOTSUPP).
    NotEnabled,
    /// Not built into the kernel, or filtered out by seccomp (ENOSYS).
    NotImplemented,
}

impl Availability {
    pub fn detect() -> Self {
        match sys::landlock_abi_version() {
            Ok(abi) => Self::Available { abi },
            Err(nix::errno::Errno::EOPNOTSUPP) => Self::NotEnabled,
            Err(_) => Self::NotImplemented,
        }
    }

    pub fn abi(self) -> i32 {
        match self {
            Self::Available { abi } => abi,
            _ => 0,
        }
    }
}

/// A policy path as the kernel resolves it, because Landlock rules attach to the inode a path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    pub policy: PathBuf,
    /// The canonical path, when it differs (a symlink somewhere along the way).
    pub resolved: Option<PathBuf>,
}

/// The Landlock part of the enforcement, prepared but not yet applied.
#[derive(Debug)]
pub struct LandlockPlan {
    pub availability: Availability,
    /// Rights the ruleset restricts on this kernel.
    pub enforced: Vec<&'static str>,
    /// Rights the policy needs restricted that this kernel cannot restrict.
    pub degraded: Vec<&'static str>,
    /// Policy paths that do not exist; their rules are left out.
    pub paths_missing: Vec<PathBuf>,
    /// ELF interpreters granted execute because an allowed executable needs them to start.
    pub implicit_execute: Vec<PathBuf>,
    /// Why no ruleset is applied, when none is.
    pub skipped: Option<&'static str>,
    ruleset: Option<RulesetCreated>,
}

impl LandlockPlan {
    /// Builds the ruleset for `spec` on a kernel with `availability`. Every rule is added to the
    /// kernel ruleset here, so that applying it later cannot fail on a rule.
    pub fn prepare(spec: &Spec, availability: Availability) -> Result<Self, EnforceError> {
        let abi = availability.abi();
        let requested = requested_rights(spec);
        let enforced: Vec<&'static str> =
            requested.iter().filter(|right| right.since <= abi).map(|right| right.name).collect();
        let degraded: Vec<&'static str> =
            requested.iter().filter(|right| right.since > abi).map(|right| right.name).collect();

        let mut plan = Self {
            availability,
            enforced,
            degraded,
            paths_missing: Vec::new(),
            implicit_execute: Vec::new(),
            skipped: None,
            ruleset: None,
        };

        if abi == 0 {
            plan.skipped = Some(match availability {
                Availability::NotEnabled => "Landlock is built into this kernel but not enabled (lsm= boot parameter)",
                _ => "this kernel has no Landlock support",
            });
            plan.enforced.clear();
            return Ok(plan);
        }
        if spec.mode == Mode::Audit {
            // Landlock can only deny; audit mode must let every access through.
            plan.skipped = Some("audit mode: Landlock cannot report without denying, so no ruleset is applied");
            plan.enforced.clear();
            return Ok(plan);
        }

        plan.ruleset = Some(plan.build_ruleset(spec, abi)?);
        Ok(plan)
    }

    fn build_ruleset(&mut self, spec: &Spec, abi: i32) -> Result<RulesetCreated, EnforceError> {
        let landlock_abi = ABI::from(abi.min(NEWEST_KNOWN_ABI));
        let all_fs = AccessFs::from_all(landlock_abi);
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        let write = all_fs & !AccessFs::Execute;
        let execute = AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir;

        let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement).handle_access(all_fs)?;
        let restrict_net = abi >= 4 && !spec.network.unrestricted_tcp;
        if restrict_net {
            ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
        }
        if abi >= 6 {
            if spec.scope.abstract_unix_socket {
                ruleset = ruleset.scope(Scope::AbstractUnixSocket)?;
            }
            if spec.scope.signal {
                ruleset = ruleset.scope(Scope::Signal)?;
            }
        }
        let mut created = ruleset.create()?;

        let interpreters = elf::interpreters_of(spec.process.execute.iter().map(PolicyPath::as_path));
        self.implicit_execute = interpreters.clone();
        let filesystem_rules = spec
            .filesystem
            .read
            .iter()
            .map(|path| (path.as_path().to_owned(), read))
            .chain(spec.filesystem.write.iter().map(|path| (path.as_path().to_owned(), read | write)))
            .chain(spec.process.execute.iter().map(|path| (path.as_path().to_owned(), execute)))
            .chain(interpreters.into_iter().map(|path| (path, execute)));

        for (path, access) in filesystem_rules {
            let Some((fd, is_dir)) = open_path(&path, &mut self.paths_missing)? else {
                continue;
            };
            let access = if is_dir { access } else { access & AccessFs::from_file(landlock_abi) };
            created = created.add_rule(PathBeneath::new(fd, access))?;
        }

        if restrict_net {
            for port in &spec.network.connect_tcp {
                created = created.add_rule(NetPort::new(port.get(), AccessNet::ConnectTcp))?;
            }
            for port in &spec.network.bind_tcp {
                created = created.add_rule(NetPort::new(port.get(), AccessNet::BindTcp))?;
            }
        }
        Ok(created)
    }

    /// Restricts the calling thread and every process it executes. Landlock applies to the
    /// calling thread only, so the launcher calls this from its single thread before exec.
    pub fn apply(&mut self) -> Result<Option<RestrictionStatus>, EnforceError> {
        let Some(ruleset) = self.ruleset.take() else {
            return Ok(None);
        };
        let status = ruleset.restrict_self()?;
        if status.ruleset == RulesetStatus::NotEnforced {
            return Err(EnforceError::LandlockNotEnforced);
        }
        Ok(Some(status))
    }
}

/// Lists the rights the policy requests Landlock to restrict, on the newest known ABI.
fn requested_rights(spec: &Spec) -> Vec<&'static Right> {
    RIGHTS
        .iter()
        .filter(|right| match right.kind {
            RightKind::Fs => true,
            RightKind::Net => !spec.network.unrestricted_tcp,
            RightKind::Scope(Scope::AbstractUnixSocket) => spec.scope.abstract_unix_socket,
            RightKind::Scope(Scope::Signal) => spec.scope.signal,
            RightKind::Scope(_) => false,
        })
        .collect()
}

/// Opens `path` with O_PATH for a rule (following symlinks, as the kernel resolves accesses); a
/// missing path is recorded and yields `None`.
fn open_path(path: &Path, missing: &mut Vec<PathBuf>) -> Result<Option<(File, bool)>, EnforceError> {
    let opened = OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            missing.push(path.to_owned());
            return Ok(None);
        }
        Err(source) => return Err(EnforceError::PolicyPath { path: path.to_owned(), source }),
    };
    let metadata = file.metadata().map_err(|source| EnforceError::PolicyPath { path: path.to_owned(), source })?;
    Ok(Some((file, metadata.is_dir())))
}

/// Lists the policy paths that resolve elsewhere (a symlink somewhere along the way), for
/// `policy explain`. The launcher does not need the list, because rules attach to what a path
/// resolves to.
pub fn resolve_policy_paths(spec: &Spec) -> Vec<ResolvedPath> {
    let paths = spec.filesystem.read.iter().chain(&spec.filesystem.write).chain(&spec.process.execute);
    paths
        .filter_map(|path| {
            let resolved = std::fs::canonicalize(path.as_path()).ok()?;
            (resolved != path.as_path())
                .then(|| ResolvedPath { policy: path.as_path().to_owned(), resolved: Some(resolved) })
        })
        .collect()
}

/// Lists the Landlock rights of an ABI, named as in reports.
pub fn rights_of_abi(abi: i32) -> Vec<&'static str> {
    RIGHTS.iter().filter(|right| right.since <= abi).map(|right| right.name).collect()
}

impl From<landlock::RulesetError> for EnforceError {
    fn from(error: landlock::RulesetError) -> Self {
        EnforceError::LandlockRuleset(error.to_string())
    }
}
