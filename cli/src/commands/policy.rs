//! `palisade policy`: check, explain and diff.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use palisade_core::enforce::landlock::resolve_policy_paths;
use palisade_core::enforce::{Prepared, ResolvedPath, SeccompPlan};
use palisade_core::policy::{self, EgressRule, LoadedPolicy, Policy};

/// Exit status for a policy that does not parse or validate.
const EXIT_INVALID: u8 = 1;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy and summarise what it enforces. Exits 1 when the policy is invalid.
    Check {
        /// The policy file.
        file: PathBuf,
        /// Print the parsed policy as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Show what this kernel can enforce of a policy, and which rules weaken it.
    Explain {
        /// The policy file.
        file: PathBuf,
        /// Print the enforcement report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the policy's seccomp filter as raw BPF (an array of struct sock_filter), as bwrap
    /// --seccomp and other sandboxes load it.
    Compile {
        /// The policy file.
        file: PathBuf,
        /// Where to write the BPF program.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// List the rules NEW adds (+) and removes (-) compared with OLD. Exits 0 when they are the
    /// same, 1 when they differ, 2 when one is invalid.
    Diff {
        /// The policy before.
        old: PathBuf,
        /// The policy after.
        new: PathBuf,
    },
}

pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { file, json } => check(file, json),
        PolicyCommand::Explain { file, json } => explain(file, json),
        PolicyCommand::Compile { file, output } => compile(&file, &output),
        PolicyCommand::Diff { old, new } => diff(&old, &new),
    }
}

fn diff(old: &std::path::Path, new: &std::path::Path) -> ExitCode {
    let (Ok(old), Ok(new)) = (load(old), load(new)) else { return ExitCode::from(2) };
    let changes = super::policy_diff::diff(&old.policy, &new.policy);
    for change in &changes {
        println!("{change}");
    }
    ExitCode::from(u8::from(!changes.is_empty()))
}

fn load(file: &std::path::Path) -> Result<LoadedPolicy, ExitCode> {
    policy::load(file).map_err(|error| {
        eprintln!("palisade: {error}");
        ExitCode::from(EXIT_INVALID)
    })
}

