//! Prometheus metrics, in an explicit registry: requests by route and status, access
//! decisions by action and outcome, the audit ledger's group commits, and the node's
//! health (whether the ledger and the store commit, how far the access index lags).

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    decisions: Family<Labels, Counter>,
    ledger_groups: Gauge,
    ledger_entries: Gauge,
    ledger_commit_micros: Gauge,
    ledger_healthy: Gauge,
    store_healthy: Gauge,
    kek_healthy: Gauge,
    access_index_lag: Gauge,
    held_statuses: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.0, 16)));
        let decisions = Family::<Labels, Counter>::default();
        let (ledger_groups, ledger_entries, ledger_commit_micros) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("cordon_http_requests", "HTTP requests by route and status", requests.clone());
        registry.register("cordon_http_request_seconds", "HTTP request latency by route", latency.clone());
        registry.register("cordon_decisions", "Access decisions by action and outcome", decisions.clone());
        registry.register(
            "cordon_ledger_groups",
            "Audit ledger group commits (one fdatasync each)",
            ledger_groups.clone(),
        );
        registry.register(
            "cordon_ledger_entries",
            "Audit entries made durable in group commits",
            ledger_entries.clone(),
        );
        registry.register(
            "cordon_ledger_commit_microseconds",
            "Time spent writing and syncing audit groups",
            ledger_commit_micros.clone(),
        );
        let (ledger_healthy, store_healthy, access_index_lag, held_statuses) =
            (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "cordon_ledger_healthy",
            "1 while the audit ledger commits entries, 0 while it has failed (every data request is refused)",
            ledger_healthy.clone(),
        );
        registry.register(
            "cordon_store_healthy",
            "1 while the store commits writes, 0 while it cannot",
            store_healthy.clone(),
        );
        let kek_healthy = Gauge::default();
        registry.register(
            "cordon_kek_healthy",
            "1 while the key-encryption key (a key file, or a key in the HSM) wraps and unwraps, 0 while it cannot",
            kek_healthy.clone(),
        );
        registry.register(
            "cordon_access_index_lag_entries",
            "Durable ledger entries the access index has not read yet",
            access_index_lag.clone(),
        );
        registry.register(
            "cordon_held_agent_statuses",
            "Agent statuses the ledger records that the store has not taken yet (held in memory)",
            held_statuses.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            ledger_healthy,
            store_healthy,
            kek_healthy,
            access_index_lag,
            held_statuses,
            requests,
            latency,
            decisions,
            ledger_groups,
            ledger_entries,
            ledger_commit_micros,
        }
    }
}

impl Metrics {
    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests.get_or_create(&vec![("route".into(), route.into()), ("status".into(), status.to_string())]).inc();
        self.latency.get_or_create(&vec![("route".into(), route.into())]).observe(seconds);
    }

    pub fn observe_decision(&self, action: &str, outcome: &str) {
        self.decisions.get_or_create(&vec![("action".into(), action.into()), ("outcome".into(), outcome.into())]).inc();
    }

    pub fn render(&self, stats: cordon_gateway::LedgerStats, health: &cordon_gateway::Health) -> String {
        self.ledger_healthy.set(i64::from(health.ledger.is_none()));
        self.store_healthy.set(i64::from(health.store.is_none()));
        self.kek_healthy.set(i64::from(health.kek.is_none()));
        self.access_index_lag.set(health.access_index_lag as i64);
        self.held_statuses.set(health.held_statuses as i64);
        self.ledger_groups.set(stats.groups as i64);
        self.ledger_entries.set(stats.entries as i64);
        self.ledger_commit_micros.set(stats.commit_micros as i64);
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = encode(&mut text, &registry);
        text
    }
}
