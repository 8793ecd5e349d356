//! The cache-affinity decision: which replica a request goes to, given each
//! candidate's load and how much of the request's prefix it is known to hold.
//!
//! The rule is the one of SGLang's cache-aware router (`sgl-router`,
//! `src/policies/cache_aware.rs`), with llm-d's block-hash match
//! (gateway-api-inference-extension, `plugins/multi/prefix`) in place of SGLang's
//! approximate radix tree:
//!
//! 1. **Balance guard.** If the candidates' loads are imbalanced by both measures,
//!    `max_load - min_load > balance_abs_threshold` *and*
//!    `max_load > balance_rel_threshold * min_load`, the cache is ignored and the
//!    least utilised candidate wins: cache affinity must never pile work onto a
//!    replica that is already far behind. Both tests must trip, so a small absolute
//!    gap on an idle fleet (3 vs 1) or a small relative gap on a busy one
//!    (1000 vs 960) does not override affinity. As in SGLang, the guard compares
//!    raw loads (requests or tokens in flight), whatever the capacities.
//! 2. **Cache hit.** Otherwise, if the best match ratio `matched_blocks /
//!    total_blocks` is at least `cache_threshold`, the candidate with the longest
//!    match wins, the least utilised among equal matches.
//! 3. **Cache miss.** Otherwise the least utilised candidate wins. SGLang sends a
//!    miss to the replica with the smallest tree; a fixed choice (say "the first
//!    candidate") is the known failure mode where every new prefix lands on one
//!    replica, which then also wins every later hit. Here a miss goes by load, and
//!    equally utilised candidates are told apart by the caller's `tie_break` value
//!    (a random number, or a round-robin counter), so a burst of misses on an idle
//!    fleet spreads evenly instead of landing on one replica.
//!
//! Utilisation is `load / capacity`, compared exactly (cross-multiplied in `u128`);
//! a candidate with capacity 0 counts as full. The rule is pure: it takes plain
//! numbers, not the fleet, so it can be tested on its own, and it neither checks
//! nor takes capacity: the caller passes the candidates that may take the request
//! and places it with its usual atomic check-and-add, falling back if that fails.

use std::cmp::Ordering;

use crate::error::{Result, RouterError};
use crate::prefix::block_hash::validate_block_size;

/// Default block size for byte input ([`super::prefix_block_hashes`]): 64 bytes,
/// about 16 tokens at the ~4 bytes per token of English BPE text (llm-d's
/// estimate), i.e. one vLLM KV block.
pub const DEFAULT_BLOCK_BYTES: usize = 64;

/// Default block size for token input ([`super::prefix_block_hashes_tokens`]):
/// 16 tokens, vLLM's default KV block size, so router blocks line up with the
/// servers' cache blocks.
pub const DEFAULT_BLOCK_TOKENS: usize = 16;

/// The knobs of the affinity rule. Build with struct update syntax over
/// [`AffinityConfig::default`] and check with [`AffinityConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffinityConfig {
    /// Smallest match ratio (matched / total blocks) that counts as a hit, in
    /// `[0, 1]`. Default 0.5 (SGLang's `--cache-threshold` default).
    pub cache_threshold: f64,
    /// The balance guard's absolute gap, `max_load - min_load`, in load units.
    /// Default 32.
    pub balance_abs_threshold: u64,
    /// The balance guard's ratio, `max_load / min_load`, at least 1. Default 1.5.
    pub balance_rel_threshold: f64,
    /// Block size in the units of the hashed input: bytes for text (default
    /// [`DEFAULT_BLOCK_BYTES`] = 64), tokens for token ids (use
    /// [`DEFAULT_BLOCK_TOKENS`] = 16, see [`AffinityConfig::for_tokens`]). At least 1.
    pub block_size: usize,
}

impl Default for AffinityConfig {
    /// The defaults for byte (text) input.
    fn default() -> Self {
        AffinityConfig {
            cache_threshold: 0.5,
            balance_abs_threshold: 32,
            balance_rel_threshold: 1.5,
            block_size: DEFAULT_BLOCK_BYTES,
        }
    }
}

