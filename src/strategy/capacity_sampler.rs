//! Draws accelerators for sampling strategies in proportion to their capacity.
//!
//! Two uniform choices cap what any one accelerator can receive at about 2/n of the
//! traffic, so on a mixed fleet (4-, 8- and 16-slot replicas) the large ones starve
//! while the small ones overflow, and no comparison of loads can fix it. Sampling in
//! proportion to capacity gives each accelerator a share of candidates that matches
//! its share of the fleet; P2C's comparison of utilisations then does the balancing.
//! On a fleet of equal capacities the sampler is plain uniform, so the classic
//! balls-into-bins analysis applies unchanged.
//!
//! The weighted case uses Walker's alias method (`rand_distr::WeightedAliasIndex`):
//! O(n) to build once per fleet change, O(1) per draw.

use rand::distr::Distribution;
use rand::Rng;
use rand_distr::weighted::WeightedAliasIndex;

use crate::fleet::{Fleet, Slot};

/// How slots are drawn for one fleet epoch.
#[derive(Debug)]
pub enum CapacitySampler {
    /// Every registered accelerator has the same capacity: uniform over all slots.
    Uniform(usize),
    /// Capacities differ: alias table over `slots` slots (tombstones weigh 0).
    Weighted {
        table: WeightedAliasIndex<u64>,
        slots: usize,
    },
}

impl CapacitySampler {
    /// The sampler for the fleet as it is now.
    pub fn build(fleet: &Fleet) -> Self {
        let slots = fleet.slot_count();
        if !fleet.has_mixed_capacity() {
            return CapacitySampler::Uniform(slots);
        }
        let weights: Vec<u64> = (0..slots as Slot)
            .map(|slot| {
                let state = fleet.state(slot);
                if state.is_registered() {
                    state.capacity()
                } else {
                    0
                }
            })
            .collect();
        match WeightedAliasIndex::new(weights) {
            Ok(table) => CapacitySampler::Weighted { table, slots },
            // Only reachable if the total overflows u64: fall back to uniform.
            Err(_) => CapacitySampler::Uniform(slots),
        }
    }

    /// Slots the sampler draws from (the fleet may have grown since it was built).
    pub fn slots(&self) -> usize {
        match self {
            CapacitySampler::Uniform(n) => *n,
            CapacitySampler::Weighted { slots, .. } => *slots,
        }
    }

    /// One slot drawn in proportion to capacity.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Slot {
        match self {
            CapacitySampler::Uniform(n) => rng.random_range(0..(*n).max(1)) as Slot,
            CapacitySampler::Weighted { table, .. } => table.sample(rng) as Slot,
        }
    }

    /// Two distinct slots, each drawn in proportion to capacity; the second is redrawn
    /// while it equals the first. Requires `self.slots() >= 2`.
    #[inline]
    pub fn sample_two<R: Rng + ?Sized>(&self, rng: &mut R) -> (Slot, Slot) {
        match self {
            CapacitySampler::Uniform(n) => {
                let (a, b) = super::power_of_two_choices::sample_two_distinct(rng, *n);
                (a as Slot, b as Slot)
            }
            CapacitySampler::Weighted { table, slots } => {
                let a = table.sample(rng);
                for _ in 0..8 {
                    let b = table.sample(rng);
                    if b != a {
                        return (a as Slot, b as Slot);
                    }
                }
                // One accelerator holds nearly all capacity; pair it with any other.
                let mut b = rng.random_range(0..slots - 1);
                if b >= a {
                    b += 1;
                }
                (a as Slot, b as Slot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Accelerator;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn equal_capacities_are_uniform() {
        let fleet = Fleet::new();
        for id in 0..10 {
            fleet.add(Accelerator::new(id, 8)).unwrap();
        }
        assert!(matches!(
            CapacitySampler::build(&fleet),
            CapacitySampler::Uniform(10)
        ));
    }

    #[test]
    fn draws_follow_capacity_and_skip_tombstones() {
        let fleet = Fleet::new();
        for (id, capacity) in [(0, 1), (1, 3), (2, 100)] {
            fleet.add(Accelerator::new(id, capacity)).unwrap();
        }
        fleet.remove(2).unwrap();
        let sampler = CapacitySampler::build(&fleet);
        let mut rng = SmallRng::seed_from_u64(5);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[sampler.sample(&mut rng) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let ratio = counts[1] as f64 / counts[0] as f64;
        assert!((2.7..3.3).contains(&ratio), "{counts:?}");
        for _ in 0..1000 {
            let (a, b) = sampler.sample_two(&mut rng);
            assert_ne!(a, b);
        }
    }
}
