//! A database of its own for each test, in the throwaway PostgreSQL cluster the test command
//! runs the tests in (`scripts/with-postgres`, which wraps Debian's `pg_virtualenv` and sets
//! `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`). Dropping a [`TestDatabase`] drops its database.
//!
//! Without a cluster the constructor fails and says how to get one: a test of the PostgreSQL
//! store never passes by not running.

use std::fmt;

/// A database made for one test.
pub struct TestDatabase {
    name: String,
    server: Server,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestDatabase({})", self.name)
    }
}

#[derive(Clone)]
struct Server {
    host: String,
    port: String,
    user: String,
    password: String,
}

impl Server {
    fn from_environment() -> Result<Server, String> {
        let read = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!(
                    "{name} is not set: the PostgreSQL tests run in the cluster scripts/with-postgres starts \
                     (scripts/test does this), e.g. `scripts/with-postgres cargo nextest run`"
                )
            })
        };
        Ok(Server {
            host: read("PGHOST")?,
            port: read("PGPORT")?,
            user: read("PGUSER")?,
            password: read("PGPASSWORD")?,
        })
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://{}:{}@{}:{}/{database}", self.user, self.password, self.host, self.port)
    }

    /// Runs `sql` as the cluster's administrator, on a thread of its own: the client blocks on
    /// a runtime of its own, which a test's tokio runtime does not allow on its thread.
    fn administer(&self, sql: String) -> Result<(), String> {
        let (url, place) = (self.url("postgres"), format!("{}:{}", self.host, self.port));
        std::thread::spawn(move || {
            let mut admin = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|error| format!("connecting to the test cluster at {place}: {error}"))?;
            admin.batch_execute(&sql).map_err(|error| format!("{sql}: {error}"))
        })
        .join()
        .map_err(|_| "the administrator's thread panicked".to_string())?
    }
}

impl TestDatabase {
    /// Creates an empty database with a fresh name.
    pub fn new() -> Result<TestDatabase, String> {
        let server = Server::from_environment()?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|error| error.to_string())?;
        let name = format!("cordon_test_{}", random.iter().map(|byte| format!("{byte:02x}")).collect::<String>());
        server.administer(format!("CREATE DATABASE {name}"))?;
        Ok(TestDatabase { name, server })
    }

    /// The URL a store opens it with (`postgres://user:password@host:port/name`).
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client of its own, for a test to look at or change the tables directly (outside an
    /// async runtime's thread).
    pub fn client(&self) -> Result<postgres::Client, String> {
        postgres::Client::connect(&self.url(), postgres::NoTls).map_err(|error| error.to_string())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // FORCE ends the connections a store under test left open.
        let _ = self.server.administer(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}
