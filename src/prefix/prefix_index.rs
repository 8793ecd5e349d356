//! The prefix-cache affinity index: which replicas recently served which prompt
//! prefixes, under a hard memory bound.
//!
//! Keys are the chained block hashes of [`super::block_hash`]; the value of a block
//! is the set of replica slots (most recent first, at most [`SLOTS_PER_BLOCK`]) that
//! were sent a prompt containing the prefix that block names. This is the design of
//! llm-d's approximate prefix scorer (gateway-api-inference-extension,
//! `plugins/multi/prefix`), with one LRU over blocks instead of one LRU per server so
//! that the bound is on the whole index: at most `max_blocks` blocks, each a fixed
//! size, whatever the number of replicas.
//!
//! # What a match means
//!
//! [`PrefixIndex::longest_match`] walks the request's blocks from the first and stops
//! at the first block the index does not hold. Within that run, a slot's match is
//! `1 + the deepest block index whose entry lists the slot`. Because a block hash
//! names its whole prefix, an entry listing slot `s` at depth `k` is on its own the
//! evidence that `s` was sent the first `k + 1` blocks of this prompt: the entries of
//! shallower blocks need not list `s` (a popular system-prompt block keeps only its
//! [`SLOTS_PER_BLOCK`] most recent replicas, and must not hide a replica that holds a
//! much longer, rarer continuation).
//!
//! Eviction can only shorten a match or remove it, never lengthen or invent one: a
//! block evicted from the middle of a prefix ends the walk there, so deeper entries
//! are not consulted (this also makes a cache miss cost one lookup). [`record`]
//! touches a prompt's blocks from the last to the first, so within a shard the
//! earlier blocks of a prefix are the more recently used and the tail of a prompt is
//! evicted before its head, which is also the order in which servers evict their own
//! cache blocks. A reported match is therefore always backed by a real recording of
//! that prefix for that slot (up to 64-bit hash collisions); whether the server still
//! holds it in its KV cache is the approximation every router-side index makes.
//!
//! # Locking
//!
//! This is the one structure on the routing path that takes a lock: every routed
//! request both reads the index and then records its blocks, and exact LRU with an
//! exact bound needs an ordered structure updated on every touch, which has no
//! simple lock-free form. The index is therefore split into shards by block hash,
//! each a `Mutex` around its own hash map and intrusive LRU list, and every critical
//! section is a constant number of map operations on one shard: [`record`] and
//! [`longest_match`] take one shard lock per block, never two locks at once, and
//! the walk stops at the first miss. (Taking each shard once per prompt by grouping
//! its blocks was measured slower: a prompt's blocks rarely share a shard, so the
//! grouping only adds a sort.) A popular shared prefix (a system prompt) makes its
//! first blocks' shards the busiest, but each holds its lock for one map probe.
//!
//! The bound is split exactly across shards, so `len() <= max_blocks` holds at every
//! instant. LRU order is kept per shard, which approximates global LRU as closely as
//! any sharded cache; [`PrefixIndex::with_shards`] with one shard gives exact global
//! LRU.
//!
//! [`record`]: PrefixIndex::record
//! [`longest_match`]: PrefixIndex::longest_match

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard};

use crossbeam_utils::CachePadded;

use crate::error::{Result, RouterError};

/// Most replica slots remembered per block (most recent first).
pub const SLOTS_PER_BLOCK: usize = 4;

/// Shards of an index built with [`PrefixIndex::new`] (fewer if `max_blocks` is
/// smaller): enough that routing threads rarely meet on one lock.
pub const DEFAULT_SHARDS: usize = 64;

/// Largest accepted `max_blocks`: entry positions are `u32` within a shard, and
/// 2^32 blocks would already take hundreds of GiB.
pub const MAX_BLOCKS_LIMIT: usize = u32::MAX as usize;

/// "No entry" in the LRU links.
const NIL: u32 = u32::MAX;

