//! One accelerator's live state: a 32-byte record of atomics.
//!
//! The record never moves once registered, so routing threads read it through a plain
//! reference while writers change capacity, weight or health. Records are 32 bytes,
//! two to a cache line: a 10,000-accelerator fleet (320 KB) then stays in a core's L2
//! cache, which is what random-access strategies such as P2C pay for on every
//! decision. Two threads only share a line when they pick adjacent accelerators at
//! the same instant, which random and load-aware selection over a large fleet makes
//! rare; the measured single-thread gain outweighs it (doc/benchmarks.md).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Result, RouterError};

const HEALTHY: u32 = 1;
const REGISTERED: u32 = 2;

/// What a caller registers: the static description of an accelerator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accelerator {
    /// Caller-chosen identity, unique within a fleet.
    pub id: u64,
    /// Load units the accelerator can hold at once (`load + cost <= capacity`).
    pub capacity: u64,
    /// Relative share for weighted strategies; `0` means "never chosen by weight".
    pub weight: f64,
    /// Unhealthy accelerators are skipped by every strategy.
    pub healthy: bool,
}

impl Accelerator {
    /// A healthy accelerator of weight 1.
    pub fn new(id: u64, capacity: u64) -> Self {
        Accelerator {
            id,
            capacity,
            weight: 1.0,
            healthy: true,
        }
    }

    /// Sets the weight (builder style).
    pub fn with_weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// Checks the fields that have a domain: capacity > 0, weight finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        validate_capacity(self.capacity)?;
        validate_weight(self.weight)
    }
}

/// The largest capacity a record holds (capacity is stored in 32 bits).
pub const MAX_CAPACITY: u64 = u32::MAX as u64;

/// Capacity must be at least one load unit and at most [`MAX_CAPACITY`].
pub fn validate_capacity(capacity: u64) -> Result<()> {
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(RouterError::invalid(
            "capacity",
            format!("capacity must be in [1, {MAX_CAPACITY}] (got {capacity})"),
        ));
    }
    Ok(())
}

/// Weight must be a finite number >= 0.
pub fn validate_weight(weight: f64) -> Result<()> {
    if !weight.is_finite() || weight < 0.0 {
        return Err(RouterError::invalid(
            "weight",
            format!("weight must be a finite number >= 0 (got {weight})"),
        ));
    }
    Ok(())
}

/// The live record of one registered accelerator.
#[derive(Debug, Default)]
#[repr(align(32))]
pub struct AcceleratorState {
    id: AtomicU64,
    load: AtomicU64,
    weight_bits: AtomicU64,
    capacity: AtomicU32,
    flags: AtomicU32,
}

impl AcceleratorState {
    /// Fills a fresh record. Called by the registry before the record is published.
    pub(crate) fn init(&self, spec: &Accelerator) {
        self.id.store(spec.id, Ordering::Relaxed);
        self.load.store(0, Ordering::Relaxed);
        self.capacity.store(spec.capacity as u32, Ordering::Relaxed);
        self.weight_bits
            .store(spec.weight.to_bits(), Ordering::Relaxed);
        let health = if spec.healthy { HEALTHY } else { 0 };
        self.flags.store(REGISTERED | health, Ordering::Release);
    }

    /// The accelerator's id.
    #[inline]
    pub fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// Load units currently held.
    #[inline]
    pub fn load(&self) -> u64 {
        self.load.load(Ordering::Relaxed)
    }

