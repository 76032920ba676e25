//! Leaked samples are outside input (whatever an extortionist sent): CSV or JSON of any
//! shape answers with a sample or an error that names the problem, never a panic.

use cordon_incident::read_sample;
use proptest::prelude::*;

/// Text shaped like a sample: headers cordon knows, separators, quotes, masked cells.
fn sample_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("email,phone,full_name,wallet,account_id\n".to_string()),
            Just(",".to_string()),
            Just("\n".to_string()),
            Just("\"".to_string()),
            Just("[{\"email\": ".to_string()),
            Just("}]".to_string()),
            "[a-z*]{0,6}@[a-z*]{0,6}\\.com",
            "\\+?[0-9 *]{0,14}",
            "[ -~]{0,20}",
            "\\PC{0,8}",
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn samples_of_any_shape_answer(text in sample_like(), other in any::<String>()) {
        for input in [&text, &other] {
            if let Ok(sample) = read_sample("sample", input) {
                prop_assert!(sample.rows.len() <= input.lines().count() + 1, "{} rows from {input:?}", sample.rows.len());
            }
        }
    }
}
