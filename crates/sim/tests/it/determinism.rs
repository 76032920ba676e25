//! The same scenario and seed give the same ledger root; another seed gives another.

use crate::support::{simulate, small_with};

#[test]
fn same_seed_same_root_other_seed_other_root() {
    // Detection on: its alerts and suspensions are part of what must repeat.
    for (policy, detection) in [("permissive", true), ("default", false)] {
        let insider = "[[insider]]\nbehaviour = \"harvester\"\nstart_day = 1\ncustomers_per_day = 10\n";
        let first = simulate(&small_with(policy, detection, 5, insider));
        let again = simulate(&small_with(policy, detection, 5, insider));
        let other = simulate(&small_with(policy, detection, 6, insider));
        assert!(first.entries.len() > 1_000, "{policy}: a real amount of traffic ({} entries)", first.entries.len());
        assert_eq!(first.root, again.root, "{policy}: same seed, same root");
        assert_eq!(first.entries, again.entries, "{policy}: same seed, same entries");
        assert_eq!(first.truth, again.truth, "{policy}: same seed, same ground truth");
        assert_ne!(first.root, other.root, "{policy}: another seed, another root");
    }
}
