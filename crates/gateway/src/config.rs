//! `cordon.toml`: what a deployment may change, with defaults for everything.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreSettings,
    pub ledger: LedgerSettings,
    pub limits: Limits,
    pub tokens: TokenSettings,
    pub policy: PolicyFiles,
    pub detection: DetectionSettings,
    pub incident: IncidentSettings,
    pub customer_view: CustomerViewSettings,
    pub webhooks: WebhookSettings,
    pub hsm: HsmSettings,
    pub helpdesk: HelpdeskSettings,
    pub oidc: OidcSettings,
    /// Ticket category → the field names it needs. Empty means the built-in table.
    pub categories: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    /// The server's certificate chain (PEM, its own first) and private key (PEM), relative to
    /// the data directory or absolute. Both set: `cordon serve` speaks HTTPS only. Neither:
    /// plain HTTP, and only on a loopback address unless `--insecure-http` is given.
    pub tls_cert: String,
    pub tls_key: String,
}

/// Where the store and the ledger live: in the data directory (SQLite and the file ledger,
/// the default), or in a PostgreSQL database several gateways share (docs/DEPLOY.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `postgres://user@host:5432/db?sslmode=...`; empty for the embedded default.
    pub url: String,
    /// A file (readable by its owner only) holding the database user's password, so the URL
    /// in `cordon.toml` needs none; relative to the data directory or absolute.
    pub password_file: String,
}

impl StoreSettings {
    pub fn is_postgres(&self) -> bool {
        !self.url.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSettings {
    /// The log's name in its checkpoints.
    pub origin: String,
    pub checkpoint_interval_ms: u64,
    pub batch_delay_ms_max: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub request_body_bytes_max: usize,
    pub fields_per_request_max: usize,
    pub value_bytes_max: usize,
    pub history_events_max: usize,
    /// Wrong statements verify checks per agent, customer and field within
    /// `verify_window_days` before it refuses to check more.
    pub verify_wrong_statements_max: u32,
    pub verify_window_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// How long a person's token lives (an agent's, an analyst's, an administrator's).
    pub lifetime_seconds: i64,
    /// How long a service's token lives (metrics scraping, the customer-facing app).
    pub service_lifetime_seconds: i64,
}

/// A file `cordon.toml` names: the setting, the name as written (relative to the data
/// directory, or absolute), and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedFile<'a> {
    pub setting: &'static str,
    pub name: &'a str,
    pub kind: FileKind,
}

/// What a named file holds, as a backup treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Certificates and policies: copied as they are.
    Public,
    /// A private key or a secret: sealed, like the directory's keys.
    Secret,
    /// A system library (the HSM's module): the host's, never copied.
    Library,
}

/// Policy and schema files to load instead of the built-in defaults (from `policies/`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyFiles {
    pub policies: Option<String>,
    pub schema: Option<String>,
}

/// In-line insider detection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionSettings {
    /// Score every access and contain risky agents. Off, nothing is scored or contained
    /// (today's situation, for comparison).
    pub enabled: bool,
    /// Where alerts and containments are posted as JSON; empty for nowhere.
    pub webhook_url: String,
    pub thresholds: cordon_detect::Thresholds,
}

impl Default for DetectionSettings {
    fn default() -> DetectionSettings {
        DetectionSettings {
            enabled: true,
            webhook_url: String::new(),
            thresholds: cordon_detect::Thresholds::default(),
        }
    }
}

/// Incident response: who the exchange is to its customers and regulator, and the protective
/// actions it takes for affected customers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentSettings {
    /// The exchange's name in notices and reports.
    pub exchange: String,
    /// The contact point (data protection officer) in notices and reports. Required: without
    /// it notices are refused and the regulator report is marked a draft.
    pub contact: String,
    /// Where protective actions are posted as JSON for the exchange's account systems;
    /// empty keeps them queued in the outbox until one is set.
    pub protect_webhook_url: String,
    /// How long withdrawals to new addresses are held.
    pub hold_hours: u32,
    /// How long high-risk withdrawals need a step-up identity check.
    pub step_up_days: u32,
    /// How long the scam-warning banner shows.
    pub banner_days: u32,
}

