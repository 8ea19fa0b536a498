//! What a learning run reads from /proc about one system call: the paths it opens, executes or
//! changes, and the addresses it connects to.
//!
//! These reads follow pointer arguments into the caller's memory, which the caller could change
//! at any moment. So they only describe the workload to a person reviewing a learned policy, and
//! never decide whether a call is allowed.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::proc;
use crate::sys::seccomp::Notification;

/// The longest path read from the caller's memory.
const PATH_MAX: usize = 4096;

/// The path or address one call touched, beyond its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Nothing,
    Execute(PathBuf),
    Read(PathBuf),
    /// A file opened for writing that existed or not: the rule goes on the file.
    Write(PathBuf),
    /// A file created, removed or renamed: the rule goes on its directory.
    Change(PathBuf),
    Connect(SocketAddr),
}

pub fn observe(notification: &Notification) -> Observed {
    let Some(sysno) = usize::try_from(notification.nr).ok().and_then(syscalls::Sysno::new) else {
        return Observed::Nothing;
    };
    let tid = notification.tid;
    let args = notification.args;
    let at = |dirfd: u64, path: u64| path_at(tid, dirfd as i32, path);
    let cwd = |path: u64| path_at(tid, libc::AT_FDCWD, path);

    let observed = match sysno.name() {
        "execve" => cwd(args[0]).map(Observed::Execute),
        "execveat" => at(args[0], args[1]).map(Observed::Execute),
        "open" => cwd(args[0]).map(|path| by_flags(path, args[1])),
        "openat" => at(args[0], args[1]).map(|path| by_flags(path, args[2])),
        "openat2" => at(args[0], args[1]).map(|path| {
            let flags = proc::read_bytes(tid, args[2], 8).ok().and_then(|bytes| bytes.try_into().ok());
            by_flags(path, flags.map_or(0, u64::from_ne_bytes))
        }),
        "creat" | "mkdir" | "rmdir" | "unlink" | "mknod" => cwd(args[0]).map(Observed::Change),
        "mkdirat" | "unlinkat" | "mknodat" => at(args[0], args[1]).map(Observed::Change),
        "rename" | "link" | "symlink" => cwd(args[1]).map(Observed::Change),
        "renameat" | "renameat2" | "linkat" => at(args[2], args[3]).map(Observed::Change),
        "symlinkat" => at(args[1], args[2]).map(Observed::Change),
        "truncate" => cwd(args[0]).map(Observed::Write),
        "connect" => socket_address(tid, args[1], args[2]).map(Observed::Connect),
        _ => None,
    };
    observed.unwrap_or(Observed::Nothing)
}

fn by_flags(path: PathBuf, flags: u64) -> Observed {
    let flags = flags as i32;
    let access = flags & libc::O_ACCMODE;
    if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
        Observed::Change(path)
    } else if access == libc::O_WRONLY || access == libc::O_RDWR || flags & libc::O_TRUNC != 0 {
        Observed::Write(path)
    } else {
        Observed::Read(path)
    }
}

fn path_at(tid: u32, dirfd: i32, address: u64) -> Option<PathBuf> {
    if address == 0 {
        return None;
    }
    let bytes = proc::read_string(tid, address, PATH_MAX).ok()?;
    if bytes.is_empty() {
        // AT_EMPTY_PATH: the call is about `dirfd` itself.
        return proc::base_directory(tid, dirfd);
    }
    let path = PathBuf::from(OsStr::from_bytes(&bytes));
    let base = if path.is_absolute() { None } else { proc::base_directory(tid, dirfd) };
    proc::absolute(&path, base.as_deref())
}

fn socket_address(tid: u32, address: u64, length: u64) -> Option<SocketAddr> {
    let length = usize::try_from(length).ok().filter(|length| (2..=128).contains(length))?;
    let bytes = proc::read_bytes(tid, address, length).ok()?;
    let family = i32::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    match family {
        libc::AF_INET if bytes.len() >= 8 => {
            let address = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Some(SocketAddr::new(IpAddr::V4(address), port))
        }
        libc::AF_INET6 if bytes.len() >= 24 => {
            let octets: [u8; 16] = bytes[8..24].try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_classify_access() {
        let path = PathBuf::from("/x");
        assert_eq!(by_flags(path.clone(), libc::O_RDONLY as u64), Observed::Read(path.clone()));
        assert_eq!(by_flags(path.clone(), libc::O_WRONLY as u64), Observed::Write(path.clone()));
        assert_eq!(by_flags(path.clone(), (libc::O_WRONLY | libc::O_CREAT) as u64), Observed::Change(path));
    }
}
