//! The command line: every subcommand and option, with the help text users see.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cordon",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CORDON_COMMIT"), ")"),
    about = "The gate between support staff and customer data: masked by default, justified, audited, watched."
)]
pub struct Arguments {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory: config, keys, database and audit ledger; prints an admin token.
    Init {
        /// Folder to create (absent or empty).
        dir: PathBuf,
        /// The audit ledger's name in its checkpoints.
        #[arg(long)]
        origin: Option<String>,
        /// Keep the store and the ledger in this PostgreSQL database, for several gateways
        /// (`postgres://user@host:5432/db`; the password from `PGPASSWORD`, or in the URL, which
        /// init then moves to a file of its own). Further gateways get a copy of the folder.
        #[arg(long, env = "CORDON_STORE_URL")]
        store: Option<String>,
        /// Also make a self-signed authority and a server certificate for this host
        /// (`tls/ca.pem`, `tls/cert.pem`, `tls/key.pem`) and serve HTTPS with them: for trying
        /// TLS out; production uses the exchange's own certificate.
        #[arg(long)]
        tls: bool,
    },
    /// Apply the migrations a PostgreSQL store lacks, in order, and print what was applied
    /// (`cordon serve` applies them at start too; running this first lets an upgrade be
    /// checked before gateways restart).
    Migrate {
        /// The store: `postgres://user@host:5432/db` (the password from `PGPASSWORD` if the
        /// URL has none).
        #[arg(long, env = "CORDON_STORE_URL")]
        store: String,
    },
    /// Serve the HTTP API and the console until SIGINT or SIGTERM: HTTPS with `[server]
    /// tls_cert` and `tls_key`, otherwise plain HTTP on a loopback address only.
    Serve {
        #[arg(long)]
        data: PathBuf,
        /// Address to listen on (default from cordon.toml, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Write logs as JSON lines instead of text.
        #[arg(long)]
        log_json: bool,
        /// Serve plain HTTP on a non-loopback address (only behind a proxy that terminates TLS).
        #[arg(long)]
        insecure_http: bool,
    },
    /// Bulk-load a JSONL file; bad lines are reported with their number and skipped.
    Import {
        kind: ImportWhat,
        file: PathBuf,
        #[arg(long)]
        data: PathBuf,
    },
    /// Bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Detection's alerts, the risk board, and rebuilding detection from the ledger. Opens
    /// the data directory, or, while `cordon serve` holds it, asks the server.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Incident response: open an incident, scope it, attribute a leaked sample, protect and
    /// notify customers, report to the regulator, hand over evidence. Opens the data
    /// directory, or, while `cordon serve` holds it, asks the server; `--data` may come from
    /// CORDON_DATA.
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Exports of the audit record for other tools (identifiers only, never a field value),
    /// read from the published ledger, beside a running server too.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Access policies: validate and test them before applying.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// `cordon.toml`: check it as `serve` would read it (docs/CONFIG.md).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Encryption keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Back a data directory up into a new file, while `cordon serve` runs (it asks the
    /// server, as an administrator) or not: the store and the ledger consistent with one
    /// another, the directory's keys sealed under its key-encryption key, which is not in
    /// the backup (docs/DEPLOY.md). The file is checked whole before it gets its name.
    Backup {
        #[arg(long)]
        data: PathBuf,
        /// The backup file to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore a backup into a new data directory: every file checked against the
    /// backup's manifest, the ledger verified, detection replayed, the restore recorded.
    Restore {
        /// The backup file (`cordon backup --out`).
        #[arg(long)]
        from: PathBuf,
        /// The data directory to make (absent or empty).
        #[arg(long)]
        data: PathBuf,
        /// The key-encryption key's file, for a backup whose KEK is a key file.
        #[arg(long)]
        kek_file: Option<PathBuf>,
        /// For a backup whose KEK is in an HSM: the token's PKCS#11 library (the backup's own
        /// `[hsm] module` is never loaded: it must name this one).
        #[arg(long, requires_all = ["hsm_token_label", "hsm_pin_file"])]
        hsm_module: Option<String>,
        /// The token's label.
        #[arg(long, requires = "hsm_module")]
        hsm_token_label: Option<String>,
        /// The token user's PIN file (copied where the backup's `[hsm] pin_file` says).
        #[arg(long, requires = "hsm_module")]
        hsm_pin_file: Option<PathBuf>,
    },
    /// The tamper-evident audit ledger: create, append, prove, verify.
    #[command(subcommand)]
    Log(LogCommand),
    /// Simulate an exchange's support operation from a scenario file: into a new data
    /// directory in this process, or against a running server over HTTP.
    Sim {
        /// Scenario file (see `scenarios/` and docs/SCENARIOS.md).
        #[arg(long)]
        scenario: PathBuf,
        /// Folder to create (absent or empty).
        #[arg(long, required_unless_present = "http", conflicts_with = "http")]
        data: Option<PathBuf>,
        /// Drive the server at this address (http://HOST:PORT) instead.
        #[arg(long, requires = "token_file")]
        http: Option<String>,
        /// With --http: file holding an admin token for that server (`cordon token issue --role admin`).
        #[arg(long, requires = "http")]
        token_file: Option<PathBuf>,
        /// With --http: where to write the ground truth.
        #[arg(long, requires = "http", default_value = "cordon-sim-truth.json")]
        truth: PathBuf,
        /// Use this seed instead of the scenario's.
        #[arg(long)]
        seed: Option<u64>,
        /// With --data: keep the store and the ledger in this PostgreSQL database (an empty
        /// one), as several gateways do; the ledger is exported into DIR/ledger at the end.
        #[arg(long, conflicts_with = "http")]
        store: Option<String>,
    },
    /// Score detection on scenario files, side by side with no detection and a static
    /// threshold, on the same event streams; `cordon eval attribution` scores attribution.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Eval {
        #[command(subcommand)]
        what: Option<EvalCommand>,
        /// Scenario files (see `scenarios/`).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seeds per scenario: its own, then the next ones.
        #[arg(long, default_value_t = 1)]
        seeds: u32,
        /// Score held-out seeds instead (each scenario's own plus 1,000,003, then the next
        /// ones), which detection's tuning never used: report them apart.
        #[arg(long)]
        held_out: bool,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also write per agent-hour feature rows here, for `bench/isolation_forest.py`.
        #[arg(long)]
        features: Option<PathBuf>,
    },
    /// The whole story out of the box: simulate a Kraken-style insider leak, tell what
    /// happened from the ledger, then serve the API over the result.
    Demo {
        /// Folder for the demo's data (default `./cordon-demo`).
        dir: Option<PathBuf>,
        /// Scenario file (default: the built-in `scenarios/kraken-2026.toml`).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Replace the folder if it holds an earlier demo.
        #[arg(long)]
        replace: bool,
        /// Stop after the story instead of serving.
        #[arg(long)]
        no_serve: bool,
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Keep the store and the ledger in this PostgreSQL database (an empty one), as
        /// several gateways do.
        #[arg(long)]
        store: Option<String>,
    },
}

