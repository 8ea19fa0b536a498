//! Following changes as they happen: fanotify with filesystem marks where the kernel and
//! privileges allow, inotify directory watches otherwise.
//!
//! Kernel events only name the path to look at. The watcher re-records that path (its whole
//! subtree for a directory that appeared) and compares it with what it recorded before. So a
//! change is reported with the same attributes as [`super::verify`] reports, and duplicate or
//! coalesced kernel events cannot produce duplicate reports. When the kernel queue overflows,
//! the watcher reports [`WatchEvent::CoverageLost`] and compares a full rescan.

mod fanotify;
mod inotify;

use std::collections::{BTreeMap, HashSet};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::entry::{Entry, EntryKind};
use super::scan::{scan, scan_paths, EntryError, ScanOptions};
use super::verify::{compare, Change, ChangeKind};
use super::{IntegrityError, Scope};

/// The kernel interface events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// fanotify filesystem marks: reports the process behind each change; needs `CAP_SYS_ADMIN`.
    Fanotify,
    /// inotify watches on every directory; no process attribution.
    Inotify,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fanotify => "fanotify",
            Self::Inotify => "inotify",
        }
    }
}

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The backend to use; `None` tries fanotify and falls back to inotify.
    pub backend: Option<Backend>,
    pub scan: ScanOptions,
    /// How long to gather further events after the first one before re-recording paths.
    pub settle: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self { backend: None, scan: ScanOptions::default(), settle: Duration::from_millis(50) }
    }
}

/// A process that made a change, as fanotify reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The executable, read from `/proc/PID/exe` when the event is read; `None` when the process
    /// has already exited.
    pub executable: Option<PathBuf>,
}

/// An event reported by a watcher.
#[derive(Debug)]
pub enum WatchEvent {
    /// The initial scan is done and events are being followed.
    Ready {
        backend: Backend,
        entries: usize,
        fallback_reason: Option<String>,
    },
    Changed {
        change: Change,
        process: Option<ProcessInfo>,
    },
    /// The kernel dropped events; a full rescan follows.
    CoverageLost {
        reason: String,
    },
    /// The rescan after lost coverage is done and its changes were reported.
    Rescanned {
        changes: usize,
    },
    /// An entry could not be recorded.
    Error(EntryError),
}

/// A path to re-record, and whether to re-record everything below it.
#[derive(Debug, Default)]
struct Dirty {
    recursive: bool,
    process: Option<ProcessInfo>,
}

/// Events gathered from one read of the kernel queue.
#[derive(Debug, Default)]
struct Batch {
    /// Logical paths to re-record.
    dirty: BTreeMap<PathBuf, Dirty>,
    overflow: bool,
}

impl Batch {
    fn mark(&mut self, path: PathBuf, recursive: bool, process: Option<ProcessInfo>) {
        let dirty = self.dirty.entry(path).or_default();
        dirty.recursive |= recursive;
        if dirty.process.is_none() {
            dirty.process = process;
        }
    }
}

/// An event source: one kernel notification interface.
trait Source {
    fn backend(&self) -> Backend;
    fn fd(&self) -> BorrowedFd<'_>;
    /// Reads every pending event into `batch`.
    fn read(&mut self, batch: &mut Batch) -> Result<(), IntegrityError>;
    /// Starts following a directory (logical path, and the path that reaches it).
    fn add_directory(&mut self, path: &Path, physical: &Path) -> Result<(), IntegrityError>;
}

/// Watches the scope until `stop` is set, passing every event to `sink`.
pub fn watch(
    scope: &Scope,
    options: &WatchOptions,
    stop: &AtomicBool,
    sink: &mut dyn FnMut(WatchEvent),
) -> Result<(), IntegrityError> {
    // Start following events before the initial scan, so nothing between the two is missed.
    let (mut source, fallback_reason) = open_source(scope, options)?;

    let initial = scan(scope, &options.scan)?;
    for error in initial.errors {
        sink(WatchEvent::Error(error));
    }
    let mut state = State::new(initial.entries);
    for path in state.directories() {
        add_directory(source.as_mut(), options, &path, sink);
    }
    sink(WatchEvent::Ready { backend: source.backend(), entries: state.entries.len(), fallback_reason });

    let mut pending = Batch::default();
    while !stop.load(Ordering::Relaxed) {
        if pending.dirty.is_empty() && !wait_readable(source.fd(), Duration::from_millis(100))? {
            continue;
        }

        // Gather events until the settle time passes without more.
        let mut batch = std::mem::take(&mut pending);
        source.read(&mut batch)?;
        let deadline = Instant::now() + options.settle;
        while let Some(remaining) = deadline.checked_duration_since(Instant::now()) {
            if !wait_readable(source.fd(), remaining)? {
                break;
            }
            source.read(&mut batch)?;
        }

        if batch.overflow {
            sink(WatchEvent::CoverageLost {
                reason: format!("the {} event queue overflowed", source.backend().as_str()),
            });
            let changes = rescan(scope, options, &mut state, source.as_mut(), sink)?;
            sink(WatchEvent::Rescanned { changes });
            continue;
        }
        pending = apply(scope, options, &mut state, source.as_mut(), batch, sink)?;
        if !pending.dirty.is_empty() {
            // Files still being written: look again shortly.
            std::thread::sleep(options.settle);
        }
    }
    Ok(())
}

