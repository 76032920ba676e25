//! The detector on synthetic streams: honest work stays quiet, each insider pattern is
//! contained within the number of customers its signal promises, and replay is exact.

use cordon_detect::{Action, Alert, Checked, Detector, Level, Observation, Thresholds, Why};

const DAY: i64 = 86_400_000;
const MINUTE: i64 = 60_000;

/// One access in a stream, owned so streams can be built up front.
#[derive(Debug, Clone)]
struct Event {
    time_ms: i64,
    agent: String,
    peer_group: String,
    action: Action,
    customer: Option<String>,
    why: Why,
    opened_by: Option<String>,
    assigned_by: Option<String>,
    beyond: u32,
    high_balance: bool,
    canary: bool,
}

impl Event {
    fn observation(&self, index: u64) -> Observation<'_> {
        Observation {
            index,
            time_ms: self.time_ms,
            agent: &self.agent,
            peer_group: &self.peer_group,
            site: self.peer_group.split('@').nth(1).unwrap_or(""),
            action: self.action,
            customer: self.customer.as_deref(),
            why: self.why,
            opened_by: self.opened_by.as_deref(),
            assigned_by: self.assigned_by.as_deref(),
            fields_beyond_need: self.beyond,
            high_balance: self.high_balance,
            canary: self.canary,
            off_shift: false,
            allowed: true,
        }
    }
}

fn access(day: i64, minute: i64, agent: &str, action: Action, customer: u64, why: Why) -> Event {
    Event {
        time_ms: day * DAY + 8 * 60 * MINUTE + minute * MINUTE,
        agent: agent.to_string(),
        peer_group: "l1-chat@us-sf".to_string(),
        action,
        customer: Some(format!("cus-{customer:07}")),
        why,
        opened_by: None,
        assigned_by: None,
        beyond: 0,
        high_balance: false,
        canary: false,
    }
}

/// A small deterministic generator, so streams need no dependency.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

/// `agents` honest agents for `days`: tickets viewed and revealed, a callback or an
/// unexplained look now and then.
fn honest(agents: usize, days: i64, seed: u64) -> Vec<Event> {
    let mut rng = Lcg(seed);
    let mut events = Vec::new();
    for day in 0..days {
        for agent in 0..agents {
            let name = format!("agt-{agent:03}");
            for ticket in 0..12 + rng.below(6) as i64 {
                let customer = 1 + rng.below(100_000);
                // Now and then a ticket the agent opened for a caller, or took from the queue.
                let (opened_by, assigned_by) = match rng.below(40) {
                    0 => (Some(name.clone()), None),
                    1..=4 => (None, Some(name.clone())),
                    _ => (None, None),
                };
                for (minute, action) in [(0, Action::View), (2, Action::Reveal)] {
                    let mut event = access(day, ticket * 30 + minute, &name, action, customer, Why::Ticket);
                    event.opened_by.clone_from(&opened_by);
                    event.assigned_by.clone_from(&assigned_by);
                    events.push(event);
                }
            }
            if rng.below(4) == 0 {
                let customer = 1 + rng.below(100_000);
                events.push(access(day, 420, &name, Action::Reveal, customer, Why::Callback));
            }
            if rng.below(3) == 0 {
                let customer = 1 + rng.below(100_000);
                events.push(access(day, 400, &name, Action::View, customer, Why::Unexplained));
                events.push(access(day, 401, &name, Action::Reveal, customer, Why::Unexplained));
            }
        }
    }
    events.sort_by_key(|event| event.time_ms);
    events
}

/// One honest agent's work for `days`, as `agent` (an insider's cover): the tickets it opened
/// or took are its own.
fn honest_as(agent: &str, days: i64, seed: u64) -> Vec<Event> {
    honest(1, days, seed)
        .into_iter()
        .map(|mut event| {
            event.agent = agent.into();
            event.opened_by = event.opened_by.map(|_| agent.to_string());
            event.assigned_by = event.assigned_by.map(|_| agent.to_string());
            event
        })
        .collect()
}

