//! Jump consistent hash (John Lamping and Eric Veach, "A Fast, Minimal Memory,
//! Consistent Hash Algorithm", Google, 2014, arXiv:1406.2294).
//!
//! Maps a 64-bit key to one of `n` buckets `0..n` with no memory at all, in
//! O(ln n) steps, with a perfectly even expected spread, and with *minimal
//! movement*: growing from `n` to `n + 1` buckets moves exactly the keys that now
//! belong to the new bucket `n` (an expected `1 / (n + 1)` of them) and no other.
//!
//! Why it is here: it is the cheapest consistent hash when the targets are numbered
//! shards whose count only grows or shrinks at the end (replicas of a model server,
//! KV-cache partitions). It cannot remove a bucket from the middle; use
//! [`super::ring::HashRing`] or [`super::maglev::MaglevTable`] for fleets where any
//! member may leave.
//!
//! The implementation is a literal transcription of the paper's C++ function
//! `JumpConsistentHash`, including its 64-bit linear congruential generator
//! (multiplier 2862933555777941757, increment 1) and its floating-point jump step, so
//! it returns the same bucket as every other faithful implementation (Guava's
//! `Hashing.consistentHash`, Go's `dgryski/go-jump`, ...). Keys should already be
//! well mixed (e.g. from [`super::key_hash`]); the LCG scrambles sequential keys
//! acceptably but the paper assumes a hashed key.

use crate::error::{Result, RouterError};

/// The paper's 64-bit LCG multiplier (Knuth's MMIX constant family).
const LCG_MULTIPLIER: u64 = 2_862_933_555_777_941_757;

/// `(double)(1LL << 31)` in the paper's jump step.
const TWO_POW_31: f64 = (1u64 << 31) as f64;

