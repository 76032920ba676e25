//! `cordon`: the gate between an exchange's support staff and its customers' data.
//!
//! `main` only parses arguments and reports errors; each subcommand lives in `commands`.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod commands;

fn main() -> ExitCode {
    let arguments = cli::Arguments::parse();
    match commands::run(arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cordon: {error:#}");
            ExitCode::FAILURE
        }
    }
}
