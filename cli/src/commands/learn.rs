//! `palisade learn --out POLICY -- CMD [ARGS...]`: runs a command under palisade-wrap in a
//! learning run and writes the smallest policy that allows what it did.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Args;
use palisade_core::policy;
use palisade_core::supervise::{learn::unexercised_rules, Observations};

/// Exit status when the learning run could not happen or its policy could not be written.
const EXIT_FAILED: u8 = 1;

/// How long the supervisor gets to write its observations after the command exits.
const OBSERVATIONS_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Where to write the learned policy.
    #[arg(long, value_name = "POLICY")]
    out: PathBuf,
    /// The policy's metadata.name; defaults to the command's file name.
    #[arg(long)]
    name: Option<String>,
    /// An existing policy: list its rules that the run never exercised.
    #[arg(long, value_name = "POLICY")]
    against: Option<PathBuf>,
    /// JSON-lines events of an egress proxy that ran in audit mode during the command: the host
    /// names in its `palisade.egress.decision` events become egress rules.
    #[arg(long, value_name = "FILE")]
    egress_events: Option<PathBuf>,
    /// The palisade-wrap binary; defaults to the one beside this program, then PATH.
    #[arg(long, value_name = "PATH")]
    wrap: Option<PathBuf>,
    /// The command to learn, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn run(args: LearnArgs) -> ExitCode {
    match learn(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("palisade learn: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn learn(args: &LearnArgs) -> Result<ExitCode, String> {
    let workdir = tempdir()?;
    let audit_policy = workdir.join("learning.yaml");
    let observations_path = workdir.join("observations.json");
    std::fs::write(&audit_policy, LEARNING_POLICY).map_err(|error| format!("{}: {error}", audit_policy.display()))?;

    // The command runs under palisade-wrap; the supervisor writes what it saw once it exits.
    let wrap = wrap_binary(args.wrap.as_deref())?;
    let status = Command::new(&wrap)
        .arg("--policy")
        .arg(&audit_policy)
        .arg("--learn")
        .arg(&observations_path)
        .arg("--")
        .args(&args.command)
        .status()
        .map_err(|error| format!("cannot run {}: {error}", wrap.display()))?;
    let mut observations = wait_for_observations(&observations_path)?;
    if let Some(path) = &args.egress_events {
        let events =
            std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        if observations.add_egress_events(&events) == 0 {
            println!("note: {} holds no palisade.egress.decision events", path.display());
        }
    }
    let _ = std::fs::remove_dir_all(&workdir);

    let command: Vec<String> = args.command.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    let name = args.name.clone().unwrap_or_else(|| default_name(&command[0]));
    let learned =
        observations.to_policy(&name, &command).map_err(|error| format!("the learned policy is invalid: {error}"))?;
    std::fs::write(&args.out, &learned.yaml)
        .map_err(|error| format!("cannot write {}: {error}", args.out.display()))?;

    let rules = &learned.rules;
    println!(
        "wrote {}: {} system calls, {} executables, {} read rules, {} write rules, {} destination ports, {} host patterns",
        args.out.display(),
        rules.syscalls.len(),
        rules.execute.len(),
        rules.read.len(),
        rules.write.len(),
        rules.destinations.len(),
        rules.hosts.values().map(BTreeSet::len).sum::<usize>()
    );
    if !status.success() {
        println!("note: the command exited with {status}; the policy covers only what it did before that");
    }

    if let Some(existing) = &args.against {
        let loaded = policy::load(existing).map_err(|error| error.to_string())?;
        let stale = unexercised_rules(&loaded.policy, &observations);
        if stale.is_empty() {
            println!("every rule of {} was exercised", existing.display());
        } else {
            println!("rules of {} this run never exercised (candidates for removal):", existing.display());
            for rule in stale {
                println!("  {rule}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Audit mode: nothing is denied, Landlock is not applied, every system call goes to the
/// supervisor (palisade-wrap replaces the allow-list for a learning run).
const LEARNING_POLICY: &str = "\
apiVersion: palisade.dev/v1alpha1
kind: WorkloadPolicy
metadata: {name: learning}
spec:
  mode: audit
  syscalls: {supervise: true}
  network: {unrestrictedTcp: true}
";

fn wait_for_observations(path: &Path) -> Result<Observations, String> {
    let deadline = Instant::now() + OBSERVATIONS_TIMEOUT;
    while !path.exists() {
        if Instant::now() > deadline {
            return Err(format!(
                "the supervisor wrote no observations to {} within {}s; is a process the command started still running?",
                path.display(),
                OBSERVATIONS_TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Observations::read_from(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

fn wrap_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let beside = std::env::current_exe().ok().map(|exe| exe.with_file_name("palisade-wrap"));
    if let Some(path) = beside.filter(|path| path.exists()) {
        return Ok(path);
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .map(|directory| directory.join("palisade-wrap"))
        .find(|path| path.exists())
        .ok_or_else(|| "palisade-wrap not found beside palisade or on PATH; pass --wrap PATH".to_owned())
}

fn tempdir() -> Result<PathBuf, String> {
    let base = std::env::temp_dir().join(format!("palisade-learn-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|error| format!("cannot create {}: {error}", base.display()))?;
    Ok(base)
}

fn default_name(program: &str) -> String {
    let name = Path::new(program).file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    if name.is_empty() {
        "learned".to_owned()
    } else {
        format!("{name}-learned")
    }
}
