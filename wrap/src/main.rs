//! `palisade-wrap [--policy FILE] [--] CMD [ARGS...]`: confine a command and execute it in place.

#![forbid(unsafe_code)]

mod args;
mod command;
mod error;
mod lambda;
mod launch;
mod supervisor;

use std::process::ExitCode;

fn main() -> ExitCode {
    let invocation = match args::parse(std::env::args_os().skip(1)) {
        Ok(args::Parsed::Run(invocation)) => invocation,
        Ok(args::Parsed::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(args::Parsed::Version) => {
            println!("palisade-wrap {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => return error.report(),
    };

    // On success this does not return: the process becomes the command.
    let error = launch::run(invocation);
    error.report()
}
