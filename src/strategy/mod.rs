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
//! | [`ConsistentHash`] | O(1) ring bucket, jump, Maglev | affinity (caches, sessions) |
//! | [`PeakEwma`] | O(1) | replicas whose latency differs or drifts |
//! | [`CacheAware`] | O(replicas) | model-server pools with shared prompt prefixes |
//! | [`EndpointPicker`] | O(replicas) | model-server pools reporting KV-cache use |
//!
//! Strategies are dispatched through the closed enum [`Strategy`], not trait objects,
//! so the hot path is a direct call the compiler can inline.

pub mod cache_aware;
pub mod capacity_sampler;
pub mod consistent_hash;
pub mod derived_table;
pub mod endpoint_picker;
pub mod least_connections;
pub mod peak_ewma;
pub mod power_of_two_choices;
pub mod random;
pub mod round_robin;
pub mod weighted_round_robin;

pub use cache_aware::CacheAware;
pub use consistent_hash::{ConsistentHash, HashKind};
pub use endpoint_picker::EndpointPicker;
pub use least_connections::LeastConnections;
pub use peak_ewma::PeakEwma;
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
    "peak_ewma",
    "cache_aware",
    "endpoint_picker",
];

/// Options of the strategies that have any; each applies to one strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StrategyOptions<'a> {
    /// `consistent_hash`: "ring" (default), "jump" or "maglev".
    pub hash: Option<&'a str>,
    /// `consistent_hash`: bounded-load factor (> 1).
    pub load_bound: Option<f64>,
    /// `peak_ewma`: estimate before an accelerator's first observation, seconds.
    pub default_rtt_s: Option<f64>,
    /// `peak_ewma`: decay time constant, seconds.
    pub decay_s: Option<f64>,
    /// `cache_aware`: least share of the prompt a replica must hold to win on cache.
    pub cache_threshold: Option<f64>,
    /// `cache_aware`: balance guard, absolute load gap.
    pub balance_abs_threshold: Option<u64>,
    /// `cache_aware`: balance guard, relative load gap.
    pub balance_rel_threshold: Option<f64>,
    /// `cache_aware`: prompt block size (bytes of text, or tokens).
    pub block_size: Option<usize>,
    /// `cache_aware`, `endpoint_picker`: most prompt blocks the prefix index remembers.
    pub max_prefix_blocks: Option<usize>,
    /// `endpoint_picker`: scorer weights (queue, KV cache, prefix).
    pub scorer_weights: Option<endpoint_picker::ScorerWeights>,
    /// `endpoint_picker`: KV-cache utilisation at which a replica is filtered out.
    pub kv_cache_limit: Option<f64>,
    /// `endpoint_picker`: pick among the best `top_k` by score.
    pub top_k: Option<usize>,
}

impl StrategyOptions<'_> {
    fn for_cache_aware(&self) -> bool {
        self.cache_threshold.is_some()
            || self.balance_abs_threshold.is_some()
            || self.balance_rel_threshold.is_some()
            || self.block_size.is_some()
            || self.max_prefix_blocks.is_some()
    }

    fn for_endpoint_picker_only(&self) -> bool {
        self.scorer_weights.is_some() || self.kv_cache_limit.is_some() || self.top_k.is_some()
    }

    fn for_affinity_only(&self) -> bool {
        self.cache_threshold.is_some()
            || self.balance_abs_threshold.is_some()
            || self.balance_rel_threshold.is_some()
    }
}

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
    /// See [`PeakEwma`].
    PeakEwma(PeakEwma),
    /// See [`CacheAware`].
    CacheAware(CacheAware),
    /// See [`EndpointPicker`].
    EndpointPicker(EndpointPicker),
}

impl Strategy {
    /// Builds a strategy by name. `hash` ("ring", "jump", "maglev"; default "ring")
    /// and `load_bound` apply to `consistent_hash` only and are refused elsewhere.
    pub fn from_name(name: &str, hash: Option<&str>, load_bound: Option<f64>) -> Result<Self> {
        Self::from_options(
            name,
            &StrategyOptions {
                hash,
                load_bound,
                ..StrategyOptions::default()
            },
        )
    }

