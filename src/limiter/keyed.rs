//! Per-key token buckets sharing one quota, in a lock-free concurrent map.
//!
//! Each key (a tenant, an API key, a session; strings are hashed to `u64` with
//! [`crate::hashing::hash_bytes`]) gets its own GCRA state (module `gcra`), one
//! `AtomicU64` in a [`papaya::HashMap`]. Reads of an existing key take no lock
//! (papaya is a lock-free map with epoch-based reclamation), so the hot path is a
//! map probe plus the same compare-exchange as [`super::TokenBucket`]. This is the
//! `governor` crate's keyed limiter design (a concurrent map of GCRA timestamps),
//! built on papaya instead of dashmap's sharded locks.
//!
//! Memory is bounded by [`KeyedTokenBucket::retain_active`]. A key whose TAT is at
//! or before `now` has a full bucket, and a full bucket behaves exactly like a key
//! never seen (an absent key is created full), so dropping it loses nothing. The
//! removal must not race with a grant on the same key, or a token granted into the
//! dying state would be forgotten and the key refilled early: the pruner first
//! swaps the TAT for a tombstone (`NEVER_TAT`, a value no grant stores) with a
//! compare-exchange that fails if anyone was granted in between, and only then
//! removes the entry; an acquirer that meets a tombstone helps remove it and starts
//! over on a fresh entry. Every grant therefore lands either before the tombstone
//! (and the prune was justified) or in a live entry.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::gcra::{Gcra, Step, NEVER_TAT};
use super::token_bucket::{acquire_on, nanos_since, refund_on, Acquire};
use crate::error::Result;

/// One token bucket per `u64` key, all with the same rate and burst.
///
/// Keys are created full on first use. Every method takes `&self` and is safe to
/// call from any number of threads, including [`Self::retain_active`] concurrently
/// with acquires.
pub struct KeyedTokenBucket {
    gcra: Gcra,
    /// GCRA TAT per key; [`NEVER_TAT`] marks an entry being removed.
    states: papaya::HashMap<u64, AtomicU64>,
    /// Origin of [`KeyedTokenBucket::now_ns`].
    epoch: Instant,
}

impl fmt::Debug for KeyedTokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedTokenBucket")
            .field("rate_per_s", &self.gcra.rate_per_s())
            .field("burst", &self.gcra.burst())
            .field("keys", &self.states.len())
            .finish()
    }
}

impl KeyedTokenBucket {
    /// An empty limiter: every key starts with a full bucket of `burst` tokens,
    /// refilled at `rate_per_s`.
    ///
    /// # Errors
    /// As [`super::TokenBucket::new`]: [`crate::RouterError::InvalidArgument`]
    /// naming `rate_per_s` or `burst`.
    pub fn new(rate_per_s: f64, burst: f64) -> Result<Self> {
        Ok(KeyedTokenBucket {
            gcra: Gcra::new(rate_per_s, burst)?,
            states: papaya::HashMap::new(),
            epoch: Instant::now(),
        })
    }

    /// Takes `n` tokens from `key`'s bucket at `now_ns` (ns from the caller's
    /// origin) if it holds them.
    ///
    /// Promises: each key behaves exactly like its own [`super::TokenBucket`];
    /// `n == 0` is granted without creating the key; a denial changes nothing;
    /// a key's grants never exceed `burst + rate * elapsed`, whatever the
    /// concurrency and pruning.
    ///
    /// # Errors
    /// [`crate::RouterError::InvalidArgument`] naming `n` when `n > burst`.
    pub fn try_acquire_at(&self, key: u64, n: u32, now_ns: u64) -> Result<Acquire> {
        self.gcra.check_n(n)?;
        if n == 0 {
            return Ok(Acquire::Granted);
        }
        let states = self.states.pin();
        loop {
            if let Some(state) = states.get(&key) {
                if let Some(outcome) = acquire_on(&self.gcra, state, n, now_ns, Some(NEVER_TAT)) {
                    return Ok(outcome);
                }
                // A pruner retired this entry and may not have removed it yet:
                // remove it ourselves (only a tombstoned entry matches), then retry.
                let _ = states.remove_if(&key, |_, v| v.load(Ordering::Acquire) == NEVER_TAT);
                continue;
            }
            // Absent: the key is fresh, i.e. full (TAT 0 <= now).
            let new_tat = match self.gcra.step(0, n, now_ns) {
                Step::Grant(tat) => tat,
                // Only when the clock is within `burst / rate` of u64::MAX.
                Step::Deny(retry_after_ns) => return Ok(Acquire::Denied { retry_after_ns }),
            };
            if states.try_insert(key, AtomicU64::new(new_tat)).is_ok() {
                return Ok(Acquire::Granted);
            }
            // Another thread created the key first: decide against its state.
        }
    }

