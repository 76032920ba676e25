//! The simulated exchange's support organisation: sites, teams, agents and their shifts.

use cordon_directory::{Agent, AgentStatus, Role, Shift};

use crate::rng::Rng;
use crate::scenario::Scenario;

/// A place agents work from, with its employer and the UTC shifts worked there.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub name: &'static str,
    pub employer: &'static str,
    /// `[start, end)` UTC hours of the shifts worked at the site.
    pub shifts: &'static [(u8, u8)],
}

pub const SITES: [Site; 5] = [
    Site { name: "us-sf", employer: "staff", shifts: &[(16, 24), (0, 8)] },
    Site { name: "eu-dub", employer: "staff", shifts: &[(8, 16)] },
    Site { name: "apac-sg", employer: "staff", shifts: &[(1, 9)] },
    Site { name: "vendor-bpo-1", employer: "vendor-bpo-1", shifts: &[(0, 8), (8, 16), (16, 24)] },
    Site { name: "vendor-bpo-2", employer: "vendor-bpo-2", shifts: &[(12, 20)] },
];

/// Share of agents per team, and the sites each team works from.
const TEAM_MIX: [(&str, f64, &[&str]); 5] = [
    ("l1-chat", 0.47, &["vendor-bpo-1", "vendor-bpo-2", "us-sf", "eu-dub"]),
    ("account-recovery", 0.16, &["us-sf", "eu-dub", "vendor-bpo-1"]),
    ("kyc-review", 0.16, &["vendor-bpo-1", "eu-dub", "apac-sg"]),
    ("vip-desk", 0.09, &["us-sf", "eu-dub", "apac-sg"]),
    ("fraud-investigations", 0.08, &["us-sf", "eu-dub"]),
];

/// The support teams, in the order of `TEAM_MIX`.
pub fn teams() -> impl Iterator<Item = &'static str> {
    TEAM_MIX.iter().map(|(team, _, _)| *team)
}

/// Analysts (approvers, alert reviewers) are this share of the staff, at staff sites.
const ANALYST_SHARE: f64 = 0.04;

const GIVEN: [&str; 24] = [
    "Alex", "Sam", "Priya", "Marco", "Lena", "Kofi", "Mei", "Diego", "Aisha", "Tom", "Nina", "Ravi", "Joana", "Yuki",
    "Omar", "Hana", "Luis", "Erin", "Chidi", "Sofia", "Ivan", "Maya", "Paulo", "Grace",
];
const FAMILY: [&str; 24] = [
    "Ortiz",
    "Menon",
    "Fischer",
    "Reyes",
    "Okafor",
    "Tanaka",
    "Silva",
    "Nguyen",
    "Kowalski",
    "Haddad",
    "Moreau",
    "Santos",
    "Chen",
    "Murphy",
    "Rossi",
    "Dubois",
    "Park",
    "Cruz",
    "Mensah",
    "Novak",
    "Lindqvist",
    "Costa",
    "Ali",
    "Byrne",
];

/// One simulated staff member and the cordon directory record for them.
#[derive(Debug, Clone)]
pub struct SimAgent {
    pub agent: Agent,
    /// Days of the week (0 = the scenario's first day's weekday + n) off work.
    pub days_off: [u32; 2],
    /// The first day the agent works (new hires join later).
    pub joins_day: u32,
}

impl SimAgent {
    pub fn id(&self) -> &str {
        &self.agent.id
    }

    /// Whether the agent works on `day` (0-based), given the weekday of day 0 (0 = Monday).
    pub fn works(&self, day: u32, weekday_of_day0: u32) -> bool {
        let weekday = (weekday_of_day0 + day) % 7;
        day >= self.joins_day && !self.days_off.contains(&weekday)
    }
}

/// The agents of a scenario, in id order; new-hire cohorts come last.
pub fn agents(scenario: &Scenario) -> Vec<SimAgent> {
    let mut rng = Rng::stream(scenario.seed, "agents");
    let mut agents = Vec::new();
    let analysts = ((f64::from(scenario.agents) * ANALYST_SHARE) as u32).max(2);
    let workers = scenario.agents.saturating_sub(analysts);
    let weights: Vec<f64> = TEAM_MIX.iter().map(|(_, share, _)| *share).collect();
    for number in 0..workers {
        // Every team gets at least two agents; the rest follow the mix.
        let team_index = if (number as usize) < TEAM_MIX.len() * 2 {
            number as usize % TEAM_MIX.len()
        } else {
            rng.weighted(&weights)
        };
        let Some((team, _, sites)) = TEAM_MIX.get(team_index) else { continue };
        let site_name = rng.pick(sites).copied().unwrap_or("us-sf");
        agents.push(make_agent(&mut rng, agents.len(), team, site_name, Role::Agent, 0));
    }
    for _ in 0..analysts {
        let site_name = rng.pick(&["us-sf", "eu-dub"]).copied().unwrap_or("us-sf");
        agents.push(make_agent(&mut rng, agents.len(), "fraud-investigations", site_name, Role::Analyst, 0));
    }
    for cohort in &scenario.traffic.new_hires {
        for _ in 0..cohort.agents {
            let site_name = rng.pick(&["vendor-bpo-1", "vendor-bpo-2"]).copied().unwrap_or("vendor-bpo-1");
            agents.push(make_agent(&mut rng, agents.len(), "l1-chat", site_name, Role::Agent, cohort.day));
        }
    }
    agents
}

fn make_agent(rng: &mut Rng, number: usize, team: &str, site_name: &str, role: Role, joins_day: u32) -> SimAgent {
    let site = site(site_name);
    let (start, end) = rng.pick(site.shifts).copied().unwrap_or((8, 16));
    let given = rng.pick(&GIVEN).copied().unwrap_or("Alex");
    let family = rng.pick(&FAMILY).copied().unwrap_or("Ortiz");
    // Two consecutive days off, spread over the week so every day is staffed.
    let first_off = rng.below(7) as u32;
    SimAgent {
        agent: Agent {
            id: format!("agt-{number:04}"),
            name: format!("{given} {family}"),
            team: team.to_string(),
            site: site.name.to_string(),
            employer: site.employer.to_string(),
            shift: Shift { start_hour: start, end_hour: end % 24 },
            role,
            status: AgentStatus::Active,
        },
        days_off: [first_off, (first_off + 1) % 7],
        joins_day,
    }
}

pub fn site(name: &str) -> Site {
    SITES.iter().copied().find(|site| site.name == name).unwrap_or(SITES[0])
}

/// Categories a team's tickets fall into, with their weights.
pub fn team_categories(team: &str) -> &'static [(&'static str, f64)] {
    match team {
        "account-recovery" => &[("account_recovery", 0.55), ("two_factor_reset", 0.45)],
        "kyc-review" => &[("kyc_verification", 1.0)],
        "vip-desk" => &[
            ("withdrawal_delay", 0.3),
            ("bank_transfer", 0.2),
            ("general_inquiry", 0.2),
            ("tax_documents", 0.15),
            ("account_recovery", 0.15),
        ],
        "fraud-investigations" => &[("fraud_report", 1.0)],
        _ => &[
            ("general_inquiry", 0.35),
            ("withdrawal_delay", 0.2),
            ("deposit_missing", 0.2),
            ("address_change", 0.1),
            ("bank_transfer", 0.1),
            ("tax_documents", 0.05),
        ],
    }
}
