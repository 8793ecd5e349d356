//! A table derived from the fleet (a hash ring, a weighted schedule, an alias table)
//! and rebuilt lazily when the fleet's epoch moves.
//!
//! Readers load the current table without locking. A rebuild costs O(n), so it is
//! amortised over decisions rather than paid on every fleet change: once the fleet
//! has changed, the stale table keeps serving for up to `slots / 8` decisions
//! ([`DerivedTable::patience`]), then the next decision rebuilds it. Registering an
//! accelerator at a time while routing therefore costs O(1) amortised per decision
//! (no O(n²) total), on a small fleet the table is rebuilt at once, and a fresh
//! table costs nothing extra to read. A stale table is always safe to use: every
//! strategy re-checks health and capacity on the live record, so a removed
//! accelerator is skipped and a new one is only left out until the rebuild.
//! While one thread rebuilds, the others keep using the stale table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwapOption, Guard};

use crate::fleet::Fleet;

/// A table tagged with the fleet epoch it was built from.
#[derive(Debug)]
pub struct Versioned<T> {
    /// The fleet epoch read before the build started.
    pub epoch: u64,
    /// The table.
    pub table: T,
    /// Decisions served since the fleet moved past `epoch`.
    stale_uses: AtomicU64,
}

/// Lazily rebuilt, lock-free-to-read derived table.
#[derive(Debug)]
pub struct DerivedTable<T> {
    current: ArcSwapOption<Versioned<T>>,
    rebuilding: Mutex<()>,
}

impl<T> Default for DerivedTable<T> {
    fn default() -> Self {
        DerivedTable {
            current: ArcSwapOption::empty(),
            rebuilding: Mutex::new(()),
        }
    }
}

impl<T> DerivedTable<T> {
    /// Decisions a stale table may serve on a fleet of `slots` slots.
    pub fn patience(slots: usize) -> u64 {
        slots as u64 / 8
    }

    /// The table for `fleet`, building it with `build` when there is none, or when
    /// the fleet changed and the stale table has used up its patience.
    pub fn get(
        &self,
        fleet: &Fleet,
        build: impl FnOnce() -> T,
    ) -> Guard<Option<Arc<Versioned<T>>>> {
        let epoch = fleet.epoch();
        let current = self.current.load();
        let guard = match &*current {
            Some(v) if v.epoch == epoch => return current,
            Some(v) => {
                let uses = v.stale_uses.fetch_add(1, Ordering::Relaxed);
                if uses < Self::patience(fleet.slot_count()) {
                    return current;
                }
                match self.rebuilding.try_lock() {
                    Ok(guard) => guard,
                    Err(_) => return current,
                }
            }
            None => self.rebuilding.lock().unwrap_or_else(|e| e.into_inner()),
        };
        let latest = self.current.load();
        if matches!(&*latest, Some(v) if v.epoch == epoch) {
            return latest;
        }
        self.current.store(Some(Arc::new(Versioned {
            epoch,
            table: build(),
            stale_uses: AtomicU64::new(0),
        })));
        drop(guard);
        self.current.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accelerator::Accelerator;
    use std::cell::Cell;

    #[test]
    fn rebuilds_at_once_on_a_small_fleet() {
        let fleet = Fleet::new();
        let table = DerivedTable::default();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            fleet.len()
        };
        assert_eq!(table.get(&fleet, build).as_ref().unwrap().table, 0);
        assert_eq!(table.get(&fleet, build).as_ref().unwrap().table, 0);
        fleet.add(Accelerator::new(1, 1)).unwrap();
        assert_eq!(table.get(&fleet, build).as_ref().unwrap().table, 1);
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn large_fleets_amortise_rebuilds_over_decisions() {
        let fleet = Fleet::new();
        fleet
            .add_many(
                &(0..800)
                    .map(|id| Accelerator::new(id, 1))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let table = DerivedTable::default();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            fleet.len()
        };
        table.get(&fleet, build);
        // Interleave 1,000 registrations with 1,000 decisions.
        for id in 800..1800 {
            fleet.add(Accelerator::new(id, 1)).unwrap();
            table.get(&fleet, build);
        }
        // Each rebuild waits for slots/8 (at least 100) stale decisions.
        assert!(builds.get() <= 11, "{} rebuilds", builds.get());
        let seen = table.get(&fleet, build).as_ref().unwrap().table;
        assert!(seen >= 1600, "table saw {seen} accelerators");
    }
}
