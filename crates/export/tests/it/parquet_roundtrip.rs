//! Access events written as Parquet read back the same through an independent reader (the
//! parquet crate's Arrow reader), across row groups.

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, ListArray};
use cordon_export::{AccessEvent, ParquetExport, ROWS_PER_GROUP, access_event};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

#[test]
fn ledger_entries_become_access_events() {
    // (entry, expected event or none)
    let cases: [(&str, Option<AccessEvent>); 4] = [
        (
            r#"{"v":1,"kind":"access","time_ms":5,"request":"r-1","agent":"agt-1","action":"search","search_by":"email","matches":["cus-1","cus-2"],"why":"ticket","decision":"allow","policies":["search"]}"#,
            Some(AccessEvent {
                ledger_index: 9,
                time_ms: 5,
                request: "r-1".into(),
                agent: "agt-1".into(),
                action: "search".into(),
                shown: vec!["cus-1".into(), "cus-2".into()],
                why: Some("ticket".into()),
                allowed: true,
                policies: vec!["search".into()],
                ..AccessEvent::default()
            }),
        ),
        (
            r#"{"v":1,"kind":"access","time_ms":6,"request":"r-2","agent":"agt-1","action":"reveal","customer":"cus-1","ticket":"t-1","fields":["email"],"decision":"deny","policies":[]}"#,
            Some(AccessEvent {
                ledger_index: 9,
                time_ms: 6,
                request: "r-2".into(),
                agent: "agt-1".into(),
                action: "reveal".into(),
                customer: Some("cus-1".into()),
                ticket: Some("t-1".into()),
                fields: vec!["email".into()],
                ..AccessEvent::default()
            }),
        ),
        (r#"{"v":1,"kind":"change","time_ms":7,"actor":"a","change":"agent.put","target":"agt-1"}"#, None),
        ("not json", None),
    ];
    for (entry, expected) in cases {
        assert_eq!(access_event(9, entry.as_bytes()), expected, "{entry}");
    }
}

fn strings(list: &ListArray, row: usize) -> Vec<String> {
    let values = list.value(row);
    let values = values.as_string::<i32>();
    (0..values.len()).map(|index| values.value(index).to_string()).collect()
}

#[test]
fn parquet_reads_back_row_for_row() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let count = ROWS_PER_GROUP + 1000;
    let event = |index: usize| AccessEvent {
        ledger_index: index as u64,
        time_ms: 1_772_409_600_000 + index as i64,
        request: format!("r-{index}"),
        agent: format!("agt-{}", index % 7),
        action: if index.is_multiple_of(3) { "search" } else { "view" }.into(),
        customer: (!index.is_multiple_of(3)).then(|| format!("cus-{index}")),
        shown: if index.is_multiple_of(3) {
            vec![format!("cus-{index}"), "cus-x".into()]
        } else {
            vec![format!("cus-{index}")]
        },
        ticket: (index.is_multiple_of(2)).then(|| format!("t-{index}")),
        fields: if index.is_multiple_of(5) { vec!["email".into(), "phone".into()] } else { Vec::new() },
        why: Some("ticket".into()),
        allowed: !index.is_multiple_of(11),
        policies: vec!["p".into()],
    };
    let mut export = ParquetExport::new(file.reopen().unwrap()).unwrap();
    for index in 0..count {
        export.push(event(index)).unwrap();
    }
    assert_eq!(export.finish().unwrap(), count as u64);

    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file.path()).unwrap()).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 2);
    let mut row = 0;
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        let index = batch.column_by_name("ledger_index").unwrap().as_primitive::<UInt64Type>().clone();
        let time = batch.column_by_name("time").unwrap().as_primitive::<TimestampMillisecondType>().clone();
        let customer = batch.column_by_name("customer").unwrap().as_string::<i32>().clone();
        let shown = batch.column_by_name("shown").unwrap().as_list::<i32>().clone();
        let fields = batch.column_by_name("fields").unwrap().as_list::<i32>().clone();
        let allowed = batch.column_by_name("allowed").unwrap().as_boolean().clone();
        for position in 0..batch.num_rows() {
            let expected = event(row);
            assert_eq!(index.value(position), expected.ledger_index);
            assert_eq!(time.value(position), expected.time_ms);
            assert_eq!(customer.is_null(position), expected.customer.is_none());
            assert_eq!(strings(&shown, position), expected.shown);
            assert_eq!(strings(&fields, position), expected.fields);
            assert_eq!(allowed.value(position), expected.allowed);
            row += 1;
        }
    }
    assert_eq!(row, count);
}