fn open_source(scope: &Scope, options: &WatchOptions) -> Result<(Box<dyn Source>, Option<String>), IntegrityError> {
    match options.backend {
        Some(Backend::Fanotify) => {
            Ok((Box::new(fanotify::FanotifySource::new(scope, options.scan.prefix.as_deref())?), None))
        }
        Some(Backend::Inotify) => Ok((Box::new(inotify::InotifySource::new(options.scan.prefix.clone())?), None)),
        None => match fanotify::FanotifySource::new(scope, options.scan.prefix.as_deref()) {
            Ok(source) => Ok((Box::new(source), None)),
            Err(error) => {
                tracing::info!(%error, "fanotify unavailable, watching with inotify");
                Ok((Box::new(inotify::InotifySource::new(options.scan.prefix.clone())?), Some(error.to_string())))
            }
        },
    }
}

fn add_directory(source: &mut dyn Source, options: &WatchOptions, path: &Path, sink: &mut dyn FnMut(WatchEvent)) {
    let physical = super::scope::under_prefix(options.scan.prefix.as_deref(), path);
    if let Err(error) = source.add_directory(path, &physical) {
        let IntegrityError::WatchAdd { source: error, .. } = error else { return };
        sink(WatchEvent::Error(EntryError { path: path.to_owned(), operation: "watch", error }));
    }
}

fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> Result<bool, IntegrityError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(ready) => Ok(ready > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(errno) => Err(IntegrityError::WatchRead { backend: "poll", source: errno.into() }),
    }
}

/// Re-records the dirty paths, reports the differences and returns the paths to look at again
/// because they changed while being hashed.
fn apply(
    scope: &Scope,
    options: &WatchOptions,
    state: &mut State,
    source: &mut dyn Source,
    batch: Batch,
    sink: &mut dyn FnMut(WatchEvent),
) -> Result<Batch, IntegrityError> {
    // A recursive path covers every dirty path below it.
    let mut paths: Vec<(PathBuf, Dirty)> = Vec::new();
    for (path, dirty) in batch.dirty {
        let covered = paths.iter().any(|(ancestor, d)| d.recursive && path.starts_with(ancestor) && &path != ancestor);
        if !covered {
            paths.push((path, dirty));
        }
    }

    let mut again = Batch::default();
    for (path, mut dirty) in paths {
        let scan = scan_paths(scope, &options.scan, &[(path.clone(), dirty.recursive)])?;
        // A path that is no longer a directory takes its old subtree with it.
        if !dirty.recursive && scan.entries.first().is_none_or(|entry| entry.kind != EntryKind::Directory) {
            dirty.recursive = true;
        }

        let unstable: HashSet<PathBuf> = scan.changed_while_reading.iter().cloned().collect();
        let new_directories: Vec<PathBuf> = scan
            .entries
            .iter()
            .filter(|entry| entry.kind == EntryKind::Directory)
            .map(|entry| entry.path.clone())
            .collect();
        let mut current = scan.entries.clone();
        let old = state.subtree(&path, dirty.recursive);

        let report = compare(&old, scan, false);
        for error in report.errors {
            sink(WatchEvent::Error(error));
        }
        for mut change in report.changes {
            if change.kind == ChangeKind::ChangedWhileReading {
                continue;
            }
            if change.kind == ChangeKind::Added && change.hard_link_of.is_none() {
                change.hard_link_of = current
                    .iter()
                    .find(|entry| entry.path == change.path)
                    .and_then(|entry| state.find_hard_link(entry, &path));
            }
            // A new hard link changes the link count of the original, which inotify does not
            // report. The process that made the link also made that change.
            if let Some(original) = &change.hard_link_of {
                again.mark(original.clone(), false, dirty.process.clone());
            }
            sink(WatchEvent::Changed { change, process: dirty.process.clone() });
        }

        // Keep the old entries of files that changed while being hashed, and look again.
        for unstable_path in &unstable {
            again.mark(unstable_path.clone(), false, dirty.process.clone());
            current.retain(|entry| &entry.path != unstable_path);
            if let Some(previous) = old.iter().find(|entry| &entry.path == unstable_path) {
                current.push(previous.clone());
            }
        }
        state.replace(&path, dirty.recursive, current);
        for directory in new_directories {
            if state.watched.insert(directory.clone()) {
                add_directory(source, options, &directory, sink);
            }
        }
    }
    Ok(again)
}

