//! fanotify with filesystem marks: one mark per filesystem under the roots, events carrying the
//! parent directory's file handle and the entry name (`FAN_REPORT_DFID_NAME`), and the pid of
//! the process that made the change.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Backend, Batch, ProcessInfo, Source};
use crate::integrity::{sys, IntegrityError, Scope};

const MASK: u64 = libc::FAN_MODIFY
    | libc::FAN_ATTRIB
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_DELETE_SELF
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_MOVE_SELF
    | libc::FAN_ONDIR;

/// `struct fanotify_event_metadata`: event_len u32, vers u8, reserved u8, metadata_len u16,
/// mask u64, fd i32, pid i32.
const METADATA_LENGTH: usize = 24;
/// `struct fanotify_event_info_header` (type u8, pad u8, len u16) and the fsid (two i32).
const INFO_FID_HEADER_LENGTH: usize = 4 + 8;

#[derive(Debug)]
pub(super) struct FanotifySource {
    group: File,
    /// A directory on each marked filesystem, by filesystem id, for resolving file handles.
    mounts: HashMap<[i32; 2], OwnedFd>,
    /// The real path of the root prefix, stripped from resolved paths.
    prefix: Option<PathBuf>,
    buffer: Vec<u8>,
}

impl FanotifySource {
    pub fn new(scope: &Scope, prefix: Option<&Path>) -> Result<Self, IntegrityError> {
        let init_error = |source| IntegrityError::WatchInit { backend: "fanotify", source };
        let group = File::from(sys::fanotify_init().map_err(init_error)?);
        let prefix = prefix.map(std::fs::canonicalize).transpose().map_err(init_error)?;

        // One mark per filesystem; mounts below the roots are found by their device numbers.
        let mut mounts = HashMap::new();
        let mut devices = std::collections::HashSet::new();
        for root in &scope.roots {
            let physical = crate::integrity::scope::under_prefix(prefix.as_deref(), root);
            let Ok(metadata) = std::fs::symlink_metadata(&physical) else { continue };
            if !devices.insert(metadata.dev()) {
                continue;
            }
            let directory = if metadata.is_dir() {
                physical.clone()
            } else {
                physical.parent().unwrap_or(Path::new("/")).to_owned()
            };
            sys::fanotify_mark_filesystem(group.as_fd(), &directory, MASK)
                .map_err(|source| IntegrityError::WatchAdd { path: root.clone(), source })?;
            let fsid = sys::filesystem_id(&directory).map_err(init_error)?;
            let mount = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(&directory)
                .map_err(init_error)?;
            mounts.insert(fsid, OwnedFd::from(mount));
        }
        if mounts.is_empty() {
            return Err(init_error(io::Error::new(io::ErrorKind::NotFound, "none of the roots exists")));
        }
        Ok(Self { group, mounts, prefix, buffer: vec![0; 256 * 1024] })
    }

    /// The logical path a resolved physical path stands for, if it lies under the prefix.
    fn logical(&self, physical: PathBuf) -> Option<PathBuf> {
        match &self.prefix {
            Some(prefix) => physical.strip_prefix(prefix).ok().map(|rest| Path::new("/").join(rest)),
            None => Some(physical),
        }
    }

    /// Resolves a file handle to the path it has now, through `/proc/self/fd`.
    fn resolve(&self, fsid: [i32; 2], handle: &[u8]) -> Option<PathBuf> {
        let mount = self.mounts.get(&fsid)?;
        let fd = sys::open_by_handle(mount.as_fd(), handle).ok()?;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).ok()?;
        // The directory was deleted after the event.
        if link.as_os_str().as_bytes().ends_with(b" (deleted)") {
            return None;
        }
        Some(link)
    }

    fn parse_event(&self, event: &[u8], batch: &mut Batch) {
        let mask = u64::from_ne_bytes(event[8..16].try_into().unwrap_or_default());
        if mask & libc::FAN_Q_OVERFLOW != 0 {
            batch.overflow = true;
            return;
        }
        let metadata_length = usize::from(u16::from_ne_bytes([event[6], event[7]]));
        let pid = i32::from_ne_bytes(event[20..24].try_into().unwrap_or_default());
        let process = u32::try_from(pid)
            .ok()
            .filter(|pid| *pid > 0)
            .map(|pid| ProcessInfo { pid, executable: std::fs::read_link(format!("/proc/{pid}/exe")).ok() });

        // Information records follow the metadata.
        let mut offset = metadata_length;
        while offset + INFO_FID_HEADER_LENGTH <= event.len() {
            let info_type = event[offset];
            let length = usize::from(u16::from_ne_bytes([event[offset + 2], event[offset + 3]]));
            if length < INFO_FID_HEADER_LENGTH || offset + length > event.len() {
                break;
            }
            let record = &event[offset..offset + length];
            offset += length;
            if !matches!(
                info_type,
                libc::FAN_EVENT_INFO_TYPE_FID | libc::FAN_EVENT_INFO_TYPE_DFID | libc::FAN_EVENT_INFO_TYPE_DFID_NAME
            ) {
                continue;
            }

            let fsid = [
                i32::from_ne_bytes(record[4..8].try_into().unwrap_or_default()),
                i32::from_ne_bytes(record[8..12].try_into().unwrap_or_default()),
            ];
            let handle_start = INFO_FID_HEADER_LENGTH;
            let Some(handle_bytes) = record.get(handle_start..handle_start + 4) else { continue };
            let handle_length = 8 + u32::from_ne_bytes(handle_bytes.try_into().unwrap_or_default()) as usize;
            let Some(handle) = record.get(handle_start..handle_start + handle_length) else { continue };
            let Some(directory) = self.resolve(fsid, handle).and_then(|path| self.logical(path)) else { continue };

            let name = match info_type {
                libc::FAN_EVENT_INFO_TYPE_DFID_NAME => {
                    let rest = &record[handle_start + handle_length..];
                    let end = rest.iter().position(|&byte| byte == 0).unwrap_or(rest.len());
                    Some(std::ffi::OsStr::from_bytes(&rest[..end]).to_owned())
                }
                _ => None,
            };
            match name {
                Some(name) if name != "." && !name.is_empty() => {
                    batch.mark(directory.join(name), true, process.clone())
                }
                _ => batch.mark(directory, false, process.clone()),
            }
        }
    }
}

impl Source for FanotifySource {
    fn backend(&self) -> Backend {
        Backend::Fanotify
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }

    fn read(&mut self, batch: &mut Batch) -> Result<(), IntegrityError> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let result = loop {
            let length = match self.group.read(&mut buffer) {
                Ok(length) => length,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => break Err(IntegrityError::WatchRead { backend: "fanotify", source }),
            };
            let mut offset = 0;
            while offset + METADATA_LENGTH <= length {
                let event_length =
                    u32::from_ne_bytes(buffer[offset..offset + 4].try_into().unwrap_or_default()) as usize;
                if event_length < METADATA_LENGTH || offset + event_length > length {
                    break;
                }
                self.parse_event(&buffer[offset..offset + event_length], batch);
                offset += event_length;
            }
        };
        self.buffer = buffer;
        result
    }

    fn add_directory(&mut self, _path: &Path, _physical: &Path) -> Result<(), IntegrityError> {
        // Filesystem marks already cover every directory on the marked filesystems.
        // NOTE: a filesystem mounted below a root after the watch started is not marked.
        Ok(())
    }
}
