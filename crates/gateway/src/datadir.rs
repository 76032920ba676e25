//! A data directory: `cordon.toml`, `keys/` (mode 0700, files 0600), `cordon.sqlite` and the
//! audit ledger in `ledger/`. Creating one, opening it into a `Gateway`, and rotating its
//! key-encryption key.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cordon_directory::AgentStatus;
use cordon_ledger::{Ledger, LedgerConfig};
use cordon_policy::{CategoryTable, DEFAULT_POLICIES, DEFAULT_SCHEMA, PolicyEngine};
use cordon_store::Store;
use cordon_vault::{BlindIndexKey, Vault};
use zeroize::Zeroizing;

use crate::audit::{AuditLog, LedgerAudit};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::GatewayError;
use crate::kek::{self, KekHome};
use crate::service::{Gateway, random_id};
use crate::token::{TokenKey, TokenRole, issue};

pub const CONFIG_FILE: &str = "cordon.toml";
pub const DATABASE_FILE: &str = "cordon.sqlite";
/// Where a running `cordon serve` writes the address it answers on, for the commands that
/// find the directory in use to reach it instead; removed when it stops.
pub const SERVED_AT_FILE: &str = "served-at";
pub const LEDGER_DIR: &str = "ledger";
pub const KEYS_DIR: &str = "keys";
/// The blind-index key a directory starts with; after a rotation the store's meta names the
/// current one (`blind-<id>`), so the key's name and the index made with it change in one
/// transaction.
const BLIND_INDEX_KEY: &str = "blind-index";
const CURRENT_BLIND: &str = "current_blind_index_key";
const NEXT_BLIND: &str = "next_blind_index_key";
const TOKEN_KEY: &str = "token-signing";
/// The token key before the last rotation, still accepted until the next one.
const PREVIOUS_TOKEN_KEY: &str = "token-signing.previous";
/// The webhooks' signing secret (`X-Cordon-Signature`); a directory made before it existed
/// gets one at its next open.
const WEBHOOK_KEY: &str = "webhook-signing";
const CURRENT_KEK: &str = "kek.current";
const NEXT_KEK: &str = "kek.next";
/// The key a rotation replaces, destroyed at its end (named, so that a rotation cut short
/// after the switch still destroys it when run again).
const RETIRING_KEK: &str = "kek.retiring";
const POLICY_HASH: &str = "policy.sha256";
/// Where `cordon init --store` keeps a password its URL carried.
const STORE_PASSWORD_FILE: &str = "secrets/store-password";

/// Which audit log a gateway opens with: one given (the directory's file ledger, or a test's
/// log), or the ledger sequenced through the PostgreSQL store at this URL.
enum Ledgers {
    Given(Arc<dyn AuditLog>),
    Shared(String),
}

/// Whether opening replays detection's state from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detection {
    Replay,
    NotLoaded,
    /// Not replayed, and on a shared store the rules neither checked against the
    /// deployment's nor recorded as them: for `init` (the rules are recorded when a gateway
    /// first serves, after the operator has edited `cordon.toml`) and for adopting this
    /// folder's rules as the deployment's (they are about to become them).
    RulesUnchecked,
}

/// The store's record of the rules every gateway of a shared deployment runs: a digest of the
/// policies, the schema, the ticket categories and the detection settings.
const DEPLOYMENT_RULES: &str = "deployment_rules";

/// What `init` made.
#[derive(Debug)]
pub struct Initialized {
    pub admin_token: String,
    pub verifier_key: String,
}

/// What a key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub from: String,
    pub to: String,
    pub customers: u64,
}

