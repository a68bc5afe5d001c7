//! Exponential backoff with full jitter: the n-th retry waits a random time in
//! `[0, min(max, base × 2^n)]`, so registers that lost Central together do not return together.

use std::time::Duration;

use rand::Rng;

/// The retry delay of the sync engine.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

/// Doublings beyond this are capped anyway; it keeps the shift from overflowing.
const DOUBLINGS_MAX: u32 = 20;

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: 0,
        }
    }

    /// After a failure: the time to wait before the next try.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.gen_range(0..=ceiling_ms))
    }

    /// The upper bound of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.failures.min(DOUBLINGS_MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// After a success: start over.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_it() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut rng = rand::thread_rng();
        let mut ceilings = Vec::new();
        for _ in 0..30 {
            let ceiling = backoff.ceiling();
            let delay = backoff.next_delay(&mut rng);
            assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(&ceilings[..4], &[100, 200, 400, 800]);
        assert_eq!(*ceilings.last().unwrap(), 5000);
        backoff.reset();
        assert_eq!(backoff.ceiling(), Duration::from_millis(100));
    }
}