/// Maps `key` to a bucket in `0..buckets` with Lamping & Veach's jump hash.
///
/// Promises:
/// - the result is `< buckets` and depends only on `(key, buckets)`;
/// - for `buckets <= i32::MAX`, it equals the paper's `JumpConsistentHash(key,
///   buckets)` bit for bit (larger counts, which the paper's `int32_t` cannot hold,
///   follow the same arithmetic);
/// - monotonicity: `jump_hash(k, n + 1)` is either `jump_hash(k, n)` or `n`.
///
/// # Errors
/// [`RouterError::InvalidArgument`] naming `buckets` when `buckets == 0`.
pub fn jump_hash(key: u64, buckets: u32) -> Result<u32> {
    if buckets == 0 {
        return Err(RouterError::invalid("buckets", "must be at least 1, got 0"));
    }
    let mut key = key;
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(LCG_MULTIPLIER).wrapping_add(1);
        // The paper's step. `(b + 1) * 2^31 / (x + 1)` can exceed i64 only when it
        // also exceeds every u32 bucket count; Rust's saturating float-to-int cast
        // then ends the loop exactly as the (well-defined) C++ result would.
        j = ((b + 1) as f64 * (TWO_POW_31 / ((key >> 33) + 1) as f64)) as i64;
    }
    // The loop body ran at least once (j = 0 < buckets), so 0 <= b < buckets.
    Ok(b as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hashing::key_hash::hash_u64;
    use proptest::prelude::*;

    /// Direct transcription of the paper's C++ code, types and all:
    ///
    /// ```c++
    /// int32_t JumpConsistentHash(uint64_t key, int32_t num_buckets) {
    ///     int64_t b = -1, j = 0;
    ///     while (j < num_buckets) {
    ///         b = j;
    ///         key = key * 2862933555777941757ULL + 1;
    ///         j = (b + 1) * (double(1LL << 31) / double((key >> 33) + 1));
    ///     }
    ///     return b;
    /// }
    /// ```
    fn paper_jump_consistent_hash(mut key: u64, num_buckets: i32) -> i32 {
        let (mut b, mut j): (i64, i64) = (-1, 0);
        while j < i64::from(num_buckets) {
            b = j;
            key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
            j = ((b + 1) as f64 * ((1i64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
        }
        b as i32
    }

    fn jump(key: u64, buckets: u32) -> u32 {
        jump_hash(key, buckets).unwrap()
    }

    #[test]
    fn zero_buckets_is_rejected_naming_buckets() {
        match jump_hash(42, 0) {
            Err(RouterError::InvalidArgument { what, .. }) => assert_eq!(what, "buckets"),
            other => panic!("expected InvalidArgument(buckets), got {other:?}"),
        }
    }

    #[test]
    fn one_bucket_takes_every_key() {
        for k in [0, 1, u64::MAX, hash_u64(9)] {
            assert_eq!(jump(k, 1), 0);
        }
    }

    #[test]
    fn matches_guava_golden_values() {
        // Guava's HashingTest.testConsistentHash_linearCongruentialGeneratorCompatibility,
        // an independent implementation of the same algorithm.
        let golden100 = [
            0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83,
        ];
        for (key, &want) in golden100.iter().enumerate() {
            assert_eq!(jump(key as u64, 100), want, "key {key}");
        }
        assert_eq!(jump(10_863_919_174_838_991, 11), 6);
        assert_eq!(jump(2_016_238_256_797_177_309, 11), 3);
        assert_eq!(jump(1_673_758_223_894_951_030, 11), 5);
        assert_eq!(jump(2, 100_001), 80_343);
        assert_eq!(jump(2201, 100_001), 22_152);
        assert_eq!(jump(2202, 100_001), 15_018);
    }

    #[test]
    fn matches_paper_transcription_on_a_grid() {
        let bucket_counts = [1, 2, 3, 7, 10, 64, 100, 1000, 65_537, 1 << 20, i32::MAX];
        for i in 0..2000u64 {
            for key in [i, hash_u64(i), u64::MAX - i] {
                for &n in &bucket_counts {
                    assert_eq!(
                        jump(key, n as u32) as i32,
                        paper_jump_consistent_hash(key, n),
                        "key {key} buckets {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn growing_moves_keys_only_to_the_new_bucket() {
        for i in 0..2000u64 {
            let key = hash_u64(i);
            let mut prev = jump(key, 1);
            for n in 1..300u32 {
                let next = jump(key, n + 1);
                assert!(
                    next == prev || next == n,
                    "key {key}: {prev} -> {next} at n={n}"
                );
                prev = next;
            }
        }
    }

    #[test]
    fn growing_moves_about_one_in_n_plus_one_keys() {
        const KEYS: u64 = 100_000;
        let n = 9;
        let moved = (0..KEYS)
            .filter(|&i| jump(hash_u64(i), n) != jump(hash_u64(i), n + 1))
            .count() as f64;
        let expected = KEYS as f64 / f64::from(n + 1);
        assert!((moved - expected).abs() < 0.05 * expected, "moved {moved}");
    }

    #[test]
    fn spread_is_uniform() {
        // 37 buckets, 185_000 keys: chi-square has 36 degrees of freedom
        // (mean 36, sd 8.5); 80 is beyond the 99.99th percentile.
        const BUCKETS: u32 = 37;
        const KEYS: u64 = 185_000;
        let mut counts = vec![0u64; BUCKETS as usize];
        for i in 0..KEYS {
            counts[jump(hash_u64(i), BUCKETS) as usize] += 1;
        }
        let expected = KEYS as f64 / f64::from(BUCKETS);
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 80.0, "chi-square {chi2}: {counts:?}");
    }

    proptest! {
        #[test]
        fn prop_result_is_in_range(key: u64, buckets in 1u32..=u32::MAX) {
            prop_assert!(jump(key, buckets) < buckets);
        }

        #[test]
        fn prop_monotone_when_growing(key: u64, n in 1u32..u32::MAX) {
            let before = jump(key, n);
            let after = jump(key, n + 1);
            prop_assert!(after == before || after == n);
        }

        #[test]
        fn prop_matches_paper(key: u64, buckets in 1i32..=i32::MAX) {
            let ours = jump(key, buckets as u32) as i32;
            prop_assert_eq!(ours, paper_jump_consistent_hash(key, buckets));
        }
    }
}
