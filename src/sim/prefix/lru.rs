//! A replica's simulated KV prefix cache: a least-recently-used set of prompt block
//! hashes with a fixed capacity in blocks.
//!
//! Entries live in a slab of nodes linked in recency order (O(1) touch, insert and
//! evict) and are found through a hash map keyed by the block hash itself (block
//! hashes are already xxh3 outputs, so the map does not hash them again).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hasher for keys that are already uniformly distributed 64-bit hashes.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    block: u64,
    prev: u32,
    next: u32,
}

/// An LRU set of block hashes holding at most `capacity` blocks.
#[derive(Debug, Clone)]
pub struct BlockLru {
    capacity: usize,
    map: HashMap<u64, u32, BuildHasherDefault<PassThroughHasher>>,
    nodes: Vec<Node>,
    /// Least recently used end.
    head: u32,
    /// Most recently used end.
    tail: u32,
}

impl BlockLru {
    /// An empty cache of `capacity` blocks (at least 1; 0 is taken as 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        BlockLru {
            capacity,
            map: HashMap::with_capacity_and_hasher(capacity, Default::default()),
            nodes: Vec::with_capacity(capacity),
            head: NIL,
            tail: NIL,
        }
    }

    /// Most blocks held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Blocks held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True if `block` is cached (does not change recency).
    pub fn contains(&self, block: u64) -> bool {
        self.map.contains_key(&block)
    }

    /// How many leading blocks of `blocks` are cached: the prompt prefix a server
    /// can reuse (a chained hash is only useful if every block before it is there
    /// too). Does not change recency.
    pub fn leading_hits(&self, blocks: &[u64]) -> usize {
        blocks.iter().take_while(|&&b| self.contains(b)).count()
    }

    /// Makes every block of `blocks` cached, evicting least recently used blocks as
    /// needed. Blocks are touched from the last to the first, so the prompt's first
    /// block ends most recently used and its tail is evicted first (vLLM frees a
    /// request's blocks in reverse order for the same reason: a prefix is only
    /// useful from its start). A prompt longer than the capacity keeps its first
    /// `capacity` blocks.
    pub fn insert(&mut self, blocks: &[u64]) {
        for &block in blocks.iter().rev() {
            self.touch(block);
        }
    }

    /// The cached blocks from least to most recently used.
    pub fn order(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.len());
        let mut at = self.head;
        while at != NIL {
            let node = self.nodes[at as usize];
            out.push(node.block);
            at = node.next;
        }
        out
    }

    fn touch(&mut self, block: u64) {
        if let Some(&at) = self.map.get(&block) {
            self.unlink(at);
            self.push_back(at);
            return;
        }
        let at = if self.map.len() == self.capacity {
            let victim = self.head;
            self.unlink(victim);
            self.map.remove(&self.nodes[victim as usize].block);
            self.nodes[victim as usize].block = block;
            victim
        } else {
            self.nodes.push(Node {
                block,
                prev: NIL,
                next: NIL,
            });
            (self.nodes.len() - 1) as u32
        };
        self.map.insert(block, at);
        self.push_back(at);
    }

    fn unlink(&mut self, at: u32) {
        let Node { prev, next, .. } = self.nodes[at as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
    }

    fn push_back(&mut self, at: u32) {
        self.nodes[at as usize].prev = self.tail;
        self.nodes[at as usize].next = NIL;
        if self.tail == NIL {
            self.head = at;
        } else {
            self.nodes[self.tail as usize].next = at;
        }
        self.tail = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_first_block_most_recent_and_evicts_least_recent() {
        let mut lru = BlockLru::new(3);
        lru.insert(&[1, 2]);
        // Touched 2 then 1: 2 is the least recent.
        assert_eq!(lru.order(), vec![2, 1]);
        lru.insert(&[3]);
        assert_eq!(lru.order(), vec![2, 1, 3]);
        lru.insert(&[4]);
        assert_eq!(lru.order(), vec![1, 3, 4], "2 was least recent");
        // Re-touching 1 saves it; 3 goes next.
        lru.insert(&[1]);
        lru.insert(&[5]);
        assert_eq!(lru.order(), vec![4, 1, 5]);
        assert_eq!(lru.len(), 3);
        assert!(!lru.contains(3) && !lru.contains(2));
    }

    #[test]
    fn leading_hits_stop_at_the_first_miss() {
        let mut lru = BlockLru::new(10);
        lru.insert(&[10, 11, 12]);
        assert_eq!(lru.leading_hits(&[10, 11, 12]), 3);
        assert_eq!(lru.leading_hits(&[10, 11, 99, 12]), 2);
        assert_eq!(lru.leading_hits(&[99, 10]), 0);
        assert_eq!(lru.leading_hits(&[]), 0);
    }

    #[test]
    fn a_long_prompt_keeps_its_head() {
        let mut lru = BlockLru::new(2);
        lru.insert(&[1, 2, 3, 4]);
        assert_eq!(lru.order(), vec![2, 1]);
        assert_eq!(lru.leading_hits(&[1, 2, 3, 4]), 2);
        assert_eq!(BlockLru::new(0).capacity(), 1);
    }
}