#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> DataDir {
        DataDir { root: root.to_path_buf() }
    }

    /// Records that a server answers for this directory at `url`.
    pub fn record_served_at(&self, url: &str) -> Result<(), GatewayError> {
        write_private_file(&self.path(SERVED_AT_FILE), format!("{url}\n").as_bytes())
    }

    /// Forgets the address a server recorded (at its stop).
    pub fn clear_served_at(&self) {
        let _ = fs::remove_file(self.path(SERVED_AT_FILE));
    }

    /// The address a server recorded, if one did: meaningful only while the directory is in
    /// use (a server killed outright leaves the file behind).
    pub fn served_at(&self) -> Option<String> {
        let text = fs::read_to_string(self.path(SERVED_AT_FILE)).ok()?;
        let url = text.trim();
        (url.starts_with("http://") || url.starts_with("https://")).then(|| url.to_string())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Writes `bytes` as the file `relative` in this directory, readable by its owner only
    /// (0600), its folder created private (0700) if missing; atomically.
    pub fn write_private(&self, relative: &str, bytes: &[u8]) -> Result<(), GatewayError> {
        let path = self.path(relative);
        if let Some(folder) = path.parent() {
            create_private_dir(folder)?;
        }
        write_private_file(&path, bytes)
    }

    /// The token key, accepting the one before the last rotation too if it was kept.
    fn token_key(&self) -> Result<TokenKey, GatewayError> {
        let bad = |error: crate::token::TokenError| GatewayError::Internal(format!("the token key: {error}"));
        let key = TokenKey::new(&read_key(&self.path(KEYS_DIR).join(TOKEN_KEY))?).map_err(bad)?;
        let previous = self.path(KEYS_DIR).join(PREVIOUS_TOKEN_KEY);
        if previous.exists() { key.with_previous(&read_key(&previous)?).map_err(bad) } else { Ok(key) }
    }

    /// Replaces the token-signing key (the server stopped: this opens the directory). With
    /// `keep_previous`, tokens signed with the key being replaced keep working until the next
    /// rotation (a routine rotation); without, every outstanding token stops at once (the key
    /// leaked). The key before that is dropped either way. The rotation is a ledger entry.
    pub fn rotate_token_key(&self, clock: Arc<dyn Clock>, keep_previous: bool) -> Result<u64, GatewayError> {
        let gateway = self.open(clock)?;
        let keys = self.path(KEYS_DIR);
        let (current, previous, next) =
            (keys.join(TOKEN_KEY), keys.join(PREVIOUS_TOKEN_KEY), keys.join("token-signing.next"));
        if next.exists() {
            fs::remove_file(&next).map_err(io_error(&next))?;
        }
        write_key(&next)?;
        // Each step leaves a current key in place, so a rotation cut short still opens.
        if keep_previous {
            let copied = keys.join("token-signing.previous.new");
            fs::copy(&current, &copied).map_err(io_error(&copied))?;
            fs::rename(&copied, &previous).map_err(io_error(&copied))?;
        } else if previous.exists() {
            fs::remove_file(&previous).map_err(io_error(&previous))?;
        }
        fs::rename(&next, &current).map_err(io_error(&next))?;
        fs::File::open(&keys).and_then(|folder| folder.sync_all()).map_err(io_error(&keys))?;
        // A console session outlives the token that opened it: after a leak, end them all, so
        // no one signed in with a forged token keeps a session.
        let ended =
            if keep_previous { 0 } else { futures_block_on(gateway.end_all_sessions("key-rotated", "rotate"))? };
        let detail = if keep_previous {
            "previous tokens accepted until the next rotation".to_string()
        } else {
            format!("every earlier token revoked; {ended} console sessions ended")
        };
        futures_block_on(gateway.change_entry("cordon", "keys.rotate-token", TOKEN_KEY, Some(detail), "rotate"))
    }

    /// The policies `config` names (the built-in set where it names none), compiled.
    pub fn policy_engine(&self, config: &Config) -> Result<PolicyEngine, GatewayError> {
        let (policies, schema) = self.policy_texts(config)?;
        PolicyEngine::load(&policies, &schema).map_err(|error| GatewayError::BadRequest(error.to_string()))
    }

    /// The policies and the schema `config` names, as text.
    fn policy_texts(&self, config: &Config) -> Result<(String, String), GatewayError> {
        Ok(match (&config.policy.policies, &config.policy.schema) {
            (None, None) => (DEFAULT_POLICIES.to_string(), DEFAULT_SCHEMA.to_string()),
            (policies, schema) => {
                let read = |path: &Option<String>, default| read_text(&self.root, path.as_deref(), default);
                (read(policies, DEFAULT_POLICIES)?, read(schema, DEFAULT_SCHEMA)?)
            }
        })
    }

    /// A digest of what decides and scores a request here: the policies, the schema, the
    /// ticket categories and the detection settings. Gateways sharing a store must agree on
    /// it, or the same request would be allowed by one and refused by another, and their
    /// detectors (each a replay of the one ledger) would raise different alerts.
    pub fn rules_digest(&self, config: &Config) -> Result<String, GatewayError> {
        use sha2::Digest as _;
        let (policies, schema) = self.policy_texts(config)?;
        let settings = |value: Result<String, toml::ser::Error>| {
            value.map_err(|error| GatewayError::Internal(format!("the settings do not serialise: {error}")))
        };
        let mut digest = sha2::Sha256::new();
        for part in [
            policies,
            schema,
            settings(toml::to_string(&config.categories))?,
            settings(toml::to_string(&config.detection))?,
        ] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        Ok(digest.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect())
    }

    /// On a shared store, this folder's rules must be the deployment's: the first gateway's
    /// are recorded, and a gateway whose rules differ does not open.
    fn check_deployment_rules(&self, store: &Store, config: &Config) -> Result<(), GatewayError> {
        let here = self.rules_digest(config)?;
        let recorded = store.meta_or_set(DEPLOYMENT_RULES, &here)?;
        if recorded == here {
            return Ok(());
        }
        Err(GatewayError::Conflict(format!(
            "this gateway's rules (its policies, schema, ticket categories and [detection] settings: digest {here}) \
             are not the deployment's (digest {recorded}), which every gateway on its database runs: copy \
             cordon.toml and the policy files from a gateway of the deployment, or make these the deployment's \
             rules with `cordon policy adopt --data {}` and restart the other gateways with them",
            self.root.display()
        )))
    }

    /// Makes this folder's rules the deployment's on its shared store, recorded in the ledger
    /// (`rules.adopt`, naming the digests before and after); gateways with other rules then
    /// refuse to open until given these. Returns (before, after).
    pub fn adopt_rules(&self, clock: Arc<dyn Clock>) -> Result<(Option<String>, String), GatewayError> {
        let config = self.config()?;
        if self.store_url(&config)?.is_none() {
            return Err(GatewayError::BadRequest(
                "this deployment's store is the embedded one, where one gateway runs: its rules are its own".into(),
            ));
        }
        let gateway = self.open_ledger(clock, Detection::RulesUnchecked)?;
        let here = self.rules_digest(&config)?;
        let before = gateway.store.meta(DEPLOYMENT_RULES)?;
        let detail = format!("from {} to {here}", before.as_deref().unwrap_or("none"));
        futures_block_on(gateway.change_entry("cordon", "rules.adopt", &here, Some(detail), "adopt"))?;
        gateway.store.set_meta(DEPLOYMENT_RULES, &here)?;
        gateway.close()?;
        Ok((before, here))
    }

    /// The webhooks' signing key (`keys/webhook-signing`), made now if this directory has
    /// none yet. Receivers never get it: each topic's receiver gets its own secret derived
    /// from it ([`DataDir::webhook_secret`]).
    fn webhook_key(&self) -> Result<hmac::Hmac<sha2::Sha256>, GatewayError> {
        let path = self.path(KEYS_DIR).join(WEBHOOK_KEY);
        if !path.exists() {
            match write_key(&path) {
                // Another process made it first: read theirs.
                Err(_) if path.exists() => {}
                made => made?,
            }
        }
        <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&read_key(&path)?)
            .map_err(|error| GatewayError::Internal(format!("the webhook key: {error}")))
    }

    /// The secret the receiver of `topic` (`alert` or `protect`) checks `X-Cordon-Signature`
    /// with, as it is given it (64 hex characters; the HMAC key is this text).
    pub fn webhook_secret(&self, topic: &str) -> Result<Zeroizing<String>, GatewayError> {
        if !matches!(topic, "alert" | "protect") {
            return Err(GatewayError::BadRequest(format!("`{topic}` is not a webhook topic: use alert or protect")));
        }
        Ok(crate::service::topic_secret(&self.webhook_key()?, topic))
    }

    /// Checks `config` and writes it as this directory's `cordon.toml` (0600).
    pub fn write_config(&self, config: &Config) -> Result<(), GatewayError> {
        config.check().map_err(GatewayError::BadRequest)?;
        let text = config.to_toml().map_err(GatewayError::Internal)?;
        write_private_file(&self.path(CONFIG_FILE), text.as_bytes())
    }

    /// Creates a data directory in `root` (absent or empty) and returns an admin token.
    pub fn init(&self, origin: Option<&str>, clock: Arc<dyn Clock>) -> Result<Initialized, GatewayError> {
        self.init_with_store(origin, None, clock)
    }

    /// Creates a data directory in `root` (absent or empty) with its keys and configuration,
    /// and its store and ledger: in the directory (SQLite and the file ledger), or with
    /// `store_url` in that PostgreSQL database, which must not belong to another deployment
    /// yet (more gateways of one deployment get a copy of this directory). Returns an admin
    /// token.
    pub fn init_with_store(
        &self,
        origin: Option<&str>,
        store_url: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Initialized, GatewayError> {
        if self.root.exists() && fs::read_dir(&self.root).map_err(io_error(&self.root))?.next().is_some() {
            return Err(GatewayError::Conflict(format!(
                "`{}` exists and is not empty; cordon init needs a new folder",
                self.root.display()
            )));
        }
        let mut config = Config::default();
        if let Some(origin) = origin {
            config.ledger.origin = origin.to_string();
        }
        if let Some(url) = store_url {
            // `cordon.toml` keeps the URL without its password; a password given in it goes
            // to a file of its own, readable by its owner only.
            config.store.url = cordon_store::without_password(url);
            config.check().map_err(GatewayError::BadRequest)?;
        }
        // A database another deployment uses is refused before anything is made.
        let store = match store_url {
            Some(url) => {
                let store = Store::open_postgres(url)?;
                if let Some(kek) = store.meta(CURRENT_KEK)? {
                    return Err(GatewayError::Conflict(format!(
                        "the database `{}` already holds a cordon deployment (its key-encryption key is `{kek}`); \
                         a further gateway of that deployment gets a copy of its data directory (docs/DEPLOY.md)",
                        store.name()
                    )));
                }
                Some(store)
            }
            None => None,
        };
        create_private_dir(&self.root)?;
        if let Some(password) = store_url.and_then(cordon_store::url_password) {
            self.write_private(STORE_PASSWORD_FILE, password.as_bytes())?;
            config.store.password_file = STORE_PASSWORD_FILE.to_string();
        }
        let keys = self.path(KEYS_DIR);
        fs::DirBuilder::new().mode(0o700).create(&keys).map_err(io_error(&keys))?;
        let kek_id = format!("kek-{}", random_id()?);
        write_key(&keys.join(&kek_id))?;
        write_key(&keys.join(BLIND_INDEX_KEY))?;
        write_key(&keys.join(TOKEN_KEY))?;
        write_key(&keys.join(WEBHOOK_KEY))?;
        let (store, verifier) = match store {
            Some(store) => {
                let kek = kek::load(&self.root, &config.hsm, &kek_id)?;
                let verifier = crate::shared_audit::create_key(
                    store_url.unwrap_or_default(),
                    &config.ledger.origin,
                    kek.as_ref(),
                )?;
                (store, verifier)
            }
            None => {
                let verifier = Ledger::create(&self.path(LEDGER_DIR), &config.ledger.origin)
                    .map_err(|error| GatewayError::Internal(error.to_string()))?
                    .to_string();
                (Store::open(&self.path(DATABASE_FILE))?, verifier)
            }
        };
        store.set_meta(CURRENT_KEK, &kek_id)?;
        drop(store);
        self.write_config(&config)?;
        let gateway = self.open_ledger(clock, Detection::RulesUnchecked)?;
        let admin_token = gateway.issue_role_token(TokenRole::Admin)?;
        Ok(Initialized { admin_token, verifier_key: verifier })
    }

    /// Opens the directory with its own audit ledger, replaying detection's state from it.
    pub fn open(&self, clock: Arc<dyn Clock>) -> Result<Gateway, GatewayError> {
        self.open_ledger(clock, Detection::Replay)
    }

    /// Opens the directory for the analyst's commands over the record (incidents, exports):
    /// detection's state is not replayed from the ledger, which at ten million entries takes
    /// minutes, and the handle refuses access requests (search, view, reveal, verify,
    /// approve) because detection could not score them. Everything it writes is still a
    /// ledger entry.
    pub fn open_for_analysis(&self, clock: Arc<dyn Clock>) -> Result<Gateway, GatewayError> {
        self.open_ledger(clock, Detection::NotLoaded)
    }

    fn open_ledger(&self, clock: Arc<dyn Clock>, detection: Detection) -> Result<Gateway, GatewayError> {
        let config = self.config()?;
        if let Some(url) = self.store_url(&config)? {
            return self.open_with(config, Ledgers::Shared(url), clock, detection);
        }
        let ledger = Ledger::open(
            &self.path(LEDGER_DIR),
            LedgerConfig {
                checkpoint_interval_ms: config.ledger.checkpoint_interval_ms,
                batch_delay_ms_max: config.ledger.batch_delay_ms_max,
                ..LedgerConfig::default()
            },
        )
        .map_err(|error| match error {
            // Not a fault: another process (most often `cordon serve`) has it open.
            cordon_ledger::LedgerError::Locked { .. } => GatewayError::Conflict(format!(
                "the data directory `{}` is in use: a running `cordon serve` (or another command) holds its \
                 ledger, which has one writer at a time; while the server runs, the incident, alert and export \
                 commands reach it by themselves (when it recorded `served-at`); other commands need it stopped",
                self.root.display()
            )),
            error => GatewayError::Internal(error.to_string()),
        })?;
        self.open_with(config, Ledgers::Given(Arc::new(LedgerAudit::new(ledger))), clock, detection)
    }

    /// Opens the directory with the given audit log in place of its ledger (tests use this to
    /// make the audit log fail).
    pub fn open_with_audit(
        &self,
        config: Config,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
    ) -> Result<Gateway, GatewayError> {
        self.open_with(config, Ledgers::Given(audit), clock, Detection::Replay)
    }

    fn open_with(
        &self,
        config: Config,
        ledger: Ledgers,
        clock: Arc<dyn Clock>,
        detection: Detection,
    ) -> Result<Gateway, GatewayError> {
        let store = Arc::new(self.open_store(&config)?);
        // No backup runs while the directory is being opened: a staged copy is a leftover.
        crate::backup::sweep_staging(&self.root);
        let kek_id = store
            .meta(CURRENT_KEK)?
            .ok_or_else(|| GatewayError::Internal("the database does not name its key-encryption key".into()))?;
        let kek = kek::load(&self.root, &config.hsm, &kek_id)?;
        if matches!(ledger, Ledgers::Shared(_)) && detection != Detection::RulesUnchecked {
            self.check_deployment_rules(&store, &config)?;
        }
        let audit: Arc<dyn AuditLog> = match ledger {
            Ledgers::Given(audit) => audit,
            Ledgers::Shared(url) => {
                let load = |id: &str| -> Result<Arc<dyn cordon_vault::KeyEncryptionKey>, GatewayError> {
                    if id == kek.id() { Ok(Arc::clone(&kek)) } else { kek::load(&self.root, &config.hsm, id) }
                };
                Arc::new(crate::shared_audit::open(&url, &load, Arc::clone(&store))?)
            }
        };
        let blind_id = store.meta(CURRENT_BLIND)?.filter(|id| !id.is_empty()).unwrap_or_else(|| BLIND_INDEX_KEY.into());
        let blind = BlindIndexKey::new(&read_key(&self.path(KEYS_DIR).join(&blind_id))?)?;
        let tokens = self.token_key()?;
        let webhook_mac = self.webhook_key()?;
        let policy = self.policy_engine(&config)?;
        let categories = if config.categories.is_empty() {
            CategoryTable::default()
        } else {
            CategoryTable::from_names(&config.categories).map_err(GatewayError::BadRequest)?
        };
        let helpdesk = if config.helpdesk.zendesk_secret_file.is_empty() {
            None
        } else {
            crate::helpdesk::check_categories(&config.helpdesk, &categories)?;
            let secret =
                read_secret_file(&self.root, "[helpdesk] zendesk_secret_file", &config.helpdesk.zendesk_secret_file)?;
            Some(crate::helpdesk::Zendesk::new(Zeroizing::new(secret.as_bytes().to_vec()), config.helpdesk.clone()))
        };
        let sso = if config.oidc.is_set() {
            let secret = if config.oidc.console() {
                Some(read_secret_file(&self.root, "[oidc] client_secret_file", &config.oidc.client_secret_file)?)
            } else {
                None
            };
            Some(crate::sso::Sso::new(config.oidc.clone(), secret))
        } else {
            None
        };
        let policy_hash = policy.hash().to_string();
        let applied = store.meta(POLICY_HASH)?;
        let revoked = store.revoked_tokens(clock.now_seconds())?.into_iter().collect();
        let gateway = Gateway {
            directory: crate::directory_cache::DirectoryCache::load(&store)?,
            indexer: crate::indexer::Indexer::start(
                Arc::clone(&store),
                Arc::clone(&audit),
                Arc::clone(&clock),
                !config.detection.webhook_url.is_empty(),
            )?,
            store,
            root: Some(self.root.clone()),
            changes: tokio::sync::RwLock::new(()),
            backing_up: Arc::default(),
            vault: Vault::new(kek, blind),
            helpdesk,
            sso,
            policy,
            categories,
            audit: Arc::clone(&audit),
            clock,
            limits: config.limits.clone(),
            tokens,
            token_lifetime_seconds: config.tokens.lifetime_seconds,
            service_token_lifetime_seconds: config.tokens.service_lifetime_seconds,
            sequencer: std::sync::Mutex::new(crate::detection::Sequenced {
                next_index: audit.size(),
                resync: false,
                detector: cordon_detect::Detector::new(config.detection.thresholds.clone()),
                enabled: config.detection.enabled,
                statements: crate::statements::WrongStatements::new(
                    config.limits.verify_wrong_statements_max,
                    config.limits.verify_window_days,
                ),
                recorded: crate::detection::RecordedState::default(),
                tainted: false,
            }),
            snapshot_path: Some(self.path(crate::snapshot::SNAPSHOT_FILE)),
            last_snapshot: std::sync::atomic::AtomicU64::new(0),
            store_probe: std::sync::Mutex::new((None, None)),
            kek_probe: std::sync::Mutex::new((None, None)),
            revoked: std::sync::RwLock::new(revoked),
            deciding_alerts: std::sync::Mutex::default(),
            null_model: std::sync::Mutex::default(),
            replaying: std::sync::Mutex::default(),
            answers_access: detection == Detection::Replay,
            webhook_url: Some(config.detection.webhook_url.clone()).filter(|url| !url.is_empty()),
            incident: config.incident.clone(),
            customer_view: config.customer_view.clone(),
            webhook_mac,
        };
        // Detection and verify's limit pick up where they left off: their state is a
        // function of the ledger.
        if detection == Detection::Replay {
            gateway.restore_detection()?;
        }
        // Applying a policy set is itself recorded, with its hash.
        if applied.as_deref() != Some(policy_hash.as_str()) {
            let index = futures_block_on(gateway.change_entry("cordon", "policy.apply", &policy_hash, None, "start"))?;
            gateway.store.set_meta(POLICY_HASH, &policy_hash)?;
            let _ = index;
        }
        Ok(gateway)
    }

    /// Issues a customer's own token (their view of who viewed their data) for a customer the
    /// store holds.
    pub fn issue_customer_token(&self, customer: &str, clock: &dyn Clock) -> Result<String, GatewayError> {
        cordon_directory::check_id("customer", customer)
            .map_err(|error| GatewayError::BadRequest(error.to_string()))?;
        let config = self.config()?;
        let key = self.token_key()?;
        let store = self.open_store(&config)?;
        if store.customer(customer)?.is_none() {
            return Err(GatewayError::NotFound { what: "customer", id: customer.to_string(), ledger_index: None });
        }
        issue(
            &key,
            &format!("{}{customer}", cordon_directory::CUSTOMER_SUBJECT_PREFIX),
            TokenRole::Customer,
            clock.now_seconds(),
            config.customer_view.token_lifetime_seconds,
        )
    }

    /// Issues a token without opening the ledger, so it works while the server runs: for a
    /// directory agent (`agent`) or a role identity (`role`).
    pub fn issue_token(
        &self,
        agent: Option<&str>,
        role: Option<TokenRole>,
        clock: &dyn Clock,
    ) -> Result<String, GatewayError> {
        let config = self.config()?;
        let key = self.token_key()?;
        let (subject, role) = match (agent, role) {
            (Some(agent), None) => {
                let store = self.open_store(&config)?;
                let found = store.agent(agent)?.ok_or_else(|| GatewayError::NotFound {
                    what: "agent",
                    id: agent.to_string(),
                    ledger_index: None,
                })?;
                if found.status != AgentStatus::Active {
                    return Err(GatewayError::Conflict(format!(
                        "agent `{agent}` is {}; it gets no token",
                        found.status
                    )));
                }
                (agent.to_string(), TokenRole::from(found.role))
            }
            (None, Some(role)) => (role.identity(), role),
            _ => return Err(GatewayError::BadRequest("give either an agent or a role".into())),
        };
        let lifetime = if role == TokenRole::Service {
            config.tokens.service_lifetime_seconds
        } else {
            config.tokens.lifetime_seconds
        };
        issue(&key, &subject, role, clock.now_seconds(), lifetime)
    }

    /// A token for `role` that lives `lifetime_seconds` at most (the command line's calls on
    /// a running server: minutes, not the configured hours).
    pub fn issue_short_token(
        &self,
        role: TokenRole,
        clock: &dyn Clock,
        lifetime_seconds: i64,
    ) -> Result<String, GatewayError> {
        let config = self.config()?;
        let key = self.token_key()?;
        let lifetime = lifetime_seconds.min(config.tokens.lifetime_seconds);
        issue(&key, &role.identity(), role, clock.now_seconds(), lifetime)
    }

    pub fn config(&self) -> Result<Config, GatewayError> {
        Config::load(&self.path(CONFIG_FILE)).map_err(GatewayError::BadRequest)
    }

    /// The store `config` names: the PostgreSQL database of `[store] url` (its password from
    /// `[store] password_file` if set), else `cordon.sqlite` in this directory.
    pub fn open_store(&self, config: &Config) -> Result<Store, GatewayError> {
        match self.store_url(config)? {
            Some(url) => Ok(Store::open_postgres(&url)?),
            None => Ok(Store::open(&self.path(DATABASE_FILE))?),
        }
    }

    /// `[store] url` with the password of `[store] password_file` put in; `None` for the
    /// embedded store.
    pub fn store_url(&self, config: &Config) -> Result<Option<String>, GatewayError> {
        if !config.store.is_postgres() {
            return Ok(None);
        }
        if config.store.password_file.is_empty() {
            return Ok(Some(config.store.url.clone()));
        }
        let password = read_secret_file(&self.root, "[store] password_file", &config.store.password_file)?;
        Ok(Some(cordon_store::with_password(&config.store.url, password.trim())))
    }

    /// Makes a new key-encryption key, in `home` (a key file, or the HSM `[hsm]` names; by
    /// default where the current one is), and rewraps every customer's data key under it;
    /// field ciphertexts are untouched. Resumable: a rotation cut short continues with the
    /// same new key. The old key (its file, or its object in the token) is destroyed at the
    /// end, so a backup taken before the rotation needs the old key kept apart to be read.
    pub fn rotate_kek(&self, clock: Arc<dyn Clock>, home: Option<KekHome>) -> Result<Rotated, GatewayError> {
        let config = self.config()?;
        let gateway = self.open(clock)?;
        let store = &gateway.store;
        let from = store.meta(CURRENT_KEK)?.unwrap_or_default();
        let to = match store.meta(NEXT_KEK)?.filter(|next| !next.is_empty()) {
            Some(next) => {
                if let Some(home) = home.filter(|home| *home != KekHome::of(&next)) {
                    return Err(GatewayError::Conflict(format!(
                        "a rotation to the key-encryption key `{next}` ({}) was cut short; finish it first \
                         (run this again without --to {}, or with --to {})",
                        KekHome::of(&next).name(),
                        home.name(),
                        KekHome::of(&next).name()
                    )));
                }
                next
            }
            None => {
                // Named before it is made: a rotation cut short in between makes the same key.
                let next = kek::new_id(home.unwrap_or_else(|| KekHome::of(&from)))?;
                store.set_meta(RETIRING_KEK, &from)?;
                store.set_meta(NEXT_KEK, &next)?;
                next
            }
        };
        kek::create(&self.root, &config.hsm, &to)?;
        let new_kek = kek::load(&self.root, &config.hsm, &to)?;
        // The new key must give back what it wraps before any data key depends on it, and
        // each rewrapped key is opened again before it is stored: the old key is destroyed
        // at the end.
        new_kek.probe()?;
        let mut after = String::new();
        let mut customers = 0u64;
        loop {
            let batch = store.customers_to_rewrap(&to, &after, 1000)?;
            let Some(last) = batch.last() else { break };
            after = last.id.clone();
            let mut updates = Vec::with_capacity(batch.len());
            for customer in &batch {
                if let Some(sealed) = &customer.sealed {
                    let rewrapped = gateway.vault.rewrap(&customer.id, sealed, new_kek.as_ref())?;
                    new_kek.unwrap(&customer.id, &rewrapped.wrapped_key)?;
                    updates.push((customer.id.clone(), rewrapped.kek_id, rewrapped.wrapped_key));
                }
            }
            customers += updates.len() as u64;
            store.set_wrapped_keys(&updates)?;
        }
        let from = store.meta(RETIRING_KEK)?.filter(|retiring| !retiring.is_empty()).unwrap_or(from);
        // Recorded before the switch: a rotation cut short between the two records it again
        // when resumed, rather than not at all.
        if store.meta(CURRENT_KEK)?.as_deref() != Some(to.as_str()) {
            let detail = format!("from {from} ({}) to {to} ({})", KekHome::of(&from).name(), KekHome::of(&to).name());
            futures_block_on(gateway.change_entry("cordon", "keys.rotate", &to, Some(detail), "rotate"))?;
            store.set_meta(CURRENT_KEK, &to)?;
        }
        if from != to {
            // On a shared store the ledger's signing key is wrapped by the KEK too: it moves
            // to the new key before the old one is gone.
            if let Some(url) = self.store_url(&config)? {
                let old_kek = kek::load(&self.root, &config.hsm, &from)?;
                crate::shared_audit::rewrap_key(&url, old_kek.as_ref(), new_kek.as_ref())?;
            }
            kek::destroy(&self.root, &config.hsm, &from)?;
        }
        store.set_meta(RETIRING_KEK, "")?;
        store.set_meta(NEXT_KEK, "")?;
        Ok(Rotated { from, to, customers })
    }
}

