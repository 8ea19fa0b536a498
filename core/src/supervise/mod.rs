//! The seccomp supervisor: a process outside the workload's sandbox that reads the filter's
//! notification listener, responds to every system call outside the allow-list and reports it.
//!
//! The response depends only on the mode, never on the call's arguments: pointer arguments point
//! into the workload's memory, which can change between a check and the kernel's own read.
//! Enforce mode fails the call with `defaultErrno` (`palisade.syscall.denied`); audit mode lets it
//! continue (`palisade.syscall.audited`); learning lets everything continue and records what the
//! workload did. When the supervisor dies, the kernel fails every call that would have waited for
//! it with ENOSYS, so nothing outside the allow-list becomes allowed.

mod detach;
mod handoff;
pub mod learn;
mod observe;
mod proc;
mod report;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub use self::detach::{start_detached, Detached};
pub use self::handoff::{receive_listener, send_listener, HandoffSocket};
pub use self::learn::{LearnedPolicy, Observations};
use self::report::Reporter;
use crate::policy::{ErrnoName, Mode};
use crate::sys::seccomp::{self as sys, Response};
use crate::telemetry::Telemetry;

/// How often repeated calls are summarised in one event.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("cannot start the seccomp supervisor: {0}")]
    Start(String),

    #[error("cannot pass the seccomp listener to the supervisor: {0}")]
    Handoff(String),

    #[error("cannot read seccomp notifications: {0}")]
    Receive(Errno),

    #[error("cannot send the response to a seccomp notification: {0}")]
    Respond(Errno),

    #[error("cannot write observations to {}: {source}", path.display())]
    WriteObservations { path: PathBuf, source: std::io::Error },
}

/// The supervisor's response to the calls it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Fail every call with this errno and report it as denied.
    Deny(ErrnoName),
    /// Let every call continue and report it as audited.
    Audit,
    /// Let every call continue and record it into observations written to this file.
    Learn(PathBuf),
}

impl Decision {
    pub fn for_mode(mode: Mode, errno: ErrnoName) -> Self {
        match mode {
            Mode::Enforce => Self::Deny(errno),
            Mode::Audit => Self::Audit,
        }
    }
}

/// The policy the supervised workload runs under, for the events.
#[derive(Debug, Clone)]
pub struct Config {
    pub decision: Decision,
    pub policy_name: String,
    pub policy_hash: String,
}

/// Counts of what a supervisor saw, returned when the workload is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub notifications: u64,
    pub events: u64,
}

/// Responds to notifications on `listener` until every process using the filter has exited.
pub fn run(listener: OwnedFd, config: &Config, telemetry: &Telemetry) -> Result<Summary, SuperviseError> {
    let mut reporter = Reporter::new(config, telemetry.clone());
    let mut observations = Observations::default();
    let mut summary = Summary::default();
    // Only the latency of each round trip depends on it, so an older kernel's EINVAL is ignored.
    let _ = sys::prefer_synchronous_wake_up(listener.as_fd());

    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(REPEAT_INTERVAL).unwrap_or(PollTimeout::MAX)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(SuperviseError::Receive(errno)),
        }
        let revents = fds[0].revents().unwrap_or(PollFlags::empty());

        if revents.contains(PollFlags::POLLIN) {
            match sys::receive(listener.as_fd()) {
                Ok(notification) => {
                    summary.notifications += 1;
                    handle(&listener, notification, config, &mut reporter, &mut observations)?;
                }
                // The caller died or was interrupted by a signal; it will call again if it lives.
                Err(Errno::ENOENT | Errno::EINTR) => {}
                Err(errno) => return Err(SuperviseError::Receive(errno)),
            }
        } else if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            break;
        }
        reporter.flush_due(Instant::now());
    }

    reporter.flush_all();
    summary.events = reporter.emitted();
    if let Decision::Learn(path) = &config.decision {
        observations.write(path).map_err(|source| SuperviseError::WriteObservations { path: path.clone(), source })?;
    }
    Ok(summary)
}

fn handle(
    listener: &OwnedFd,
    notification: sys::Notification,
    config: &Config,
    reporter: &mut Reporter,
    observations: &mut Observations,
) -> Result<(), SuperviseError> {
    let response = match &config.decision {
        Decision::Deny(errno) => Response::Fail(errno.number()),
        Decision::Audit | Decision::Learn(_) => Response::Continue,
    };

    // Whatever is read from /proc is trusted only if the call is still pending afterwards: then
    // the thread is still the one that made it, and its pid was not reused.
    if let Decision::Learn(_) = &config.decision {
        let observed = observe::observe(&notification);
        if sys::is_pending(listener.as_fd(), notification.id) {
            observations.record(&notification, observed);
        }
    } else {
        reporter.record(&notification, || {
            let process = proc::ProcessInfo::read(notification.tid);
            process.filter(|_| sys::is_pending(listener.as_fd(), notification.id))
        });
    }

    match sys::respond(listener.as_fd(), notification.id, response) {
        // The caller died or was interrupted while the supervisor looked at it.
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(SuperviseError::Respond(errno)),
    }
}
