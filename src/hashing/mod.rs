//! Consistent hashing building blocks: how a request key becomes a target slot.
//!
//! Every function here is deterministic and platform independent, so two router
//! processes (or a router and its simulation) that see the same fleet send the same
//! key to the same slot. The pieces, one concept per file:
//!
//! - [`key_hash`]: the one key hash of the crate (xxh3-64), for byte strings and for
//!   integer keys.
//! - [`jump`]: Lamping & Veach's jump consistent hash (2014): no memory, perfect
//!   balance, minimal movement, but buckets can only be added or removed at the end.
//! - [`ring`]: a ketama-style ring with virtual nodes (Karger et al. 1997, libketama):
//!   any node can leave, and [`HashRing::walk`] yields the fallback order that bounded
//!   load consistent hashing spills a hot key along.
//! - [`maglev`]: Google's Maglev lookup table (Eisenbud et al., NSDI 2016) with
//!   Envoy's weighting: O(1) lookups, near-perfect balance, weights.
//!
//! These are building blocks only: they map hashes to the caller's slot indices and
//! know nothing about load or capacity.

pub mod jump;
pub mod key_hash;
pub mod maglev;
pub mod ring;

pub use jump::jump_hash;
pub use key_hash::{hash_bytes, hash_pair, hash_u64};
pub use maglev::{maglev_table_size, MaglevNode, MaglevTable};
pub use ring::{HashRing, RingNode, RingWalk, DEFAULT_VNODES};