/// One block: its hash, its LRU links and the slots that served its prefix.
#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    /// Towards the most recently used end.
    prev: u32,
    /// Towards the least recently used end.
    next: u32,
    /// `slots[..len]`, most recent first.
    slots: [u32; SLOTS_PER_BLOCK],
    len: u8,
}

impl Entry {
    fn new(hash: u64, slot: u32) -> Self {
        let mut slots = [0; SLOTS_PER_BLOCK];
        slots[0] = slot;
        Entry {
            hash,
            prev: NIL,
            next: NIL,
            slots,
            len: 1,
        }
    }

    fn slots(&self) -> &[u32] {
        &self.slots[..self.len as usize]
    }

    /// Moves `slot` to the front, inserting it (and dropping the oldest when full)
    /// if absent.
    fn promote(&mut self, slot: u32) {
        let len = self.len as usize;
        let end = match self.slots[..len].iter().position(|&s| s == slot) {
            Some(at) => at,
            None if len < SLOTS_PER_BLOCK => {
                self.len += 1;
                len
            }
            None => SLOTS_PER_BLOCK - 1,
        };
        self.slots.copy_within(..end, 1);
        self.slots[0] = slot;
    }

    /// Removes `slot` if present; true if it was.
    fn remove(&mut self, slot: u32) -> bool {
        let len = self.len as usize;
        match self.slots[..len].iter().position(|&s| s == slot) {
            Some(at) => {
                self.slots.copy_within(at + 1..len, at);
                self.len -= 1;
                true
            }
            None => false,
        }
    }
}

/// Hasher for block hashes inside a shard's map: the keys are already uniform xxh3
/// values, so one keyed multiply-fold suffices, and the per-index random key keeps
/// crafted prompts from piling their blocks into one probe sequence.
#[derive(Debug, Clone)]
struct BlockHasherBuilder {
    key: u64,
}

struct BlockHasher {
    key: u64,
    state: u64,
}

#[inline]
fn fold_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128) * (b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

impl Hasher for BlockHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; this is the generic fallback.
        for &b in bytes {
            self.state = fold_multiply(self.state ^ u64::from(b), 0x9E37_79B9_7F4A_7C15);
        }
    }

    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.state ^= x;
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold_multiply(self.state ^ self.key, 0x9E37_79B9_7F4A_7C15)
    }
}

impl BuildHasher for BlockHasherBuilder {
    type Hasher = BlockHasher;

    #[inline]
    fn build_hasher(&self) -> BlockHasher {
        BlockHasher {
            key: self.key,
            state: 0,
        }
    }
}

/// One shard: a map from block hash to entry position, the entries (dense, in no
/// particular order) and an intrusive LRU list through them.
#[derive(Debug)]
struct Shard {
    capacity: usize,
    positions: HashMap<u64, u32, BlockHasherBuilder>,
    entries: Vec<Entry>,
    /// Most recently used entry.
    head: u32,
    /// Least recently used entry: the next to go.
    tail: u32,
}

