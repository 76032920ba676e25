//! What happens on one simulated day: every ticket, lookup and insider move, each with its
//! time and the agent whose turn it takes. Planning only draws numbers; nothing here touches
//! the gateway, so a day's plan is the same wherever it runs.

use std::collections::{BTreeSet, VecDeque};

use cordon_directory::{Agent, Role, Ticket, TicketStatus};
use cordon_policy::CategoryTable;
use cordon_vault::Field;

use crate::people::{People, customer_id};
use crate::rng::Rng;
use crate::scenario::{Behaviour, EnumerationMode, Scenario};
use crate::world::{SimAgent, team_categories};

/// A balance at or above this is "high" in the story and for the vip desk.
pub const HIGH_BALANCE_USD: f64 = 100_000.0;
/// Over this, non-vip agents need a second approver, so benign ones verify rather than reveal.
const SECOND_APPROVER_BALANCE_USD: f64 = 1_000_000.0;

#[derive(Debug, Clone)]
pub enum Act {
    PutAgent(Agent),
    PutTicket(Ticket),
    Search { by: &'static str, value: String },
    View { customer: String, ticket: Option<String> },
    Reveal { customer: String, ticket: Option<String>, fields: Vec<String>, reason: &'static str },
    Verify { customer: String, ticket: Option<String>, field: String, value: String },
}

#[derive(Debug, Clone)]
pub struct Planned {
    pub time_ms: i64,
    /// The agent (index) whose actions must stay in order; also who acts, unless `admin`.
    pub agent: usize,
    /// Done by the helpdesk integration (an admin identity), not by the agent.
    pub admin: bool,
    pub act: Act,
    /// The insider (index into the truth) whose move this is.
    pub insider: Option<usize>,
}

/// A closed ticket: its requester's number, the day it closed and the agent who worked it.
pub type Closed = (u64, u32, usize);

/// An insider agent as the simulation runs it.
#[derive(Debug, Clone)]
pub struct InsiderAgent {
    pub spec: usize,
    pub agent: usize,
    /// Customers already taken (a harvester does not read the same customer twice).
    pub taken: BTreeSet<u64>,
    /// Where a sequential enumerator continues.
    pub next_number: u64,
    /// Whether a canary toucher has touched its canaries (on its first working day, which
    /// need not be its `start_day`: an agent off that day touched none, and was then
    /// caught only later, by other signals).
    pub canaries_touched: bool,
}

/// Shared state between days.
pub struct Planner<'a> {
    pub scenario: &'a Scenario,
    pub people: &'a People,
    pub agents: &'a [SimAgent],
    pub categories: &'a CategoryTable,
    pub insiders: Vec<InsiderAgent>,
    /// Customer numbers at or above the high-balance line, for the vip desk and targeting.
    pub high_balance: Vec<u64>,
    /// A ring's shared target pool, per insider spec.
    pub ring_pools: Vec<Vec<u64>>,
    pub day0_unix_ms: i64,
    pub weekday_of_day0: u32,
    pub tickets: u64,
    /// Requesters of the latest closed tickets, the day each closed and who worked it, for
    /// QA reviews and callbacks.
    pub recently_closed: VecDeque<Closed>,
}

/// Closed tickets a QA review samples from.
const RECENTLY_CLOSED_MAX: usize = 5_000;
/// How many days back a QA review reaches.
const REVIEW_DAYS_MAX: u32 = 6;

impl<'a> Planner<'a> {
    pub fn new(
        scenario: &'a Scenario,
        people: &'a People,
        agents: &'a [SimAgent],
        categories: &'a CategoryTable,
        insiders: Vec<InsiderAgent>,
    ) -> Planner<'a> {
        let high_balance: Vec<u64> = (1..=people.ordinary_count())
            .filter(|&number| people.summary(number).balance_usd >= HIGH_BALANCE_USD)
            .collect();
        let mut pool_rng = Rng::stream(scenario.seed, "ring-pools");
        let ring_pools = scenario
            .insiders
            .iter()
            .map(|spec| {
                if !spec.behaviour.is_group() {
                    return Vec::new();
                }
                // Members draw from one list, so their customers overlap.
                let days = u64::from(spec.stop_day - spec.start_day);
                let size = (u64::from(spec.customers_per_day) * days * u64::from(spec.agents) * 2 / 3).max(10);
                (0..size).map(|_| 1 + pool_rng.below(people.ordinary_count())).collect()
            })
            .collect();
        let day0_days = scenario.start.unix_days();
        Planner {
            scenario,
            people,
            agents,
            categories,
            insiders,
            high_balance,
            ring_pools,
            day0_unix_ms: day0_days * 86_400_000,
            // 1970-01-01 was a Thursday (3 with Monday = 0).
            weekday_of_day0: ((day0_days + 3).rem_euclid(7)) as u32,
            tickets: 0,
            recently_closed: VecDeque::new(),
        }
    }

