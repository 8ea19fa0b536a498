//! The parallel walk: records every entry under the scope's roots.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use globset::GlobSet;
use rayon::prelude::*;

use super::digest::{hash_file, hash_open, open_regular, HashFailure};
use super::entry::{Entry, EntryKind, EntryNote, Timestamp};
use super::pseudo::MountTable;
use super::scope::under_prefix;
use super::{sys, DigestAlgorithm, IntegrityError, Scope};

/// Counters a caller can read while a scan runs, for progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub entries: AtomicU64,
    pub bytes_hashed: AtomicU64,
}

/// How to scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    pub algorithm: DigestAlgorithm,
    /// A directory that stands for `/`: `/proc/PID/root`, or where an image was extracted.
    /// Entries are still recorded with their paths inside that root.
    pub prefix: Option<PathBuf>,
    /// Descend pseudo-filesystems (proc, sysfs, devtmpfs, cgroup, ...) instead of recording only
    /// their mount points.
    pub descend_pseudo: bool,
    pub progress: Option<Arc<Progress>>,
}

/// An entry that could not be recorded completely.
#[derive(Debug, thiserror::Error)]
#[error("cannot {operation} {}: {error}", super::entry::escape_path(path))]
pub struct EntryError {
    pub path: PathBuf,
    pub operation: &'static str,
    pub error: io::Error,
}

/// The entries, errors and counters of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Entries sorted by path bytes.
    pub entries: Vec<Entry>,
    /// Paths of regular files whose size, mtime or ctime changed while they were hashed; their
    /// entries carry the metadata from before reading.
    pub changed_while_reading: Vec<PathBuf>,
    pub errors: Vec<EntryError>,
    pub files_hashed: u64,
    pub digests_reused: u64,
    pub bytes_hashed: u64,
}

/// Previous entries whose digests may be reused when the metadata is unchanged.
/// Keyed by path bytes, which hash faster than `Path`'s component-wise hashing.
pub(crate) type ReuseMap<'a> = HashMap<&'a [u8], &'a Entry>;

enum Outcome {
    Entry(Entry, Flags),
    Error(EntryError),
}

#[derive(Clone, Copy, Default)]
struct Flags {
    changed_while_reading: bool,
    hashed: bool,
    reused: bool,
    bytes: u64,
}

struct Walker<'a> {
    scope: &'a Scope,
    exclude: GlobSet,
    options: &'a ScanOptions,
    mounts: MountTable,
    reuse: Option<&'a ReuseMap<'a>>,
}

/// Records every entry under the scope's roots.
pub fn scan(scope: &Scope, options: &ScanOptions) -> Result<Scan, IntegrityError> {
    scan_reusing(scope, options, None)
}

pub(crate) fn scan_reusing(
    scope: &Scope,
    options: &ScanOptions,
    reuse: Option<&ReuseMap<'_>>,
) -> Result<Scan, IntegrityError> {
    let walker = Walker { scope, exclude: scope.exclude_set()?, options, mounts: MountTable::read(), reuse };

    let outcomes: Vec<Outcome> = scope.roots.par_iter().flat_map_iter(|root| walker.visit_root(root)).collect();
    Ok(collect(outcomes))
}

/// Records the entries at the given paths: each path alone, or with everything below it when
/// its flag is set. Paths must lie in the scope's roots; missing paths have no entries.
pub(crate) fn scan_paths(
    scope: &Scope,
    options: &ScanOptions,
    paths: &[(PathBuf, bool)],
) -> Result<Scan, IntegrityError> {
    let walker = Walker { scope, exclude: scope.exclude_set()?, options, mounts: MountTable::read(), reuse: None };
    let outcomes: Vec<Outcome> = paths
        .par_iter()
        .filter(|(path, _)| scope.contains(path) && !walker.is_excluded(path))
        .flat_map_iter(|(path, recursive)| {
            let physical = under_prefix(options.prefix.as_deref(), path);
            match std::fs::symlink_metadata(&physical) {
                Ok(metadata) if *recursive => walker.visit(path.clone(), physical, metadata, None),
                Ok(metadata) => match walker.record(path, &physical, &metadata, None) {
                    Ok((entry, flags)) => vec![Outcome::Entry(entry, flags)],
                    Err(error) => vec![Outcome::Error(error)],
                },
                Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(error) => vec![Outcome::Error(EntryError { path: path.clone(), operation: "lstat", error })],
            }
        })
        .collect();
    Ok(collect(outcomes))
}

