//! One recorded filesystem entry and the text encoding of its byte strings.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The type of a filesystem entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    File,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "dir",
            Self::Symlink => "symlink",
            Self::Fifo => "fifo",
            Self::Socket => "socket",
            Self::CharDevice => "char",
            Self::BlockDevice => "block",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        let kind = match text {
            "file" => Self::File,
            "dir" => Self::Directory,
            "symlink" => Self::Symlink,
            "fifo" => Self::Fifo,
            "socket" => Self::Socket,
            "char" => Self::CharDevice,
            "block" => Self::BlockDevice,
            _ => return None,
        };
        Some(kind)
    }

    /// Maps the `S_IFMT` bits of `st_mode`.
    pub fn from_mode(mode: u32) -> Option<Self> {
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG => Self::File,
            libc::S_IFDIR => Self::Directory,
            libc::S_IFLNK => Self::Symlink,
            libc::S_IFIFO => Self::Fifo,
            libc::S_IFSOCK => Self::Socket,
            libc::S_IFCHR => Self::CharDevice,
            libc::S_IFBLK => Self::BlockDevice,
            _ => return None,
        };
        Some(kind)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A file timestamp with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanoseconds: u32,
}

impl Timestamp {
    pub fn parse(text: &str) -> Option<Self> {
        let (seconds, nanoseconds) = text.split_once('.')?;
        if nanoseconds.len() != 9 {
            return None;
        }
        Some(Self { seconds: seconds.parse().ok()?, nanoseconds: nanoseconds.parse().ok()? })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.seconds, self.nanoseconds)
    }
}

/// What the scan did not do for an entry on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryNote {
    /// A directory where a pseudo-filesystem (proc, sysfs, ...) is mounted; its contents are not
    /// recorded.
    PseudoFilesystem(String),
}

/// One filesystem entry as recorded: metadata, extended attributes and, for regular files, the
/// content digest. Symbolic links are recorded, never followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The absolute path in the checked namespace, without any root prefix.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Permission bits, including set-user-ID, set-group-ID and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub device: u64,
    pub inode: u64,
    pub nlink: u64,
    /// The device number of a character or block device, 0 for other types.
    pub rdev: u64,
    /// The target of a symbolic link.
    pub target: Option<PathBuf>,
    /// Extended attributes by name, including `security.capability` and ACLs.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The content digest of a regular file; `None` for other types.
    pub digest: Option<Vec<u8>>,
    pub note: Option<EntryNote>,
}

impl Entry {
    /// The path as bytes: manifests sort and compare entries by these.
    pub fn path_bytes(&self) -> &[u8] {
        self.path.as_os_str().as_bytes()
    }
}

/// Escapes bytes for the manifest and for display: printable ASCII other than `%`, `=` and `;`
/// stays as it is, every other byte (space, tab, newline, non-ASCII) becomes `%XX`.
pub fn escape(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    escape_into(&mut text, bytes);
    text
}

/// Appends the escaped form of `bytes` (see [`escape`]) to `text`.
pub fn escape_into(text: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in bytes {
        if byte.is_ascii_graphic() && !matches!(byte, b'%' | b'=' | b';') {
            text.push(char::from(byte));
        } else {
            text.push('%');
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Escapes a path; see [`escape`].
pub fn escape_path(path: &Path) -> String {
    escape(path.as_os_str().as_bytes())
}

/// Reverses [`escape`]; `None` for a malformed `%` sequence or a byte that should have been escaped.
pub fn unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut output = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            output.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else if byte.is_ascii_graphic() {
            output.push(byte);
            index += 1;
        } else {
            return None;
        }
    }
    Some(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = escape(&bytes);

        assert!(text.bytes().all(|byte| byte.is_ascii_graphic()));
        assert_eq!(unescape(&text).unwrap(), bytes);
    }

    #[test]
    fn escape_keeps_plain_paths_readable() {
        assert_eq!(escape(b"/usr/bin/ls"), "/usr/bin/ls");
        assert_eq!(escape(b"/a b\n"), "/a%20b%0A");
    }

    #[test]
    fn unescape_rejects_malformed_sequences() {
        assert_eq!(unescape("%4"), None);
        assert_eq!(unescape("%zz"), None);
        assert_eq!(unescape("a b"), None);
    }

    #[test]
    fn timestamp_round_trips() {
        let time = Timestamp { seconds: -5, nanoseconds: 42 };
        assert_eq!(Timestamp::parse(&time.to_string()), Some(time));
    }
}