    fn push(
        &mut self,
        plan: &mut Vec<Planned>,
        time_ms: i64,
        agent: usize,
        admin: bool,
        act: Act,
        insider: Option<usize>,
    ) {
        plan.push(Planned { time_ms, agent, admin, act, insider });
    }

    /// Everything planned for `day`, in time order. `stopped` agents (suspended) do nothing.
    pub fn day(&mut self, day: u32, stopped: &BTreeSet<usize>) -> Vec<Planned> {
        let mut rng = Rng::stream(self.scenario.seed, &format!("day-{day}"));
        let mut plan = Vec::new();
        let day_start = self.day0_unix_ms + i64::from(day) * 86_400_000;
        let traffic = &self.scenario.traffic;
        let weekday = (self.weekday_of_day0 + day) % 7;
        let mut factor = if weekday >= 5 { traffic.weekend_factor } else { 1.0 };
        if traffic.surge_days.contains(&day) {
            factor *= traffic.surge_factor;
        }
        let working: Vec<usize> = (0..self.agents.len())
            .filter(|&index| {
                !stopped.contains(&index)
                    && self.agents.get(index).is_some_and(|agent| agent.works(day, self.weekday_of_day0))
            })
            .collect();
        // Tickets closed on the last six days: the gateway counts a review as explained by a
        // ticket moved within seven, so the review never hinges on a ticket put in its own wave.
        let reviewable: Vec<u64> = self
            .recently_closed
            .iter()
            .filter(|(_, closed, _)| *closed < day && closed + REVIEW_DAYS_MAX >= day)
            .map(|(number, _, _)| *number)
            .collect();
        // New hires are put into the directory as their first day starts.
        for (index, agent) in self.agents.iter().enumerate() {
            if agent.joins_day == day && day > 0 {
                self.push(&mut plan, day_start, index, true, Act::PutAgent(agent.agent.clone()), None);
            }
        }
        for &index in &working {
            let Some(agent) = self.agents.get(index) else { continue };
            if agent.agent.role != Role::Agent {
                continue;
            }
            // New agents take fewer tickets in their first week.
            let ramp = if day < agent.joins_day + 5 && agent.joins_day > 0 { 0.5 } else { 1.0 };
            let tickets = rng.poisson(traffic.tickets_per_agent_day * factor * ramp);
            let mut requesters = Vec::new();
            for _ in 0..tickets {
                let requester = self.ticket_session(&mut rng, &mut plan, day, day_start, index, &working);
                requesters.push(requester);
            }
            // Callbacks and escalations: a look at a customer with no ticket in hand; most
            // follow up a ticket the agent closed earlier that day.
            let unexplained = rng.poisson(traffic.tickets_per_agent_day * factor * traffic.unexplained_share);
            for _ in 0..unexplained {
                let (number, time) = match rng.pick(&requesters) {
                    Some(&(number, closed_at)) if rng.chance(0.7) => {
                        (number, closed_at + 600_000 + rng.below(5_400_000) as i64)
                    }
                    _ => (self.any_customer(&mut rng), day_start + self.shift_offset_ms(&mut rng, agent)),
                };
                let customer = customer_id(number);
                self.push(&mut plan, time, index, false, Act::View { customer: customer.clone(), ticket: None }, None);
                if rng.chance(0.5) {
                    let act = Act::Reveal { customer, ticket: None, fields: vec!["phone".into()], reason: "callback" };
                    self.push(&mut plan, time + 40_000, index, false, act, None);
                }
            }
        }
        if traffic.qa_sweep_days.contains(&day)
            && let Some(&reviewer) = working
                .iter()
                .find(|&&index| self.agents.get(index).is_some_and(|agent| agent.agent.role == Role::Analyst))
        {
            let Some(agent) = self.agents.get(reviewer) else { return plan };
            let mut time = day_start + self.shift_offset_ms(&mut rng, agent);
            for _ in 0..traffic.qa_sweep_customers {
                // The review samples tickets closed before today.
                let number = match rng.pick(&reviewable) {
                    Some(&number) => number,
                    None => self.any_customer(&mut rng),
                };
                let customer = customer_id(number);
                self.push(&mut plan, time, reviewer, false, Act::View { customer, ticket: None }, None);
                time += 60_000 + rng.below(120_000) as i64;
            }
        }
        for position in 0..self.insiders.len() {
            self.insider_day(&mut rng, &mut plan, day, day_start, position, stopped);
        }
        // A stable sort: equal times keep the order they were planned in.
        plan.sort_by_key(|planned| planned.time_ms);
        plan
    }

