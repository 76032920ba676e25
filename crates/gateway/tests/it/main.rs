//! The gateway's data directory through its public interface.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use cordon_gateway::{DataDir, SystemClock, TokenRole};
use cordon_testpg::{StoreUnderTest, TestDatabase};
use cordon_vault::Field;
use serde_json::json;

/// Runs one gateway call to its end on this thread (the gateway's calls wait only on the
/// ledger's threads).
fn wait<F: std::future::Future>(call: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(call)
}

mod config;
mod helpdesk;
mod hostile_input;
mod oidc;

/// Initialises `data` on the store the suite runs on (`CORDON_TEST_STORE`: the embedded
/// default, or a PostgreSQL database of its own, which the caller keeps until it is done).
fn init(data: &DataDir, clock: Arc<dyn cordon_gateway::Clock>) -> Option<TestDatabase> {
    let database = StoreUnderTest::from_environment().unwrap().database().unwrap();
    data.init_with_store(None, database.as_ref().map(TestDatabase::url).as_deref(), clock).unwrap();
    database
}

/// The store of a gateway, read directly: tests look at the sealed rows themselves.
fn stored(data: &DataDir) -> cordon_store::Store {
    data.open_store(&data.config().unwrap()).unwrap()
}

/// Every entry of the ledger as text, read through a gateway opened on it.
fn ledger_texts(data: &DataDir) -> Vec<String> {
    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let mut texts = Vec::new();
    gateway
        .audit()
        .for_each_entry(&mut |_, bytes| {
            texts.push(String::from_utf8_lossy(bytes).into_owned());
            Ok(())
        })
        .unwrap();
    texts
}

fn key_files(data: &DataDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.path("keys"))
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("kek-"))
        .collect();
    names.sort();
    names
}