impl DataDir {
    /// Replaces the blind-index key (the server stopped: this opens the directory). Every
    /// live customer's search entries are computed anew under a new key and staged beside the
    /// live index, which is then swapped in one transaction that also names the new key; the
    /// old key file is removed last. Resumable: a rotation cut short continues with the same
    /// new key. A ledger entry records it. Returns the customers and entries written.
    pub fn rotate_blind_index_key(&self, clock: Arc<dyn Clock>) -> Result<(u64, u64), GatewayError> {
        let gateway = self.open(clock)?;
        let store = &gateway.store;
        let from = store.meta(CURRENT_BLIND)?.filter(|id| !id.is_empty()).unwrap_or_else(|| BLIND_INDEX_KEY.into());
        let to = match store.meta(NEXT_BLIND)?.filter(|id| !id.is_empty()) {
            Some(next) => next,
            None => {
                let next = format!("blind-{}", random_id()?);
                write_key(&self.path(KEYS_DIR).join(&next))?;
                store.set_meta(NEXT_BLIND, &next)?;
                next
            }
        };
        let vault = gateway.vault.with_blind_index(BlindIndexKey::new(&read_key(&self.path(KEYS_DIR).join(&to))?)?);
        let mut after = String::new();
        let mut customers = 0u64;
        loop {
            let batch = store.customers_after(&after, 1000)?;
            let Some(last) = batch.last() else { break };
            after = last.id.clone();
            let mut staged = Vec::with_capacity(batch.len());
            for customer in &batch {
                let Some(sealed) = &customer.sealed else { continue };
                let fields = vault.open(&customer.id, sealed, &cordon_vault::Vault::INDEXED_FIELDS)?;
                staged.push((customer.id.clone(), vault.index_entries(&customer.id, &fields)));
            }
            customers += staged.len() as u64;
            store.stage_search_entries(&staged)?;
        }
        let entries = store.swap_search_index(CURRENT_BLIND, &to)?;
        futures_block_on(gateway.change_entry(
            "cordon",
            "keys.rotate-blind-index",
            &to,
            Some(format!("from {from}; {customers} customers, {entries} search entries")),
            "rotate",
        ))?;
        // Every blind-index key file but the current one goes (the one replaced now, and any
        // a rotation cut short after its swap left behind).
        let keys = self.path(KEYS_DIR);
        for item in fs::read_dir(&keys).map_err(io_error(&keys))? {
            let name = item.map_err(io_error(&keys))?.file_name().to_string_lossy().into_owned();
            if name.starts_with("blind") && name != to {
                let old = keys.join(&name);
                fs::remove_file(&old).map_err(io_error(&old))?;
            }
        }
        store.set_meta(NEXT_BLIND, "")?;
        Ok((customers, entries))
    }
}

