//! Reaching a PostgreSQL store: its URL read into a connection's settings, and its
//! migrations applied.

use std::str::FromStr as _;

use crate::db::{Conn, POSTGRES_TIMEOUT, Sql, values};
use crate::schema::POSTGRES_MIGRATIONS;
use crate::store::{StoreError, count_live_customers, db_error};

/// The advisory lock migrations are applied under (any fixed number; "cordon" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_7264_6f6e;

/// Whether `url` names a PostgreSQL store rather than a file.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The settings of a connection to `url`, and the URL as errors name it (without its
/// password). Timeouts are set unless the URL sets them: a gateway must find out within
/// seconds that its database is gone, and fail closed, not wait on the kernel.
pub(crate) fn config(url: &str) -> Result<(Server, String), StoreError> {
    let database = without_password(url);
    if !is_postgres_url(url) {
        return Err(StoreError::Sql {
            database,
            action: "read the store URL",
            message: "a PostgreSQL store URL starts with postgres:// or postgresql://".into(),
        });
    }
    let refused =
        |message: String| StoreError::Sql { database: database.clone(), action: "read the store URL", message };
    let (url, tls) = split_tls(url).map_err(refused)?;
    let tls = tls.map(|root| client_tls(&root)).transpose().map_err(refused)?;
    let mut config = postgres::Config::from_str(&url).map_err(|error| StoreError::Sql {
        database: database.clone(),
        action: "read the store URL",
        message: error.to_string(),
    })?;
    // As libpq does: a URL without a password takes the environment's.
    if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POSTGRES_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(POSTGRES_TIMEOUT);
    }
    config.keepalives(true).keepalives_idle(POSTGRES_TIMEOUT);
    // The server's side too: a session whose gateway was cut off ends within seconds, and
    // with it the advisory locks it held (the integrator's, a helpdesk event's, an alert's),
    // not after the kernel's two hours.
    let server_side = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3";
    let options = match config.get_options() {
        Some(given) => format!("{server_side} {given}"),
        None => server_side.to_string(),
    };
    config.options(&options);
    if config.get_application_name().is_none() {
        config.application_name("cordon");
    }
    if tls.is_some() {
        // Never a fall-back to a connection without TLS.
        config.ssl_mode(postgres::config::SslMode::Require);
    }
    Ok((Server { config, tls }, database))
}

/// How a gateway reaches its database: the connection's settings and, when the URL asks for
/// `sslmode=verify-full`, the TLS that checks the server's certificate.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Server {
    pub(crate) fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            None => self.config.connect(postgres::NoTls),
            Some(tls) => self.config.connect(tls.clone()),
        }
    }
}

/// `url` without its TLS parameters, and the CA file to check the server's certificate
/// against if it asks for TLS. As libpq spells them: `sslmode=verify-full` with
/// `sslrootcert=PATH` (PEM) checks that a CA there signed the server's certificate and that
/// the certificate names the host; `sslmode=disable`, or none, is a connection without TLS
/// (for a database on the same host or a private network). The modes that would not check the
/// certificate, or would fall back to no TLS (`allow`, `prefer`, `require`, `verify-ca`), are
/// refused: on a connection someone on the network can read or answer, the ledger and the
/// directory (who is suspended, which ticket is open) would be theirs to change.
fn split_tls(url: &str) -> Result<(String, Option<String>), String> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), None)) };
    let mut kept = Vec::new();
    let (mut mode, mut root) = (None, None);
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(percent_decoded(value)),
            Some(("sslrootcert", value)) => root = Some(percent_decoded(value)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    match (mode.as_deref(), root) {
        (None | Some("disable"), None) => Ok((url, None)),
        (Some("verify-full"), Some(root)) => Ok((url, Some(root))),
        (Some("verify-full"), None) => {
            Err("sslmode=verify-full needs sslrootcert=PATH: the CA certificate (PEM) that signed the server's".into())
        }
        (None | Some("disable"), Some(_)) => {
            Err("sslrootcert is given without sslmode=verify-full: say which (TLS checked, or none)".into())
        }
        (Some(other), _) => Err(format!(
            "sslmode={other} is not one cordon connects with: use sslmode=verify-full with sslrootcert=PATH (the \
             server's certificate checked, and its name), or sslmode=disable on a host or network no one else reaches"
        )),
    }
}