    /// Milliseconds from midnight to a moment inside the agent's shift.
    fn shift_offset_ms(&self, rng: &mut Rng, agent: &SimAgent) -> i64 {
        let shift = agent.agent.shift;
        let length = if shift.start_hour == shift.end_hour {
            24
        } else {
            (i64::from(shift.end_hour) - i64::from(shift.start_hour)).rem_euclid(24)
        };
        // Keep the last 20 minutes free for sessions to finish inside the shift.
        let span = (length * 3_600_000 - 1_200_000).max(60_000);
        (i64::from(shift.start_hour) * 3_600_000 + rng.below(span as u64) as i64).rem_euclid(86_400_000)
    }

    /// One ticket from arrival to close; returns the requester's number and when it closed.
    fn ticket_session(
        &mut self,
        rng: &mut Rng,
        plan: &mut Vec<Planned>,
        day: u32,
        day_start: i64,
        first: usize,
        working: &[usize],
    ) -> (u64, i64) {
        let Some(agent) = self.agents.get(first) else { return (1, day_start) };
        let team = agent.agent.team.clone();
        let category = rng.pick_weighted(team_categories(&team)).copied().unwrap_or("general_inquiry");
        // The vip desk's tickets come from high-balance customers.
        let number = if team == "vip-desk"
            && let Some(&number) = rng.pick(&self.high_balance)
        {
            number
        } else {
            self.any_customer(rng)
        };
        let customer = customer_id(number);
        let mut time = day_start + self.shift_offset_ms(rng, agent);
        let mut ticket = self.open_ticket(day, time, agent, number, category);
        let ticket_id = ticket.id.clone();
        // Most tickets are the customer's, routed; some the agent opened itself (a follow-up
        // with no contact behind it), some it took from the queue.
        let traffic = &self.scenario.traffic;
        if rng.chance(traffic.agent_opened_share) {
            ticket.opened_by = Some(agent.agent.id.clone());
        } else if rng.chance(traffic.self_assign_share) {
            ticket.assigned_by = Some(agent.agent.id.clone());
        }
        self.push(plan, time, first, true, Act::PutTicket(ticket.clone()), None);
        // Backlog: some tickets move to a teammate on shift before anyone works them.
        let mut handler = first;
        if rng.chance(self.scenario.traffic.reassign_share) {
            let teammates: Vec<usize> = working
                .iter()
                .copied()
                .filter(|&index| index != first && self.agents.get(index).is_some_and(|other| other.agent.team == team))
                .collect();
            if let Some(&other) = rng.pick(&teammates) {
                handler = other;
                time += 1_200_000 + rng.below(3_600_000) as i64;
                ticket.assignee = self.agents.get(other).map(|other| other.agent.id.clone());
                // Handed over by its first assignee, or moved by routing.
                ticket.assigned_by = rng.chance(0.5).then(|| agent.agent.id.clone());
                ticket.updated_at = time / 1000;
                // Keyed to the new handler: its own requests on this ticket then start in a
                // later wave. Keyed to the old one, the two could share a wave, and whether the
                // handler saw the reassignment depended on whether the put's commit finished
                // before the handler's first poll (a thread-timing race in the ledger's root).
                self.push(plan, time, other, true, Act::PutTicket(ticket.clone()), None);
            }
        }
        let Some(handler_agent) = self.agents.get(handler) else { return (number, time) };
        let fake = self.people.customer(number);
        time += 30_000 + rng.below(90_000) as i64;
        let (by, value) = match rng.weighted(&[0.55, 0.2, 0.25]) {
            0 => ("email", fake.email.clone()),
            1 => ("phone", fake.phone.clone()),
            _ => ("account_id", customer.clone()),
        };
        self.push(plan, time, handler, false, Act::Search { by, value }, None);
        time += 20_000 + rng.below(40_000) as i64;
        self.push(
            plan,
            time,
            handler,
            false,
            Act::View { customer: customer.clone(), ticket: Some(ticket_id.clone()) },
            None,
        );
        let insider = self.insiders.iter().position(|insider| insider.agent == handler);
        // A piggybacking insider uses the real ticket as cover for another customer.
        if let Some(position) = insider
            && self.piggybacks(position, day)
        {
            let share = self.insider_spec(position).map(|spec| spec.share).unwrap_or(0.0);
            if rng.chance(share) {
                let other = self.fresh_target(rng, position);
                let fields = self.insider_fields(position);
                let other_id = customer_id(other);
                let at = time + 10_000;
                let view = Act::View { customer: other_id.clone(), ticket: Some(ticket_id.clone()) };
                self.push(plan, at, handler, false, view, Some(position));
                if !fields.is_empty() {
                    let act = Act::Reveal {
                        customer: other_id,
                        ticket: Some(ticket_id.clone()),
                        fields,
                        reason: "customer request",
                    };
                    self.push(plan, at + 15_000, handler, false, act, Some(position));
                }
            }
        }
        time += 30_000 + rng.below(150_000) as i64;
        let needs = self.allowed_needs(handler_agent, category);
        let high = fake.summary.balance_usd > SECOND_APPROVER_BALANCE_USD && team != "vip-desk";
        let checkable: Vec<Field> = needs
            .iter()
            .copied()
            .filter(|field| matches!(field, Field::Email | Field::Phone | Field::DateOfBirth | Field::FullName))
            .collect();
        if (high || rng.chance(self.scenario.traffic.verify_share)) && !checkable.is_empty() {
            let field = rng.pick(&checkable).copied().unwrap_or(Field::Email);
            let mut value =
                fake.record.get(field.name()).and_then(|value| value.as_str()).unwrap_or_default().to_string();
            if rng.chance(0.15) {
                // Callers misremember now and then.
                value.push('x');
            }
            self.push(
                plan,
                time,
                handler,
                false,
                Act::Verify {
                    customer: customer.clone(),
                    ticket: Some(ticket_id.clone()),
                    field: field.name().into(),
                    value,
                },
                None,
            );
        } else if !high && !needs.is_empty() {
            let mut fields: Vec<Field> = needs.clone();
            rng.shuffle(&mut fields);
            fields.truncate(1 + rng.index(needs.len().min(3)));
            fields.sort();
            let names = fields.iter().map(|field| field.name().to_string()).collect();
            self.push(
                plan,
                time,
                handler,
                false,
                Act::Reveal {
                    customer: customer.clone(),
                    ticket: Some(ticket_id.clone()),
                    fields: names,
                    reason: "ticket work",
                },
                None,
            );
        }
        time += 180_000 + rng.below(720_000) as i64;
        ticket.status = TicketStatus::Closed;
        ticket.updated_at = time / 1000;
        self.push(plan, time, handler, true, Act::PutTicket(ticket), None);
        self.note_closed(number, day, handler);
        (number, time)
    }

