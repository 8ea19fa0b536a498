//! Forking a detached helper process without executing a new program.

#![allow(unsafe_code)]

use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, setsid, ForkResult, Pid};

/// The side of the fork that execution continues on after [`fork_detached`].
#[derive(Debug, PartialEq, Eq)]
pub enum Forked {
    /// The calling process, which must reap the intermediate child.
    Caller(Intermediate),
    /// The detached grandchild: in a new session, its parent gone or about to exit.
    Detached,
}

/// The short-lived child between the caller and the detached process.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "the intermediate child must be reaped, or the caller keeps a zombie child"]
pub struct Intermediate(Pid);

impl Intermediate {
    /// Waits for the intermediate child, which exits as soon as it has forked. Fails when that
    /// child could not start a session or fork again.
    pub fn reap(self) -> Result<(), Errno> {
        match waitpid(self.0, None)? {
            WaitStatus::Exited(_, 0) => Ok(()),
            _ => Err(Errno::ECHILD),
        }
    }
}

/// Forks twice so that the grandchild runs in its own session and is re-parented away from the
/// caller (to init or the nearest subreaper). The caller reaps the intermediate child when it
/// is ready to, so that the forks overlap with its own work.
///
/// The caller must be single-threaded: after fork only the calling thread exists in the child,
/// and a lock another thread held stays locked there. `thread_count` lets callers check.
pub fn fork_detached() -> Result<Forked, Errno> {
    // SAFETY: the caller guarantees this process has one thread, so the child starts with every
    // lock free and the whole heap consistent, and may run any code.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Caller(Intermediate(child))),
        ForkResult::Child => {
            if setsid().is_err() {
                exit_immediately(1);
            }
            // SAFETY: this child is a copy of a single-threaded process, so it has one thread.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => Ok(Forked::Detached),
                Ok(ForkResult::Parent { .. }) => exit_immediately(0),
                Err(_) => exit_immediately(1),
            }
        }
    }
}

/// Ends this process at once, without running exit handlers or flushing buffers, which belong
/// to the process it was forked from.
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// Closes every descriptor numbered `first` or above. Kernels before 5.9 lack close_range and
/// leave them open.
pub fn close_from(first: RawFd) -> Result<(), Errno> {
    let first = libc::c_uint::try_from(first).map_err(|_| Errno::EBADF)?;
    // SAFETY: close_range takes two numbers and flags and touches no memory of this process.
    let result = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0 as libc::c_uint) };
    match result {
        0 => Ok(()),
        _ => match Errno::last() {
            Errno::ENOSYS => Ok(()),
            errno => Err(errno),
        },
    }
}

/// Returns the number of threads of this process, read from /proc/self/stat.
pub fn thread_count() -> Result<u64, std::io::Error> {
    use std::io::Read;

    // One read: the file is a single short line, and its size shows as 0.
    let mut buffer = [0u8; 1024];
    let length = std::fs::File::open("/proc/self/stat")?.read(&mut buffer)?;
    let stat = String::from_utf8_lossy(&buffer[..length]);
    // The command name in parentheses may contain spaces; fields after it are plain numbers, and
    // num_threads is the 18th of them.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    after_name
        .split_whitespace()
        .nth(17)
        .and_then(|field| field.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no thread count in /proc/self/stat: {stat:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_sees_a_running_thread() {
        let (stop, wait) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || wait.recv().ok());
        assert!(thread_count().unwrap() >= 2);
        stop.send(()).unwrap();
        handle.join().unwrap();
    }
}