impl Default for IncidentSettings {
    fn default() -> IncidentSettings {
        IncidentSettings {
            exchange: "the exchange".into(),
            contact: String::new(),
            protect_webhook_url: String::new(),
            hold_hours: 72,
            step_up_days: 30,
            banner_days: 90,
        }
    }
}

/// How cordon's webhooks (detection's alerts, incident response's protective actions) reach
/// their receivers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// An authority (PEM) to trust for https receivers besides the web's roots, e.g. the
    /// exchange's internal one; relative to the data directory or absolute.
    pub ca_file: String,
    /// Let webhooks go over plain `http://` to hosts other than this one (a receiver behind a
    /// TLS-terminating proxy on a private network). Off: alerts and protective actions name
    /// agents and customers and go over HTTPS, or to a loopback address.
    pub allow_insecure_http: bool,
}

/// The HSM (PKCS#11 token) that holds the key-encryption key, when it is not a key file
/// (`cordon keys rotate --to hsm` moves it there; docs/KEYS.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HsmSettings {
    /// The PKCS#11 module (a shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: String,
    /// The token's label.
    pub token_label: String,
    /// A file (readable by its owner only) holding the token user's PIN; relative to the data
    /// directory or absolute.
    pub pin_file: String,
}

impl HsmSettings {
    pub fn is_set(&self) -> bool {
        !(self.module.is_empty() && self.token_label.is_empty() && self.pin_file.is_empty())
    }
}

/// Tickets from the helpdesk's webhooks (Zendesk's ticket and user events, docs/DEPLOY.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HelpdeskSettings {
    /// A file (readable by its owner only) holding the Zendesk webhook's signing secret;
    /// relative to the data directory or absolute. Empty: `POST /v1/helpdesk/zendesk` is off.
    pub zendesk_secret_file: String,
    /// How far a webhook's signed timestamp may be from now, in seconds; older deliveries
    /// are refused as replays (event ids are remembered for a week).
    pub replay_window_seconds: i64,
    /// The category of a ticket none of whose tags `categories` maps.
    pub default_category: String,
    /// Helpdesk tag → ticket category (one of `[categories]`, or the built-in ones).
    pub categories: BTreeMap<String, String>,
}

impl Default for HelpdeskSettings {
    fn default() -> HelpdeskSettings {
        HelpdeskSettings {
            zendesk_secret_file: String::new(),
            replay_window_seconds: 300,
            default_category: "general_inquiry".into(),
            categories: BTreeMap::new(),
        }
    }
}

/// Single sign-on through the exchange's OpenID provider (docs/DEPLOY.md): the API takes the
/// provider's JWT access tokens (RFC 9068). The directory stays the authority: a claim names
/// the agent, and the agent's role, status, team and site are the directory's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcSettings {
    /// The provider's issuer URL (`https://`, or `http://` on a loopback address). Empty:
    /// no single sign-on.
    pub issuer: String,
    /// The API's identifier in access tokens' `aud` (the resource the provider issues them for).
    pub audience: String,
    /// The provider's clients whose access tokens the API takes (their `client_id` or
    /// `azp`), space-separated; empty: any client's.
    pub clients: String,
    /// The console's sign-in (authorization code with PKCE): cordon's client id at the
    /// provider, the file (owner-only) holding its secret, and the console's callback as
    /// registered there (`https://…/console/oidc/callback`). All three, or none.
    pub client_id: String,
    pub client_secret_file: String,
    pub redirect_url: String,
    /// Which claim names the directory's agent: `email` (the agent's work email) or `sub`
    /// (the agent's id).
    pub agent_claim: String,
    /// For a reveal, the sign-in must have used each of these methods (`amr`, space-separated,
    /// e.g. `otp`); empty: any.
    pub require_amr: String,
    /// For a reveal, the sign-in's `acr` must be one of these (space-separated); empty: any.
    pub require_acr: String,
    /// For a reveal, the sign-in (`auth_time`) must be at most this many seconds old; 0: not
    /// checked.
    pub max_auth_age_seconds: i64,
    /// How often the provider's keys are fetched again, in seconds (and at once, at most every
    /// 30 s, when a token names a key the set lacks).
    pub keys_refresh_seconds: i64,
}