/// `%XX` escapes decoded (a path in a URL parameter).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = |offset: usize| bytes.get(at + offset).and_then(|byte| char::from(*byte).to_digit(16));
        match (bytes.get(at), hex(1), hex(2)) {
            (Some(b'%'), Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                at += 3;
            }
            (Some(byte), _, _) => {
                out.push(*byte);
                at += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// TLS that trusts only the CA certificates in the PEM file `root`.
fn client_tls(root: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(root)
        .map_err(|error| format!("sslrootcert `{root}` cannot be read: {error}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("sslrootcert `{root}` is not PEM certificates: {error}"))?;
    if certificates.is_empty() {
        return Err(format!("sslrootcert `{root}` holds no certificate"));
    }
    for certificate in certificates {
        roots.add(certificate).map_err(|error| format!("sslrootcert `{root}`: {error}"))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`: what logs and errors show.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // The credentials end at the first `@` (a password may hold a `/`, which must not be
    // taken for the start of the path); the host ends at the next `/`.
    let (credentials, rest) = match rest.split_once('@') {
        Some((credentials, rest)) => (Some(credentials), rest),
        None => (None, rest),
    };
    let (host, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match credentials {
        Some(credentials) => {
            let user = credentials.split_once(':').map_or(credentials, |(user, _)| user);
            format!("{scheme}://{user}@{host}{}", strip_password_parameter(path))
        }
        None => format!("{scheme}://{host}{}", strip_password_parameter(path)),
    }
}

/// The password `url` carries, if any (in its user part or as a `password=` parameter).
pub fn url_password(url: &str) -> Option<String> {
    let (url, _) = split_tls(url).ok()?;
    let config = postgres::Config::from_str(&url).ok()?;
    config.get_password().map(|password| String::from_utf8_lossy(password).into_owned())
}

/// `url` with `password` as its user's password (percent-encoded), replacing any it had.
pub fn with_password(url: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let encoded: String = password
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect();
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or(credentials, |(user, _)| user);
            format!("{scheme}://{user}:{encoded}@{host}{path}")
        }
        None => format!("{scheme}://:{encoded}@{authority}{path}"),
    }
}

/// A `password=` query parameter left out.
fn strip_password_parameter(path: &str) -> String {
    let Some((path, query)) = path.split_once('?') else { return path.to_string() };
    let kept: Vec<&str> = query.split('&').filter(|pair| !pair.starts_with("password=")).collect();
    if kept.is_empty() { path.to_string() } else { format!("{path}?{}", kept.join("&")) }
}

/// Applies the migrations the database lacks, in one transaction, holding an advisory lock
/// meanwhile so gateways started together apply each once (the others wait, then find
/// nothing to do). Refuses a database
/// migrated by a newer cordon. Returns the versions applied now.
pub(crate) fn migrate(config: &Server, database: &str) -> Result<Vec<i64>, StoreError> {
    let mut connection = Conn::postgres(config).map_err(db_error(database, "connect"))?;
    let error = |action| db_error(database, action);
    connection
        .batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .map_err(error("prepare migrations"))?;
    let mut applied = Vec::new();
    let mut transaction = connection.transaction().map_err(error("begin migrations"))?;
    transaction
        .query_row("SELECT pg_advisory_xact_lock(?1)", values![MIGRATION_LOCK], |_| Ok(()))
        .map_err(error("wait for other gateways' migrations"))?;
    let current = transaction
        .query_row("SELECT coalesce(max(version), 0) FROM schema_migrations", values![], |row| row.get::<i64>(0))
        .map_err(error("read the schema version"))?
        .unwrap_or(0);
    let newest = POSTGRES_MIGRATIONS.last().map_or(0, |(version, _, _)| *version);
    if current > newest {
        return Err(StoreError::Corrupt {
            database: database.to_string(),
            reason: format!(
                "schema version {current} is newer than this cordon understands ({newest}): upgrade cordon"
            ),
        });
    }
    for (version, name, sql) in POSTGRES_MIGRATIONS.iter().filter(|(version, _, _)| *version > current) {
        transaction.batch(sql).map_err(error("apply a migration"))?;
        transaction
            .execute("INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)", values![*version, *name])
            .map_err(error("record a migration"))?;
        applied.push(*version);
    }
    count_live_customers(&mut transaction).map_err(error("count customers"))?;
    transaction.commit().map_err(error("commit migrations"))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::without_password;

    #[test]
    fn passwords_never_reach_what_errors_name() {
        let cases = [
            ("postgres://cordon:s3cret@db.internal:5432/cordon", "postgres://cordon@db.internal:5432/cordon"),
            ("postgresql://cordon@db/cordon", "postgresql://cordon@db/cordon"),
            ("postgres://db/cordon?password=s3cret&sslmode=disable", "postgres://db/cordon?sslmode=disable"),
            ("postgres://a:b:c@host", "postgres://a@host"),
            ("postgres://host/db?password=x", "postgres://host/db"),
            ("postgres://u:ab/cd@db/x", "postgres://u@db/x"),
            ("postgres://u:p?q#r@db:5432/x?sslmode=disable", "postgres://u@db:5432/x?sslmode=disable"),
        ];
        for (url, shown) in cases {
            assert_eq!(without_password(url), shown, "{url}");
        }
    }

    #[test]
    fn a_password_from_a_file_goes_into_the_url_encoded() {
        let cases = [
            ("postgres://cordon@db/cordon", "p@ss:w/rd", "postgres://cordon:p%40ss%3Aw%2Frd@db/cordon"),
            (
                "postgres://cordon:old@db:5432/cordon?sslmode=require",
                "new",
                "postgres://cordon:new@db:5432/cordon?sslmode=require",
            ),
        ];
        for (url, password, expected) in cases {
            let with = super::with_password(url, password);
            assert_eq!(with, expected, "{url}");
            assert!(postgres::Config::from_str(&with).is_ok(), "{with} parses");
        }
    }
}
