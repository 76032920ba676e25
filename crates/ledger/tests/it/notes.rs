//! Signed notes, checkpoints and receipts: what is accepted and what is refused.

use cordon_ledger::{Checkpoint, NoteError, Signer, Verifier, empty_root, format_receipt, leaf_hash, verify_receipt};

fn check_verifier_key(text: &str, expected: Result<(), &str>) {
    match (Verifier::parse(text), expected) {
        (Ok(_), Ok(())) => {}
        (Err(error), Err(fragment)) => {
            assert!(error.to_string().contains(fragment), "key {text:?}: error {error:?} should mention {fragment:?}")
        }
        (outcome, expected) => panic!("key {text:?}: got {outcome:?}, expected {expected:?}"),
    }
}

#[test]
fn verifier_keys() {
    let good = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    check_verifier_key(good, Ok(()));
    check_verifier_key("example.com/foo+530d903a", Err("is not a verifier key"));
    check_verifier_key("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", Err("key ID"));
    check_verifier_key("example.com/bar+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", Err("key ID"));
    check_verifier_key(
        "example.com/foo+530d903a+AkyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        Err("is not a verifier key"),
    );
    check_verifier_key("example.com/foo+530d903a+!!!", Err("is not a verifier key"));
    check_verifier_key("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", Err("key name"));
    check_verifier_key("", Err("is not a verifier key"));
}

#[test]
fn signing_key_round_trip_and_refusals() {
    let signer = Signer::generate("audit.example/log").unwrap();
    let reread = Signer::parse(&signer.to_private_string()).unwrap();
    assert_eq!(reread.verifier(), signer.verifier());
    assert!(!format!("{signer:?}").contains("PRIVATE"), "Debug output must not show key material");
    assert!(matches!(Signer::parse("PRIVATE+KEY+x+00000000+AAAA"), Err(NoteError::BadSigningKey)));
    assert!(matches!(Signer::parse("not a key"), Err(NoteError::BadSigningKey)));
    assert!(matches!(Signer::generate("has space"), Err(NoteError::BadKeyName(_))));
}

#[test]
fn notes_refuse_tampering_and_strangers() {
    let signer = Signer::generate("audit.example/log").unwrap();
    let stranger = Signer::generate("audit.example/log").unwrap();
    let note = signer.sign("audit.example/log\n5\nAAAA\n").unwrap();
    let verifier = signer.verifier();
    let cases: Vec<(&str, String, Result<(), &str>)> = vec![
        ("untouched", note.clone(), Ok(())),
        ("altered text", note.replacen("\n5\n", "\n6\n", 1), Err("does not verify")),
        (
            "other key's signature only",
            stranger.sign("audit.example/log\n5\nAAAA\n").unwrap(),
            Err("no signature by key"),
        ),
        ("no signatures", "audit.example/log\n5\nAAAA\n\n".to_string(), Err("malformed")),
        ("no final newline", note.trim_end().to_string(), Err("malformed")),
        ("not a signature line", format!("{note}garbage\n"), Err("malformed")),
    ];
    for (name, text, expected) in cases {
        match (verifier.open(&text), expected) {
            (Ok(_), Ok(())) => {}
            (Err(error), Err(fragment)) => assert!(error.to_string().contains(fragment), "{name}: {error}"),
            (outcome, expected) => panic!("{name}: got {outcome:?}, expected {expected:?}"),
        }
    }
    assert!(signer.sign("no newline").is_err());
}

#[test]
fn checkpoint_text_round_trip_and_refusals() {
    let checkpoint = Checkpoint { origin: "audit.example/log".into(), size: 70000, root: empty_root() };
    assert_eq!(Checkpoint::parse(&checkpoint.to_text()).unwrap(), checkpoint);
    let with_extension = format!("{}extension line\n", checkpoint.to_text());
    assert_eq!(Checkpoint::parse(&with_extension).unwrap(), checkpoint);
    for bad in [
        "",
        "origin\n",
        "origin\n012\nAAAA\n",
        "origin\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n1\nshort\n",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn receipt_for_a_one_entry_tree_has_an_empty_proof() {
    let signer = Signer::generate("audit.example/log").unwrap();
    let entry = b"the only entry";
    let checkpoint = Checkpoint { origin: "audit.example/log".into(), size: 1, root: leaf_hash(entry) };
    let note = signer.sign(&checkpoint.to_text()).unwrap();
    let receipt = format_receipt(0, &[], &note);
    let (index, proven) = verify_receipt(&receipt, entry, &signer.verifier()).unwrap();
    assert_eq!((index, proven), (0, checkpoint));
    assert!(verify_receipt(&receipt, b"another entry", &signer.verifier()).is_err());
}
