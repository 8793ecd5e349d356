//! A ketama-style consistent hash ring with virtual nodes.
//!
//! Consistent hashing (Karger, Lehman, Leighton, Panigrahy, Levine and Lewin,
//! "Consistent Hashing and Random Trees", STOC 1997) places every node at several
//! pseudo-random points on a circle of 2^64 positions and sends a key to the first
//! node point clockwise from the key's hash. Adding or removing a node only moves the
//! keys on the arcs that node owns, about `1 / n` of them, and every other key keeps
//! its node. Many points per node ("virtual nodes") even out the arc lengths; the
//! layout follows libketama (last.fm, 2007), the de facto standard for memcached
//! clients, which gives each server 160 points.
//!
//! Why a ring when [`super::maglev`] balances better: the ring has a natural
//! *fallback order*. [`HashRing::walk`] yields the distinct nodes clockwise from a
//! key, which is exactly the probe sequence of consistent hashing with bounded loads
//! (Mirrokni, Thorup and Zadimoghaddam, SODA 2018; used by Google Cloud Pub/Sub and
//! HAProxy): a key whose home node is at capacity spills to the next node on the
//! ring, so hot keys spread while cold keys stay put.
//!
//! Differences from libketama, all deliberate: points are xxh3-64 of the pair
//! `(node key, replica number)` ([`super::key_hash::hash_pair`]) instead of four
//! 32-bit slices of an MD5 digest of `"host:port-i"`, so they cover 64 bits and need
//! no string formatting; node weights are expressed directly as the number of
//! virtual nodes; and ties between equal points are broken deterministically by node
//! key (then slot index), so the ring never depends on the order nodes were given in.

use std::iter::FusedIterator;

use super::key_hash::hash_pair;

/// libketama's number of points per server (40 MD5 digests x 4 points each). With
/// 160 points the busiest of 10 nodes typically owns less than 1.2x its fair share.
pub const DEFAULT_VNODES: u32 = 160;

/// One member of a [`HashRing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingNode {
    /// Stable identity of the node (e.g. the accelerator id): its points depend on
    /// this value only, so they survive restarts and re-registrations.
    pub key: u64,
    /// The caller's slot index for this node, returned by lookups and walks.
    pub index: u32,
    /// Number of points (virtual nodes) on the ring; proportional to the share of
    /// keys the node receives. 0 leaves the node off the ring.
    pub vnodes: u32,
}

/// An immutable consistent hash ring: sorted points, each owned by a slot index.
///
/// Build a new ring when membership changes (the build is O(P log P) for P points)
/// and publish it atomically; lookups are a binary search over the points.
///
/// Nodes are told apart by their `index`: two [`RingNode`]s with the same index are
/// one node for [`HashRing::walk`]. Two nodes with the same `key` get the same points
/// (the ring stays deterministic, but they share arcs), so keys should be unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashRing {
    /// Point positions, ascending.
    points: Vec<u64>,
    /// `indices[i]` is the slot index owning `points[i]`.
    indices: Vec<u32>,
    /// `ordinals[i]` numbers the owner of `points[i]` densely in `0..nodes`, so a
    /// walk can track visited nodes in a bitset instead of a hash set.
    ordinals: Vec<u32>,
    /// Number of distinct slot indices with at least one point.
    nodes: usize,
    /// `bucket_starts[b]` is the first position whose point has `b` as its top
    /// `bucket_bits` bits; `bucket_starts[2^bits]` is `points.len()`. A lookup reads
    /// one bucket (about one point) instead of binary-searching the whole ring,
    /// which on a 1.6 M-point ring is some 21 dependent cache misses.
    bucket_starts: Vec<u32>,
    bucket_bits: u32,
}

/// Bucket index bits for a ring of `points` points: about one point per bucket,
/// between 2^4 and 2^22 buckets.
fn bucket_bits_for(points: usize) -> u32 {
    (usize::BITS - points.max(1).leading_zeros()).clamp(4, 22)
}

/// The first position of every top-`bits` bucket of the sorted `points`.
fn bucket_starts(points: &[u64], bits: u32) -> Vec<u32> {
    let buckets = 1usize << bits;
    let mut starts = Vec::with_capacity(buckets + 1);
    let mut position = 0;
    for bucket in 0..buckets {
        while position < points.len() && ((points[position] >> (64 - bits)) as usize) < bucket {
            position += 1;
        }
        starts.push(position as u32);
    }
    starts.push(points.len() as u32);
    starts
}