/// Runs a future to completion on this thread, for the gateway's own blocking operations
/// (opening, rotating keys, importing), which run outside any async runtime; the futures
/// here only wait on the ledger's own threads. Not exported: callers on an async runtime
/// await the gateway, and the server runs its heavy calls on blocking threads.
pub(crate) fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};

    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

pub(crate) fn write_key(path: &Path) -> Result<(), GatewayError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut()).map_err(|error| GatewayError::Internal(format!("random source failed: {error}")))?;
    let hex = Zeroizing::new(key.iter().map(|byte| format!("{byte:02x}")).collect::<String>());
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_error(path))?;
    file.write_all(hex.as_bytes()).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

pub(crate) fn read_key(path: &Path) -> Result<Zeroizing<Vec<u8>>, GatewayError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(io_error(path))?);
    let hex = text.trim();
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|at| hex.get(at..at + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    match bytes {
        Some(bytes) if bytes.len() == 32 => Ok(Zeroizing::new(bytes)),
        _ => Err(GatewayError::Internal(format!("key file `{}` does not hold 32 hex-encoded bytes", path.display()))),
    }
}

/// A secret held in a file a setting names (relative to the data directory `root`, or
/// absolute): its text without the line end. Refused, as ssh refuses a private key, if its
/// group or others may read it, or if it is empty.
pub(crate) fn read_secret_file(root: &Path, setting: &str, name: &str) -> Result<Zeroizing<String>, GatewayError> {
    let path = root.join(name);
    let unreadable =
        |error: std::io::Error| GatewayError::BadRequest(format!("{setting} `{}`: {error}", path.display()));
    let mode = fs::metadata(&path).map_err(unreadable)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(GatewayError::BadRequest(format!(
            "{setting} `{}` can be read by others (mode {mode:o}); make it its owner's alone (chmod 600)",
            path.display()
        )));
    }
    let text = Zeroizing::new(fs::read_to_string(&path).map_err(unreadable)?);
    let secret = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_string());
    if secret.is_empty() {
        return Err(GatewayError::BadRequest(format!("{setting} `{}` is empty", path.display())));
    }
    Ok(secret)
}