#[test]
fn rotating_the_kek_rewraps_every_data_key_and_keeps_every_field() {
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    let _database = init(&data, Arc::new(SystemClock));
    let before = {
        let gateway = data.open(Arc::new(SystemClock)).unwrap();
        let admin = gateway.authenticate(&gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
        for index in 0..2500 {
            let fields = BTreeMap::from([
                (Field::FullName, json!(format!("Customer {index}"))),
                (Field::Email, json!(format!("c{index}@example.org"))),
            ]);
            wait(gateway.put_customer(&admin, &format!("cus-{index}"), &fields, false, "test")).unwrap();
        }
        let sealed = stored(&data).customer("cus-7").unwrap().unwrap().sealed.unwrap();
        (sealed, gateway.vault().kek_id().to_string())
    };
    let old_keys = key_files(&data);
    assert_eq!(old_keys, vec![before.1.clone()]);

    let rotated = data.rotate_kek(Arc::new(SystemClock), None).unwrap();
    assert_eq!((rotated.from.as_str(), rotated.customers), (before.1.as_str(), 2500));
    assert_eq!(key_files(&data), vec![rotated.to.clone()], "the old key file is gone");

    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    assert_eq!(gateway.vault().kek_id(), rotated.to);
    let after = stored(&data).customer("cus-7").unwrap().unwrap().sealed.unwrap();
    assert_eq!(after.record, before.0.record, "field ciphertexts are untouched");
    assert_ne!(after.wrapped_key, before.0.wrapped_key, "the data key is wrapped anew");
    for index in [0, 7, 1999, 2499] {
        let customer = stored(&data).customer(&format!("cus-{index}")).unwrap().unwrap().sealed.unwrap();
        let opened = gateway.vault().open(&format!("cus-{index}"), &customer, &[Field::Email]).unwrap();
        assert_eq!(opened[&Field::Email], json!(format!("c{index}@example.org")));
    }
    // The rotation is in the audit ledger.
    drop(gateway);
    let last = ledger_texts(&data).pop().unwrap();
    assert!(last.contains("\"change\":\"keys.rotate\""), "{last}");
    assert!(!last.contains("Customer"), "entries hold identifiers only: {last}");
}

#[test]
fn a_handle_opened_for_analysis_answers_no_access_request() {
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    let _database = init(&data, Arc::new(SystemClock));
    let agents = r#"{"id": "agt-sam", "name": "Sam Ortiz", "team": "l1-chat", "site": "us-sf", "employer": "staff", "shift": [0, 0]}"#;
    {
        let gateway = data.open(Arc::new(SystemClock)).unwrap();
        let admin = gateway.authenticate(&gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
        let fields = BTreeMap::from([(Field::Email, json!("c1@example.org"))]);
        wait(gateway.put_customer(&admin, "cus-1", &fields, false, "test")).unwrap();
        cordon_gateway::import(&gateway, cordon_gateway::ImportKind::Agents, agents.as_bytes(), |_| {}).unwrap();
    }
    let analysis = data.open_for_analysis(Arc::new(SystemClock)).unwrap();
    let agent = analysis.authenticate(&analysis.issue_agent_token("agt-sam").unwrap()).unwrap();
    let size = analysis.audit().size();
    let refused = wait(analysis.search(&agent, "email", "c1@example.org", "r-1")).unwrap_err();
    assert!(refused.to_string().contains("opened for analysis"), "{refused}");
    assert_eq!(analysis.audit().size(), size, "a refused request writes nothing");
    drop(analysis);

    // The same request on a handle that replayed detection is answered and recorded.
    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let agent = gateway.authenticate(&gateway.issue_agent_token("agt-sam").unwrap()).unwrap();
    let answered = wait(gateway.search(&agent, "email", "c1@example.org", "r-2"));
    assert!(answered.is_ok() || matches!(answered, Err(cordon_gateway::GatewayError::Denied { .. })), "{answered:?}");
    assert_eq!(gateway.audit().size(), size + 1, "the decision is a ledger entry");
}

/// A routine rotation of the token key keeps earlier tokens working until the next one; a
/// rotation after a leak stops every earlier token at once; each is a ledger entry, and a
/// token signed with a key never this directory's is refused throughout.
#[test]
fn rotating_the_token_key_keeps_or_revokes_earlier_tokens_as_asked() {
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    let _database = init(&data, Arc::new(SystemClock));
    let issue = || data.open(Arc::new(SystemClock)).unwrap().issue_role_token(TokenRole::Analyst).unwrap();
    let accepted = |token: &str| data.open(Arc::new(SystemClock)).unwrap().authenticate(token).is_ok();
    let stranger = cordon_gateway::TokenKey::new(&[9u8; 32])
        .unwrap()
        .issue(&cordon_gateway::Claims::in_process("role:analyst".into(), TokenRole::Analyst, "x"))
        .unwrap();
    let first = issue();
    let entries = |data: &DataDir| {
        ledger_texts(data).into_iter().filter(|text| text.contains("keys.rotate-token")).collect::<Vec<_>>()
    };

    data.rotate_token_key(Arc::new(SystemClock), true).unwrap();
    let second = issue();
    assert!(accepted(&first), "a routine rotation keeps earlier tokens");
    assert!(accepted(&second));
    assert!(!accepted(&stranger));

    data.rotate_token_key(Arc::new(SystemClock), true).unwrap();
    assert!(!accepted(&first), "the key before the previous one is dropped");
    assert!(accepted(&second));

    // A console session opened with a token of the leaked key outlives no rotation after a leak.
    let secret = {
        let gateway = data.open(Arc::new(SystemClock)).unwrap();
        wait(gateway.start_session(&second, "test")).unwrap().secret
    };
    let session_lives =
        |secret: &str| wait(data.open(Arc::new(SystemClock)).unwrap().session_claims(secret, "test")).is_ok();
    assert!(session_lives(&secret));
    data.rotate_token_key(Arc::new(SystemClock), false).unwrap();
    assert!(!session_lives(&secret), "a rotation after a leak ends every console session");
    let third = issue();
    assert!(!accepted(&second), "a rotation after a leak revokes every earlier token");
    assert!(accepted(&third));
    assert!(!data.path("keys/token-signing.previous").exists());
    let recorded = entries(&data);
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    assert!(recorded[2].contains("every earlier token revoked; 1 console sessions ended"), "{}", recorded[2]);
}

/// Rotating the blind-index key recomputes every live customer's search entries under the new
/// key (across batches), swaps them in with the key's name, and removes the old key: searches
/// find the same customers by the new digests and nobody by the old ones, a deleted customer
/// stays unfindable, and a later change of an email removes the email's new entry (the
/// customer's own list of digests was rewritten too).
#[test]
fn rotating_the_blind_index_key_keeps_every_search_and_drops_the_old_digests() {
    use cordon_vault::SearchKey;
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    let _database = init(&data, Arc::new(SystemClock));
    let email = |index: usize| format!("c{index}@example.org");
    let old_digest = {
        let gateway = data.open(Arc::new(SystemClock)).unwrap();
        let admin = gateway.authenticate(&gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
        for index in 0..1500 {
            let fields = BTreeMap::from([
                (Field::FullName, json!(format!("Customer {index}"))),
                (Field::Email, json!(email(index))),
                (Field::Phone, json!(format!("+353 86 555 {index:04}"))),
            ]);
            wait(gateway.put_customer(&admin, &format!("cus-{index}"), &fields, false, "test")).unwrap();
        }
        wait(gateway.delete_customer(&admin, "cus-9", "test")).unwrap();
        gateway.vault().search_digest(SearchKey::Email, &email(1234)).unwrap()
    };
    assert_eq!(stored(&data).search(SearchKey::Email, &old_digest).unwrap(), ["cus-1234"]);

    // An empty directory rotates too (nothing staged, an empty index swapped in).
    let empty = DataDir::new(&scratch.path().join("empty"));
    let _empty_database = init(&empty, Arc::new(SystemClock));
    assert_eq!(empty.rotate_blind_index_key(Arc::new(SystemClock)).unwrap(), (0, 0));

    let (customers, entries) = data.rotate_blind_index_key(Arc::new(SystemClock)).unwrap();
    assert_eq!(customers, 1499, "every live customer");
    assert!(entries >= 1499 * 7, "{entries} entries");
    let keys: Vec<String> = std::fs::read_dir(data.path("keys"))
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("blind"))
        .collect();
    assert!(keys.len() == 1 && keys[0].starts_with("blind-") && keys[0] != "blind-index", "{keys:?}");

    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let digest = |kind, value: &str| gateway.vault().search_digest(kind, value).unwrap();
    assert_ne!(digest(SearchKey::Email, &email(1234)), old_digest);
    let store = stored(&data);
    assert_eq!(store.search(SearchKey::Email, &digest(SearchKey::Email, &email(1234))).unwrap(), ["cus-1234"]);
    assert_eq!(store.search(SearchKey::Phone, &digest(SearchKey::Phone, "+353 86 555 0007")).unwrap(), ["cus-7"]);
    assert_eq!(store.search(SearchKey::AccountId, &digest(SearchKey::AccountId, "cus-1499")).unwrap(), ["cus-1499"]);
    assert!(store.search(SearchKey::Email, &old_digest).unwrap().is_empty(), "the old digests are gone");
    assert!(
        store.search(SearchKey::Email, &digest(SearchKey::Email, &email(9))).unwrap().is_empty(),
        "deleted stays gone"
    );

    let admin = gateway.authenticate(&gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
    let fields = BTreeMap::from([(Field::Email, json!("moved@example.org"))]);
    wait(gateway.put_customer(&admin, "cus-1234", &fields, false, "test")).unwrap();
    assert!(store.search(SearchKey::Email, &digest(SearchKey::Email, &email(1234))).unwrap().is_empty());
    assert_eq!(store.search(SearchKey::Email, &digest(SearchKey::Email, "moved@example.org")).unwrap(), ["cus-1234"]);
    drop(gateway);
    let found = ledger_texts(&data).iter().rev().take(5).any(|text| text.contains("keys.rotate-blind-index"));
    assert!(found, "the rotation is in the ledger");
}

#[test]
fn backups_are_taken_one_at_a_time_and_only_by_the_administrators_identity() {
    // A backup of the folder is the embedded default's (on PostgreSQL it refuses: a test of
    // the shared store says so), so this runs on it whatever the suite runs on.
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    data.init(None, Arc::new(SystemClock)).unwrap();
    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let admin = gateway.authenticate(&gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
    let analyst = gateway.authenticate(&gateway.issue_role_token(TokenRole::Analyst).unwrap()).unwrap();
    assert!(matches!(wait(gateway.backup(&analyst, "test")), Err(cordon_gateway::GatewayError::WrongRole { .. })));
    let first = wait(gateway.backup(&admin, "test")).unwrap();
    // While the first is held (being written out), a second is refused.
    match wait(gateway.backup(&admin, "test")) {
        Err(cordon_gateway::GatewayError::Conflict(why)) => assert!(why.contains("one at a time"), "{why}"),
        other => panic!("a second backup at once: {other:?}"),
    }
    assert!(data.path("backup-staging").exists(), "the first one's copy is staged");
    let mut out = Vec::new();
    let summary = first.write_to(&mut out).unwrap();
    assert_eq!(summary.bytes as usize, out.len());
    assert!(!data.path("backup-staging").exists(), "written out, its staged copy is gone");
    // Then the next may start.
    let next = wait(gateway.backup(&admin, "test")).unwrap();
    drop(next);
    assert!(!data.path("backup-staging").exists(), "dropped unwritten, its staged copy is gone too");
}