/// Runs a stream; returns the alerts and, per agent, the distinct customers it reached
/// (allowed, not denied by the detector) before it was suspended.
fn run(events: &[Event]) -> (Vec<Alert>, std::collections::BTreeMap<String, usize>) {
    let mut detector = Detector::new(Thresholds::default());
    let mut alerts = Vec::new();
    let mut reached: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (index, event) in events.iter().enumerate() {
        let verdict = detector.observe(&event.observation(index as u64));
        alerts.extend(verdict.alerts);
        if verdict.deny.is_none()
            && let Some(customer) = &event.customer
        {
            reached.entry(event.agent.clone()).or_default().insert(customer.clone());
        }
    }
    (alerts, reached.into_iter().map(|(agent, customers)| (agent, customers.len())).collect())
}

fn merged(mut events: Vec<Event>, more: Vec<Event>) -> Vec<Event> {
    events.extend(more);
    events.sort_by_key(|event| event.time_ms);
    events
}

fn suspension(alerts: &[Alert], agent: &str) -> Option<Alert> {
    alerts.iter().find(|alert| alert.agent == agent && alert.level == Level::Suspend).cloned()
}

/// The first alert that stopped reveals: step-up or suspension.
fn containment(alerts: &[Alert], agent: &str) -> Option<Alert> {
    alerts.iter().find(|alert| alert.agent == agent && alert.level >= Level::StepUp).cloned()
}

#[test]
fn honest_work_raises_nothing() {
    let (alerts, _) = run(&honest(40, 21, 7));
    assert!(alerts.is_empty(), "{alerts:#?}");
}

/// An insider's moves from day 7 on: `per_day` customers, each viewed then revealed.
fn insider_moves(per_day: u64, days: std::ops::Range<i64>, pick: impl Fn(u64, i64) -> (u64, Why)) -> Vec<Event> {
    let mut events = Vec::new();
    for day in days {
        for number in 0..per_day {
            let (customer, why) = pick(number, day);
            let minute = 5 + number as i64 * 400 / per_day as i64;
            events.push(access(day, minute, "agt-900", Action::View, customer, why));
            events.push(access(day, minute + 1, "agt-900", Action::Reveal, customer, why));
        }
    }
    events
}