/// The text of the file `path` names, read from the data directory `root` if relative (as
/// every file `cordon.toml` names is), or `default` if none is named.
fn read_text(root: &Path, path: Option<&str>, default: &str) -> Result<String, GatewayError> {
    match path {
        Some(path) => {
            let path = root.join(path);
            fs::read_to_string(&path).map_err(io_error(&path))
        }
        None => Ok(default.to_string()),
    }
}

/// Creates `path` and any missing parents as folders only their owner may enter (0700),
/// whatever the umask says: a data directory holds keys, databases and notices.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), GatewayError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io_error(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_error(path))
}

/// Writes `bytes` to `path` as a file only its owner may read (0600), whatever the umask,
/// atomically: a scratch file beside it, fsync, rename, fsync of the folder, so a crash
/// leaves the old file or the new one (`cordon.toml`, a notice, detection's snapshot),
/// never half of one.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), GatewayError> {
    let mut scratch = path.as_os_str().to_owned();
    scratch.push(".new");
    let scratch = std::path::PathBuf::from(scratch);
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&scratch)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&scratch, path)?;
        match path.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => fs::File::open(folder)?.sync_all(),
            _ => Ok(()),
        }
    })();
    written.map_err(|error| {
        let _ = fs::remove_file(&scratch);
        io_error(path)(error)
    })
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> GatewayError + '_ {
    move |error| GatewayError::Internal(format!("`{}`: {error}", path.display()))
}
