//! Scenario files: the population, the traffic and the insiders of one simulated exchange,
//! in TOML. Every parameter is documented in docs/SCENARIOS.md; anything unknown is an error
//! naming the key, so a typo never silently falls back to a default.

use std::path::Path;

use cordon_vault::{Date, Field};
use serde::Deserialize;

use crate::SimError;

/// Which policy set the simulated exchange runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PolicyChoice {
    /// cordon's shipped policies: a view or reveal needs an assigned open ticket.
    #[default]
    Default,
    /// Today's support tooling: any active agent may view any customer and reveal any field
    /// with a reason. Suspension still stops an agent.
    Permissive,
}

impl PolicyChoice {
    pub fn name(self) -> &'static str {
        match self {
            PolicyChoice::Default => "default",
            PolicyChoice::Permissive => "permissive",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Harvester,
    LowAndSlow,
    Targeted,
    Piggyback,
    Ring,
    Enumerator,
    MaskedBrowser,
    CanaryToucher,
    /// Opens tickets itself for the customers it wants, and works them like real ones.
    TicketForger,
    /// Takes customer tickets of rich customers into its own queue, then reveals within need.
    QueueGrabber,
    /// Extra lookups passed off as callbacks to customers of its own and teammates' tickets.
    CallbackAbuser,
    /// Confirms and guesses values with verify instead of revealing them.
    VerifyProber,
    /// Searches a list of outside emails and phones to learn who is a customer.
    ListChecker,
    /// A ring whose members open tickets for their targets and hand them to one another.
    HandoffRing,
}

impl Behaviour {
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Harvester => "harvester",
            Behaviour::LowAndSlow => "low_and_slow",
            Behaviour::Targeted => "targeted",
            Behaviour::Piggyback => "piggyback",
            Behaviour::Ring => "ring",
            Behaviour::Enumerator => "enumerator",
            Behaviour::MaskedBrowser => "masked_browser",
            Behaviour::CanaryToucher => "canary_toucher",
            Behaviour::TicketForger => "ticket_forger",
            Behaviour::QueueGrabber => "queue_grabber",
            Behaviour::CallbackAbuser => "callback_abuser",
            Behaviour::VerifyProber => "verify_prober",
            Behaviour::ListChecker => "list_checker",
            Behaviour::HandoffRing => "handoff_ring",
        }
    }

    /// Several agents acting together (`agents` members at one site).
    pub fn is_group(self) -> bool {
        matches!(self, Behaviour::Ring | Behaviour::HandoffRing)
    }

    /// Customers a day when the scenario does not say.
    fn default_per_day(self) -> u32 {
        match self {
            Behaviour::Harvester => 60,
            Behaviour::LowAndSlow => 4,
            Behaviour::Targeted => 8,
            Behaviour::Piggyback => 0,
            Behaviour::Ring => 6,
            Behaviour::Enumerator => 40,
            Behaviour::MaskedBrowser => 50,
            Behaviour::CanaryToucher => 5,
            Behaviour::TicketForger => 5,
            Behaviour::QueueGrabber => 5,
            Behaviour::CallbackAbuser => 6,
            Behaviour::VerifyProber => 5,
            Behaviour::ListChecker => 30,
            Behaviour::HandoffRing => 3,
        }
    }

    fn default_fields(self) -> &'static [Field] {
        use Field::*;
        match self {
            Behaviour::Harvester | Behaviour::Enumerator => &[FullName, Email, Phone, PostalAddress, BalanceUsd],
            Behaviour::LowAndSlow | Behaviour::Ring | Behaviour::CanaryToucher | Behaviour::Piggyback => {
                &[FullName, Email, Phone]
            }
            Behaviour::Targeted => &[FullName, Email, Phone, BalanceUsd, WalletAddresses],
            Behaviour::MaskedBrowser | Behaviour::ListChecker => &[],
            Behaviour::TicketForger | Behaviour::CallbackAbuser => &[FullName, Email, Phone, PostalAddress],
            Behaviour::QueueGrabber => &[FullName, Email, Phone, BalanceUsd, WalletAddresses],
            Behaviour::HandoffRing => &[FullName, Email, Phone],
            // What it verifies: guessed dates of birth, and emails from an outside list.
            Behaviour::VerifyProber => &[DateOfBirth, Email],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EnumerationMode {
    /// Walks consecutive customer ids, opening each card.
    #[default]
    Sequential,
    /// Searches guessed emails, most of which miss, and opens the hits.
    SearchSweep,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    seed: u64,
    start: String,
    days: u32,
    customers: u64,
    #[serde(default = "default_canaries")]
    canaries: u64,
    agents: u32,
    #[serde(default)]
    policy: PolicyChoice,
    #[serde(default = "detection_on")]
    detection: bool,
    #[serde(default)]
    traffic: Traffic,
    #[serde(default, rename = "insider")]
    insiders: Vec<InsiderFile>,
}

fn default_canaries() -> u64 {
    20
}

fn detection_on() -> bool {
    true
}

/// Benign work and its noise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Traffic {
    /// Tickets an agent handles on an ordinary working day.
    pub tickets_per_agent_day: f64,
    /// Share of sessions that are a lookup with no ticket: callbacks and escalations.
    pub unexplained_share: f64,
    /// Share of tickets where the agent checks a value the caller states instead of revealing.
    pub verify_share: f64,
    /// Ticket volume on Saturdays and Sundays, against a weekday.
    pub weekend_factor: f64,
    /// Days (0-based) when an outage multiplies ticket volume by `surge_factor`.
    pub surge_days: Vec<u32>,
    pub surge_factor: f64,
    /// Share of tickets moved from their first assignee to another agent of the team (half
    /// handed over by that agent, half by routing).
    pub reassign_share: f64,
    /// Share of tickets an agent opens itself with no customer contact behind them
    /// (proactive follow-ups).
    pub agent_opened_share: f64,
    /// Share of tickets an agent takes from the team's queue itself, rather than routing
    /// assigning them.
    pub self_assign_share: f64,
    /// Cohorts of new agents: on `day`, `agents` join `l1-chat` at a vendor site.
    pub new_hires: Vec<NewHires>,
    /// Days when a QA reviewer opens the cards of `qa_sweep_customers` recently closed tickets.
    pub qa_sweep_days: Vec<u32>,
    pub qa_sweep_customers: u32,
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic {
            tickets_per_agent_day: 12.0,
            unexplained_share: 0.03,
            verify_share: 0.2,
            weekend_factor: 0.6,
            surge_days: Vec::new(),
            surge_factor: 3.0,
            reassign_share: 0.02,
            agent_opened_share: 0.02,
            self_assign_share: 0.1,
            new_hires: Vec::new(),
            qa_sweep_days: Vec::new(),
            qa_sweep_customers: 40,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHires {
    pub day: u32,
    pub agents: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InsiderFile {
    behaviour: Behaviour,
    label: Option<String>,
    team: Option<String>,
    site: Option<String>,
    #[serde(default)]
    start_day: u32,
    stop_day: Option<u32>,
    customers_per_day: Option<u32>,
    fields: Option<Vec<String>>,
    agents: Option<u32>,
    balance_min_usd: Option<f64>,
    share: Option<f64>,
    mode: Option<EnumerationMode>,
    canaries: Option<u32>,
}

/// One insider (or, for a ring, one group of insiders), with every default resolved.
#[derive(Debug, Clone)]
pub struct InsiderSpec {
    pub behaviour: Behaviour,
    pub label: String,
    pub team: Option<String>,
    pub site: Option<String>,
    pub start_day: u32,
    pub stop_day: u32,
    pub customers_per_day: u32,
    pub fields: Vec<Field>,
    /// Members of a ring; 1 otherwise.
    pub agents: u32,
    pub balance_min_usd: f64,
    /// Piggyback: the share of the insider's own tickets used as cover for another lookup.
    pub share: f64,
    pub mode: EnumerationMode,
    pub canaries: u32,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub start: Date,
    pub days: u32,
    pub customers: u64,
    pub canaries: u64,
    pub agents: u32,
    pub policy: PolicyChoice,
    /// cordon's in-line detection; off models an exchange without it.
    pub detection: bool,
    pub traffic: Traffic,
    pub insiders: Vec<InsiderSpec>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| SimError::Scenario(format!("cannot read `{}`: {error}", path.display())))?;
        Scenario::parse(&text).map_err(|error| match error {
            SimError::Scenario(message) => SimError::Scenario(format!("`{}`: {message}", path.display())),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Scenario, SimError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|error| SimError::Scenario(error.to_string()))?;
        let start = Date::parse(&file.start)
            .ok_or_else(|| SimError::Scenario(format!("`start` must be a date YYYY-MM-DD, not `{}`", file.start)))?;
        let bad = |message: String| Err(SimError::Scenario(message));
        if file.days == 0 || file.days > 366 {
            return bad(format!("`days` must be between 1 and 366, not {}", file.days));
        }
        if file.customers < 100 || file.customers > 10_000_000 {
            return bad(format!("`customers` must be between 100 and 10,000,000, not {}", file.customers));
        }
        if file.canaries == 0 || file.canaries * 10 > file.customers {
            return bad(format!(
                "`canaries` must be at least 1 and at most a tenth of the customers, not {}",
                file.canaries
            ));
        }
        if file.agents < 10 || file.agents > 20_000 {
            return bad(format!("`agents` must be between 10 and 20,000, not {}", file.agents));
        }
        let traffic = &file.traffic;
        for (name, share) in [
            ("traffic.unexplained_share", traffic.unexplained_share),
            ("traffic.verify_share", traffic.verify_share),
            ("traffic.reassign_share", traffic.reassign_share),
            ("traffic.agent_opened_share", traffic.agent_opened_share),
            ("traffic.self_assign_share", traffic.self_assign_share),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return bad(format!("`{name}` must be between 0 and 1, not {share}"));
            }
        }
        if !(0.0..=200.0).contains(&traffic.tickets_per_agent_day) {
            return bad(format!(
                "`traffic.tickets_per_agent_day` must be between 0 and 200, not {}",
                traffic.tickets_per_agent_day
            ));
        }
        if !(0.0..=20.0).contains(&traffic.surge_factor) || !(0.0..=5.0).contains(&traffic.weekend_factor) {
            return bad("`traffic.surge_factor` must be 0..20 and `traffic.weekend_factor` 0..5".into());
        }
        let mut insiders = Vec::new();
        for (position, insider) in file.insiders.iter().enumerate() {
            let number = position + 1;
            let behaviour = insider.behaviour;
            let what = format!("insider {number} ({})", behaviour.name());
            if let Some(team) = &insider.team
                && !crate::world::teams().any(|known| known == team)
            {
                let names: Vec<&str> = crate::world::teams().collect();
                return bad(format!("{what}: unknown team `{team}`; teams are {}", names.join(", ")));
            }
            if let Some(site) = &insider.site
                && !crate::world::SITES.iter().any(|known| known.name == site)
            {
                let names: Vec<&str> = crate::world::SITES.iter().map(|site| site.name).collect();
                return bad(format!("{what}: unknown site `{site}`; sites are {}", names.join(", ")));
            }
            let stop_day = insider.stop_day.unwrap_or(file.days);
            if insider.start_day >= file.days || stop_day <= insider.start_day {
                return bad(format!(
                    "{what}: `start_day` {} must fall within the {} days and before `stop_day` {stop_day}",
                    insider.start_day, file.days
                ));
            }
            let fields = match &insider.fields {
                None => behaviour.default_fields().to_vec(),
                Some(names) => names
                    .iter()
                    .map(|name| name.parse::<Field>().map_err(|error| SimError::Scenario(format!("{what}: {error}"))))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            let agents = insider.agents.unwrap_or(if behaviour.is_group() { 3 } else { 1 });
            if behaviour.is_group() && !(2..=20).contains(&agents) {
                return bad(format!("{what}: a ring needs `agents` between 2 and 20, not {agents}"));
            }
            if !behaviour.is_group() && agents != 1 {
                return bad(format!("{what}: `agents` is only for a ring"));
            }
            let share = insider.share.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&share) {
                return bad(format!("{what}: `share` must be between 0 and 1, not {share}"));
            }
            let customers_per_day = insider.customers_per_day.unwrap_or(behaviour.default_per_day());
            if customers_per_day > 5_000 {
                return bad(format!("{what}: `customers_per_day` must be at most 5,000, not {customers_per_day}"));
            }
            insiders.push(InsiderSpec {
                behaviour,
                label: insider.label.clone().unwrap_or_else(|| format!("{}-{number}", behaviour.name())),
                team: insider.team.clone(),
                site: insider.site.clone(),
                start_day: insider.start_day,
                stop_day,
                customers_per_day,
                fields,
                agents,
                balance_min_usd: insider.balance_min_usd.unwrap_or(250_000.0),
                share,
                mode: insider.mode.unwrap_or_default(),
                canaries: insider.canaries.unwrap_or(1),
            });
        }
        let insider_agents: u32 = insiders.iter().map(|insider| insider.agents).sum();
        if insider_agents * 4 > file.agents {
            return bad(format!(
                "{insider_agents} insider agents among {} agents is too many (at most a quarter)",
                file.agents
            ));
        }
        Ok(Scenario {
            name: file.name,
            description: file.description,
            seed: file.seed,
            start,
            days: file.days,
            customers: file.customers,
            canaries: file.canaries,
            agents: file.agents,
            policy: file.policy,
            detection: file.detection,
            traffic: file.traffic,
            insiders,
        })
    }
}
