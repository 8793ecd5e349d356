//! The accelerator registry: an append-only arena of [`AcceleratorState`] records plus
//! a lock-free id index.
//!
//! Routing threads never lock. Records live in an [`Arena`] whose segments are
//! allocated once (segment `k` holds `64 << k` records) and never move, so a slot
//! index, once published, stays valid for the life of the fleet. Registering one
//! accelerator costs O(1) amortised (no copy of the fleet), so registering a
//! 100,000-accelerator fleet one call at a time stays linear.
//!
//! Writers (add, remove, reweigh, health, capacity) serialise on one mutex among
//! themselves; readers see a record once its slot index is published through
//! `published` with release ordering. A removed accelerator keeps its slot as a
//! tombstone (flag cleared) rather than being compacted, so an index held by a
//! routing thread can never point at a different accelerator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::accelerator::{validate_capacity, validate_weight, Accelerator, AcceleratorState};
use crate::arena::Arena;
pub use crate::arena::MAX_SLOTS;
use crate::error::{Result, RouterError};

/// Index of a record in the arena (registration order, never reused).
pub type Slot = u32;

/// Registry of accelerators with live load counters.
pub struct Fleet {
    records: Arena<AcceleratorState>,
    published: AtomicUsize,
    ids: papaya::HashMap<u64, Slot>,
    registered: AtomicUsize,
    epoch: AtomicU64,
    /// Held by writers; counts registered accelerators per capacity value.
    writer: Mutex<CapacityCounts>,
    mixed_capacity: AtomicBool,
}

/// Registered accelerators per capacity value, kept by writers so that "are all
/// capacities equal?" is one atomic read for routing threads.
#[derive(Debug, Default)]
struct CapacityCounts(HashMap<u64, usize>);

impl CapacityCounts {
    fn add(&mut self, capacity: u64) {
        *self.0.entry(capacity).or_default() += 1;
    }

    fn remove(&mut self, capacity: u64) {
        if let Some(count) = self.0.get_mut(&capacity) {
            *count -= 1;
            if *count == 0 {
                self.0.remove(&capacity);
            }
        }
    }

