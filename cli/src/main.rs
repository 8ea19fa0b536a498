//! `palisade`: the user command line.

#![forbid(unsafe_code)]

mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = commands::Cli::parse();
    commands::run(cli)
}