impl Default for OidcSettings {
    fn default() -> OidcSettings {
        OidcSettings {
            issuer: String::new(),
            audience: String::new(),
            clients: String::new(),
            client_id: String::new(),
            client_secret_file: String::new(),
            redirect_url: String::new(),
            agent_claim: "email".into(),
            require_amr: String::new(),
            require_acr: String::new(),
            max_auth_age_seconds: 0,
            keys_refresh_seconds: 300,
        }
    }
}

impl OidcSettings {
    pub fn is_set(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// Whether the console signs people in through the provider.
    pub fn console(&self) -> bool {
        self.is_set() && !self.client_id.is_empty()
    }
}

/// A customer's own view of who viewed their data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerViewSettings {
    /// Whether a customer sees the names of the staff who accessed their data. Team and site
    /// are always shown; names are off unless the exchange chooses to show them (staff are
    /// people too, and a name handed to an angry customer can be misused).
    pub show_agent_names: bool,
    /// How long a customer's token lives: long enough to open the page, no longer.
    pub token_lifetime_seconds: i64,
}

impl Default for CustomerViewSettings {
    fn default() -> CustomerViewSettings {
        CustomerViewSettings { show_agent_names: false, token_lifetime_seconds: 3600 }
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig { listen: "127.0.0.1:8080".into(), tls_cert: String::new(), tls_key: String::new() }
    }
}

impl Default for LedgerSettings {
    fn default() -> LedgerSettings {
        LedgerSettings { origin: "cordon.local/audit".into(), checkpoint_interval_ms: 1000, batch_delay_ms_max: 0 }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_body_bytes_max: 64 * 1024,
            fields_per_request_max: 14,
            value_bytes_max: 4096,
            history_events_max: 10_000,
            verify_wrong_statements_max: 3,
            verify_window_days: 30,
        }
    }
}

impl Default for TokenSettings {
    fn default() -> TokenSettings {
        TokenSettings { lifetime_seconds: 12 * 3600, service_lifetime_seconds: 90 * 86_400 }
    }
}

impl Config {
    /// Reads `path`, applies the environment's overrides (`CORDON_<SECTION>_<KEY>`, see
    /// [`apply_environment`]) and checks the result.
    pub fn load(path: &Path) -> Result<Config, String> {
        Config::load_with(path, std::env::vars())
    }

