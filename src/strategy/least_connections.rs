//! Least connections, exact: the request goes to the accelerator with the lowest load
//! relative to its capacity (ties to the earliest registered).
//!
//! A naive implementation scans the fleet per decision (O(n)); this one keeps a
//! lock-free tournament tree ([`MinTree`]) over every accelerator's utilisation, so
//! the argmin is read at the root in O(1) and each load change costs O(log n). When
//! the request carries a candidate set, the candidates are scanned instead (O(k)).

use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

use crate::accelerator::AcceleratorState;
use crate::demand::Decision;
use crate::fleet::{Fleet, Slot};
use crate::min_tree::{pack, MinTree, UNAVAILABLE};

/// Times the tree's choice is retried when a concurrent router took it first.
const TREE_ATTEMPTS: usize = 4;

/// Exact least-connections selection.
#[derive(Debug)]
pub struct LeastConnections {
    tree: ArcSwap<MinTree>,
    resize: Mutex<()>,
}

impl Default for LeastConnections {
    fn default() -> Self {
        Self::new()
    }
}

/// The tree key of one accelerator: utilisation in 1/2^31 steps, or unavailable.
#[inline]
fn leaf_value(slot: Slot, state: &AcceleratorState) -> u64 {
    let (load, capacity) = (state.load(), state.capacity());
    if !state.is_routable() || load >= capacity {
        return UNAVAILABLE;
    }
    let key = ((load as u128) << 31) / capacity as u128;
    pack(key as u32, slot)
}

impl LeastConnections {
    /// An empty index; [`LeastConnections::sync`] fills it.
    pub fn new() -> Self {
        LeastConnections {
            tree: ArcSwap::from_pointee(MinTree::new(0)),
            resize: Mutex::new(()),
        }
    }

    /// Re-reads one accelerator's load into the index. Call after any change to it.
    #[inline]
    pub fn refresh(&self, fleet: &Fleet, slot: Slot) {
        let tree = self.tree.load();
        if (slot as usize) < tree.leaves() {
            tree.update(slot, leaf_value(slot, fleet.state(slot)));
        }
    }

    /// Brings the index up to date with the fleet's slots, growing it (doubling) when
    /// the fleet outgrew it: O(1) amortised per registration.
    pub fn sync(&self, fleet: &Fleet, new_slots: std::ops::Range<Slot>) {
        let _guard = self.resize.lock().unwrap_or_else(|e| e.into_inner());
        let slots = fleet.slot_count();
        if slots > self.tree.load().leaves() {
            let grown = MinTree::new(slots * 2);
            grown.rebuild_from(slots, |s| leaf_value(s, fleet.state(s)));
            self.tree.store(Arc::new(grown));
            // Updates that raced into the old tree during the build are re-read here.
            for slot in 0..slots as Slot {
                self.refresh(fleet, slot);
            }
        } else {
            for slot in new_slots {
                self.refresh(fleet, slot);
            }
        }
    }

    /// Picks the least utilised accelerator that can take the demand.
    pub fn pick(&self, fleet: &Fleet, decision: &Decision<'_>) -> Option<Slot> {
        if decision.candidates.is_none() {
            let tree = self.tree.load();
            for _ in 0..TREE_ATTEMPTS {
                // Every accelerator is full, unhealthy or removed: nothing can fit.
                let (_, slot) = tree.min()?;
                if (slot as usize) >= fleet.slot_count() {
                    break;
                }
                let state = fleet.state(slot);
                if decision.demand.try_take(state) {
                    tree.update(slot, leaf_value(slot, state));
                    return Some(slot);
                }
                tree.update(slot, leaf_value(slot, state));
                if state.is_routable() && state.load() < decision.demand.limit(state) {
                    // The least utilised one cannot fit this cost; another may.
                    break;
                }
            }
        }
        self.pick_by_scan(fleet, decision)
    }

    /// Exact scan over the allowed accelerators: the least utilised that fits.
    fn pick_by_scan(&self, fleet: &Fleet, decision: &Decision<'_>) -> Option<Slot> {
        for _ in 0..TREE_ATTEMPTS {
            let best = decision.fitting_slots(fleet).min_by(|&a, &b| {
                let (sa, sb) = (fleet.state(a), fleet.state(b));
                ((sa.load() as u128) * sb.capacity() as u128)
                    .cmp(&((sb.load() as u128) * sa.capacity() as u128))
            })?;
            if decision.demand.try_take(fleet.state(best)) {
                self.refresh(fleet, best);
                return Some(best);
            }
        }
        decision
            .first_fit(fleet, 0)
            .inspect(|&slot| self.refresh(fleet, slot))
    }

    /// Bytes held by the index.
    pub fn bytes(&self) -> usize {
        self.tree.load().bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Accelerator;
    use crate::demand::{Candidates, Demand};

    fn setup(capacities: &[u64]) -> (Fleet, LeastConnections) {
        let fleet = Fleet::new();
        let lc = LeastConnections::new();
        for (id, &c) in capacities.iter().enumerate() {
            let slot = fleet.add(Accelerator::new(id as u64, c)).unwrap();
            lc.sync(&fleet, slot..slot + 1);
        }
        (fleet, lc)
    }

    #[test]
    fn always_the_least_utilised() {
        let (fleet, lc) = setup(&[10, 10, 10]);
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        let picks: Vec<_> = (0..6).map(|_| lc.pick(&fleet, &d).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        fleet.state(1).release(2).unwrap();
        lc.refresh(&fleet, 1);
        assert_eq!(lc.pick(&fleet, &d), Some(1));
        assert_eq!(lc.pick(&fleet, &d), Some(1));
    }

    #[test]
    fn relative_to_capacity_and_falls_back_when_cost_does_not_fit() {
        let (fleet, lc) = setup(&[10, 100]);
        fleet.state(0).store_load(5);
        fleet.state(1).store_load(60);
        lc.refresh(&fleet, 0);
        lc.refresh(&fleet, 1);
        // 0.5 < 0.6, but a cost of 8 only fits on the big one.
        let d = Decision::new(Demand::new(8, 1, 0).unwrap());
        assert_eq!(lc.pick(&fleet, &d), Some(1));
        let d1 = Decision::new(Demand::new(1, 1, 0).unwrap());
        assert_eq!(lc.pick(&fleet, &d1), Some(0));
    }

    #[test]
    fn candidates_are_scanned() {
        let (fleet, lc) = setup(&[10, 10, 10, 10]);
        fleet.state(2).store_load(3);
        fleet.state(3).store_load(1);
        lc.refresh(&fleet, 2);
        lc.refresh(&fleet, 3);
        let only = Candidates::from_ids(&fleet, [2, 3]).unwrap();
        let d = Decision {
            candidates: Some(&only),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        };
        assert_eq!(lc.pick(&fleet, &d), Some(3));
    }

    #[test]
    fn grows_with_the_fleet() {
        let (fleet, lc) = setup(&[]);
        for id in 0..1000 {
            let slot = fleet.add(Accelerator::new(id, 2)).unwrap();
            lc.sync(&fleet, slot..slot + 1);
        }
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(lc.pick(&fleet, &d).unwrap());
        }
        assert_eq!(seen.len(), 1000);
    }
}
