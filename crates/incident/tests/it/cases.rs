use std::collections::{BTreeMap, BTreeSet, HashMap};

use cordon_incident::{
    Column, CustomerFacts, Field, MatchedRow, Needed, NullModel, Seen, Shown, ShownAs, Verdict, at_least, attribute,
    hit_probability, iso_time, parse_optional_end, parse_time, read_sample, scope,
};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
}

#[test]
fn chance_of_a_hit_and_of_a_coverage() {
    // (volume, candidates, base, expected)
    let cases = [
        (0, 5, 100, 0.0),
        (5, 0, 100, 0.0),
        (1, 1, 100, 0.01),
        (10, 1, 100, 0.1),
        (1, 10, 100, 0.1),
        (2, 2, 4, 1.0 - 1.0 / 6.0),
        (60, 50, 100, 1.0),
    ];
    for (volume, candidates, base, expected) in cases {
        let found = hit_probability(volume, candidates, base);
        assert!(close(found, expected), "hit_probability({volume}, {candidates}, {base}) = {found}, not {expected}");
    }
    // (k, probabilities, expected)
    let tails: [(usize, Vec<f64>, f64); 5] = [
        (0, vec![0.5; 3], 1.0),
        (4, vec![0.5; 3], 0.0),
        (3, vec![0.5; 3], 0.125),
        (1, vec![0.5; 3], 0.875),
        (2, vec![0.1, 0.2, 0.3], 0.1 * 0.2 + 0.1 * 0.3 + 0.2 * 0.3 - 2.0 * 0.1 * 0.2 * 0.3),
    ];
    for (k, probabilities, expected) in tails {
        let found = at_least(k, &probabilities);
        assert!(close(found, expected), "at_least({k}, {probabilities:?}) = {found}, not {expected}");
    }
}