    /// [`Config::load`] with these environment variables in place of the process's.
    pub fn load_with(path: &Path, variables: impl IntoIterator<Item = (String, String)>) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|error| format!("`{}`: {error}", path.display()))?;
        apply_environment(&mut table, variables)?;
        let config: Config = toml::Value::Table(table).try_into().map_err(|error: toml::de::Error| {
            format!("`{}` with the environment's overrides: {error}", path.display())
        })?;
        config.check().map_err(|problem| format!("`{}`: {problem}", path.display()))?;
        Ok(config)
    }

    /// Every file the configuration names (those set), with its setting and what it holds.
    pub fn named_files(&self) -> Vec<NamedFile<'_>> {
        use FileKind::{Library, Public, Secret};
        [
            ("[server] tls_cert", self.server.tls_cert.as_str(), Public),
            ("[server] tls_key", self.server.tls_key.as_str(), Secret),
            ("[store] password_file", self.store.password_file.as_str(), Secret),
            ("[webhooks] ca_file", self.webhooks.ca_file.as_str(), Public),
            ("[hsm] module", self.hsm.module.as_str(), Library),
            ("[hsm] pin_file", self.hsm.pin_file.as_str(), Secret),
            ("[helpdesk] zendesk_secret_file", self.helpdesk.zendesk_secret_file.as_str(), Secret),
            ("[oidc] client_secret_file", self.oidc.client_secret_file.as_str(), Secret),
            ("[policy] policies", self.policy.policies.as_deref().unwrap_or(""), Public),
            ("[policy] schema", self.policy.schema.as_deref().unwrap_or(""), Public),
        ]
        .into_iter()
        .filter(|(_, name, _)| !name.is_empty())
        .map(|(setting, name, kind)| NamedFile { setting, name, kind })
        .collect()
    }

    /// Checks the files the configuration names, against the data directory `dir` that
    /// relative names are read from: each must exist and be a file.
    pub fn check_files(&self, dir: &Path) -> Result<(), String> {
        for NamedFile { setting: key, name, .. } in self.named_files() {
            let path = dir.join(name);
            if !path.is_file() {
                return Err(format!("{key} = `{name}`: `{}` is not a file", path.display()));
            }
        }
        Ok(())
    }

    /// Refuses values a deployment cannot mean: negative or zero limits and lifetimes,
    /// thresholds out of order, webhook addresses that are not HTTP(S) URLs. The error
    /// names the setting and the value.
    pub fn check(&self) -> Result<(), String> {
        let in_range = |name: &str, value: i64, low: i64, high: i64| -> Result<(), String> {
            if (low..=high).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} = {value} is outside {low} to {high}"))
            }
        };
        let lifetime_max = crate::token::TOKEN_LIFETIME_SECONDS_MAX;
        in_range("[tokens] lifetime_seconds", self.tokens.lifetime_seconds, 60, lifetime_max)?;
        in_range(
            "[tokens] service_lifetime_seconds",
            self.tokens.service_lifetime_seconds,
            60,
            crate::token::SERVICE_TOKEN_LIFETIME_SECONDS_MAX,
        )?;
        in_range("[helpdesk] replay_window_seconds", self.helpdesk.replay_window_seconds, 10, 3600)?;
        in_range("[customer_view] token_lifetime_seconds", self.customer_view.token_lifetime_seconds, 60, 86_400)?;
        let limits = &self.limits;
        let size = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        in_range("[limits] request_body_bytes_max", size(limits.request_body_bytes_max), 1024, 16 << 20)?;
        in_range("[limits] fields_per_request_max", size(limits.fields_per_request_max), 1, 64)?;
        in_range("[limits] value_bytes_max", size(limits.value_bytes_max), 16, 1 << 20)?;
        in_range("[limits] history_events_max", size(limits.history_events_max), 1, 1_000_000)?;
        in_range("[limits] verify_wrong_statements_max", limits.verify_wrong_statements_max.into(), 1, 100)?;
        in_range("[limits] verify_window_days", limits.verify_window_days.into(), 1, 3650)?;
        if self.store.is_postgres() && !cordon_store::is_postgres_url(&self.store.url) {
            return Err(format!(
                "[store] url = `{}` is not a PostgreSQL URL (postgres://user@host:port/database); leave it empty \
                 for the embedded store",
                cordon_store::without_password(&self.store.url)
            ));
        }
        if !self.store.password_file.is_empty() && !self.store.is_postgres() {
            return Err("[store] password_file is set without a [store] url".into());
        }
        let interval = i64::try_from(self.ledger.checkpoint_interval_ms).unwrap_or(i64::MAX);
        in_range("[ledger] checkpoint_interval_ms", interval, 1, 3_600_000)?;
        let thresholds = &self.detection.thresholds;
        thresholds.check()?;
        let risks = [
            ("alert_risk", thresholds.alert_risk),
            ("step_up_risk", thresholds.step_up_risk),
            ("suspend_risk", thresholds.suspend_risk),
        ];
        for (name, value) in risks.iter().chain([("half_life_hours", thresholds.half_life_hours)].iter()) {
            if !(value.is_finite() && *value > 0.0) {
                return Err(format!("[detection.thresholds] {name} = {value} must be a positive number"));
            }
        }
        if !(thresholds.alert_risk < thresholds.step_up_risk && thresholds.step_up_risk < thresholds.suspend_risk) {
            return Err(format!(
                "[detection.thresholds] alert_risk ({}) < step_up_risk ({}) < suspend_risk ({}) must hold",
                thresholds.alert_risk, thresholds.step_up_risk, thresholds.suspend_risk
            ));
        }
        if self.server.tls_cert.is_empty() != self.server.tls_key.is_empty() {
            return Err("[server] tls_cert and tls_key go together: set both (HTTPS) or neither (HTTP)".into());
        }
        let hsm = &self.hsm;
        if hsm.is_set() && (hsm.module.is_empty() || hsm.token_label.is_empty() || hsm.pin_file.is_empty()) {
            return Err("[hsm] module, token_label and pin_file go together: set all three (an HSM) or none".into());
        }
        let oidc = &self.oidc;
        if oidc.is_set() {
            if !web_url(&oidc.issuer) || !(oidc.issuer.starts_with("https://") || loopback_http(&oidc.issuer)) {
                return Err(format!(
                    "[oidc] issuer = `{}` must be an https:// URL (or http:// on a loopback address, for trying it)",
                    oidc.issuer
                ));
            }
            if oidc.audience.is_empty() {
                return Err("[oidc] audience must name the API as the provider's access tokens do (their `aud`)".into());
            }
            if !["email", "sub"].contains(&oidc.agent_claim.as_str()) {
                return Err(format!("[oidc] agent_claim = `{}` must be `email` or `sub`", oidc.agent_claim));
            }
            in_range("[oidc] keys_refresh_seconds", oidc.keys_refresh_seconds, 30, 86_400)?;
            in_range("[oidc] max_auth_age_seconds", oidc.max_auth_age_seconds, 0, 30 * 86_400)?;
            let console = [&oidc.client_id, &oidc.client_secret_file, &oidc.redirect_url];
            if console.iter().any(|value| value.is_empty()) && console.iter().any(|value| !value.is_empty()) {
                return Err("[oidc] client_id, client_secret_file and redirect_url go together: set all three (the \
                            console's sign-in) or none (the API's tokens only)"
                    .into());
            }
            if !oidc.redirect_url.is_empty()
                && !(web_url(&oidc.redirect_url)
                    && (oidc.redirect_url.starts_with("https://") || loopback_http(&oidc.redirect_url)))
            {
                return Err(format!(
                    "[oidc] redirect_url = `{}` must be an https:// URL (or http:// on a loopback address, for trying it): \
                     the provider sends sign-in codes there",
                    oidc.redirect_url
                ));
            }
            if !oidc.client_id.is_empty()
                && !oidc.clients.trim().is_empty()
                && !oidc.clients.split_whitespace().any(|client| client == oidc.client_id)
            {
                return Err(format!(
                    "[oidc] clients = `{}` leaves out the console's own client `{}`: add it",
                    oidc.clients, oidc.client_id
                ));
            }
        } else if *oidc != OidcSettings::default() {
            return Err("[oidc] has settings but no issuer: set `issuer`, or remove the others".into());
        }
        for (name, url) in [
            ("[detection] webhook_url", &self.detection.webhook_url),
            ("[incident] protect_webhook_url", &self.incident.protect_webhook_url),
        ] {
            if !url.is_empty() && !web_url(url) {
                return Err(format!("{name} = `{url}` is not an http:// or https:// URL"));
            }
            if url.starts_with("http://") && !self.webhooks.allow_insecure_http && !loopback_http(url) {
                return Err(format!(
                    "{name} = `{url}` is plain HTTP to another host: alerts and protective actions name agents \
                     and customers; use https://, or set [webhooks] allow_insecure_http = true behind a \
                     TLS-terminating proxy"
                ));
            }
        }
        Ok(())
    }

    /// The server's certificate and key files, resolved against the data directory `dir`, if
    /// TLS is configured.
    pub fn tls_files(&self, dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        if self.server.tls_cert.is_empty() || self.server.tls_key.is_empty() {
            return None;
        }
        Some((dir.join(&self.server.tls_cert), dir.join(&self.server.tls_key)))
    }

    /// The webhooks' extra authority, resolved against `dir`, if one is set.
    pub fn webhook_ca(&self, dir: &Path) -> Option<std::path::PathBuf> {
        (!self.webhooks.ca_file.is_empty()).then(|| dir.join(&self.webhooks.ca_file))
    }

    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|error| format!("the configuration cannot be written: {error}"))
    }
}

