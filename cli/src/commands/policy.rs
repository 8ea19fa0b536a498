//! `palisade policy`: check and explain.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {}

pub fn run(command: PolicyCommand) -> ExitCode {
    match command {}
}
