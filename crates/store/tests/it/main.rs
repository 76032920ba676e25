//! The store through its public interface.

// A failing test should stop loudly where it failed; the no-panic lints are for library code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use cordon_directory::{Agent, AgentStatus, Approval, ApprovalKind, ApprovalStatus, Role, Shift, Ticket, TicketStatus};
use std::collections::{BTreeMap, BTreeSet};

use cordon_store::{AccessEvent, CustomerRow, Exposure, OthersAtWork, Store};
use cordon_vault::{SealedCustomer, SealedRecord, SearchKey};

mod backends;
mod ledger;

use backends::{Backend, backends};

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
    for backend in backends() {
        customers_upsert_search_and_shred_on(&backend);
    }
}

fn customers_upsert_search_and_shred_on(backend: &Backend) {
    let store = backend.open();
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

/// A customer with an agents' search entry (email, digest `digest`) and a match-only one
/// (masked email, digest `digest + 100`).
fn customer_with_match(id: &str, digest: u8) -> CustomerRow {
    let mut row = customer(id, digest);
    row.index.push((SearchKey::MaskedEmail, [digest + 100; 32]));
    row
}

#[test]
fn match_entries_are_written_at_the_first_attribution_not_at_import() {
    for backend in backends() {
        match_entries_on(&backend);
    }
}

fn match_entries_on(backend: &Backend) {
    let mut store = backend.open();
    let masked =
        |store: &Store, digest: u8| store.search_up_to(SearchKey::MaskedEmail, &[digest + 100; 32], 10).unwrap();
    // (step, what it does, customers the match index then takes,
    //  (digest, customers it finds before the index is written, and after))
    type Finds = Vec<(u8, Vec<&'static str>, Vec<&'static str>)>;
    type Step = (&'static str, Box<dyn Fn(&Store)>, u64, Finds);
    let steps: Vec<Step> = vec![
        (
            "import two",
            Box::new(|s| {
                s.upsert_customers(&[customer_with_match("c-1", 1), customer_with_match("c-2", 2)], 1).unwrap()
            }),
            2,
            vec![(1, vec![], vec!["c-1"]), (2, vec![], vec!["c-2"])],
        ),
        ("nothing new", Box::new(|_| {}), 0, vec![(1, vec!["c-1"], vec!["c-1"])]),
        (
            "replace one",
            Box::new(|s| s.upsert_customers(&[customer_with_match("c-1", 3)], 2).unwrap()),
            1,
            vec![(1, vec![], vec![]), (3, vec![], vec!["c-1"]), (2, vec!["c-2"], vec!["c-2"])],
        ),
        (
            "import one and shred it before any attribution",
            Box::new(|s| {
                s.upsert_customers(&[customer_with_match("c-4", 4)], 3).unwrap();
                assert!(s.delete_customer("c-4", 4).unwrap());
            }),
            1,
            vec![(4, vec![], vec![])],
        ),
        (
            "shred one already indexed",
            Box::new(|s| assert!(s.delete_customer("c-2", 5).unwrap())),
            0,
            vec![(2, vec![], vec![])],
        ),
        (
            "the same id twice in a batch",
            Box::new(|s| {
                s.upsert_customers(&[customer_with_match("c-5", 5), customer_with_match("c-5", 6)], 6).unwrap()
            }),
            1,
            vec![(5, vec![], vec![]), (6, vec![], vec!["c-5"])],
        ),
        (
            "import one without match entries",
            Box::new(|s| s.upsert_customers(&[customer("c-7", 7)], 7).unwrap()),
            0,
            vec![],
        ),
        (
            "replace one in a second import before any attribution",
            Box::new(|s| {
                s.upsert_customers(&[customer_with_match("c-9", 9)], 8).unwrap();
                s.upsert_customers(&[customer_with_match("c-9", 10)], 9).unwrap();
            }),
            2,
            vec![(9, vec![], vec![]), (10, vec![], vec!["c-9"])],
        ),
    ];
    for (step, run, written, finds) in steps {
        run(&store);
        for (digest, before, _) in &finds {
            assert_eq!(&masked(&store, *digest), before, "{backend}, {step}: before the match index is written");
        }
        assert_eq!(
            store.index_pending_matches(u64::MAX, 2, OthersAtWork::WaitForThem).unwrap(),
            written,
            "{backend}, after: {step}"
        );
        for (digest, _, after) in finds {
            assert_eq!(masked(&store, digest), after, "{backend}, after: {step}, digest {digest}");
        }
    }
    assert_eq!(
        store.search(SearchKey::Email, &[7; 32]).unwrap(),
        ["c-7"],
        "{backend}: agents' search needs no attribution"
    );
    // An idle round takes at most what it is given; the rest of a write stays pending.
    let five: Vec<CustomerRow> = (11..16).map(|digest| customer_with_match(&format!("c-{digest}"), digest)).collect();
    store.upsert_customers(&five, 10).unwrap();
    assert_eq!(store.index_pending_matches(3, 2, OthersAtWork::LeaveTheirsToThem).unwrap(), 3, "{backend}");
    let found = |store: &Store| (11..16).filter(|digest| !masked(store, *digest).is_empty()).collect::<Vec<u8>>();
    assert_eq!(found(&store), [11, 12, 13], "{backend}: the first three of the write, no more");
    assert_eq!(store.index_pending_matches(u64::MAX, 2, OthersAtWork::LeaveTheirsToThem).unwrap(), 2, "{backend}");
    assert_eq!(found(&store), [11, 12, 13, 14, 15], "{backend}: then the rest");
    store.upsert_customers(&[customer_with_match("c-8", 8)], 8).unwrap();
    assert_eq!(
        store.search(SearchKey::Email, &[8; 32]).unwrap(),
        ["c-8"],
        "{backend}: agents' search needs no attribution"
    );
    drop(store);
    store = backend.open();
    assert_eq!(
        store.index_pending_matches(u64::MAX, 2, OthersAtWork::WaitForThem).unwrap(),
        1,
        "{backend}: what is still to write survives a reopen"
    );
    assert_eq!(masked(&store, 8), ["c-8"]);
}

/// On PostgreSQL a customer another transaction holds (an import, a rewrap on another
/// gateway) is skipped rather than waited for, and stays listed: a later pass writes its
/// match rows, whether or not that other write commits.
#[test]
fn a_customer_locked_by_another_write_keeps_its_match_rows_pending() {
    let database = cordon_testpg::TestDatabase::new().unwrap();
    let store = Store::open_postgres(&database.url()).unwrap();
    let masked = |digest: u8| store.search_up_to(SearchKey::MaskedEmail, &[digest + 100; 32], 10).unwrap();
    store.upsert_customers(&[customer_with_match("c-1", 1), customer_with_match("c-2", 2)], 1).unwrap();
    let mut other = database.client().unwrap();
    let mut holding = other.transaction().unwrap();
    holding.execute("SELECT 1 FROM customers WHERE id = 'c-2' FOR UPDATE", &[]).unwrap();
    assert_eq!(store.index_pending_matches(u64::MAX, 10, OthersAtWork::WaitForThem).unwrap(), 2);
    assert_eq!(masked(1), ["c-1"]);
    assert!(masked(2).is_empty(), "held by another transaction: skipped, not waited for");
    holding.rollback().unwrap();
    assert_eq!(store.index_pending_matches(u64::MAX, 10, OthersAtWork::WaitForThem).unwrap(), 1, "listed again");
    assert_eq!(masked(2), ["c-2"]);
    assert_eq!(store.index_pending_matches(u64::MAX, 10, OthersAtWork::WaitForThem).unwrap(), 0);
}

#[test]
fn the_live_customer_count_follows_imports_replacements_and_shredding() {
    for backend in backends() {
        live_customer_count_on(&backend);
    }
}

fn live_customer_count_on(backend: &Backend) {
    let store = backend.open();
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
        assert_eq!(store.customer_count().unwrap(), expected, "{backend}, after: {step}");
    }
    drop(store);
    assert_eq!(backend.open().customer_count().unwrap(), 5, "{backend}: the count survives a reopen");
}

#[test]
fn directory_round_trips() {
    for backend in backends() {
        directory_round_trips_on(&backend);
    }
}

fn directory_round_trips_on(backend: &Backend) {
    let store = backend.open();
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
        opened_by: Some("a-2".into()),
        assigned_by: Some("a-1".into()),
        created_at: 10,
        updated_at: 10,
    };
    store.upsert_tickets(std::slice::from_ref(&ticket)).unwrap();
    assert_eq!(store.ticket("t-1").unwrap(), Some(ticket.clone()), "who opened and who assigned are kept");
    let closed = Ticket { status: TicketStatus::Closed, updated_at: 20, ..ticket.clone() };
    store.upsert_tickets(std::slice::from_ref(&closed)).unwrap();
    assert_eq!(store.ticket("t-1").unwrap(), Some(closed));
}

