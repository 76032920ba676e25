//! `cordon init`, `serve`, `import`, `token` and `keys`: a data directory's life.

use std::fs::File;
use std::io::{BufReader, Write as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use cordon_gateway::{DataDir, ImportKind, KekHome, SystemClock, TokenRole};
use cordon_server::AppState;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{ImportWhat, KeysCommand, TokenCommand};

pub fn init(dir: &Path, origin: Option<&str>, tls: bool, store: Option<&str>) -> anyhow::Result<()> {
    let data = DataDir::new(dir);
    let made = data.init_with_store(origin, store, Arc::new(SystemClock))?;
    eprintln!("created cordon data directory `{}`", dir.display());
    if let Some(store) = store {
        eprintln!(
            "store and ledger: {} (a further gateway of this deployment runs on a copy of this folder)",
            cordon_store::without_password(store)
        );
    }
    eprintln!("audit ledger verifier key: {}", made.verifier_key);
    if tls {
        self_signed_tls(&data)?;
        eprintln!(
            "HTTPS: a self-signed authority `{}` and a certificate for localhost, 127.0.0.1 and ::1; trust the \
             authority to try it (curl --cacert {} https://127.0.0.1:8080/v1/ledger/checkpoint)",
            data.path(TLS_CA_FILE).display(),
            data.path(TLS_CA_FILE).display()
        );
    }
    eprintln!("admin token (printed on standard output; keep it secret):");
    println!("{}", made.admin_token);
    Ok(())
}

/// `cordon migrate`: the PostgreSQL store's migrations applied.
pub fn migrate(store: &str) -> anyhow::Result<()> {
    let applied = cordon_store::Store::migrate_postgres(store)?;
    if applied.is_empty() {
        eprintln!("{} is up to date", cordon_store::without_password(store));
    } else {
        let versions: Vec<String> = applied.iter().map(ToString::to_string).collect();
        eprintln!("{}: applied migrations {}", cordon_store::without_password(store), versions.join(", "));
    }
    Ok(())
}

/// Where `cordon init --tls` puts its authority, certificate and key, inside the directory.
const TLS_CA_FILE: &str = "tls/ca.pem";
const TLS_CERT_FILE: &str = "tls/cert.pem";
const TLS_KEY_FILE: &str = "tls/key.pem";

/// A self-signed authority (its key discarded once it has signed) and a server certificate
/// for this host's loopback names, valid from yesterday for two years; then
/// `[server] tls_cert` and `tls_key` point at them.
fn self_signed_tls(data: &DataDir) -> anyhow::Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    // Valid from yesterday (a clock a little behind still accepts it) for two years.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
    let yesterday = cordon_incident::iso_time(now_ms - 86_400_000);
    let part = |range: std::ops::Range<usize>| yesterday.get(range).and_then(|text| text.parse::<i32>().ok());
    let (Some(year), Some(month), Some(day)) = (part(0..4), part(5..7), part(8..10)) else {
        bail!("cannot read today's date from the clock ({yesterday})");
    };
    let (month, day) = (u8::try_from(month).unwrap_or(1), u8::try_from(day).unwrap_or(1));
    let validity = |params: &mut CertificateParams| {
        params.not_before = rcgen::date_time_ymd(year, month, day);
        // 29 February has no match two years on.
        params.not_after = rcgen::date_time_ymd(year + 2, month, day.min(28));
    };
    let failed = |error: rcgen::Error| anyhow::anyhow!("cannot make the self-signed certificate: {error}");
    let mut authority = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    authority.distinguished_name.push(DnType::CommonName, "cordon self-signed authority (for trying TLS)");
    authority.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut authority);
    let authority_key = KeyPair::generate().map_err(failed)?;
    let authority_certificate = authority.self_signed(&authority_key).map_err(failed)?;
    let issuer = Issuer::new(authority, authority_key);
    let mut server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])
        .map_err(failed)?;
    server.distinguished_name.push(DnType::CommonName, "cordon");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut server);
    let server_key = KeyPair::generate().map_err(failed)?;
    let server_certificate = server.signed_by(&server_key, &issuer).map_err(failed)?;
    data.write_private(TLS_CA_FILE, authority_certificate.pem().as_bytes())?;
    // The chain: the server's certificate, then the authority's.
    data.write_private(
        TLS_CERT_FILE,
        format!("{}{}", server_certificate.pem(), authority_certificate.pem()).as_bytes(),
    )?;
    data.write_private(TLS_KEY_FILE, server_key.serialize_pem().as_bytes())?;
    // The file as written, without the environment's overrides: they must not become permanent.
    let mut config = cordon_gateway::Config::load_with(&data.path(cordon_gateway::CONFIG_FILE), Vec::new())
        .map_err(anyhow::Error::msg)?;
    config.server.tls_cert = TLS_CERT_FILE.into();
    config.server.tls_key = TLS_KEY_FILE.into();
    data.write_config(&config)?;
    Ok(())
}

/// A configuration as `serve` reads it, with what it names already loaded.
struct Checked {
    config: cordon_gateway::Config,
    /// The certificate and key as a TLS setting, if the configuration names them.
    tls: Option<Arc<rustls::ServerConfig>>,
    outbound: cordon_server::Outbound,
}