    /// [`Self::try_acquire_at`] at [`Self::now_ns`], the monotonic clock.
    ///
    /// # Errors
    /// As [`Self::try_acquire_at`].
    pub fn try_acquire(&self, key: u64, n: u32) -> Result<Acquire> {
        self.try_acquire_at(key, n, self.now_ns())
    }

    /// Gives back `n` tokens to `key`'s bucket (see [`super::TokenBucket::refund`]).
    /// An unknown or pruned key is already full, so nothing changes for it.
    ///
    /// # Errors
    /// [`crate::RouterError::InvalidArgument`] naming `n` when `n > burst`.
    pub fn refund(&self, key: u64, n: u32) -> Result<()> {
        self.gcra.check_n(n)?;
        if let Some(state) = self.states.pin().get(&key) {
            refund_on(&self.gcra, state, n, Some(NEVER_TAT));
        }
        Ok(())
    }

    /// Tokens in `key`'s bucket at `now_ns`, in `[0, burst]`; `burst` for an
    /// unknown key. For metrics: a concurrent acquire may take them first.
    pub fn available_at(&self, key: u64, now_ns: u64) -> f64 {
        let states = self.states.pin();
        match states.get(&key).map(|s| s.load(Ordering::Acquire)) {
            Some(tat) if tat != NEVER_TAT => self.gcra.available(tat, now_ns),
            _ => self.gcra.burst(),
        }
    }

    /// Removes every key whose bucket is full at `now_ns` (TAT <= now) and returns
    /// how many it removed.
    ///
    /// Lossless: a removed key behaves exactly as before for every later call
    /// with a time >= `now_ns`, because it is recreated full and it was full. (A
    /// later call with an *earlier* time, e.g. from a thread that read the clock
    /// before the prune, sees a full bucket where the old state would have made it
    /// wait the difference at most.) Safe to run concurrently with acquires: a
    /// grant racing with the removal is never lost. Costs one pass over the map.
    pub fn retain_active(&self, now_ns: u64) -> usize {
        let states = self.states.pin();
        let mut removed = 0;
        for (key, state) in states.iter() {
            let tat = state.load(Ordering::Acquire);
            if tat == NEVER_TAT || tat > now_ns {
                continue;
            }
            // Tombstone first: fails if a grant changed the TAT since the load.
            if state
                .compare_exchange(tat, NEVER_TAT, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                removed += 1;
                let _ = states.remove_if(key, |_, v| v.load(Ordering::Acquire) == NEVER_TAT);
            }
        }
        removed
    }

    /// Number of keys with a state (including, briefly, ones being removed).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True when no key has a state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Nanoseconds since this limiter was created, on the monotonic clock: the
    /// time base of [`Self::try_acquire`].
    pub fn now_ns(&self) -> u64 {
        nanos_since(self.epoch)
    }

    /// The configured refill rate per key, tokens per second.
    pub fn rate_per_s(&self) -> f64 {
        self.gcra.rate_per_s()
    }

