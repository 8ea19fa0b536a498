//! inotify: one watch per directory. A file replaced by rename shows up as a move into its
//! directory, so watching directories rather than files keeps following the new file.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

use super::{Backend, Batch, Source};
use crate::integrity::IntegrityError;

#[derive(Debug)]
pub(super) struct InotifySource {
    inotify: Inotify,
    /// The logical directory path of each watch.
    directories: HashMap<WatchDescriptor, PathBuf>,
}

impl InotifySource {
    pub fn new(_prefix: Option<PathBuf>) -> Result<Self, IntegrityError> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|errno| IntegrityError::WatchInit { backend: "inotify", source: errno.into() })?;
        Ok(Self { inotify, directories: HashMap::new() })
    }
}

impl Source for InotifySource {
    fn backend(&self) -> Backend {
        Backend::Inotify
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    fn read(&mut self, batch: &mut Batch) -> Result<(), IntegrityError> {
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(IntegrityError::WatchRead { backend: "inotify", source: errno.into() }),
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    batch.overflow = true;
                    continue;
                }
                if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                    self.directories.remove(&event.wd);
                    continue;
                }
                let Some(directory) = self.directories.get(&event.wd) else { continue };
                match event.name {
                    // An entry in the directory: re-record it with everything below it.
                    Some(name) => batch.mark(directory.join(name), true, None),
                    // The directory itself (attributes, deletion, move).
                    None => batch.mark(directory.clone(), false, None),
                }
            }
        }
    }

    fn add_directory(&mut self, path: &Path, physical: &Path) -> Result<(), IntegrityError> {
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_DONT_FOLLOW
            | AddWatchFlags::IN_ONLYDIR;
        let descriptor = self
            .inotify
            .add_watch(physical, mask)
            .map_err(|errno| IntegrityError::WatchAdd { path: path.to_owned(), source: errno.into() })?;
        self.directories.insert(descriptor, path.to_owned());
        Ok(())
    }
}
