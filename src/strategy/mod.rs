//! Selection strategies, one per file. Each picks a slot *and* takes the request's
//! load on it in one atomic check-and-add, honours health and an optional candidate
//! set, and returns `None` only when no allowed accelerator can take the request.
//!
//! | strategy | decision cost | when |
//! |---|---|---|
//! | [`RoundRobin`] | O(1) | identical targets, uniform requests |
//! | [`LeastConnections`] | O(1) read + O(log n) update | exact balance, one router |
//! | [`PowerOfTwoChoices`] | O(1) | default: near-optimal balance, robust to stale load |
//! | [`RandomChoice`] | O(1) | baseline |
//! | [`WeightedRoundRobin`] | O(1) | heterogeneous targets with known relative speed |
//! | [`ConsistentHash`] | O(log n) ring, O(1) jump/Maglev | affinity (caches, sessions) |
//!
//! Strategies are dispatched through the closed enum [`Strategy`], not trait objects,
//! so the hot path is a direct call the compiler can inline.

pub mod capacity_sampler;
pub mod consistent_hash;
pub mod derived_table;
pub mod least_connections;
pub mod power_of_two_choices;
pub mod random;
pub mod round_robin;
pub mod weighted_round_robin;

pub use consistent_hash::{ConsistentHash, HashKind};
pub use least_connections::LeastConnections;
pub use power_of_two_choices::PowerOfTwoChoices;
pub use random::RandomChoice;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

use rand::Rng;

use crate::demand::Decision;
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};

/// Every strategy name [`Strategy::from_name`] accepts.
pub const STRATEGY_NAMES: &[&str] = &[
    "round_robin",
    "least_connections",
    "p2c",
    "random",
    "weighted_round_robin",
    "consistent_hash",
];

/// One of the selection strategies.
#[derive(Debug)]
pub enum Strategy {
    /// See [`RoundRobin`].
    RoundRobin(RoundRobin),
    /// See [`LeastConnections`].
    LeastConnections(LeastConnections),
    /// See [`PowerOfTwoChoices`].
    PowerOfTwoChoices(PowerOfTwoChoices),
    /// See [`RandomChoice`].
    Random(RandomChoice),
    /// See [`WeightedRoundRobin`].
    WeightedRoundRobin(WeightedRoundRobin),
    /// See [`ConsistentHash`].
    ConsistentHash(ConsistentHash),
}

impl Strategy {
    /// Builds a strategy by name. `hash` ("ring", "jump", "maglev"; default "ring")
    /// and `load_bound` apply to `consistent_hash` only and are refused elsewhere.
    pub fn from_name(name: &str, hash: Option<&str>, load_bound: Option<f64>) -> Result<Self> {
        let strategy = match name {
            "round_robin" => Strategy::RoundRobin(RoundRobin::new()),
            "least_connections" => Strategy::LeastConnections(LeastConnections::new()),
            "p2c" | "power_of_two_choices" => Strategy::PowerOfTwoChoices(PowerOfTwoChoices::new()),
            "random" => Strategy::Random(RandomChoice),
            "weighted_round_robin" => Strategy::WeightedRoundRobin(WeightedRoundRobin::new()),
            "consistent_hash" => {
                let kind = HashKind::parse(hash.unwrap_or("ring"))?;
                return Ok(Strategy::ConsistentHash(ConsistentHash::new(
                    kind, load_bound,
                )?));
            }
            _ => {
                return Err(RouterError::UnknownName {
                    kind: "strategy",
                    name: name.to_owned(),
                    expected: STRATEGY_NAMES,
                })
            }
        };
        if hash.is_some() || load_bound.is_some() {
            return Err(RouterError::invalid(
                "strategy options",
                format!("hash and load_bound apply to consistent_hash only, not {name:?}"),
            ));
        }
        Ok(strategy)
    }

    /// The strategy's canonical name.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::RoundRobin(_) => "round_robin",
            Strategy::LeastConnections(_) => "least_connections",
            Strategy::PowerOfTwoChoices(_) => "p2c",
            Strategy::Random(_) => "random",
            Strategy::WeightedRoundRobin(_) => "weighted_round_robin",
            Strategy::ConsistentHash(_) => "consistent_hash",
        }
    }

    /// True for strategies that route by key.
    pub fn uses_key(&self) -> bool {
        matches!(self, Strategy::ConsistentHash(_))
    }

    /// Picks a slot and takes the demand on it, or `None` if nothing allowed fits.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        match self {
            Strategy::RoundRobin(s) => s.pick(fleet, decision),
            Strategy::LeastConnections(s) => s.pick(fleet, decision),
            Strategy::PowerOfTwoChoices(s) => s.pick(fleet, decision, rng),
            Strategy::Random(s) => s.pick(fleet, decision, rng),
            Strategy::WeightedRoundRobin(s) => s.pick(fleet, decision),
            Strategy::ConsistentHash(s) => s.pick(fleet, decision),
        }
    }

    /// Must follow every release of load on `slot`.
    #[inline]
    pub fn after_release(&self, fleet: &Fleet, slot: Slot, cost: u64) {
        match self {
            Strategy::LeastConnections(s) => s.refresh(fleet, slot),
            Strategy::ConsistentHash(s) => s.on_release(cost),
            _ => {}
        }
    }

    /// Must follow the removal of an accelerator that still held `load` units, which
    /// will never be released.
    pub fn after_forget(&self, load: u64) {
        if let Strategy::ConsistentHash(s) = self {
            s.on_release(load);
        }
    }

    /// Must follow a change of health, capacity or registration of `slot`.
    pub fn after_change(&self, fleet: &Fleet, slot: Slot) {
        if let Strategy::LeastConnections(s) = self {
            s.refresh(fleet, slot);
        }
    }

    /// Bytes held by the strategy's own index (least connections' tree).
    pub fn index_bytes(&self) -> usize {
        match self {
            Strategy::LeastConnections(s) => s.bytes(),
            _ => 0,
        }
    }

    /// Must follow the registration of `slots`.
    pub fn after_add(&self, fleet: &Fleet, slots: std::ops::Range<Slot>) {
        if let Strategy::LeastConnections(s) = self {
            s.sync(fleet, slots);
        }
    }
}

impl From<RoundRobin> for Strategy {
    fn from(s: RoundRobin) -> Self {
        Strategy::RoundRobin(s)
    }
}

impl From<LeastConnections> for Strategy {
    fn from(s: LeastConnections) -> Self {
        Strategy::LeastConnections(s)
    }
}

impl From<PowerOfTwoChoices> for Strategy {
    fn from(s: PowerOfTwoChoices) -> Self {
        Strategy::PowerOfTwoChoices(s)
    }
}

impl From<RandomChoice> for Strategy {
    fn from(s: RandomChoice) -> Self {
        Strategy::Random(s)
    }
}

impl From<WeightedRoundRobin> for Strategy {
    fn from(s: WeightedRoundRobin) -> Self {
        Strategy::WeightedRoundRobin(s)
    }
}

impl From<ConsistentHash> for Strategy {
    fn from(s: ConsistentHash) -> Self {
        Strategy::ConsistentHash(s)
    }
}

impl<T: Into<Strategy>> From<Box<T>> for Strategy {
    fn from(boxed: Box<T>) -> Self {
        (*boxed).into()
    }
}