    /// Builds a strategy by name with its options; an option the named strategy does
    /// not take is refused, naming both.
    pub fn from_options(name: &str, options: &StrategyOptions<'_>) -> Result<Self> {
        let hashing = options.hash.is_some() || options.load_bound.is_some();
        let latency = options.default_rtt_s.is_some() || options.decay_s.is_some();
        let cache = options.for_cache_aware() || options.for_endpoint_picker_only();
        let hashing = hashing || cache;
        let (strategy, misplaced) = match name {
            "round_robin" => (Strategy::RoundRobin(RoundRobin::new()), hashing || latency),
            "least_connections" => (
                Strategy::LeastConnections(LeastConnections::new()),
                hashing || latency,
            ),
            "p2c" | "power_of_two_choices" => (
                Strategy::PowerOfTwoChoices(PowerOfTwoChoices::new()),
                hashing || latency,
            ),
            "random" => (Strategy::Random(RandomChoice), hashing || latency),
            "weighted_round_robin" => (
                Strategy::WeightedRoundRobin(WeightedRoundRobin::new()),
                hashing || latency,
            ),
            "peak_ewma" => (
                Strategy::PeakEwma(PeakEwma::new(
                    options.default_rtt_s.unwrap_or(peak_ewma::DEFAULT_RTT_S),
                    options.decay_s.unwrap_or(peak_ewma::DEFAULT_DECAY_S),
                )?),
                hashing,
            ),
            "cache_aware" => {
                let defaults = crate::prefix::AffinityConfig::default();
                let config = crate::prefix::AffinityConfig {
                    cache_threshold: options.cache_threshold.unwrap_or(defaults.cache_threshold),
                    balance_abs_threshold: options
                        .balance_abs_threshold
                        .unwrap_or(defaults.balance_abs_threshold),
                    balance_rel_threshold: options
                        .balance_rel_threshold
                        .unwrap_or(defaults.balance_rel_threshold),
                    block_size: options.block_size.unwrap_or(defaults.block_size),
                };
                let max_blocks = options
                    .max_prefix_blocks
                    .unwrap_or(cache_aware::DEFAULT_MAX_BLOCKS);
                (
                    Strategy::CacheAware(CacheAware::new(config, max_blocks)?),
                    options.hash.is_some()
                        || options.load_bound.is_some()
                        || latency
                        || options.for_endpoint_picker_only(),
                )
            }
            "endpoint_picker" => {
                let defaults = endpoint_picker::PickerConfig::default();
                let config = endpoint_picker::PickerConfig {
                    weights: options.scorer_weights.unwrap_or(defaults.weights),
                    kv_cache_limit: options.kv_cache_limit.unwrap_or(defaults.kv_cache_limit),
                    top_k: options.top_k.unwrap_or(defaults.top_k),
                    block_size: options.block_size.unwrap_or(defaults.block_size),
                };
                let max_blocks = options
                    .max_prefix_blocks
                    .unwrap_or(cache_aware::DEFAULT_MAX_BLOCKS);
                (
                    Strategy::EndpointPicker(EndpointPicker::new(config, max_blocks)?),
                    options.hash.is_some()
                        || options.load_bound.is_some()
                        || latency
                        || options.for_affinity_only(),
                )
            }
            "consistent_hash" => {
                let kind = HashKind::parse(options.hash.unwrap_or("ring"))?;
                (
                    Strategy::ConsistentHash(ConsistentHash::new(kind, options.load_bound)?),
                    latency || cache,
                )
            }
            _ => {
                return Err(RouterError::UnknownName {
                    kind: "strategy",
                    name: name.to_owned(),
                    expected: STRATEGY_NAMES,
                })
            }
        };
        if misplaced {
            return Err(RouterError::invalid(
                "strategy options",
                format!(
                    "hash and load_bound apply to consistent_hash only, default_rtt and \
                     decay to peak_ewma only, cache_threshold, balance_abs_threshold, \
                     balance_rel_threshold to cache_aware only, scorer weights, \
                     kv_cache_limit and top_k to endpoint_picker only, block_size and \
                     max_prefix_blocks to those two; {name:?} takes none of the ones given"
                ),
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
            Strategy::PeakEwma(_) => "peak_ewma",
            Strategy::CacheAware(_) => "cache_aware",
            Strategy::EndpointPicker(_) => "endpoint_picker",
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
            Strategy::PeakEwma(s) => s.pick(fleet, decision, rng),
            Strategy::CacheAware(s) => s.pick(fleet, decision),
            Strategy::EndpointPicker(s) => s.pick(fleet, decision, rng),
        }
    }

    /// Must follow load taken on `slot` by anything but [`Self::pick`].
    #[inline]
    pub fn after_take(&self, fleet: &Fleet, slot: Slot, cost: u64) {
        match self {
            Strategy::LeastConnections(s) => s.refresh(fleet, slot),
            Strategy::ConsistentHash(s) => s.on_take(cost),
            _ => {}
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

    /// Must follow the removal of the accelerator in `slot`, which still held
    /// `load` units that will never be released.
    pub fn after_remove(&self, fleet: &Fleet, slot: Slot, load: u64) {
        match self {
            Strategy::LeastConnections(s) => s.refresh(fleet, slot),
            Strategy::ConsistentHash(s) => s.on_release(load),
            Strategy::CacheAware(s) => s.forget(slot),
            Strategy::EndpointPicker(s) => s.forget(slot),
            _ => {}
        }
    }

    /// The prompt block size of a cache-aware strategy (`None` for the others, which
    /// do not look at prompts).
    pub fn prefix_block_size(&self) -> Option<usize> {
        match self {
            Strategy::CacheAware(s) => Some(s.config().block_size),
            Strategy::EndpointPicker(s) => Some(s.config().block_size),
            _ => None,
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
        match self {
            Strategy::LeastConnections(s) => s.sync(fleet, slots),
            Strategy::PeakEwma(s) => s.track(slots),
            Strategy::EndpointPicker(s) => s.track(slots),
            _ => {}
        }
    }

    /// The latency estimate (seconds) a latency-aware strategy holds for `slot`.
    pub fn latency_estimate(&self, slot: Slot, now_ns: Option<u64>) -> Option<f64> {
        match self {
            Strategy::PeakEwma(s) => Some(s.estimate_s(slot, now_ns)),
            _ => None,
        }
    }

    /// Records a replica's reported KV-cache utilisation for the endpoint picker;
    /// validates and ignores it elsewhere.
    pub fn report_kv_utilisation(&self, slot: Slot, utilisation: f64) -> Result<()> {
        match self {
            Strategy::EndpointPicker(s) => s.report_kv_utilisation(slot, utilisation),
            _ => endpoint_picker::validate_kv_utilisation(utilisation),
        }
    }

    /// Records the LoRA adapters (name hashes) a replica reports loaded, for the
    /// endpoint picker; ignored elsewhere.
    pub fn report_adapters(&self, slot: Slot, adapters: &[u64]) {
        if let Strategy::EndpointPicker(s) = self {
            s.report_adapters(slot, adapters);
        }
    }

    /// Feeds an observed latency to a latency-aware strategy; validates and
    /// ignores it elsewhere.
    pub fn observe_latency(&self, slot: Slot, latency_s: f64, now_ns: Option<u64>) -> Result<()> {
        match self {
            Strategy::PeakEwma(s) => s.observe(slot, latency_s, now_ns),
            _ => crate::latency_estimate::validate_latency(latency_s),
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

impl From<PeakEwma> for Strategy {
    fn from(s: PeakEwma) -> Self {
        Strategy::PeakEwma(s)
    }
}

impl From<EndpointPicker> for Strategy {
    fn from(s: EndpointPicker) -> Self {
        Strategy::EndpointPicker(s)
    }
}

impl From<CacheAware> for Strategy {
    fn from(s: CacheAware) -> Self {
        Strategy::CacheAware(s)
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