impl Shard {
    fn new(capacity: usize, hasher: BlockHasherBuilder) -> Self {
        Shard {
            capacity,
            positions: HashMap::with_hasher(hasher),
            entries: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    fn get(&self, hash: u64) -> Option<&[u32]> {
        self.positions
            .get(&hash)
            .map(|&at| self.entries[at as usize].slots())
    }

    fn unlink(&mut self, at: u32) {
        let Entry { prev, next, .. } = self.entries[at as usize];
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, at: u32) {
        let old_head = self.head;
        let entry = &mut self.entries[at as usize];
        entry.prev = NIL;
        entry.next = old_head;
        match old_head {
            NIL => self.tail = at,
            h => self.entries[h as usize].prev = at,
        }
        self.head = at;
    }

    /// Records that `slot` served the prefix named `hash`, making it the most
    /// recently used block; evicts the least recently used block when full.
    fn touch(&mut self, hash: u64, slot: u32) {
        if let Some(&at) = self.positions.get(&hash) {
            self.entries[at as usize].promote(slot);
            if self.head != at {
                self.unlink(at);
                self.push_front(at);
            }
            return;
        }
        let at = if self.entries.len() < self.capacity {
            if self.entries.len() == self.entries.capacity() {
                // Grow geometrically, but never past the shard's bound.
                let grow = self
                    .entries
                    .len()
                    .max(8)
                    .min(self.capacity - self.entries.len());
                self.entries.reserve_exact(grow);
            }
            self.entries.push(Entry::new(hash, slot));
            (self.entries.len() - 1) as u32
        } else {
            // Full: the least recently used entry is reused in place.
            let at = self.tail;
            self.unlink(at);
            self.positions.remove(&self.entries[at as usize].hash);
            self.entries[at as usize] = Entry::new(hash, slot);
            at
        };
        self.positions.insert(hash, at);
        self.push_front(at);
    }

    /// Drops the entry at `at`, moving the last entry into its place.
    fn remove_at(&mut self, at: u32) {
        self.unlink(at);
        self.positions.remove(&self.entries[at as usize].hash);
        let last = (self.entries.len() - 1) as u32;
        if at != last {
            self.entries.swap(at as usize, last as usize);
            let Entry {
                hash, prev, next, ..
            } = self.entries[at as usize];
            match prev {
                NIL => self.head = at,
                p => self.entries[p as usize].next = at,
            }
            match next {
                NIL => self.tail = at,
                n => self.entries[n as usize].prev = at,
            }
            self.positions.insert(hash, at);
        }
        self.entries.pop();
    }

    /// Removes `slot` from every entry, dropping entries left empty.
    fn forget(&mut self, slot: u32) {
        // Downwards, so the entry `remove_at` moves into `at` (the last one) has
        // already been visited.
        for at in (0..self.entries.len() as u32).rev() {
            let entry = &mut self.entries[at as usize];
            if entry.remove(slot) && entry.len == 0 {
                self.remove_at(at);
            }
        }
    }

    fn clear(&mut self) {
        self.positions.clear();
        self.entries.clear();
        (self.head, self.tail) = (NIL, NIL);
    }

    fn heap_bytes(&self) -> usize {
        // hashbrown keeps one control byte per bucket and at least 1/8 of the
        // buckets free: an estimate, not an exact count.
        let map = self.positions.capacity() * (std::mem::size_of::<(u64, u32)>() + 1) * 8 / 7;
        map + self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

/// Bounded map from chained block hash to the replica slots that recently served
/// the prefix it names, with least-recently-used eviction.
///
/// Every method takes `&self` and may be called from any number of threads.
pub struct PrefixIndex {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    max_blocks: usize,
}

impl std::fmt::Debug for PrefixIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixIndex")
            .field("blocks", &self.len())
            .field("max_blocks", &self.max_blocks)
            .field("shards", &self.shards.len())
            .finish()
    }
}

impl PrefixIndex {
    /// An empty index holding at most `max_blocks` blocks, in
    /// `min(DEFAULT_SHARDS, max_blocks)` shards.
    ///
    /// Each block costs 60 to 85 bytes (a 40-byte entry plus its hash-map slot,
    /// which the map sizes in powers of two), so `max_blocks` is about the memory
    /// bound divided by 80: 1 M blocks take about 75 MiB. Memory is allocated as
    /// blocks arrive, not up front, and never grows past the bound's share.
    ///
    /// # Errors
    /// [`RouterError::InvalidArgument`] naming `max_blocks` when it is 0 or above
    /// [`MAX_BLOCKS_LIMIT`].
    pub fn new(max_blocks: usize) -> Result<Self> {
        Self::with_shards(max_blocks, DEFAULT_SHARDS.min(max_blocks.max(1)))
    }

    /// An empty index holding at most `max_blocks` blocks in `shards` shards; shard
    /// `i` holds at most `max_blocks / shards` blocks, plus one for the first
    /// `max_blocks % shards` shards, so the shard bounds sum to exactly `max_blocks`.
    /// One shard gives exact global LRU order at the cost of one lock for all.
    ///
    /// # Errors
    /// [`RouterError::InvalidArgument`] naming `max_blocks` (0 or above
    /// [`MAX_BLOCKS_LIMIT`]) or `shards` (0 or more than `max_blocks`).
    pub fn with_shards(max_blocks: usize, shards: usize) -> Result<Self> {
        if max_blocks == 0 || max_blocks > MAX_BLOCKS_LIMIT {
            return Err(RouterError::invalid(
                "max_blocks",
                format!("max_blocks must be in 1..={MAX_BLOCKS_LIMIT} (got {max_blocks})"),
            ));
        }
        if shards == 0 || shards > max_blocks {
            return Err(RouterError::invalid(
                "shards",
                format!(
                    "shards must be in 1..=max_blocks ({max_blocks}) so that every shard \
                     holds a block (got {shards})"
                ),
            ));
        }
        let hasher = BlockHasherBuilder {
            key: RandomState::new().hash_one(0x7072_6566_6978_u64),
        };
        let (base, extra) = (max_blocks / shards, max_blocks % shards);
        let shards = (0..shards)
            .map(|i| {
                let capacity = base + usize::from(i < extra);
                CachePadded::new(Mutex::new(Shard::new(capacity, hasher.clone())))
            })
            .collect();
        Ok(PrefixIndex { shards, max_blocks })
    }

    /// The bound on [`Self::len`].
    pub fn max_blocks(&self) -> usize {
        self.max_blocks
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard of a block: the high bits of `hash * shards` (Lemire's fast range),
    /// a deterministic function of the block hash, so placement and eviction order do
    /// not depend on the process.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.shards.len() as u128) >> 64) as usize
    }

    #[inline]
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        let mutex = &self.shards[shard];
        match mutex.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // Nothing in a critical section panics short of a bug (allocation
                // failure aborts), but if one did, the shard may be half-updated.
                // The index is only a hint, so the shard is emptied and reused:
                // that costs cache hits, never a wrong or failed routing decision.
                let mut guard = poisoned.into_inner();
                guard.clear();
                mutex.clear_poison();
                guard
            }
        }
    }

