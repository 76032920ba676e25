//! Policy decision time with realistic facts: 50,000 different requests (agents of five
//! teams, some at a vendor site; tickets of every category; a high-balance customer with a
//! second approver now and then), each built into Cedar entities and decided. Printed beside
//! the same decision repeated for one request in the same run, the cache-warm floor.
//!
//! Run: `cargo bench -p cordon-policy --bench decide`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::time::Instant;

use cordon_policy::{
    AccessRequest, Action, AgentFacts, ApprovalFacts, CategoryTable, CustomerFacts, PolicyEngine, TicketFacts,
};

const DECISIONS: usize = 50_000;

fn percentile(samples: &mut [f64], fraction: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * fraction) as usize]
}

fn request(number: usize, categories: &CategoryTable) -> AccessRequest {
    let teams = ["l1-chat", "account-recovery", "kyc-review", "vip-desk", "fraud-investigations"];
    let category_names: Vec<&str> = categories.categories().collect();
    let category = category_names[number % category_names.len()];
    let needed: Vec<String> = categories.needs(category).iter().map(|field| field.name().to_string()).collect();
    let field = needed.get(number % needed.len().max(1)).cloned().unwrap_or_else(|| "email".into());
    let agent = format!("agent-{}", number % 300);
    let customer = format!("customer-{}", number % 200_000);
    AccessRequest {
        agent: AgentFacts {
            id: agent.clone(),
            team: teams[number % teams.len()].into(),
            site: if number.is_multiple_of(7) { "vendor-bpo-1".into() } else { "us-sf".into() },
            employer: if number.is_multiple_of(7) { "vendor-bpo-1".into() } else { "staff".into() },
            role: "agent".into(),
            status: "active".into(),
        },
        action: if number.is_multiple_of(3) { Action::View } else { Action::Reveal },
        customer: Some(CustomerFacts { id: customer.clone(), high_balance: number.is_multiple_of(50) }),
        ticket: Some(TicketFacts {
            id: format!("ticket-{number}"),
            requester: customer.clone(),
            assignee: Some(agent.clone()),
            status: "open".into(),
            category: category.into(),
            needed_fields: needed,
        }),
        field: Some(field),
        reason: "customer called about their account".into(),
        approval: number.is_multiple_of(50).then(|| ApprovalFacts {
            kind: "second_approver".into(),
            requester: agent,
            approver: "analyst-1".into(),
            customer,
            expires_at: 1_800_000_600,
        }),
        approval_requester: None,
        now: 1_800_000_000,
    }
}

fn main() {
    let engine = PolicyEngine::default_set().unwrap();
    let categories = CategoryTable::default();
    let requests: Vec<AccessRequest> = (0..DECISIONS).map(|number| request(number, &categories)).collect();

    // Warm up, and check the workload is a real mix of outcomes.
    let allowed = requests.iter().filter(|request| engine.decide(request).allowed).count();

    let mut full = Vec::with_capacity(DECISIONS);
    for request in &requests {
        let started = Instant::now();
        let decision = engine.decide(request);
        full.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(decision);
    }
    // The same decisions, repeated for one request, isolate the cost that does not depend on
    // the facts changing (allocator and cache effects aside).
    let mut same = Vec::with_capacity(DECISIONS);
    for _ in 0..DECISIONS {
        let started = Instant::now();
        let decision = engine.decide(&requests[1]);
        same.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(decision);
    }
    println!(
        "policy decisions with realistic facts ({DECISIONS} requests, {allowed} allowed, {} denied)",
        DECISIONS - allowed
    );
    println!(
        "  full decide (entities built in Rust + Cedar): p50 {:>6.1} µs  p99 {:>6.1} µs  (target p50 <= 20 µs)",
        percentile(&mut full, 0.5),
        percentile(&mut full, 0.99)
    );
    println!(
        "  one request decided repeatedly:               p50 {:>6.1} µs  p99 {:>6.1} µs",
        percentile(&mut same, 0.5),
        percentile(&mut same, 0.99)
    );
}
