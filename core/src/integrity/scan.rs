//! The parallel walk: records every entry under the scope's roots.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nix::dir::{Dir, Type};

use globset::GlobSet;
use rayon::prelude::*;

use super::digest::{hash_file, hash_open, open_regular_at, HashFailure};
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
    /// Threads that walk, read and hash, on a pool of their own. 0 runs the scan on the caller's
    /// rayon pool (the global one unless the caller is inside another).
    pub threads: usize,
}

/// Scan threads per CPU by default. A scan of files outside the page cache mostly waits for
/// reads, so it keeps more reads in flight than there are CPUs. On a 2-CPU VM, a baseline of
/// 100,000 uncached small files took 4.1 s with 2 threads and 1.5 s with 16. With the files
/// cached, both took 0.4 s.
const THREADS_PER_CPU: usize = 8;

/// Upper bound on the default number of scan threads.
const MAX_DEFAULT_THREADS: usize = 64;

/// Open-file limit per default scan thread. Each thread keeps its directory and the directories
/// above it open while it works, so the limit also bounds the thread count.
const DESCRIPTORS_PER_THREAD: u64 = 64;

/// Returns the number of scan threads the command line uses by default: 8 per CPU, at most 64,
/// and at most one per 64 descriptors of the soft open-file limit, but never fewer than CPUs.
pub fn default_threads() -> usize {
    use nix::sys::resource::{getrlimit, Resource};

    let cpus = std::thread::available_parallelism().map_or(1, usize::from).min(MAX_DEFAULT_THREADS);
    let by_descriptors = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => usize::try_from(soft / DESCRIPTORS_PER_THREAD).unwrap_or(usize::MAX),
        Err(_) => MAX_DEFAULT_THREADS,
    };

    // Never fewer threads than CPUs, even under a low open-file limit.
    let wanted = (cpus * THREADS_PER_CPU).min(MAX_DEFAULT_THREADS).min(by_descriptors);
    wanted.max(cpus)
}

/// Runs `scan` on the scan pool with the thread count of `options`, or on the caller's pool for
/// 0. Pools are built once per thread count and kept, because a watch scans each changed path
/// on its own.
fn in_pool(options: &ScanOptions, scan: impl FnOnce() -> Scan + Send) -> Result<Scan, IntegrityError> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());

    // NOTE: the Lambda extension scans on the caller's pool. With a 16-thread scan pool, its
    // init check's events went missing from the invoke spans in some emulator runs (cause unknown).
    if options.threads == 0 {
        return Ok(scan());
    }
    let threads = options.threads;
    let pool = {
        let mut pools = POOLS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match pools.iter().find(|(count, _)| *count == threads) {
            Some((_, pool)) => Arc::clone(pool),
            None => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|index| format!("scan-{index}"))
                    .build()
                    .map_err(|error| IntegrityError::ThreadPool { threads, reason: error.to_string() })?;
                let pool = Arc::new(pool);
                pools.push((threads, Arc::clone(&pool)));
                pool
            }
        }
    };
    Ok(pool.install(scan))
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
    /// Every outcome, in the order the workers produced it. Entries go into one shared vector,
    /// which is sorted in place at the end, so each entry is moved once.
    sink: Mutex<Scan>,
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
    let walker = Walker::new(scope, options, reuse)?;

    in_pool(options, || {
        scope.roots.par_iter().for_each(|root| walker.visit_root(root));
        walker.finish()
    })
}

/// Records the entries at the given paths: each path alone, or with everything below it when
/// its flag is set. Paths must lie in the scope's roots; missing paths have no entries.
pub(crate) fn scan_paths(
    scope: &Scope,
    options: &ScanOptions,
    paths: &[(PathBuf, bool)],
) -> Result<Scan, IntegrityError> {
    let walker = Walker::new(scope, options, None)?;
    in_pool(options, || {
        paths.par_iter().filter(|(path, _)| scope.contains(path) && !walker.is_excluded(path)).for_each(
            |(path, recursive)| {
                let physical = under_prefix(options.prefix.as_deref(), path);
                match std::fs::symlink_metadata(&physical) {
                    Ok(metadata) if *recursive => walker.visit(path.clone(), physical, metadata, None),
                    Ok(metadata) => walker.push(walker.record(path.clone(), Source::Path(&physical), &metadata)),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => walker.push_error(EntryError { path: path.clone(), operation: "lstat", error }),
                }
            },
        );
        walker.finish()
    })
}

