//! The seccomp supervisor process: started by the launcher before anything is applied, detached
//! so that the workload never has it as a child, handed the filter's listener over a socketpair.
//!
//! The launcher runs `palisade-wrap --supervisor --detach ...`. That process starts
//! `palisade-wrap --supervisor ...` in its own process group and exits at once, so the supervisor
//! is re-parented away from the workload, and terminal signals for the workload's group do not
//! reach it. The socket's far end is the supervisor's stdin. The launcher reaps the detaching
//! process only after it has applied the policy and sent the listener, so that the two processes
//! start while the launcher works. The listener waits in the socket until the supervisor reads it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use palisade_core::policy::{ErrnoName, LoadedPolicy, Mode};
use palisade_core::supervise::{self, Config, Decision, HandoffSocket};
use palisade_core::telemetry::{Resource, Telemetry};

use crate::error::WrapError;

/// The first argument that selects the supervisor.
pub const FLAG: &str = "--supervisor";

/// Exit status of a supervisor that failed.
const EXIT_SUPERVISOR: u8 = 70;

/// The settings passed to the supervisor on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    detach: bool,
    /// The launcher's pid, which the workload keeps; shown by `ps` and used in messages.
    workload: u32,
    decision: String,
    errno: String,
    observations: Option<PathBuf>,
    policy_name: String,
    policy_hash: String,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self {
            detach: false,
            workload: 0,
            decision: String::new(),
            errno: "ENOSYS".to_owned(),
            observations: None,
            policy_name: String::new(),
            policy_hash: String::new(),
        };
        let mut args = args.iter();
        while let Some(key) = args.next() {
            if key == "--detach" {
                options.detach = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{key} needs a value"))?.clone();
            match key.as_str() {
                "--for" => options.workload = value.parse().map_err(|_| format!("invalid pid {value:?}"))?,
                "--decision" => options.decision = value,
                "--errno" => options.errno = value,
                "--observations" => options.observations = Some(PathBuf::from(value)),
                "--policy-name" => options.policy_name = value,
                "--policy-hash" => options.policy_hash = value,
                _ => return Err(format!("unknown supervisor option {key:?}")),
            }
        }
        Ok(options)
    }

    fn to_args(&self) -> Vec<String> {
        let mut args = vec![FLAG.to_owned()];
        if self.detach {
            args.push("--detach".to_owned());
        }
        args.extend(["--for".to_owned(), self.workload.to_string()]);
        args.extend(["--decision".to_owned(), self.decision.clone()]);
        args.extend(["--errno".to_owned(), self.errno.clone()]);
        if let Some(path) = &self.observations {
            args.extend(["--observations".to_owned(), path.display().to_string()]);
        }
        args.extend(["--policy-name".to_owned(), self.policy_name.clone()]);
        args.extend(["--policy-hash".to_owned(), self.policy_hash.clone()]);
        args
    }

    fn decision(&self) -> Result<Decision, String> {
        let errno: ErrnoName = self.errno.parse()?;
        match (self.decision.as_str(), &self.observations) {
            ("deny", _) => Ok(Decision::Deny(errno)),
            ("audit", _) => Ok(Decision::Audit),
            ("learn", Some(path)) => Ok(Decision::Learn(path.clone())),
            (other, _) => Err(format!("invalid supervisor decision {other:?}")),
        }
    }
}

/// A supervisor being started, to be handed the listener.
#[derive(Debug)]
pub struct Supervisor {
    socket: OwnedFd,
    /// The `--detach` process, a child of the launcher until it is reaped.
    detaching: Child,
}

