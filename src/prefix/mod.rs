//! Prefix-cache affinity for fleets of LLM model servers (vLLM, SGLang replicas):
//! send a request to the replica that most likely still holds its prompt prefix in
//! KV cache, unless that would unbalance the fleet.
//!
//! A server that already holds a prompt's prefix skips its prefill, which is most
//! of the time to first token on long prompts. A router cannot see the servers'
//! caches, so it remembers where it sent each prefix, as SGLang's cache-aware router
//! (`sgl-router`, `src/policies/cache_aware.rs`: an approximate radix tree per
//! worker over request text) and llm-d's prefix scorer
//! (gateway-api-inference-extension, `plugins/multi/prefix`: hashes of fixed-size
//! prompt blocks) do. This module takes llm-d's block-hash design, which is bounded,
//! cheap and shards cleanly, and SGLang's decision rule. One concept per file:
//!
//! - [`block_hash`]: the prompt (bytes or token ids) as chained hashes of whole
//!   blocks, each naming its entire prefix.
//! - [`prefix_index`]: [`PrefixIndex, PrefixMatches`], block hash → the replica slots that recently
//!   served that prefix, LRU-evicted under a hard `max_blocks` bound, in mutex-guarded
//!   shards (the one lock on the routing path; see its docs for why).
//! - [`affinity`]: [`choose_replica`], the balance-guard / cache-hit / least-loaded
//!   rule over plain numbers, with its [`AffinityConfig`].
//!
//! Per request, a router does:
//!
//! ```text
//! blocks     = prefix_block_hashes(prompt, config.block_size)?
//! matches    = index.longest_match(&blocks)            // [(slot, matched_blocks)]
//! candidates = allowed replicas with (slot, load, capacity, matched_blocks)
//! choice     = choose_replica(&config, &candidates, blocks.len(), random_u64)
//! place the request on choice.slot (atomic check-and-add), then
//! index.record(&blocks, placed_slot)
//! ```
//!
//! and calls `index.forget_slot(slot)` when a replica leaves the fleet.

pub mod affinity;
pub mod block_hash;
pub mod prefix_index;

pub use affinity::{
    choose_replica, AffinityCandidate, AffinityChoice, AffinityConfig, AffinityReason,
    DEFAULT_BLOCK_BYTES, DEFAULT_BLOCK_TOKENS,
};
pub use block_hash::{prefix_block_hashes, prefix_block_hashes_tokens, validate_block_size};
pub use prefix_index::{
    PrefixIndex, PrefixMatches, DEFAULT_SHARDS, MAX_BLOCKS_LIMIT, SLOTS_PER_BLOCK,
};
