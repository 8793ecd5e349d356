//! Uniform random choice: the baseline every other strategy is measured against
//! (one choice in balls-into-bins terms: maximum load about ln n / ln ln n).

use rand::Rng;

use crate::demand::Decision;
use crate::fleet::{Fleet, Slot};

/// Draws this many uniform samples before falling back to a scan.
pub(crate) const SAMPLE_ATTEMPTS: usize = 8;

/// Uniform random selection.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomChoice;

impl RandomChoice {
    /// Picks a uniformly random accelerator that can take the demand.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        let n = decision.domain(fleet);
        if n == 0 {
            return None;
        }
        for _ in 0..SAMPLE_ATTEMPTS {
            let slot = decision.nth(rng.random_range(0..n));
            if decision.demand.try_take(fleet.state(slot)) {
                return Some(slot);
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
    fn spreads_and_finds_the_last_free_slot() {
        let fleet = Fleet::new();
        for id in 0..4 {
            fleet.add(Accelerator::new(id, 3)).unwrap();
        }
        let mut rng = SmallRng::seed_from_u64(1);
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        for _ in 0..12 {
            assert!(RandomChoice.pick(&fleet, &d, &mut rng).is_some());
        }
        assert_eq!(RandomChoice.pick(&fleet, &d, &mut rng), None);
        assert!(fleet.iter().all(|(_, s)| s.load() == 3));
    }
}
