//! A lock-free tournament tree: the minimum of many atomically updated keys, readable
//! in O(1) and maintained in O(log n) per update.
//!
//! Each node holds `key << 32 | slot` of the smallest leaf below it, so the root names
//! the argmin directly. An update stores the new leaf value and then repairs each
//! ancestor with a read-parent / read-children / compare-exchange loop: if another
//! thread changed the parent after we read it, the exchange fails and we recompute
//! from fresh children. Whoever changes a node carries the change upward, so when all
//! updates have returned, every node equals the minimum of its children.

use std::sync::atomic::{AtomicU64, Ordering};

/// Value of a leaf that must never be chosen (removed, unhealthy, full).
pub const UNAVAILABLE: u64 = u64::MAX;

/// Packs a 32-bit key and a slot into one comparable node value.
#[inline]
pub fn pack(key: u32, slot: u32) -> u64 {
    ((key as u64) << 32) | slot as u64
}

/// A fixed-size tournament tree over `leaves` slots (a power of two).
#[derive(Debug)]
pub struct MinTree {
    leaves: usize,
    nodes: Box<[AtomicU64]>,
}

impl MinTree {
    /// A tree with at least `slots` leaves, every leaf unavailable.
    pub fn new(slots: usize) -> Self {
        let leaves = slots.max(64).next_power_of_two();
        MinTree {
            leaves,
            nodes: (0..2 * leaves)
                .map(|_| AtomicU64::new(UNAVAILABLE))
                .collect(),
        }
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.leaves
    }

    /// The smallest leaf as `(key, slot)`, or `None` if every leaf is unavailable.
    #[inline]
    pub fn min(&self) -> Option<(u32, u32)> {
        let root = self.nodes[1].load(Ordering::Acquire);
        (root != UNAVAILABLE).then_some(((root >> 32) as u32, root as u32))
    }

    /// Sets leaf `slot` to `value` (from [`pack`], or [`UNAVAILABLE`]) and repairs
    /// its ancestors.
    pub fn update(&self, slot: u32, value: u64) {
        let mut node = self.leaves + slot as usize;
        self.nodes[node].store(value, Ordering::Release);
        while node > 1 {
            node /= 2;
            loop {
                let current = self.nodes[node].load(Ordering::Acquire);
                let left = self.nodes[2 * node].load(Ordering::Acquire);
                let right = self.nodes[2 * node + 1].load(Ordering::Acquire);
                let fresh = left.min(right);
                if fresh == current {
                    break;
                }
                if self.nodes[node]
                    .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    break;
                }
            }
        }
    }

    /// Rebuilds every internal node bottom-up from the leaves (single writer).
    pub fn rebuild_from<F: Fn(u32) -> u64>(&self, slots: usize, leaf: F) {
        for slot in 0..slots {
            self.nodes[self.leaves + slot].store(leaf(slot as u32), Ordering::Relaxed);
        }
        for node in (1..self.leaves).rev() {
            let left = self.nodes[2 * node].load(Ordering::Relaxed);
            let right = self.nodes[2 * node + 1].load(Ordering::Relaxed);
            self.nodes[node].store(left.min(right), Ordering::Release);
        }
    }

    /// Bytes held by the tree.
    pub fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn tracks_the_minimum() {
        let tree = MinTree::new(5);
        assert_eq!(tree.min(), None);
        tree.update(3, pack(7, 3));
        tree.update(1, pack(9, 1));
        assert_eq!(tree.min(), Some((7, 3)));
        tree.update(3, UNAVAILABLE);
        assert_eq!(tree.min(), Some((9, 1)));
        tree.update(4, pack(9, 4));
        assert_eq!(tree.min(), Some((9, 1)), "ties go to the lower slot");
    }

    #[test]
    fn concurrent_updates_settle_to_the_true_minimum() {
        let tree = Arc::new(MinTree::new(256));
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let tree = Arc::clone(&tree);
                std::thread::spawn(move || {
                    for round in 0..2_000u32 {
                        for slot in (t..256).step_by(4) {
                            let key = (round * 7 + slot * 13) % 1000 + 1;
                            tree.update(slot, pack(key, slot));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let truth = (0..256u32)
            .map(|slot| pack((1999 * 7 + slot * 13) % 1000 + 1, slot))
            .min()
            .unwrap();
        assert_eq!(tree.min(), Some(((truth >> 32) as u32, truth as u32)));
    }
}