impl<'a> Walker<'a> {
    fn new(
        scope: &'a Scope,
        options: &'a ScanOptions,
        reuse: Option<&'a ReuseMap<'a>>,
    ) -> Result<Self, IntegrityError> {
        Ok(Self {
            scope,
            exclude: scope.exclude_set()?,
            options,
            mounts: MountTable::read(),
            reuse,
            sink: Mutex::new(Scan::default()),
        })
    }

    /// Returns the scan with its entries sorted by path.
    fn finish(self) -> Scan {
        let mut scan = self.sink.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        scan.entries.par_sort_unstable_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        scan.changed_while_reading.sort();
        scan
    }

    fn push(&self, recorded: Result<(Entry, Flags), EntryError>) {
        let mut scan = self.sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match recorded {
            Ok((entry, flags)) => {
                if flags.changed_while_reading {
                    scan.changed_while_reading.push(entry.path.clone());
                }
                scan.files_hashed += u64::from(flags.hashed);
                scan.digests_reused += u64::from(flags.reused);
                scan.bytes_hashed += flags.bytes;
                scan.entries.push(entry);
            }
            Err(error) => scan.errors.push(error),
        }
    }

    fn push_error(&self, error: EntryError) {
        self.push(Err(error));
    }

    /// Returns whether `path` or a directory above it (inside its root) matches an exclude glob.
    fn is_excluded(&self, path: &Path) -> bool {
        path.ancestors()
            .take_while(|ancestor| self.scope.contains(ancestor))
            .any(|ancestor| self.exclude.is_match(ancestor))
    }

    fn visit_root(&self, root: &Path) {
        let physical = under_prefix(self.options.prefix.as_deref(), root);
        match std::fs::symlink_metadata(&physical) {
            Ok(metadata) => self.visit(root.to_owned(), physical, metadata, None),
            // A missing root has no entries: verification reports what it had as removed.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => self.push_error(EntryError { path: root.to_owned(), operation: "lstat", error }),
        }
    }

    /// Records one entry and, for a directory, everything below it.
    fn visit(&self, path: PathBuf, physical: PathBuf, metadata: Metadata, parent_device: Option<u64>) {
        let (mut entry, flags) = match self.record(path.clone(), Source::Path(&physical), &metadata) {
            Ok(recorded) => recorded,
            Err(error) => return self.push_error(error),
        };
        if entry.kind != EntryKind::Directory {
            return self.push(Ok((entry, flags)));
        }

        if parent_device != Some(entry.device) && !self.options.descend_pseudo {
            if let Some(fs_type) = self.mounts.pseudo_type(&physical, entry.device) {
                entry.note = Some(EntryNote::PseudoFilesystem(fs_type));
                return self.push(Ok((entry, flags)));
            }
        }

        let listing = match Listing::read(&physical) {
            Ok(listing) => listing,
            Err(error) => {
                self.push(Ok((entry, flags)));
                return self.push_error(EntryError { path, operation: "read directory", error });
            }
        };

        let device = entry.device;
        self.push(Ok((entry, flags)));
        let directory = listing.directory.as_fd();
        listing.names.into_par_iter().for_each(|(name, regular)| {
            let child = path.join(&name);
            if self.exclude.is_match(&child) {
                return;
            }
            // A regular file (by its directory entry type) is opened relative to its directory
            // and checked with fstat, so it needs no lstat and no path walk. Anything else is
            // lstat-ed first.
            if regular && self.reuse.is_none() {
                match open_regular_at(directory, &name) {
                    Ok((file, metadata)) => return self.push(self.record(child, Source::Opened(file), &metadata)),
                    Err(HashFailure::Io(_, error)) if error.kind() == io::ErrorKind::NotFound => return,
                    Err(HashFailure::Io(operation, error)) => {
                        return self.push_error(EntryError { path: child, operation, error })
                    }
                    // Replaced by another type since the directory was read.
                    Err(HashFailure::Replaced) => {}
                }
            }
            let child_physical = physical.join(&name);
            match std::fs::symlink_metadata(&child_physical) {
                Ok(metadata) => self.visit(child, child_physical, metadata, Some(device)),
                // Removed since the directory was read: it is simply not there any more.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => self.push_error(EntryError { path: child, operation: "lstat", error }),
            }
        });
    }

