//! The store through its public interface.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use cordon_directory::{Agent, AgentStatus, Approval, ApprovalKind, ApprovalStatus, Role, Shift, Ticket, TicketStatus};
use std::collections::{BTreeMap, BTreeSet};

use cordon_store::{AccessEvent, CustomerRow, Exposure, Store};
use cordon_vault::{SealedCustomer, SealedRecord, SearchKey};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cordon.sqlite")).unwrap();
    (dir, store)
}

fn customer(id: &str, digest: u8) -> CustomerRow {
    let mut record = SealedRecord::default();
    record.insert(cordon_vault::Field::Email, vec![1, 2, 3]);
    CustomerRow {
        id: id.into(),
        sealed: SealedCustomer { kek_id: "kek-1".into(), wrapped_key: vec![digest; 48], record },
        index: vec![(SearchKey::Email, [digest; 32])],
        canary: false,
    }
}

#[test]
fn customers_upsert_search_and_shred() {
    let (_dir, store) = store();
    store.upsert_customers(&[customer("c-1", 1), customer("c-2", 2)], 100).unwrap();
    store.upsert_customers(&[customer("c-1", 3)], 101).unwrap();
    assert_eq!(store.customer_count().unwrap(), 2);
    assert_eq!(store.search(SearchKey::Email, &[3; 32]).unwrap(), vec!["c-1"]);
    assert!(store.search(SearchKey::Email, &[1; 32]).unwrap().is_empty(), "a re-import replaces old search entries");
    assert!(store.search(SearchKey::Phone, &[3; 32]).unwrap().is_empty(), "kinds do not mix");
    let read = store.customer("c-1").unwrap().unwrap();
    assert_eq!(read.sealed.unwrap().wrapped_key, vec![3; 48]);

    assert!(store.delete_customer("c-1", 200).unwrap());
    assert!(!store.delete_customer("c-1", 201).unwrap(), "deleting twice changes nothing");
    assert_eq!(store.customer("c-1").unwrap().unwrap().sealed, None, "the data key is gone");
    assert!(store.search(SearchKey::Email, &[3; 32]).unwrap().is_empty());
    assert_eq!(store.customer_count().unwrap(), 1);
    assert_eq!(store.customer("nobody").unwrap(), None);
}

#[test]
fn the_live_customer_count_follows_imports_replacements_and_shredding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.sqlite");
    let store = Store::open(&path).unwrap();
    // (step, what it does, expected live customers after it)
    type Step = (&'static str, Box<dyn Fn(&Store)>, u64);
    let steps: Vec<Step> = vec![
        (
            "import three",
            Box::new(|s| s.upsert_customers(&[customer("c-1", 1), customer("c-2", 2), customer("c-3", 3)], 1).unwrap()),
            3,
        ),
        (
            "replace one, add one",
            Box::new(|s| s.upsert_customers(&[customer("c-1", 4), customer("c-4", 5)], 2).unwrap()),
            4,
        ),
        (
            "the same id twice in a batch",
            Box::new(|s| s.upsert_customers(&[customer("c-5", 6), customer("c-5", 7)], 3).unwrap()),
            5,
        ),
        ("shred one", Box::new(|s| assert!(s.delete_customer("c-2", 4).unwrap())), 4),
        ("shred it again", Box::new(|s| assert!(!s.delete_customer("c-2", 5).unwrap())), 4),
        ("shred one never imported", Box::new(|s| assert!(!s.delete_customer("c-9", 6).unwrap())), 4),
        ("import the shredded one again", Box::new(|s| s.upsert_customers(&[customer("c-2", 8)], 7).unwrap()), 5),
    ];
    for (step, run, expected) in steps {
        run(&store);
        assert_eq!(store.customer_count().unwrap(), expected, "after: {step}");
    }
    drop(store);
    assert_eq!(Store::open(&path).unwrap().customer_count().unwrap(), 5, "the count survives a reopen");
}

#[test]
fn directory_round_trips() {
    let (_dir, store) = store();
    let agent = Agent {
        id: "a-1".into(),
        name: "Agent One".into(),
        team: "l1-chat".into(),
        site: "vendor-bpo-1".into(),
        employer: "vendor-bpo-1".into(),
        shift: Shift::new(22, 6).unwrap(),
        role: Role::Agent,
        status: AgentStatus::Active,
    };
    store.upsert_agents(std::slice::from_ref(&agent)).unwrap();
    assert_eq!(store.agent("a-1").unwrap(), Some(agent.clone()));
    assert!(store.set_agent_status("a-1", AgentStatus::Suspended).unwrap());
    assert_eq!(store.agent("a-1").unwrap().unwrap().status, AgentStatus::Suspended);
    assert!(!store.set_agent_status("nobody", AgentStatus::Suspended).unwrap());

    let ticket = Ticket {
        id: "t-1".into(),
        requester: "c-1".into(),
        category: "general_inquiry".into(),
        status: TicketStatus::Open,
        assignee: Some("a-1".into()),
        created_at: 10,
        updated_at: 10,
    };
    store.upsert_tickets(std::slice::from_ref(&ticket)).unwrap();
    let closed = Ticket { status: TicketStatus::Closed, updated_at: 20, ..ticket.clone() };
    store.upsert_tickets(std::slice::from_ref(&closed)).unwrap();
    assert_eq!(store.ticket("t-1").unwrap(), Some(closed));
}