impl HashRing {
    /// Builds the ring of `nodes`, `vnodes` points each.
    ///
    /// Promise: the result depends only on the *set* of nodes given, not on their
    /// order; an empty slice (or only nodes with `vnodes == 0`) gives an empty ring.
    /// Memory is about 20 bytes per point (point, owner, ordinal, bucket index).
    pub fn build(nodes: &[RingNode]) -> HashRing {
        let total: usize = nodes.iter().map(|n| n.vnodes as usize).sum();
        let mut entries: Vec<(u64, u64, u32)> = Vec::with_capacity(total);
        for node in nodes {
            for replica in 0..node.vnodes {
                entries.push((
                    hash_pair(node.key, u64::from(replica)),
                    node.key,
                    node.index,
                ));
            }
        }
        // Total order on (point, node key, index): ties in the point are broken by
        // the node's stable key, so the layout never depends on input order.
        entries.sort_unstable();

        let mut distinct: Vec<u32> = entries.iter().map(|&(_, _, index)| index).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let ordinal_of = |index: u32| -> u32 {
            // Present by construction; at most u32::MAX + 1 distinct u32 values.
            distinct.binary_search(&index).unwrap_or_default() as u32
        };

        let points: Vec<u64> = entries.iter().map(|&(point, _, _)| point).collect();
        let bucket_bits = bucket_bits_for(points.len());
        HashRing {
            bucket_starts: bucket_starts(&points, bucket_bits),
            bucket_bits,
            points,
            indices: entries.iter().map(|&(_, _, index)| index).collect(),
            ordinals: entries
                .iter()
                .map(|&(_, _, index)| ordinal_of(index))
                .collect(),
            nodes: distinct.len(),
        }
    }

    /// True when the ring has no points (every lookup misses).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Number of points (virtual nodes) on the ring.
    #[inline]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Number of distinct nodes (slot indices) with at least one point.
    #[inline]
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Position of the first point clockwise from `hash`: the smallest `i` with
    /// `point(i) >= hash`, wrapping to 0 past the last point. Returns 0 on an empty
    /// ring (where there is no valid position).
    #[inline]
    pub fn first_position(&self, hash: u64) -> usize {
        if self.points.is_empty() {
            return 0;
        }
        let bucket = (hash >> (64 - self.bucket_bits)) as usize;
        let (lo, hi) = (
            self.bucket_starts[bucket] as usize,
            self.bucket_starts[bucket + 1] as usize,
        );
        let pos = lo + self.points[lo..hi].partition_point(|&p| p < hash);
        if pos == self.points.len() {
            0
        } else {
            pos
        }
    }

    /// Slot index owning the point at `position`.
    ///
    /// # Panics
    /// If `position >= self.len()`.
    #[inline]
    pub fn index_at(&self, position: usize) -> u32 {
        self.indices[position]
    }

    /// Ring position (hash value) of the point at `position`.
    ///
    /// # Panics
    /// If `position >= self.len()`.
    #[inline]
    pub fn point_at(&self, position: usize) -> u64 {
        self.points[position]
    }

    /// The node owning `hash`: `index_at(first_position(hash))`, or `None` on an
    /// empty ring.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<u32> {
        if self.is_empty() {
            None
        } else {
            Some(self.indices[self.first_position(hash)])
        }
    }

    /// The distinct slot indices clockwise from `hash`, starting with its owner.
    ///
    /// Promise: yields every node of the ring exactly once ([`Self::node_count`]
    /// items), in the order their first point is met walking clockwise from `hash`;
    /// an empty ring yields nothing. The walk allocates nothing until its second
    /// item, then one bit per node; the whole walk is O(points).
    pub fn walk(&self, hash: u64) -> RingWalk<'_> {
        RingWalk {
            ring: self,
            position: self.first_position(hash),
            points_left: self.points.len(),
            yielded: 0,
            first_ordinal: 0,
            seen: Vec::new(),
        }
    }
}

/// Iterator returned by [`HashRing::walk`].
#[derive(Debug, Clone)]
pub struct RingWalk<'a> {
    ring: &'a HashRing,
    /// Next point to inspect.
    position: usize,
    /// Points not yet inspected; the walk covers the circle at most once.
    points_left: usize,
    /// Distinct nodes yielded so far.
    yielded: usize,
    /// Ordinal of the first node yielded (recorded before `seen` exists).
    first_ordinal: u32,
    /// Visited-node bitset over ordinals, allocated on the second `next`.
    seen: Vec<u64>,
}

impl RingWalk<'_> {
    /// Marks `ordinal` visited; returns true if it was not visited before.
    fn mark(&mut self, ordinal: u32) -> bool {
        let (word, bit) = ((ordinal / 64) as usize, 1u64 << (ordinal % 64));
        let fresh = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        fresh
    }
}

