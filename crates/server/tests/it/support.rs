//! A data directory with a server over it, a clock the test controls, and a request helper.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cordon_gateway::{AuditLog, Clock, DataDir, Gateway};
use cordon_server::{AppState, app};
use cordon_testpg::{StoreUnderTest, TestDatabase};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn advance_seconds(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub clock: Arc<TestClock>,
    pub state: Arc<AppState>,
    pub admin: String,
    /// The PostgreSQL database the store is in when the suite runs on PostgreSQL (declared
    /// last: it is dropped after the server that uses it).
    pub database: Option<cordon_testpg::TestDatabase>,
}

/// A full customer record with distinctive values.
pub fn customer_fields(name: &str, email: &str, balance_usd: f64) -> Value {
    json!({
        "full_name": name,
        "date_of_birth": "1988-04-01",
        "postal_address": {"street": "7 Quay Street", "city": "Dublin", "postal_code": "D02 X285", "country": "IE"},
        "email": email,
        "phone": "+353 86 555 0199",
        "government_id_number": "PPS7654321W",
        "id_document_image": "kyc/passport-scan-771.jpg",
        "tax_id": "IE9876543Q",
        "bank_account": "IE29AIBK93115212345678",
        "balance_usd": balance_usd,
        "wallet_addresses": ["bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"],
        "transaction_history": [{"date": "2026-11-01", "asset": "BTC", "amount": 0.1}],
        "two_factor_method": {"type": "totp"},
        "last_login_ip": "203.0.113.77"
    })
}

impl Harness {
    /// A harness on the store the suite runs on (`CORDON_TEST_STORE`: the embedded default,
    /// or a PostgreSQL database of its own).
    pub fn new() -> Harness {
        Harness::with_config(|_| {})
    }

    /// A harness whose `cordon.toml` is edited before the server opens it, on the store the
    /// suite runs on.
    pub fn with_config(edit: impl FnOnce(&mut cordon_gateway::Config)) -> Harness {
        let database = StoreUnderTest::from_environment().unwrap().database().unwrap();
        Harness::made(database, edit)
    }

    /// A harness on the embedded default whatever the suite runs on, for a test of what only
    /// it has (the SQLite file, the ledger's files, a backup of the folder).
    pub fn embedded_with_config(edit: impl FnOnce(&mut cordon_gateway::Config)) -> Harness {
        Harness::made(None, edit)
    }

    pub fn embedded() -> Harness {
        Harness::embedded_with_config(|_| {})
    }

