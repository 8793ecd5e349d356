//! An endpoint picker for model-server replicas, in the manner of the Gateway API
//! Inference Extension's endpoint picker and llm-d's inference scheduler: filters
//! first, then weighted scorers, then a picker.
//!
//! - **Filters.** A replica must be healthy and have room for the request; replicas
//!   whose reported KV-cache utilisation is at or above `kv_cache_limit` are dropped
//!   too, unless that would drop them all (a saturated fleet still serves).
//! - **Scorers**, each in `[0, 1]`, higher is better, combined with weights:
//!   queue (`1 - load / capacity`), KV cache (`1 - reported utilisation`), prefix
//!   match (the share of the prompt's blocks the replica is known to hold, from the
//!   same [`PrefixIndex`] cache-aware routing uses), and LoRA adapter affinity (1 if
//!   the replica reports the request's adapter loaded, so it need not load it).
//! - **Picker.** With `top_k = 1` the best score wins (ties broken by a rotating
//!   counter, never "the first"); with `top_k > 1` one of the `top_k` best is drawn
//!   with probability proportional to its score, which spreads load among nearly
//!   equal replicas.
//!
//! Replicas report KV-cache utilisation through [`EndpointPicker::report_kv_utilisation`]
//! (the router's `report_kv_utilisation`). A decision scores every allowed replica:
//! O(replicas), for model-server pools rather than whole fleets.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crossbeam_utils::CachePadded;
use rand::Rng;

use crate::arena::Arena;
use crate::demand::Decision;
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};
use crate::prefix::PrefixIndex;

/// Weights of the scorers (each finite and >= 0, not all 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorerWeights {
    /// Queue depth: `1 - load / capacity`.
    pub queue: f64,
    /// KV cache: `1 - reported utilisation`.
    pub kv_cache: f64,
    /// Prefix match: matched blocks / prompt blocks.
    pub prefix: f64,
    /// LoRA adapter already loaded: 1 or 0.
    pub adapter: f64,
}

impl Default for ScorerWeights {
    fn default() -> Self {
        // llm-d's default profile weighs prefix, queue and KV-cache scorers alike.
        ScorerWeights {
            queue: 1.0,
            kv_cache: 1.0,
            prefix: 1.0,
            adapter: 1.0,
        }
    }
}

impl ScorerWeights {
    /// The defaults with any given weight replaced; `None` when none is given.
    pub fn overriding(
        queue: Option<f64>,
        kv_cache: Option<f64>,
        prefix: Option<f64>,
        adapter: Option<f64>,
    ) -> Option<Self> {
        if queue.is_none() && kv_cache.is_none() && prefix.is_none() && adapter.is_none() {
            return None;
        }
        let defaults = ScorerWeights::default();
        Some(ScorerWeights {
            queue: queue.unwrap_or(defaults.queue),
            kv_cache: kv_cache.unwrap_or(defaults.kv_cache),
            prefix: prefix.unwrap_or(defaults.prefix),
            adapter: adapter.unwrap_or(defaults.adapter),
        })
    }
}

/// Configuration of the endpoint picker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PickerConfig {
    /// Scorer weights.
    pub weights: ScorerWeights,
    /// Replicas at or above this KV-cache utilisation are filtered out (in `(0, 1]`).
    pub kv_cache_limit: f64,
    /// 1: best score; more: score-weighted draw among the best `top_k`.
    pub top_k: usize,
    /// Prompt block size (bytes of text, or tokens).
    pub block_size: usize,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            weights: ScorerWeights::default(),
            kv_cache_limit: 0.95,
            top_k: 1,
            block_size: crate::prefix::DEFAULT_BLOCK_BYTES,
        }
    }
}

impl PickerConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let w = &self.weights;
        for (what, value) in [
            ("queue_weight", w.queue),
            ("kv_cache_weight", w.kv_cache),
            ("prefix_weight", w.prefix),
            ("adapter_weight", w.adapter),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(RouterError::invalid(
                    what,
                    format!("{what} must be a finite number >= 0 (got {value})"),
                ));
            }
        }
        if w.queue + w.kv_cache + w.prefix + w.adapter <= 0.0 {
            return Err(RouterError::invalid(
                "scorer weights",
                "at least one scorer weight must be > 0",
            ));
        }
        if !(self.kv_cache_limit > 0.0 && self.kv_cache_limit <= 1.0) {
            return Err(RouterError::invalid(
                "kv_cache_limit",
                format!(
                    "kv_cache_limit must be in (0, 1] (got {})",
                    self.kv_cache_limit
                ),
            ));
        }
        if self.top_k == 0 {
            return Err(RouterError::invalid(
                "top_k",
                "top_k must be at least 1 (got 0)",
            ));
        }
        crate::prefix::validate_block_size(self.block_size)
    }
}

/// Checks a reported KV-cache utilisation: a finite number in `[0, 1]`.
pub fn validate_kv_utilisation(utilisation: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&utilisation) {
        return Err(RouterError::invalid(
            "kv_utilisation",
            format!("kv_utilisation must be in [0, 1] (got {utilisation})"),
        ));
    }
    Ok(())
}

