//! Subcommands, one module each.

mod integrity;
mod policy;

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
}

/// Runs the chosen subcommand and maps its outcome to the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Policy(command) => policy::run(command),
        Command::Integrity(command) => integrity::run(command),
    }
}
