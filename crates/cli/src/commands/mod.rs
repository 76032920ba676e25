//! One module per subcommand group; each turns parsed arguments into calls on the library
//! crates and prints the result.

mod alert;
mod backup;
mod data;
mod eval;
mod export;
mod incident;
mod log;
mod policy;
mod remote;
mod sim;

use anyhow::Context as _;
use cordon_gateway::{Claims, TokenRole};

use crate::cli::{Arguments, Command, EvalCommand};

/// The identity the analyst's commands (alerts, incidents, exports) act as: the command line
/// is run by whoever holds the data directory.
pub(crate) fn analyst() -> Claims {
    Claims::in_process(TokenRole::Analyst.identity(), TokenRole::Analyst, "cli")
}

/// Runs one gateway call to its end on this thread. The command line has no runtime of its
/// own; the gateway's calls only wait on the ledger's threads.
pub(crate) fn wait<T, E>(call: impl std::future::Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    anyhow::Error: From<E>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().build().context("cannot start a runtime")?;
    Ok(runtime.block_on(call)?)
}

/// An optional time given on the command line as option `--{option}`.
pub(crate) fn option_time(option: &str, text: Option<&str>) -> anyhow::Result<Option<i64>> {
    cordon_incident::parse_optional_time(&format!("--{option}"), text).map_err(anyhow::Error::msg)
}

/// The end of a window given as option `--{option}`: a bare date means the whole day.
pub(crate) fn option_end(option: &str, text: Option<&str>) -> anyhow::Result<Option<i64>> {
    cordon_incident::parse_optional_end(&format!("--{option}"), text).map_err(anyhow::Error::msg)
}

pub fn run(arguments: Arguments) -> anyhow::Result<()> {
    match arguments.command {
        Command::Init { dir, origin, tls, store } => data::init(&dir, origin.as_deref(), tls, store.as_deref()),
        Command::Migrate { store } => data::migrate(&store),
        Command::Serve { data, listen, log_json, insecure_http } => data::serve(&data, listen, log_json, insecure_http),
        Command::Import { kind, file, data } => data::import(kind, &file, &data),
        Command::Token(command) => data::token(command),
        Command::Keys(command) => data::keys(command),
        Command::Policy(command) => policy::run(command),
        Command::Config(crate::cli::ConfigCommand::Check { data }) => data::check_config(&data),
        Command::Backup { data, out } => backup::backup(&data, &out),
        Command::Restore { from, data, kek_file, hsm_module, hsm_token_label, hsm_pin_file } => backup::restore(
            &from,
            &data,
            cordon_gateway::RestoreKeys { kek_file, hsm_module, hsm_token_label, hsm_pin_file },
        ),
        Command::Log(command) => log::run(command),
        Command::Alert(command) => alert::run(command),
        Command::Incident(command) => incident::run(command),
        Command::Export(command) => export::run(command),
        Command::Eval { what: Some(EvalCommand::Attribution { scenarios, samples, json }), .. } => {
            eval::attribution(&scenarios, samples, json)
        }
        Command::Eval { what: None, scenarios, seeds, held_out, json, features } => {
            eval::eval(&scenarios, seeds, held_out, json, features.as_deref())
        }
        Command::Sim { scenario, data, http, token_file, truth, seed, store } => match (data, http, token_file) {
            (Some(data), _, _) => sim::sim(&scenario, &data, seed, store.as_deref()),
            (None, Some(url), Some(token_file)) => sim::sim_over_http(&scenario, &url, &token_file, &truth, seed),
            _ => anyhow::bail!("give --data DIR, or --http URL with --token-file FILE"),
        },
        Command::Demo { dir, scenario, replace, no_serve, listen, store } => {
            sim::demo(dir.as_deref(), scenario.as_deref(), replace, no_serve, &listen, store.as_deref())
        }
    }
}