#[test]
fn each_insider_pattern_is_contained_within_its_budget() {
    // (what, moves, the most customers the insider may reach before suspension)
    type Case = (&'static str, Vec<Event>, usize);
    let cases: Vec<Case> = vec![
        (
            "harvester",
            insider_moves(60, 7..12, |number, day| (500_000 + day as u64 * 100 + number, Why::Unexplained)),
            25,
        ),
        (
            "low and slow",
            insider_moves(4, 7..30, |number, day| (600_000 + day as u64 * 10 + number, Why::Unexplained)),
            60,
        ),
        (
            "piggyback",
            insider_moves(6, 7..20, |number, day| (700_000 + day as u64 * 10 + number, Why::OtherRequester)),
            12,
        ),
        ("sequential", insider_moves(40, 7..12, |number, day| (800_000 + day as u64 * 40 + number, Why::Ticket)), 25),
    ];
    for (what, moves, budget) in cases {
        // The insider also does honest work before and during.
        let cover = honest_as("agt-900", 30, 99);
        let events = merged(merged(honest(30, 30, 3), cover), moves);
        let (alerts, reached) = run(&events);
        let contained = containment(&alerts, "agt-900").unwrap_or_else(|| panic!("{what}: never contained"));
        let insider_alerts: Vec<&Alert> = alerts.iter().filter(|alert| alert.agent == "agt-900").collect();
        assert!(insider_alerts.len() <= 3, "{what}: one alert per level: {insider_alerts:#?}");
        let honest_alerts: Vec<&Alert> = alerts.iter().filter(|alert| alert.agent != "agt-900").collect();
        assert!(honest_alerts.is_empty(), "{what}: honest agents stay quiet: {honest_alerts:#?}");
        assert!(!contained.signals.is_empty() && !contained.evidence.is_empty(), "{what}: explained");
        assert!(reached["agt-900"] > 0);
        let exposed = insider_exposure(&events, &alerts);
        assert!(exposed <= budget, "{what}: {exposed} customers exposed before containment, budget {budget}");
    }
}

/// Insiders who make their accesses look explained: each access is under the agent's own
/// open ticket (or a callback), but the agent, or a colleague, arranged the reason rather
/// than the customer. Each is contained within its budget, honest agents (who open, take
/// and call back now and then) stay quiet, and the contained alert names the arrangement.
#[test]
fn insiders_who_arrange_their_own_reasons_are_contained() {
    type Arrange = fn(&mut Event);
    let cases: [(&str, u64, Arrange, &str, usize); 5] = [
        ("ticket forger", 6, |event| event.opened_by = Some("agt-900".into()), "arranged-", 20),
        ("slower ticket forger", 3, |event| event.opened_by = Some("agt-900".into()), "arranged-", 25),
        (
            "queue grabber of rich customers",
            4,
            |event| {
                event.assigned_by = Some("agt-900".into());
                event.high_balance = true;
            },
            "arranged-",
            25,
        ),
        ("callback abuser", 6, |event| event.why = Why::Callback, "arranged-", 25),
        (
            "ring member handed its targets",
            3,
            |event| {
                event.opened_by = Some("agt-901".into());
                event.assigned_by = Some("agt-901".into());
            },
            "handoff-pair",
            25,
        ),
    ];
    for (what, per_day, arrange, signal, budget) in cases {
        let moves: Vec<Event> =
            insider_moves(per_day, 7..30, |number, day| (500_000 + day as u64 * 10 + number, Why::Ticket))
                .into_iter()
                .map(|mut event| {
                    arrange(&mut event);
                    event
                })
                .collect();
        let events = merged(
            merged(merged(honest(30, 30, 3), honest_as("agt-900", 30, 99)), honest_as("agt-901", 30, 98)),
            moves,
        );
        let (alerts, _) = run(&events);
        let contained = containment(&alerts, "agt-900").unwrap_or_else(|| panic!("{what}: never contained"));
        let named: Vec<&str> = alerts
            .iter()
            .filter(|alert| alert.agent == "agt-900" && alert.time_ms <= contained.time_ms)
            .flat_map(|alert| alert.signals.iter().map(|signal| signal.name))
            .collect();
        assert!(named.iter().any(|name| name.starts_with(signal)), "{what}: the alerts name {signal}: {named:?}");
        let honest_alerts: Vec<&Alert> = alerts.iter().filter(|alert| !alert.agent.starts_with("agt-90")).collect();
        assert!(honest_alerts.is_empty(), "{what}: honest agents stay quiet: {honest_alerts:#?}");
        let exposed = insider_exposure(&events, &alerts);
        assert!(exposed <= budget, "{what}: {exposed} customers exposed before containment, budget {budget}");
        eprintln!("{what}: {exposed} customers exposed before containment");
        if signal == "handoff-pair" {
            let giver = alerts.iter().find(|alert| alert.agent == "agt-901");
            assert!(
                giver.is_some_and(|alert| alert.signals.iter().any(|signal| signal.name == "handoff-pair")),
                "{what}: the member who handed them is flagged too: {giver:#?}"
            );
        }
    }
}

/// At a desk where every customer is rich, taking a rich customer's ticket from the queue is
/// the desk's ordinary work and weighs little among arranged reasons (0.25); a grabber there
/// still takes several times more of them than its colleagues, and that rate contains it.
#[test]
fn a_queue_grabber_at_a_desk_of_rich_customers_is_contained_by_how_often_it_takes() {
    let at_the_desk = |mut event: Event| {
        event.high_balance = true;
        event.peer_group = "vip-desk@us-sf".into();
        event
    };
    let moves: Vec<Event> = insider_moves(4, 7..30, |number, day| (500_000 + day as u64 * 10 + number, Why::Ticket))
        .into_iter()
        .map(|mut event| {
            event.assigned_by = Some("agt-900".into());
            at_the_desk(event)
        })
        .collect();
    let cover: Vec<Event> = honest_as("agt-900", 30, 99).into_iter().map(at_the_desk).collect();
    let desk: Vec<Event> = honest(30, 30, 3).into_iter().map(at_the_desk).collect();
    let events = merged(merged(desk, cover), moves);
    let (alerts, _) = run(&events);
    let contained = containment(&alerts, "agt-900").expect("the grabber is contained");
    let named: Vec<&str> = alerts
        .iter()
        .filter(|alert| alert.agent == "agt-900" && alert.time_ms <= contained.time_ms)
        .flat_map(|alert| alert.signals.iter().map(|signal| signal.name))
        .collect();
    assert!(named.contains(&"taken-drift"), "the alerts name taken-drift: {named:?}");
    let honest_alerts: Vec<&Alert> = alerts.iter().filter(|alert| alert.agent != "agt-900").collect();
    assert!(honest_alerts.is_empty(), "the desk's honest agents stay quiet: {honest_alerts:#?}");
    let exposed = insider_exposure(&events, &alerts);
    assert!(exposed <= 25, "{exposed} customers exposed before containment, budget 25");
}

/// Customers the insider's own moves (customer numbers of 500,000 and up) reached before
/// it was contained.
fn insider_exposure(events: &[Event], alerts: &[Alert]) -> usize {
    let until = containment(alerts, "agt-900").map_or(i64::MAX, |alert| alert.time_ms);
    events
        .iter()
        .filter(|event| event.agent == "agt-900" && event.time_ms < until)
        .filter_map(|event| event.customer.as_deref())
        .filter(|customer| customer.trim_start_matches("cus-").parse::<u64>().unwrap() >= 500_000)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

#[test]
fn a_canary_suspends_at_once_and_the_request_is_refused() {
    let mut events = honest(10, 5, 1);
    let mut canary = access(5, 10, "agt-003", Action::View, 99_999_999, Why::Unexplained);
    canary.canary = true;
    events.push(canary);
    let mut detector = Detector::new(Thresholds::default());
    let mut last = Default::default();
    for (index, event) in events.iter().enumerate() {
        last = detector.observe(&event.observation(index as u64));
    }
    assert_eq!(last.deny, Some(Level::Suspend));
    assert_eq!(last.alerts.len(), 1);
    assert_eq!(last.alerts[0].signals[0].name, "canary");
    assert_eq!(last.alerts[0].evidence, vec![events.len() as u64 - 1]);
    assert_eq!(detector.level("agt-003"), Level::Suspend);
}

#[test]
fn step_up_refuses_reveals_without_an_approver_and_clearing_lifts_it() {
    let mut detector = Detector::new(Thresholds::default());
    let mut index = 0;
    let mut observe = |detector: &mut Detector, event: &Event| {
        index += 1;
        detector.observe(&event.observation(index))
    };
    let mut number = 1;
    while detector.level("agt-001") < Level::StepUp {
        let event = access(0, number as i64, "agt-001", Action::Reveal, number, Why::OtherRequester);
        observe(&mut detector, &event);
        number += 1;
        assert!(number < 50, "never stepped up");
    }
    let reveal = access(0, 100, "agt-001", Action::Reveal, 5_000, Why::Ticket);
    assert_eq!(observe(&mut detector, &reveal).deny, Some(Level::StepUp));
    let approved = access(0, 101, "agt-001", Action::Reveal, 5_001, Why::Approval);
    assert_eq!(observe(&mut detector, &approved).deny, None);
    let view = access(0, 102, "agt-001", Action::View, 5_002, Why::Ticket);
    assert_eq!(observe(&mut detector, &view).deny, None, "masked views stay open");
    // Regression: step-up did not stop verify, which answers about a value too.
    let verify = access(0, 103, "agt-001", Action::Verify(Checked::Matched), 5_003, Why::Ticket);
    assert_eq!(observe(&mut detector, &verify).deny, Some(Level::StepUp));
    detector.clear("agt-001", reveal.time_ms);
    assert_eq!(observe(&mut detector, &reveal).deny, None);
}

#[test]
fn search_sweeps_are_caught_by_their_misses() {
    let mut events = honest(10, 8, 5);
    for miss in 0..40 {
        let mut event = access(7, 100 + miss, "agt-900", Action::Search { matched: false }, 0, Why::Unexplained);
        event.customer = None;
        events.push(event);
    }
    events.sort_by_key(|event| event.time_ms);
    let (alerts, _) = run(&events);
    let suspended = suspension(&alerts, "agt-900").expect("suspended");
    assert!(suspended.signals.iter().any(|signal| signal.name == "search-misses"), "{suspended:#?}");
}

/// Regression: searches that hit were never scored, so an insider with a list of outside
/// emails and phones confirmed 300 customers without an alert. Hits no ticket explains are
/// suspended within a few dozen; hits of customers whose tickets the agent worked, on volume.
#[test]
fn a_list_checker_is_caught_by_its_hits() {
    for (why, signal, within) in [(Why::Unexplained, "unexplained-hits", 30), (Why::Ticket, "search-hits", 300)] {
        let mut events = honest(10, 8, 5);
        for hit in 0..300 {
            let mut event = access(7, 100 + hit, "agt-900", Action::Search { matched: true }, 0, why);
            event.customer = Some(format!("cus-{:07}", 500_000 + hit * 7));
            events.push(event);
        }
        events.sort_by_key(|event| event.time_ms);
        let (alerts, _) = run(&events);
        let suspended = suspension(&alerts, "agt-900").unwrap_or_else(|| panic!("{why:?}: suspended"));
        assert!(suspended.signals.iter().any(|candidate| candidate.name == signal), "{why:?}: {suspended:#?}");
        let searched_before = events
            .iter()
            .filter(|event| event.agent == "agt-900" && event.time_ms <= suspended.time_ms && event.customer.is_some())
            .filter(|event| matches!(event.action, Action::Search { .. }))
            .count();
        assert!(searched_before <= within, "{why:?}: {searched_before} hits before suspension, at most {within}");
    }
}

/// Regression: verify was an undetected oracle. Wrong statements beyond a few a day, and
/// above all refusals by verify's limit, are scored.
#[test]
fn a_verify_guesser_is_contained() {
    let cases = [
        (Checked::Wrong, 12, Level::StepUp),
        (Checked::Refused, 3, Level::StepUp),
        (Checked::Matched, 40, Level::Normal),
    ];
    for (checked, count, at_least) in cases {
        let mut detector = Detector::new(Thresholds::default());
        for attempt in 0..count {
            let event = access(0, attempt, "agt-001", Action::Verify(checked), 7, Why::Ticket);
            detector.observe(&event.observation(attempt as u64));
        }
        assert!(detector.level("agt-001") >= at_least, "{checked:?} x {count}: {:?}", detector.level("agt-001"));
        if at_least == Level::Normal {
            assert_eq!(detector.level("agt-001"), Level::Normal, "honest verifies stay quiet");
        }
    }
}

#[test]
fn a_ring_sharing_customers_is_flagged_though_each_member_stays_low() {
    let mut events = honest(20, 21, 9);
    // Three members at one site, three unexplained customers a day each from one short list.
    let pool: Vec<u64> = (0..40).map(|number| 900_000 + number * 7).collect();
    let mut draw = Lcg(42);
    for day in 7..21 {
        for member in 0..3 {
            for slot in 0..3 {
                let customer = pool[draw.below(pool.len() as u64) as usize];
                let agent = format!("agt-r{member}");
                let minute = 30 + member * 100 + slot * 20;
                events.push(access(day, minute, &agent, Action::Reveal, customer, Why::Unexplained));
            }
        }
    }
    events.sort_by_key(|event| event.time_ms);
    let (alerts, _) = run(&events);
    let ring_alerts: Vec<&Alert> =
        alerts.iter().filter(|alert| alert.signals.iter().any(|signal| signal.name == "ring-overlap")).collect();
    assert!(!ring_alerts.is_empty(), "the ring is flagged: {alerts:#?}");
    assert!(alerts.iter().all(|alert| alert.agent.starts_with("agt-r")), "only the ring: {alerts:#?}");
}

#[test]
fn replaying_the_same_stream_gives_the_same_alerts() {
    let events = merged(
        honest(30, 14, 11),
        insider_moves(20, 5..9, |number, day| (500_000 + day as u64 * 100 + number, Why::Unexplained)),
    );
    let (first, _) = run(&events);
    let (second, _) = run(&events);
    assert!(!first.is_empty());
    assert_eq!(first, second);
}
