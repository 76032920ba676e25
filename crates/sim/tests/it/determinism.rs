//! The same scenario and seed give the same ledger root; another seed gives another.

use crate::support::{simulate, small};

#[test]
fn same_seed_same_root_other_seed_other_root() {
    for policy in ["permissive", "default"] {
        let insider = "[[insider]]\nbehaviour = \"harvester\"\nstart_day = 1\ncustomers_per_day = 10\n";
        let first = simulate(&small(policy, 5, insider));
        let again = simulate(&small(policy, 5, insider));
        let other = simulate(&small(policy, 6, insider));
        assert!(first.entries.len() > 1_000, "{policy}: a real amount of traffic ({} entries)", first.entries.len());
        assert_eq!(first.root, again.root, "{policy}: same seed, same root");
        assert_eq!(first.entries, again.entries, "{policy}: same seed, same entries");
        assert_eq!(first.truth, again.truth, "{policy}: same seed, same ground truth");
        assert_ne!(first.root, other.root, "{policy}: another seed, another root");
    }
}
