//! How likely a coverage is by chance: the null model behind attribution.
//!
//! An agent who was shown `volume` customers of a base of `base`, picked with no regard to
//! the sample, would be shown at least one of a row's `candidates` with the probability
//! `hit_probability`; over a sample's rows the number of rows it explains is then a sum of
//! independent Bernoulli trials (a Poisson binomial), whose upper tail `at_least` gives.

/// The probability that `volume` customers drawn without replacement from `base` include at
/// least one of `candidates` given ones: `1 - C(base - candidates, volume) / C(base, volume)`.
pub fn hit_probability(volume: u64, candidates: u64, base: u64) -> f64 {
    if candidates == 0 || volume == 0 {
        return 0.0;
    }
    if volume + candidates > base {
        return 1.0;
    }
    // The ratio of binomials as a product over the smaller of the two counts.
    let (small, large) = if candidates < volume { (candidates, volume) } else { (volume, candidates) };
    let mut log_miss = 0.0f64;
    for step in 0..small {
        let numerator = (base - large - step) as f64;
        let denominator = (base - step) as f64;
        log_miss += (numerator / denominator).ln();
    }
    (1.0 - log_miss.exp()).clamp(0.0, 1.0)
}

/// The probability that at least `k` of independent trials with these success
/// probabilities succeed.
pub fn at_least(k: usize, probabilities: &[f64]) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > probabilities.len() {
        return 0.0;
    }
    // distribution[j]: the probability of exactly j successes so far.
    let mut distribution = vec![0.0f64; probabilities.len() + 1];
    if let Some(first) = distribution.first_mut() {
        *first = 1.0;
    }
    for (seen, &p) in probabilities.iter().enumerate() {
        let p = p.clamp(0.0, 1.0);
        for j in (0..=seen + 1).rev() {
            let stay = distribution.get(j).copied().unwrap_or(0.0) * (1.0 - p);
            let step = if j > 0 { distribution.get(j - 1).copied().unwrap_or(0.0) * p } else { 0.0 };
            if let Some(slot) = distribution.get_mut(j) {
                *slot = stay + step;
            }
        }
    }
    distribution.iter().skip(k).sum::<f64>().clamp(0.0, 1.0)
}
