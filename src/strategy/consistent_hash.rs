//! Consistent hashing: the same key goes to the same accelerator while the fleet is
//! stable, and only about 1/n of keys move when an accelerator joins or leaves.
//!
//! Three tables, chosen by [`HashKind`]:
//! - `Ring`: a ketama ring of virtual nodes (Karger et al. 1997; libketama), 160 points
//!   per accelerator, fewer on very large fleets so the ring stays under 4 M points;
//! - `Jump`: Lamping and Veach's jump hash (2014) over the registered accelerators in
//!   registration order: no table at all, but only appending or removing the last
//!   accelerator is minimally disruptive;
//! - `Maglev`: Google's Maglev table (Eisenbud et al., NSDI 2016), weighted as Envoy
//!   does: O(1) lookups and near-perfect balance.
//!
//! With a load bound `c` (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
//! Bounded Loads", 2018) no accelerator takes more than `ceil(c * m * capacity_i /
//! total_capacity)` of the `m` load units in flight: a hot key spills to the next
//! accelerator along the ring (or the next table entry) instead of overloading one.
//! Unhealthy or full accelerators are skipped the same way, and stay in the table so
//! their keys come back when they recover.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::demand::Decision;
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};
use crate::hashing::{
    hash_u64, jump_hash, maglev_table_size, HashRing, MaglevNode, MaglevTable, RingNode,
    DEFAULT_VNODES,
};
use crate::strategy::derived_table::DerivedTable;

/// Table entries (or distinct ring nodes) tried before falling back to a scan.
const WALK_LIMIT: usize = 64;
/// Most ring points kept; vnodes per accelerator shrink on larger fleets.
const MAX_RING_POINTS: usize = 4 << 20;

/// Which consistent-hash table to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// ketama ring of virtual nodes.
    Ring,
    /// Lamping–Veach jump hash.
    Jump,
    /// Maglev lookup table.
    Maglev,
}

impl HashKind {
    /// Every accepted name.
    pub const NAMES: &'static [&'static str] = &["ring", "jump", "maglev"];

    /// Parses `"ring"`, `"jump"` or `"maglev"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "ring" | "ketama" => Ok(HashKind::Ring),
            "jump" => Ok(HashKind::Jump),
            "maglev" => Ok(HashKind::Maglev),
            _ => Err(RouterError::UnknownName {
                kind: "hash kind",
                name: name.to_owned(),
                expected: Self::NAMES,
            }),
        }
    }
}

#[derive(Debug)]
enum Table {
    Ring(HashRing),
    Jump(Vec<Slot>),
    Maglev(MaglevTable),
}

#[derive(Debug)]
struct HashTable {
    table: Table,
    total_capacity: u64,
}

/// Consistent-hash selection, optionally with bounded loads.
#[derive(Debug)]
pub struct ConsistentHash {
    kind: HashKind,
    load_bound: Option<f64>,
    table: DerivedTable<HashTable>,
    total_load: CachePadded<AtomicU64>,
}

/// Validates a bounded-load factor: finite and > 1.
pub fn validate_load_bound(c: f64) -> Result<()> {
    if !c.is_finite() || c <= 1.0 {
        return Err(RouterError::invalid(
            "load_bound",
            format!("load_bound must be a finite number > 1 (got {c})"),
        ));
    }
    Ok(())
}

fn build(kind: HashKind, fleet: &Fleet) -> HashTable {
    let members: Vec<(Slot, u64, f64, u64)> = fleet
        .iter()
        .map(|(slot, s)| (slot, s.id(), s.weight(), s.capacity()))
        .collect();
    let total_capacity = members.iter().map(|m| m.3).sum();
    let table = match kind {
        HashKind::Ring => {
            let vnodes = (MAX_RING_POINTS / members.len().max(1)).clamp(1, DEFAULT_VNODES as usize);
            let nodes: Vec<RingNode> = members
                .iter()
                .map(|&(slot, id, _, _)| RingNode {
                    key: id,
                    index: slot,
                    vnodes: vnodes as u32,
                })
                .collect();
            Table::Ring(HashRing::build(&nodes))
        }
        HashKind::Jump => Table::Jump(members.iter().map(|m| m.0).collect()),
        HashKind::Maglev => {
            let nodes: Vec<MaglevNode> = members
                .iter()
                .map(|&(slot, id, weight, _)| MaglevNode {
                    key: id,
                    index: slot,
                    weight,
                })
                .collect();
            let size = maglev_table_size(nodes.len());
            Table::Maglev(
                MaglevTable::build(&nodes, size).expect("maglev_table_size returns a valid prime"),
            )
        }
    };
    HashTable {
        table,
        total_capacity,
    }
}

