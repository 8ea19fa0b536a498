//! Starting the supervisor as a detached copy of the launcher.
//!
//! The launcher forks twice instead of executing a program: the supervisor then costs two forks
//! rather than two starts of a binary. The grandchild runs in a new session, so terminal signals
//! for the workload's process group do not reach it, and its parent has exited, so the workload
//! never has it as a child.

use std::ffi::CStr;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::prctl::set_name;
use nix::unistd::{chdir, dup2_stdin, dup2_stdout};

use super::{send_listener, HandoffSocket, SuperviseError};
use crate::sys::process::{self, Forked, Intermediate};

/// Exit status of a supervisor that could not set itself up.
const EXIT_SETUP_FAILED: u8 = 70;

/// The supervisor's process name (at most 15 bytes), shown by `ps` and in /proc/PID/comm; its
/// command line stays the launcher's.
pub const SUPERVISOR_NAME: &CStr = c"pal-supervisor";

/// A supervisor that was started and waits for the listener.
#[derive(Debug)]
pub struct Detached {
    socket: OwnedFd,
    intermediate: Intermediate,
}

impl Detached {
    /// Returns the socket the listener goes over; the supervised filter allows sendmsg on it.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Sends the listener to the supervisor and closes the launcher's copy, so that only the
    /// supervisor has it once the command runs. Then reaps the intermediate child.
    pub fn hand_over(self, listener: OwnedFd) -> Result<(), SuperviseError> {
        let sent = send_listener(self.socket.as_fd(), listener.as_fd());
        drop(listener);
        drop(self.socket);

        self.intermediate.reap().map_err(|errno| SuperviseError::Start(format!("intermediate child: {errno}")))?;
        sent
    }

    /// Closes the socket without sending a listener, so the supervisor exits, and reaps the
    /// intermediate child. Used when the plain filter is in force instead.
    pub fn dismiss(self) -> Result<(), SuperviseError> {
        drop(self.socket);
        self.intermediate.reap().map_err(|errno| SuperviseError::Start(format!("intermediate child: {errno}")))
    }
}

/// Starts `serve` in a detached process.
///
/// NOTE: when the launcher is process 1 of its pid namespace (a container's entrypoint), the
/// orphaned supervisor is re-parented to the launcher itself, so the workload has it as a child. `serve` gets the supervisor's end of the socket and
/// returns the supervisor's exit status.
///
/// Must be called while the launcher has one thread, before telemetry starts exporters.
pub fn start_detached(serve: impl FnOnce(BorrowedFd<'_>) -> u8) -> Result<Detached, SuperviseError> {
    let threads = process::thread_count().map_err(|error| SuperviseError::Start(error.to_string()))?;
    if threads != 1 {
        return Err(SuperviseError::Start(format!(
            "the launcher runs {threads} threads, and the supervisor can only be forked from one"
        )));
    }
    let handoff = HandoffSocket::new()?;

    let forked = process::fork_detached().map_err(|errno| SuperviseError::Start(format!("fork: {errno}")))?;
    if let Forked::Caller(intermediate) = forked {
        return Ok(Detached { socket: handoff.launcher, intermediate });
    }

    // The supervisor: the socket on stdin, /dev/null on stdout, stderr kept for events, and
    // every other inherited descriptor closed, so that it keeps none of the workload's files open.
    drop(handoff.launcher);
    let _ = set_name(SUPERVISOR_NAME);
    let status = match isolate(handoff.supervisor) {
        Ok(()) => serve(std::io::stdin().as_fd()),
        Err(message) => {
            eprintln!("palisade-wrap: cannot start the seccomp supervisor: {message}");
            EXIT_SETUP_FAILED
        }
    };
    std::process::exit(i32::from(status))
}

/// Rearranges the supervisor's descriptors and leaves the launcher's working directory.
fn isolate(socket: OwnedFd) -> Result<(), String> {
    let null =
        OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|error| format!("/dev/null: {error}"))?;
    dup2_stdin(&socket).map_err(|errno| format!("dup2: {errno}"))?;
    dup2_stdout(&null).map_err(|errno| format!("dup2: {errno}"))?;
    drop(socket);
    drop(null);

    process::close_from(3).map_err(|errno| format!("close_range: {errno}"))?;
    chdir("/").map_err(|errno| format!("chdir /: {errno}"))
}