    fn note_closed(&mut self, number: u64, day: u32, agent: usize) {
        self.recently_closed.push_back((number, day, agent));
        if self.recently_closed.len() > RECENTLY_CLOSED_MAX {
            self.recently_closed.pop_front();
        }
    }

    /// The fields of a category that this agent may reveal under cordon's rules; a benign
    /// agent does not ask for what the policy forbids.
    fn allowed_needs(&self, agent: &SimAgent, category: &str) -> Vec<Field> {
        let vendor = agent.agent.employer != "staff";
        self.categories
            .needs(category)
            .iter()
            .copied()
            .filter(|field| *field != Field::IdDocumentImage || agent.agent.team == "kyc-review")
            .filter(|field| !(vendor && matches!(field, Field::GovernmentIdNumber | Field::TaxId | Field::BankAccount)))
            .collect()
    }

    fn insider_spec(&self, position: usize) -> Option<&crate::scenario::InsiderSpec> {
        self.insiders.get(position).and_then(|insider| self.scenario.insiders.get(insider.spec))
    }

    fn insider_fields(&self, position: usize) -> Vec<String> {
        self.insider_spec(position)
            .map(|spec| spec.fields.iter().map(|field| field.name().to_string()).collect())
            .unwrap_or_default()
    }

    fn piggybacks(&self, position: usize, day: u32) -> bool {
        self.insider_spec(position).is_some_and(|spec| {
            spec.behaviour == Behaviour::Piggyback && (spec.start_day..spec.stop_day).contains(&day)
        })
    }

