//! The seccomp supervisor: forked by the launcher before anything is applied, detached so that
//! the workload never has it as a child, and handed the filter's listener over a socketpair.
//! The listener waits in the socket until the supervisor reads it.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use palisade_core::policy::LoadedPolicy;
use palisade_core::supervise::{self, Config, Decision};
use palisade_core::telemetry::{Resource, Telemetry};

use crate::error::WrapError;

/// Exit status of a supervisor that failed.
const EXIT_SUPERVISOR: u8 = 70;

/// How long the supervisor waits for its last events to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(2000);

/// A supervisor that was started and waits for the listener.
#[derive(Debug)]
pub struct Supervisor {
    detached: supervise::Detached,
}

impl Supervisor {
    /// Starts the supervisor for this process under `loaded`; `learn` names the observations
    /// file of a learning run. Must run while the launcher has one thread.
    pub fn start(loaded: &LoadedPolicy, learn: Option<&PathBuf>) -> Result<Self, String> {
        let spec = &loaded.policy.spec;
        let decision = match learn {
            Some(path) => Decision::Learn(path.clone()),
            None => Decision::for_mode(spec.mode, spec.syscalls.default_errno),
        };
        let config =
            Config { decision, policy_name: loaded.policy.name().to_owned(), policy_hash: loaded.hash.clone() };
        let workload = std::process::id();

        let detached =
            supervise::start_detached(|socket| serve(socket, &config, workload)).map_err(|error| error.to_string())?;
        Ok(Self { detached })
    }

    /// Returns the socket the listener goes over; the supervised filter allows sendmsg on it.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.detached.socket()
    }

    /// Sends the listener to the supervisor, so that only the supervisor has it once the
    /// command runs.
    pub fn hand_over(self, listener: OwnedFd) -> Result<(), WrapError> {
        self.detached.hand_over(listener).map_err(|error| WrapError::Supervisor(error.to_string()))
    }

    /// Lets the supervisor exit without a listener. Used when the plain filter is in force
    /// instead, or nothing could be applied.
    pub fn dismiss(self) -> Result<(), WrapError> {
        self.detached.dismiss().map_err(|error| WrapError::Supervisor(error.to_string()))
    }
}

/// Runs the supervisor process: receives the listener and responds to its notifications until the
/// workload is gone. Returns the exit status.
fn serve(socket: BorrowedFd<'_>, config: &Config, workload: u32) -> u8 {
    let listener = match supervise::receive_listener(socket) {
        Ok(listener) => listener,
        // The launcher installed the plain filter (or gave up): nothing to supervise.
        Err(_) => return 0,
    };

    let resource = Resource::detect("palisade-wrap");
    let telemetry = Telemetry::from_env(resource.clone(), SHUTDOWN_TIMEOUT)
        .unwrap_or_else(|_| Telemetry::json_lines(resource, std::io::stderr()));

    let outcome = supervise::run(listener, config, &telemetry);
    if let Err(error) = telemetry.shutdown(SHUTDOWN_TIMEOUT) {
        eprintln!("palisade-wrap: seccomp supervisor for pid {workload}: {error}");
    }

    match outcome {
        Ok(_) => 0,
        Err(error) => {
            eprintln!("palisade-wrap: seccomp supervisor for pid {workload}: {error}");
            EXIT_SUPERVISOR
        }
    }
}