    /// Current capacity.
    #[inline]
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed) as u64
    }

    /// Current weight.
    #[inline]
    pub fn weight(&self) -> f64 {
        f64::from_bits(self.weight_bits.load(Ordering::Relaxed))
    }

    /// True while registered (not removed).
    #[inline]
    pub fn is_registered(&self) -> bool {
        self.flags.load(Ordering::Acquire) & REGISTERED != 0
    }

    /// True while registered and healthy: the only state in which it takes requests.
    #[inline]
    pub fn is_routable(&self) -> bool {
        self.flags.load(Ordering::Acquire) == REGISTERED | HEALTHY
    }

    /// True if marked healthy (whether or not still registered).
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.flags.load(Ordering::Acquire) & HEALTHY != 0
    }

    /// Load relative to capacity.
    #[inline]
    pub fn utilisation(&self) -> f64 {
        self.load() as f64 / self.capacity() as f64
    }

    /// The highest load a request of this class may leave behind: the capacity less
    /// the part of it reserved for high priority (see [`crate::demand::Demand`]).
    #[inline]
    pub fn limit(&self, reserve_ppm: u32) -> u64 {
        let capacity = self.capacity();
        if reserve_ppm == 0 {
            return capacity;
        }
        // capacity < 2^32 and reserve_ppm < 2^20: the product fits in u64.
        let reserved = capacity * reserve_ppm as u64 / 1_000_000;
        capacity - reserved
    }

    /// Adds `cost` to the load if and only if the result stays within `limit` and the
    /// accelerator is routable: check and increment are one atomic step, so no
    /// interleaving of threads ever takes the load past `limit`.
    #[inline]
    pub fn try_acquire(&self, cost: u64, limit: u64) -> bool {
        if !self.is_routable() {
            return false;
        }
        self.load
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |load| {
                let next = load.checked_add(cost)?;
                (next <= limit).then_some(next)
            })
            .is_ok()
    }

    /// [`Self::try_acquire`] for a caller that has just read the load as `observed`:
    /// one compare-exchange when nothing changed since, the full loop otherwise.
    #[inline]
    pub fn try_acquire_observed(&self, observed: u64, cost: u64, limit: u64) -> bool {
        match observed.checked_add(cost) {
            Some(next) if next <= limit => {
                self.load
                    .compare_exchange(observed, next, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                    || self.try_acquire(cost, limit)
            }
            _ => false,
        }
    }

    /// Takes `cost` off the load; refuses (and changes nothing) if that would go
    /// below zero.
    #[inline]
    pub fn release(&self, cost: u64) -> Result<()> {
        self.load
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |load| {
                load.checked_sub(cost)
            })
            .map(|_| ())
            .map_err(|load| RouterError::ReleaseUnderflow {
                id: self.id(),
                load,
                cost,
            })
    }

    /// Puts back load taken by a release that is being rolled back.
    pub(crate) fn restore(&self, cost: u64) {
        self.load.fetch_add(cost, Ordering::AcqRel);
    }

    pub(crate) fn set_capacity(&self, capacity: u64) {
        self.capacity.store(capacity as u32, Ordering::Release);
    }

    pub(crate) fn set_weight(&self, weight: f64) {
        self.weight_bits.store(weight.to_bits(), Ordering::Release);
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        if healthy {
            self.flags.fetch_or(HEALTHY, Ordering::AcqRel);
        } else {
            self.flags.fetch_and(!HEALTHY, Ordering::AcqRel);
        }
    }

    pub(crate) fn mark_removed(&self) {
        self.flags.fetch_and(!REGISTERED, Ordering::AcqRel);
    }

    /// Overwrites the load. Only for simulations that publish a stale view of loads.
    pub fn store_load(&self, load: u64) {
        self.load.store(load, Ordering::Release);
    }

    /// A consistent-enough copy for reporting.
    pub fn spec(&self) -> Accelerator {
        Accelerator {
            id: self.id(),
            capacity: self.capacity(),
            weight: self.weight(),
            healthy: self.is_healthy(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_records_fill_one_cache_line() {
        assert_eq!(std::mem::size_of::<AcceleratorState>(), 32);
        assert_eq!(std::mem::align_of::<AcceleratorState>(), 32);
    }

    #[test]
    fn acquire_respects_limit_and_health() {
        let state = AcceleratorState::default();
        state.init(&Accelerator::new(7, 10));
        assert!(state.try_acquire(6, 10));
        assert!(!state.try_acquire(5, 10));
        assert!(state.try_acquire(4, 10));
        assert_eq!(state.load(), 10);
        state.release(10).unwrap();
        state.set_healthy(false);
        assert!(!state.try_acquire(1, 10));
    }

    #[test]
    fn release_below_zero_is_refused_without_change() {
        let state = AcceleratorState::default();
        state.init(&Accelerator::new(1, 10));
        assert!(state.try_acquire(3, 10));
        let err = state.release(4).unwrap_err();
        assert_eq!(
            err,
            RouterError::ReleaseUnderflow {
                id: 1,
                load: 3,
                cost: 4
            }
        );
        assert_eq!(state.load(), 3);
    }

    #[test]
    fn limit_keeps_reserve() {
        let state = AcceleratorState::default();
        state.init(&Accelerator::new(1, 100));
        assert_eq!(state.limit(0), 100);
        assert_eq!(state.limit(100_000), 90);
        assert_eq!(state.limit(1_000_000), 0);
    }

    #[test]
    fn validation_names_the_field() {
        assert!(Accelerator::new(1, MAX_CAPACITY + 1).validate().is_err());
        assert!(Accelerator::new(1, MAX_CAPACITY).validate().is_ok());
        assert!(Accelerator::new(1, 0)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("capacity"));
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            let err = Accelerator::new(1, 1)
                .with_weight(bad)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("weight"), "{err}");
        }
    }
}
