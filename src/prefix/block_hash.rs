//! Chained block hashes of a prompt: the keys of the prefix-cache affinity index.
//!
//! A prompt (its bytes, or its token ids) is cut into whole blocks of `block_size`
//! units, and block `i` is hashed together with the hash of block `i - 1`:
//!
//! ```text
//! h[-1] = root(kind, block_size)
//! h[i]  = xxh3_64( h[i-1] as 8 little-endian bytes ‖ bytes of block i )
//! ```
//!
//! Why chained: a model server's prefix cache (vLLM's automatic prefix caching,
//! SGLang's radix cache) can only reuse the KV state of block `i` if every earlier
//! block is identical too, because attention at block `i` depends on all tokens
//! before it. Chaining makes `h[i]` a name for the *entire* prefix `0..=i`, not just
//! for the contents of block `i`: two prompts share `h[i]` exactly when (up to a 64-bit
//! collision) they share their first `i + 1` blocks. The index can therefore key
//! each block on its own, and a hit on block `k` alone proves that the replica served
//! the whole prefix up to `k` (see [`super::prefix_index`]). This is the scheme of
//! vLLM's block hashes and of llm-d's prefix scorer
//! (gateway-api-inference-extension, `plugins/multi/prefix`).
//!
//! Only whole blocks count: a trailing partial block is ignored, as a server's cache
//! only holds full blocks. A prompt shorter than one block yields no hashes at all,
//! and routes as a cache miss.
//!
//! The root differs between byte and token input and between block sizes, so the
//! hashes of the same data cut differently, or read as bytes versus token ids, never
//! alias each other. Like the crate's key hash (`hashing::key_hash`) they are unkeyed xxh3 and
//! deterministic across platforms and processes; an adversary can craft colliding
//! prompts, which at worst misplaces their own requests.

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Result, RouterError};

/// Root tag for byte input (`prefix_block_hashes`).
const BYTES_ROOT_TAG: u64 = 0x6672_2e62_7974_6573; // "fr.bytes"
/// Root tag for token input (`prefix_block_hashes_tokens`).
const TOKENS_ROOT_TAG: u64 = 0x6672_2e74_6f6b_656e; // "fr.token"

/// Checks a block size: at least 1 unit (byte or token).
///
/// # Errors
/// [`RouterError::InvalidArgument`] naming `block_size` when it is 0.
pub fn validate_block_size(block_size: usize) -> Result<()> {
    if block_size == 0 {
        return Err(RouterError::invalid(
            "block_size",
            "block_size must be at least 1 (got 0)",
        ));
    }
    Ok(())
}

/// The chain's starting value: xxh3 of the 16 bytes `tag ‖ block_size` (both little
/// endian), so the kind of input and the block size are part of every hash.
fn root(tag: u64, block_size: usize) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&tag.to_le_bytes());
    buf[8..].copy_from_slice(&(block_size as u64).to_le_bytes());
    xxh3_64(&buf)
}

/// Chained hashes of the whole `block_size`-byte blocks of `text`, one per block,
/// in prompt order.
///
/// Promises: the result has `text.len() / block_size` entries; `h[i]` depends on
/// `text[..(i + 1) * block_size]` and `block_size` only, so two texts that share
/// their first `k` whole blocks share their first `k` hashes, and (up to 64-bit
/// collisions) differ from then on. Deterministic across platforms and processes.
///
/// # Errors
/// [`RouterError::InvalidArgument`] naming `block_size` when it is 0.
pub fn prefix_block_hashes(text: &[u8], block_size: usize) -> Result<Vec<u64>> {
    validate_block_size(block_size)?;
    let blocks = text.chunks_exact(block_size);
    let mut hashes = Vec::with_capacity(blocks.len());
    if blocks.len() == 0 {
        return Ok(hashes);
    }
    let mut buf = vec![0u8; 8 + block_size];
    let mut prev = root(BYTES_ROOT_TAG, block_size);
    for block in blocks {
        buf[..8].copy_from_slice(&prev.to_le_bytes());
        buf[8..].copy_from_slice(block);
        prev = xxh3_64(&buf);
        hashes.push(prev);
    }
    Ok(hashes)
}

