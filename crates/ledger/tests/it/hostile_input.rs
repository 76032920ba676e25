//! Outside input to the ledger's parsers (evidence bundles, checkpoints, signed notes,
//! verifier keys, receipts): whatever the bytes, each answers with a value or an error,
//! never a panic, and never accepts a changed bundle.

use cordon_ledger::{Checkpoint, Signer, Verifier, verify_bundle, verify_receipt};
use proptest::prelude::*;

/// Text shaped like notes and receipts: their keywords, separators and base64 alphabet.
fn note_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("\n".to_string()),
            Just("— ".to_string()),
            Just("c2sp.org/tlog-proof@v1\n".to_string()),
            Just("index ".to_string()),
            Just("cordon.local/audit\n".to_string()),
            "[0-9]{1,20}\n",
            "[A-Za-z0-9+/=]{0,64}\n",
            "[ -~]{0,40}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn bundles_of_any_bytes_are_refused_not_panicked_on(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert!(verify_bundle(&bytes, None).is_err());
    }

    #[test]
    fn ustar_shaped_bytes_are_refused_not_panicked_on(
        names in proptest::collection::vec("(entries|proofs)/[0-9]{1,6}|MANIFEST|seal|checkpoint|verifier-key", 1..6),
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = Vec::new();
        for name in names {
            let mut header = [0u8; 512];
            header[..name.len()].copy_from_slice(name.as_bytes());
            header[124..136].copy_from_slice(format!("{:011o}\0", body.len()).as_bytes());
            header[257..263].copy_from_slice(b"ustar\0");
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(&body);
            bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        }
        prop_assert!(verify_bundle(&bytes, None).is_err());
    }

    #[test]
    fn notes_keys_and_receipts_of_any_text_answer(text in note_like(), other in any::<String>()) {
        let _ = Verifier::parse(&text);
        let _ = Verifier::parse(&other);
        let _ = Checkpoint::parse(&text);
        let _ = Checkpoint::parse(&other);
        let verifier = Signer::generate("cordon.local/audit").unwrap().verifier();
        let _ = verifier.open(&text);
        let _ = Checkpoint::open(&text, &verifier);
        let _ = verify_receipt(&text, other.as_bytes(), &verifier);
    }
}
