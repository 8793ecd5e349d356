//! Cache-aware routing for fleets of model servers: a request goes to the replica
//! most likely to hold its prompt prefix in KV cache, unless load says otherwise.
//!
//! Each decision hashes the prompt into chained blocks ([`crate::prefix`]), asks the
//! [`PrefixIndex`] which replicas served the longest run of those blocks, and applies
//! SGLang's rule ([`choose_replica`]): the balance guard first, then the longest
//! match if it covers at least `cache_threshold` of the prompt, else the least
//! utilised replica (misses spread by a rotating tie-break, never "the first"). The
//! chosen replica takes the request with the usual atomic check-and-add; the index
//! then records that it now holds the prompt's blocks.
//!
//! A decision looks at every allowed replica (O(n) for n replicas): this strategy is
//! for pools of model-server replicas (8–64 per model), not 10,000-accelerator fleets.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::demand::Decision;
use crate::error::Result;
use crate::fleet::{Fleet, Slot};
use crate::prefix::{choose_replica, AffinityCandidate, AffinityConfig, PrefixIndex};

/// Default bound on the blocks the index remembers (about 75 MiB when full).
pub const DEFAULT_MAX_BLOCKS: usize = 1 << 20;

/// Replicas tried when a chosen one is taken by a racing router.
const ATTEMPTS: usize = 4;

/// Prefix-cache-aware selection.
#[derive(Debug)]
pub struct CacheAware {
    config: AffinityConfig,
    index: PrefixIndex,
    tie_break: CachePadded<AtomicU64>,
}

impl CacheAware {
    /// A cache-aware selector with `config` and an index of at most `max_blocks`.
    pub fn new(config: AffinityConfig, max_blocks: usize) -> Result<Self> {
        config.validate()?;
        Ok(CacheAware {
            config,
            index: PrefixIndex::new(max_blocks)?,
            tie_break: CachePadded::new(AtomicU64::new(0)),
        })
    }

    /// The decision rule's configuration.
    pub fn config(&self) -> &AffinityConfig {
        &self.config
    }

    /// The prefix index.
    pub fn index(&self) -> &PrefixIndex {
        &self.index
    }

    /// Drops a removed replica from the index.
    pub fn forget(&self, slot: Slot) {
        self.index.forget_slot(slot);
    }

    /// Picks a replica for the decision's prompt blocks (`decision.prefix`; a
    /// decision without a prompt is a cache miss).
    pub fn pick(&self, fleet: &Fleet, decision: &Decision<'_>) -> Option<Slot> {
        let blocks = decision.prefix.unwrap_or(&[]);
        let matches = self.index.matches(blocks);
        let mut candidates: Vec<AffinityCandidate> = decision
            .fitting_slots(fleet)
            .map(|slot| {
                let state = fleet.state(slot);
                AffinityCandidate {
                    slot,
                    load: state.load(),
                    capacity: state.capacity(),
                    matched_blocks: matches.blocks(slot),
                }
            })
            .collect();
        for _ in 0..ATTEMPTS {
            let tie_break = self.tie_break.fetch_add(1, Ordering::Relaxed);
            let choice = choose_replica(&self.config, &candidates, blocks.len(), tie_break)?;
            if decision.demand.try_take(fleet.state(choice.slot)) {
                if !blocks.is_empty() {
                    self.index.record(blocks, choice.slot);
                }
                return Some(choice.slot);
            }
            candidates.retain(|c| c.slot != choice.slot);
        }
        decision.first_fit(fleet, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::Demand;
    use crate::fleet::tests::fleet;
    use crate::prefix::prefix_block_hashes;

    fn prompt(text: &str) -> Vec<u64> {
        prefix_block_hashes(text.as_bytes(), 64).unwrap()
    }

    fn routed(ca: &CacheAware, fleet: &Fleet, blocks: &[u64]) -> Slot {
        let decision = Decision {
            prefix: Some(blocks),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        };
        ca.pick(fleet, &decision).unwrap()
    }

    #[test]
    fn repeated_prefixes_stay_on_their_replica_and_misses_spread() {
        let fleet = fleet(4, 1000);
        let ca = CacheAware::new(AffinityConfig::default(), 10_000).unwrap();
        let system = "You are a helpful assistant for tenant ".repeat(8);
        let homes: Vec<Slot> = (0..4)
            .map(|t| {
                routed(
                    &ca,
                    &fleet,
                    &prompt(&format!("{system}{t:04}{}", "x".repeat(300))),
                )
            })
            .collect();
        let mut distinct = homes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "first misses spread: {homes:?}");
        for round in 0..5 {
            for (t, &home) in homes.iter().enumerate() {
                let text = format!("{system}{t:04}{}question {round}", "x".repeat(300));
                assert_eq!(routed(&ca, &fleet, &prompt(&text)), home);
            }
        }
    }

    #[test]
    fn the_balance_guard_overrides_affinity() {
        let fleet = fleet(2, 1000);
        let ca = CacheAware::new(AffinityConfig::default(), 10_000).unwrap();
        let blocks = prompt(&"shared system prompt ".repeat(40));
        let home = routed(&ca, &fleet, &blocks);
        fleet.state(home).store_load(200);
        assert_ne!(routed(&ca, &fleet, &blocks), home);
    }

    #[test]
    fn removed_replicas_are_forgotten() {
        let fleet = fleet(3, 1000);
        let ca = CacheAware::new(AffinityConfig::default(), 10_000).unwrap();
        let blocks = prompt(&"document ".repeat(100));
        let home = routed(&ca, &fleet, &blocks);
        fleet.remove(home as u64).unwrap();
        ca.forget(home);
        assert!(ca
            .index()
            .longest_match(&blocks)
            .iter()
            .all(|&(s, _)| s != home));
        assert_ne!(routed(&ca, &fleet, &blocks), home);
    }
}