#[test]
fn approvals_are_in_force_only_when_granted_and_unexpired() {
    let (_dir, store) = store();
    let mut approval = Approval {
        id: "ap-1".into(),
        kind: ApprovalKind::BreakGlass,
        requester: "a-1".into(),
        customer: "c-1".into(),
        status: ApprovalStatus::Requested,
        approver: None,
        created_at: 100,
        decided_at: None,
        expires_at: None,
    };
    store.put_approval(&approval).unwrap();
    assert_eq!(store.approval_in_force("a-1", "c-1", ApprovalKind::BreakGlass, 150).unwrap(), None);
    approval.status = ApprovalStatus::Approved;
    approval.approver = Some("an-1".into());
    approval.decided_at = Some(150);
    approval.expires_at = Some(150 + 3600);
    store.put_approval(&approval).unwrap();
    assert_eq!(store.approval("ap-1").unwrap(), Some(approval.clone()));
    let cases = [
        ("a-1", "c-1", ApprovalKind::BreakGlass, 200, true),
        ("a-1", "c-1", ApprovalKind::BreakGlass, 150 + 3600, false),
        ("a-2", "c-1", ApprovalKind::BreakGlass, 200, false),
        ("a-1", "c-2", ApprovalKind::BreakGlass, 200, false),
        ("a-1", "c-1", ApprovalKind::SecondApprover, 200, false),
    ];
    for (requester, customer, kind, now, expected) in cases {
        let found = store.approval_in_force(requester, customer, kind, now).unwrap();
        assert_eq!(found.is_some(), expected, "{requester} {customer} {kind} at {now}");
    }
}

#[test]
fn access_history_is_per_customer_in_ledger_order() {
    let (_dir, store) = store();
    for (index, customer) in [(5u64, "c-1"), (3, "c-1"), (4, "c-2")] {
        store
            .add_access_events(
                &[AccessEvent {
                    ledger_index: index,
                    time: 1000 + index as i64,
                    agent_id: "a-1".into(),
                    customer_id: Some(customer.into()),
                    ticket_id: Some("t-1".into()),
                    action: "reveal".into(),
                    fields: vec!["email".into(), "phone".into()],
                    allowed: index != 3,
                    policies: vec!["reveal-field-needed-by-ticket".into()],
                    request_id: format!("r-{index}"),
                }],
                index + 1,
            )
            .unwrap();
    }
    assert_eq!(store.access_through().unwrap(), 5, "the position is the last batch's");
    let history = store.access_history("c-1", 100).unwrap();
    assert_eq!(history.iter().map(|event| event.ledger_index).collect::<Vec<_>>(), vec![3, 5]);
    assert_eq!(history[1].fields, vec!["email", "phone"]);
    assert!(!history[0].allowed);
}

/// Every agent's reach by customer, as `for_each_reach` reads it, and the last change it holds.
fn reach_by_customer(store: &Store) -> (u64, BTreeMap<String, Vec<(String, u8)>>) {
    let mut reach: BTreeMap<String, Vec<(String, u8)>> = BTreeMap::new();
    let through = store
        .for_each_reach(|agent, customer, seen| {
            reach.entry(customer.to_string()).or_default().push((agent.into(), seen))
        })
        .unwrap();
    for agents in reach.values_mut() {
        agents.sort();
    }
    (through, reach)
}

/// Regression: a cached null model holds no pairs of agent and customer (they grew its memory
/// with every access), so to catch up it needs each changed customer's reach as it was when
/// the model was built and as it is now. New pairs, new ways for known pairs, ways already
/// known (no change), in batches: the store's before and now must equal the reach read whole
/// at the two moments, and every customer it leaves out must be unchanged.
#[test]
fn reach_changes_give_each_changed_customer_as_it_was_and_as_it_is() {
    let (_dir, store) = store();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut index = 0u64;
    let mut snapshots = vec![reach_by_customer(&store)];
    for _ in 0..12 {
        let batch: Vec<(Exposure, u8)> = (0..40)
            .map(|_| {
                index += 1;
                let exposure = Exposure {
                    ledger_index: index,
                    time_ms: index as i64,
                    agent_id: format!("a-{}", next(5)),
                    customer_id: format!("c-{}", next(30)),
                    action: "card".into(),
                    fields: Vec::new(),
                };
                // Ways 0 too: a pair shown in no way attribution reads is still a pair.
                (exposure, [0u8, 1, 2, 4, 8][next(5) as usize])
            })
            .collect();
        store.add_exposures(&batch, index + 1).unwrap();
        snapshots.push(reach_by_customer(&store));
    }
    let (_, now) = snapshots.last().unwrap().clone();
    for (through, then) in &snapshots {
        let (last, changes) = store.reach_changes_after(*through).unwrap().expect("the log holds every change");
        assert_eq!(last, snapshots.last().unwrap().0);
        let changed: BTreeSet<&str> = changes.iter().map(|change| change.customer.as_str()).collect();
        for change in &changes {
            let sorted = |pairs: &[(String, u8)]| {
                let mut pairs = pairs.to_vec();
                pairs.sort();
                pairs
            };
            assert_eq!(
                sorted(&change.before),
                then.get(&change.customer).cloned().unwrap_or_default(),
                "{}",
                change.customer
            );
            assert_eq!(
                sorted(&change.now),
                now.get(&change.customer).cloned().unwrap_or_default(),
                "{}",
                change.customer
            );
            assert_ne!(sorted(&change.before), sorted(&change.now), "{} is listed but did not change", change.customer);
        }
        for (customer, agents) in &now {
            if !changed.contains(customer.as_str()) {
                assert_eq!(then.get(customer), Some(agents), "{customer} changed but is not listed");
            }
        }
    }
}