impl ConsistentHash {
    /// A consistent-hash strategy; `load_bound` (> 1) turns on bounded loads.
    pub fn new(kind: HashKind, load_bound: Option<f64>) -> Result<Self> {
        if let Some(c) = load_bound {
            validate_load_bound(c)?;
        }
        Ok(ConsistentHash {
            kind,
            load_bound,
            table: DerivedTable::default(),
            total_load: CachePadded::new(AtomicU64::new(0)),
        })
    }

    /// The table kind.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// The bounded-load factor, if any.
    pub fn load_bound(&self) -> Option<f64> {
        self.load_bound
    }

    /// Must be told of load taken outside [`Self::pick`] (an ordered route), so
    /// bounded loads track the load in flight.
    #[inline]
    pub fn on_take(&self, cost: u64) {
        if self.load_bound.is_some() {
            self.total_load.fetch_add(cost, Ordering::AcqRel);
        }
    }

    /// Must be told of every release so bounded loads track the load in flight.
    #[inline]
    pub fn on_release(&self, cost: u64) {
        if self.load_bound.is_some() {
            let _ = self
                .total_load
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |l| {
                    Some(l.saturating_sub(cost))
                });
        }
    }

    /// Picks the accelerator for `decision.key` (hashed), walking on past those that
    /// cannot take it. A decision without a key is routed as key 0.
    pub fn pick(&self, fleet: &Fleet, decision: &Decision<'_>) -> Option<Slot> {
        let guard = self.table.get(fleet, || build(self.kind, fleet));
        let table = guard.as_ref()?;
        let key = decision.key.unwrap_or(0);
        let hashed = hash_u64(key);
        let bound = self.load_bound.map(|c| {
            let in_flight = self.total_load.load(Ordering::Acquire) + decision.demand.cost;
            (c, in_flight, table.table.total_capacity.max(1))
        });
        let accepts = |slot: Slot| -> bool {
            if !decision.allows(slot) {
                return false;
            }
            let state = fleet.state(slot);
            if let Some((c, in_flight, total_capacity)) = bound {
                let share = c * in_flight as f64 * state.capacity() as f64 / total_capacity as f64;
                if (state.load() + decision.demand.cost) as f64 > share.ceil() {
                    return false;
                }
            }
            decision.demand.try_take(state)
        };
        let walked = match &table.table.table {
            Table::Ring(ring) => ring
                .walk(hashed)
                .take(WALK_LIMIT)
                .find(|&slot| accepts(slot)),
            Table::Maglev(maglev) => {
                let m = maglev.len();
                let start = (hashed % m.max(1) as u64) as usize;
                (0..m.min(WALK_LIMIT))
                    .map(|i| maglev.entry((start + i) % m))
                    .find(|&slot| accepts(slot))
            }
            Table::Jump(members) => {
                let n = members.len() as u32;
                let mut probe = key;
                (0..n.min(WALK_LIMIT as u32)).find_map(|_| {
                    let bucket = jump_hash(probe, n).ok()?;
                    probe = hash_u64(probe.wrapping_add(1));
                    let slot = members[bucket as usize];
                    accepts(slot).then_some(slot)
                })
            }
        };
        // Past the walk limit the fleet is nearly full or mostly excluded: scan it
        // once from the key's position, within the bound, then (the bound being a
        // balance goal, not a capacity) without it.
        let start = (hashed % decision.domain(fleet).max(1) as u64) as usize;
        let picked = walked
            .or_else(|| {
                let n = decision.domain(fleet);
                (0..n)
                    .map(|i| decision.nth((start + i) % n))
                    .find(|&slot| accepts(slot))
            })
            .or_else(|| {
                self.load_bound
                    .and_then(|_| decision.first_fit(fleet, start))
            });
        if picked.is_some() && self.load_bound.is_some() {
            self.total_load
                .fetch_add(decision.demand.cost, Ordering::AcqRel);
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::Demand;
    use crate::fleet::tests::fleet;

    fn keyed(key: u64) -> Decision<'static> {
        Decision {
            key: Some(key),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        }
    }

    #[test]
    fn same_key_same_target_for_every_kind() {
        for kind in [HashKind::Ring, HashKind::Jump, HashKind::Maglev] {
            let fleet = fleet(50, 1000);
            let ch = ConsistentHash::new(kind, None).unwrap();
            for key in 0..200 {
                let first = ch.pick(&fleet, &keyed(key)).unwrap();
                assert_eq!(ch.pick(&fleet, &keyed(key)), Some(first), "{kind:?}");
            }
        }
    }

    #[test]
    fn removal_moves_only_the_removed_targets_keys() {
        for kind in [HashKind::Ring, HashKind::Maglev] {
            let fleet = fleet(40, 1_000_000);
            let ch = ConsistentHash::new(kind, None).unwrap();
            let before: Vec<_> = (0..5000)
                .map(|k| ch.pick(&fleet, &keyed(k)).unwrap())
                .collect();
            fleet.remove(7).unwrap();
            let mut moved = 0;
            for (k, &b) in before.iter().enumerate() {
                let after = ch.pick(&fleet, &keyed(k as u64)).unwrap();
                if b != 7 && after != b {
                    moved += 1;
                }
                assert_ne!(after, 7);
            }
            // Maglev may move a few extra keys; a ring moves none.
            assert!(moved <= 5000 / 40, "{kind:?} moved {moved}");
        }
    }

    #[test]
    fn unhealthy_target_is_skipped_and_keys_return() {
        let fleet = fleet(10, 1000);
        let ch = ConsistentHash::new(HashKind::Ring, None).unwrap();
        let home = ch.pick(&fleet, &keyed(42)).unwrap();
        fleet.set_healthy(home as u64, false).unwrap();
        let away = ch.pick(&fleet, &keyed(42)).unwrap();
        assert_ne!(away, home);
        fleet.set_healthy(home as u64, true).unwrap();
        assert_eq!(ch.pick(&fleet, &keyed(42)), Some(home));
    }

    #[test]
    fn bounded_load_spills_a_hot_key() {
        let fleet = fleet(10, 1000);
        let ch = ConsistentHash::new(HashKind::Ring, Some(1.25)).unwrap();
        let mut per_target = [0u64; 10];
        for _ in 0..1000 {
            per_target[ch.pick(&fleet, &keyed(7)).unwrap() as usize] += 1;
        }
        // ceil(1.25 * 1000 / 10) = 125 is the most any target may hold.
        assert!(per_target.iter().all(|&n| n <= 125), "{per_target:?}");
        assert_eq!(per_target.iter().sum::<u64>(), 1000);
        let unbounded = ConsistentHash::new(HashKind::Ring, None).unwrap();
        let fleet2 = fleet_clone_loads(10);
        let home = unbounded.pick(&fleet2, &keyed(7)).unwrap();
        for _ in 0..99 {
            assert_eq!(unbounded.pick(&fleet2, &keyed(7)), Some(home));
        }
    }

    fn fleet_clone_loads(n: u64) -> Fleet {
        fleet(n, 1000)
    }

    #[test]
    fn bad_names_and_bounds() {
        assert!(HashKind::parse("rendezvous")
            .unwrap_err()
            .to_string()
            .contains("rendezvous"));
        for bad in [1.0, 0.5, f64::NAN] {
            assert!(ConsistentHash::new(HashKind::Ring, Some(bad)).is_err());
        }
    }
}
