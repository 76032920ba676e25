#![allow(clippy::indexing_slicing)]

//! Detection replay speed: observations per second through `Detector::observe`, next to a
//! raw pass over the same observations that only counts distinct customers per agent-day
//! (the least any per-agent scoring must do). Run: `cargo bench -p cordon-detect --bench replay`.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::time::Instant;

use cordon_detect::{Action, Checked, Detector, Level, Observation, Thresholds, Why};

struct Event {
    time_ms: i64,
    agent: String,
    peer_group: String,
    customer: String,
    action: Action,
    why: Why,
    high_balance: bool,
}

/// 2,000 agents in 30 peer groups, about 33 accesses each a day, so two million span 30
/// days: ticket work with a few percent of unexplained looks, as in the simulated exchange.
/// (With 300 agents the same two million spanned 166 days, and the cumulative sums of
/// their random unexplained looks contained some of them: the bench then timed refusals.)
fn stream(events: usize) -> Vec<Event> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let agents = 2_000;
    let per_day = agents * 33;
    (0..events)
        .map(|position| {
            let day = (position / per_day) as i64;
            let agent = next(agents as u64);
            Event {
                time_ms: day * 86_400_000 + 8 * 3_600_000 + (position % per_day) as i64 * 400,
                agent: format!("agt-{agent:04}"),
                peer_group: format!("team-{}@site-{}", agent % 10, agent % 3),
                customer: format!("cus-{:07}", 1 + next(1_000_000)),
                action: match next(3) {
                    0 => Action::View,
                    1 => Action::Reveal,
                    _ => Action::Verify(Checked::Matched),
                },
                why: if next(100) < 3 { Why::Unexplained } else { Why::Ticket },
                high_balance: next(100) < 2,
            }
        })
        .collect()
}

fn observation(index: usize, event: &Event) -> Observation<'_> {
    Observation {
        index: index as u64,
        time_ms: event.time_ms,
        agent: &event.agent,
        peer_group: &event.peer_group,
        site: "site",
        action: event.action,
        customer: Some(&event.customer),
        why: event.why,
        opened_by: None,
        assigned_by: None,
        fields_beyond_need: 0,
        high_balance: event.high_balance,
        canary: false,
        off_shift: false,
        allowed: true,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let events = stream(2_000_000);
    let mut detector_rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut refused = 0;
    let mut suspended = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let mut detector = Detector::new(Thresholds::default());
        refused = 0;
        suspended = 0;
        for (index, event) in events.iter().enumerate() {
            let verdict = black_box(detector.observe(&observation(index, event)));
            refused += usize::from(verdict.deny.is_some());
            suspended += usize::from(verdict.deny == Some(Level::Suspend));
        }
        detector_rates.push(events.len() as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut distinct: HashMap<(&str, i64), HashSet<&str>> = HashMap::new();
        for event in &events {
            distinct.entry((event.agent.as_str(), event.time_ms / 86_400_000)).or_default().insert(&event.customer);
        }
        black_box(distinct.len());
        raw_rates.push(events.len() as f64 / started.elapsed().as_secs_f64());
    }
    let detector = median(detector_rates);
    let raw = median(raw_rates);
    println!(
        "detection replay: {:.2} M observations/s (median of 5 runs over {} observations)",
        detector / 1e6,
        events.len()
    );
    println!("raw distinct-per-agent-day pass: {:.2} M observations/s", raw / 1e6);
    println!("detector / raw: {:.2}; per observation {:.0} ns", detector / raw, 1e9 / detector);
    // A suspended agent is refused at once, without scoring: observations of suspended
    // agents would make the figure time something cheaper than it says, so there must be
    // none. (Random unexplained looks step a few agents up; stepped-up agents are scored in
    // full, so they count as measured work.)
    println!("observations refused: {refused} (of agents stepped up: {}, suspended: {suspended})", refused - suspended);
    if suspended > 0 {
        eprintln!("replay bench: {suspended} observations were of suspended agents; the figure is not valid");
        std::process::exit(1);
    }
}