    /// A customer this insider has not taken yet, chosen the way its behaviour chooses.
    fn fresh_target(&mut self, rng: &mut Rng, position: usize) -> u64 {
        let Some(spec) = self.insider_spec(position).cloned() else { return 1 };
        for _ in 0..64 {
            let number = match spec.behaviour {
                Behaviour::Targeted | Behaviour::QueueGrabber if !self.high_balance.is_empty() => {
                    rng.pick(&self.high_balance).copied().unwrap_or(1)
                }
                Behaviour::Ring | Behaviour::HandoffRing => {
                    let pool = self.insiders.get(position).and_then(|insider| self.ring_pools.get(insider.spec));
                    match pool.and_then(|pool| rng.pick(pool)) {
                        Some(&number) => number,
                        None => self.any_customer(rng),
                    }
                }
                _ => self.any_customer(rng),
            };
            if let Some(insider) = self.insiders.get_mut(position)
                && insider.taken.insert(number)
            {
                return number;
            }
        }
        self.any_customer(rng)
    }

    /// A customer that real work may reach (never a canary), uniformly.
    fn any_customer(&self, rng: &mut Rng) -> u64 {
        1 + rng.below(self.people.ordinary_count())
    }

    fn insider_day(
        &mut self,
        rng: &mut Rng,
        plan: &mut Vec<Planned>,
        day: u32,
        day_start: i64,
        position: usize,
        stopped: &BTreeSet<usize>,
    ) {
        let Some(insider) = self.insiders.get(position).cloned() else { return };
        let Some(spec) = self.scenario.insiders.get(insider.spec).cloned() else { return };
        let Some(agent) = self.agents.get(insider.agent) else { return };
        if stopped.contains(&insider.agent)
            || !(spec.start_day..spec.stop_day).contains(&day)
            || !agent.works(day, self.weekday_of_day0)
            || spec.behaviour == Behaviour::Piggyback
        {
            return;
        }
        let base = u64::from(spec.customers_per_day);
        let count = if base == 0 { 0 } else { rng.between(base * 4 / 5, base * 6 / 5).max(1) };
        let fields = self.insider_fields(position);
        let index = insider.agent;
        match (spec.behaviour, spec.mode) {
            (Behaviour::Enumerator, EnumerationMode::Sequential) => {
                // Ids walked one after another, tens of seconds apart, from where it stopped.
                let start = if insider.next_number == 0 {
                    1 + rng.below(self.people.ordinary_count() / 2)
                } else {
                    insider.next_number
                };
                if let Some(state) = self.insiders.get_mut(position) {
                    state.next_number = start + count;
                }
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for number in start..start + count {
                    self.insider_touch(plan, time, index, position, number.min(self.people.count()), &fields);
                    time += 20_000 + rng.below(40_000) as i64;
                }
            }
            (Behaviour::Enumerator, EnumerationMode::SearchSweep) => {
                let mut times: Vec<i64> = (0..count).map(|_| day_start + self.shift_offset_ms(rng, agent)).collect();
                times.sort_unstable();
                for time in times {
                    // Four guesses miss for each that hits a real customer.
                    for guess in 0..4 {
                        let value = self.people.guessed_email(rng);
                        self.push(
                            plan,
                            time + guess * 3_000,
                            index,
                            false,
                            Act::Search { by: "email", value },
                            Some(position),
                        );
                    }
                    let number = self.fresh_target(rng, position);
                    let value = self.people.customer(number).email;
                    self.push(plan, time + 15_000, index, false, Act::Search { by: "email", value }, Some(position));
                    self.insider_touch(plan, time + 25_000, index, position, number, &fields);
                }
            }
            (Behaviour::TicketForger, _) => {
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for _ in 0..count {
                    let number = self.fresh_target(rng, position);
                    let mut ticket = self.new_ticket(rng, day, time, index, number, &fields);
                    ticket.opened_by.clone_from(&ticket.assignee);
                    self.push(plan, time, index, true, Act::PutTicket(ticket.clone()), None);
                    time = self.insider_ticket(rng, plan, day, time, index, position, ticket, &fields);
                    time += 60_000 + rng.below(900_000) as i64;
                }
            }
            (Behaviour::QueueGrabber, _) => {
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for _ in 0..count {
                    // A rich customer's ticket arrives in the team's queue, unassigned ...
                    let number = self.fresh_target(rng, position);
                    let mut ticket = self.new_ticket(rng, day, time, index, number, &fields);
                    ticket.assignee = None;
                    self.push(plan, time, index, true, Act::PutTicket(ticket.clone()), None);
                    // ... and the insider takes it into its own queue.
                    time += 120_000 + rng.below(1_200_000) as i64;
                    ticket.assignee = Some(agent.agent.id.clone());
                    ticket.assigned_by = ticket.assignee.clone();
                    ticket.updated_at = time / 1000;
                    self.push(plan, time, index, true, Act::PutTicket(ticket.clone()), None);
                    time = self.insider_ticket(rng, plan, day, time, index, position, ticket, &fields);
                    time += 60_000 + rng.below(900_000) as i64;
                }
            }
            (Behaviour::CallbackAbuser, _) => {
                // Customers of its own tickets closed this past week, and of its teammates'.
                let team = &agent.agent.team;
                let (own, teammates): (Vec<Closed>, Vec<Closed>) = self
                    .recently_closed
                    .iter()
                    .copied()
                    .filter(|(_, closed, worker)| {
                        *closed + REVIEW_DAYS_MAX >= day
                            && self.agents.get(*worker).is_some_and(|other| &other.agent.team == team)
                    })
                    .partition(|(_, _, worker)| *worker == index);
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for _ in 0..count {
                    let pool = if rng.chance(0.7) && !own.is_empty() { &own } else { &teammates };
                    let Some(&(number, _, _)) = rng.pick(pool) else { break };
                    if let Some(state) = self.insiders.get_mut(position)
                        && !state.taken.insert(number)
                    {
                        continue;
                    }
                    let customer = customer_id(number);
                    let view = Act::View { customer: customer.clone(), ticket: None };
                    self.push(plan, time, index, false, view, Some(position));
                    let act = Act::Reveal { customer, ticket: None, fields: fields.clone(), reason: "callback" };
                    self.push(plan, time + 40_000, index, false, act, Some(position));
                    time += 300_000 + rng.below(1_800_000) as i64;
                }
            }
            (Behaviour::VerifyProber, _) => {
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for _ in 0..count {
                    let number = self.fresh_target(rng, position);
                    let fake = self.people.customer(number);
                    let customer = customer_id(number);
                    for field in &fields {
                        let stored =
                            fake.record.get(field.as_str()).and_then(|value| value.as_str()).unwrap_or_default();
                        // Dates of birth are guessed, twice, staying under verify's limit;
                        // anything else is confirmed from an outside list.
                        let statements: Vec<String> = if field == "date_of_birth" {
                            (0..2)
                                .map(|_| {
                                    format!(
                                        "{:04}-{:02}-{:02}",
                                        1950 + rng.below(50),
                                        1 + rng.below(12),
                                        1 + rng.below(28)
                                    )
                                })
                                .collect()
                        } else {
                            vec![stored.to_string()]
                        };
                        for value in statements {
                            let act =
                                Act::Verify { customer: customer.clone(), ticket: None, field: field.clone(), value };
                            self.push(plan, time, index, false, act, Some(position));
                            time += 20_000 + rng.below(40_000) as i64;
                        }
                    }
                    time += 120_000 + rng.below(1_200_000) as i64;
                }
            }
            (Behaviour::ListChecker, _) => {
                // Emails and phones from a list bought outside: most belong to customers.
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for _ in 0..count {
                    let (by, value) = if rng.chance(0.8) {
                        let fake = self.people.customer(self.fresh_target(rng, position));
                        if rng.chance(0.6) { ("email", fake.email) } else { ("phone", fake.phone) }
                    } else {
                        ("email", self.people.guessed_email(rng))
                    };
                    self.push(plan, time, index, false, Act::Search { by, value }, Some(position));
                    time += 30_000 + rng.below(600_000) as i64;
                }
            }
            (Behaviour::HandoffRing, _) => {
                // Opens tickets for the ring's targets and hands each to another member on
                // shift, who works it.
                let members: Vec<(usize, usize)> = self
                    .insiders
                    .iter()
                    .enumerate()
                    .filter(|(other, member)| {
                        *other != position
                            && member.spec == insider.spec
                            && !stopped.contains(&member.agent)
                            && self.agents.get(member.agent).is_some_and(|agent| agent.works(day, self.weekday_of_day0))
                    })
                    .map(|(other, member)| (other, member.agent))
                    .collect();
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for _ in 0..count {
                    let Some(&(receiver_position, receiver)) = rng.pick(&members) else { break };
                    let Some(receiver_id) = self.agents.get(receiver).map(|agent| agent.agent.id.clone()) else {
                        break;
                    };
                    let number = self.fresh_target(rng, receiver_position);
                    let mut ticket = self.new_ticket(rng, day, time, receiver, number, &fields);
                    ticket.opened_by = Some(agent.agent.id.clone());
                    ticket.assigned_by = Some(agent.agent.id.clone());
                    ticket.assignee = Some(receiver_id);
                    self.push(plan, time, receiver, true, Act::PutTicket(ticket.clone()), None);
                    let worked = time + 300_000 + rng.below(1_800_000) as i64;
                    self.insider_ticket(rng, plan, day, worked, receiver, receiver_position, ticket, &fields);
                    time += 600_000 + rng.below(1_800_000) as i64;
                }
            }
            _ => {
                let mut targets: Vec<u64> = Vec::new();
                if spec.behaviour == Behaviour::CanaryToucher && !insider.canaries_touched {
                    targets
                        .extend((0..u64::from(spec.canaries)).map(|canary| self.people.ordinary_count() + 1 + canary));
                    if let Some(state) = self.insiders.get_mut(position) {
                        state.canaries_touched = true;
                    }
                }
                for _ in 0..count {
                    targets.push(self.fresh_target(rng, position));
                }
                if spec.behaviour == Behaviour::CanaryToucher {
                    // The canary sits among ordinary lookups, not first.
                    rng.shuffle(&mut targets);
                }
                let mut time = day_start + self.shift_offset_ms(rng, agent);
                for number in targets {
                    self.insider_touch(plan, time, index, position, number, &fields);
                    time += 60_000 + rng.below(600_000) as i64;
                }
            }
        }
    }