    /// Records that `slot` was sent a prompt whose chained block hashes are
    /// `blocks`: every block's entry gets `slot` at the front of its slot list, and
    /// becomes the most recently used of its shard. Blocks are touched from the last
    /// to the first, so a prompt's tail is evicted before its head. New blocks evict
    /// the least recently used ones of their shard once it is full.
    ///
    /// Call it once the request is placed on `slot`. Cost: one short lock and O(1)
    /// work per block.
    pub fn record(&self, blocks: &[u64], slot: u32) {
        for &hash in blocks.iter().rev() {
            self.lock(self.shard_of(hash)).touch(hash, slot);
        }
    }

    /// For each slot with a match, the number of leading blocks of `blocks` it is
    /// known to hold: `(slot, matched_blocks)`, longest first, ties by slot.
    ///
    /// Semantics (see the module docs): the walk stops at the first block the index
    /// does not hold; within the walked run a slot's count is one more than the
    /// deepest block whose entry lists it. Promises: every count is in
    /// `1..=blocks.len()`, each slot appears once, and the walk does not change the
    /// index (matching does not refresh LRU order; the [`Self::record`] that follows
    /// a routing decision does). Cost: one lock and one map probe per block walked,
    /// so a miss on the first block costs one.
    pub fn longest_match(&self, blocks: &[u64]) -> Vec<(u32, usize)> {
        let mut matches: Vec<(u32, usize)> = Vec::new();
        for (depth, &hash) in blocks.iter().enumerate() {
            let shard = self.lock(self.shard_of(hash));
            let Some(slots) = shard.get(hash) else {
                break;
            };
            for &slot in slots {
                match matches.iter_mut().find(|(s, _)| *s == slot) {
                    Some(found) => found.1 = depth + 1,
                    None => matches.push((slot, depth + 1)),
                }
            }
        }
        matches.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        matches
    }