/// The directory's configuration as `serve` reads it: the file with the environment's
/// overrides, every value checked, and every file it names present and loading (the
/// certificate with its key, the webhooks' authority, the policies).
fn checked_config(data: &DataDir) -> anyhow::Result<Checked> {
    let config = data.config()?;
    let dir = data.path("");
    let in_file =
        |problem: String| anyhow::anyhow!("`{}`: {problem}", data.path(cordon_gateway::CONFIG_FILE).display());
    config.check_files(&dir).map_err(in_file)?;
    let tls = match config.tls_files(&dir) {
        Some((cert, key)) => Some(cordon_server::tls::server_config(&cert, &key).map_err(in_file)?),
        None => None,
    };
    let outbound = cordon_server::Outbound::new(config.webhook_ca(&dir).as_deref()).map_err(in_file)?;
    data.policy_engine(&config).map_err(|error| in_file(format!("[policy]: {error}")))?;
    Ok(Checked { config, tls, outbound })
}

/// `cordon config check`: the configuration in effect on standard output, or the problem.
pub fn check_config(dir: &Path) -> anyhow::Result<()> {
    let data = DataDir::new(dir);
    let Checked { config, .. } = checked_config(&data)?;
    let overridden =
        cordon_gateway::apply_environment(&mut toml::Table::new(), std::env::vars()).map_err(anyhow::Error::msg)?;
    eprintln!(
        "`{}` is valid{}",
        data.path(cordon_gateway::CONFIG_FILE).display(),
        if overridden.is_empty() {
            String::new()
        } else {
            format!(", with {} set from the environment", overridden.join(", "))
        }
    );
    print!("{}", config.to_toml().map_err(anyhow::Error::msg)?);
    Ok(())
}

pub fn serve(dir: &Path, listen: Option<String>, log_json: bool, insecure_http: bool) -> anyhow::Result<()> {
    init_logging(log_json);
    serve_quietly(dir, listen, std::collections::BTreeMap::new(), insecure_http)
}

/// Serves without setting up logging (the demo sets it up, or leaves it off, itself).
/// Serves `dir`; `demo_sign_in` (label → who) gives a demo's console one-click sign-in.
/// With `[server] tls_cert` and `tls_key` set it speaks HTTPS only; without them it serves
/// plain HTTP on a loopback address, and elsewhere only if `insecure_http`.
pub fn serve_quietly(
    dir: &Path,
    listen: Option<String>,
    demo_sign_in: std::collections::BTreeMap<String, cordon_server::DemoSignIn>,
    insecure_http: bool,
) -> anyhow::Result<()> {
    let data = DataDir::new(dir);
    // Settled before the (slow) opening: a certificate that does not load, or plain HTTP
    // where tokens and revealed values would cross a network, stops here.
    let Checked { config, tls, outbound } = checked_config(&data)?;
    let listen = listen.unwrap_or(config.server.listen.clone());
    if tls.is_none() {
        let resolved: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(listen.as_str())
            .with_context(|| format!("`{listen}` is not an address to listen on"))?
            .collect();
        if !insecure_http && resolved.iter().any(|address| !address.ip().is_loopback()) {
            bail!(
                "refusing to serve plain HTTP on `{listen}`, which is not a loopback address: bearer tokens \
                 and revealed customer data would cross the network in the clear. Set [server] tls_cert and \
                 tls_key in `{}` (`cordon init --tls` makes a self-signed pair to try it), listen on \
                 127.0.0.1, or pass --insecure-http behind a TLS-terminating proxy",
                data.path(cordon_gateway::CONFIG_FILE).display()
            );
        }
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Opening replays the ledger (blocking work), so it happens before the runtime starts.
    let gateway = data.open(Arc::new(SystemClock))?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let state = Arc::new(
            AppState::new(gateway).with_demo_sign_in(demo_sign_in).with_tls(tls.is_some()).with_outbound(outbound),
        );
        let listener =
            tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on `{listen}`"))?;
        let address = listener.local_addr().context("cannot read the listening address")?;
        // The incident commands find the directory in use and come here instead.
        let local = if address.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
        } else {
            address
        };
        data.record_served_at(&format!("{scheme}://{local}"))?;
        eprintln!("cordon serving on {scheme}://{address} (data `{}`); Ctrl-C to stop", dir.display());
        tracing::info!(%address, scheme, "serving");
        let served = match tls {
            Some(tls) => cordon_server::serve_tls(Arc::clone(&state), listener, tls).await,
            None => cordon_server::serve(Arc::clone(&state), listener).await,
        };
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
        KeysCommand::RotateBlindIndexKey { data } => {
            let (customers, entries) = DataDir::new(&data).rotate_blind_index_key(Arc::new(SystemClock))?;
            println!("rotated the blind-index key: {customers} customers, {entries} search entries computed anew");
        }
        KeysCommand::RotateTokenKey { data, revoke_outstanding } => {
            let index = DataDir::new(&data).rotate_token_key(Arc::new(SystemClock), !revoke_outstanding)?;
            println!(
                "rotated the token-signing key (ledger entry {index}); {}",
                if revoke_outstanding {
                    "every earlier token is revoked: issue new ones"
                } else {
                    "earlier tokens keep working until the next rotation"
                }
            );
        }
        KeysCommand::WebhookSecret { data, topic } => {
            println!("{}", DataDir::new(&data).webhook_secret(&topic)?.as_str());
        }
        KeysCommand::Rotate { data, to } => {
            let home = to.map(|to| if to == "hsm" { KekHome::Hsm } else { KekHome::File });
            let rotated = DataDir::new(&data).rotate_kek(Arc::new(SystemClock), home)?;
            println!(
                "rotated the key-encryption key `{}` to `{}`: {} data keys rewrapped",
                rotated.from, rotated.to, rotated.customers
            );
        }
    }
    Ok(())
}
