//! A database of its own for each test, in the throwaway PostgreSQL cluster the test command
//! runs the tests in (`scripts/with-postgres`, which wraps Debian's `pg_virtualenv` and sets
//! `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`). Dropping a [`TestDatabase`] drops its database.
//!
//! Without a cluster the constructor fails and says how to get one: a test of the PostgreSQL
//! store never passes by not running.

use std::fmt;

/// The store a suite that runs on either backend runs on this time: `CORDON_TEST_STORE`
/// unset or `sqlite` is the embedded default, `postgres` a [`TestDatabase`] (the test command
/// runs the gateway's and the server's suites once on each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreUnderTest {
    Embedded,
    Postgres,
}

impl StoreUnderTest {
    /// Reads `CORDON_TEST_STORE`; any other value is a mistake in the test command and an
    /// error naming it, so a suite never runs on the wrong store unnoticed.
    pub fn from_environment() -> Result<StoreUnderTest, String> {
        match std::env::var("CORDON_TEST_STORE").as_deref() {
            Err(std::env::VarError::NotPresent) | Ok("sqlite") | Ok("") => Ok(StoreUnderTest::Embedded),
            Ok("postgres") => Ok(StoreUnderTest::Postgres),
            other => Err(format!("CORDON_TEST_STORE is {other:?}: it is `sqlite` (or unset) or `postgres`")),
        }
    }

    /// A fresh database for a test when the suite runs on PostgreSQL.
    pub fn database(self) -> Result<Option<TestDatabase>, String> {
        match self {
            StoreUnderTest::Embedded => Ok(None),
            StoreUnderTest::Postgres => TestDatabase::new().map(Some),
        }
    }
}

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

/// A PostgreSQL server of a test's own, which the test may stop and start again (the shared
/// cluster of the test command must stay up for every other test): Debian's binaries, run as
/// the `postgres` user, on a free loopback port, in a temporary folder; stopped when dropped.
pub struct TestCluster {
    dir: std::path::PathBuf,
    _scratch: tempfile_dir::Scratch,
    bin: std::path::PathBuf,
    port: u16,
    /// With TLS: the CA that signed the server's certificate (PEM).
    tls_root: Option<std::path::PathBuf>,
}

impl fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestCluster(127.0.0.1:{})", self.port)
    }
}

/// A temporary folder the `postgres` user can enter, removed when dropped.
mod tempfile_dir {
    #[derive(Debug)]
    pub struct Scratch(pub std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl TestCluster {
    /// Initialises and starts a cluster whose `cordon` user needs no password.
    pub fn start() -> Result<TestCluster, String> {
        TestCluster::start_with(false)
    }

    /// A cluster that takes connections over TLS only (`hostssl`; any other is rejected), its
    /// certificate (for `localhost` and 127.0.0.1) signed by a CA made for it with Debian's
    /// openssl: [`TestCluster::tls_root`].
    pub fn start_with_tls() -> Result<TestCluster, String> {
        TestCluster::start_with(true)
    }

    /// The CA certificate a TLS cluster's certificate was signed by (PEM).
    pub fn tls_root(&self) -> Option<&std::path::Path> {
        self.tls_root.as_deref()
    }

    fn start_with(tls: bool) -> Result<TestCluster, String> {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|error| {
                format!("PostgreSQL is not installed (/usr/lib/postgresql: {error}); scripts/with-postgres installs it")
            })?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .ok_or("no PostgreSQL version under /usr/lib/postgresql")?;
        let bin = std::path::PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let mut random = [0u8; 6];
        getrandom::fill(&mut random).map_err(|error| error.to_string())?;
        let name: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let scratch = std::env::temp_dir().join(format!("cordon-pg-{name}"));
        std::fs::create_dir(&scratch).map_err(|error| error.to_string())?;
        let scratch = tempfile_dir::Scratch(scratch);
        let dir = scratch.0.join("cluster");
        std::fs::create_dir(&dir).map_err(|error| error.to_string())?;
        run("chown", &["postgres:postgres".as_ref(), dir.as_os_str()])?;
        run("chmod", &["0755".as_ref(), scratch.0.as_os_str()])?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| error.to_string())?
            .port();
        let data = dir.join("data");
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "cordon".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let mut settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nmax_connections = 200\nfsync = on\n",
            dir.display()
        );
        let tls_root = if tls {
            let root = certificates(&scratch.0, &dir)?;
            settings.push_str(&format!(
                "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ));
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .map_err(|error| error.to_string())?;
            Some(root)
        } else {
            None
        };
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, settings.as_bytes()))
            .map_err(|error| error.to_string())?;
        let cluster = TestCluster { dir, _scratch: scratch, bin, port, tls_root };
        cluster.start_again()?;
        Ok(cluster)
    }

    /// `postgres://cordon@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://cordon@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server at once, as a crash or a kill would (`-m immediate`).
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])
    }

    /// Starts the stopped server again (it recovers from its WAL).
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-w", "-t", "60", "-l", &self.dir.join("log").display().to_string()])
    }

    fn pg_ctl(&self, arguments: &[&str]) -> Result<(), String> {
        let data = self.dir.join("data");
        let mut all: Vec<&std::ffi::OsStr> = vec!["-D".as_ref(), data.as_os_str()];
        all.extend(arguments.iter().map(std::ffi::OsStr::new));
        as_postgres(&self.bin.join("pg_ctl"), &all)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn run(program: &str, arguments: &[&std::ffi::OsStr]) -> Result<(), String> {
    let status =
        std::process::Command::new(program).args(arguments).status().map_err(|error| format!("{program}: {error}"))?;
    if status.success() { Ok(()) } else { Err(format!("{program} {arguments:?} failed ({status})")) }
}

/// A CA in `scratch` (its certificate returned) and a server certificate and key it signed in
/// `cluster` (the key the `postgres` user's own, 0600, as the server insists).
fn certificates(scratch: &std::path::Path, cluster: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let at = |name: &str| scratch.join(name).display().to_string();
    let (ca_key, ca, csr, ext) = (at("ca.key"), at("ca.pem"), at("server.csr"), at("server.ext"));
    let key = cluster.join("server.key").display().to_string();
    let certificate = cluster.join("server.pem").display().to_string();
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").map_err(|error| error.to_string())?;
    let openssl = |arguments: &[&str]| {
        let arguments: Vec<&std::ffi::OsStr> = arguments.iter().map(std::ffi::OsStr::new).collect();
        run("openssl", &arguments)
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[&["req", "-x509"][..], &ec, &["-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", "/CN=cordon test CA"]]
            .concat(),
    )?;
    openssl(&[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]].concat())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &certificate,
        "-days",
        "2",
        "-extfile",
        &ext,
    ])?;
    for file in [&key, &certificate] {
        run("chown", &["postgres:postgres".as_ref(), file.as_ref()])?;
    }
    run("chmod", &["0600".as_ref(), key.as_ref()])?;
    Ok(scratch.join("ca.pem"))
}

/// Runs a PostgreSQL program as the `postgres` user (initdb refuses root).
fn as_postgres(program: &std::path::Path, arguments: &[&std::ffi::OsStr]) -> Result<(), String> {
    let output = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(arguments)
        .output()
        .map_err(|error| format!("runuser: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{} failed: {}", program.display(), String::from_utf8_lossy(&output.stderr)))
    }
}
