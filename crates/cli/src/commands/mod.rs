//! One module per subcommand group; each turns parsed arguments into calls on the library
//! crates and prints the result.

mod log;

use crate::cli::{Arguments, Command};

pub fn run(arguments: Arguments) -> anyhow::Result<()> {
    match arguments.command {
        Command::Log(command) => log::run(command),
    }
}
