//! Evidence bundles: one verifies; every single changed byte, anywhere in the archive, makes
//! it fail; a bundle under another key is refused when a key is trusted.

use cordon_ledger::{
    BundleParts, LogReader, SEAL_MARKER, Signer, format_receipt, hex_sha256, manifest, verify_bundle, write_bundle,
};

use crate::support::TestLog;

/// A bundle of `count` entries from a fresh log, sealed as cordon seals them.
fn bundle(count: usize) -> (Vec<u8>, cordon_ledger::Verifier) {
    let log = TestLog::new("bundle.example/log");
    let ledger = log.open();
    let entries: Vec<Vec<u8>> = (0..count).map(|n| format!("{{\"v\":1,\"entry\":{n}}}").into_bytes()).collect();
    for entry in &entries {
        ledger.append(entry.clone()).wait().unwrap();
    }
    let readme = "# Evidence\n\nHow to check it.\n".to_string();
    let verifier_key = format!("{}\n", ledger.verifier());
    let listed: Vec<(u64, &[u8])> = entries.iter().enumerate().map(|(n, bytes)| (n as u64, bytes.as_slice())).collect();
    let manifest_text = manifest(&readme, &verifier_key, &listed);
    let seal_entry = format!(
        "{{\"change\":\"incident.evidence\",\"detail\":\"{SEAL_MARKER}{}\"}}",
        hex_sha256(manifest_text.as_bytes())
    );
    let seal = ledger.append(seal_entry.into_bytes()).wait().unwrap();
    let signed = ledger.publish().unwrap();
    let reader = LogReader::new(&log.path());
    let proven = (0..=seal)
        .map(|index| {
            let proof = reader.inclusion_proof(index, signed.checkpoint.size).unwrap();
            (index, reader.entry(index, signed.checkpoint.size).unwrap(), format_receipt(index, &proof, &signed.note))
        })
        .collect();
    let parts = BundleParts { readme, verifier_key, checkpoint: signed.note.clone(), entries: proven, seal };
    (write_bundle(parts, manifest_text), ledger.verifier().clone())
}

#[test]
fn a_bundle_verifies_and_no_byte_of_it_can_change() {
    let (bytes, verifier) = bundle(5);
    let summary = verify_bundle(&bytes, Some(&verifier)).unwrap();
    assert_eq!((summary.entries, summary.seal, summary.checkpoint.size), (6, 5, 6));
    verify_bundle(&bytes, None).unwrap();
    for position in 0..bytes.len() {
        for flip in [0x01u8, 0x80] {
            let mut changed = bytes.clone();
            changed[position] ^= flip;
            assert!(
                verify_bundle(&changed, Some(&verifier)).is_err(),
                "the bundle verified with byte {position} of {} xored with {flip:#04x}",
                bytes.len()
            );
        }
    }
    // Cut short or lengthened, it fails too.
    assert!(verify_bundle(&bytes[..bytes.len() - 1], Some(&verifier)).is_err());
    let mut longer = bytes.clone();
    longer.extend([0u8; 512]);
    assert!(verify_bundle(&longer, Some(&verifier)).is_err());
}

#[test]
fn a_bundle_under_another_key_is_refused_when_a_key_is_trusted() {
    let (bytes, _) = bundle(2);
    let other = Signer::generate("bundle.example/log").unwrap().verifier();
    let error = verify_bundle(&bytes, Some(&other)).unwrap_err().to_string();
    assert!(error.contains("is not the one trusted"), "{error}");
}
