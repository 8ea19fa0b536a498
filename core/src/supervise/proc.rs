//! Reading /proc for a thread that made a system call.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The process a thread belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The thread group id, that is the process id.
    pub pid: u32,
    pub executable: Option<PathBuf>,
}

impl ProcessInfo {
    pub fn read(tid: u32) -> Option<Self> {
        let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
        let pid = status
            .lines()
            .find_map(|line| line.strip_prefix("Tgid:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(tid);
        let executable = fs::read_link(format!("/proc/{tid}/exe")).ok();
        Some(Self { pid, executable })
    }
}

/// Reads a NUL-terminated string of at most `limit` bytes at `address` in the thread's memory.
pub fn read_string(tid: u32, address: u64, limit: usize) -> io::Result<Vec<u8>> {
    let memory = fs::File::open(format!("/proc/{tid}/mem"))?;
    let mut text = Vec::new();
    let mut chunk = [0u8; 256];
    let mut offset = address;
    while text.len() < limit {
        let read = memory.read_at(&mut chunk, offset)?;
        if read == 0 {
            break;
        }
        if let Some(end) = chunk[..read].iter().position(|byte| *byte == 0) {
            text.extend_from_slice(&chunk[..end]);
            return Ok(text);
        }
        text.extend_from_slice(&chunk[..read]);
        offset += read as u64;
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "string too long"))
}

/// Reads `length` bytes at `address` in the thread's memory.
pub fn read_bytes(tid: u32, address: u64, length: usize) -> io::Result<Vec<u8>> {
    let memory = fs::File::open(format!("/proc/{tid}/mem"))?;
    let mut bytes = vec![0; length];
    memory.read_exact_at(&mut bytes, address)?;
    Ok(bytes)
}

/// Returns the directory a relative path given with `dirfd` starts from.
pub fn base_directory(tid: u32, dirfd: i32) -> Option<PathBuf> {
    let link = if dirfd == libc::AT_FDCWD { format!("/proc/{tid}/cwd") } else { format!("/proc/{tid}/fd/{dirfd}") };
    fs::read_link(link).ok().filter(|path| path.is_absolute())
}

/// `path` made absolute against `base`, without touching the filesystem.
pub fn absolute(path: &Path, base: Option<&Path>) -> Option<PathBuf> {
    if path.is_absolute() {
        return Some(path.to_owned());
    }
    base.map(|base| base.join(path))
}
