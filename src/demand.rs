//! What one routing decision asks of an accelerator: a cost, a priority class, and an
//! optional set of allowed targets.

use crate::accelerator::AcceleratorState;
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};

/// Priority at or above which a request may use the capacity held in reserve.
pub const HIGH_PRIORITY: u32 = 1;

/// The admission side of one request: its cost and how much of each accelerator's
/// capacity it may use.
///
/// Priority is a two-class scheme: a request of priority `>= HIGH_PRIORITY` may fill
/// an accelerator to its capacity; a priority-0 request may fill it only to
/// `capacity - floor(capacity * reserve)`, so high-priority work always finds
/// headroom on a busy fleet. With `reserve = 0` priority has no effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Demand {
    /// Load units the request holds while in flight (>= 1).
    pub cost: u64,
    /// Reserved share for this request's class, in parts per million (0 for high).
    pub reserve_ppm: u32,
}

impl Demand {
    /// A demand for `cost` units at `priority`, given the router's reserve (ppm).
    pub fn new(cost: u64, priority: u32, router_reserve_ppm: u32) -> Result<Self> {
        validate_cost(cost)?;
        let reserve_ppm = if priority >= HIGH_PRIORITY {
            0
        } else {
            router_reserve_ppm
        };
        Ok(Demand { cost, reserve_ppm })
    }

    /// The highest load this demand may leave on `state`.
    #[inline]
    pub fn limit(&self, state: &AcceleratorState) -> u64 {
        state.limit(self.reserve_ppm)
    }

    /// Whether `state` could take this demand right now (advisory: no change).
    #[inline]
    pub fn fits(&self, state: &AcceleratorState) -> bool {
        state.is_routable() && state.load().saturating_add(self.cost) <= self.limit(state)
    }

    /// Takes the demand on `state` if it fits: one atomic check-and-add.
    #[inline]
    pub fn try_take(&self, state: &AcceleratorState) -> bool {
        state.try_acquire(self.cost, self.limit(state))
    }
}

/// A request's cost must be at least one unit.
pub fn validate_cost(cost: u64) -> Result<()> {
    if cost == 0 {
        return Err(RouterError::invalid(
            "cost",
            "cost must be at least 1 (got 0)",
        ));
    }
    Ok(())
}

/// The accelerators one request may go to: a list of slots and a bitset over the
/// fleet's slots for O(1) membership tests.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    slots: Vec<Slot>,
    bits: Vec<u64>,
}

impl Candidates {
    /// Resolves ids to slots; an unknown id is an error (and nothing is built).
    pub fn from_ids(fleet: &Fleet, ids: impl IntoIterator<Item = u64>) -> Result<Self> {
        let mut candidates = Candidates {
            slots: Vec::new(),
            bits: vec![0; fleet.slot_count().div_ceil(64)],
        };
        for id in ids {
            let slot = fleet.slot_of(id)?;
            candidates.insert(slot);
        }
        Ok(candidates)
    }

    /// Resolves a boolean mask over the registered accelerators in registration
    /// order (the order of `Router::loads`): `mask[i]` allows the i-th one. The mask
    /// must have one entry per registered accelerator.
    pub fn from_mask(fleet: &Fleet, mask: &[bool]) -> Result<Self> {
        let registered: Vec<Slot> = fleet.iter().map(|(slot, _)| slot).collect();
        if mask.len() != registered.len() {
            return Err(RouterError::invalid(
                "candidates",
                format!(
                    "a boolean mask needs one entry per registered accelerator ({}), got {}",
                    registered.len(),
                    mask.len()
                ),
            ));
        }
        let allowed = registered
            .into_iter()
            .zip(mask)
            .filter_map(|(slot, &allow)| allow.then_some(slot));
        Ok(Self::from_slots(fleet.slot_count(), allowed))
    }

    /// Builds from slots directly (used by Rust callers that already hold slots).
    pub fn from_slots(slot_count: usize, slots: impl IntoIterator<Item = Slot>) -> Self {
        let mut candidates = Candidates {
            slots: Vec::new(),
            bits: vec![0; slot_count.div_ceil(64)],
        };
        for slot in slots {
            candidates.insert(slot);
        }
        candidates
    }