/// Whether `url` is an http:// or https:// URL with something after the scheme and no space.
fn web_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() > "https://".len()
        && !url.chars().any(|character| character.is_whitespace() || character.is_control())
}

/// Whether `url` is plain HTTP to this host.
fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// The sections whose keys the environment may set (`CORDON_<SECTION>_<KEY>`), as they are
/// named in `cordon.toml`; `categories` is a table of the exchange's own names and is not.
const OVERRIDABLE_SECTIONS: [&str; 13] = [
    "server",
    "store",
    "ledger",
    "limits",
    "tokens",
    "policy",
    "detection",
    "detection.thresholds",
    "incident",
    "customer_view",
    "webhooks",
    "oidc",
    "categories",
];

/// Every key of `cordon.toml` with its default, by its environment name (`SERVER_LISTEN`):
/// its path and the default's value, which gives the type an override is read as.
fn environment_keys() -> Result<Vec<(String, Vec<String>, toml::Value)>, String> {
    let defaults = toml::Table::try_from(Config::default()).map_err(|error| error.to_string())?;
    let mut keys = Vec::new();
    fn walk(table: &toml::Table, path: &mut Vec<String>, keys: &mut Vec<(String, Vec<String>, toml::Value)>) {
        for (key, value) in table {
            path.push(key.clone());
            match value {
                toml::Value::Table(inner) => walk(inner, path, keys),
                other => keys.push((path.join("_").to_uppercase(), path.clone(), other.clone())),
            }
            path.pop();
        }
    }
    walk(&defaults, &mut Vec::new(), &mut keys);
    // Unset by default, so not in the serialized defaults: the policy files.
    for key in ["policies", "schema"] {
        keys.push((
            format!("POLICY_{}", key.to_uppercase()),
            vec!["policy".to_string(), key.to_string()],
            toml::Value::String(String::new()),
        ));
    }
    Ok(keys)
}