#[test]
fn approvals_are_in_force_only_when_granted_and_unexpired() {
    for backend in backends() {
        approvals_are_in_force_only_when_granted_and_unexpired_on(&backend);
    }
}

fn approvals_are_in_force_only_when_granted_and_unexpired_on(backend: &Backend) {
    let store = backend.open();
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
        assert_eq!(found.is_some(), expected, "{backend}: {requester} {customer} {kind} at {now}");
    }
}

#[test]
fn access_history_is_per_customer_in_ledger_order() {
    for backend in backends() {
        access_history_is_per_customer_in_ledger_order_on(&backend);
    }
}

fn access_history_is_per_customer_in_ledger_order_on(backend: &Backend) {
    let store = backend.open();
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

/// Regression: PostgreSQL's text holds no NUL, so a request naming a customer id with one
/// (any agent may send it; it is recorded as asked for) failed in the store with 500 on
/// PostgreSQL, and its access event could not be indexed, where SQLite kept it. On both, a
/// hostile id is looked up (finding nothing) and indexed, and its history reads back.
#[test]
fn text_holding_nul_is_stored_and_found_again_on_both_backends() {
    for backend in backends() {
        let store = backend.open();
        for (index, id) in [(0u64, "a\0b"), (1, "\0"), (2, "c-1")] {
            assert_eq!(store.customer(id).unwrap(), None, "{backend}: {id:?} names nobody");
            assert_eq!(store.ticket(id).unwrap(), None, "{backend}: {id:?}");
            let event = AccessEvent {
                ledger_index: index,
                time: 1000,
                agent_id: "a-1".into(),
                customer_id: Some(id.into()),
                ticket_id: Some(format!("t\0{index}")),
                action: "view".into(),
                fields: vec![],
                allowed: false,
                policies: vec!["customer-not-found".into()],
                request_id: format!("r\0{index}"),
            };
            store.add_access_events(&[event], index + 1).unwrap();
        }
        let history = store.access_history("a\0b", 10).unwrap();
        assert_eq!(history.iter().map(|event| event.ledger_index).collect::<Vec<_>>(), [0], "{backend}");
        assert_eq!(store.access_history("\0", 10).unwrap().len(), 1, "{backend}");
        assert_eq!(store.access_history("c-1", 10).unwrap().len(), 1, "{backend}: the others are apart");
    }
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
    for backend in backends() {
        reach_changes_give_each_changed_customer_as_it_was_and_as_it_is_on(&backend);
    }
}

fn reach_changes_give_each_changed_customer_as_it_was_and_as_it_is_on(backend: &Backend) {
    let store = backend.open();
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

/// Every other table through the store's interface, on both backends: the SQL each backend
/// runs differs in places (upserts, JSON, row order, integer types), and a statement that one
/// accepts and the other refuses must fail here, not in a gateway.
#[test]
fn every_table_reads_back_what_was_written() {
    for backend in backends() {
        every_table_on(&backend);
    }
}

fn every_table_on(backend: &Backend) {
    use cordon_store::{
        HelpdeskChange, HelpdeskTicket, HelpdeskUser, ProtectiveAction, StoredAlert, StoredIncident, StoredSession,
        TimelineEvent,
    };
    let store = backend.open();
    let at = |what: &str| format!("{backend}: {what}");

    // Settings.
    assert_eq!(store.meta("k").unwrap(), None);
    store.set_meta("k", "one").unwrap();
    store.set_meta("k", "two").unwrap();
    assert_eq!(store.meta("k").unwrap().as_deref(), Some("two"), "{}", at("a setting is replaced"));

    // Alerts and the outbox.
    let alert = |id: u64| StoredAlert {
        id,
        agent: "a-1".into(),
        level: "suspend".into(),
        time_ms: 1_000 + id as i64,
        ledger_index: 10 + id,
        body: format!("{{\"alert\":{id}}}"),
        status: "open".into(),
        reason: None,
        decided_by: None,
        decided_at_ms: None,
    };
    assert_eq!(store.record_alerts(&[alert(1), alert(2)], true, 5).unwrap(), 2);
    assert_eq!(store.record_alerts(&[alert(2), alert(3)], true, 6).unwrap(), 1, "{}", at("alert 2 is stored once"));
    assert_eq!(store.alerts(None, 10).unwrap().iter().map(|a| a.id).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert!(store.decide_alert(2, "dismissed", "a test", "an-1", 7).unwrap());
    assert!(!store.decide_alert(2, "confirmed", "again", "an-1", 8).unwrap(), "{}", at("decided once"));
    assert_eq!(store.alerts(Some("open"), 10).unwrap().len(), 2);
    assert_eq!(store.alert(2).unwrap().unwrap().decided_by.as_deref(), Some("an-1"));
    assert_eq!(store.outbox_pending().unwrap(), 3);
    let due = store.outbox_due("alert", 10, 10).unwrap();
    assert_eq!(due.len(), 3, "{}", at("every queued alert is due"));
    store.outbox_delivered(due[0].id, 11).unwrap();
    store.outbox_retry(due[1].id, 100, "refused").unwrap();
    assert_eq!(store.outbox_due("alert", 12, 10).unwrap().len(), 1, "{}", at("one delivered, one later"));
    assert_eq!(store.outbox_pending().unwrap(), 2);

    // Revocations: the later expiry wins; an expired one is forgotten.
    store.revoke_token("jti-1", 500, 100).unwrap();
    store.revoke_token("jti-1", 300, 101).unwrap();
    store.revoke_token("jti-2", 150, 102).unwrap();
    assert_eq!(store.revoked_tokens(200).unwrap(), vec!["jti-1"], "{}", at("revocations"));
    store.revoke_token("jti-3", 900, 600).unwrap();
    assert_eq!(store.revoked_tokens(600).unwrap(), vec!["jti-3"], "{}", at("jti-1 ran out at 500"));

    // Incidents, their timelines and protective actions with their deliveries.
    assert_eq!(store.next_incident_number().unwrap(), 1);
    assert_eq!(store.next_incident_number().unwrap(), 2, "{}", at("numbers are never reused"));
    let incident = StoredIncident {
        id: "inc-1".into(),
        title: "screens photographed".into(),
        opened_at_ms: 1,
        aware_at_ms: 2,
        opened_by: "an-1".into(),
        agents: vec!["a-1".into(), "a-2".into()],
        since_ms: Some(0),
        until_ms: None,
        status: "{}".into(),
        ledger_index: 40,
    };
    store.insert_incident(&incident).unwrap();
    assert!(store.insert_incident(&incident).is_err(), "{}", at("an incident is never overwritten"));
    store.set_incident_status("inc-1", "{\"notified\":true}").unwrap();
    assert_eq!(store.incident("inc-1").unwrap().unwrap().status, "{\"notified\":true}");
    assert_eq!(store.incidents().unwrap().len(), 1);
    for (time_ms, kind) in [(5, "scope"), (5, "protect"), (3, "open")] {
        let event = TimelineEvent { time_ms, kind: kind.into(), what: kind.into(), count: Some(2), ledger_index: None };
        store.add_timeline("inc-1", &event).unwrap();
    }
    let kinds: Vec<String> = store.timeline("inc-1").unwrap().into_iter().map(|event| event.kind).collect();
    assert_eq!(kinds, vec!["open", "scope", "protect"], "{}", at("by time, then in the order written"));
    let action = |customer: &str| ProtectiveAction {
        customer_id: customer.into(),
        action: "hold-withdrawals".into(),
        recorded_at_ms: 9,
        until_ms: Some(99),
        ledger_index: 41,
    };
    let body =
        |action: &ProtectiveAction| format!("{{\"incident\":\"inc-1\",\"customer\":\"{}\"}}", action.customer_id);
    assert_eq!(store.record_protective_actions("inc-1", &[action("c-1"), action("c-2")], &body).unwrap(), 2);
    assert_eq!(store.record_protective_actions("inc-1", &[action("c-2")], &body).unwrap(), 0, "{}", at("once"));
    assert_eq!(store.protective_actions("inc-1").unwrap().len(), 2);
    assert_eq!(store.protective_action_counts("inc-1").unwrap(), vec![("hold-withdrawals".to_string(), 2)]);
    let protect = store.outbox_due("protect", 10, 10).unwrap();
    store.outbox_retry(protect[0].id, 50, "the exchange answered 503").unwrap();
    let deliveries = store.protect_deliveries("inc-1").unwrap();
    assert_eq!((deliveries.queued, deliveries.delivered), (2, 0), "{}", at("deliveries by the body's incident"));
    assert_eq!(deliveries.last_error.as_deref(), Some("the exchange answered 503"));
    assert_eq!(store.protect_deliveries("inc-2").unwrap().queued, 0);

    // Console sessions.
    let session = StoredSession {
        code: "K7Q2".into(),
        subject: "a-1".into(),
        role: "agent".into(),
        token_id: "jti-9".into(),
        csrf: "csrf".into(),
        started_ms: 100,
        expires_ms: 1_000,
        last_seen_ms: 100,
        start_index: 50,
        ended_ms: None,
        end_reason: None,
        end_index: None,
        sign_in: String::new(),
    };
    assert!(store.insert_session("hash-1", &session).unwrap());
    assert!(!store.insert_session("hash-2", &session).unwrap(), "{}", at("a code is one session's"));
    assert!(store.session_code_taken("K7Q2").unwrap());
    store.touch_session("K7Q2", 300).unwrap();
    store.touch_session("K7Q2", 200).unwrap();
    assert_eq!(store.session_by_secret("hash-1").unwrap().unwrap().last_seen_ms, 300, "{}", at("never goes back"));
    assert_eq!(store.open_sessions().unwrap().len(), 1);
    assert!(store.end_session("K7Q2", 400, "signed out", 51).unwrap());
    assert!(!store.end_session("K7Q2", 500, "again", 52).unwrap(), "{}", at("the first end stays"));
    assert_eq!(store.session_by_code("K7Q2").unwrap().unwrap().end_index, Some(51));
    assert!(store.open_sessions().unwrap().is_empty());

    // The helpdesk.
    let ticket = Ticket {
        id: "zd-1".into(),
        requester: "c-1".into(),
        category: "withdrawal".into(),
        status: TicketStatus::Open,
        assignee: Some("a-1".into()),
        opened_by: None,
        assigned_by: None,
        created_at: 1,
        updated_at: 2,
    };
    let state = HelpdeskTicket { updated_at: 2, opened_by_agent: true, requester_user: "u-1".into() };
    let user = HelpdeskUser { customer: Some("c-1".into()), agent: None };
    let change = HelpdeskChange {
        event_id: "ev-1",
        now: 1_000,
        keep_seconds: 100,
        ticket: Some((&ticket, &state)),
        user: Some(("u-1", &user)),
    };
    store.apply_helpdesk(&change).unwrap();
    store.apply_helpdesk(&HelpdeskChange { event_id: "ev-2", ..change }).unwrap();
    assert!(store.helpdesk_event_seen("ev-1").unwrap());
    assert_eq!(store.helpdesk_ticket("zd-1").unwrap(), Some(state), "{}", at("helpdesk ticket"));
    assert_eq!(store.helpdesk_user("u-1").unwrap(), Some(user));
    assert_eq!(store.ticket("zd-1").unwrap(), Some(ticket));
    store.note_helpdesk_event("ev-3", 2_000, 100).unwrap();
    assert!(!store.helpdesk_event_seen("ev-1").unwrap(), "{}", at("old event ids are forgotten"));
    store.put_agent_emails(&[("a-1".into(), "Sam@Exchange.example".into())]).unwrap();
    store.put_agent_emails(&[("a-1".into(), "sam.k@exchange.example".into())]).unwrap();
    assert_eq!(store.agent_by_email("SAM.K@exchange.example").unwrap().as_deref(), Some("a-1"));
    assert_eq!(store.agent_by_email("sam@exchange.example").unwrap(), None, "{}", at("the old address is gone"));

    // A rebuilt blind index replaces the live one whole, with the name of its key.
    store.upsert_customers(&[customer("c-1", 1), customer("c-2", 2)], 1).unwrap();
    store.stage_search_entries(&[("c-1".into(), vec![(SearchKey::Email, [7; 32])])]).unwrap();
    store.stage_search_entries(&[("c-1".into(), vec![(SearchKey::Email, [8; 32])])]).unwrap();
    assert_eq!(store.search(SearchKey::Email, &[1; 32]).unwrap(), vec!["c-1"], "{}", at("live until the swap"));
    assert_eq!(store.swap_search_index("blind_key", "key-2").unwrap(), 1);
    assert_eq!(store.search(SearchKey::Email, &[8; 32]).unwrap(), vec!["c-1"]);
    assert!(store.search(SearchKey::Email, &[7; 32]).unwrap().is_empty(), "{}", at("staging again replaced"));
    assert_eq!(store.meta("blind_key").unwrap().as_deref(), Some("key-2"));

    // Keys rewrapped in batches.
    let pending = store.customers_to_rewrap("kek-2", "", 10).unwrap();
    assert_eq!(pending.len(), 2);
    store.set_wrapped_keys(&[("c-1".into(), "kek-2".into(), vec![9; 48])]).unwrap();
    let pending: Vec<String> = store.customers_to_rewrap("kek-2", "", 10).unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(pending, vec!["c-2"], "{}", at("rewrapped"));
    assert_eq!(store.customers(&["c-2", "nobody", "c-1"]).unwrap().len(), 2);
    assert_eq!(store.customers_after("c-1", 10).unwrap().len(), 1);
    store.probe_writes(1).unwrap();
}

/// Regression: gateways sharing a store each delivered every webhook message. A claim takes
/// messages for a lease: a second claimant (another gateway) gets none of them, gets them once
/// the lease runs out (its holder died), and deferred ones keep their order.
#[test]
fn outbox_claims_give_each_message_to_one_deliverer() {
    for backend in backends() {
        let store = backend.open();
        let alerts: Vec<cordon_store::StoredAlert> = (1..=5)
            .map(|id| cordon_store::StoredAlert {
                id,
                agent: "a-1".into(),
                level: "alert".into(),
                time_ms: 1,
                ledger_index: id,
                body: format!("{{\"alert\":{id}}}"),
                status: "open".into(),
                reason: None,
                decided_by: None,
                decided_at_ms: None,
            })
            .collect();
        store.record_alerts(&alerts, true, 100).unwrap();
        let ids = |items: Vec<cordon_store::OutboxItem>| items.into_iter().map(|item| item.id).collect::<Vec<_>>();
        let first = ids(store.outbox_claim("alert", 100, 1_000, 3).unwrap());
        assert_eq!(first.len(), 3, "{backend}");
        let second = ids(store.outbox_claim("alert", 100, 1_000, 10).unwrap());
        assert_eq!(second.len(), 2, "{backend}: the other claimant gets only what is left");
        assert!(first.iter().all(|id| !second.contains(id)), "{backend}: no message claimed twice");
        assert!(store.outbox_claim("alert", 500, 1_000, 10).unwrap().is_empty(), "{backend}: all leased");
        store.outbox_delivered(first[0], 200).unwrap();
        store.outbox_defer(&first[1..], 300).unwrap();
        assert_eq!(
            ids(store.outbox_claim("alert", 300, 1_000, 10).unwrap()),
            first[1..].to_vec(),
            "{backend}: deferred ones"
        );
        let expired = ids(store.outbox_claim("alert", 1_100, 1_000, 10).unwrap());
        assert_eq!(expired, second, "{backend}: a lease that ran out frees its messages");
    }
}

/// Gateways sharing a PostgreSQL store hold a name one at a time (the helpdesk applies each
/// event once across them): a second holder waits until the first lets go; another name does
/// not wait.
#[test]
fn an_exclusive_name_is_held_by_one_gateway_at_a_time() {
    let database = cordon_testpg::TestDatabase::new().unwrap();
    let first = Store::open_postgres(&database.url()).unwrap();
    let second = std::sync::Arc::new(Store::open_postgres(&database.url()).unwrap());
    let held = first.hold_exclusive("helpdesk").unwrap();
    let (sender, taken) = std::sync::mpsc::channel();
    let waiting = std::sync::Arc::clone(&second);
    let thread = std::thread::spawn(move || {
        let guard = waiting.hold_exclusive("helpdesk").unwrap();
        sender.send(()).unwrap();
        drop(guard);
    });
    assert!(taken.recv_timeout(std::time::Duration::from_millis(500)).is_err(), "the second holder waits");
    second.hold_exclusive("another name").unwrap();
    drop(held);
    taken.recv_timeout(std::time::Duration::from_secs(10)).expect("the second holder gets it once the first lets go");
    thread.join().unwrap();
}

/// TLS to PostgreSQL, as libpq's URL parameters ask for it: `sslmode=verify-full` with
/// `sslrootcert` connects to a server whose certificate that CA signed and which names the
/// host; a certificate from another CA is refused, as is a server that takes only TLS asked
/// without it; the modes that would not check the certificate, or would fall back to no TLS,
/// are refused by name before anything is sent.
#[test]
fn tls_to_postgres_is_checked_or_refused() {
    let cluster = cordon_testpg::TestCluster::start_with_tls().unwrap();
    let root = cluster.tls_root().unwrap().display().to_string();
    let other = cordon_testpg::TestCluster::start_with_tls().unwrap();
    let other_root = other.tls_root().unwrap().display().to_string();
    let port = cluster.port();
    let url = |host: &str, query: &str| format!("postgres://cordon@{host}:{port}/postgres{query}");
    for host in ["127.0.0.1", "localhost"] {
        let store = Store::open_postgres(&url(host, &format!("?sslmode=verify-full&sslrootcert={root}"))).unwrap();
        store.upsert_customers(&[customer("c-tls", 7)], 100).unwrap();
        assert!(store.customer("c-tls").unwrap().is_some(), "{host}: read back over TLS");
    }
    // The ledger's connections are made the same way.
    let tls = url("localhost", &format!("?sslmode=verify-full&sslrootcert={root}"));
    assert!(cordon_store::SharedLedger::key(&tls).unwrap().is_none(), "no ledger key stored yet");
    let refused: [(&str, String, &str); 6] = [
        ("another CA's", format!("?sslmode=verify-full&sslrootcert={other_root}"), "certificate"),
        ("no TLS to a server that takes only TLS", String::new(), "no encryption"),
        ("a mode that checks nothing", "?sslmode=require".into(), "sslmode=require is not one cordon connects with"),
        ("a mode that falls back", "?sslmode=prefer".into(), "sslmode=prefer is not one"),
        ("verify-full without its CA", "?sslmode=verify-full".into(), "needs sslrootcert"),
        ("a CA without the mode", format!("?sslrootcert={root}"), "without sslmode=verify-full"),
    ];
    for (what, query, expected) in refused {
        let error = Store::open_postgres(&url("127.0.0.1", &query)).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains(expected), "{what}: `{expected}` in: {error}");
    }
    let missing = Store::open_postgres(&url("127.0.0.1", "?sslmode=verify-full&sslrootcert=/nowhere/ca.pem"))
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nowhere/ca.pem"), "{missing}");
}

/// Console sign-ins under way are kept in the store, so the browser may come back to any
/// gateway: taken once (a second take, from anywhere, finds nothing), not after their
/// lifetime, and no more than the limit at once.
#[test]
fn sign_ins_under_way_are_taken_once_on_both_backends() {
    for backend in backends() {
        let first = backend.open();
        let second = backend.open();
        let pending =
            |started_ms| cordon_store::PendingSignIn { nonce: "n-1".into(), verifier: "v-1".into(), started_ms };
        assert!(first.begin_sign_in("s-1", &pending(1_000), 0, 3).unwrap(), "{backend}");
        assert!(!first.begin_sign_in("s-1", &pending(1_000), 0, 3).unwrap(), "{backend}: a state is never reused");
        assert_eq!(second.take_sign_in("s-1", 0).unwrap(), Some(pending(1_000)), "{backend}: taken elsewhere");
        assert_eq!(first.take_sign_in("s-1", 0).unwrap(), None, "{backend}: taken once");
        assert!(first.begin_sign_in("s-2", &pending(1_000), 0, 3).unwrap());
        assert_eq!(second.take_sign_in("s-2", 1_001).unwrap(), None, "{backend}: expired");
        for (state, begun) in [("s-3", true), ("s-4", true), ("s-5", true), ("s-6", false)] {
            assert_eq!(first.begin_sign_in(state, &pending(2_000), 1_500, 3).unwrap(), begun, "{backend}: {state}");
        }
        assert!(first.begin_sign_in("s-7", &pending(9_000), 2_001, 3).unwrap(), "{backend}: the expired make room");
    }
}

/// PostgreSQL's schema is its numbered migrations: a fresh database gets every one, a second
/// run none, a database of an earlier release (here, before the third) the ones it lacks, and
/// a database a newer cordon migrated is refused, naming both versions, with nothing applied.
#[test]
fn postgres_migrations_apply_what_is_missing_and_refuse_a_newer_schema() {
    let database = cordon_testpg::TestDatabase::new().unwrap();
    let url = database.url();
    let all = Store::migrate_postgres(&url).unwrap();
    assert_eq!(all, [1, 2, 3, 4, 5]);
    assert!(Store::migrate_postgres(&url).unwrap().is_empty(), "nothing twice");
    let mut admin = database.client().unwrap();
    admin
        .batch_execute(
            "DROP TABLE pending_sign_ins; ALTER TABLE tickets DROP COLUMN opened_by, DROP COLUMN assigned_by;
             DROP TABLE match_pending; DELETE FROM schema_migrations WHERE version >= 3",
        )
        .unwrap();
    assert_eq!(Store::migrate_postgres(&url).unwrap(), [3, 4, 5], "an earlier release's database is brought up");
    Store::open_postgres(&url)
        .unwrap()
        .begin_sign_in(
            "s",
            &cordon_store::PendingSignIn { nonce: "n".into(), verifier: "v".into(), started_ms: 1 },
            0,
            10,
        )
        .unwrap();
    admin.batch_execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')").unwrap();
    for refused in [Store::migrate_postgres(&url).map(|_| ()), Store::open_postgres(&url).map(|_| ())] {
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("schema version 99") && message.contains("(5)"), "{message}");
    }
}

/// A store file made before tickets said who opened and assigned them opens, gains the
/// columns, and reads its old tickets as customer-raised and routed.
#[test]
fn a_store_from_before_ticket_provenance_opens_with_its_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.sqlite");
    {
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE tickets (id TEXT PRIMARY KEY, requester TEXT NOT NULL, category TEXT NOT NULL,
                 status TEXT NOT NULL, assignee TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
             INSERT INTO tickets VALUES ('t-old', 'c-1', 'general_inquiry', 'open', 'a-1', 5, 6);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let ticket = store.ticket("t-old").unwrap().unwrap();
    assert_eq!((ticket.opened_by, ticket.assigned_by, ticket.updated_at), (None, None, 6));
}

/// The ledger's first entry as the access index keeps it: a reveal of `c-1`'s email.
fn first_reveal() -> AccessEvent {
    AccessEvent {
        ledger_index: 0,
        time: 1000,
        agent_id: "a-1".into(),
        customer_id: Some("c-1".into()),
        ticket_id: None,
        action: "reveal".into(),
        fields: vec!["email".into()],
        allowed: true,
        policies: vec![],
        request_id: "r-0".into(),
    }
}

/// Regression: the index file is written without fsync (its checkpoints' syncs stalled the
/// ledger's on the same disk), so a machine that stops while it is open may leave it torn.
/// Each case leaves the marker as a past run would have, reopens, and checks whether the
/// index was kept or removed for the ledger follower to write again (from position 0).
#[test]
fn an_index_left_open_when_the_machine_stopped_is_written_again_from_the_ledger() {
    let Ok(boot) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
        panic!("these tests run on Linux, where the boot id is what the marker compares");
    };
    let boot = boot.trim().to_string();
    let cases = [
        ("closed cleanly, any boot since", Some(""), true),
        ("the process stopped, this boot", Some(boot.as_str()), true),
        ("the machine stopped while it was open", Some("another-boot"), false),
        ("no marker: written by an older build", None, true),
    ];
    for (case, marker, kept) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cordon.sqlite");
        {
            let store = Store::open(&path).unwrap();
            store.add_access_events(&[first_reveal()], 1).unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.path().join("cordon-access.open")).unwrap(),
                boot,
                "{case}: marked with this boot while open"
            );
        }
        let marker_path = dir.path().join("cordon-access.open");
        assert_eq!(std::fs::read_to_string(&marker_path).unwrap(), "", "{case}: cleared by the last to close");
        match marker {
            Some(text) => std::fs::write(&marker_path, text).unwrap(),
            None => std::fs::remove_file(&marker_path).unwrap(),
        }
        let store = Store::open(&path).unwrap();
        let through = store.access_through().unwrap();
        let history = store.access_history("c-1", 10).unwrap().len();
        if kept {
            assert_eq!((through, history), (1, 1), "{case}: the index is kept");
        } else {
            assert_eq!((through, history), (0, 0), "{case}: the index is written again from the ledger's start");
        }
        assert_eq!(std::fs::read_to_string(&marker_path).unwrap(), boot, "{case}: marked again");
    }
}

