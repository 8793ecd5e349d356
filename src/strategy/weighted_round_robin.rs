//! Smooth weighted round robin, nginx's algorithm (`ngx_http_upstream_round_robin.c`).
//!
//! Every step each target's running score grows by its weight; the highest score wins
//! and pays back the total weight. Picks are spread through the cycle instead of
//! bunched: weights a:5, b:1, c:1 give `a a b a c a a`, not `a a a a a b c`.
//!
//! nginx runs this O(n) loop under a lock for every request. Here the whole cycle is
//! computed once per fleet change (a [`DerivedTable`]) and routing just advances an
//! atomic cursor through it, so a decision is O(1) and lock-free. Targets of equal
//! weight advance in lock-step, so the cycle is built in O(cycle length × distinct
//! weights) rather than O(cycle length × targets) and yields exactly nginx's sequence.
//!
//! Weights are real numbers; the cycle needs integers. Integer weights are used as
//! they are (divided by their gcd); other weights are scaled to a resolution of 1/1000
//! of the largest weight, and the resolution is coarsened only if the cycle would
//! exceed [`MAX_CYCLE`] entries.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::demand::Decision;
use crate::fleet::{Fleet, Slot};
use crate::strategy::derived_table::DerivedTable;

/// The longest cycle kept (entries of 4 bytes).
pub const MAX_CYCLE: u64 = 1 << 22;
/// Cycle entries tried before falling back to a scan of the fleet.
const WALK_LIMIT: usize = 64;
/// Bound on the work of one cycle build (cycle length × distinct weights).
const MAX_BUILD_STEPS: u64 = 1 << 28;

/// Smooth weighted round-robin selection.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    cycle: DerivedTable<Vec<Slot>>,
    cursor: CachePadded<AtomicUsize>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Integer weights proportional to `weights` (see the module docs for the rounding).
pub fn integer_weights(weights: &[f64]) -> Vec<u64> {
    let max = weights.iter().copied().fold(0.0_f64, f64::max);
    if max <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact = weights.iter().all(|w| w.fract() == 0.0 && *w <= 1e6);
    let mut resolution = if exact { max } else { 1000.0 };
    loop {
        let ints: Vec<u64> = weights
            .iter()
            .map(|&w| match w {
                w if w <= 0.0 => 0,
                w => ((w / max * resolution).round() as u64).max(1),
            })
            .collect();
        let divisor = ints.iter().copied().fold(0, gcd).max(1);
        let ints: Vec<u64> = ints.iter().map(|w| w / divisor).collect();
        let total: u64 = ints.iter().sum();
        let mut distinct = ints.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if resolution <= 1.0
            || (total <= MAX_CYCLE && total * distinct.len() as u64 <= MAX_BUILD_STEPS)
        {
            return ints;
        }
        resolution = (resolution / 2.0).floor().max(1.0);
    }
}

/// One full nginx smooth-WRR cycle over `targets` (slot, integer weight), in the
/// order nginx would produce it when targets are listed in slot order.
pub fn smooth_cycle(targets: &[(Slot, u64)]) -> Vec<Slot> {
    // Group targets of equal weight; within a group they are picked in slot order.
    let mut groups: Vec<(u64, Vec<Slot>, u64)> = Vec::new();
    let mut sorted: Vec<_> = targets.iter().filter(|(_, w)| *w > 0).copied().collect();
    sorted.sort_unstable_by_key(|&(slot, w)| (w, slot));
    for (slot, weight) in sorted {
        match groups.last_mut() {
            Some((w, members, _)) if *w == weight => members.push(slot),
            _ => groups.push((weight, vec![slot], 0)),
        }
    }
    let total: u64 = groups.iter().map(|(w, m, _)| w * m.len() as u64).sum();
    let mut cycle = Vec::with_capacity(total as usize);
    for step in 1..=total as i128 {
        let mut best: Option<(i128, Slot, usize)> = None;
        for (g, (weight, members, picks)) in groups.iter().enumerate() {
            let rounds = (*picks / members.len() as u64) as i128;
            let score = step * *weight as i128 - total as i128 * rounds;
            let slot = members[(*picks % members.len() as u64) as usize];
            let better = match best {
                None => true,
                Some((s, b, _)) => score > s || (score == s && slot < b),
            };
            if better {
                best = Some((score, slot, g));
            }
        }
        let (_, slot, g) = best.expect("a positive total implies a group");
        groups[g].2 += 1;
        cycle.push(slot);
    }
    cycle
}

