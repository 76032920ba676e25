//! A seeded random source that gives the same numbers on every machine: xoshiro256**
//! seeded through SplitMix64, and distributions built only from IEEE-754 additions,
//! multiplications and divisions (which every platform rounds alike), never from the
//! platform's `exp` or `ln`, whose last bits may differ between C libraries.

#[derive(Debug, Clone)]
pub struct Rng {
    state: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut mix = seed;
        Rng { state: [splitmix64(&mut mix), splitmix64(&mut mix), splitmix64(&mut mix), splitmix64(&mut mix)] }
    }

    /// An independent stream named `label`: each part of the world draws from its own, so
    /// changing how many numbers one part uses does not shift another.
    pub fn stream(seed: u64, label: &str) -> Rng {
        // FNV-1a of the label, mixed with the seed.
        let mut hash = 0xCBF2_9CE4_8422_2325u64;
        for byte in label.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
        }
        Rng::new(seed ^ hash.rotate_left(17))
    }

    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.state;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-shift with rejection: no modulo bias.
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Uniform in `[low, high]`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low) + 1)
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.index(items.len()))
    }

    /// An index drawn in proportion to `weights`.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (index, weight) in weights.iter().enumerate() {
            if target < *weight {
                return index;
            }
            target -= weight;
        }
        weights.len().saturating_sub(1)
    }

    /// An item of `(item, weight)` pairs, drawn in proportion to the weights.
    pub fn pick_weighted<'a, T>(&mut self, items: &'a [(T, f64)]) -> Option<&'a T> {
        let weights: Vec<f64> = items.iter().map(|(_, weight)| *weight).collect();
        items.get(self.weighted(&weights)).map(|(item, _)| item)
    }

    /// Approximately standard normal: the Irwin–Hall sum of twelve uniforms, less six.
    pub fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    pub fn log_normal(&mut self, mu: f64, sigma: f64) -> f64 {
        exp(mu + sigma * self.normal())
    }

    /// Poisson-distributed count with the given mean (Knuth's method for small means, a
    /// rounded normal for large ones).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean > 30.0 {
            let draw = mean + self.normal() * sqrt(mean);
            return if draw < 0.0 { 0 } else { (draw + 0.5) as u64 };
        }
        let limit = exp(-mean);
        let mut count = 0;
        let mut product = self.unit();
        while product > limit {
            count += 1;
            product *= self.unit();
        }
        count
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

/// `e^x` from additions, multiplications and divisions only, so it is the same everywhere.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(-700.0, 700.0);
    const LN2: f64 = std::f64::consts::LN_2;
    let k = (x / LN2 + if x < 0.0 { -0.5 } else { 0.5 }) as i64;
    let r = x - k as f64 * LN2;
    // Taylor series of e^r for |r| <= ln2/2: 20 terms is below one ulp.
    let mut term = 1.0;
    let mut sum = 1.0;
    for n in 1..=20 {
        term = term * r / f64::from(n);
        sum += term;
    }
    let scale = f64::from_bits(((1023 + k) as u64) << 52);
    sum * scale
}

/// Square root: IEEE-754 requires it correctly rounded, so the library's is deterministic.
fn sqrt(x: f64) -> f64 {
    x.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_library_closely() {
        for x in [-20.0, -3.5, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5, 7.0, 14.5, 30.0] {
            let ours = exp(x);
            let library = x.exp();
            assert!(((ours - library) / library).abs() < 1e-14, "exp({x}): {ours} against {library}");
        }
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let first: Vec<u64> = (0..4)
            .map({
                let mut rng = Rng::stream(7, "customers");
                move |_| rng.next_u64()
            })
            .collect();
        let again: Vec<u64> = (0..4)
            .map({
                let mut rng = Rng::stream(7, "customers");
                move |_| rng.next_u64()
            })
            .collect();
        let other: Vec<u64> = (0..4)
            .map({
                let mut rng = Rng::stream(7, "agents");
                move |_| rng.next_u64()
            })
            .collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let value = rng.below(7) as usize;
            assert!(value < 7);
            if let Some(slot) = seen.get_mut(value) {
                *slot = true;
            }
        }
        assert!(seen.iter().all(|&hit| hit));
    }

    #[test]
    fn poisson_mean_is_close() {
        let mut rng = Rng::new(3);
        for mean in [0.5, 4.0, 60.0] {
            let draws = 20_000;
            let total: u64 = (0..draws).map(|_| rng.poisson(mean)).sum();
            let observed = total as f64 / draws as f64;
            assert!((observed - mean).abs() < mean * 0.05 + 0.05, "mean {mean}: observed {observed}");
        }
    }
}