    /// The configured capacity per key, tokens.
    pub fn burst(&self) -> f64 {
        self.gcra.burst()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RouterError;
    use crate::hashing::hash_bytes;
    use crate::limiter::TokenBucket;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU32;

    const SEC: u64 = 1_000_000_000;

    fn granted(l: &KeyedTokenBucket, key: u64, n: u32, now: u64) -> bool {
        l.try_acquire_at(key, n, now).unwrap().is_granted()
    }

    #[test]
    fn new_validates_parameters() {
        for (rate, burst, name) in [(0.0, 1.0, "rate_per_s"), (1.0, 0.0, "burst")] {
            match KeyedTokenBucket::new(rate, burst) {
                Err(RouterError::InvalidArgument { what, .. }) => assert_eq!(what, name),
                other => panic!("{other:?}"),
            }
        }
        let l = KeyedTokenBucket::new(4.0, 2.0).unwrap();
        assert_eq!((l.rate_per_s(), l.burst()), (4.0, 2.0));
        assert!(l.is_empty());
        assert!(format!("{l:?}").contains("KeyedTokenBucket"));
    }

    #[test]
    fn refund_returns_tokens_to_one_key_only() {
        let limiter = KeyedTokenBucket::new(1.0, 2.0).unwrap();
        let now = 7 * 1_000_000_000;
        for key in [1, 2] {
            for _ in 0..2 {
                assert!(limiter.try_acquire_at(key, 1, now).unwrap().is_granted());
            }
        }
        limiter.refund(1, 1).unwrap();
        limiter.refund(99, 1).unwrap(); // unknown: already full, nothing created
        assert_eq!(limiter.len(), 2);
        assert!(limiter.try_acquire_at(1, 1, now).unwrap().is_granted());
        assert!(!limiter.try_acquire_at(2, 1, now).unwrap().is_granted());
        assert!(limiter.refund(1, 3).is_err());
    }

    #[test]
    fn keys_are_independent() {
        let l = KeyedTokenBucket::new(1.0, 2.0).unwrap();
        let (a, b) = (hash_bytes(b"tenant-a"), hash_bytes(b"tenant-b"));
        assert!(granted(&l, a, 2, 0));
        assert_eq!(
            l.try_acquire_at(a, 1, 0).unwrap(),
            Acquire::Denied {
                retry_after_ns: SEC
            }
        );
        assert!(granted(&l, b, 1, 0));
        assert!(granted(&l, b, 1, 0));
        assert!(!granted(&l, b, 1, 0));
        assert_eq!(l.len(), 2);
        assert_eq!(l.available_at(a, SEC / 2), 0.5);
        assert_eq!(l.available_at(hash_bytes(b"unknown"), 0), 2.0);
    }

    #[test]
    fn zero_tokens_and_oversized_requests_create_nothing() {
        let l = KeyedTokenBucket::new(1.0, 3.0).unwrap();
        assert!(granted(&l, 7, 0, 0));
        match l.try_acquire_at(7, 4, 0) {
            Err(RouterError::InvalidArgument { what, .. }) => assert_eq!(what, "n"),
            other => panic!("{other:?}"),
        }
        assert!(l.is_empty());
    }

    #[test]
    fn retain_active_removes_only_full_buckets() {
        let l = KeyedTokenBucket::new(1.0, 3.0).unwrap();
        for key in 0..10u64 {
            // Key k takes k % 4 tokens at t = 0 (k % 4 == 0 takes none: no entry).
            let n = (key % 4) as u32;
            assert!(granted(&l, key, n, 0));
        }
        assert_eq!(l.len(), 7);
        // At t = 1 s, keys that took 1 token are full again (TAT = 1 s).
        assert_eq!(l.retain_active(SEC), 3);
        assert_eq!(l.len(), 4);
        assert_eq!(l.retain_active(SEC), 0);
        assert_eq!(l.retain_active(3 * SEC), 4);
        assert!(l.is_empty());
    }

    #[test]
    fn pruning_is_lossless() {
        let l = KeyedTokenBucket::new(2.0, 3.0).unwrap();
        let reference = TokenBucket::new(2.0, 3.0).unwrap();
        let key = hash_bytes(b"session-42");
        let mut now = 0;
        for step in 0..400u64 {
            now += (step * 7_919_777) % (SEC / 3);
            if step % 3 == 0 {
                l.retain_active(now);
            }
            let n = (step % 3) as u32 + 1;
            assert_eq!(
                l.try_acquire_at(key, n, now).unwrap(),
                reference.try_acquire_at(n, now).unwrap(),
                "step {step}"
            );
        }
    }

    #[test]
    fn contended_keys_each_grant_exactly_their_burst() {
        const THREADS: u32 = 4;
        const KEYS: u64 = 64;
        let l = KeyedTokenBucket::new(1.0, 10.0).unwrap();
        let per_key: Vec<AtomicU32> = (0..KEYS).map(|_| AtomicU32::new(0)).collect();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (l, per_key) = (&l, &per_key);
                s.spawn(move || {
                    for round in 0..40u64 {
                        for k in 0..KEYS {
                            let key = (k + round + u64::from(t)) % KEYS;
                            if granted(l, key, 1, 3 * SEC) {
                                per_key[key as usize].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        for (k, c) in per_key.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), 10, "key {k}");
        }
        assert_eq!(l.len(), KEYS as usize);
    }

    #[test]
    fn pruning_racing_with_grants_never_over_grants() {
        // Every key holds exactly one token at time P (burst 1, TAT = P). Acquirers
        // hammer all keys at P while a pruner keeps removing full buckets at P. A
        // grant lost to a removed state would let a key be granted twice.
        const KEYS: u64 = 2_000;
        const P: u64 = SEC;
        let l = KeyedTokenBucket::new(1.0, 1.0).unwrap();
        for key in 0..KEYS {
            assert!(granted(&l, key, 1, 0));
        }
        let per_key: Vec<AtomicU32> = (0..KEYS).map(|_| AtomicU32::new(0)).collect();
        let pruned = AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let (l, per_key) = (&l, &per_key);
                s.spawn(move || {
                    for round in 0..5u64 {
                        for k in 0..KEYS {
                            let key = (k * (t + 1) + round) % KEYS;
                            if granted(l, key, 1, P) {
                                per_key[key as usize].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
            let (l, pruned) = (&l, &pruned);
            s.spawn(move || {
                for _ in 0..50 {
                    pruned.fetch_add(l.retain_active(P) as u64, Ordering::Relaxed);
                }
            });
        });
        for (k, c) in per_key.iter().enumerate() {
            assert_eq!(c.load(Ordering::Relaxed), 1, "key {k}");
        }
        // Whatever was pruned was full, so everything left has TAT > P... except
        // keys pruned and never touched again, which are simply gone.
        assert!(l.len() <= KEYS as usize);
        assert_eq!(l.retain_active(P), 0);
    }

    #[test]
    fn monotonic_clock_variant() {
        let l = KeyedTokenBucket::new(1e-6, 2.0).unwrap();
        assert!(l.try_acquire(1, 2).unwrap().is_granted());
        assert!(!l.try_acquire(1, 1).unwrap().is_granted());
        assert!(l.try_acquire(2, 2).unwrap().is_granted());
        assert!(l.now_ns() < 3600 * SEC);
    }

    proptest! {
        /// With random prunes interleaved, a key decides exactly like a
        /// standalone bucket (clock non-decreasing).
        #[test]
        fn prop_matches_single_bucket_under_pruning(
            rate in 0.5f64..1000.0,
            burst in 1.0f64..16.0,
            ops in proptest::collection::vec((0u64..2000, 0u32..16, any::<bool>()), 1..150),
        ) {
            let l = KeyedTokenBucket::new(rate, burst).unwrap();
            let reference = TokenBucket::new(rate, burst).unwrap();
            let t = l.gcra.emission_ns();
            let mut now = 0u64;
            for (dt, n, prune) in ops {
                now += dt * t / 1000;
                if prune {
                    l.retain_active(now);
                }
                let n = n.min(burst as u32);
                prop_assert_eq!(
                    l.try_acquire_at(99, n, now).unwrap(),
                    reference.try_acquire_at(n, now).unwrap()
                );
            }
        }
    }
}