    /// A ticket from customer `number` for `agent`, in the agent's team's category that
    /// needs most of `wanted` (an insider picks the one that justifies what it is after).
    fn new_ticket(
        &mut self,
        rng: &mut Rng,
        day: u32,
        time: i64,
        agent: usize,
        number: u64,
        wanted: &[String],
    ) -> Ticket {
        let Some(worker) = self.agents.get(agent) else { unreachable!("insiders are agents of the world") };
        let covered = |category: &str| {
            self.allowed_needs(worker, category)
                .iter()
                .filter(|field| wanted.iter().any(|name| name == field.name()))
                .count()
        };
        let categories = team_categories(&worker.agent.team);
        let best = categories.iter().map(|(category, _)| covered(category)).max().unwrap_or(0);
        let choices: Vec<&str> = categories
            .iter()
            .filter(|(category, _)| covered(category) == best)
            .map(|(category, _)| *category)
            .collect();
        let category = rng.pick(&choices).copied().unwrap_or("general_inquiry");
        self.open_ticket(day, time, worker, number, category)
    }

    /// The next ticket, from customer `number`, open, assigned to `assignee` by routing.
    fn open_ticket(&mut self, day: u32, time: i64, assignee: &SimAgent, number: u64, category: &str) -> Ticket {
        self.tickets += 1;
        Ticket {
            id: format!("tkt-{day:03}-{:07}", self.tickets),
            requester: customer_id(number),
            category: category.to_string(),
            status: TicketStatus::Open,
            assignee: Some(assignee.agent.id.clone()),
            opened_by: None,
            assigned_by: None,
            created_at: time / 1000,
            updated_at: time / 1000,
        }
    }