/// Chained hashes of the whole `block_size`-token blocks of `tokens`; each token id
/// enters the hash as its 4 little-endian bytes.
///
/// Use this when the router sees token ids (it tokenises, or the client sends them):
/// with `block_size` equal to the servers' KV block size (vLLM's default is 16) the
/// blocks line up with the servers' own cache blocks. Same promises and errors as
/// [`prefix_block_hashes`]; the hashes of token input never equal those of byte
/// input.
pub fn prefix_block_hashes_tokens(tokens: &[u32], block_size: usize) -> Result<Vec<u64>> {
    validate_block_size(block_size)?;
    let blocks = tokens.chunks_exact(block_size);
    let mut hashes = Vec::with_capacity(blocks.len());
    if blocks.len() == 0 {
        return Ok(hashes);
    }
    let mut buf = vec![0u8; 8 + 4 * block_size];
    let mut prev = root(TOKENS_ROOT_TAG, block_size);
    for block in blocks {
        buf[..8].copy_from_slice(&prev.to_le_bytes());
        for (dst, token) in buf[8..].chunks_exact_mut(4).zip(block) {
            dst.copy_from_slice(&token.to_le_bytes());
        }
        prev = xxh3_64(&buf);
        hashes.push(prev);
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_the_documented_chain() {
        let text = b"abcdefghij"; // two whole 4-byte blocks and a partial one
        let h0 = xxh3_64(&[&root(BYTES_ROOT_TAG, 4).to_le_bytes()[..], b"abcd"].concat());
        let h1 = xxh3_64(&[&h0.to_le_bytes()[..], b"efgh"].concat());
        assert_eq!(prefix_block_hashes(text, 4).unwrap(), vec![h0, h1]);

        let tokens = [1u32, 2, 3, 0x0102_0304];
        let t0 = xxh3_64(
            &[
                &root(TOKENS_ROOT_TAG, 2).to_le_bytes()[..],
                &[1, 0, 0, 0, 2, 0, 0, 0],
            ]
            .concat(),
        );
        let t1 = xxh3_64(&[&t0.to_le_bytes()[..], &[3, 0, 0, 0, 4, 3, 2, 1]].concat());
        assert_eq!(
            prefix_block_hashes_tokens(&tokens, 2).unwrap(),
            vec![t0, t1]
        );
    }

    #[test]
    fn shared_prefixes_agree_and_then_diverge() {
        let system = format!("{:<48}", "You are a helpful assistant. Answer briefly.");
        let a = [
            system.as_bytes(),
            b"What is the capital of France? Please answer.",
        ]
        .concat();
        let b = [
            system.as_bytes(),
            b"Tell me a joke about routers and load balancers.",
        ]
        .concat();
        let (ha, hb) = (
            prefix_block_hashes(&a, 16).unwrap(),
            prefix_block_hashes(&b, 16).unwrap(),
        );
        assert_eq!(ha.len(), a.len() / 16);
        assert_eq!(ha[..3], hb[..3], "the 3 system-prompt blocks are shared");
        assert!(ha[3..].iter().zip(&hb[3..]).all(|(x, y)| x != y));
    }

    #[test]
    fn equal_blocks_at_different_depths_hash_differently() {
        // The same block contents after different prefixes: a per-block hash would
        // collide, the chained one must not.
        let a = prefix_block_hashes(b"XXXXsame", 4).unwrap();
        let b = prefix_block_hashes(b"YYYYsame", 4).unwrap();
        assert_ne!(a[1], b[1]);
        // A repeated block within one prompt does not repeat its hash either.
        let r = prefix_block_hashes(b"samesamesame", 4).unwrap();
        assert!(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
    }

    #[test]
    fn partial_blocks_are_ignored() {
        assert!(prefix_block_hashes(b"abc", 4).unwrap().is_empty());
        assert!(prefix_block_hashes(b"", 1).unwrap().is_empty());
        assert!(prefix_block_hashes_tokens(&[7; 15], 16).unwrap().is_empty());
        assert_eq!(
            prefix_block_hashes(b"abcdefg", 4).unwrap(),
            prefix_block_hashes(b"abcdXYZ", 4).unwrap()
        );
    }

    #[test]
    fn kind_and_block_size_are_part_of_the_hash() {
        // The 4 bytes "abcd" read as one little-endian token id, and the same bytes.
        let token = u32::from_le_bytes(*b"abcd");
        assert_ne!(
            prefix_block_hashes(b"abcd", 4).unwrap(),
            prefix_block_hashes_tokens(&[token], 1).unwrap()
        );
        let by2 = prefix_block_hashes(b"abcd", 2).unwrap();
        let by4 = prefix_block_hashes(b"abcd", 4).unwrap();
        assert_ne!(by2[1], by4[0]);
    }

    #[test]
    fn zero_block_size_is_refused_by_name() {
        for err in [
            prefix_block_hashes(b"abc", 0).unwrap_err(),
            prefix_block_hashes_tokens(&[1, 2], 0).unwrap_err(),
        ] {
            assert!(matches!(
                err,
                RouterError::InvalidArgument {
                    what: "block_size",
                    ..
                }
            ));
            assert!(err.to_string().contains("block_size"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn hashes_of_a_prefix_are_a_prefix_of_the_hashes(
            text in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..300,
            block_size in 1usize..40,
        ) {
            let full = prefix_block_hashes(&text, block_size).unwrap();
            prop_assert_eq!(full.len(), text.len() / block_size);
            let head = &text[..cut.min(text.len())];
            let part = prefix_block_hashes(head, block_size).unwrap();
            prop_assert_eq!(&full[..part.len()], &part[..]);
        }

        #[test]
        fn token_hashes_of_a_prefix_are_a_prefix_of_the_hashes(
            tokens in proptest::collection::vec(any::<u32>(), 0..200),
            cut in 0usize..200,
            block_size in 1usize..20,
        ) {
            let full = prefix_block_hashes_tokens(&tokens, block_size).unwrap();
            prop_assert_eq!(full.len(), tokens.len() / block_size);
            let part = prefix_block_hashes_tokens(&tokens[..cut.min(tokens.len())], block_size)
                .unwrap();
            prop_assert_eq!(&full[..part.len()], &part[..]);
        }
    }
}