/// Two stores open on one file (a server and a command beside it): the first to close leaves
/// the marker for the other, which clears it when it closes.
#[test]
fn the_index_marker_is_cleared_by_the_last_store_to_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.sqlite");
    let marker = dir.path().join("cordon-access.open");
    let first = Store::open(&path).unwrap();
    let second = Store::open(&path).unwrap();
    drop(first);
    assert!(!std::fs::read_to_string(&marker).unwrap().is_empty(), "still open in the second");
    drop(second);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "");
}

/// Regression (review): a checkpoint another connection kept from finishing still cleared
/// the marker, though part of the index was only in its unsynced log. A reader holding a
/// transaction on the index file at the last close leaves the marker set.
#[test]
fn a_close_whose_checkpoint_is_kept_from_finishing_leaves_the_index_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cordon.sqlite");
    let store = Store::open(&path).unwrap();
    store.add_access_events(&[first_reveal()], 1).unwrap();
    let reader = rusqlite::Connection::open(dir.path().join("cordon-access.sqlite")).unwrap();
    reader.execute_batch("BEGIN; SELECT count(*) FROM access_events;").unwrap();
    drop(store);
    let marked = std::fs::read_to_string(dir.path().join("cordon-access.open")).unwrap();
    assert!(!marked.is_empty(), "the marker stays while the checkpoint could not finish");
    drop(reader);
}
