use std::collections::{BTreeSet, HashMap};

use cordon_incident::{
    Column, CustomerFacts, Field, MatchedRow, Needed, Shown, ShownAs, at_least, attribute, hit_probability, iso_time,
    parse_optional_end, parse_time, read_sample, scope,
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

#[test]
fn attribution_blames_the_source_and_not_the_busy() {
    // Twenty rows, each one customer; the leaker was shown all of them, a busy honest agent
    // (ten times the volume) two of them.
    let rows: Vec<MatchedRow> = (0..20)
        .map(|row| MatchedRow {
            line: row + 2,
            candidates: vec![format!("c-{row}")],
            needed: vec![Needed { column: Column::Email, masked: true }],
        })
        .collect();
    let mut accesses: Vec<Shown> =
        (0..20).map(|row| shown(row, "leaker", &format!("c-{row}"), ShownAs::Card, &[])).collect();
    accesses.push(shown(100, "busy", "c-3", ShownAs::Reveal, &[Field::Email]));
    accesses.push(shown(101, "busy", "c-4", ShownAs::Card, &[]));
    let volumes: HashMap<String, u64> =
        [("leaker".to_string(), 300), ("busy".to_string(), 3000), ("idle".to_string(), 10)].into();
    let found = attribute(&rows, &accesses, &volumes, 200_000);
    assert_eq!(found.cover, vec!["leaker".to_string()]);
    assert_eq!(found.covered_rows, 20);
    assert_eq!(found.agents[0].consistent, 20);
    assert_eq!(found.agents[1].agent, "busy");
    assert!(!found.agents[1].blamed);
    assert_eq!(found.agents_considered, 3);
    // Nothing matched: nobody explains anything.
    let unmatched: Vec<MatchedRow> = rows.iter().map(|row| MatchedRow { candidates: vec![], ..row.clone() }).collect();
    let none = attribute(&unmatched, &accesses, &volumes, 200_000);
    assert!(none.agents.is_empty() && none.cover.is_empty());
    assert_eq!(none.unmatched_lines.len(), 20);
}
