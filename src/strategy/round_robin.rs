//! Round robin with failover.
//!
//! A shared cursor advances by one per decision; the request goes to the accelerator
//! under the cursor, or, if that one is full, unhealthy or not a candidate, to the
//! next one that can take it. The cursor is one padded atomic, so concurrent routers
//! each get a distinct starting point without a lock.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::demand::Decision;
use crate::fleet::{Fleet, Slot};

/// Round-robin selection over the fleet (or over a request's candidates).
#[derive(Debug, Default)]
pub struct RoundRobin {
    cursor: CachePadded<AtomicUsize>,
}

impl RoundRobin {
    /// A round robin starting at the first accelerator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Picks the next accelerator that can take the decision's demand. A turn that
    /// lands on a full, unhealthy or removed accelerator is spent and the cursor
    /// moves on, so the next accelerator in line is not handed a double share.
    #[inline]
    pub fn pick(&self, fleet: &Fleet, decision: &Decision<'_>) -> Option<Slot> {
        let n = decision.domain(fleet);
        if n == 0 {
            return None;
        }
        let mut start = 0;
        for _ in 0..n.min(TURNS) {
            start = self.next_turn(n);
            let slot = decision.nth(start);
            if decision.demand.try_take(fleet.state(slot)) {
                return Some(slot);
            }
        }
        decision.first_fit(fleet, start + 1)
    }
}

impl RoundRobin {
    /// Advances the cursor and returns a position in `0..n`. The cursor wraps at `n`
    /// itself (a compare-exchange), so the common case needs no integer division.
    #[inline]
    fn next_turn(&self, n: usize) -> usize {
        let turn = self
            .cursor
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(if c + 1 >= n { 0 } else { c + 1 })
            })
            .unwrap_or_else(|c| c);
        if turn < n {
            turn
        } else {
            // The domain shrank (a smaller candidate set than the last call's).
            turn % n
        }
    }
}

/// Turns tried before a scan for any accelerator that fits.
const TURNS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::{Candidates, Demand};
    use crate::fleet::tests::fleet;

    #[test]
    fn cycles_in_order() {
        let fleet = fleet(3, 10);
        let rr = RoundRobin::new();
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        let picks: Vec<_> = (0..6).map(|_| rr.pick(&fleet, &d).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn fails_over_past_full_and_unhealthy() {
        let fleet = fleet(3, 1);
        fleet.set_healthy(1, false).unwrap();
        let rr = RoundRobin::new();
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        assert_eq!(rr.pick(&fleet, &d), Some(0));
        assert_eq!(rr.pick(&fleet, &d), Some(2));
        assert_eq!(rr.pick(&fleet, &d), None);
    }

    #[test]
    fn removed_accelerator_does_not_double_its_neighbour() {
        let fleet = fleet(4, 100);
        fleet.remove(1).unwrap();
        let rr = RoundRobin::new();
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        let mut counts = [0; 4];
        for _ in 0..300 {
            counts[rr.pick(&fleet, &d).unwrap() as usize] += 1;
        }
        assert_eq!(counts, [100, 0, 100, 100]);
    }

    #[test]
    fn honours_candidates() {
        let fleet = fleet(5, 10);
        let rr = RoundRobin::new();
        let only = Candidates::from_ids(&fleet, [3, 1]).unwrap();
        let d = Decision {
            candidates: Some(&only),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        };
        let picks: Vec<_> = (0..4).map(|_| rr.pick(&fleet, &d).unwrap()).collect();
        assert_eq!(picks, vec![3, 1, 3, 1]);
    }
}
