//! Fake customers that look like an exchange's: names, contacts, addresses and identifiers
//! shaped by country, log-normal balances with a few whales, wallets and transactions.
//! Each customer is a pure function of the seed and its number, so any part of the
//! simulation can regenerate one without keeping the population in memory. Every value is
//! fictitious: emails use reserved example domains and phone numbers fictional ranges.

use serde_json::{Value, json};

use crate::rng::Rng;

struct Country {
    code: &'static str,
    given: &'static [&'static str],
    family: &'static [&'static str],
    cities: &'static [&'static str],
    phone_prefix: &'static str,
    phone_digits: u32,
    iban_prefix: &'static str,
    weight: f64,
}

const COUNTRIES: [Country; 8] = [
    Country {
        code: "US",
        given: &["James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "Daniel", "Emily"],
        family: &["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson", "Moore"],
        cities: &["New York", "Austin", "Seattle", "Chicago", "Miami", "Denver", "Boston", "San Diego"],
        phone_prefix: "+1 555 01",
        phone_digits: 5,
        iban_prefix: "US",
        weight: 0.30,
    },
    Country {
        code: "GB",
        given: &["Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Jack", "Mia", "Charlie", "Grace"],
        family: &["Taylor", "Evans", "Thomas", "Roberts", "Walker", "Wright", "Hughes", "Green", "Hall", "Wood"],
        cities: &["London", "Manchester", "Leeds", "Bristol", "Glasgow", "Cardiff"],
        phone_prefix: "+44 7700 9",
        phone_digits: 5,
        iban_prefix: "GB",
        weight: 0.14,
    },
    Country {
        code: "DE",
        given: &["Lukas", "Hannah", "Leon", "Lea", "Finn", "Anna", "Jonas", "Lena", "Paul", "Marie"],
        family: &["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann"],
        cities: &["Berlin", "Hamburg", "München", "Köln", "Frankfurt", "Leipzig"],
        phone_prefix: "+49 1510 0",
        phone_digits: 6,
        iban_prefix: "DE",
        weight: 0.12,
    },
    Country {
        code: "FR",
        given: &["Gabriel", "Louise", "Raphaël", "Jade", "Arthur", "Emma", "Hugo", "Chloé", "Jules", "Léa"],
        family: &["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy"],
        cities: &["Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille"],
        phone_prefix: "+33 6 39 98",
        phone_digits: 4,
        iban_prefix: "FR",
        weight: 0.10,
    },
    Country {
        code: "PT",
        given: &["João", "Maria", "Rodrigo", "Leonor", "Martim", "Matilde", "Tomás", "Beatriz", "Duarte", "Inês"],
        family: &["Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Sousa"],
        cities: &["Lisboa", "Porto", "Braga", "Coimbra", "Faro"],
        phone_prefix: "+351 912 34",
        phone_digits: 4,
        iban_prefix: "PT",
        weight: 0.06,
    },
    Country {
        code: "BR",
        given: &["Miguel", "Helena", "Arthur", "Alice", "Heitor", "Laura", "Bernardo", "Valentina", "Davi"],
        family: &["Souza", "Lima", "Carvalho", "Almeida", "Ribeiro", "Gomes", "Barbosa", "Rocha", "Dias"],
        cities: &["São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba", "Recife"],
        phone_prefix: "+55 11 9555",
        phone_digits: 5,
        iban_prefix: "BR",
        weight: 0.10,
    },
    Country {
        code: "NG",
        given: &["Chinedu", "Ngozi", "Emeka", "Amara", "Tunde", "Funmi", "Ifeanyi", "Zainab", "Segun"],
        family: &["Okafor", "Adeyemi", "Okonkwo", "Balogun", "Eze", "Nwosu", "Bello", "Ogunleye"],
        cities: &["Lagos", "Abuja", "Ibadan", "Port Harcourt", "Kano"],
        phone_prefix: "+234 701 000",
        phone_digits: 4,
        iban_prefix: "NG",
        weight: 0.08,
    },
    Country {
        code: "JP",
        given: &["Haruto", "Yui", "Sota", "Hina", "Yuto", "Sakura", "Riku", "Mio", "Kaito", "Aoi"],
        family: &["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura"],
        cities: &["Tokyo", "Osaka", "Yokohama", "Nagoya", "Sapporo", "Fukuoka"],
        phone_prefix: "+81 90 0000",
        phone_digits: 4,
        iban_prefix: "JP",
        weight: 0.10,
    },
];

const STREETS: [&str; 10] = [
    "Main St",
    "High Street",
    "Oak Avenue",
    "Station Road",
    "Park Lane",
    "Rua Nova",
    "Lindenstraße",
    "Rue de la Paix",
    "Church Road",
    "Harbour View",
];
const ASSETS: [&str; 6] = ["BTC", "ETH", "USDC", "SOL", "USDT", "XRP"];
const TWO_FACTOR: [(&str, f64); 4] = [("totp", 0.55), ("sms", 0.25), ("u2f", 0.12), ("email", 0.08)];

/// The customer id for number `number` (1-based): `cus-` and seven digits, so ids sort and
/// can be walked one after another, as an enumerating insider would.
pub fn customer_id(number: u64) -> String {
    format!("cus-{number:07}")
}

/// The number in a customer id made by `customer_id`.
pub fn customer_number(id: &str) -> Option<u64> {
    id.strip_prefix("cus-")?.parse().ok()
}

/// The facts about a customer that the simulation itself uses to choose who to touch.
#[derive(Debug, Clone, Copy)]
pub struct CustomerSummary {
    pub balance_usd: f64,
    pub country: usize,
    pub canary: bool,
}

/// One generated customer.
#[derive(Debug, Clone)]
pub struct FakeCustomer {
    pub id: String,
    pub summary: CustomerSummary,
    pub email: String,
    pub phone: String,
    pub record: Value,
}

/// Generates customers for one seed.
#[derive(Debug, Clone)]
pub struct People {
    seed: u64,
    /// Customers numbered `canary_from..` are canaries (the last few numbers).
    canary_from: u64,
    count: u64,
}

impl People {
    pub fn new(seed: u64, count: u64, canaries: u64) -> People {
        People { seed: Rng::stream(seed, "customers").next_u64(), canary_from: count - canaries + 1, count }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_canary(&self, number: u64) -> bool {
        number >= self.canary_from
    }

    /// Numbers of customers that real work reaches (canaries excluded).
    pub fn ordinary_count(&self) -> u64 {
        self.canary_from - 1
    }

    fn rng(&self, number: u64) -> Rng {
        Rng::new(self.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Country and balance without building the whole record.
    pub fn summary(&self, number: u64) -> CustomerSummary {
        let mut rng = self.rng(number);
        // Called for every customer, often: the weights stay on the stack.
        let country = rng.weighted(&COUNTRIES.each_ref().map(|country| country.weight));
        // Most balances are modest; one customer in 2,000 is a whale.
        let balance = if rng.chance(0.0005) { rng.log_normal(14.5, 0.8) } else { rng.log_normal(7.2, 2.0) };
        CustomerSummary { balance_usd: (balance * 100.0).round() / 100.0, country, canary: self.is_canary(number) }
    }

    pub fn customer(&self, number: u64) -> FakeCustomer {
        let summary = self.summary(number);
        let mut rng = self.rng(number);
        // Skip past the draws `summary` made, then continue from an independent sub-stream.
        let mut rng = Rng::new(rng.next_u64() ^ 0x5EED);
        let country = COUNTRIES.get(summary.country).unwrap_or(&COUNTRIES[0]);
        let given = rng.pick(country.given).copied().unwrap_or("Alex");
        let family = rng.pick(country.family).copied().unwrap_or("Smith");
        let middle = if rng.chance(0.2) { rng.pick(country.given).copied() } else { None };
        let full_name = match middle {
            Some(middle) if middle != given => format!("{given} {middle} {family}"),
            _ => format!("{given} {family}"),
        };
        let id = customer_id(number);
        let domain =
            rng.pick(&["example.com", "example.org", "example.net", "mail.example"]).copied().unwrap_or("example.com");
        let email = format!("{}.{}{}@{domain}", ascii_lower(given), ascii_lower(family), number);
        let phone = format!(
            "{}{:0width$}",
            country.phone_prefix,
            rng.below(10u64.pow(country.phone_digits)),
            width = country.phone_digits as usize
        );
        let year = 1950 + rng.below(56) as i32;
        let date_of_birth = format!("{year:04}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
        let city = rng.pick(country.cities).copied().unwrap_or("Lisboa");
        let street = format!("{} {}", 1 + rng.below(250), rng.pick(&STREETS).copied().unwrap_or("Main St"));
        let postal_code = format!("{:05}", rng.below(100_000));
        let government_id = format!("{}-{:09}", country.code, rng.below(1_000_000_000));
        let tax_id = format!("T{}{:010}", country.code, rng.below(10_000_000_000));
        let bank_account =
            format!("{}{:02}CRDN{:014}", country.iban_prefix, 10 + rng.below(90), rng.below(100_000_000_000_000));
        let wallets: Vec<String> = (0..1 + rng.below(3))
            .map(|_| {
                if rng.chance(0.6) { format!("bc1q{}", hex(&mut rng, 19)) } else { format!("0x{}", hex(&mut rng, 20)) }
            })
            .collect();
        let transactions: Vec<Value> = (0..rng.below(6))
            .map(|_| {
                json!({
                    "date": format!("2026-{:02}-{:02}", 1 + rng.below(10), 1 + rng.below(28)),
                    "asset": rng.pick(&ASSETS).copied().unwrap_or("BTC"),
                    "amount": (rng.log_normal(0.0, 1.5) * 1000.0).round() / 1000.0,
                    "direction": if rng.chance(0.55) { "deposit" } else { "withdrawal" },
                })
            })
            .collect();
        let two_factor = rng.pick_weighted(&TWO_FACTOR).copied().unwrap_or("totp");
        let ip = format!(
            "{}.{}.{}.{}",
            rng.pick(&[198, 203, 192]).copied().unwrap_or(198),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        );
        let record = json!({
            "id": id,
            "full_name": full_name,
            "date_of_birth": date_of_birth,
            "postal_address": {"street": street, "city": city, "postal_code": postal_code, "country": country.code},
            "email": email,
            "phone": phone,
            "government_id_number": government_id,
            "id_document_image": format!("kyc/{id}/passport.jpg"),
            "tax_id": tax_id,
            "bank_account": bank_account,
            "balance_usd": summary.balance_usd,
            "wallet_addresses": wallets,
            "transaction_history": transactions,
            "two_factor_method": {"type": two_factor},
            "last_login_ip": ip,
            "canary": summary.canary,
        });
        FakeCustomer { id, summary, email, phone, record }
    }

    /// A plausible email that belongs to no customer: what a sweep's guesses mostly are.
    pub fn guessed_email(&self, rng: &mut Rng) -> String {
        let country = COUNTRIES.get(rng.index(COUNTRIES.len())).unwrap_or(&COUNTRIES[0]);
        let given = rng.pick(country.given).copied().unwrap_or("alex");
        let family = rng.pick(country.family).copied().unwrap_or("smith");
        format!("{}.{}@example.com", ascii_lower(given), ascii_lower(family))
    }
}

fn ascii_lower(name: &str) -> String {
    name.chars()
        .map(|character| match character {
            'ä' | 'á' | 'à' | 'ã' => 'a',
            'é' | 'è' | 'ë' => 'e',
            'í' => 'i',
            'ö' | 'ó' | 'ô' => 'o',
            'ü' | 'ú' => 'u',
            'ç' => 'c',
            'ß' => 's',
            other => other.to_ascii_lowercase(),
        })
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

fn hex(rng: &mut Rng, bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rng.below(256))).collect()
}
