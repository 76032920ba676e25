//! Envelope encryption, rotation, crypto-shredding, blind indexes and value shapes.

use std::collections::BTreeMap;
use std::sync::Arc;

use cordon_vault::{BlindIndexKey, Field, LocalKek, SealedRecord, SearchKey, Vault, VaultError, check_shape};
use serde_json::{Value, json};

fn vault_with(kek_byte: u8) -> Vault {
    Vault::new(
        Arc::new(LocalKek::new(&format!("kek-{kek_byte}"), &[kek_byte; 32]).unwrap()),
        BlindIndexKey::new(&[9; 32]).unwrap(),
    )
}

fn ada() -> BTreeMap<Field, Value> {
    BTreeMap::from([
        (Field::FullName, json!("Ada Lovelace")),
        (Field::Email, json!("Ada@Example.com")),
        (Field::Phone, json!("+44 20 7946 0958")),
        (Field::BalanceUsd, json!(2_500_000)),
        (Field::WalletAddresses, json!(["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"])),
    ])
}

#[test]
fn sealed_fields_open_only_for_their_customer_and_field() {
    let vault = vault_with(1);
    let sealed = vault.seal("c-1", &ada()).unwrap();
    let encoded = sealed.record.encode();
    assert!(!String::from_utf8_lossy(&encoded).contains("Lovelace"), "ciphertext does not carry the plaintext");
    assert_eq!(SealedRecord::decode(&encoded).unwrap(), sealed.record);
    let opened = vault.open("c-1", &sealed, &[Field::FullName, Field::Email, Field::TaxId]).unwrap();
    assert_eq!(opened.get(&Field::FullName), Some(&json!("Ada Lovelace")));
    assert_eq!(opened.get(&Field::TaxId), None, "a field the customer lacks is absent");

    // The same sealed record under another customer id: the wrapped key is bound to the customer.
    assert!(matches!(vault.open("c-2", &sealed, &[Field::FullName]), Err(VaultError::Undecryptable { .. })));
    // A ciphertext moved to another field of the same customer does not open.
    let mut moved = sealed.clone();
    moved.record.insert(Field::TaxId, sealed.record.get(Field::FullName).unwrap().to_vec());
    assert!(vault.open("c-1", &moved, &[Field::TaxId]).is_err());
    // Another KEK cannot unwrap the data key.
    assert!(vault_with(2).open("c-1", &sealed, &[Field::FullName]).is_err());
}

#[test]
fn rotation_rewraps_keys_and_leaves_fields_alone() {
    let old = vault_with(1);
    let sealed = old.seal("c-1", &ada()).unwrap();
    let new_kek = LocalKek::new("kek-2", &[2; 32]).unwrap();
    let rotated = old.rewrap("c-1", &sealed, &new_kek).unwrap();
    assert_eq!(rotated.record, sealed.record, "field ciphertexts are unchanged");
    assert_eq!(rotated.kek_id, "kek-2");
    assert_eq!(vault_with(2).open("c-1", &rotated, &[Field::Email]).unwrap()[&Field::Email], json!("Ada@Example.com"));
    assert!(old.open("c-1", &rotated, &[Field::Email]).is_err());
}

#[test]
fn blind_indexes_match_normalised_values_only() {
    let vault = vault_with(1);
    let entries = vault.index_entries("c-1", &ada());
    let find = |kind, value| vault.search_digest(kind, value).is_some_and(|digest| entries.contains(&(kind, digest)));
    assert!(find(SearchKey::Email, " ada@example.COM "));
    assert!(find(SearchKey::Phone, "+442079460958"));
    assert!(find(SearchKey::Phone, "+44 (20) 7946-0958"));
    assert!(find(SearchKey::AccountId, "c-1"));
    assert!(find(SearchKey::Wallet, "BC1QXY2KGDYGJRSQTZQ2N0YRF2493P83KKFJHX0WLH"));
    assert!(!find(SearchKey::Email, "ada@example.co"), "no prefix or fuzzy matches");
    assert!(!find(SearchKey::Phone, "+4420794609"));
    // Incident response's indexes: the full name and the masked renderings as on screen.
    assert!(find(SearchKey::FullName, "  ada   LOVELACE "));
    assert!(find(SearchKey::MaskedName, "A*** L***"));
    assert!(find(SearchKey::MaskedEmail, "a***a@e****.com"));
    assert!(find(SearchKey::MaskedPhone, "+44 ****58"));
    assert!(find(SearchKey::MaskedWallet, "bc1qxy…0wlh"));
    // Bucketed kinds keep 12 bits of the digest; exact kinds keep all 256.
    for kind in SearchKey::ALL {
        let digest = vault.search_digest(kind, "Ada Lovelace ada@example.com +442079460958").unwrap_or([0xFF; 32]);
        let kept_bits: u32 = digest.iter().map(|byte| byte.count_ones()).sum();
        if kind.bucketed() {
            assert!(digest[1] & 0x0F == 0 && digest[2..].iter().all(|byte| *byte == 0), "{kind:?} keeps only 12 bits");
        } else {
            assert!(kept_bits > 64, "{kind:?} keeps the whole digest");
        }
    }
    // The same value under another kind is a different digest.
    assert_ne!(vault.search_digest(SearchKey::AccountId, "x@y.z"), vault.search_digest(SearchKey::Email, "x@y.z"));
    // Another blind-index key gives unrelated digests.
    let other = Vault::new(Arc::new(LocalKek::new("k", &[1; 32]).unwrap()), BlindIndexKey::new(&[8; 32]).unwrap());
    assert_ne!(
        other.search_digest(SearchKey::Email, "ada@example.com"),
        vault.search_digest(SearchKey::Email, "ada@example.com")
    );
}

#[test]
fn bad_values_are_refused_without_echoing_them() {
    let cases = [
        (Field::Email, json!("no-at-sign"), "an email address"),
        (Field::Phone, json!("4155550123"), "starting with `+`"),
        (Field::DateOfBirth, json!("1990-02-30"), "a date"),
        (Field::BalanceUsd, json!(-5), "non-negative"),
        (Field::PostalAddress, json!({"street": "1 Main St"}), "`city` and `country`"),
        (Field::LastLoginIp, json!("300.1.1.1"), "IPv4 or IPv6"),
        (Field::TransactionHistory, json!([{"amount": 1}]), "`date`"),
        (Field::FullName, json!(""), "non-empty"),
    ];
    for (field, value, expected) in cases {
        let error = check_shape(field, &value).unwrap_err();
        assert!(error.contains(expected), "{field}: {error}");
        let sealed = vault_with(1).seal("c-9", &BTreeMap::from([(field, value.clone())]));
        let message = sealed.unwrap_err().to_string();
        assert!(message.contains("c-9") && message.contains(field.name()), "{message}");
        if let Some(text) = value.as_str().filter(|text| !text.is_empty()) {
            assert!(!message.contains(text), "the error must not repeat the value: {message}");
        }
    }
}
