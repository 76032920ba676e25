//! Scenario files are outside input: TOML of any shape answers with a scenario or an error
//! that names the problem, never a panic.

use cordon_sim::Scenario;
use proptest::prelude::*;

/// Text shaped like a scenario: its tables and keys, numbers of every size, strings.
fn scenario_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("[exchange]\n".to_string()),
            Just("[[insider]]\n".to_string()),
            Just("[traffic]\n".to_string()),
            Just("name = ".to_string()),
            Just("customers = ".to_string()),
            Just("agents = ".to_string()),
            Just("days = ".to_string()),
            Just("behaviour = ".to_string()),
            Just("seed = ".to_string()),
            "-?[0-9]{1,22}\n",
            "\"[ -~]{0,12}\"\n",
            "[0-9]\\.[0-9]{1,4}e[0-9]{1,3}\n",
            "[ -~]{0,20}\n",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn scenario_files_of_any_shape_answer(text in scenario_like(), other in any::<String>()) {
        let _ = Scenario::parse(&text);
        let _ = Scenario::parse(&other);
    }
}
