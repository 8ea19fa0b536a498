//! `palisade integrity`: baseline, verify and watch.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum IntegrityCommand {}

pub fn run(command: IntegrityCommand) -> ExitCode {
    match command {}
}