impl AffinityConfig {
    /// The defaults for token-id input: as [`Default`], with 16-token blocks.
    pub fn for_tokens() -> Self {
        AffinityConfig {
            block_size: DEFAULT_BLOCK_TOKENS,
            ..Self::default()
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`RouterError::InvalidArgument`] naming the first bad field:
    /// `cache_threshold` (not a finite number in `[0, 1]`), `balance_rel_threshold`
    /// (not a finite number ≥ 1) or `block_size` (0).
    pub fn validate(&self) -> Result<()> {
        let c = self.cache_threshold;
        if !(0.0..=1.0).contains(&c) {
            return Err(RouterError::invalid(
                "cache_threshold",
                format!("cache_threshold must be a finite number in [0, 1] (got {c})"),
            ));
        }
        let r = self.balance_rel_threshold;
        if !r.is_finite() || r < 1.0 {
            return Err(RouterError::invalid(
                "balance_rel_threshold",
                format!("balance_rel_threshold must be a finite number >= 1 (got {r})"),
            ));
        }
        validate_block_size(self.block_size)
    }
}

/// One replica the request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityCandidate {
    /// The replica's slot (returned as is in the choice).
    pub slot: u32,
    /// Load in flight, in the same units as `capacity`.
    pub load: u64,
    /// Capacity; 0 counts as full.
    pub capacity: u64,
    /// Leading blocks of the request the replica is known to hold
    /// ([`super::PrefixIndex::longest_match`]); 0 if none.
    pub matched_blocks: usize,
}

/// Which branch of the rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityReason {
    /// The balance guard tripped: least utilised, cache ignored.
    Imbalanced,
    /// The best match reached `cache_threshold`: longest match.
    CacheHit,
    /// No match good enough: least utilised.
    CacheMiss,
}

/// The rule's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityChoice {
    /// The chosen candidate's slot.
    pub slot: u32,
    /// Why it was chosen.
    pub reason: AffinityReason,
    /// The chosen candidate's match, capped at the request's block count.
    pub matched_blocks: usize,
}

/// Utilisation order: `a.load / a.capacity` against `b.load / b.capacity`, exact;
/// capacity 0 is above every real utilisation.
fn by_utilisation(a: &AffinityCandidate, b: &AffinityCandidate) -> Ordering {
    match (a.capacity == 0, b.capacity == 0) {
        (true, true) => a.load.cmp(&b.load),
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => (u128::from(a.load) * u128::from(b.capacity))
            .cmp(&(u128::from(b.load) * u128::from(a.capacity))),
    }
}

/// The least utilised of `pool`; among equals, the `tie_break % ties`-th in order.
fn least_utilised<'a, I>(pool: I, tie_break: u64) -> Option<&'a AffinityCandidate>
where
    I: Iterator<Item = &'a AffinityCandidate> + Clone,
{
    let best = pool.clone().min_by(|a, b| by_utilisation(a, b))?;
    let is_tie = |c: &&AffinityCandidate| by_utilisation(c, best) == Ordering::Equal;
    let ties = pool.clone().filter(is_tie).count() as u64;
    pool.filter(is_tie).nth((tie_break % ties) as usize)
}