fn collect(outcomes: Vec<Outcome>) -> Scan {
    let mut scan = Scan::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Entry(entry, flags) => {
                if flags.changed_while_reading {
                    scan.changed_while_reading.push(entry.path.clone());
                }
                scan.files_hashed += u64::from(flags.hashed);
                scan.digests_reused += u64::from(flags.reused);
                scan.bytes_hashed += flags.bytes;
                scan.entries.push(entry);
            }
            Outcome::Error(error) => scan.errors.push(error),
        }
    }
    scan.entries.par_sort_unstable_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
    scan.changed_while_reading.sort();
    scan
}

impl Walker<'_> {
    /// Returns whether `path` or a directory above it (inside its root) matches an exclude glob.
    fn is_excluded(&self, path: &Path) -> bool {
        path.ancestors()
            .take_while(|ancestor| self.scope.contains(ancestor))
            .any(|ancestor| self.exclude.is_match(ancestor))
    }

    fn visit_root(&self, root: &Path) -> Vec<Outcome> {
        let physical = under_prefix(self.options.prefix.as_deref(), root);
        match std::fs::symlink_metadata(&physical) {
            Ok(metadata) => self.visit(root.to_owned(), physical, metadata, None),
            // A missing root has no entries: verification reports what it had as removed.
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => vec![Outcome::Error(EntryError { path: root.to_owned(), operation: "lstat", error })],
        }
    }

    /// Records one entry and, for a directory, everything below it.
    fn visit(&self, path: PathBuf, physical: PathBuf, metadata: Metadata, parent_device: Option<u64>) -> Vec<Outcome> {
        let (mut entry, flags) = match self.record(&path, &physical, &metadata, None) {
            Ok(recorded) => recorded,
            Err(error) => return vec![Outcome::Error(error)],
        };
        if entry.kind != EntryKind::Directory {
            return vec![Outcome::Entry(entry, flags)];
        }

        if parent_device != Some(entry.device) && !self.options.descend_pseudo {
            if let Some(fs_type) = self.mounts.pseudo_type(&physical, entry.device) {
                entry.note = Some(EntryNote::PseudoFilesystem(fs_type));
                return vec![Outcome::Entry(entry, flags)];
            }
        }

        let names = match read_names(&physical) {
            Ok(names) => names,
            Err(error) => {
                return vec![
                    Outcome::Entry(entry, flags),
                    Outcome::Error(EntryError { path, operation: "read directory", error }),
                ]
            }
        };

        let device = entry.device;
        let mut outcomes: Vec<Outcome> = names
            .into_par_iter()
            .flat_map_iter(|(name, file_type)| {
                let child = path.join(&name);
                if self.exclude.is_match(&child) {
                    return Vec::new();
                }
                let child_physical = physical.join(&name);
                // A regular file (by its directory entry type) is opened straight away and
                // checked with fstat, which saves the lstat; anything else is lstat-ed first.
                if file_type.is_some_and(|file_type| file_type.is_file()) && self.reuse.is_none() {
                    match open_regular(&child_physical) {
                        Ok((file, metadata)) => {
                            return match self.record(&child, &child_physical, &metadata, Some(file)) {
                                Ok((entry, flags)) => vec![Outcome::Entry(entry, flags)],
                                Err(error) => vec![Outcome::Error(error)],
                            };
                        }
                        Err(HashFailure::Io(_, error)) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
                        Err(HashFailure::Io(operation, error)) => {
                            return vec![Outcome::Error(EntryError { path: child, operation, error })]
                        }
                        // Replaced by another type since the directory was read.
                        Err(HashFailure::Replaced) => {}
                    }
                }
                match std::fs::symlink_metadata(&child_physical) {
                    Ok(metadata) => self.visit(child, child_physical, metadata, Some(device)),
                    // Removed since the directory was read: it is simply not there any more.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
                    Err(error) => vec![Outcome::Error(EntryError { path: child, operation: "lstat", error })],
                }
            })
            .collect();
        outcomes.push(Outcome::Entry(entry, flags));
        outcomes
    }

    /// Builds the entry for one path from `lstat` metadata, its extended attributes and, for a
    /// regular file, its digest.
    /// `opened` is the file already opened by [`open_regular`], whose `fstat` gave `metadata`.
    fn record(
        &self,
        path: &Path,
        physical: &Path,
        metadata: &Metadata,
        opened: Option<std::fs::File>,
    ) -> Result<(Entry, Flags), EntryError> {
        let error = |operation, error| EntryError { path: path.to_owned(), operation, error };
        let kind = EntryKind::from_mode(metadata.mode())
            .ok_or_else(|| error("recognise the type of", io::Error::from(io::ErrorKind::Unsupported)))?;

        let target = match kind {
            EntryKind::Symlink => Some(std::fs::read_link(physical).map_err(|e| error("read link", e))?),
            _ => None,
        };
        // Setting or removing an extended attribute updates ctime, so an unchanged file (see
        // `reusable`) keeps its recorded attributes as well as its digest.
        let reused = match opened {
            Some(_) => None,
            None if kind == EntryKind::File => self.reusable(path, metadata),
            None => None,
        };
        let xattrs = match (reused, &opened) {
            (Some(previous), _) => Ok(previous.xattrs.clone()),
            (None, Some(file)) => sys::read_xattrs_fd(file.as_fd()),
            (None, None) => sys::read_xattrs(physical),
        };
        let xattrs = xattrs.map_err(|e| error("read extended attributes of", e))?;

        let mut flags = Flags::default();
        let mut metadata = metadata.clone();
        let mut digest = None;
        if kind == EntryKind::File {
            if let Some(previous) = reused {
                digest = previous.digest.clone();
                flags.reused = true;
            } else {
                let hashed = match opened {
                    Some(file) => hash_open(file, metadata.clone(), self.options.algorithm),
                    None => hash_file(physical, &metadata, self.options.algorithm),
                };
                match hashed {
                    Ok(hashed) => {
                        flags.hashed = true;
                        flags.bytes = hashed.before.size();
                        flags.changed_while_reading = hashed.changed_while_reading;
                        metadata = hashed.before;
                        digest = Some(hashed.digest);
                    }
                    Err(HashFailure::Replaced) => {
                        flags.changed_while_reading = true;
                    }
                    Err(HashFailure::Io(operation, e)) => return Err(error(operation, e)),
                }
            }
        }

        if let Some(progress) = &self.options.progress {
            progress.entries.fetch_add(1, Ordering::Relaxed);
            progress.bytes_hashed.fetch_add(flags.bytes, Ordering::Relaxed);
        }

        let entry = Entry {
            path: path.to_owned(),
            kind,
            mode: metadata.mode() & 0o7777,
            uid: metadata.uid(),
            gid: metadata.gid(),
            size: metadata.size(),
            mtime: Timestamp { seconds: metadata.mtime(), nanoseconds: metadata.mtime_nsec() as u32 },
            ctime: Timestamp { seconds: metadata.ctime(), nanoseconds: metadata.ctime_nsec() as u32 },
            device: metadata.dev(),
            inode: metadata.ino(),
            nlink: metadata.nlink(),
            rdev: if matches!(kind, EntryKind::CharDevice | EntryKind::BlockDevice) { metadata.rdev() } else { 0 },
            target,
            xattrs,
            digest,
            note: None,
        };
        Ok((entry, flags))
    }

    /// Returns the previous entry of a regular file whose size, mtime, ctime and inode are
    /// unchanged, when it has a digest and is not under a high-assurance root.
    fn reusable(&self, path: &Path, metadata: &Metadata) -> Option<&Entry> {
        use std::os::unix::ffi::OsStrExt;

        let previous = *self.reuse?.get(path.as_os_str().as_bytes())?;
        let unchanged = previous.kind == EntryKind::File
            && previous.digest.is_some()
            && previous.size == metadata.size()
            && previous.inode == metadata.ino()
            && previous.mtime.seconds == metadata.mtime()
            && i64::from(previous.mtime.nanoseconds) == metadata.mtime_nsec()
            && previous.ctime.seconds == metadata.ctime()
            && i64::from(previous.ctime.nanoseconds) == metadata.ctime_nsec();
        if !unchanged || self.scope.is_high_assurance(path) {
            return None;
        }
        Some(previous)
    }
}

/// Lists the names in a directory with their types from the directory entry, where the
/// filesystem reports one.
fn read_names(directory: &Path) -> io::Result<Vec<(OsString, Option<std::fs::FileType>)>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        names.push((entry.file_name(), entry.file_type().ok()));
    }
    Ok(names)
}