/// Filter → score → pick selection over model-server replicas.
#[derive(Debug)]
pub struct EndpointPicker {
    config: PickerConfig,
    // Reported KV-cache utilisation per slot, in parts per million. Boxed: the
    // arena's segment table would make every `Strategy` value large.
    kv_ppm: Box<Arena<AtomicU32>>,
    // Hashes of the adapters each replica reports loaded, sorted; swapped whole.
    adapters: Box<Arena<ArcSwapOption<Vec<u64>>>>,
    index: PrefixIndex,
    tie_break: CachePadded<AtomicU64>,
}

impl EndpointPicker {
    /// A picker with `config` and a prefix index of at most `max_blocks` blocks.
    pub fn new(config: PickerConfig, max_blocks: usize) -> Result<Self> {
        config.validate()?;
        Ok(EndpointPicker {
            config,
            kv_ppm: Box::new(Arena::new()),
            adapters: Box::new(Arena::new()),
            index: PrefixIndex::new(max_blocks)?,
            tie_break: CachePadded::new(AtomicU64::new(0)),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PickerConfig {
        &self.config
    }

    /// Makes room for `slots` (called on registration); a new replica reports 0.
    pub fn track(&self, slots: std::ops::Range<Slot>) {
        for slot in slots {
            if self.kv_ppm.reserve(slot as usize).is_ok() {
                self.kv_ppm.get(slot as usize).store(0, Ordering::Release);
            }
            if self.adapters.reserve(slot as usize).is_ok() {
                self.adapters.get(slot as usize).store(None);
            }
        }
    }

    /// Records a replica's reported KV-cache utilisation (`[0, 1]`).
    pub fn report_kv_utilisation(&self, slot: Slot, utilisation: f64) -> Result<()> {
        validate_kv_utilisation(utilisation)?;
        if let Some(cell) = self.kv_ppm.try_get(slot as usize) {
            cell.store((utilisation * 1e6).round() as u32, Ordering::Release);
        }
        Ok(())
    }

    /// Records the LoRA adapters (name hashes) a replica reports loaded, replacing
    /// its previous report.
    pub fn report_adapters(&self, slot: Slot, adapters: &[u64]) {
        let mut sorted = adapters.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        if let Some(cell) = self.adapters.try_get(slot as usize) {
            cell.store(Some(Arc::new(sorted)));
        }
    }

    /// True if `slot` reported `adapter` loaded.
    pub fn has_adapter(&self, slot: Slot, adapter: u64) -> bool {
        self.adapters.try_get(slot as usize).is_some_and(|cell| {
            cell.load()
                .as_ref()
                .is_some_and(|a| a.binary_search(&adapter).is_ok())
        })
    }

    /// The last reported KV-cache utilisation of `slot`.
    pub fn kv_utilisation(&self, slot: Slot) -> f64 {
        self.kv_ppm
            .try_get(slot as usize)
            .map_or(0.0, |c| c.load(Ordering::Acquire) as f64 / 1e6)
    }

    /// Drops a removed replica from the prefix index.
    pub fn forget(&self, slot: Slot) {
        self.index.forget_slot(slot);
    }

    /// Filters, scores and picks a replica, then takes the demand on it.
    pub fn pick<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        let blocks = decision.prefix.unwrap_or(&[]);
        let matches = self.index.matches(blocks);
        let fitting: Vec<Slot> = decision.fitting_slots(fleet).collect();
        let below_limit: Vec<Slot> = fitting
            .iter()
            .copied()
            .filter(|&slot| self.kv_utilisation(slot) < self.config.kv_cache_limit)
            .collect();
        let pool = if below_limit.is_empty() {
            fitting
        } else {
            below_limit
        };
        let w = &self.config.weights;
        let mut scored: Vec<(f64, Slot)> = pool
            .iter()
            .map(|&slot| {
                let state = fleet.state(slot);
                let queue = 1.0 - (state.utilisation()).min(1.0);
                let kv = 1.0 - self.kv_utilisation(slot);
                let prefix = matches.share(slot);
                let adapter = match decision.adapter {
                    Some(adapter) if self.has_adapter(slot, adapter) => 1.0,
                    _ => 0.0,
                };
                let score =
                    w.queue * queue + w.kv_cache * kv + w.prefix * prefix + w.adapter * adapter;
                (score, slot)
            })
            .collect();
        // Best first; equal scores keep a rotated order, so ties take turns.
        if !scored.is_empty() {
            let rotation = self.tie_break.fetch_add(1, Ordering::Relaxed) as usize;
            let len = scored.len();
            scored.rotate_left(rotation % len);
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let order = self.order(&scored, rng);
        for slot in order {
            if decision.demand.try_take(fleet.state(slot)) {
                if !blocks.is_empty() {
                    self.index.record(blocks, slot);
                }
                return Some(slot);
            }
        }
        decision.first_fit(fleet, 0)
    }

    /// The order in which to try the scored replicas (best first, or a
    /// score-weighted draw among the best `top_k` first).
    fn order<R: Rng + ?Sized>(&self, scored: &[(f64, Slot)], rng: &mut R) -> Vec<Slot> {
        let mut order: Vec<Slot> = scored.iter().map(|&(_, s)| s).collect();
        let k = self.config.top_k.min(order.len());
        if k > 1 {
            let total: f64 = scored[..k].iter().map(|&(score, _)| score.max(0.0)).sum();
            if total > 0.0 {
                let mut draw = rng.random_range(0.0..total);
                let chosen = scored[..k]
                    .iter()
                    .position(|&(score, _)| {
                        draw -= score.max(0.0);
                        draw < 0.0
                    })
                    .unwrap_or(0);
                order.swap(0, chosen);
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::Demand;
    use crate::fleet::tests::fleet;
    use crate::prefix::prefix_block_hashes;
    use rand::{rngs::SmallRng, SeedableRng};

    fn picker(config: PickerConfig, n: u32) -> EndpointPicker {
        let p = EndpointPicker::new(config, 10_000).unwrap();
        p.track(0..n);
        p
    }

    fn route(p: &EndpointPicker, fleet: &Fleet, blocks: &[u64]) -> Slot {
        let mut rng = SmallRng::seed_from_u64(3);
        let d = Decision {
            prefix: Some(blocks),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        };
        p.pick(fleet, &d, &mut rng).unwrap()
    }

    #[test]
    fn kv_cache_scorer_and_filter() {
        let fleet = fleet(3, 100);
        let p = picker(PickerConfig::default(), 3);
        p.report_kv_utilisation(0, 0.97).unwrap(); // filtered out
        p.report_kv_utilisation(1, 0.6).unwrap();
        p.report_kv_utilisation(2, 0.1).unwrap();
        assert_eq!(route(&p, &fleet, &[]), 2);
        for slot in 0..3 {
            p.report_kv_utilisation(slot, 0.99).unwrap();
        }
        // All above the limit: the filter steps aside rather than refuse.
        assert!(route(&p, &fleet, &[]) < 3);
    }

    #[test]
    fn prefix_scorer_keeps_affinity_and_queue_scorer_breaks_it() {
        let fleet = fleet(2, 10);
        let config = PickerConfig {
            weights: ScorerWeights {
                queue: 2.0,
                ..ScorerWeights::default()
            },
            ..PickerConfig::default()
        };
        let p = picker(config, 2);
        let blocks =
            prefix_block_hashes("tenant system prompt ".repeat(20).as_bytes(), 64).unwrap();
        let home = route(&p, &fleet, &blocks);
        assert_eq!(route(&p, &fleet, &blocks), home);
        // With queue weighted 2, a busy home (9 of 10 after this request: score
        // 2 × 0.1 + 1 + 1) loses to an idle replica (2 × 1 + 1 + 0).
        fleet.state(home).store_load(9);
        assert_ne!(route(&p, &fleet, &blocks), home);
    }

    #[test]
    fn adapter_scorer_prefers_a_replica_with_the_adapter_loaded() {
        let fleet = fleet(3, 100);
        let p = picker(PickerConfig::default(), 3);
        let adapter = crate::hashing::hash_bytes(b"sql-lora");
        p.report_adapters(2, &[crate::hashing::hash_bytes(b"chat-lora"), adapter]);
        let mut rng = SmallRng::seed_from_u64(4);
        let d = Decision {
            adapter: Some(adapter),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        };
        for _ in 0..5 {
            assert_eq!(p.pick(&fleet, &d, &mut rng), Some(2));
        }
        p.report_adapters(2, &[]);
        assert!(!p.has_adapter(2, adapter));
    }

    #[test]
    fn ties_rotate_instead_of_picking_the_first() {
        let fleet = fleet(4, 1000);
        let p = picker(PickerConfig::default(), 4);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..8 {
            let slot = route(&p, &fleet, &[]);
            fleet.state(slot).release(1).unwrap();
            seen.insert(slot);
        }
        assert!(seen.len() > 1, "{seen:?}");
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let bad = |f: fn(&mut PickerConfig)| {
            let mut c = PickerConfig::default();
            f(&mut c);
            EndpointPicker::new(c, 10).unwrap_err().to_string()
        };
        assert!(bad(|c| c.weights.queue = -1.0).contains("queue_weight"));
        assert!(bad(|c| c.weights = ScorerWeights {
            queue: 0.0,
            kv_cache: 0.0,
            prefix: 0.0,
            adapter: 0.0,
        })
        .contains("weight"));
        assert!(bad(|c| c.weights.adapter = f64::NAN).contains("adapter_weight"));
        assert!(bad(|c| c.kv_cache_limit = 0.0).contains("kv_cache_limit"));
        assert!(bad(|c| c.top_k = 0).contains("top_k"));
        assert!(bad(|c| c.block_size = 0).contains("block_size"));
        let p = picker(PickerConfig::default(), 1);
        assert!(p
            .report_kv_utilisation(0, 1.5)
            .unwrap_err()
            .to_string()
            .contains("kv_utilisation"));
        assert!(p.report_kv_utilisation(0, f64::NAN).is_err());
    }
}