    fn mixed(&self) -> bool {
        self.0.len() > 1
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("registered", &self.len())
            .field("slots", &self.slot_count())
            .finish()
    }
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Fleet {
            records: Arena::new(),
            published: AtomicUsize::new(0),
            ids: papaya::HashMap::new(),
            registered: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            writer: Mutex::new(CapacityCounts::default()),
            mixed_capacity: AtomicBool::new(false),
        }
    }

    fn write_lock(&self) -> MutexGuard<'_, CapacityCounts> {
        // A writer that panicked left no half-made change behind (every change is
        // validated before it starts), so a poisoned lock is safe to take over.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of registered accelerators.
    #[inline]
    pub fn len(&self) -> usize {
        self.registered.load(Ordering::Acquire)
    }

    /// True when no accelerator is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of published slots, tombstones included: valid slots are `0..slot_count()`.
    #[inline]
    pub fn slot_count(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// Bumped on every add, remove, weight and capacity change: strategies that derive
    /// a table from the fleet (hash rings, weighted schedules) rebuild when it moves.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The record in `slot`. Panics if `slot >= slot_count()`.
    #[inline]
    pub fn state(&self, slot: Slot) -> &AcceleratorState {
        self.records.get(slot as usize)
    }

    /// The slot of a registered id.
    #[inline]
    pub fn slot_of(&self, id: u64) -> Result<Slot> {
        self.ids
            .pin()
            .get(&id)
            .copied()
            .ok_or(RouterError::UnknownId(id))
    }

    /// The record of a registered id.
    pub fn get(&self, id: u64) -> Result<&AcceleratorState> {
        self.slot_of(id).map(|slot| self.state(slot))
    }

    /// True if `id` is registered.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.pin().contains_key(&id)
    }

    fn reserve_slot(&self, slot: usize) -> Result<()> {
        self.records.reserve(slot)
    }

    /// Registers one accelerator and returns its slot.
    pub fn add(&self, spec: Accelerator) -> Result<Slot> {
        spec.validate()?;
        let mut counts = self.write_lock();
        if self.contains(spec.id) {
            return Err(RouterError::DuplicateId(spec.id));
        }
        let slot = self.slot_count();
        self.reserve_slot(slot)?;
        self.publish(slot, &spec);
        self.published.store(slot + 1, Ordering::Release);
        self.registered.fetch_add(1, Ordering::AcqRel);
        counts.add(spec.capacity);
        self.changed(&counts);
        Ok(slot as Slot)
    }

    /// Registers many accelerators: all of them, or (on any error) none.
    pub fn add_many(&self, specs: &[Accelerator]) -> Result<std::ops::Range<Slot>> {
        let mut seen = std::collections::HashSet::with_capacity(specs.len());
        for spec in specs {
            spec.validate()?;
            if !seen.insert(spec.id) {
                return Err(RouterError::DuplicateId(spec.id));
            }
        }
        let mut counts = self.write_lock();
        if let Some(spec) = specs.iter().find(|s| self.contains(s.id)) {
            return Err(RouterError::DuplicateId(spec.id));
        }
        let first = self.slot_count();
        if specs.is_empty() {
            return Ok(first as Slot..first as Slot);
        }
        self.reserve_slot(first + specs.len() - 1)?;
        for (offset, spec) in specs.iter().enumerate() {
            self.reserve_slot(first + offset)?;
            self.publish(first + offset, spec);
        }
        self.published.store(first + specs.len(), Ordering::Release);
        self.registered.fetch_add(specs.len(), Ordering::AcqRel);
        for spec in specs {
            counts.add(spec.capacity);
        }
        self.changed(&counts);
        Ok(first as Slot..(first + specs.len()) as Slot)
    }

    fn publish(&self, slot: usize, spec: &Accelerator) {
        self.state(slot as Slot).init(spec);
        self.ids.pin().insert(spec.id, slot as Slot);
    }

    /// Publishes a change: the capacity mix, then the epoch derived tables watch.
    fn changed(&self, counts: &CapacityCounts) {
        self.mixed_capacity.store(counts.mixed(), Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// True when registered accelerators differ in capacity.
    #[inline]
    pub fn has_mixed_capacity(&self) -> bool {
        self.mixed_capacity.load(Ordering::Acquire)
    }

    /// Unregisters an accelerator and returns its slot. Requests in flight on it may
    /// still be released through the slot; routing never picks it again.
    pub fn remove(&self, id: u64) -> Result<Slot> {
        let mut counts = self.write_lock();
        let slot = self.slot_of(id)?;
        let state = self.state(slot);
        state.mark_removed();
        self.ids.pin().remove(&id);
        self.registered.fetch_sub(1, Ordering::AcqRel);
        counts.remove(state.capacity());
        self.changed(&counts);
        Ok(slot)
    }

    /// Marks an accelerator healthy or not; returns its slot.
    pub fn set_healthy(&self, id: u64, healthy: bool) -> Result<Slot> {
        let _guard = self.write_lock();
        let slot = self.slot_of(id)?;
        self.state(slot).set_healthy(healthy);
        Ok(slot)
    }

    /// Changes an accelerator's capacity (>= 1). A capacity below the current load
    /// admits nothing new until the load drains below it.
    pub fn set_capacity(&self, id: u64, capacity: u64) -> Result<Slot> {
        validate_capacity(capacity)?;
        let mut counts = self.write_lock();
        let slot = self.slot_of(id)?;
        let state = self.state(slot);
        counts.remove(state.capacity());
        counts.add(capacity);
        state.set_capacity(capacity);
        self.changed(&counts);
        Ok(slot)
    }

    /// Changes an accelerator's weight (finite, >= 0).
    pub fn set_weight(&self, id: u64, weight: f64) -> Result<Slot> {
        validate_weight(weight)?;
        let counts = self.write_lock();
        let slot = self.slot_of(id)?;
        self.state(slot).set_weight(weight);
        self.changed(&counts);
        Ok(slot)
    }

    /// Registered accelerators with their slots, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &AcceleratorState)> + '_ {
        (0..self.slot_count() as Slot)
            .map(move |slot| (slot, self.state(slot)))
            .filter(|(_, state)| state.is_registered())
    }

    /// Sum of loads over registered accelerators.
    pub fn total_load(&self) -> u64 {
        self.iter().map(|(_, s)| s.load()).sum()
    }

    /// Bytes held by the arena (allocated segments, tombstones included).
    pub fn arena_bytes(&self) -> usize {
        self.records.bytes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fleet of `n` healthy accelerators with ids `0..n`, all of `capacity`.
    pub(crate) fn fleet(n: u64, capacity: u64) -> Fleet {
        let fleet = Fleet::new();
        for id in 0..n {
            fleet.add(Accelerator::new(id, capacity)).unwrap();
        }
        fleet
    }

    #[test]
    fn add_remove_and_lookup() {
        let fleet = Fleet::new();
        assert_eq!(fleet.add(Accelerator::new(10, 5)).unwrap(), 0);
        assert_eq!(fleet.add(Accelerator::new(20, 5)).unwrap(), 1);
        assert_eq!(
            fleet.add(Accelerator::new(10, 5)),
            Err(RouterError::DuplicateId(10))
        );
        assert_eq!(fleet.len(), 2);
        assert_eq!(fleet.remove(10).unwrap(), 0);
        assert_eq!(fleet.remove(10), Err(RouterError::UnknownId(10)));
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet.slot_count(), 2);
        assert_eq!(fleet.iter().map(|(s, _)| s).collect::<Vec<_>>(), vec![1]);
        // Re-adding a removed id takes a fresh slot.
        assert_eq!(fleet.add(Accelerator::new(10, 5)).unwrap(), 2);
    }

    #[test]
    fn add_many_is_all_or_nothing() {
        let fleet = Fleet::new();
        fleet.add(Accelerator::new(3, 1)).unwrap();
        let batch: Vec<_> = (0..5).map(|i| Accelerator::new(i, 1)).collect();
        assert_eq!(fleet.add_many(&batch), Err(RouterError::DuplicateId(3)));
        assert_eq!(fleet.len(), 1);
        let mut bad = vec![Accelerator::new(100, 1), Accelerator::new(101, 0)];
        assert!(fleet.add_many(&bad).is_err());
        bad[1].capacity = 1;
        bad.push(Accelerator::new(100, 1));
        assert_eq!(fleet.add_many(&bad), Err(RouterError::DuplicateId(100)));
        assert_eq!(fleet.len(), 1);
        let range = fleet
            .add_many(
                &(10..1000)
                    .map(|i| Accelerator::new(i, 2))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(range, 1..991);
        assert_eq!(fleet.len(), 991);
        assert_eq!(fleet.get(999).unwrap().capacity(), 2);
    }

    #[test]
    fn setters_validate_before_changing() {
        let fleet = Fleet::new();
        fleet.add(Accelerator::new(1, 4)).unwrap();
        assert!(fleet.set_capacity(1, 0).is_err());
        assert!(fleet.set_weight(1, f64::NAN).is_err());
        assert_eq!(fleet.set_healthy(2, false), Err(RouterError::UnknownId(2)));
        let state = fleet.get(1).unwrap();
        assert_eq!((state.capacity(), state.weight()), (4, 1.0));
        fleet.set_capacity(1, 9).unwrap();
        fleet.set_weight(1, 2.5).unwrap();
        fleet.set_healthy(1, false).unwrap();
        assert_eq!(state.spec().capacity, 9);
        assert_eq!(state.spec().weight, 2.5);
        assert!(!state.is_routable());
    }

    #[test]
    fn capacity_mix_follows_every_change() {
        let fleet = fleet(3, 8);
        assert!(!fleet.has_mixed_capacity());
        fleet.set_capacity(1, 16).unwrap();
        assert!(fleet.has_mixed_capacity());
        fleet.remove(1).unwrap();
        assert!(!fleet.has_mixed_capacity());
        fleet.add(Accelerator::new(9, 4)).unwrap();
        assert!(fleet.has_mixed_capacity());
        fleet.set_capacity(9, 8).unwrap();
        assert!(!fleet.has_mixed_capacity());
    }

    #[test]
    fn one_at_a_time_registration_is_linear() {
        let fleet = Fleet::new();
        for id in 0..100_000 {
            fleet.add(Accelerator::new(id, 10)).unwrap();
        }
        assert_eq!(fleet.len(), 100_000);
        // Segments double, so allocation is within 2x of what is used.
        assert!(fleet.arena_bytes() <= 2 * 64 * 100_000 + 64 * 64);
    }
}
