//! Power of two choices (P2C).
//!
//! Sample two *distinct* accelerators uniformly at random and send the request to the
//! one with the lower load relative to its capacity. Azar, Broder, Karlin and Upfal
//! ("Balanced Allocations", 1999) showed that this drops the maximum load of n balls
//! in n bins from about ln n / ln ln n (one random choice) to ln ln n / ln 2 + O(1),
//! and Mitzenmacher ("The Power of Two Choices in Randomized Load Balancing", 2001)
//! that it stays good when load information is stale, where least-connections herds.
//! Each decision reads two counters, so its cost does not grow with the fleet.
//! The distinct pair is drawn as in tower's `balance::p2c` (Floyd's two-sample) on a
//! fleet of equal capacities, and in proportion to capacity on a mixed fleet (see
//! [`CapacitySampler`]); a request's candidate set is sampled uniformly.

use rand::Rng;

use crate::accelerator::AcceleratorState;
use crate::demand::Decision;
use crate::fleet::{Fleet, Slot};
use crate::prefetch::prefetch;
use crate::strategy::capacity_sampler::CapacitySampler;
use crate::strategy::derived_table::DerivedTable;
use crate::strategy::random::SAMPLE_ATTEMPTS;

/// Power-of-two-choices selection.
#[derive(Debug, Default)]
pub struct PowerOfTwoChoices {
    sampler: DerivedTable<CapacitySampler>,
}

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

/// P2C's own measure: try `b` first when it is strictly less utilised (ties to `a`).
#[inline]
fn less_utilised_second(_: Slot, a: &AcceleratorState, _: Slot, b: &AcceleratorState) -> bool {
    less_utilised(b, a)
}

/// Decisions sampled ahead in a batch, so their accelerators are already in cache.
const LOOKAHEAD: usize = 32;

impl PowerOfTwoChoices {
    /// A P2C selector; its sampler is built at the first decision.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tries the sampled pair of slots, the better one first (`b_first(a, b)` says
    /// whether `b` is better), then the other. `None` if neither could take it.
    #[inline]
    fn try_pair_by<F>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        a: Slot,
        b: Slot,
        b_first: &F,
    ) -> Option<Slot>
    where
        F: Fn(Slot, &AcceleratorState, Slot, &AcceleratorState) -> bool,
    {
        let (state_a, state_b) = (fleet.state(a), fleet.state(b));
        let (routable_a, routable_b) = (state_a.is_routable(), state_b.is_routable());
        let a_first = match (routable_a, routable_b) {
            (false, false) => return None,
            (true, false) => true,
            (false, true) => false,
            (true, true) => !b_first(a, state_a, b, state_b),
        };
        let (load_a, load_b) = (state_a.load(), state_b.load());
        let demand = &decision.demand;
        let (first, second) = if a_first {
            (
                (a, state_a, load_a),
                routable_b.then_some((b, state_b, load_b)),
            )
        } else {
            (
                (b, state_b, load_b),
                routable_a.then_some((a, state_a, load_a)),
            )
        };
        let take = |(slot, state, load): (Slot, &AcceleratorState, u64)| {
            state
                .try_acquire_observed(load, demand.cost, demand.limit(state))
                .then_some(slot)
        };
        take(first).or_else(|| second.and_then(take))
    }

    /// Picks the less utilised of two random accelerators that can take the demand.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        self.pick_by(fleet, decision, rng, &less_utilised_second)
    }

    /// P2C with a caller's measure of which of two accelerators is better:
    /// `b_first(a, state_a, b, state_b)` is true when `b` should be tried first.
    /// Sampling, failover and the fallback scan are the same as [`Self::pick`].
    #[inline]
    pub fn pick_by<R, F>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
        b_first: &F,
    ) -> Option<Slot>
    where
        R: Rng + ?Sized,
        F: Fn(Slot, &AcceleratorState, Slot, &AcceleratorState) -> bool,
    {
        let n = decision.domain(fleet);
        if n < 2 {
            return decision.first_fit(fleet, 0);
        }
        let guard = match decision.candidates {
            None if fleet.has_mixed_capacity() => {
                Some(self.sampler.get(fleet, || CapacitySampler::build(fleet)))
            }
            _ => None,
        };
        let sampler = guard
            .as_ref()
            .and_then(|g| g.as_ref())
            .map(|v| &v.table)
            .filter(|s| s.slots() >= 2);
        if let Some(sampler) = sampler {
            for _ in 0..SAMPLE_ATTEMPTS {
                let (a, b) = sampler.sample_two(rng);
                if let Some(slot) = self.try_pair_by(fleet, decision, a, b, b_first) {
                    return Some(slot);
                }
            }
        } else {
            // Equal capacities, a candidate set, or a sampler built before the fleet
            // had two slots: uniform over the domain.
            for _ in 0..SAMPLE_ATTEMPTS {
                let (i, j) = sample_two_distinct(rng, n);
                let (a, b) = (decision.nth(i), decision.nth(j));
                if let Some(slot) = self.try_pair_by(fleet, decision, a, b, b_first) {
                    return Some(slot);
                }
            }
        }
        decision.first_fit(fleet, rng.random_range(0..n))
    }

    /// Routes `count` decisions over the whole fleet, calling `emit(i, slot)` for
    /// each in order. Same choices in distribution as calling [`Self::pick`] per
    /// decision, but pairs are sampled [`LOOKAHEAD`] decisions ahead and their cache
    /// lines prefetched, which hides most of the memory latency on large fleets.
    pub fn pick_batch<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        count: usize,
        decision: impl Fn(usize) -> Decision<'static>,
        rng: &mut R,
        mut emit: impl FnMut(usize, Option<Slot>),
    ) {
        if fleet.slot_count() < 2 {
            for i in 0..count {
                emit(i, self.pick(fleet, &decision(i), rng));
            }
            return;
        }
        let guard = self.sampler.get(fleet, || CapacitySampler::build(fleet));
        let Some(sampler) = guard.as_ref().map(|v| &v.table).filter(|s| s.slots() >= 2) else {
            for i in 0..count {
                emit(i, self.pick(fleet, &decision(i), rng));
            }
            return;
        };
        let sample = |rng: &mut R| {
            let pair = sampler.sample_two(rng);
            prefetch(fleet.state(pair.0));
            prefetch(fleet.state(pair.1));
            pair
        };
        let mut ahead = [(0, 0); LOOKAHEAD];
        for pair in ahead.iter_mut().take(count) {
            *pair = sample(rng);
        }
        for i in 0..count {
            let (a, b) = ahead[i % LOOKAHEAD];
            if i + LOOKAHEAD < count {
                ahead[i % LOOKAHEAD] = sample(rng);
            }
            let d = decision(i);
            let slot = self
                .try_pair_by(fleet, &d, a, b, &less_utilised_second)
                .or_else(|| self.pick(fleet, &d, rng));
            emit(i, slot);
        }
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
        assert_eq!(PowerOfTwoChoices::new().pick(&fleet, &d, &mut rng), Some(0));
    }

    #[test]
    fn single_accelerator_and_empty_fleet() {
        let fleet = Fleet::new();
        let mut rng = SmallRng::seed_from_u64(9);
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        assert_eq!(PowerOfTwoChoices::new().pick(&fleet, &d, &mut rng), None);
        fleet.add(Accelerator::new(5, 1)).unwrap();
        assert_eq!(PowerOfTwoChoices::new().pick(&fleet, &d, &mut rng), Some(0));
        assert_eq!(PowerOfTwoChoices::new().pick(&fleet, &d, &mut rng), None);
    }
}
