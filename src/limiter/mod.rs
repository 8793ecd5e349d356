//! Rate limiting with GCRA token buckets, lock-free.
//!
//! A router must shed or delay requests before they reach an accelerator: per
//! tenant quotas, per provider API limits (requests or tokens per second), or a
//! global admission rate. Each limit here is a token bucket of `burst` tokens
//! refilled at `rate_per_s`, implemented with the Generic Cell Rate Algorithm
//! (ITU-T I.371; as in the Rust `governor` crate), whose entire state is one
//! timestamp in one `AtomicU64`. Acquiring is a compare-exchange loop: no lock, no
//! background refill task, exact under contention (never more than
//! `burst + rate * elapsed` tokens), and a refusal says exactly how long to wait.
//!
//! - [`TokenBucket`]: one bucket.
//! - [`KeyedTokenBucket`]: one bucket per `u64` key, all with the same quota, in a
//!   lock-free map, with lossless pruning of idle keys to bound memory.
//!
//! Time is explicit: every decision has a `*_at(now_ns)` form taking nanoseconds
//! from the caller's origin (tests and the simulator drive it deterministically),
//! plus a convenience form on a monotonic clock started when the limiter was made.

mod gcra;
pub mod keyed;
pub mod token_bucket;

pub use keyed::KeyedTokenBucket;
pub use token_bucket::{Acquire, TokenBucket};