    /// The matches of a request's `blocks`, ready to ask per replica (an empty
    /// prompt matches nothing and costs no lookup).
    pub fn matches(&self, blocks: &[u64]) -> PrefixMatches {
        PrefixMatches {
            matches: if blocks.is_empty() {
                Vec::new()
            } else {
                self.longest_match(blocks)
            },
            total: blocks.len(),
        }
    }

    /// Removes `slot` from every block (the replica left the fleet); blocks that no
    /// other slot holds are dropped and their room freed.
    ///
    /// Cost: O(len) under each shard's lock in turn. A [`Self::record`] for `slot`
    /// that runs concurrently may survive the sweep, so stop routing to a replica
    /// before forgetting it. Fleet slots are never reused, so a stale entry can
    /// never send a request to a different replica, only name one that is gone.
    pub fn forget_slot(&self, slot: u32) {
        for shard in 0..self.shards.len() {
            self.lock(shard).forget(slot);
        }
    }

    /// Number of blocks held (a momentary snapshot under concurrent use; never more
    /// than [`Self::max_blocks`]).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|shard| self.lock(shard).entries.len())
            .sum()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Estimated bytes held by the index: the shards and their map and entry
    /// allocations. Grows with the blocks held, to about 60 to 85 bytes per block
    /// when full.
    pub fn memory_bytes(&self) -> usize {
        let fixed = std::mem::size_of::<Self>()
            + self.shards.len() * std::mem::size_of::<CachePadded<Mutex<Shard>>>();
        fixed
            + (0..self.shards.len())
                .map(|shard| self.lock(shard).heap_bytes())
                .sum::<usize>()
    }
}

/// A request's prefix matches: per replica, how many of its leading blocks it holds.
#[derive(Debug, Clone, Default)]
pub struct PrefixMatches {
    matches: Vec<(u32, usize)>,
    total: usize,
}

impl PrefixMatches {
    /// Leading blocks of the request that `slot` holds (at most the request's).
    pub fn blocks(&self, slot: u32) -> usize {
        self.matches
            .iter()
            .find(|&&(s, _)| s == slot)
            .map_or(0, |&(_, m)| m.min(self.total))
    }

    /// The share of the request's blocks that `slot` holds, in `[0, 1]`.
    pub fn share(&self, slot: u32) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.blocks(slot) as f64 / self.total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefix::block_hash::prefix_block_hashes;
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Checks one shard's map, entries and LRU list against each other.
    fn check_shard(shard: &Shard) {
        assert!(shard.entries.len() <= shard.capacity);
        assert_eq!(shard.positions.len(), shard.entries.len());
        for (&hash, &at) in &shard.positions {
            assert_eq!(shard.entries[at as usize].hash, hash);
        }
        let (mut at, mut prev, mut seen) = (shard.head, NIL, 0);
        while at != NIL {
            let entry = &shard.entries[at as usize];
            assert_eq!(entry.prev, prev);
            assert!(entry.len >= 1 && entry.len as usize <= SLOTS_PER_BLOCK);
            (prev, at, seen) = (at, entry.next, seen + 1);
        }
        assert_eq!(shard.tail, prev);
        assert_eq!(seen, shard.entries.len());
    }

    fn check(index: &PrefixIndex) {
        for shard in 0..index.shard_count() {
            check_shard(&index.lock(shard));
        }
        assert!(index.len() <= index.max_blocks());
    }

