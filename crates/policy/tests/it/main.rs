//! The policy engine through its public interface.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;

use cordon_policy::{CaseFile, CategoryTable, DEFAULT_POLICIES, DEFAULT_SCHEMA, PolicyEngine, PolicyError, run_cases};

const CASES: &str = include_str!("../../../../policies/cases.toml");

#[test]
fn the_shipped_case_table_passes_and_covers_every_policy() {
    let engine = PolicyEngine::default_set().unwrap();
    let cases = CaseFile::parse(CASES).unwrap().cases;
    let outcomes = run_cases(&engine, &CategoryTable::default(), &cases);
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|outcome| outcome.failure.as_ref().map(|failure| format!("{}: {failure}", outcome.name)))
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), outcomes.len(), failures.join("\n"));

    // Every policy decides at least one case, so no rule goes untested.
    let deciding: BTreeSet<String> = outcomes
        .iter()
        .filter_map(|outcome| outcome.decision.as_ref())
        .flat_map(|decision| decision.policies.clone())
        .collect();
    let all: BTreeSet<String> = engine.policy_ids().into_iter().collect();
    let untested: Vec<_> = all.difference(&deciding).collect();
    assert!(untested.is_empty(), "policies no case exercises: {untested:?}");
    // Both outcomes occur.
    assert!(outcomes.iter().any(|outcome| outcome.expected == "allow"));
    assert!(outcomes.iter().any(|outcome| outcome.expected == "deny"));
}

#[test]
fn denials_say_why_in_plain_words() {
    let engine = PolicyEngine::default_set().unwrap();
    let cases = CaseFile::parse(CASES).unwrap().cases;
    let reason_of = |name: &str| {
        let case = cases.iter().find(|case| case.name == name).unwrap();
        engine.decide(&case.to_request(&CategoryTable::default()).unwrap()).reason
    };
    let expectations = [
        ("view without any ticket", "no ticket given"),
        ("view with a closed ticket", "ticket `ticket-1` is closed"),
        ("view with a ticket assigned to someone else", "is not assigned to you"),
        ("view a customer through another customer's ticket", "raised by another customer"),
        ("reveal without a reason", "a reveal needs a reason"),
        ("reveal a field the category does not need", "do not need field `bank_account`"),
        ("break-glass after the approval expired", "has expired"),
        ("break-glass reveal without a reason", "needs a reason, even under break-glass"),
        ("analyst approves their own request", "nobody may approve their own request"),
        ("suspended agent with a valid ticket views", "suspended or offboarded"),
        ("vendor agent reveals a bank account", "vendor staff never reveal"),
        ("reveal a field the category needs, with a reason", "needs this field"),
    ];
    for (name, fragment) in expectations {
        let reason = reason_of(name);
        assert!(reason.contains(fragment), "{name}: `{reason}` should contain `{fragment}`");
    }
}

#[test]
fn policy_sets_are_validated_before_use() {
    let missing_id = "permit (principal, action, resource);";
    assert!(matches!(PolicyEngine::load(missing_id, DEFAULT_SCHEMA), Err(PolicyError::MissingId { .. })));
    let duplicate =
        "@id(\"a\") permit (principal, action, resource);\n@id(\"a\") forbid (principal, action, resource);";
    assert!(matches!(PolicyEngine::load(duplicate, DEFAULT_SCHEMA), Err(PolicyError::DuplicateId(id)) if id == "a"));
    let unknown_attribute =
        "@id(\"typo\") permit (principal, action == Action::\"view\", resource) when { principal.teem == \"x\" };";
    let error = PolicyEngine::load(unknown_attribute, DEFAULT_SCHEMA).unwrap_err();
    assert!(matches!(error, PolicyError::Invalid(_)), "{error}");
    assert!(error.to_string().contains("teem"), "{error}");
    assert!(matches!(PolicyEngine::load("permit (", DEFAULT_SCHEMA), Err(PolicyError::Parse(_))));
    assert!(matches!(PolicyEngine::load(DEFAULT_POLICIES, "entity ;"), Err(PolicyError::Schema(_))));
    let engine = PolicyEngine::default_set().unwrap();
    assert_eq!(engine.hash().len(), 64);
    assert_eq!(engine.hash(), PolicyEngine::default_set().unwrap().hash(), "the hash is deterministic");
}

#[test]
fn malformed_case_files_are_refused_clearly() {
    let error =
        CaseFile::parse("[[case]]\nname = \"x\"\naction = \"view\"\nexpect = \"allow\"\nagnet = {}\n").unwrap_err();
    assert!(error.contains("agnet"), "{error}");
    let file = CaseFile::parse("[[case]]\nname = \"x\"\naction = \"peek\"\nexpect = \"allow\"\n").unwrap();
    let outcomes = run_cases(&PolicyEngine::default_set().unwrap(), &CategoryTable::default(), &file.cases);
    assert!(outcomes[0].failure.as_ref().unwrap().contains("unknown action `peek`"));
}

#[test]
fn team_membership_works_in_custom_policies() {
    // The engine builds team membership only when a policy names a Team; this one does.
    let policies = format!(
        "{DEFAULT_POLICIES}\n@id(\"kyc-team-searches-only\")\nforbid (principal, action == Action::\"search\", resource) unless {{ principal in Team::\"kyc-review\" }};"
    );
    let engine = PolicyEngine::load(&policies, DEFAULT_SCHEMA).unwrap();
    let file = CaseFile::parse(
        "[[case]]\nname = \"l1 searches\"\naction = \"search\"\nexpect = \"deny\"\nexpect_policy = \"kyc-team-searches-only\"\n\n[[case]]\nname = \"kyc searches\"\naction = \"search\"\nagent = { team = \"kyc-review\" }\nexpect = \"allow\"\n",
    )
    .unwrap();
    for outcome in run_cases(&engine, &CategoryTable::default(), &file.cases) {
        assert!(outcome.failure.is_none(), "{}: {:?}", outcome.name, outcome.failure);
    }
}
