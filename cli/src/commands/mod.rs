//! Subcommands, one module each.

mod integrity;
mod learn;
mod policy;
mod policy_diff;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "palisade", version, about = "Palisade workload protection: policies and file integrity")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, summarise and explain workload policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Record and verify file integrity baselines, and watch files for changes.
    #[command(subcommand)]
    Integrity(integrity::IntegrityCommand),
    /// Run a command in a learning run and write the smallest policy that allows what it did.
    Learn(learn::LearnArgs),
}

/// Runs the chosen subcommand and maps its outcome to the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Policy(command) => policy::run(command),
        Command::Integrity(command) => integrity::run(command),
        Command::Learn(args) => learn::run(args),
    }
}