    /// Spread test block numbers over the shards as real block hashes would be.
    fn h(block: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&block.to_le_bytes())
    }

    fn hs(blocks: impl IntoIterator<Item = u64>) -> Vec<u64> {
        blocks.into_iter().map(h).collect()
    }

    fn holds(index: &PrefixIndex, hash: u64) -> Option<Vec<u32>> {
        index
            .lock(index.shard_of(hash))
            .get(hash)
            .map(<[u32]>::to_vec)
    }

    #[test]
    fn recorded_prefix_matches_fully_and_its_prefixes_partly() {
        let index = PrefixIndex::new(1000).unwrap();
        let prompt = prefix_block_hashes(&[b'a'; 64 * 10], 64).unwrap();
        index.record(&prompt, 3);
        assert_eq!(index.longest_match(&prompt), vec![(3, 10)]);
        assert_eq!(index.longest_match(&prompt[..4]), vec![(3, 4)]);
        // A longer prompt with the same start matches the recorded part.
        let longer =
            prefix_block_hashes(&[&[b'a'; 64 * 10][..], &[b'b'; 128]].concat(), 64).unwrap();
        assert_eq!(index.longest_match(&longer), vec![(3, 10)]);
        // A prompt that differs in its first block matches nothing.
        let other = prefix_block_hashes(&[b'z'; 64 * 10], 64).unwrap();
        assert!(index.longest_match(&other).is_empty());
        assert!(index.longest_match(&[]).is_empty());
        assert_eq!(index.len(), 10);
        check(&index);
    }

    #[test]
    fn matches_are_longest_first_and_per_slot() {
        let index = PrefixIndex::new(1000).unwrap();
        let blocks = hs(0..8);
        index.record(&blocks[..2], 7);
        index.record(&blocks[..6], 5);
        index.record(&blocks, 9);
        index.record(&blocks[..6], 1);
        assert_eq!(
            index.longest_match(&blocks),
            vec![(9, 8), (1, 6), (5, 6), (7, 2)]
        );
    }

    #[test]
    fn slot_lists_keep_the_most_recent_four() {
        let index = PrefixIndex::new(10).unwrap();
        for slot in 0..6 {
            index.record(&[42], slot);
        }
        assert_eq!(holds(&index, 42), Some(vec![5, 4, 3, 2]));
        index.record(&[42], 3);
        assert_eq!(holds(&index, 42), Some(vec![3, 5, 4, 2]));
        index.record(&[42], 2);
        assert_eq!(holds(&index, 42), Some(vec![2, 3, 5, 4]));
    }

    #[test]
    fn a_deep_entry_survives_a_crowded_shallow_one() {
        // Slot 1 served the long prompt; four others then served only its first
        // block (a shared system prompt), pushing slot 1 out of that block's list.
        let index = PrefixIndex::new(100).unwrap();
        let blocks = hs([11, 12, 13]);
        index.record(&blocks, 1);
        for slot in 2..6 {
            index.record(&blocks[..1], slot);
        }
        assert_eq!(holds(&index, blocks[0]), Some(vec![5, 4, 3, 2]));
        assert_eq!(
            index.longest_match(&blocks),
            vec![(1, 3), (2, 1), (3, 1), (4, 1), (5, 1)]
        );
    }

    #[test]
    fn eviction_is_least_recently_used_and_exactly_bounded() {
        let index = PrefixIndex::with_shards(3, 1).unwrap();
        index.record(&[1], 0);
        index.record(&[2], 0);
        index.record(&[3], 0);
        index.record(&[1], 0); // 1 is now the most recent, 2 the least
        index.record(&[4], 0);
        assert_eq!(index.len(), 3);
        assert_eq!(holds(&index, 2), None);
        for kept in [1, 3, 4] {
            assert_eq!(holds(&index, kept), Some(vec![0]));
        }
        // Matching does not refresh: 3 is the least recent and goes next.
        assert_eq!(index.longest_match(&[3]), vec![(0, 1)]);
        index.record(&[5], 0);
        assert_eq!(holds(&index, 3), None);
        check(&index);
    }

    #[test]
    fn a_prompt_loses_its_tail_before_its_head() {
        let index = PrefixIndex::with_shards(4, 1).unwrap();
        let prompt = [21, 22, 23, 24];
        index.record(&prompt, 6);
        index.record(&[99], 7); // evicts 24, the last block, not 21
        assert_eq!(index.longest_match(&prompt), vec![(6, 3)]);
        index.record(&[98], 7);
        assert_eq!(index.longest_match(&prompt), vec![(6, 2)]);
    }

    #[test]
    fn an_evicted_block_ends_the_walk() {
        let index = PrefixIndex::with_shards(3, 1).unwrap();
        let prompt = [31, 32, 33];
        index.record(&prompt, 1);
        index.record(&prompt[2..], 1); // LRU order now 32, 31, 33 (oldest first)
        index.record(&[77], 2); // evicts 32, the middle block
        assert_eq!(holds(&index, 33), Some(vec![1]));
        assert_eq!(index.longest_match(&prompt), vec![(1, 1)]);
    }

    #[test]
    fn bound_holds_across_shards_and_fills_exactly() {
        for (max_blocks, shards) in [(1, 1), (7, 3), (100, 64), (1000, 64), (1000, 1)] {
            let index = PrefixIndex::with_shards(max_blocks, shards).unwrap();
            for round in 0..20u64 {
                let blocks = hs(round * 1000..round * 1000 + 500);
                index.record(&blocks, round as u32);
                assert!(index.len() <= max_blocks);
            }
            // 10,000 distinct blocks fill every shard to its share.
            assert_eq!(index.len(), max_blocks, "{max_blocks}/{shards}");
            check(&index);
            let full = index.memory_bytes();
            assert!(full >= max_blocks * std::mem::size_of::<Entry>());
            assert!(full <= 4096 * shards + max_blocks * 150, "{full}");
        }
    }

    #[test]
    fn forget_slot_removes_the_replica_everywhere() {
        let index = PrefixIndex::new(1000).unwrap();
        let a = hs(0..50);
        let b = hs(100..150);
        index.record(&a, 1);
        index.record(&b, 1);
        index.record(&a[..20], 2);
        assert_eq!(index.len(), 100);
        index.forget_slot(1);
        // b was held by slot 1 alone and is gone; a's shared head stays for slot 2.
        assert_eq!(index.len(), 20);
        assert!(index.longest_match(&b).is_empty());
        assert_eq!(index.longest_match(&a), vec![(2, 20)]);
        for shard in 0..index.shard_count() {
            let shard = index.lock(shard);
            assert!(shard.entries.iter().all(|e| !e.slots().contains(&1)));
        }
        check(&index);
        // The freed room is reusable and forgetting an unknown slot is a no-op.
        index.forget_slot(42);
        index.record(&b, 3);
        assert_eq!(index.longest_match(&b), vec![(3, 50)]);
        check(&index);
    }

    #[test]
    fn bad_bounds_are_refused_by_name() {
        for (max_blocks, shards, what) in [
            (0, 1, "max_blocks"),
            (MAX_BLOCKS_LIMIT + 1, 1, "max_blocks"),
            (10, 0, "shards"),
            (10, 11, "shards"),
        ] {
            let err = PrefixIndex::with_shards(max_blocks, shards).unwrap_err();
            assert!(
                matches!(err, RouterError::InvalidArgument { what: w, .. } if w == what),
                "{err}"
            );
            assert!(err.to_string().contains(what));
        }
        assert!(PrefixIndex::new(0)
            .unwrap_err()
            .to_string()
            .contains("max_blocks"));
        assert_eq!(PrefixIndex::new(5).unwrap().shard_count(), 5);
        assert_eq!(
            PrefixIndex::new(1 << 20).unwrap().shard_count(),
            DEFAULT_SHARDS
        );
    }

    #[test]
    fn concurrent_record_match_and_forget_keep_the_bound() {
        const MAX_BLOCKS: usize = 500;
        let index = PrefixIndex::new(MAX_BLOCKS).unwrap();
        let routers_done = AtomicUsize::new(0);
        // 40 documents sharing 8 system-prompt blocks, 16 to 48 blocks each.
        let prompts: Vec<Vec<u64>> = (0..40u8)
            .map(|d| {
                let text = [&[b's'; 8 * 16][..], &vec![d; 16 * (8 + d as usize % 33)]].concat();
                prefix_block_hashes(&text, 16).unwrap()
            })
            .collect();
        std::thread::scope(|scope| {
            for thread in 0..4u32 {
                let (index, prompts, routers_done) = (&index, &prompts, &routers_done);
                scope.spawn(move || {
                    for i in 0..5_000usize {
                        let prompt = &prompts[(i * 7 + thread as usize * 13) % prompts.len()];
                        let matches = index.longest_match(prompt);
                        assert!(matches.iter().all(|&(_, m)| m >= 1 && m <= prompt.len()));
                        let slot = matches
                            .first()
                            .map_or(thread * 4 + (i % 4) as u32, |&(s, _)| s);
                        index.record(prompt, slot);
                        if i % 250 == 0 {
                            assert!(index.len() <= MAX_BLOCKS);
                        }
                    }
                    routers_done.fetch_add(1, Ordering::AcqRel);
                });
            }
            // A replica leaves now and then while the routers run.
            scope.spawn(|| {
                let mut slot = 0;
                while routers_done.load(Ordering::Acquire) < 4 {
                    index.forget_slot(slot % 16);
                    slot += 1;
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            });
        });
        check(&index);
        assert!(index.len() <= MAX_BLOCKS);
    }

    #[test]
    fn a_poisoned_shard_is_emptied_and_reused() {
        let index = PrefixIndex::with_shards(10, 1).unwrap();
        index.record(&[1, 2, 3], 4);
        let crashed = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = index.lock(0);
                    panic!("simulated bug inside a critical section");
                })
                .join()
        });
        assert!(crashed.is_err());
        assert!(index.is_empty());
        index.record(&[1, 2, 3], 5);
        assert_eq!(index.longest_match(&[1, 2, 3]), vec![(5, 3)]);
        check(&index);
    }

    #[test]
    fn index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PrefixIndex>();
    }

    proptest! {
        #[test]
        fn matches_never_exceed_the_request(
            records in proptest::collection::vec(
                (proptest::collection::vec(0u64..40, 0..12), 0u32..6), 0..40),
            query in proptest::collection::vec(0u64..40, 0..12),
            max_blocks in 1usize..30,
            shards in 1usize..4,
        ) {
            let index = PrefixIndex::with_shards(max_blocks, shards.min(max_blocks)).unwrap();
            let query = hs(query);
            for (blocks, slot) in records {
                index.record(&hs(blocks), slot);
                prop_assert!(index.len() <= max_blocks);
            }
            let matches = index.longest_match(&query);
            let mut slots: Vec<u32> = matches.iter().map(|m| m.0).collect();
            slots.sort_unstable();
            slots.dedup();
            prop_assert_eq!(slots.len(), matches.len());
            for &(slot, matched) in &matches {
                prop_assert!(matched >= 1 && matched <= query.len());
                // Backed by an entry at that depth listing the slot.
                let listed = holds(&index, query[matched - 1]).unwrap_or_default();
                prop_assert!(listed.contains(&slot));
            }
            check(&index);
        }

        #[test]
        fn a_lone_recording_matches_in_full(
            blocks in proptest::collection::vec(any::<u64>(), 1..64),
            slot in any::<u32>(),
        ) {
            let index = PrefixIndex::new(1 << 16).unwrap();
            index.record(&blocks, slot);
            let mut distinct = blocks.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(index.len(), distinct.len());
            prop_assert_eq!(index.longest_match(&blocks), vec![(slot, blocks.len())]);
        }
    }
}
