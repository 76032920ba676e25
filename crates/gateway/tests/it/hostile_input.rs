//! Outside input to the gateway's parsers: bearer tokens and JSON-lines imports of any
//! shape answer with a value or an error, never a panic, and leave a data directory that
//! opens and verifies.

use std::sync::Arc;

use cordon_gateway::{DataDir, ImportKind, SystemClock, TokenKey};
use proptest::prelude::*;

/// Text shaped like a token: three dot-separated parts of the base64url alphabet.
fn token_like() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9_-]{0,60}", "[A-Za-z0-9_-]{0,200}", "[A-Za-z0-9_-]{0,60}", "[.]{0,4}")
        .prop_map(|(header, payload, signature, dots)| format!("{header}.{payload}.{signature}{dots}"))
}

/// Lines shaped like an import: keys of every kind, values of every JSON type, broken
/// syntax, hostile strings.
fn import_lines() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        "-?[0-9]{1,25}(\\.[0-9]{1,5})?",
        "\"[ -~]{0,16}\"",
        "\"\\\\u00[01][0-9a-f]\"",
        Just("\"role:admin\"".to_string()),
        Just("[4, 12]".to_string()),
    ];
    let key = prop_oneof![
        Just("id"),
        Just("name"),
        Just("team"),
        Just("site"),
        Just("employer"),
        Just("role"),
        Just("status"),
        Just("shift"),
        Just("requester"),
        Just("category"),
        Just("assignee"),
        Just("fields"),
        Just("email"),
        Just("canary"),
        Just("x"),
    ];
    proptest::collection::vec(proptest::collection::vec((key, value), 0..8), 1..12).prop_map(|lines| {
        lines
            .into_iter()
            .map(|pairs| {
                let body: Vec<String> = pairs.iter().map(|(key, value)| format!("\"{key}\": {value}")).collect();
                format!("{{{}}}\n", body.join(", "))
            })
            .collect::<String>()
    })
}

proptest! {
    #[test]
    fn tokens_of_any_shape_are_refused_not_panicked_on(token in token_like(), other in any::<String>()) {
        let key = TokenKey::new(&[7u8; 32]).unwrap();
        prop_assert!(key.verify(&token, 1_795_000_000).is_err());
        prop_assert!(key.verify(&other, 1_795_000_000).is_err());
    }
}

#[test]
fn imports_of_any_shape_count_every_line_and_leave_a_directory_that_opens() {
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    let _database = crate::init(&data, Arc::new(SystemClock));
    let gateway = data.open(Arc::new(SystemClock)).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 48,
        ..proptest::test_runner::Config::default()
    });
    runner
        .run(&(import_lines(), 0..3usize), |(text, kind)| {
            let kind = [ImportKind::Agents, ImportKind::Tickets, ImportKind::Customers][kind];
            let lines = text.lines().count() as u64;
            match cordon_gateway::import(&gateway, kind, text.as_bytes(), |_| {}) {
                Ok(report) => prop_assert_eq!(report.imported + report.rejected.len() as u64, lines, "{}", text),
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
            Ok(())
        })
        .unwrap();
    drop(gateway);
    let reopened = data.open(Arc::new(SystemClock)).unwrap();
    let replayed = reopened.replay_detection().unwrap();
    assert!(replayed.unreadable.is_empty(), "{:?}", replayed.unreadable);
}
