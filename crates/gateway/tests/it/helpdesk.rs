//! Tickets from Zendesk's webhooks, through the gateway's public interface: deliveries in
//! the shape Zendesk sends (event payloads, `X-Zendesk-Webhook-Signature` over the timestamp
//! and the body), each refusal without effect, users mapped by external id and by email
//! through the blind index, tickets applied in order and once, and the reveals they justify.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use cordon_directory::TicketStatus;
use cordon_gateway::{Clock, DataDir, Delivery, Gateway, GatewayError, ImportKind, TokenRole, parse_utc};
use cordon_vault::Field;
use hmac::{KeyInit as _, Mac as _};
use serde_json::{Value, json};

use super::{stored, wait};

const SECRET: &str = "dGhlIHplbmRlc2sgd2ViaG9vaydzIHNpZ25pbmcgc2VjcmV0";

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn utc(seconds: i64) -> String {
    // Civil date from days (H. Hinnant's algorithm), for timestamps in Zendesk's format.
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

fn sign(timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

struct Desk {
    gateway: Gateway,
    clock: Arc<TestClock>,
    _scratch: tempfile::TempDir,
    data: DataDir,
    // Declared after the gateway, so dropped after it.
    _database: Option<cordon_testpg::TestDatabase>,
}

impl Desk {
    fn now(&self) -> i64 {
        self.clock.now_seconds()
    }

    /// Delivers `event` signed now, as Zendesk does.
    fn deliver(&self, event: &Value) -> Result<cordon_gateway::HelpdeskOutcome, GatewayError> {
        let body = event.to_string();
        let timestamp = utc(self.now());
        let signature = sign(&timestamp, body.as_bytes());
        self.gateway.zendesk_event(
            Delivery { signature: Some(&signature), timestamp: Some(&timestamp), body: body.as_bytes() },
            "test",
        )
    }

    fn ledger_size(&self) -> u64 {
        self.gateway.audit().size()
    }
}

fn desk() -> Desk {
    let scratch = tempfile::tempdir().unwrap();
    let data = DataDir::new(&scratch.path().join("data"));
    let clock = Arc::new(TestClock(AtomicI64::new(parse_utc("2026-12-04T06:00:00Z").unwrap() * 1000)));
    let database = crate::init(&data, clock.clone());
    let secret = data.path("zendesk-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = data.config().unwrap();
    config.helpdesk.zendesk_secret_file = "zendesk-secret".into();
    config.helpdesk.categories = BTreeMap::from([("recovery".to_string(), "account_recovery".to_string())]);
    data.write_config(&config).unwrap();
    let gateway = data.open(clock.clone()).unwrap();
    let admin = gateway.authenticate(&gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
    for (id, name, email) in
        [("cus-1", "Ottilie Brandvoll", "ottilie@example.org"), ("cus-2", "Rasmus Quellenhof", "rasmus@example.org")]
    {
        let fields = BTreeMap::from([(Field::FullName, json!(name)), (Field::Email, json!(email))]);
        wait(gateway.put_customer(&admin, id, &fields, false, "test")).unwrap();
    }
    let agents = concat!(
        r#"{"id": "agt-1", "name": "Sam", "team": "l1", "site": "us", "employer": "staff", "email": "Sam@Exchange.example"}"#,
        "\n",
        r#"{"id": "agt-2", "name": "Kim", "team": "l1", "site": "us", "employer": "staff"}"#,
        "\n"
    );
    cordon_gateway::import(&gateway, ImportKind::Agents, agents.as_bytes(), |_| {}).unwrap();
    Desk { gateway, clock, _scratch: scratch, data, _database: database }
}

fn user_event(id: &str, user: &str, role: &str, email: Option<&str>, external_id: Option<&str>) -> Value {
    json!({
        "type": "zen:event-type:user.created", "account_id": 88888888, "id": id, "time": "2026-12-04T05:59:00Z",
        "zendesk_event_version": "2022-06-20", "subject": format!("zen:user:{user}"),
        "detail": {"id": user, "email": email, "external_id": external_id, "role": role,
                   "created_at": "2026-12-04T05:59:00Z", "updated_at": "2026-12-04T05:59:00Z"},
        "event": {}
    })
}

#[allow(clippy::too_many_arguments)]
fn ticket_event(
    id: &str,
    kind: &str,
    ticket: &str,
    requester: &str,
    submitter: &str,
    assignee: Option<&str>,
    status: &str,
    updated_at: &str,
    tags: &[&str],
) -> Value {
    json!({
        "type": format!("zen:event-type:ticket.{kind}"), "account_id": 88888888, "id": id, "time": updated_at,
        "zendesk_event_version": "2022-11-06", "subject": format!("zen:ticket:{ticket}"),
        "detail": {"id": ticket, "requester_id": requester, "submitter_id": submitter, "assignee_id": assignee,
                   "status": status, "tags": tags, "subject": "I cannot log in", "description": "Call me back",
                   "created_at": "2026-12-04T05:58:00Z", "updated_at": updated_at, "via": {"channel": "web"}},
        "event": {"meta": {"sequence": {"id": "seq-1", "position": 1}}}
    })
}

#[test]
fn a_delivery_that_is_not_zendesks_is_refused_without_effect() {
    let desk = desk();
    let body = user_event("ev-1", "501", "end-user", Some("ottilie@example.org"), None).to_string();
    let now = desk.now();
    let fresh = utc(now);
    struct Case {
        name: &'static str,
        signature: Option<String>,
        timestamp: Option<String>,
        body: String,
        says: &'static str,
    }
    let cases = [
        Case {
            name: "no signature",
            signature: None,
            timestamp: Some(fresh.clone()),
            body: body.clone(),
            says: "Signature is missing",
        },
        Case {
            name: "no timestamp",
            signature: Some(sign(&fresh, body.as_bytes())),
            timestamp: None,
            body: body.clone(),
            says: "Timestamp is missing",
        },
        Case {
            name: "another secret's signature",
            // A whole HMAC-SHA256, under another secret: compared, not refused for its length.
            signature: Some({
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"another webhook's secret").unwrap();
                mac.update(fresh.as_bytes());
                mac.update(body.as_bytes());
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            }),
            timestamp: Some(fresh.clone()),
            body: body.clone(),
            says: "does not match",
        },
        Case {
            name: "not base64",
            signature: Some("%%%".into()),
            timestamp: Some(fresh.clone()),
            body: body.clone(),
            says: "not base64",
        },
        Case {
            name: "the body altered",
            signature: Some(sign(&fresh, body.as_bytes())),
            timestamp: Some(fresh.clone()),
            body: body.replace("end-user", "admin"),
            says: "does not match",
        },
        Case {
            name: "the timestamp altered",
            signature: Some(sign(&fresh, body.as_bytes())),
            timestamp: Some(utc(now + 1)),
            body: body.clone(),
            says: "does not match",
        },
        Case {
            name: "signed six minutes ago (a replay)",
            signature: Some(sign(&utc(now - 360), body.as_bytes())),
            timestamp: Some(utc(now - 360)),
            body: body.clone(),
            says: "more than 300 s from now",
        },
        Case {
            name: "signed six minutes ahead",
            signature: Some(sign(&utc(now + 360), body.as_bytes())),
            timestamp: Some(utc(now + 360)),
            body: body.clone(),
            says: "more than 300 s from now",
        },
        Case {
            name: "a timestamp that is no time",
            signature: Some(sign("yesterday", body.as_bytes())),
            timestamp: Some("yesterday".into()),
            body: body.clone(),
            says: "is not a UTC time",
        },
        Case {
            name: "signed, but not an event",
            signature: Some(sign(&fresh, b"[1,2]")),
            timestamp: Some(fresh.clone()),
            body: "[1,2]".into(),
            says: "is not a Zendesk event",
        },
    ];
    let before = desk.ledger_size();
    for case in cases {
        let refused = desk
            .gateway
            .zendesk_event(
                Delivery {
                    signature: case.signature.as_deref(),
                    timestamp: case.timestamp.as_deref(),
                    body: case.body.as_bytes(),
                },
                "test",
            )
            .unwrap_err();
        assert!(refused.to_string().contains(case.says), "{}: `{refused}` should say `{}`", case.name, case.says);
    }
    assert_eq!(desk.ledger_size(), before, "no refused delivery is recorded");
    assert_eq!(stored(&desk.data).helpdesk_user("501").unwrap(), None, "and none is applied");
    // An event id that could not go into a ledger entry as it is.
    let odd = user_event("ev 1\n", "501", "end-user", None, None);
    assert!(desk.deliver(&odd).unwrap_err().to_string().contains("is not 1 to 64 letters"));
}

#[test]
fn tickets_follow_the_helpdesk_in_order_once_each_and_justify_reveals() {
    let desk = desk();
    let store = || stored(&desk.data);
    // Users: a customer by email (through the blind index), one by external id, an agent by
    // the directory's work email (any case), one nobody matches.
    for (event, user, role, email, external) in [
        ("u-1", "501", "end-user", Some("OTTILIE@example.org"), None),
        ("u-2", "502", "end-user", Some("someone-else@example.org"), Some("cus-2")),
        ("u-3", "601", "agent", Some("sam@exchange.example"), None),
        ("u-4", "602", "agent", Some("kim@exchange.example"), None),
    ] {
        let outcome = desk.deliver(&user_event(event, user, role, email, external)).unwrap();
        assert_eq!(outcome.outcome, "applied");
    }
    let user = |id: &str| store().helpdesk_user(id).unwrap().unwrap();
    assert_eq!(user("501").customer.as_deref(), Some("cus-1"));
    assert_eq!(user("502").customer.as_deref(), Some("cus-2"));
    assert_eq!(user("601").agent.as_deref(), Some("agt-1"));
    assert_eq!((user("602").agent, user("602").customer), (None, None), "Kim has no email in the directory");

    // A ticket the customer opened, tagged for account recovery, assigned to Sam.
    let at = |seconds: i64| utc(desk.now() - 60 + seconds);
    let opened =
        ticket_event("t-ev-1", "created", "35436", "501", "501", Some("601"), "OPEN", &at(0), &["vip", "recovery"]);
    let outcome = desk.deliver(&opened).unwrap();
    assert_eq!((outcome.outcome, outcome.subject.as_deref()), ("applied", Some("zd-35436")));
    let ticket = store().ticket("zd-35436").unwrap().unwrap();
    assert_eq!(
        (ticket.requester.as_str(), ticket.category.as_str(), ticket.status, ticket.assignee.as_deref()),
        ("cus-1", "account_recovery", TicketStatus::Open, Some("agt-1"))
    );
    assert_eq!(desk.gateway.ticket_opened_by_agent("zd-35436").unwrap(), Some(false));

    // Redelivered: answered, not applied again, not recorded again; also re-signed an hour
    // later, as the helpdesk signs each delivery anew. The delivery captured an hour ago is
    // refused: its signed timestamp is outside the window.
    let size = desk.ledger_size();
    assert_eq!(desk.deliver(&opened).unwrap().outcome, "duplicate");
    let captured_body = opened.to_string();
    let captured_at = utc(desk.now());
    let captured_signature = sign(&captured_at, captured_body.as_bytes());
    desk.clock.0.fetch_add(3_600_000, Ordering::SeqCst);
    assert_eq!(desk.deliver(&opened).unwrap().outcome, "duplicate");
    let replayed = desk.gateway.zendesk_event(
        Delivery {
            signature: Some(&captured_signature),
            timestamp: Some(&captured_at),
            body: captured_body.as_bytes(),
        },
        "test",
    );
    assert!(replayed.unwrap_err().to_string().contains("more than 300 s from now"));
    assert_eq!(desk.ledger_size(), size);

    // The ticket justifies Sam's reveal of the customer's email.
    let sam = desk.gateway.authenticate(&desk.gateway.issue_agent_token("agt-1").unwrap()).unwrap();
    let reveal = || {
        wait(desk.gateway.reveal(&sam, "cus-1", Some("zd-35436"), &["email".to_string()], "caller lost access", "test"))
    };
    assert_eq!(reveal().unwrap().values[&Field::Email], json!("ottilie@example.org"));

    // Solved at +40 s, then an update from +20 s arrives late: it does not reopen the ticket.
    let solved =
        ticket_event("t-ev-3", "status_changed", "35436", "501", "501", Some("601"), "SOLVED", &at(40), &["recovery"]);
    assert_eq!(desk.deliver(&solved).unwrap().outcome, "applied");
    let late = ticket_event(
        "t-ev-2",
        "agent_assignment_changed",
        "35436",
        "501",
        "501",
        Some("601"),
        "OPEN",
        &at(20),
        &["recovery"],
    );
    let outcome = desk.deliver(&late).unwrap();
    assert_eq!(outcome.outcome, "stale", "{outcome:?}");
    assert!(outcome.ledger_index.is_some(), "a late event is recorded too");
    assert_eq!(store().ticket("zd-35436").unwrap().unwrap().status, TicketStatus::Closed);
    assert!(matches!(reveal().unwrap_err(), GatewayError::Denied { .. }), "a solved ticket justifies nothing");

    // A ticket an agent opened for a customer is marked so, and stays so when updated.
    let by_agent = ticket_event("t-ev-4", "created", "35437", "502", "601", Some("601"), "NEW", &at(50), &[]);
    assert_eq!(desk.deliver(&by_agent).unwrap().outcome, "applied");
    let updated = ticket_event("t-ev-5", "status_changed", "35437", "502", "502", Some("601"), "PENDING", &at(55), &[]);
    assert_eq!(desk.deliver(&updated).unwrap().outcome, "applied");
    assert_eq!(desk.gateway.ticket_opened_by_agent("zd-35437").unwrap(), Some(true));
    let ticket = store().ticket("zd-35437").unwrap().unwrap();
    assert_eq!(
        (ticket.category.as_str(), ticket.status),
        ("general_inquiry", TicketStatus::Pending),
        "untagged: the default"
    );

    // A requester cordon cannot name yet: refused (Zendesk retries), applied once its user comes.
    let early = ticket_event("t-ev-6", "created", "35438", "503", "503", None, "OPEN", &at(58), &[]);
    let refused = desk.deliver(&early).unwrap_err();
    assert!(
        matches!(refused, GatewayError::Conflict(_)) && refused.to_string().contains("helpdesk user 503"),
        "{refused}"
    );
    assert_eq!(store().ticket("zd-35438").unwrap(), None);
    desk.deliver(&user_event("u-5", "503", "end-user", Some("rasmus@example.org"), None)).unwrap();
    assert_eq!(desk.deliver(&early).unwrap().outcome, "applied", "the retry applies");
    assert_eq!(store().ticket("zd-35438").unwrap().unwrap().requester, "cus-2");

    // Every applied event is a ledger entry naming ids only: no address, no subject line.
    drop(desk.gateway);
    let entries: String = crate::ledger_texts(&desk.data).concat();
    assert_eq!(entries.matches("\"change\":\"ticket.helpdesk\"").count(), 6, "{entries}");
    assert_eq!(entries.matches("\"change\":\"helpdesk.user\"").count(), 5);
    assert!(entries.contains("opened by an agent"), "{entries}");
    for secret in ["ottilie@", "OTTILIE", "rasmus@", "sam@exchange", "I cannot log in", "Call me back"] {
        assert!(!entries.contains(secret), "`{secret}` is not in the ledger");
    }
}

/// What someone who can edit the helpdesk could try, to get a ticket that justifies looking
/// at another customer: each is recorded, and none moves a ticket to that customer.
#[test]
fn editing_the_helpdesk_does_not_move_a_ticket_to_another_customer() {
    let desk = desk();
    let store = || stored(&desk.data);
    for (event, user, role, email) in [
        ("u-1", "501", "end-user", "ottilie@example.org"),
        ("u-2", "502", "end-user", "rasmus@example.org"),
        ("u-3", "601", "agent", "sam@exchange.example"),
    ] {
        desk.deliver(&user_event(event, user, role, Some(email), None)).unwrap();
    }
    let at = |seconds: i64| utc(desk.now() - 60 + seconds);
    let opened = ticket_event("e-1", "created", "900", "501", "501", Some("601"), "OPEN", &at(0), &["recovery"]);
    desk.deliver(&opened).unwrap();
    assert_eq!(store().ticket("zd-900").unwrap().unwrap().requester, "cus-1");

    // The requester user's email edited to another customer's: the user keeps naming cus-1.
    let edited = user_event("u-4", "501", "end-user", Some("rasmus@example.org"), None);
    assert_eq!(desk.deliver(&edited).unwrap().outcome, "applied");
    assert_eq!(store().helpdesk_user("501").unwrap().unwrap().customer.as_deref(), Some("cus-1"));

    // The ticket's requester changed to another customer's user: the ticket stays cus-1's,
    // and is closed, so it justifies nothing more.
    let moved =
        ticket_event("e-2", "requester_changed", "900", "502", "501", Some("601"), "OPEN", &at(10), &["recovery"]);
    assert_eq!(desk.deliver(&moved).unwrap().outcome, "applied");
    let ticket = store().ticket("zd-900").unwrap().unwrap();
    assert_eq!((ticket.requester.as_str(), ticket.status), ("cus-1", TicketStatus::Closed));

    // A status cordon does not know closes a ticket; it is never refused and left open.
    let other = ticket_event("e-3", "created", "901", "502", "502", Some("601"), "OPEN", &at(20), &[]);
    desk.deliver(&other).unwrap();
    let unknown = ticket_event("e-4", "status_changed", "901", "502", "502", Some("601"), "ARCHIVED", &at(30), &[]);
    assert_eq!(desk.deliver(&unknown).unwrap().outcome, "applied");
    assert_eq!(store().ticket("zd-901").unwrap().unwrap().status, TicketStatus::Closed);
    // Of two states in the same second, the more restrictive stands, whichever comes last.
    let reopened = ticket_event("e-5", "status_changed", "901", "502", "502", Some("601"), "OPEN", &at(30), &[]);
    assert_eq!(desk.deliver(&reopened).unwrap().outcome, "applied");
    assert_eq!(store().ticket("zd-901").unwrap().unwrap().status, TicketStatus::Closed);
    // No submitter: not shown to be the customer's own, so opened by an agent.
    let unsigned = json!({"type": "zen:event-type:ticket.created", "id": "e-6", "time": at(40),
        "detail": {"id": "902", "requester_id": "502", "status": "OPEN", "updated_at": at(40)}});
    desk.deliver(&unsigned).unwrap();
    assert_eq!(desk.gateway.ticket_opened_by_agent("zd-902").unwrap(), Some(true));

    // `zd-` ids are the receiver's: not put by hand, and not overwritten if they were.
    let admin = desk.gateway.authenticate(&desk.gateway.issue_role_token(TokenRole::Admin).unwrap()).unwrap();
    let by_hand = cordon_directory::Ticket {
        id: "zd-903".into(),
        requester: "cus-2".into(),
        category: "account_recovery".into(),
        status: TicketStatus::Open,
        assignee: Some("agt-1".into()),
        opened_by: None,
        assigned_by: None,
        created_at: desk.now(),
        updated_at: desk.now(),
    };
    let refused = wait(desk.gateway.put_ticket(&admin, by_hand, "test")).unwrap_err();
    assert!(refused.to_string().contains("are the helpdesk receiver's"), "{refused}");
    let tickets = "{\"id\": \"zd-904\", \"requester\": \"cus-2\", \"category\": \"account_recovery\"}\n";
    let report = cordon_gateway::import(&desk.gateway, ImportKind::Tickets, tickets.as_bytes(), |_| {}).unwrap();
    assert_eq!(report.imported, 0, "{report:?}");
}

/// The customer's own page says a ticket an agent opened for them was not raised by them, and
/// one they opened was; a record that cannot be opened is refused on the record, not shown.
#[test]
fn the_customer_sees_who_raised_the_ticket_and_an_unopenable_record_is_refused_on_the_record() {
    let desk = desk();
    for (event, user, role, email) in
        [("u-1", "501", "end-user", "ottilie@example.org"), ("u-3", "601", "agent", "sam@exchange.example")]
    {
        desk.deliver(&user_event(event, user, role, Some(email), None)).unwrap();
    }
    let at = |seconds: i64| utc(desk.now() - 60 + seconds);
    let by_agent = ticket_event("e-1", "created", "700", "501", "601", Some("601"), "OPEN", &at(0), &[]);
    let by_customer = ticket_event("e-2", "created", "701", "501", "501", Some("601"), "OPEN", &at(1), &[]);
    desk.deliver(&by_agent).unwrap();
    desk.deliver(&by_customer).unwrap();
    let sam = desk.gateway.authenticate(&desk.gateway.issue_agent_token("agt-1").unwrap()).unwrap();
    for ticket in ["zd-700", "zd-701"] {
        wait(desk.gateway.view(&sam, "cus-1", Some(ticket), "test")).unwrap();
    }
    let customer = desk.gateway.authenticate(&desk.gateway.issue_customer_token("cus-1").unwrap()).unwrap();
    let page = desk.gateway.customer_accesses(&customer, None).unwrap();
    let raised: Vec<bool> = page
        .accesses
        .iter()
        .filter_map(|access| match &access.reason {
            cordon_gateway::AccessReason::Ticket { raised_by_customer, .. } => Some(*raised_by_customer),
            _ => None,
        })
        .collect();
    assert_eq!(raised, vec![true, false], "newest first: zd-701 the customer's, zd-700 the agent's");

    // Another customer's wrapped data key put in cus-1's row: nothing opens, and each attempt
    // is a refusal on the record, answered with the failure rather than a value.
    let Desk { gateway, clock, _scratch, data, _database } = desk;
    drop(gateway);
    let store = stored(&data);
    let other = store.customer("cus-2").unwrap().unwrap().sealed.unwrap();
    store.set_wrapped_keys(&[("cus-1".into(), other.kek_id.clone(), other.wrapped_key.clone())]).unwrap();
    drop(store);
    let gateway = data.open(clock).unwrap();
    let sam = gateway.authenticate(&gateway.issue_agent_token("agt-1").unwrap()).unwrap();
    let before = gateway.audit().size();
    let refused = [
        wait(gateway.view(&sam, "cus-1", Some("zd-701"), "test")).map(|_| ()),
        wait(gateway.reveal(&sam, "cus-1", Some("zd-701"), &["email".to_string()], "caller lost access", "test"))
            .map(|_| ()),
        wait(gateway.search(&sam, "email", "ottilie@example.org", "test")).map(|_| ()),
    ];
    for outcome in refused {
        let error = outcome.unwrap_err();
        assert!(error.to_string().contains("cannot decrypt"), "{error}");
    }
    assert_eq!(gateway.audit().size(), before + 3, "each attempt is recorded");
    drop(gateway);
    let texts = crate::ledger_texts(&data);
    assert!(texts.len() as u64 >= before + 3);
    for entry in &texts[before as usize..before as usize + 3] {
        assert!(entry.contains("\"deny\"") && entry.contains("cordon:record-unopenable"), "{entry}");
    }
}

/// Who opened a helpdesk ticket for its customer and who put it in its assignee's queue follow
/// Zendesk's submitter (unless a call or chat with the customer is behind it), and the agent
/// whose event changed the assignee (a trigger or routing is nobody); kept while the
/// assignee stays.
#[test]
fn who_opened_and_assigned_a_helpdesk_ticket_follows_submitter_channel_and_actor() {
    let desk = desk();
    for (event, user, role, email, external) in [
        ("u-1", "501", "end-user", Some("ottilie@example.org"), None),
        ("u-2", "502", "end-user", None, Some("cus-2")),
        ("u-3", "601", "agent", Some("sam@exchange.example"), None),
        ("u-4", "603", "agent", None, Some("agt-2")),
    ] {
        assert_eq!(desk.deliver(&user_event(event, user, role, email, external)).unwrap().outcome, "applied");
    }
    let at = |seconds: i64| utc(desk.now() - 60 + seconds);
    #[allow(clippy::too_many_arguments)]
    let event = |id: &str,
                 ticket: &str,
                 requester: &str,
                 submitter: &str,
                 assignee: &str,
                 channel: &str,
                 actor: Option<&str>,
                 seconds| {
        let mut event = ticket_event(
            id,
            "agent_assignment_changed",
            ticket,
            requester,
            submitter,
            Some(assignee),
            "OPEN",
            &at(seconds),
            &[],
        );
        event["detail"]["via"]["channel"] = json!(channel);
        if let Some(actor) = actor {
            event["detail"]["actor_id"] = json!(actor);
        }
        event
    };
    let cases = [
        (
            "raised by the customer, routed",
            event("e-1", "901", "501", "501", "601", "web", None, 0),
            "zd-901",
            None,
            None,
        ),
        (
            "opened by an agent with no contact, taken by it",
            event("e-2", "902", "502", "601", "601", "web", Some("601"), 1),
            "zd-902",
            Some("agt-1"),
            Some("agt-1"),
        ),
        (
            "opened by an agent on a call",
            event("e-3", "903", "502", "601", "601", "voice", Some("601"), 2),
            "zd-903",
            None,
            Some("agt-1"),
        ),
        (
            "handed to a colleague",
            event("e-4", "901", "501", "501", "603", "web", Some("601"), 3),
            "zd-901",
            None,
            Some("agt-1"),
        ),
        (
            "updated by its new assignee: who assigned it stays",
            event("e-5", "901", "501", "501", "603", "web", Some("603"), 4),
            "zd-901",
            None,
            Some("agt-1"),
        ),
        ("moved by a trigger", event("e-6", "902", "502", "601", "603", "web", None, 5), "zd-902", Some("agt-1"), None),
    ];
    for (what, event, ticket, opened_by, assigned_by) in cases {
        assert_eq!(desk.deliver(&event).unwrap().outcome, "applied", "{what}");
        let stored = stored(&desk.data).ticket(ticket).unwrap().unwrap();
        assert_eq!((stored.opened_by.as_deref(), stored.assigned_by.as_deref()), (opened_by, assigned_by), "{what}");
    }
}
