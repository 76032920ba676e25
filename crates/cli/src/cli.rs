//! The command line: every subcommand and option, with the help text users see.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cordon",
    version,
    about = "The gate between support staff and customer data: masked by default, justified, audited, watched."
)]
pub struct Arguments {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The tamper-evident audit ledger: create, append, prove, verify.
    #[command(subcommand)]
    Log(LogCommand),
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Create a new log and its signing key; prints the verifier key.
    Init {
        /// Folder for the log (must be absent or empty).
        dir: PathBuf,
        /// The log's name in checkpoints, e.g. `audit.exchange.example/support`.
        #[arg(long)]
        origin: String,
    },
    /// Append each line of FILE (or standard input) as one entry; prints the new tree size
    /// once every entry is durable and a checkpoint covering them is published.
    Append {
        dir: PathBuf,
        /// Lines to append; standard input when absent.
        file: Option<PathBuf>,
    },
    /// Print the current signed checkpoint.
    Checkpoint { dir: PathBuf },
    /// Print a C2SP tlog-proof receipt for entry INDEX against the current checkpoint.
    Prove {
        dir: PathBuf,
        #[arg(long)]
        index: u64,
    },
    /// Print the consistency proof from tree size OLD to the current size, one base64 hash a line.
    Consistency {
        dir: PathBuf,
        #[arg(long)]
        old: u64,
    },
    /// Recompute everything from the entries and check the checkpoint's signature; exit 0
    /// with a summary, or non-zero with the first problem.
    Verify {
        dir: PathBuf,
        /// The verifier key (`name+id+key`), or a file holding it.
        #[arg(long)]
        vkey: String,
        /// A checkpoint seen earlier; the log must extend it.
        #[arg(long)]
        trusted: Option<PathBuf>,
    },
}