impl Supervisor {
    /// Starts the supervisor for this process under `loaded`; `learn` names the observations
    /// file of a learning run.
    pub fn start(loaded: &LoadedPolicy, learn: Option<&PathBuf>) -> Result<Self, String> {
        let spec = &loaded.policy.spec;
        let decision = match (learn, spec.mode) {
            (Some(_), _) => "learn",
            (None, Mode::Enforce) => "deny",
            (None, Mode::Audit) => "audit",
        };
        let options = Options {
            detach: true,
            workload: std::process::id(),
            decision: decision.to_owned(),
            errno: spec.syscalls.default_errno.name().to_owned(),
            observations: learn.cloned(),
            policy_name: loaded.policy.name().to_owned(),
            policy_hash: loaded.hash.clone(),
        };
        let handoff = HandoffSocket::new().map_err(|error| error.to_string())?;
        let program = std::env::current_exe().map_err(|error| format!("cannot find palisade-wrap itself: {error}"))?;

        let detaching = Command::new(&program)
            .args(options.to_args())
            .stdin(Stdio::from(handoff.supervisor))
            .stdout(Stdio::null())
            .current_dir("/")
            .spawn()
            .map_err(|error| format!("cannot start {}: {error}", program.display()))?;
        Ok(Self { socket: handoff.launcher, detaching })
    }

    /// Returns the socket the listener goes over; the supervised filter allows sendmsg on it.
    pub fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Sends the listener to the supervisor and closes the launcher's copy, so that only the
    /// supervisor holds it once the command runs; then reaps the detaching process.
    pub fn hand_over(mut self, listener: OwnedFd) -> Result<(), WrapError> {
        let sent = supervise::send_listener(self.socket.as_fd(), listener.as_fd());
        drop(listener);
        self.reap()?;
        sent.map_err(|error| WrapError::Supervisor(error.to_string()))
    }

    /// Closes the socket without sending a listener, so the supervisor exits, and reaps the
    /// detaching process. Used when the plain filter is in force instead.
    pub fn dismiss(mut self) -> Result<(), WrapError> {
        self.reap()
    }

    /// Waits for the detaching process, so the command never has it as a child.
    fn reap(&mut self) -> Result<(), WrapError> {
        let status = self.detaching.wait().map_err(|error| WrapError::Supervisor(format!("wait: {error}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(WrapError::Supervisor(format!("the detaching supervisor process exited with {status}")))
        }
    }
}

/// Runs the supervisor side: detaches, or receives the listener on stdin and responds to its
/// notifications.
pub fn run(options: Options) -> ExitCode {
    if options.detach {
        return detach(options);
    }

    let decision = match options.decision() {
        Ok(decision) => decision,
        Err(message) => return failed(&options, &message),
    };
    let listener = match supervise::receive_listener(std::io::stdin().as_fd()) {
        Ok(listener) => listener,
        // The launcher installed the plain filter (or gave up): nothing to supervise.
        Err(_) => return ExitCode::SUCCESS,
    };

    let resource = Resource::detect("palisade-wrap");
    let telemetry = Telemetry::from_env(resource.clone(), Duration::from_millis(2000))
        .unwrap_or_else(|_| Telemetry::json_lines(resource, std::io::stderr()));
    let config =
        Config { decision, policy_name: options.policy_name.clone(), policy_hash: options.policy_hash.clone() };

    let outcome = supervise::run(listener, &config, &telemetry);
    let _ = telemetry.shutdown(Duration::from_millis(2000));
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => failed(&options, &error.to_string()),
    }
}

/// Starts the real supervisor in its own process group and returns, so the launcher's wait ends
/// and the supervisor has no parent in the workload.
fn detach(mut options: Options) -> ExitCode {
    use std::os::unix::process::CommandExt;

    options.detach = false;
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(error) => return failed(&options, &format!("cannot find palisade-wrap itself: {error}")),
    };
    let started = Command::new(program)
        .args(options.to_args())
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn();
    match started {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => failed(&options, &format!("cannot start the supervisor: {error}")),
    }
}

fn failed(options: &Options, message: &str) -> ExitCode {
    eprintln!("palisade-wrap: seccomp supervisor for pid {}: {message}", options.workload);
    ExitCode::from(EXIT_SUPERVISOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip_through_arguments() {
        let options = Options {
            detach: true,
            workload: 42,
            decision: "learn".to_owned(),
            errno: "EPERM".to_owned(),
            observations: Some(PathBuf::from("/tmp/o.json")),
            policy_name: "p".to_owned(),
            policy_hash: "sha256:00".to_owned(),
        };
        let args = options.to_args();
        assert_eq!(args[0], FLAG);
        assert_eq!(Options::parse(&args[1..]).unwrap(), options);
    }
}