fn build_cycle(fleet: &Fleet) -> Vec<Slot> {
    let members: Vec<(Slot, f64)> = fleet.iter().map(|(s, st)| (s, st.weight())).collect();
    let weights: Vec<f64> = members.iter().map(|m| m.1).collect();
    let ints = integer_weights(&weights);
    let targets: Vec<(Slot, u64)> = members.iter().map(|m| m.0).zip(ints).collect();
    smooth_cycle(&targets)
}

impl WeightedRoundRobin {
    /// A weighted round robin; its cycle is built at the first decision.
    pub fn new() -> Self {
        Self::default()
    }

    /// Picks the next target of the cycle that can take the demand, walking forward
    /// past full, unhealthy or disallowed ones. Weight-0 targets are never picked.
    pub fn pick(&self, fleet: &Fleet, decision: &Decision<'_>) -> Option<Slot> {
        let guard = self.cycle.get(fleet, || build_cycle(fleet));
        let cycle = &guard.as_ref()?.table;
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..cycle.len().min(WALK_LIMIT))
            .map(|i| cycle[(start + i) % cycle.len().max(1)])
            .find(|&slot| decision.try_take(fleet, slot))
            .or_else(|| {
                // Nearly full, or the cycle predates the newest targets: one scan over
                // the weighted targets instead.
                let n = fleet.slot_count();
                (0..n).map(|i| ((start + i) % n) as Slot).find(|&slot| {
                    fleet.state(slot).weight() > 0.0 && decision.try_take(fleet, slot)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Accelerator;
    use crate::demand::Demand;
    use proptest::prelude::*;

    /// nginx's loop, transcribed directly.
    fn nginx(weights: &[u64], steps: usize) -> Vec<Slot> {
        let total: i64 = weights.iter().map(|&w| w as i64).sum();
        let mut current = vec![0i64; weights.len()];
        let mut out = Vec::new();
        for _ in 0..steps {
            let mut best: Option<usize> = None;
            for (i, &w) in weights.iter().enumerate() {
                if w == 0 {
                    continue;
                }
                current[i] += w as i64;
                if best.is_none_or(|b| current[i] > current[b]) {
                    best = Some(i);
                }
            }
            let b = best.unwrap();
            current[b] -= total;
            out.push(b as Slot);
        }
        out
    }

    #[test]
    fn nginx_reference_sequence() {
        let cycle = smooth_cycle(&[(0, 5), (1, 1), (2, 1)]);
        assert_eq!(cycle, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn routes_the_reference_sequence() {
        let fleet = Fleet::new();
        for (id, w) in [(0, 5.0), (1, 1.0), (2, 1.0)] {
            fleet.add(Accelerator::new(id, 100).with_weight(w)).unwrap();
        }
        let wrr = WeightedRoundRobin::new();
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        let picks: Vec<_> = (0..14).map(|_| wrr.pick(&fleet, &d).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn integer_weights_scale_reals_and_keep_integers() {
        assert_eq!(integer_weights(&[5.0, 1.0, 1.0]), vec![5, 1, 1]);
        assert_eq!(integer_weights(&[4.0, 2.0, 0.0]), vec![2, 1, 0]);
        assert_eq!(integer_weights(&[0.5, 0.25]), vec![2, 1]);
        assert_eq!(integer_weights(&[0.0, 0.0]), vec![0, 0]);
        let big = integer_weights(&vec![1.5; 100_000]);
        assert!(big.iter().all(|&w| w == 1));
    }

    #[test]
    fn weight_zero_is_never_picked_and_full_is_skipped() {
        let fleet = Fleet::new();
        fleet.add(Accelerator::new(0, 1).with_weight(3.0)).unwrap();
        fleet.add(Accelerator::new(1, 9).with_weight(0.0)).unwrap();
        fleet.add(Accelerator::new(2, 9).with_weight(1.0)).unwrap();
        let wrr = WeightedRoundRobin::new();
        let d = Decision::new(Demand::new(1, 1, 0).unwrap());
        let picks: Vec<_> = (0..5).map(|_| wrr.pick(&fleet, &d).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 2, 2, 2]);
    }

    proptest! {
        #[test]
        fn grouped_build_equals_nginx(weights in prop::collection::vec(0u64..6, 1..8)) {
            let targets: Vec<_> = weights.iter().enumerate().map(|(i, &w)| (i as Slot, w)).collect();
            let cycle = smooth_cycle(&targets);
            let total: u64 = weights.iter().sum();
            prop_assert_eq!(cycle.len() as u64, total);
            if total > 0 {
                prop_assert_eq!(cycle, nginx(&weights, total as usize));
            }
        }
    }
}