    /// Builds the entry for one path from `lstat` metadata, its extended attributes and, for a
    /// regular file, its digest. With [`Source::Opened`], `metadata` is the opened file's `fstat`.
    fn record(&self, path: PathBuf, source: Source<'_>, metadata: &Metadata) -> Result<(Entry, Flags), EntryError> {
        let error = |operation, error| EntryError { path: path.clone(), operation, error };
        let kind = EntryKind::from_mode(metadata.mode())
            .ok_or_else(|| error("recognise the type of", io::Error::from(io::ErrorKind::Unsupported)))?;

        // Only entries found by path can be links or have a previous entry to reuse.
        let mut target = None;
        let mut reused = None;
        let xattrs = match &source {
            Source::Opened(file) => sys::read_xattrs_fd(file.as_fd()),
            Source::Path(physical) => {
                if kind == EntryKind::Symlink {
                    target = Some(std::fs::read_link(physical).map_err(|e| error("read link", e))?);
                }
                // Setting or removing an extended attribute updates ctime, so an unchanged file (see
                // `reusable`) keeps its recorded attributes as well as its digest.
                if kind == EntryKind::File {
                    reused = self.reusable(&path, metadata);
                }
                match reused {
                    Some(previous) => Ok(previous.xattrs.clone()),
                    None => sys::read_xattrs(physical),
                }
            }
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
                let hashed = match source {
                    Source::Opened(file) => hash_open(file, metadata.clone(), self.options.algorithm),
                    Source::Path(physical) => hash_file(physical, &metadata, self.options.algorithm),
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
            path,
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

/// The source [`Walker::record`] reads an entry from.
enum Source<'a> {
    /// The entry's path (under the prefix); a regular file is opened by path.
    Path(&'a Path),
    /// A regular file already opened by [`open_regular_at`].
    Opened(File),
}

/// An open directory and the names in it, each with whether its directory entry reports a
/// regular file.
struct Listing {
    directory: File,
    names: Vec<(OsString, bool)>,
}

impl Listing {
    /// Opens `path` (not following a final symlink) and reads its names; the directory stays
    /// open so that its files can be opened relative to it.
    fn read(path: &Path) -> io::Result<Self> {
        let directory = OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path)?;
        let mut reader = Dir::from_fd(directory.try_clone()?.into()).map_err(io::Error::from)?;

        let mut names = Vec::new();
        for entry in reader.iter() {
            let entry = entry.map_err(io::Error::from)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push((OsStr::from_bytes(name).to_owned(), entry.file_type() == Some(Type::File)));
        }
        Ok(Self { directory, names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..50 {
            std::fs::write(dir.path().join(format!("f{index}")), index.to_string()).unwrap();
        }
        dir
    }

    #[test]
    fn default_threads_exceed_cpus_within_limit() {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);

        assert!(default_threads() >= cpus.min(MAX_DEFAULT_THREADS));
        assert!(default_threads() <= MAX_DEFAULT_THREADS);
    }

    #[test]
    fn scan_gives_same_entries_for_any_thread_count() {
        let dir = tree();
        let scope = Scope::new(vec![dir.path().to_owned()], Vec::new(), Vec::new()).unwrap();

        let single = scan(&scope, &ScanOptions { threads: 1, ..ScanOptions::default() }).unwrap();
        let default = scan(&scope, &ScanOptions::default()).unwrap();

        assert_eq!(single.entries.len(), 51);
        assert_eq!(single.entries, default.entries);
        assert_eq!(default.files_hashed, 50);
    }

    #[test]
    fn large_and_small_files_hash_together() {
        // A large file is hashed with rayon, and while it waits, its thread may take another
        // file's hashing, so both need a read buffer at once.
        let dir = tempfile::tempdir().unwrap();
        for directory in 0..8 {
            let directory = dir.path().join(format!("d{directory}"));
            std::fs::create_dir(&directory).unwrap();
            std::fs::write(directory.join("large"), vec![7u8; 3 << 20]).unwrap();
            for index in 0..200 {
                std::fs::write(directory.join(format!("f{index}")), index.to_string()).unwrap();
            }
        }
        let scope = Scope::new(vec![dir.path().to_owned()], Vec::new(), Vec::new()).unwrap();

        for _ in 0..5 {
            let scan = scan(&scope, &ScanOptions { threads: 8, ..ScanOptions::default() }).unwrap();

            assert!(scan.errors.is_empty(), "{:?}", scan.errors);
            assert_eq!(scan.files_hashed, 8 * 201);
        }
    }
}