/// What `cordon eval` scores besides detection.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Play each scenario, then attribute many leaked samples of every kind (one insider's,
    /// two insiders', random customers, rich customers nobody leaked, a busy honest agent's
    /// screens) and count how often the source and how often anyone else is blamed.
    Attribution {
        /// Scenario files (see `scenarios/`).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Samples of each kind.
        #[arg(long, default_value_t = 1000)]
        samples: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Access decisions as Parquet, one row each, for DuckDB, pandas or Spark.
    Parquet {
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Only decisions from this time on (`2026-03-02`, `2026-03-02T14:05Z`, Unix ms).
        #[arg(long)]
        since: Option<String>,
        /// Only decisions up to this time (inclusive; a date alone means the end of that day).
        #[arg(long)]
        until: Option<String>,
    },
    /// Access decisions as OCSF API Activity events (class 6003), one JSON object per line.
    Ocsf {
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        /// File to write (standard output if absent).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only decisions from this time on (`2026-03-02`, `2026-03-02T14:05Z`, Unix ms).
        #[arg(long)]
        since: Option<String>,
        /// Only decisions up to this time (inclusive; a date alone means the end of that day).
        #[arg(long)]
        until: Option<String>,
        /// Where the next ledger index to export is kept: the export starts there and saves
        /// it after each batch is written and flushed (at least once: after a crash, events
        /// since the last save are written again). Needed with --follow.
        #[arg(long)]
        cursor: Option<PathBuf>,
        /// Keep going: export each entry as the ledger publishes it, reading the published
        /// log (also while `cordon serve` runs), until stopped.
        #[arg(long, requires = "cursor")]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Open an incident: a title, the suspect agents and a window; prints its id.
    Open {
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        #[arg(long)]
        title: String,
        /// Suspect agents, comma-separated (default: every agent).
        #[arg(long, value_delimiter = ',')]
        agents: Vec<String>,
        /// Start of the window: `2026-03-02`, `2026-03-02T14:05Z` or Unix milliseconds.
        #[arg(long)]
        since: Option<String>,
        /// End of the window (inclusive), in the same forms; a date alone means the end of that day.
        #[arg(long)]
        until: Option<String>,
        /// When the exchange became aware (the extortion email): the 72-hour clock starts
        /// here. Default: now.
        #[arg(long)]
        aware: Option<String>,
        /// Public-disclosure status: `FIELD=TEXT` for extortion_demand, negotiations,
        /// trading_operations or investigation; repeat for several.
        #[arg(long = "status")]
        status: Vec<String>,
    },
    /// Incidents, newest first.
    List {
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
    },
    /// The console session whose watermark shows CODE (read off a photo of a screen): who
    /// held it, when, and every customer it was shown, from the ledger.
    Watermark {
        code: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        /// Print the answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// An incident's record: suspects, window, disclosure status and timeline.
    Show {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
    },
    /// Update an incident's public-disclosure status (`FIELD=TEXT`, repeatable).
    Status {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        #[arg(long = "set", required = true)]
        set: Vec<String>,
    },
    /// Who was shown what: customers, fields revealed and seen only masked, field classes,
    /// high-balance customers, share of the base, per agent, per day.
    Scope {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        /// Write the affected list as CSV here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Write the whole scope as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Affected customers to print on the terminal.
        #[arg(long, default_value_t = 10)]
        show: usize,
    },
    /// Match a leaked sample (CSV or JSON) to customers and rank agents by how much of it
    /// their accesses explain, with the chance of that by coincidence.
    Attribute {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        #[arg(long)]
        sample: PathBuf,
        /// Write the whole attribution, with evidence entries, as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Agents to print.
        #[arg(long, default_value_t = 10)]
        show: usize,
    },
    /// Protective actions for every affected customer (hold withdrawals to new addresses,
    /// step-up checks on high-risk withdrawals, a scam-warning banner). A dry run unless
    /// --apply; applying twice adds nothing.
    Protect {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        /// Record the actions (ledger entries) and queue them for the exchange's webhook.
        #[arg(long)]
        apply: bool,
    },
    /// One notice per affected customer (text and HTML) in DIR/outbox/notices/ID/.
    Notify {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
    },
    /// The regulator report (GDPR Art. 33(3), the 72-hour clock, a public disclosure summary)
    /// as Markdown and HTML.
    Report {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        /// Folder for report.md and report.html (default DIR/reports/ID).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write an evidence bundle (tar): the entries that showed affected customers to the
    /// suspects, their inclusion proofs, the checkpoint, the verifier key and a README;
    /// `cordon log verify-bundle` checks it offline.
    Evidence {
        id: String,
        #[arg(long, env = "CORDON_DATA")]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Alerts, newest first.
    List {
        #[arg(long)]
        data: PathBuf,
        /// open, dismissed or confirmed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One alert: its signals against their baselines, and the evidence entries.
    Show {
        #[arg(long)]
        data: PathBuf,
        id: u64,
    },
    /// Dismiss an open alert: the agent's risk and any step-up are cleared.
    Dismiss {
        #[arg(long)]
        data: PathBuf,
        id: u64,
        #[arg(long)]
        reason: String,
    },
    /// Confirm an open alert: the agent is suspended.
    Confirm {
        #[arg(long)]
        data: PathBuf,
        id: u64,
        #[arg(long)]
        reason: String,
    },
    /// Agents by risk, highest first.
    Board {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Rebuild detection from the ledger and check it raises exactly the recorded alerts.
    Replay {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ImportWhat {
    Customers,
    Agents,
    Tickets,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed, expiring bearer token for an agent, a role, or a customer.
    Issue {
        #[arg(long)]
        data: PathBuf,
        /// A directory agent; the token carries the agent's role.
        #[arg(long, conflicts_with_all = ["role", "customer"], required_unless_present_any = ["role", "customer"])]
        agent: Option<String>,
        /// A role identity: admin, analyst or service.
        #[arg(long, conflicts_with = "customer")]
        role: Option<String>,
        /// A customer, for their own view of who viewed their data (`/console/`); it opens
        /// nothing else, and lives `[customer_view] token_lifetime_seconds` (an hour).
        #[arg(long)]
        customer: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check that the policies parse, carry ids, and validate against the schema.
    Validate {
        /// Policy file (default: the built-in set from `policies/default.cedar`).
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Schema file (default: the built-in `policies/cordon.cedarschema`).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Run a TOML file of request cases and their expected decisions.
    Test {
        file: PathBuf,
        #[arg(long)]
        policies: Option<PathBuf>,
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// On a deployment of several gateways (a PostgreSQL store), make this folder's rules
    /// (its policies, schema, ticket categories and [detection] settings) the deployment's,
    /// recorded in the ledger; gateways with other rules then refuse to start until given
    /// these. Restart each gateway with them.
    Adopt {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read `cordon.toml` with the environment's overrides, check every value and every file
    /// it names (the certificate and key load as a pair, the webhooks' authority, the
    /// policies compile), and print the configuration in effect; exit non-zero with the first
    /// problem otherwise, the same message `serve` refuses to start with.
    Check {
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key-encryption key and rewrap every customer's data key under it (with the
    /// server stopped); the old key is destroyed. `--to hsm` makes it inside the PKCS#11 token
    /// `[hsm]` names, `--to file` in `keys/`; by default where the current one is.
    Rotate {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_parser = ["file", "hsm"])]
        to: Option<String>,
    },
    /// Replace the blind-index key (with the server stopped): every customer's search entries
    /// are computed anew under a new key and swapped in at once; the old key is removed.
    RotateBlindIndexKey {
        #[arg(long)]
        data: PathBuf,
    },
    /// Replace the token-signing key (with the server stopped). Tokens signed with the key
    /// being replaced keep working until the next rotation, unless --revoke-outstanding (the
    /// key leaked: every token stops at once, and everyone signs in again).
    RotateTokenKey {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        revoke_outstanding: bool,
    },
    /// Print a webhook receiver's secret, for it to check `X-Cordon-Signature`
    /// (docs/DEPLOY.md); made now if the directory has none yet.
    WebhookSecret {
        #[arg(long)]
        data: PathBuf,
        /// Whose secret: the alert receiver's or the protective actions' receiver's.
        #[arg(long, value_parser = ["alert", "protect"])]
        topic: String,
    },
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
    /// Print entries as they are stored (JSON lines for cordon's own entries), from index FROM.
    Entries {
        dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Only entries whose `kind` is this (access, change, alert).
        #[arg(long)]
        kind: Option<String>,
    },
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
    /// Copy the published log of a PostgreSQL store (its checkpoint and every tile it names)
    /// into a new folder in the C2SP layout: every other `cordon log` command, and any tlog
    /// tool, then reads it as it reads a file ledger (`cordon log verify OUT --vkey ...`).
    Export {
        /// The store: `postgres://user@host:5432/db` (the password from `PGPASSWORD` if the
        /// URL has none).
        #[arg(long, env = "CORDON_STORE_URL")]
        store: String,
        /// Folder to write (absent or empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an evidence bundle offline: the checkpoint's signature, every entry's
    /// inclusion proof, the manifest and its seal, and the archive byte for byte.
    VerifyBundle {
        file: PathBuf,
        /// The verifier key to trust (`name+id+key`, or a file holding it); without it the
        /// bundle's own key is used and printed for you to compare.
        #[arg(long)]
        vkey: Option<String>,
    },
}