#[test]
fn times_on_the_command_line() {
    let cases = [
        ("2026-03-02", Some("2026-03-02T00:00:00Z")),
        ("2026-03-02T14:05Z", Some("2026-03-02T14:05:00Z")),
        ("2026-03-02T14:05:09Z", Some("2026-03-02T14:05:09Z")),
        ("2024-02-29", Some("2024-02-29T00:00:00Z")),
        ("1772460000000", Some("2026-03-02T14:00:00Z")),
        ("2026-02-30", None),
        ("2026-13-01", None),
        ("2026-03-02T25:00Z", None),
        ("yesterday", None),
        ("", None),
        // Regression: a year this large overflowed the day arithmetic and panicked.
        ("99999999999999999-01-01", None),
        ("10000-01-01", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_time(text).map(iso_time).as_deref(), expected, "parse_time({text:?})");
    }
    // The end of a window: a bare date is the whole day, anything more precise is itself.
    // (text, the end it means, or None if refused)
    type End = (Option<&'static str>, Option<Option<i64>>);
    let ends: [End; 5] = [
        (Some("2026-03-02"), Some(Some(1_772_409_600_000 + 86_400_000 - 1))),
        (Some("2026-03-02T14:05Z"), Some(Some(1_772_460_300_000))),
        (Some("1772409600000"), Some(Some(1_772_409_600_000))),
        (None, Some(None)),
        (Some("yesterday"), None),
    ];
    for (text, expected) in ends {
        assert_eq!(parse_optional_end("--until", text).ok(), expected, "parse_optional_end({text:?})");
    }
}

#[test]
fn samples_in_csv_and_json() {
    // (file, rows as (line, [(column, value, masked)]), ignored columns)
    type Expected = Vec<(usize, Vec<(Column, &'static str, bool)>)>;
    let cases: [(&str, Expected, Vec<&str>); 6] = [
        (
            "Email,Full Name,notes\nada@example.com,Ada Lovelace,vip\n",
            vec![(2, vec![(Column::Email, "ada@example.com", false), (Column::FullName, "Ada Lovelace", false)])],
            vec!["notes"],
        ),
        (
            "name;phone\nJ*** D***;+44 ****58\n\n\"K*** L***\";+1 ****07\n",
            vec![
                (2, vec![(Column::FullName, "J*** D***", true), (Column::Phone, "+44 ****58", true)]),
                (4, vec![(Column::FullName, "K*** L***", true), (Column::Phone, "+1 ****07", true)]),
            ],
            vec![],
        ),
        (
            "account_id,wallet\r\ncus-1,\"bc1qxy…x0wl\"\r\ncus-2,\r\n",
            vec![
                (2, vec![(Column::AccountId, "cus-1", false), (Column::Wallet, "bc1qxy…x0wl", true)]),
                (3, vec![(Column::AccountId, "cus-2", false)]),
            ],
            vec![],
        ),
        ("email\n\"a,\"\"b\"\"@x.com\"\n", vec![(2, vec![(Column::Email, "a,\"b\"@x.com", false)])], vec![]),
        (
            r#"[{"email": "j***n@g****.com", "wallets": ["0xabc", "0xdef"], "city": "Leeds"}]"#,
            vec![(
                1,
                vec![
                    (Column::Email, "j***n@g****.com", true),
                    (Column::Wallet, "0xabc", false),
                    (Column::Wallet, "0xdef", false),
                ],
            )],
            vec!["city"],
        ),
        (r#"{"leak": [{"account": 12345}]}"#, vec![(1, vec![(Column::AccountId, "12345", false)])], vec![]),
    ];
    for (text, rows, ignored) in cases {
        let sample = read_sample("leak", text).unwrap();
        let found: Expected = sample
            .rows
            .iter()
            .map(|row| {
                let cells: Vec<(Column, &'static str, bool)> = row
                    .cells
                    .iter()
                    .map(|cell| (cell.column, &*Box::leak(cell.value.clone().into_boxed_str()), cell.masked))
                    .collect();
                (row.line, cells)
            })
            .collect();
        assert_eq!(found, rows, "{text:?}");
        assert_eq!(sample.ignored_columns, ignored, "{text:?}");
    }
    // Errors name the file and the problem.
    let errors = [
        ("city,country\nLeeds,UK\n", "sample `leak` has no column cordon can match (headers: city, country)"),
        ("email\n\"unclosed\n", "sample `leak`: line 2: a quoted field is not closed"),
        ("[1, 2]", "sample `leak`: row 1 is not an object"),
        ("{\"a\": 1}", "sample `leak`: the object holds no array of rows"),
    ];
    for (text, message) in errors {
        let error = read_sample("leak", text).unwrap_err().to_string();
        assert!(error.starts_with(message), "{text:?} gave {error:?}");
    }
}

fn shown(index: u64, agent: &str, customer: &str, how: ShownAs, fields: &[Field]) -> Shown {
    Shown {
        ledger_index: index,
        time_ms: 1_772_409_600_000 + index as i64 * 3_600_000,
        agent: agent.into(),
        customer: customer.into(),
        how,
        fields: fields.to_vec(),
    }
}

#[test]
fn scope_counts_revealed_and_masked_fields() {
    let record: BTreeSet<Field> = [Field::FullName, Field::Email, Field::Phone, Field::BalanceUsd].into();
    let facts: HashMap<String, CustomerFacts> = [
        ("c-1".to_string(), CustomerFacts { fields: Some(record.clone()), high_balance: true }),
        ("c-2".to_string(), CustomerFacts { fields: Some(record.clone()), high_balance: false }),
        ("c-3".to_string(), CustomerFacts { fields: Some(record), high_balance: false }),
    ]
    .into();
    let accesses = [
        shown(1, "a-1", "c-1", ShownAs::Card, &[]),
        shown(2, "a-1", "c-1", ShownAs::Reveal, &[Field::Email, Field::TaxId]),
        shown(3, "a-2", "c-2", ShownAs::SearchHit, &[]),
        shown(30, "a-2", "c-3", ShownAs::Verify, &[Field::Phone]),
    ];
    let found = scope(&accesses, &facts, 100);
    let customer = |id: &str| found.customer(id).unwrap();
    // A reveal of a field the record lacks (tax_id) reveals nothing.
    assert_eq!(customer("c-1").revealed, [Field::Email].into());
    assert_eq!(customer("c-1").masked_only, [Field::FullName, Field::Phone, Field::BalanceUsd].into());
    assert_eq!(customer("c-2").masked_only, [Field::FullName].into());
    assert!(customer("c-3").masked_only.is_empty() && customer("c-3").revealed.is_empty());
    assert_eq!(customer("c-3").verified, [Field::Phone].into());
    assert_eq!(found.high_balance, 1);
    assert!(close(found.share(), 0.03));
    assert_eq!(found.by_field[&Field::Email].revealed, 1);
    assert_eq!(found.by_field[&Field::FullName].masked_only, 2);
    assert_eq!(
        found.agents.iter().map(|agent| (agent.agent.as_str(), agent.customers)).collect::<Vec<_>>(),
        [("a-1", 1), ("a-2", 2)]
    );
    assert_eq!(found.days.iter().map(|day| day.new_customers).sum::<u64>(), 3);
    assert_eq!(customer("c-1").evidence, vec![1, 2]);
}

/// A base of 200,000 customers, 1.6% of them rich (band 3, `c-0`..`c-3199`), with a vip desk
/// agent shown half of the rich (cards and emails), a leaker who revealed the emails of 300
/// ordinary customers (`c-10000`..), a busy honest agent shown 3,000 ordinary customers'
/// masked cards (`c-20000`..) and a QA analyst shown cards of 1,000 of those too.
struct Exchange {
    model: NullModel,
    shown: Vec<Shown>,
}

const RICH: u32 = 3_200;

fn exchange() -> Exchange {
    let bands: HashMap<String, u8> =
        (0..200_000u32).map(|number| (format!("c-{number}"), if number < RICH { 3 } else { 0 })).collect();
    let mut shown_list = Vec::new();
    let mut index = 0;
    let mut show = |agent: &str, customers: std::ops::Range<u32>, how: ShownAs, fields: &[Field]| {
        for number in customers {
            index += 1;
            shown_list.push(shown(index, agent, &format!("c-{number}"), how, fields));
        }
    };
    show("vip", 0..RICH / 2, ShownAs::Card, &[]);
    show("vip", 0..RICH / 2, ShownAs::Reveal, &[Field::Email]);
    show("leaker", 10_000..10_300, ShownAs::Card, &[]);
    show("leaker", 10_000..10_300, ShownAs::Reveal, &[Field::Email, Field::Phone]);
    show("busy", 20_000..23_000, ShownAs::Card, &[]);
    show("qa", 20_000..21_000, ShownAs::Card, &[]);
    show("idle", 50_000..50_010, ShownAs::SearchHit, &[]);
    let reach = shown_list
        .iter()
        .map(|access| (access.agent.clone(), access.customer.clone(), Seen::of(access.how, &access.fields)));
    let model = NullModel::new(&bands, reach.collect::<Vec<_>>());
    Exchange { model, shown: shown_list }
}

/// Rows of one column, one customer each (`masked_fit` other customers fit a masked row).
fn rows_of(customers: impl Iterator<Item = u32>, column: Column, masked: bool, masked_fit: u32) -> Vec<MatchedRow> {
    customers
        .enumerate()
        .map(|(position, number)| {
            let mut candidates: Vec<String> = vec![format!("c-{number}")];
            if masked {
                // Others the rendering fits, from the ordinary base far from every agent.
                candidates.extend((0..masked_fit).map(|other| format!("c-{}", 100_000 + number * 7 + other)));
            }
            candidates.sort();
            MatchedRow { line: position + 2, candidates, needed: vec![Needed { column, masked }] }
        })
        .collect()
}

#[test]
fn attribution_blames_the_source_and_never_an_agent_who_could_not_have_leaked_it() {
    let exchange = exchange();
    // (case, rows, blamed, verdict)
    let cases: Vec<(&str, Vec<MatchedRow>, Vec<&str>, Verdict)> = vec![
        (
            "exact emails of the leaker's customers",
            rows_of(10_000..10_020, Column::Email, false, 0),
            vec!["leaker"],
            Verdict::Blamed,
        ),
        (
            "masked emails of the leaker's customers",
            rows_of(10_100..10_120, Column::Email, true, 20),
            vec!["leaker"],
            Verdict::Blamed,
        ),
        // A rich sample is explained half by the vip desk: what its reach of the rich predicts.
        (
            "exact emails of rich customers",
            rows_of((0..RICH).step_by(160), Column::Email, false, 0),
            vec![],
            Verdict::NobodyStandsOut,
        ),
        (
            "masked emails of rich customers",
            rows_of((0..RICH).step_by(160), Column::Email, true, 20),
            vec![],
            Verdict::NobodyStandsOut,
        ),
        // Exact values the busy agent and QA were only shown masked: neither can be the source.
        (
            "exact emails of the busy agent's customers",
            rows_of(20_000..20_020, Column::Email, false, 0),
            vec![],
            Verdict::NotShown,
        ),
        (
            "masked emails of the busy agent's customers",
            rows_of(21_500..21_520, Column::Email, true, 20),
            vec!["busy"],
            Verdict::Blamed,
        ),
        // Three rows that fit 300 customers each cannot single anyone out.
        (
            "three masked rows of the leaker",
            rows_of(10_000..10_003, Column::Email, true, 300),
            vec![],
            Verdict::Inconclusive,
        ),
        ("customers nobody was shown", rows_of(150_000..150_020, Column::Email, false, 0), vec![], Verdict::NotShown),
    ];
    for (case, rows, blamed, verdict) in cases {
        let found = attribute(&rows, &exchange.shown, &exchange.model);
        let named: Vec<&str> = found.blamed().map(|agent| agent.agent.as_str()).collect();
        assert_eq!(named, blamed, "{case}: {}", found.reason);
        assert_eq!(found.verdict, verdict, "{case}: {}", found.reason);
        assert_eq!(found.agents_considered, 5, "{case}");
        // The cover never names an agent the blamed list does not.
        assert!(found.cover.iter().all(|agent| blamed.contains(&agent.as_str())), "{case}");
    }
    // As shown: the busy agent explains every exact row, none as shown.
    let found = attribute(&rows_of(20_000..20_020, Column::Email, false, 0), &exchange.shown, &exchange.model);
    let busy = found.agents.iter().find(|agent| agent.agent == "busy").unwrap();
    assert_eq!((busy.explained.len(), busy.consistent, busy.blamed), (20, 0, false));
    // Nothing matched: nobody explains anything.
    let unmatched: Vec<MatchedRow> = rows_of(10_000..10_020, Column::Email, false, 0)
        .into_iter()
        .map(|row| MatchedRow { candidates: vec![], ..row })
        .collect();
    let none = attribute(&unmatched, &exchange.shown, &exchange.model);
    assert!(none.agents.is_empty() && none.cover.is_empty());
    assert_eq!((none.verdict, none.unmatched_lines.len()), (Verdict::NoMatch, 20));
}

#[test]
fn seen_shows_a_value_only_the_way_it_was_shown() {
    let exact = |column| [Needed { column, masked: false }];
    let masked = |column| [Needed { column, masked: true }];
    let card = Seen::of(ShownAs::Card, &[]);
    let email = Seen::of(ShownAs::Reveal, &[Field::Email]);
    let hit = Seen::of(ShownAs::SearchHit, &[]);
    let verify = Seen::of(ShownAs::Verify, &[Field::Email]);
    // (seen, needed, shows)
    let cases: [(Seen, &[Needed], bool); 10] = [
        (card, &masked(Column::Email), true),
        (card, &exact(Column::Email), false),
        (email, &exact(Column::Email), true),
        (email, &masked(Column::Email), true),
        (email, &exact(Column::Phone), false),
        (hit, &masked(Column::FullName), true),
        (hit, &masked(Column::Email), false),
        (verify, &exact(Column::Email), false),
        (verify, &exact(Column::AccountId), true),
        (
            card.with(email),
            &[Needed { column: Column::Email, masked: false }, Needed { column: Column::Phone, masked: true }],
            true,
        ),
    ];
    for (seen, needed, shows) in cases {
        assert_eq!(seen.shows(needed), shows, "{seen:?} {needed:?}");
        assert_eq!(Seen::from_bits(seen.bits()), seen);
    }
}

/// Regression: a serving node's reach changes between questions, and building the model again
/// for each (a census of the base) made each attribution as slow as the first. Replacing each
/// changed customer's reach must give exactly the model a fresh build gives: pairs new and
/// old, new ways for known pairs, customers shown to one agent and then to a second and third,
/// customers outside the base.
#[test]
fn a_model_brought_up_to_date_customer_by_customer_equals_one_built_afresh() {
    let ways = [
        Seen::of(ShownAs::SearchHit, &[]),
        Seen::of(ShownAs::Card, &[]),
        Seen::of(ShownAs::Reveal, &[Field::Email]),
        Seen::of(ShownAs::Reveal, &[Field::Phone, Field::FullName]),
        Seen::of(ShownAs::Verify, &[Field::Email]),
    ];
    let needs: [&[Needed]; 4] = [
        &[Needed { column: Column::Email, masked: false }],
        &[Needed { column: Column::Email, masked: true }],
        &[Needed { column: Column::FullName, masked: true }, Needed { column: Column::Phone, masked: false }],
        &[Needed { column: Column::AccountId, masked: false }],
    ];
    for seed in 1..=20u64 {
        // A small xorshift: the same cases on every run.
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let bands: HashMap<String, u8> = (0..60).map(|number| (format!("c-{number}"), (number % 3) as u8)).collect();
        let items: Vec<(String, String, Seen)> = (0..400)
            .map(|_| {
                // A few customers outside the base (shredded ones) too.
                let customer = format!("c-{}", next(66));
                (format!("a-{}", next(6)), customer, ways[next(ways.len() as u64) as usize])
            })
            .collect();
        let whole = NullModel::new(&bands, items.clone());
        let split = next(400) as usize;
        let mut applied = NullModel::new(&bands, items[..split].to_vec());
        // Each customer's reach (agent -> ways) after the first `upto` items.
        let reach_of = |customer: &str, upto: usize| -> Vec<(String, Seen)> {
            let mut ways: BTreeMap<String, Seen> = BTreeMap::new();
            for (agent, _, seen) in items[..upto].iter().filter(|(_, shown, _)| shown == customer) {
                let known = ways.entry(agent.clone()).or_default();
                *known = known.with(*seen);
            }
            ways.into_iter().collect()
        };
        let changed: BTreeSet<&str> = items[split..].iter().map(|(_, customer, _)| customer.as_str()).collect();
        for customer in changed {
            applied.replace_customer(customer, &reach_of(customer, split), &reach_of(customer, items.len()));
        }
        assert_eq!(applied.customers(), whole.customers(), "seed {seed}");
        assert_eq!(applied.agents(), whole.agents(), "seed {seed}");
        for agent in (0..6).map(|number| format!("a-{number}")) {
            assert_eq!(applied.volume(&agent), whole.volume(&agent), "seed {seed} {agent}");
            for needed in needs {
                assert_eq!(
                    applied.reach_by_stratum(&agent, needed),
                    whole.reach_by_stratum(&agent, needed),
                    "seed {seed}, {agent}, {needed:?}, split at {split}"
                );
            }
        }
    }
}
