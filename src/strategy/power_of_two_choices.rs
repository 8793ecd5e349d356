//! Power of two choices (P2C).
//!
//! Sample two *distinct* accelerators uniformly at random and send the request to the
//! one with the lower load relative to its capacity. Azar, Broder, Karlin and Upfal
//! ("Balanced Allocations", 1999) showed that this drops the maximum load of n balls
//! in n bins from about ln n / ln ln n (one random choice) to ln ln n / ln 2 + O(1),
//! and Mitzenmacher ("The Power of Two Choices in Randomized Load Balancing", 2001)
//! that it stays good when load information is stale, where least-connections herds.
//! Each decision reads two counters, so its cost does not grow with the fleet.
//! The distinct pair is drawn as in tower's `balance::p2c` (Floyd's two-sample).

use rand::Rng;

use crate::accelerator::AcceleratorState;
use crate::demand::Decision;
use crate::fleet::{Fleet, Slot};
use crate::strategy::random::SAMPLE_ATTEMPTS;

/// Power-of-two-choices selection.
#[derive(Debug, Default, Clone, Copy)]
pub struct PowerOfTwoChoices;

/// Two distinct indices in `0..n` (n >= 2), uniformly over pairs.
#[inline]
pub fn sample_two_distinct<R: Rng + ?Sized>(rng: &mut R, n: usize) -> (usize, usize) {
    let a = rng.random_range(0..n);
    let mut b = rng.random_range(0..n - 1);
    if b >= a {
        b += 1;
    }
    (a, b)
}

/// True if `a` is strictly less utilised than `b` (load / capacity, compared exactly).
#[inline]
pub fn less_utilised(a: &AcceleratorState, b: &AcceleratorState) -> bool {
    (a.load() as u128) * (b.capacity() as u128) < (b.load() as u128) * (a.capacity() as u128)
}

impl PowerOfTwoChoices {
    /// Picks the less utilised of two random accelerators that can take the demand.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        let n = decision.domain(fleet);
        if n < 2 {
            return decision.first_fit(fleet, 0);
        }
        for _ in 0..SAMPLE_ATTEMPTS {
            let (i, j) = sample_two_distinct(rng, n);
            let (a, b) = (decision.nth(i), decision.nth(j));
            let (state_a, state_b) = (fleet.state(a), fleet.state(b));
            let (first, second) = match (state_a.is_routable(), state_b.is_routable()) {
                (false, false) => continue,
                (true, false) => (a, None),
                (false, true) => (b, None),
                (true, true) if less_utilised(state_b, state_a) => (b, Some(a)),
                (true, true) => (a, Some(b)),
            };
            if decision.demand.try_take(fleet.state(first)) {
                return Some(first);
            }
            if let Some(second) = second {
                if decision.demand.try_take(fleet.state(second)) {
                    return Some(second);
                }
            }
        }
        decision.first_fit(fleet, rng.random_range(0..n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Accelerator;
    use crate::demand::Demand;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn two_distinct_covers_all_pairs() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut seen = [[0u32; 4]; 4];
        for _ in 0..10_000 {
            let (a, b) = sample_two_distinct(&mut rng, 4);
            assert_ne!(a, b);
            seen[a][b] += 1;
        }
        for (a, row) in seen.iter().enumerate() {
            for (b, &count) in row.iter().enumerate() {
                assert_eq!(count == 0, a == b, "pair {a},{b}");
            }
        }
    }

    #[test]
    fn prefers_the_less_utilised_of_two() {
        let fleet = Fleet::new();
        fleet.add(Accelerator::new(0, 100)).unwrap();
        fleet.add(Accelerator::new(1, 10)).unwrap();
        // 20/100 = 0.2 beats 3/10 = 0.3 even though its absolute load is higher.
        fleet.state(0).store_load(20);
        fleet.state(1).store_load(3);
        let mut rng = SmallRng::seed_from_u64(9);
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        assert_eq!(PowerOfTwoChoices.pick(&fleet, &d, &mut rng), Some(0));
    }

    #[test]
    fn single_accelerator_and_empty_fleet() {
        let fleet = Fleet::new();
        let mut rng = SmallRng::seed_from_u64(9);
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        assert_eq!(PowerOfTwoChoices.pick(&fleet, &d, &mut rng), None);
        fleet.add(Accelerator::new(5, 1)).unwrap();
        assert_eq!(PowerOfTwoChoices.pick(&fleet, &d, &mut rng), Some(0));
        assert_eq!(PowerOfTwoChoices.pick(&fleet, &d, &mut rng), None);
    }
}