fn check(file: PathBuf, json: bool) -> ExitCode {
    let loaded = match load(&file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };

    // The allow-list is compiled too, because some policies parse but cannot be enforced
    // anywhere (execve denied, for example).
    if let Err(error) = SeccompPlan::build(&loaded.policy.spec.syscalls, loaded.policy.spec.mode) {
        eprintln!("palisade: {}: {error}", file.display());
        return ExitCode::from(EXIT_INVALID);
    }

    if json {
        let document = serde_json::json!({"hash": loaded.hash, "policy": loaded.policy});
        println!("{}", serde_json::to_string_pretty(&document).expect("policies serialise"));
        return ExitCode::SUCCESS;
    }

    print!("{}", summary(&loaded));
    for warning in policy::weakening_rules(&loaded.policy) {
        println!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

/// A human summary of what the policy enforces.
fn summary(loaded: &LoadedPolicy) -> String {
    let policy = &loaded.policy;
    let spec = &policy.spec;
    let list = |items: Vec<String>| if items.is_empty() { "(none)".to_owned() } else { items.join(", ") };
    let mut text = String::new();

    let _ = writeln!(text, "{}: valid policy {:?} ({})", loaded.source.display(), policy.name(), loaded.hash);
    let _ = writeln!(
        text,
        "  mode: {}, enforcement: {}, failure mode: {}",
        policy_name(&spec.mode),
        policy_name(&spec.enforcement),
        policy_name(&spec.failure_mode)
    );
    let _ = writeln!(text, "  execute: {}", list(spec.process.execute.iter().map(ToString::to_string).collect()));
    let _ = writeln!(text, "  read:    {}", list(spec.filesystem.read.iter().map(ToString::to_string).collect()));
    let _ = writeln!(text, "  write:   {}", list(spec.filesystem.write.iter().map(ToString::to_string).collect()));
    let _ = writeln!(
        text,
        "  syscalls: profiles {}; allow {}; deny {}; others fail with {}",
        list(spec.syscalls.profiles.iter().map(|profile| profile.as_str().to_owned()).collect()),
        list(spec.syscalls.allow.iter().map(ToString::to_string).collect()),
        list(spec.syscalls.deny.iter().map(ToString::to_string).collect()),
        spec.syscalls.default_errno
    );
    let _ = writeln!(
        text,
        "  syscall supervision: {}",
        if spec.syscalls.supervise { "on, calls outside the allow-list are reported" } else { "off" }
    );
    if spec.network.unrestricted_tcp {
        let _ = writeln!(text, "  tcp: unrestricted");
    } else {
        let _ = writeln!(
            text,
            "  tcp connect: {}; bind: {}",
            list(spec.network.connect_tcp.iter().map(ToString::to_string).collect()),
            list(spec.network.bind_tcp.iter().map(ToString::to_string).collect())
        );
    }
    let _ = writeln!(
        text,
        "  scoping: abstract unix sockets {}, signals {}",
        on_off(spec.scope.abstract_unix_socket),
        on_off(spec.scope.signal)
    );
    let _ = writeln!(text, "  egress: default {}", policy_name(&spec.egress.default));
    for (list_name, rules) in [("allow", &spec.egress.allow), ("deny", &spec.egress.deny)] {
        for (index, rule) in rules.iter().enumerate() {
            let _ = writeln!(text, "    {list_name} {}: {}", rule.display_id(list_name, index), describe_rule(rule));
        }
    }
    let _ = writeln!(
        text,
        "  integrity: {} (exclude {}), {}",
        list(spec.integrity.paths.iter().map(ToString::to_string).collect()),
        list(spec.integrity.exclude.iter().map(ToString::to_string).collect()),
        policy_name(&spec.integrity.algorithm)
    );
    text
}

/// The spelling of an enumerated value in the policy file, such as `bestEffort`.
fn policy_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}

fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

fn describe_rule(rule: &EgressRule) -> String {
    let mut destinations: Vec<String> = rule.hosts.iter().map(ToString::to_string).collect();
    destinations.extend(rule.cidrs.iter().map(ToString::to_string));
    let ports = if rule.ports.is_empty() {
        "any port".to_owned()
    } else {
        format!("ports {}", rule.ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
    };
    format!("{} on {ports}", destinations.join(", "))
}

fn compile(file: &std::path::Path, output: &std::path::Path) -> ExitCode {
    let loaded = match load(file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let plan = match SeccompPlan::build(&loaded.policy.spec.syscalls, loaded.policy.spec.mode) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("palisade: {}: {error}", file.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };

    let bytes = plan.to_bytes();
    if let Err(error) = std::fs::write(output, &bytes) {
        eprintln!("palisade: cannot write {}: {error}", output.display());
        return ExitCode::FAILURE;
    }
    println!("{}: {} BPF instructions ({} bytes)", output.display(), plan.filter_length(), bytes.len());
    ExitCode::SUCCESS
}

fn explain(file: PathBuf, json: bool) -> ExitCode {
    let loaded = match load(&file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let prepared = match Prepared::new(&loaded.policy) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("palisade: {}: cannot be enforced here: {error}", file.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let report = prepared.report();
    let strict = prepared.check_strict().err();
    let warnings = policy::weakening_rules(&loaded.policy);
    let symlinks = resolve_policy_paths(&loaded.policy.spec);

    if json {
        let document = serde_json::json!({
            "hash": loaded.hash,
            "landlock": {
                "availability": prepared.landlock.availability.describe(),
                "symlinks": symlinks.iter().map(|link| serde_json::json!({
                    "path": link.policy, "resolved": link.resolved,
                })).collect::<Vec<_>>(),
            },
            "report": report,
            "strict_unmet": strict.as_ref().map(ToString::to_string),
            "warnings": warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&document).expect("reports serialise"));
        return ExitCode::SUCCESS;
    }

    print!("{}", explanation(&loaded.policy, &prepared, &report, &symlinks));
    if let Some(error) = strict {
        println!("strict enforcement would refuse to start: {error}");
    }
    for warning in warnings {
        println!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

fn explanation(
    policy: &Policy,
    prepared: &Prepared,
    report: &palisade_core::enforce::Report,
    symlinks: &[ResolvedPath],
) -> String {
    let mut text = String::new();
    let landlock = &prepared.landlock;

    let _ = writeln!(text, "Landlock: {} — {}", landlock.availability.describe(), report.landlock_status);
    if let Some(note) = &report.landlock_note {
        let _ = writeln!(text, "  {note}");
    }
    let _ = writeln!(text, "  rights enforced: {}", join_or_none(&report.rights_enforced));
    let _ =
        writeln!(text, "  rights degraded (not enforceable on this kernel): {}", join_or_none(&report.rights_degraded));
    for missing in &report.paths_missing {
        let _ = writeln!(text, "  missing path, rule left out: {missing}");
    }
    for link in symlinks {
        if let Some(resolved) = &link.resolved {
            let _ = writeln!(
                text,
                "  {} resolves to {}: the rule applies to the target",
                link.policy.display(),
                resolved.display()
            );
        }
    }
    for loader in &report.implicit_execute {
        let _ = writeln!(
            text,
            "  {loader} granted execute: it is the dynamic loader of an allowed executable, and it can map any readable file"
        );
    }

    let _ = writeln!(
        text,
        "seccomp: {} — {} system calls allowed, others fail with {}; filter length {} instructions",
        report.seccomp_status, report.syscalls_allowed, report.default_errno, report.seccomp_filter_length
    );
    if report.seccomp_supervised {
        let _ = writeln!(
            text,
            "  supervised: a supervisor process responds to each call outside the allow-list and reports it"
        );
    }
    if prepared.seccomp.clone_restricted {
        let _ =
            writeln!(text, "  clone is allowed only without namespace flags; clone3 fails so libc falls back to clone");
    }
    let _ = writeln!(text, "policy {} ({} mode)", policy.name(), policy_name(&policy.spec.mode));
    text
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}
