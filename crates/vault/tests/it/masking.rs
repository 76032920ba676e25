//! Masked forms: a table of examples per rule, then properties that a masked form depends on
//! nothing but the part of the value its rule allows.

// `scramble` takes a list of kept ranges; a list of one is intended, not a mistaken range.
#![allow(clippy::single_range_in_vec_init)]

use cordon_vault::{Date, Field, UNREADABLE, mask};
use proptest::prelude::*;
use serde_json::{Value, json};

const TODAY: Date = Date { year: 2026, month: 11, day: 22 };

fn check(field: Field, value: Value, expected: &str) {
    assert_eq!(mask(field, &value, TODAY), expected, "mask of {field} {value}");
}

#[test]
fn catalogue_examples() {
    check(Field::FullName, json!("John Doe"), "J*** D***");
    check(Field::FullName, json!("  Ada   King Lovelace "), "A*** K*** L***");
    check(Field::DateOfBirth, json!("1990-05-17"), "30–39");
    check(Field::DateOfBirth, json!("1996-11-22"), "30–39");
    check(Field::DateOfBirth, json!("1996-11-23"), "20–29");
    check(Field::DateOfBirth, json!("2030-01-01"), UNREADABLE);
    check(
        Field::PostalAddress,
        json!({"street": "1 Main St", "city": "Dublin", "postal_code": "D02", "country": "IE"}),
        "Dublin, IE",
    );
    check(Field::Email, json!("john@gmail.com"), "j***n@g****.com");
    check(Field::Email, json!("a@mail.example.co.uk"), "a***@m****.uk");
    check(Field::Phone, json!("+1 415 555 0123"), "+1 ****23");
    check(Field::Phone, json!("+44 20 7946 0958"), "+44 ****58");
    check(Field::Phone, json!("+353 86 123 4567"), "+353 ****67");
    check(Field::GovernmentIdNumber, json!("123-45-6789"), "****6789");
    check(Field::TaxId, json!("9876"), "****");
    check(Field::BankAccount, json!("IE29AIBK93115212345678"), "****5678");
    check(Field::IdDocumentImage, json!("kyc/passport-8812.jpg"), "document on file");
    check(Field::BalanceUsd, json!(999.99), "<1k");
    check(Field::BalanceUsd, json!(1000), "1k–10k");
    check(Field::BalanceUsd, json!(99_999), "10k–100k");
    check(Field::BalanceUsd, json!(1_000_000), "100k–1M");
    check(Field::BalanceUsd, json!(1_000_000.01), ">1M");
    check(
        Field::WalletAddresses,
        json!(["bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "0x71C7656EC7ab88b098defB751B7401B5f6d8976F"]),
        "bc1qxy…0wlh, 0x71C7…976F",
    );
    check(
        Field::TransactionHistory,
        json!([{"date": "2026-01-02"}, {"date": "2026-03-01"}, {"date": "2025-12-31"}]),
        "3 transactions, latest 2026-03-01",
    );
    check(Field::TransactionHistory, json!([]), "0 transactions");
    check(Field::TwoFactorMethod, json!({"type": "sms", "phone": "+14155550123"}), "sms");
    check(Field::TwoFactorMethod, json!("totp"), "totp");
    check(Field::LastLoginIp, json!("203.0.113.7"), "203.0.*.*");
    check(Field::LastLoginIp, json!("2001:db8::1"), "2001:db8:*");
    // A value of the wrong shape never falls back to showing itself.
    check(Field::Email, json!("not-an-email"), UNREADABLE);
    check(Field::BalanceUsd, json!("1000"), UNREADABLE);
}

/// Replaces every character of `text` outside `keep` (byte ranges to keep) with random ones
/// of the same kind, and varies the length of what is hidden.
fn scramble(text: &str, keep: &[std::ops::Range<usize>], noise: &[u8]) -> String {
    let characters: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut noise_index = 0;
    let mut take_noise = || {
        let byte = noise[noise_index % noise.len()];
        noise_index += 1;
        byte
    };
    for (position, character) in characters.iter().enumerate() {
        if keep.iter().any(|range| range.contains(&position)) {
            out.push(*character);
        } else if character.is_ascii_digit() {
            out.push(char::from(b'0' + take_noise() % 10));
        } else if character.is_ascii_alphabetic() {
            out.push(char::from(b'a' + take_noise() % 26));
        } else {
            out.push(*character);
        }
    }
    out
}

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z]{1,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_name_shows_only_initials(words in proptest::collection::vec(word(), 1..4), noise in proptest::collection::vec(any::<u8>(), 1..32), extra in 0usize..5) {
        let name = words.join(" ");
        let masked = mask(Field::FullName, &json!(name), TODAY);
        // Keep each word's initial; change everything else, and the words' lengths.
        let other: Vec<String> = words.iter().map(|word| {
            let initial: String = word.chars().take(1).collect();
            let rest = scramble(&word.chars().skip(1).collect::<String>(), &[], &noise);
            format!("{initial}{rest}{}", "x".repeat(extra))
        }).collect();
        prop_assert_eq!(mask(Field::FullName, &json!(other.join(" ")), TODAY), masked);
    }

    #[test]
    fn an_email_shows_only_its_ends_and_top_level_domain(local in "[a-z0-9]{2,16}", host in "[a-z]{2,12}", top in "[a-z]{2,4}", noise in proptest::collection::vec(any::<u8>(), 1..32), extra in 0usize..6) {
        let email = format!("{local}@{host}.{top}");
        let masked = mask(Field::Email, &json!(email), TODAY);
        let local_length = local.chars().count();
        let scrambled_local = scramble(&local, &[0..1, local_length - 1..local_length], &noise);
        let (first, last) = scrambled_local.split_at(1);
        let other_local = format!("{first}{}{last}", "q".repeat(extra));
        let other_host = format!("{}{}", scramble(&host, &[0..1], &noise), "z".repeat(extra));
        let other = format!("{other_local}@{other_host}.{top}");
        prop_assert_eq!(mask(Field::Email, &json!(other), TODAY), masked.clone());
        // Only the local part is checked: its middle may well appear in the
        // top-level domain, which is shown.
        let masked_local = masked.split('@').next().unwrap_or_default();
        prop_assert!(!masked_local.contains(&local[1..local_length - 1]) || local_length <= 3);
    }

    #[test]
    fn identifiers_show_only_their_last_four(value in "[A-Z0-9]{5,24}", noise in proptest::collection::vec(any::<u8>(), 1..32), extra in 0usize..6) {
        for field in [Field::GovernmentIdNumber, Field::TaxId, Field::BankAccount] {
            let masked = mask(field, &json!(value), TODAY);
            let length = value.chars().count();
            let other = format!("{}{}", "9".repeat(extra), scramble(&value, &[length - 4..length], &noise));
            prop_assert_eq!(mask(field, &json!(other), TODAY), masked.clone());
            prop_assert!(masked.ends_with(&value[length - 4..]));
        }
    }

    #[test]
    fn a_phone_shows_only_its_country_code_and_last_two_digits(local in "[0-9]{7,10}", code in prop::sample::select(vec!["1", "44", "353", "49", "7"]), noise in proptest::collection::vec(any::<u8>(), 1..32), extra in 0usize..3) {
        let phone = format!("+{code} {local}");
        let masked = mask(Field::Phone, &json!(phone), TODAY);
        let length = local.len();
        let other_local = format!("{}{}", "5".repeat(extra), scramble(&local, &[length - 2..length], &noise));
        prop_assert_eq!(mask(Field::Phone, &json!(format!("+{code}{other_local}")), TODAY), masked);
    }

    #[test]
    fn a_wallet_shows_only_its_first_six_and_last_four(address in "[a-zA-Z0-9]{14,60}", noise in proptest::collection::vec(any::<u8>(), 1..32), extra in 0usize..10) {
        let masked = mask(Field::WalletAddresses, &json!([address]), TODAY);
        let length = address.len();
        let scrambled = scramble(&address, &[0..6, length - 4..length], &noise);
        let other = format!("{}{}{}", &scrambled[..6], "k".repeat(extra), &scrambled[6..]);
        prop_assert_eq!(mask(Field::WalletAddresses, &json!([other]), TODAY), masked);
    }

    #[test]
    fn an_address_shows_only_city_and_country(street in "[A-Za-z0-9 ]{1,30}", code in "[A-Z0-9]{2,8}", other_street in "[A-Za-z0-9 ]{1,30}") {
        let one = json!({"street": street, "postal_code": code, "city": "Lyon", "country": "FR"});
        let two = json!({"street": other_street, "city": "Lyon", "country": "FR"});
        prop_assert_eq!(mask(Field::PostalAddress, &one, TODAY), mask(Field::PostalAddress, &two, TODAY));
    }

    #[test]
    fn an_ip_shows_only_its_first_two_octets(a in 0u8.., b in 0u8.., c in 0u8.., d in 0u8.., e in 0u8.., f in 0u8..) {
        let one = mask(Field::LastLoginIp, &json!(format!("{a}.{b}.{c}.{d}")), TODAY);
        let two = mask(Field::LastLoginIp, &json!(format!("{a}.{b}.{e}.{f}")), TODAY);
        prop_assert_eq!(one, two);
    }

    #[test]
    fn a_balance_shows_only_its_band(cents in 0u64..10_000_000_000) {
        let balance = cents as f64 / 100.0;
        let masked = mask(Field::BalanceUsd, &json!(balance), TODAY);
        let bands = ["<1k", "1k–10k", "10k–100k", "100k–1M", ">1M"];
        prop_assert!(bands.contains(&masked.as_str()), "{} is not a band", masked);
    }

    #[test]
    fn a_date_of_birth_shows_only_the_decade_of_the_age(year in 1920i32..2008, month in 1u8..=12, day in 1u8..=28) {
        let masked = mask(Field::DateOfBirth, &json!(format!("{year:04}-{month:02}-{day:02}")), TODAY);
        let (low, high) = masked.split_once('–').unwrap();
        let (low, high): (i32, i32) = (low.parse().unwrap(), high.parse().unwrap());
        prop_assert_eq!(low % 10, 0);
        prop_assert_eq!(high, low + 9);
    }
}

/// A masked rendering copied off a screen and the value it masks normalise to the same
/// match-index form; agents cannot search by these kinds at all.
#[test]
fn masked_renderings_match_their_values() {
    use cordon_vault::{SearchKey, normalize};
    // (kind, value, rendering as on screen, another value with the same mask)
    let cases = [
        (SearchKey::MaskedName, "Ada King Lovelace", "A*** K*** L***", "alan kay longfellow"),
        (SearchKey::MaskedEmail, "john@gmail.com", "j***n@g****.com", "JASON@GMX.COM"),
        (SearchKey::MaskedEmail, "j@example.org", "j***@e****.org", "j@ex.org"),
        (SearchKey::MaskedPhone, "+44 20 7946 0958", "+44 ****58", "+44 7700 900158"),
        (SearchKey::MaskedPhone, "+1 415 555 0107", "+1 ****07", "+1-212-555-0107"),
        (
            SearchKey::MaskedWallet,
            "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh",
            "bc1qxy…0wlh",
            "BC1QXYaaaaaaaaaaaaaa0WLH",
        ),
        (SearchKey::MaskedWallet, "0x71C7656EC7ab88b098defB751B7401B5f6d8976F", "0x71c7...976f", "0x71c7000000976f"),
    ];
    for (kind, value, rendering, same_mask) in cases {
        let expected = normalize(kind, value);
        assert!(expected.is_some(), "{kind:?} {value:?}");
        assert_eq!(normalize(kind, rendering), expected, "{kind:?}: {rendering:?} against {value:?}");
        assert_eq!(normalize(kind, same_mask), expected, "{kind:?}: {same_mask:?} against {value:?}");
        assert!(kind.name().parse::<SearchKey>().is_err(), "agents may not search by {}", kind.name());
    }
    let different = [
        (SearchKey::MaskedName, "Ada Lovelace", "B*** L***"),
        (SearchKey::MaskedEmail, "john@gmail.com", "j***n@g****.co"),
        (SearchKey::MaskedPhone, "+44 20 7946 0958", "+44 ****59"),
        (SearchKey::MaskedWallet, "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh", "bc1qxz…0wlh"),
    ];
    for (kind, value, rendering) in different {
        assert_ne!(normalize(kind, rendering), normalize(kind, value), "{kind:?}: {rendering:?} against {value:?}");
    }
    for kind in SearchKey::AGENT {
        assert_eq!(kind.name().parse::<SearchKey>(), Ok(kind));
    }
}