    fn insert(&mut self, slot: Slot) {
        let (word, bit) = (slot as usize / 64, slot % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.slots.push(slot);
        }
    }

    /// True if `slot` is allowed.
    #[inline]
    pub fn contains(&self, slot: Slot) -> bool {
        self.bits
            .get(slot as usize / 64)
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    }

    /// The allowed slots, each once, in the order given.
    #[inline]
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The ids of the allowed accelerators still registered, in the set's order.
    pub fn registered_ids<'f>(&'f self, fleet: &'f Fleet) -> impl Iterator<Item = u64> + 'f {
        self.slots
            .iter()
            .map(|&slot| fleet.state(slot))
            .filter(|state| state.is_registered())
            .map(|state| state.id())
    }

    /// Number of allowed slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// One routing decision's inputs, as the strategies see them.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    /// Cost and priority class.
    pub demand: Demand,
    /// Hashed affinity key, for the consistent-hashing strategies.
    pub key: Option<u64>,
    /// Allowed targets; `None` means the whole fleet.
    pub candidates: Option<&'a Candidates>,
    /// Chained block hashes of the request's prompt ([`crate::prefix`]), for
    /// cache-aware routing.
    pub prefix: Option<&'a [u64]>,
    /// Hash of the LoRA adapter the request needs ([`crate::hashing::hash_bytes`] of
    /// its name), for the endpoint picker's adapter-affinity scorer.
    pub adapter: Option<u64>,
    /// The caller's clock in nanoseconds, for time-aware strategies (Peak-EWMA);
    /// `None` reads the strategy's own monotonic clock.
    pub now_ns: Option<u64>,
}

impl<'a> Decision<'a> {
    /// A decision over the whole fleet without a key.
    pub fn new(demand: Demand) -> Self {
        Decision {
            demand,
            key: None,
            candidates: None,
            prefix: None,
            adapter: None,
            now_ns: None,
        }
    }

    /// True if `slot` is allowed for this decision.
    #[inline]
    pub fn allows(&self, slot: Slot) -> bool {
        self.candidates.is_none_or(|c| c.contains(slot))
    }

    /// Takes the demand on `slot` if it is allowed and fits.
    #[inline]
    pub fn try_take(&self, fleet: &Fleet, slot: Slot) -> bool {
        self.allows(slot) && self.demand.try_take(fleet.state(slot))
    }

    /// The last resort every strategy shares: the first allowed accelerator, cyclically
    /// from `start`, that takes the demand. `None` means no accelerator can take it.
    pub fn first_fit(&self, fleet: &Fleet, start: usize) -> Option<Slot> {
        match self.candidates {
            Some(c) => {
                let slots = c.slots();
                let n = slots.len();
                (0..n)
                    .map(|i| slots[(start + i) % n.max(1)])
                    .find(|&slot| self.demand.try_take(fleet.state(slot)))
            }
            None => {
                let n = fleet.slot_count();
                (0..n)
                    .map(|i| ((start + i) % n.max(1)) as Slot)
                    .find(|&slot| self.demand.try_take(fleet.state(slot)))
            }
        }
    }

    /// The allowed slots that could take the demand now (advisory: no change).
    pub fn fitting_slots<'f>(&'f self, fleet: &'f Fleet) -> impl Iterator<Item = Slot> + 'f {
        (0..self.domain(fleet))
            .map(|i| self.nth(i))
            .filter(|&slot| self.demand.fits(fleet.state(slot)))
    }

    /// Number of slots a uniform sample is drawn from.
    #[inline]
    pub fn domain(&self, fleet: &Fleet) -> usize {
        self.candidates
            .map_or_else(|| fleet.slot_count(), |c| c.len())
    }

    /// The slot at position `i` of the sampling domain.
    #[inline]
    pub fn nth(&self, i: usize) -> Slot {
        match self.candidates {
            Some(c) => c.slots()[i],
            None => i as Slot,
        }
    }
}
