//! A table derived from the fleet (a hash ring, a weighted schedule) and rebuilt
//! lazily when the fleet's epoch moves.
//!
//! Readers load the current table without locking. The first reader that finds it
//! stale rebuilds it; readers that arrive meanwhile keep using the stale table (if
//! one exists) instead of waiting. Registering many accelerators therefore triggers
//! one rebuild at the next decision, not one per registration.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwapOption, Guard};

/// A table tagged with the fleet epoch it was built from.
#[derive(Debug)]
pub struct Versioned<T> {
    /// The fleet epoch read before the build started.
    pub epoch: u64,
    /// The table.
    pub table: T,
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
    /// The table for `epoch`, building it with `build` if the current one is older.
    pub fn get(&self, epoch: u64, build: impl FnOnce() -> T) -> Guard<Option<Arc<Versioned<T>>>> {
        let current = self.current.load();
        if matches!(&*current, Some(v) if v.epoch == epoch) {
            return current;
        }
        let guard = if current.is_some() {
            match self.rebuilding.try_lock() {
                Ok(guard) => guard,
                Err(_) => return current,
            }
        } else {
            self.rebuilding.lock().unwrap_or_else(|e| e.into_inner())
        };
        let latest = self.current.load();
        if matches!(&*latest, Some(v) if v.epoch == epoch) {
            return latest;
        }
        self.current.store(Some(Arc::new(Versioned {
            epoch,
            table: build(),
        })));
        drop(guard);
        self.current.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn rebuilds_only_when_the_epoch_moves() {
        let table = DerivedTable::default();
        let builds = Cell::new(0);
        let build = |v: u32| {
            builds.set(builds.get() + 1);
            v
        };
        assert_eq!(table.get(1, || build(10)).as_ref().unwrap().table, 10);
        assert_eq!(table.get(1, || build(11)).as_ref().unwrap().table, 10);
        assert_eq!(table.get(2, || build(12)).as_ref().unwrap().table, 12);
        assert_eq!(builds.get(), 2);
    }
}