    /// An insider works a ticket it arranged as an honest agent works one: searches the
    /// customer, opens the card, reveals what it wants of what the category needs, closes
    /// it. Returns when it closed.
    #[allow(clippy::too_many_arguments)]
    fn insider_ticket(
        &mut self,
        rng: &mut Rng,
        plan: &mut Vec<Planned>,
        day: u32,
        mut time: i64,
        agent: usize,
        position: usize,
        mut ticket: Ticket,
        wanted: &[String],
    ) -> i64 {
        let Some(worker) = self.agents.get(agent) else { return time };
        let number = crate::people::customer_number(&ticket.requester).unwrap_or(1);
        let fake = self.people.customer(number);
        let needs = self.allowed_needs(worker, &ticket.category);
        let mut fields: Vec<String> =
            needs.iter().map(|field| field.name().to_string()).filter(|name| wanted.contains(name)).collect();
        if fields.is_empty() {
            fields = needs.iter().take(2).map(|field| field.name().to_string()).collect();
        }
        time += 30_000 + rng.below(90_000) as i64;
        let search = Act::Search { by: "email", value: fake.email.clone() };
        self.push(plan, time, agent, false, search, Some(position));
        time += 20_000 + rng.below(40_000) as i64;
        let view = Act::View { customer: ticket.requester.clone(), ticket: Some(ticket.id.clone()) };
        self.push(plan, time, agent, false, view, Some(position));
        if !fields.is_empty() {
            time += 30_000 + rng.below(150_000) as i64;
            let act = Act::Reveal {
                customer: ticket.requester.clone(),
                ticket: Some(ticket.id.clone()),
                fields,
                reason: "ticket work",
            };
            self.push(plan, time, agent, false, act, Some(position));
        }
        time += 180_000 + rng.below(720_000) as i64;
        ticket.status = TicketStatus::Closed;
        ticket.updated_at = time / 1000;
        self.push(plan, time, agent, true, Act::PutTicket(ticket), None);
        self.note_closed(number, day, agent);
        time
    }

    /// An insider opens a customer's card and, unless only browsing, reveals fields.
    fn insider_touch(
        &mut self,
        plan: &mut Vec<Planned>,
        time: i64,
        agent: usize,
        position: usize,
        number: u64,
        fields: &[String],
    ) {
        let customer = customer_id(number);
        self.push(plan, time, agent, false, Act::View { customer: customer.clone(), ticket: None }, Some(position));
        if !fields.is_empty() {
            let act = Act::Reveal { customer, ticket: None, fields: fields.to_vec(), reason: "follow-up" };
            self.push(plan, time + 20_000, agent, false, act, Some(position));
        }
    }
}
