//! `cordon init`, `serve`, `import`, `token` and `keys`: a data directory's life.

use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use cordon_gateway::{DataDir, ImportKind, SystemClock, TokenRole};
use cordon_server::AppState;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{ImportWhat, KeysCommand, TokenCommand};

pub fn init(dir: &Path, origin: Option<&str>) -> anyhow::Result<()> {
    let made = DataDir::new(dir).init(origin, Arc::new(SystemClock))?;
    eprintln!("created cordon data directory `{}`", dir.display());
    eprintln!("audit ledger verifier key: {}", made.verifier_key);
    eprintln!("admin token (printed on standard output; keep it secret):");
    println!("{}", made.admin_token);
    Ok(())
}

pub fn serve(dir: &Path, listen: Option<String>, log_json: bool) -> anyhow::Result<()> {
    init_logging(log_json);
    serve_quietly(dir, listen, std::collections::BTreeMap::new())
}

/// Serves without setting up logging (the demo sets it up, or leaves it off, itself).
/// Serves `dir`; `demo_sign_in` (label → who) gives a demo's console one-click sign-in.
pub fn serve_quietly(
    dir: &Path,
    listen: Option<String>,
    demo_sign_in: std::collections::BTreeMap<String, cordon_server::DemoSignIn>,
) -> anyhow::Result<()> {
    let data = DataDir::new(dir);
    let config = data.config()?;
    let listen = listen.unwrap_or(config.server.listen);
    // Opening replays the ledger (blocking work), so it happens before the runtime starts.
    let gateway = data.open(Arc::new(SystemClock))?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let state = Arc::new(AppState::new(gateway).with_demo_sign_in(demo_sign_in));
        let listener =
            tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on `{listen}`"))?;
        let address = listener.local_addr().context("cannot read the listening address")?;
        // The incident commands find the directory in use and come here instead.
        let local = if address.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
        } else {
            address
        };
        data.record_served_at(&format!("http://{local}"))?;
        eprintln!("cordon serving on http://{address} (data `{}`); Ctrl-C to stop", dir.display());
        tracing::info!(%address, "serving");
        let served = cordon_server::serve(Arc::clone(&state), listener).await;
        data.clear_served_at();
        served.context("the server stopped with an error")?;
        // Says what the final checkpoint covers, or that it could not cover everything: a
        // stop on a full disk is not a clean one.
        match state.gateway.close() {
            Ok(size) => {
                eprintln!("cordon stopped; the audit ledger published its final checkpoint ({size} entries)");
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "the final checkpoint does not cover every entry");
                Err(anyhow::anyhow!(
                    "cordon stopped, but the audit ledger could not publish a final checkpoint covering every \
                     entry: {error}. The entries are durable in its write-ahead log; the next start publishes \
                     them once the disk takes writes again"
                ))
            }
        }
    })
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CORDON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal; log files and collectors get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn import(what: ImportWhat, file: &Path, dir: &Path) -> anyhow::Result<()> {
    let kind = match what {
        ImportWhat::Customers => ImportKind::Customers,
        ImportWhat::Agents => ImportKind::Agents,
        ImportWhat::Tickets => ImportKind::Tickets,
    };
    let input = File::open(file).with_context(|| format!("cannot open `{}`", file.display()))?;
    let total = input.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let gateway = DataDir::new(dir).open(Arc::new(SystemClock))?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {elapsed} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("importing {}", kind.name()));
    let report = cordon_gateway::import(&gateway, kind, BufReader::new(input), |bytes| bar.set_position(bytes))?;
    bar.finish_and_clear();
    drop(gateway);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "imported {} {} from `{}`", report.imported, kind.name(), file.display())?;
    if !report.rejected.is_empty() {
        let mut stderr = std::io::stderr().lock();
        for rejected in report.rejected.iter().take(20) {
            writeln!(stderr, "line {}: {}", rejected.line, rejected.reason)?;
        }
        if report.rejected.len() > 20 {
            writeln!(stderr, "... and {} more", report.rejected.len() - 20)?;
        }
        bail!(
            "{} lines of `{}` were not imported (listed above); nothing from them was stored",
            report.rejected.len(),
            file.display()
        );
    }
    Ok(())
}

pub fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Issue { data, customer: Some(customer), .. } => {
            println!("{}", DataDir::new(&data).issue_customer_token(&customer, &SystemClock)?);
        }
        TokenCommand::Issue { data, agent, role, customer: None } => {
            let role = role.map(|role| role.parse::<TokenRole>()).transpose().map_err(anyhow::Error::msg)?;
            if role == Some(TokenRole::Agent) {
                bail!("`--role agent` needs a directory agent: use `--agent ID`");
            }
            let token = DataDir::new(&data).issue_token(agent.as_deref(), role, &SystemClock)?;
            println!("{token}");
        }
    }
    Ok(())
}

pub fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate { data } => {
            let rotated = DataDir::new(&data).rotate_kek(Arc::new(SystemClock))?;
            println!(
                "rotated the key-encryption key `{}` to `{}`: {} data keys rewrapped",
                rotated.from, rotated.to, rotated.customers
            );
        }
    }
    Ok(())
}