/// Applies the environment's `CORDON_<SECTION>_<KEY>` variables (and `CORDON_LISTEN`, the
/// older name of `CORDON_SERVER_LISTEN`) to the file's `table`, each read as its key's type.
/// A variable that names a section but no key of it, or whose value does not fit, is an error
/// naming it; variables of no section (`CORDON_LOG`, `CORDON_DATA`) are not configuration.
pub fn apply_environment(
    table: &mut toml::Table,
    variables: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, String> {
    let keys = environment_keys()?;
    let mut applied = Vec::new();
    let mut variables: Vec<(String, String)> = variables.into_iter().collect();
    variables.sort();
    for (name, text) in variables {
        let Some(rest) = name.strip_prefix("CORDON_") else { continue };
        let rest = if rest == "LISTEN" { "SERVER_LISTEN" } else { rest };
        let Some((_, path, default)) = keys.iter().find(|(env, _, _)| env == rest) else {
            let section = OVERRIDABLE_SECTIONS
                .iter()
                .find(|section| rest.starts_with(&format!("{}_", section.replace('.', "_").to_uppercase())));
            if let Some(section) = section {
                return Err(format!(
                    "the environment variable `{name}` names no key of [{section}] (see docs/CONFIG.md)"
                ));
            }
            continue;
        };
        let bad = |kind: &str| format!("the environment variable `{name}` = `{text}` is not {kind}");
        let value = match default {
            toml::Value::Boolean(_) => match text.as_str() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => return Err(bad("true or false")),
            },
            toml::Value::Integer(_) => toml::Value::Integer(text.trim().parse().map_err(|_| bad("a whole number"))?),
            toml::Value::Float(_) => {
                let number: f64 = text.trim().parse().map_err(|_| bad("a number"))?;
                toml::Value::Float(number)
            }
            _ => toml::Value::String(text.clone()),
        };
        let (last, parents) = path.split_last().ok_or_else(|| format!("`{name}`: an empty key"))?;
        let mut at = &mut *table;
        for parent in parents {
            at = at
                .entry(parent.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| format!("[{parent}] in the file is not a section"))?;
        }
        at.insert(last.clone(), value);
        applied.push(name.clone());
    }
    Ok(applied)
}