/// Picks the replica for a request of `total_blocks` whole blocks among
/// `candidates`, by the rule in the module docs; `None` only if there are no
/// candidates.
///
/// `tie_break` chooses among candidates that the rule cannot tell apart (equal
/// utilisation, and equal match on a hit): pass a random `u64` or an incrementing
/// counter, never a constant. `config` should have passed
/// [`AffinityConfig::validate`]. Matches above `total_blocks` are capped to it; a
/// request with no whole block (`total_blocks == 0`) is always a miss, and so is
/// a best match of 0 blocks, whatever `cache_threshold`.
///
/// Cost: a few passes over `candidates`, no allocation.
pub fn choose_replica(
    config: &AffinityConfig,
    candidates: &[AffinityCandidate],
    total_blocks: usize,
    tie_break: u64,
) -> Option<AffinityChoice> {
    debug_assert!(config.validate().is_ok(), "{config:?}");
    let min_load = candidates.iter().map(|c| c.load).min()?;
    let max_load = candidates.iter().map(|c| c.load).max()?;
    let matched = |c: &AffinityCandidate| c.matched_blocks.min(total_blocks);
    let choice = |c: &AffinityCandidate, reason| AffinityChoice {
        slot: c.slot,
        reason,
        matched_blocks: matched(c),
    };

    let imbalanced = max_load - min_load > config.balance_abs_threshold
        && max_load as f64 > config.balance_rel_threshold * min_load as f64;
    if imbalanced {
        return least_utilised(candidates.iter(), tie_break)
            .map(|c| choice(c, AffinityReason::Imbalanced));
    }

    let best = candidates.iter().map(matched).max()?;
    if best > 0 && best as f64 >= config.cache_threshold * total_blocks as f64 {
        let longest = candidates.iter().filter(|c| matched(c) == best);
        return least_utilised(longest, tie_break).map(|c| choice(c, AffinityReason::CacheHit));
    }
    least_utilised(candidates.iter(), tie_break).map(|c| choice(c, AffinityReason::CacheMiss))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::{prefix_block_hashes, PrefixIndex};
    use proptest::prelude::*;

    fn cand(slot: u32, load: u64, matched_blocks: usize) -> AffinityCandidate {
        AffinityCandidate {
            slot,
            load,
            capacity: 100,
            matched_blocks,
        }
    }

    fn pick(candidates: &[AffinityCandidate], total: usize) -> AffinityChoice {
        choose_replica(&AffinityConfig::default(), candidates, total, 0).unwrap()
    }

    /// A small fleet that routes text with the index and the rule, as a router
    /// would: match, choose, take the load, record.
    struct Replicas {
        config: AffinityConfig,
        index: PrefixIndex,
        loads: Vec<u64>,
        counter: u64,
    }

    impl Replicas {
        fn new(n: usize) -> Self {
            Replicas {
                config: AffinityConfig::default(),
                index: PrefixIndex::new(100_000).unwrap(),
                loads: vec![0; n],
                counter: 0,
            }
        }

        fn route(&mut self, prompt: &[u8]) -> AffinityChoice {
            let blocks = prefix_block_hashes(prompt, self.config.block_size).unwrap();
            let matches = self.index.longest_match(&blocks);
            let candidates: Vec<AffinityCandidate> = (0..self.loads.len() as u32)
                .map(|slot| AffinityCandidate {
                    slot,
                    load: self.loads[slot as usize],
                    capacity: 1000,
                    matched_blocks: matches.iter().find(|m| m.0 == slot).map_or(0, |m| m.1),
                })
                .collect();
            self.counter += 1;
            let choice =
                choose_replica(&self.config, &candidates, blocks.len(), self.counter).unwrap();
            self.loads[choice.slot as usize] += 1;
            self.index.record(&blocks, choice.slot);
            choice
        }
    }

    /// `bytes` pseudo-random lowercase letters, a different text for every seed.
    fn document(seed: u8, bytes: usize) -> Vec<u8> {
        (0..bytes as u64)
            .map(|i| {
                b'a' + (xxhash_rust::xxh3::xxh3_64(&[&[seed][..], &i.to_le_bytes()].concat()) % 26)
                    as u8
            })
            .collect()
    }

    #[test]
    fn repeated_prefixes_stay_on_their_replica() {
        let mut fleet = Replicas::new(8);
        let docs: Vec<Vec<u8>> = (0..24).map(|d| document(d, 64 * 20)).collect();
        let homes: Vec<u32> = docs.iter().map(|d| fleet.route(d).slot).collect();
        for round in 0..5 {
            for (d, doc) in docs.iter().enumerate() {
                // The same document with a new question: 20 of 21 blocks shared.
                let prompt = [doc.as_slice(), &document(100 + round, 64)].concat();
                let choice = fleet.route(&prompt);
                assert_eq!(choice.slot, homes[d], "doc {d} round {round}");
                assert_eq!(choice.reason, AffinityReason::CacheHit);
                assert_eq!(choice.matched_blocks, 20);
            }
        }
        // The first requests, all misses on an idle fleet, spread 3 per replica.
        let mut per_replica = [0; 8];
        homes.iter().for_each(|&s| per_replica[s as usize] += 1);
        assert_eq!(per_replica, [3; 8]);
    }

    #[test]
    fn a_growing_conversation_follows_its_replica() {
        let mut fleet = Replicas::new(4);
        let mut conversation = document(1, 64 * 4);
        let home = fleet.route(&conversation).slot;
        for turn in 0..6 {
            // Each turn doubles the conversation at most: the match ratio stays >= 0.5.
            conversation.extend(document(turn, 64 * 3));
            assert_eq!(fleet.route(&conversation).slot, home, "turn {turn}");
        }
    }

    #[test]
    fn misses_spread_over_equally_loaded_replicas() {
        let config = AffinityConfig::default();
        let candidates: Vec<_> = (0..4).map(|s| cand(s, 10, 0)).collect();
        let mut counts = [0; 4];
        for counter in 0..400 {
            let choice = choose_replica(&config, &candidates, 8, counter).unwrap();
            assert_eq!(choice.reason, AffinityReason::CacheMiss);
            counts[choice.slot as usize] += 1;
        }
        assert_eq!(counts, [100; 4]);
        // A miss goes to the least utilised replica, not to the first.
        let loaded = [cand(0, 50, 0), cand(1, 20, 0), cand(2, 30, 0)];
        assert_eq!(pick(&loaded, 8).slot, 1);
    }

    #[test]
    fn utilisation_not_raw_load_decides() {
        let small = AffinityCandidate {
            slot: 0,
            load: 10,
            capacity: 100,
            matched_blocks: 0,
        };
        let large = AffinityCandidate {
            slot: 1,
            load: 15,
            capacity: 1000,
            matched_blocks: 0,
        };
        let broken = AffinityCandidate {
            slot: 2,
            load: 0,
            capacity: 0,
            matched_blocks: 0,
        };
        assert_eq!(pick(&[small, large, broken], 4).slot, 1);
        assert_eq!(pick(&[broken, small], 4).slot, 0);
    }

    #[test]
    fn a_hit_takes_the_longest_match_then_the_least_loaded() {
        let candidates = [cand(0, 5, 3), cand(1, 30, 8), cand(2, 20, 8), cand(3, 0, 0)];
        let choice = pick(&candidates, 10);
        assert_eq!(
            choice,
            AffinityChoice {
                slot: 2,
                reason: AffinityReason::CacheHit,
                matched_blocks: 8
            }
        );
        // Equal matches and loads: the tie-break spreads them.
        let tied = [cand(0, 5, 6), cand(1, 5, 6), cand(2, 0, 2)];
        let config = AffinityConfig::default();
        let slots: Vec<u32> = (0..4)
            .map(|t| choose_replica(&config, &tied, 10, t).unwrap().slot)
            .collect();
        assert_eq!(slots, [0, 1, 0, 1]);
    }

    #[test]
    fn the_cache_threshold_separates_hits_from_misses() {
        let candidates = [cand(0, 10, 5), cand(1, 0, 0)];
        assert_eq!(pick(&candidates, 10).reason, AffinityReason::CacheHit); // 0.5
        assert_eq!(pick(&candidates, 11).reason, AffinityReason::CacheMiss); // 0.45
        assert_eq!(pick(&candidates, 11).slot, 1);
        // No block at all, or no match, is a miss even at threshold 0.
        let anything = AffinityConfig {
            cache_threshold: 0.0,
            ..AffinityConfig::default()
        };
        let none = [cand(0, 10, 0), cand(1, 0, 0)];
        for (candidates, total) in [(&none, 10), (&candidates, 0)] {
            let choice = choose_replica(&anything, candidates, total, 0).unwrap();
            assert_eq!((choice.slot, choice.reason), (1, AffinityReason::CacheMiss));
        }
        // A match reported beyond the request is capped to it.
        assert_eq!(pick(&[cand(0, 0, 50)], 10).matched_blocks, 10);
    }

    #[test]
    fn the_imbalance_guard_overrides_affinity() {
        // Replica 0 holds the whole prefix but is far behind: 100 - 10 > 32 and
        // 100 > 1.5 * 10.
        let skewed = [cand(0, 100, 10), cand(1, 10, 0), cand(2, 40, 0)];
        let choice = pick(&skewed, 10);
        assert_eq!(
            (choice.slot, choice.reason),
            (1, AffinityReason::Imbalanced)
        );
        assert_eq!(choice.matched_blocks, 0);
        // Only the absolute gap trips (1000 - 960 > 32, 1000 < 1.5 * 960): affinity.
        let busy = [cand(0, 1000, 10), cand(1, 960, 0)];
        assert_eq!(pick(&busy, 10).reason, AffinityReason::CacheHit);
        // Only the ratio trips (10 > 1.5 * 3, 10 - 3 <= 32): affinity.
        let idle = [cand(0, 10, 10), cand(1, 3, 0)];
        assert_eq!(pick(&idle, 10).slot, 0);
        // An idle replica next to a busy one: 0 * 1.5 < 40 and 40 - 0 > 32.
        let cold = [cand(0, 40, 10), cand(1, 0, 0)];
        assert_eq!(pick(&cold, 10).reason, AffinityReason::Imbalanced);
    }

    #[test]
    fn the_guard_shifts_a_hot_prefix_off_its_replica() {
        // Every request carries the same prefix and nothing is released. The guard
        // sends requests elsewhere once the home replica pulls ahead, those replicas
        // then hold the prefix too, and equal matches go to the least loaded.
        let mut fleet = Replicas::new(4);
        let prompt = document(9, 64 * 8);
        for _ in 0..400 {
            fleet.route(&prompt);
        }
        let (max, min) = (
            *fleet.loads.iter().max().unwrap(),
            *fleet.loads.iter().min().unwrap(),
        );
        assert!(max - min <= 33, "{:?}", fleet.loads);
    }

    #[test]
    fn no_candidates_no_choice() {
        assert_eq!(choose_replica(&AffinityConfig::default(), &[], 4, 0), None);
    }

    #[test]
    fn bad_config_names_the_field() {
        let base = AffinityConfig::default();
        assert!(base.validate().is_ok());
        assert!(AffinityConfig::for_tokens().validate().is_ok());
        assert_eq!(AffinityConfig::for_tokens().block_size, 16);
        assert_eq!(base.block_size, 64);
        let cases = [
            (
                AffinityConfig {
                    cache_threshold: 1.5,
                    ..base
                },
                "cache_threshold",
            ),
            (
                AffinityConfig {
                    cache_threshold: -0.1,
                    ..base
                },
                "cache_threshold",
            ),
            (
                AffinityConfig {
                    cache_threshold: f64::NAN,
                    ..base
                },
                "cache_threshold",
            ),
            (
                AffinityConfig {
                    balance_rel_threshold: 0.9,
                    ..base
                },
                "balance_rel_threshold",
            ),
            (
                AffinityConfig {
                    balance_rel_threshold: f64::INFINITY,
                    ..base
                },
                "balance_rel_threshold",
            ),
            (
                AffinityConfig {
                    block_size: 0,
                    ..base
                },
                "block_size",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert!(
                matches!(err, RouterError::InvalidArgument { what, .. } if what == field),
                "{err}"
            );
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    proptest! {
        #[test]
        fn the_choice_is_a_candidate_and_obeys_the_rule(
            raw in proptest::collection::vec((0u64..200, 0u64..300, 0usize..40), 1..12),
            total in 0usize..30,
            tie_break in any::<u64>(),
        ) {
            let candidates: Vec<_> = raw
                .iter()
                .enumerate()
                .map(|(i, &(load, capacity, matched_blocks))| AffinityCandidate {
                    slot: i as u32,
                    load,
                    capacity,
                    matched_blocks,
                })
                .collect();
            let config = AffinityConfig::default();
            let choice = choose_replica(&config, &candidates, total, tie_break).unwrap();
            let chosen = candidates[choice.slot as usize];
            prop_assert!(choice.matched_blocks <= total);
            let least = candidates.iter().min_by(|a, b| by_utilisation(a, b)).unwrap();
            match choice.reason {
                AffinityReason::CacheHit => {
                    let best = candidates.iter().map(|c| c.matched_blocks.min(total)).max();
                    prop_assert_eq!(Some(choice.matched_blocks), best);
                    prop_assert!(choice.matched_blocks > 0);
                }
                _ => prop_assert_eq!(by_utilisation(&chosen, least), Ordering::Equal),
            }
        }
    }
}