impl Iterator for RingWalk<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let ring = self.ring;
        while self.points_left > 0 && self.yielded < ring.nodes {
            let pos = self.position;
            self.position = if pos + 1 == ring.points.len() {
                0
            } else {
                pos + 1
            };
            self.points_left -= 1;
            let ordinal = ring.ordinals[pos];
            let fresh = if self.yielded == 0 {
                self.first_ordinal = ordinal;
                true
            } else {
                if self.seen.is_empty() {
                    self.seen = vec![0; ring.nodes.div_ceil(64)];
                    let first = self.first_ordinal;
                    self.mark(first);
                }
                self.mark(ordinal)
            };
            if fresh {
                self.yielded += 1;
                return Some(ring.indices[pos]);
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // A full turn of the circle meets every node, so exactly this many remain.
        let left = self.ring.nodes - self.yielded;
        (left, Some(left))
    }
}

impl ExactSizeIterator for RingWalk<'_> {}

impl FusedIterator for RingWalk<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::key_hash::hash_u64;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn nodes(n: u32, vnodes: u32) -> Vec<RingNode> {
        (0..n)
            .map(|i| RingNode {
                key: 1000 + u64::from(i),
                index: i,
                vnodes,
            })
            .collect()
    }

    #[test]
    fn empty_ring_answers_nothing() {
        for ring in [
            HashRing::build(&[]),
            HashRing::build(&[RingNode {
                key: 1,
                index: 0,
                vnodes: 0,
            }]),
        ] {
            assert!(ring.is_empty());
            assert_eq!(ring.len(), 0);
            assert_eq!(ring.node_count(), 0);
            assert_eq!(ring.first_position(123), 0);
            assert_eq!(ring.lookup(123), None);
            assert_eq!(ring.walk(123).count(), 0);
        }
    }

    #[test]
    fn has_one_point_per_vnode_sorted() {
        let mut ns = nodes(5, DEFAULT_VNODES);
        ns[2].vnodes = 7;
        ns[4].vnodes = 0;
        let ring = HashRing::build(&ns);
        assert_eq!(ring.len(), 3 * 160 + 7);
        assert_eq!(ring.node_count(), 4);
        assert!((1..ring.len()).all(|i| ring.point_at(i - 1) <= ring.point_at(i)));
        let count_of = |idx| (0..ring.len()).filter(|&p| ring.index_at(p) == idx).count();
        assert_eq!(count_of(2), 7);
        assert_eq!(count_of(4), 0);
        assert!(ring.walk(0).all(|i| i != 4));
    }

    #[test]
    fn build_is_deterministic_and_order_independent() {
        let ns = nodes(20, DEFAULT_VNODES);
        let mut reversed = ns.clone();
        reversed.reverse();
        assert_eq!(HashRing::build(&ns), HashRing::build(&ns));
        assert_eq!(HashRing::build(&ns), HashRing::build(&reversed));
    }

    #[test]
    fn first_position_is_first_point_at_or_after_hash() {
        let ring = HashRing::build(&nodes(4, 8));
        for pos in 0..ring.len() {
            let point = ring.point_at(pos);
            assert_eq!(ring.first_position(point), pos);
            if point > 0 && (pos == 0 || ring.point_at(pos - 1) < point - 1) {
                assert_eq!(ring.first_position(point - 1), pos);
            }
        }
        let last = ring.point_at(ring.len() - 1);
        if last < u64::MAX {
            assert_eq!(
                ring.first_position(last + 1),
                0,
                "wraps past the last point"
            );
        }
        let at_max = ring.first_position(u64::MAX);
        assert!(at_max == 0 || (at_max == ring.len() - 1 && last == u64::MAX));
        assert_eq!(ring.first_position(0), 0);
    }

    #[test]
    fn removing_a_node_moves_only_its_keys_to_their_next_node() {
        let all = nodes(10, DEFAULT_VNODES);
        let before = HashRing::build(&all);
        let removed = 3u32;
        let rest: Vec<RingNode> = all.iter().copied().filter(|n| n.index != removed).collect();
        let after = HashRing::build(&rest);
        let mut moved = 0;
        for i in 0..50_000u64 {
            let h = hash_u64(i);
            let old = before.lookup(h).unwrap();
            let new = after.lookup(h).unwrap();
            if old == removed {
                moved += 1;
                // The key falls through to the next distinct node clockwise.
                assert_eq!(new, before.walk(h).nth(1).unwrap());
            } else {
                assert_eq!(new, old, "key {i} moved although its node stayed");
            }
        }
        assert!(moved > 0);
    }

    #[test]
    fn adding_a_node_only_takes_keys_for_itself() {
        let all = nodes(11, DEFAULT_VNODES);
        let before = HashRing::build(&all[..10]);
        let after = HashRing::build(&all);
        for i in 0..50_000u64 {
            let h = hash_u64(i);
            let (old, new) = (before.lookup(h).unwrap(), after.lookup(h).unwrap());
            assert!(new == old || new == 10);
        }
    }

    #[test]
    fn default_vnodes_balance_keys() {
        const NODES: u32 = 10;
        const KEYS: u64 = 200_000;
        let ring = HashRing::build(&nodes(NODES, DEFAULT_VNODES));
        let mut counts = vec![0u64; NODES as usize];
        for i in 0..KEYS {
            counts[ring.lookup(hash_u64(i)).unwrap() as usize] += 1;
        }
        let fair = KEYS as f64 / f64::from(NODES);
        let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
        // 160 vnodes give a per-node share with ~8% relative standard deviation.
        assert!(
            max as f64 / fair < 1.3,
            "max share {max} vs fair {fair}: {counts:?}"
        );
        assert!(
            min as f64 / fair > 0.7,
            "min share {min} vs fair {fair}: {counts:?}"
        );
    }

    #[test]
    fn vnodes_act_as_weights() {
        let mut ns = nodes(2, 100);
        ns[1].vnodes = 300;
        let ring = HashRing::build(&ns);
        let heavy = (0..40_000u64)
            .filter(|&i| ring.lookup(hash_u64(i)) == Some(1))
            .count() as f64;
        let share = heavy / 40_000.0;
        assert!(
            (0.65..0.85).contains(&share),
            "share of the 3x node: {share}"
        );
    }

    #[test]
    fn walk_yields_each_node_once_starting_at_the_owner() {
        let ring = HashRing::build(&nodes(37, DEFAULT_VNODES));
        for i in 0..500u64 {
            let h = hash_u64(i);
            let walk = ring.walk(h);
            assert_eq!(walk.len(), 37);
            let order: Vec<u32> = walk.collect();
            assert_eq!(order[0], ring.lookup(h).unwrap());
            let distinct: HashSet<u32> = order.iter().copied().collect();
            assert_eq!(order.len(), 37);
            assert_eq!(distinct.len(), 37);
        }
    }

    #[test]
    fn walk_follows_the_circle() {
        // The second node of a walk is the owner of the first point after the
        // owner's run of consecutive points.
        let ring = HashRing::build(&nodes(5, 3));
        let start = ring.first_position(hash_u64(77));
        let owner = ring.index_at(start);
        let mut pos = start;
        while ring.index_at(pos) == owner {
            pos = (pos + 1) % ring.len();
        }
        let order: Vec<u32> = ring.walk(hash_u64(77)).take(2).collect();
        assert_eq!(order, vec![owner, ring.index_at(pos)]);
    }

    #[test]
    fn nodes_sharing_an_index_are_one_node() {
        let ns = [
            RingNode {
                key: 1,
                index: 0,
                vnodes: 10,
            },
            RingNode {
                key: 2,
                index: 0,
                vnodes: 10,
            },
            RingNode {
                key: 3,
                index: 1,
                vnodes: 10,
            },
        ];
        let ring = HashRing::build(&ns);
        assert_eq!(ring.len(), 30);
        assert_eq!(ring.node_count(), 2);
        let mut order: Vec<u32> = ring.walk(99).collect();
        order.sort_unstable();
        assert_eq!(order, vec![0, 1]);
    }

    #[test]
    fn single_node_owns_everything() {
        let ring = HashRing::build(&[RingNode {
            key: 5,
            index: 9,
            vnodes: 1,
        }]);
        for h in [0, 1, u64::MAX, hash_u64(3)] {
            assert_eq!(ring.lookup(h), Some(9));
            assert_eq!(ring.walk(h).collect::<Vec<_>>(), vec![9]);
        }
    }

    proptest! {
        #[test]
        fn prop_bucket_index_equals_a_full_binary_search(
            n in 1u32..300,
            vnodes in 1u32..40,
            hashes in proptest::collection::vec(any::<u64>(), 1..50),
        ) {
            let ring = HashRing::build(&nodes(n, vnodes));
            for hash in hashes.into_iter().chain([0, u64::MAX, ring.point_at(0)]) {
                let full = ring.points.partition_point(|&p| p < hash);
                let expected = if full == ring.len() { 0 } else { full };
                prop_assert_eq!(ring.first_position(hash), expected);
            }
        }

        #[test]
        fn prop_walk_is_a_permutation_of_the_nodes(
            vnodes in proptest::collection::vec(0u32..20, 1..40),
            hash: u64,
        ) {
            let ns: Vec<RingNode> = vnodes
                .iter()
                .enumerate()
                .map(|(i, &v)| RingNode { key: hash_u64(i as u64), index: i as u32, vnodes: v })
                .collect();
            let ring = HashRing::build(&ns);
            let mut order: Vec<u32> = ring.walk(hash).collect();
            if let Some(&first) = order.first() {
                prop_assert_eq!(first, ring.index_at(ring.first_position(hash)));
            }
            order.sort_unstable();
            let expected: Vec<u32> = ns.iter().filter(|n| n.vnodes > 0).map(|n| n.index).collect();
            prop_assert_eq!(order, expected);
        }
    }
}