    fn made(database: Option<TestDatabase>, edit: impl FnOnce(&mut cordon_gateway::Config)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(1_795_000_000_000)));
        let data = DataDir::new(&dir.path().join("data"));
        let url = database.as_ref().map(TestDatabase::url);
        let made = data.init_with_store(None, url.as_deref(), clock.clone()).unwrap();
        let mut config = data.config().unwrap();
        edit(&mut config);
        std::fs::write(data.path("cordon.toml"), config.to_toml().unwrap()).unwrap();
        let gateway = data.open(clock.clone()).unwrap();
        Harness { state: Arc::new(AppState::new(gateway)), dir, clock, admin: made.admin_token, database }
    }

    /// A harness whose store and ledger are the PostgreSQL database at `url` (a test of
    /// several gateways, which makes its database itself).
    pub fn on_postgres(url: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(1_795_000_000_000)));
        let data = DataDir::new(&dir.path().join("data"));
        let made = data.init_with_store(None, Some(url), clock.clone()).unwrap();
        let gateway = data.open(clock.clone()).unwrap();
        Harness { state: Arc::new(AppState::new(gateway)), dir, clock, admin: made.admin_token, database: None }
    }

    /// A second gateway of this deployment, as another host runs it: a copy of the data
    /// directory (its keys and configuration), opened on the same shared store, with the
    /// same clock.
    pub fn another_gateway(&self) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let copied = std::process::Command::new("cp")
            .arg("-a")
            .arg(self.dir.path().join("data"))
            .arg(dir.path().join("data"))
            .status()
            .unwrap();
        assert!(copied.success());
        let gateway = DataDir::new(&dir.path().join("data")).open(self.clock.clone()).unwrap();
        Harness {
            state: Arc::new(AppState::new(gateway)),
            dir,
            clock: self.clock.clone(),
            admin: self.admin.clone(),
            database: None,
        }
    }

    pub fn data(&self) -> DataDir {
        DataDir::new(&self.dir.path().join("data"))
    }

    /// The gateway's store, opened apart from the server (as a test looks at its rows).
    pub fn store(&self) -> cordon_store::Store {
        let data = self.data();
        data.open_store(&data.config().unwrap()).unwrap()
    }

    /// Another server over the same data directory, with `audit` in place of the ledger.
    pub fn with_audit(&self, audit: Arc<dyn AuditLog>) -> Arc<AppState> {
        let data = self.data();
        let gateway: Gateway = data.open_with_audit(data.config().unwrap(), audit, self.clock.clone()).unwrap();
        Arc::new(AppState::new(gateway))
    }

    pub fn agent_token(&self, agent: &str) -> String {
        self.state.gateway.issue_agent_token(agent).unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.state, method, path, token, body.map(|body| body.to_string())).await
    }

    /// Calls as the administrator and insists on success.
    pub async fn admin(&self, method: Method, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(method, path, Some(&self.admin.clone()), Some(body)).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    pub async fn put_agent(&self, id: &str, agent: Value) {
        self.admin(Method::PUT, &format!("/v1/agents/{id}"), agent).await;
    }

    pub async fn put_customer(&self, id: &str, fields: Value) {
        self.admin(Method::PUT, &format!("/v1/customers/{id}"), json!({ "fields": fields })).await;
    }

    /// Customer `cus-1`, agent `agt-1` (l1-chat, us-sf) and ticket `t-1` from the one,
    /// assigned to the other.
    pub async fn put_assigned_ticket(&self) {
        self.put_customer("cus-1", customer_fields("Nina Simone", "nina@example.org", 10.0)).await;
        self.put_agent("agt-1", json!({"name": "A", "team": "l1-chat", "site": "us-sf", "employer": "staff"})).await;
        self.admin(
            Method::PUT,
            "/v1/tickets/t-1",
            json!({"requester": "cus-1", "category": "general_inquiry", "assignee": "agt-1"}),
        )
        .await;
    }

    pub async fn put_canary(&self, id: &str, fields: Value) {
        self.admin(Method::PUT, &format!("/v1/customers/{id}"), json!({ "fields": fields, "canary": true })).await;
    }

    /// Restarts on the same data directory, as an operator would after an attack, and
    /// insists it came back whole: it opens (detection's replay reads every entry), it
    /// answers, and its ledger verifies from the tiles up under its own key.
    pub async fn restart_and_verify(self) -> Harness {
        let harness = self.reopen();
        let replayed = harness.state.gateway.replay_detection().unwrap();
        assert!(replayed.unreadable.is_empty(), "unreadable entries: {:?}", replayed.unreadable);
        let (status, _) = harness.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, checkpoint) = harness.call(Method::GET, "/v1/ledger/checkpoint", None, None).await;
        assert_eq!(status, StatusCode::OK, "{checkpoint}");
        harness.verify_ledger();
        harness
    }

    /// Verifies the ledger from the tiles up under its own key: the file ledger in place, the
    /// PostgreSQL one as `cordon log export` writes it out.
    pub fn verify_ledger(&self) {
        let data = self.data();
        let config = data.config().unwrap();
        match data.store_url(&config).unwrap() {
            None => {
                let key = std::fs::read_to_string(data.path("ledger/private/verifier-key")).unwrap();
                let verifier = cordon_ledger::Verifier::parse(key.trim()).unwrap();
                cordon_ledger::verify_log(&data.path("ledger"), &verifier, None).unwrap();
            }
            Some(url) => {
                let verifier = cordon_ledger::Verifier::parse(&self.state.gateway.audit().verifier_key()).unwrap();
                let exported = tempfile::tempdir().unwrap();
                let out = exported.path().join("ledger");
                let ledger = cordon_store::SharedLedger::open_reader(&url).unwrap();
                let size = ledger.export(&out).unwrap();
                let verified = cordon_ledger::verify_log(&out, &verifier, None).unwrap();
                assert_eq!(verified.size, size, "the exported ledger verifies at the size exported");
            }
        }
    }

    /// Closes the server and opens the data directory again, as a restart does.
    pub fn reopen(self) -> Harness {
        let Harness { dir, clock, state, admin, database } = self;
        drop(state);
        let gateway = DataDir::new(&dir.path().join("data")).open(clock.clone()).unwrap();
        Harness { dir, clock, state: Arc::new(AppState::new(gateway)), admin, database }
    }
}

pub async fn call(
    state: &Arc<AppState>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(body.map(Body::from).unwrap_or_else(Body::empty)).unwrap();
    let response = app(Arc::clone(state)).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub fn problem_type(body: &Value) -> &str {
    body.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The ledger entry at `index`, read back through the one decoder.
pub fn entry_at(harness: &Harness, index: u64) -> cordon_entry::Entry {
    let mut found = None;
    harness
        .state
        .gateway
        .audit()
        .for_each_entry_from(index, index + 1, &mut |_, bytes| {
            found = Some(cordon_entry::decode(bytes).map_err(|error| error.to_string())?);
            Ok(())
        })
        .unwrap();
    found.unwrap()
}
