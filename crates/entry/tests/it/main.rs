//! The audit entry through its public interface: every kind round-trips with hostile strings,
//! the size limit holds before anything reaches a ledger, versions are checked, and version 1
//! entries (before `contained`) still read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use cordon_entry::{
    AccessAction, AccessEntry, AlertEntry, ChangeEntry, Containment, Decision, ENTRY_BYTES_MAX, Entry, EntryError,
    SignalEntry, VERSION, VerifyOutcome, decode,
};
use proptest::prelude::*;

fn access(text: &str) -> Entry {
    Entry::Access(AccessEntry {
        customer: Some(text.to_string()),
        ticket: Some(text.to_string()),
        fields: vec![text.to_string()],
        search_by: Some(text.to_string()),
        matches: Some(vec![text.to_string(), String::new()]),
        approval: Some(text.to_string()),
        why: Some(text.to_string()),
        opened_by: Some(text.to_string()),
        assigned_by: Some(text.to_string()),
        beyond_need: vec![text.to_string()],
        off_shift: true,
        verify: Some(VerifyOutcome::Refused),
        contained: Some(Containment::StepUp),
        policies: vec![text.to_string()],
        session: Some(text.to_string()),
        ..AccessEntry::new(-5, text, text, AccessAction::Reveal, Decision::Deny)
    })
}

fn change(text: &str) -> Entry {
    Entry::Change(ChangeEntry::new(i64::MAX, text, text, text, text, Some(text.to_string())))
}

fn alert(text: &str) -> Entry {
    Entry::Alert(AlertEntry {
        v: VERSION,
        time_ms: i64::MIN,
        request: text.to_string(),
        alert: u64::MAX,
        agent: text.to_string(),
        level: text.to_string(),
        risk: 1.5,
        signals: vec![SignalEntry { name: text.to_string(), observed: 0.25, baseline: -3.0, points: 1e6 }],
        evidence: vec![0, u64::MAX],
    })
}

/// Regression: detection's replay read entries with borrowed `&str` fields, which serde
/// cannot fill from a JSON string with an escape, so one request for a customer id holding
/// a quote, a backslash, NUL or a control character stopped every later start.
#[test]
fn escaped_strings_round_trip_in_every_kind() {
    let hostile = [
        "\"",
        "\\",
        "\0",
        "\u{1}\u{1f}\u{7f}",
        "a\"b\\c\nd\re\tf",
        "\u{2028}\u{2029}",
        "é漢字🙂",
        "</script><!--",
        "detector:suspend",
        "",
    ];
    for text in hostile {
        for entry in [access(text), change(text), alert(text)] {
            let bytes = entry.encode().unwrap_or_else(|error| panic!("{text:?}: {error}"));
            assert_eq!(decode(&bytes), Ok(entry.clone()), "{text:?} in a {} entry", entry.kind());
        }
    }
}

proptest! {
    #[test]
    fn any_string_round_trips(text in any::<String>()) {
        for entry in [access(&text), change(&text), alert(&text)] {
            let bytes = entry.encode().map_err(|error| TestCaseError::fail(error.to_string()))?;
            prop_assert_eq!(decode(&bytes), Ok(entry));
        }
    }

    /// Whatever bytes are handed to `decode`, it answers; it never panics.
    #[test]
    fn decode_answers_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }
}

#[test]
fn an_entry_over_the_ledger_limit_is_refused_by_encode() {
    let cases = [(ENTRY_BYTES_MAX - 1000, true), (ENTRY_BYTES_MAX, false), (ENTRY_BYTES_MAX * 4, false)];
    for (length, fits) in cases {
        let entry = change(&"x".repeat(length / 5));
        let encoded = entry.encode();
        assert_eq!(encoded.is_ok(), fits, "a change entry holding {length} bytes of strings");
        if let Err(error) = encoded {
            assert!(matches!(error, EntryError::TooLarge { kind: "change", .. }), "{error}");
        }
    }
}

#[test]
fn versions_are_checked() {
    let cases: [(&str, Result<(), EntryError>); 7] = [
        // Fields in another order than cordon writes them still read.
        (r#"{"time_ms":1,"v":2,"request":"r","actor":"a","change":"agent.put","target":"t","kind":"change"}"#, Ok(())),
        (r#" {"kind":"alert","v":2}"#, Err(EntryError::Malformed { reason: String::new() })),
        (r#"{"kind":"change","v":1,"time_ms":1,"request":"r","actor":"a","change":"agent.put","target":"t"}"#, Ok(())),
        (r#"{"kind":"change","v":2,"time_ms":1,"request":"r","actor":"a","change":"agent.put","target":"t"}"#, Ok(())),
        (
            r#"{"kind":"change","v":3,"time_ms":1,"request":"r","actor":"a","change":"agent.put","target":"t"}"#,
            Err(EntryError::Version { version: 3 }),
        ),
        (
            r#"{"kind":"change","v":0,"time_ms":1,"request":"r","actor":"a","change":"agent.put","target":"t"}"#,
            Err(EntryError::Version { version: 0 }),
        ),
        (r#"{"kind":"party","v":2}"#, Err(EntryError::Malformed { reason: String::new() })),
    ];
    for (text, expected) in cases {
        let decoded = decode(text.as_bytes()).map(|_| ());
        match (&decoded, &expected) {
            (Err(EntryError::Malformed { .. }), Err(EntryError::Malformed { .. })) => {}
            _ => assert_eq!(decoded, expected, "{text}"),
        }
    }
}

#[test]
fn version_one_access_entries_read_their_containment_from_the_policy() {
    let cases = [
        (r#"["detector:suspend"]"#, Some(Containment::Suspend)),
        (r#"["detector:step-up"]"#, Some(Containment::StepUp)),
        (r#"["reveal-needed-field"]"#, None),
        (r#"[]"#, None),
    ];
    for (policies, expected) in cases {
        let text = format!(
            r#"{{"v":1,"kind":"access","time_ms":5,"request":"r-1","agent":"agt-1","action":"view","customer":"cus-1","decision":"deny","policies":{policies}}}"#
        );
        let Ok(Entry::Access(entry)) = decode(text.as_bytes()) else { panic!("{text} did not read") };
        assert_eq!(entry.contained, expected, "{policies}");
    }
}

#[test]
fn customers_shown_follows_the_decision_and_the_action() {
    let search = |decision| AccessEntry {
        matches: Some(vec!["cus-1".into(), "cus-2".into()]),
        ..AccessEntry::new(0, "r", "a", AccessAction::Search, decision)
    };
    let about = |action, decision| AccessEntry {
        customer: Some("cus-3".into()),
        ..AccessEntry::new(0, "r", "a", action, decision)
    };
    let cases: Vec<(AccessEntry, Vec<&str>)> = vec![
        (search(Decision::Allow), vec!["cus-1", "cus-2"]),
        (search(Decision::Deny), vec![]),
        (about(AccessAction::View, Decision::Allow), vec!["cus-3"]),
        (about(AccessAction::Reveal, Decision::Allow), vec!["cus-3"]),
        (about(AccessAction::Verify, Decision::Allow), vec!["cus-3"]),
        (about(AccessAction::Reveal, Decision::Deny), vec![]),
        (about(AccessAction::Approve, Decision::Allow), vec![]),
    ];
    for (entry, expected) in cases {
        assert_eq!(entry.customers_shown(), expected, "{entry:?}");
    }
}