/// Compares a full rescan with the recorded state, reports the differences and adopts the scan.
fn rescan(
    scope: &Scope,
    options: &WatchOptions,
    state: &mut State,
    source: &mut dyn Source,
    sink: &mut dyn FnMut(WatchEvent),
) -> Result<usize, IntegrityError> {
    let scan = scan(scope, &options.scan)?;
    let entries = scan.entries.clone();
    let old: Vec<Entry> = state.entries.values().cloned().collect();

    let report = compare(&old, scan, false);
    for error in report.errors {
        sink(WatchEvent::Error(error));
    }
    let changes = report.changes.len();
    for change in report.changes {
        sink(WatchEvent::Changed { change, process: None });
    }

    *state = State { entries: State::new(entries).entries, watched: std::mem::take(&mut state.watched) };
    for directory in state.directories() {
        if state.watched.insert(directory.clone()) {
            add_directory(source, options, &directory, sink);
        }
    }
    Ok(changes)
}

/// The recorded entries, keyed by path bytes so a subtree is one contiguous range.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<Vec<u8>, Entry>,
    /// Directories a watch was added for.
    watched: HashSet<PathBuf>,
}

impl State {
    fn new(entries: Vec<Entry>) -> Self {
        let entries = entries.into_iter().map(|entry| (entry.path_bytes().to_vec(), entry)).collect();
        Self { entries, watched: HashSet::new() }
    }

    fn directories(&self) -> Vec<PathBuf> {
        self.entries
            .values()
            .filter(|entry| entry.kind == EntryKind::Directory)
            .map(|entry| entry.path.clone())
            .collect()
    }

    /// Returns the keys of `path` and, when `recursive`, of every entry below it, in path byte order.
    fn subtree_keys(&self, path: &Path, recursive: bool) -> Vec<Vec<u8>> {
        let prefix = path.as_os_str().as_bytes();
        self.entries
            .range(prefix.to_vec()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .filter(|key| key.len() == prefix.len() || (recursive && key.get(prefix.len()) == Some(&b'/')))
            .cloned()
            .collect()
    }

    /// Finds a recorded entry outside `rescanned` that shares `entry`'s device and inode.
    fn find_hard_link(&self, entry: &Entry, rescanned: &Path) -> Option<PathBuf> {
        if entry.kind == EntryKind::Directory || entry.nlink < 2 {
            return None;
        }
        self.entries
            .values()
            .find(|other| {
                other.device == entry.device && other.inode == entry.inode && !other.path.starts_with(rescanned)
            })
            .map(|other| other.path.clone())
    }

    fn subtree(&self, path: &Path, recursive: bool) -> Vec<Entry> {
        self.subtree_keys(path, recursive).iter().map(|key| self.entries[key].clone()).collect()
    }

    fn replace(&mut self, path: &Path, recursive: bool, entries: Vec<Entry>) {
        for key in self.subtree_keys(path, recursive) {
            let removed = self.entries.remove(&key);
            if let Some(entry) = removed.filter(|entry| entry.kind == EntryKind::Directory) {
                self.watched.remove(&entry.path);
            }
        }
        for entry in entries {
            self.entries.insert(entry.path_bytes().to_vec(), entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::entry::Timestamp;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: PathBuf::from(path),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            device: 1,
            inode: 1,
            nlink: 1,
            rdev: 0,
            target: None,
            xattrs: Default::default(),
            digest: None,
            note: None,
        }
    }

    fn state() -> State {
        State::new(vec![
            entry("/r/a", EntryKind::Directory),
            entry("/r/a/x", EntryKind::File),
            entry("/r/a-b", EntryKind::File),
            entry("/r/a/y/z", EntryKind::File),
            entry("/r/ab", EntryKind::File),
        ])
    }

    fn paths(entries: Vec<Entry>) -> Vec<String> {
        entries.into_iter().map(|entry| entry.path.display().to_string()).collect()
    }

    #[test]
    fn subtree_excludes_siblings_sharing_a_prefix() {
        assert_eq!(paths(state().subtree(Path::new("/r/a"), true)), ["/r/a", "/r/a/x", "/r/a/y/z"]);
    }

    #[test]
    fn shallow_subtree_is_the_entry_alone() {
        assert_eq!(paths(state().subtree(Path::new("/r/a"), false)), ["/r/a"]);
    }

    #[test]
    fn replace_swaps_the_subtree() {
        let mut state = state();
        state.replace(Path::new("/r/a"), true, vec![entry("/r/a", EntryKind::File)]);

        let all: Vec<&PathBuf> = state.entries.values().map(|entry| &entry.path).collect();
        assert_eq!(all, [Path::new("/r/a"), Path::new("/r/a-b"), Path::new("/r/ab")]);
    }

    #[test]
    fn batch_mark_keeps_first_process_and_widens_recursion() {
        let mut batch = Batch::default();
        batch.mark(PathBuf::from("/r/a"), false, Some(ProcessInfo { pid: 7, executable: None }));
        batch.mark(PathBuf::from("/r/a"), true, Some(ProcessInfo { pid: 8, executable: None }));

        let dirty = &batch.dirty[Path::new("/r/a")];
        assert!(dirty.recursive);
        assert_eq!(dirty.process.as_ref().map(|process| process.pid), Some(7));
    }
}
