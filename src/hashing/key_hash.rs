//! The key hash of the crate: xxh3-64 (Yann Collet's XXH3, 64-bit variant, seed 0).
//!
//! Why xxh3: it is among the fastest high-quality non-cryptographic hashes for the
//! short keys a router sees (session ids, prompt-prefix digests, tenant names), it
//! passes SMHasher, and its output is *specified*: the same bytes give the same
//! 64-bit value on every platform, endianness and release of the algorithm (the XXH3
//! format has been frozen since xxHash 0.8.0). That stability matters because the
//! hashes decide placement; a router restart or an upgrade must not remap keys.
//!
//! Integer keys are hashed as their 8 little-endian bytes rather than used as is:
//! ids such as 0, 1, 2, ... would otherwise crowd a tiny arc of a hash ring, and
//! `x % m` of raw ids would be far from random. Hashing them through xxh3 spreads
//! them over the whole 64-bit space.
//!
//! The functions are not keyed with a secret: an adversary who can choose keys can
//! choose colliding ones. That is acceptable for load placement (the worst case is
//! an uneven but still bounded distribution, which bounded-load strategies absorb);
//! do not use these hashes where collision resistance is a security property.

use xxhash_rust::xxh3::xxh3_64;

/// Hashes a byte string with xxh3-64 (seed 0).
///
/// Promise: the result depends only on `bytes`, never on the platform, the process
/// or the crate version; it equals the reference `XXH3_64bits(bytes, len)`.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// Hashes an integer key: xxh3-64 of its 8 little-endian bytes.
///
/// Promise: `hash_u64(k) == hash_bytes(&k.to_le_bytes())`, so a key hashed here and
/// the same key hashed from its byte encoding elsewhere agree. Consecutive integers
/// give unrelated, uniformly spread results.
#[inline]
pub fn hash_u64(key: u64) -> u64 {
    xxh3_64(&key.to_le_bytes())
}

/// Hashes an ordered pair of integers: xxh3-64 of the 16 bytes `a` (little endian)
/// followed by `b` (little endian).
///
/// Used for derived points such as "virtual node `b` of node `a`" on a hash ring, or
/// the two independent hashes of a Maglev node. Promise: equals
/// `hash_bytes(&[a.to_le_bytes(), b.to_le_bytes()].concat())`; `(a, b)` and `(b, a)`
/// hash differently, and unlike a seeded hash of `a` alone, both words go through
/// xxh3's full 16-byte mixing, so structured pairs (small ids, small replica numbers)
/// do not produce related outputs.
#[inline]
pub fn hash_pair(a: u64, b: u64) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&a.to_le_bytes());
    buf[8..].copy_from_slice(&b.to_le_bytes());
    xxh3_64(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_matches_reference_xxh3() {
        // XXH3_64bits("", 0) from the reference implementation's sanity table.
        assert_eq!(hash_bytes(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn values_are_pinned_across_releases() {
        // Regression pins: if any of these change, every placement in a deployed
        // fleet would move. They were recorded from xxhash-rust 0.8 and must never
        // be updated to make a test pass.
        assert_eq!(hash_bytes(b"fleetroute"), PIN_FLEETROUTE);
        assert_eq!(hash_u64(0), PIN_U64_0);
        assert_eq!(hash_u64(1), PIN_U64_1);
        assert_eq!(hash_pair(7, 3), PIN_PAIR_7_3);
    }

    const PIN_FLEETROUTE: u64 = 0xB13D_7F57_E27B_E708;
    const PIN_U64_0: u64 = 0xC77B_3ABB_6F87_ACD9;
    const PIN_U64_1: u64 = 0x2FBC_5935_64DB_792E;
    const PIN_PAIR_7_3: u64 = 0x7864_09C0_51B4_5993;

    #[test]
    fn u64_and_pair_agree_with_their_byte_encodings() {
        for k in [0u64, 1, 42, u64::MAX, 0x0123_4567_89AB_CDEF] {
            assert_eq!(hash_u64(k), hash_bytes(&k.to_le_bytes()));
            let pair: Vec<u8> = [k.to_le_bytes(), (!k).to_le_bytes()].concat();
            assert_eq!(hash_pair(k, !k), hash_bytes(&pair));
        }
    }

    #[test]
    fn pair_is_order_sensitive() {
        assert_ne!(hash_pair(1, 2), hash_pair(2, 1));
        assert_ne!(hash_pair(0, 1), hash_u64(0));
    }

    #[test]
    fn consecutive_integers_spread_over_the_top_bits() {
        // 64 buckets on the top 6 bits; 64_000 consecutive keys. A uniform spread
        // gives chi-square ~ 63 +- 11; raw integers would all land in bucket 0.
        const BUCKETS: usize = 64;
        const KEYS: u64 = 64_000;
        let mut counts = [0u64; BUCKETS];
        for k in 0..KEYS {
            counts[(hash_u64(k) >> 58) as usize] += 1;
        }
        let expected = KEYS as f64 / BUCKETS as f64;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 120.0, "chi-square {chi2} too high: {counts:?}");
    }

    #[test]
    fn single_bit_flips_change_about_half_the_output_bits() {
        // Avalanche: flipping one input bit flips ~32 output bits on average.
        let mut total = 0u32;
        let mut n = 0u32;
        for k in 0..256u64 {
            for bit in 0..64 {
                total += (hash_u64(k) ^ hash_u64(k ^ (1 << bit))).count_ones();
                n += 1;
            }
        }
        let mean = f64::from(total) / f64::from(n);
        assert!((30.0..34.0).contains(&mean), "mean flipped bits {mean}");
    }
}
