//! A lock-free token bucket: GCRA on one `AtomicU64`.
//!
//! The bucket holds `burst` tokens and refills at `rate_per_s`; a request takes `n`
//! tokens or is refused with the exact time until it would pass. The state is the
//! theoretical arrival time of the Generic Cell Rate Algorithm (ITU-T I.371, as in
//! the `governor` crate; the arithmetic lives in the private `gcra` module), a single
//! 64-bit timestamp, so an acquire is one load plus one compare-exchange in the
//! common case, never blocks, and can be shared by any number of threads through
//! `&self`.
//!
//! Time is a `u64` count of nanoseconds from an origin the caller chooses. The
//! `*_at` methods take it explicitly (tests, simulations, callers that already
//! read a clock); [`TokenBucket::try_acquire`] reads a monotonic clock whose origin
//! is the bucket's creation ([`TokenBucket::now_ns`]). Do not mix origins on one
//! bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::gcra::{Gcra, Step};
use crate::error::Result;

/// Outcome of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Acquire {
    /// The tokens were taken.
    Granted,
    /// Not enough tokens; nothing was taken. Retrying after `retry_after_ns`
    /// nanoseconds succeeds if nobody else takes tokens meanwhile.
    Denied {
        /// Exact wait in nanoseconds (`u64::MAX`: never, the clock would overflow).
        retry_after_ns: u64,
    },
}

impl Acquire {
    /// True for [`Acquire::Granted`].
    #[inline]
    pub fn is_granted(&self) -> bool {
        matches!(self, Acquire::Granted)
    }

    /// The wait in seconds before retrying: 0.0 when granted.
    #[inline]
    pub fn retry_after_secs(&self) -> f64 {
        match *self {
            Acquire::Granted => 0.0,
            Acquire::Denied { retry_after_ns } => retry_after_ns as f64 * 1e-9,
        }
    }
}

/// One GCRA decision on a state held in an atomic: the core shared by
/// [`TokenBucket`] and the keyed limiter.
///
/// Returns `None`, touching nothing, if the state holds `retired` (a value no
/// grant stores, see [`super::gcra::NEVER_TAT`]), which the keyed limiter uses to
/// retire states it removes; otherwise the decision, with a grant stored.
///
/// Lock-free: the compare-exchange fails only if another thread changed the state
/// in between, i.e. made progress. A denial writes nothing.
#[inline]
pub(crate) fn acquire_on(
    gcra: &Gcra,
    state: &AtomicU64,
    n: u32,
    now_ns: u64,
    retired: Option<u64>,
) -> Option<Acquire> {
    // AcqRel/Acquire: the TAT is the only shared datum, so Relaxed would keep the
    // count exact too; the stronger orderings make a grant happen-before whatever
    // the next grantee of the same bucket does, which costs nothing on x86 and
    // keeps the limiter safe to use as a hand-off.
    let result = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
        if Some(tat) == retired {
            return None;
        }
        match gcra.step(tat, n, now_ns) {
            Step::Grant(new_tat) => Some(new_tat),
            Step::Deny(_) => None,
        }
    });
    match result {
        Ok(_) => Some(Acquire::Granted),
        Err(tat) if Some(tat) == retired => None,
        // `step` is pure: re-running it on the value that was refused gives the
        // denial's exact wait.
        Err(tat) => match gcra.step(tat, n, now_ns) {
            Step::Deny(retry_after_ns) => Some(Acquire::Denied { retry_after_ns }),
            Step::Grant(_) => unreachable!("step is deterministic"),
        },
    }
}

/// Gives `n` tokens back to `state` ([`Gcra::refund`]), leaving a `retired` state
/// untouched (a retired key is already full).
#[inline]
pub(crate) fn refund_on(gcra: &Gcra, state: &AtomicU64, n: u32, retired: Option<u64>) {
    let _ = state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
        (Some(tat) != retired).then(|| gcra.refund(tat, n))
    });
}

/// Nanoseconds since `epoch` on the monotonic clock, saturating at `u64::MAX`.
#[inline]
pub(crate) fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A lock-free GCRA token bucket: `burst` tokens, refilled at `rate_per_s`.
///
/// A fresh bucket is full: it grants `floor(burst)` single tokens at one instant,
/// then one more every `1 / rate_per_s` seconds (a fractional burst contributes
/// its fraction to the first refill). Shared by reference across threads; under
/// any contention it never grants more than `burst + rate * elapsed` tokens.
#[derive(Debug)]
pub struct TokenBucket {
    gcra: Gcra,
    /// Theoretical arrival time, ns from the caller's origin. 0 = full bucket.
    tat: AtomicU64,
    /// Origin of [`TokenBucket::now_ns`].
    epoch: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate_per_s` tokens per second.
    ///
    /// The refill interval is `1e9 / rate_per_s` rounded to whole nanoseconds.
    ///
    /// # Errors
    /// [`crate::RouterError::InvalidArgument`] naming `rate_per_s` unless it is
    /// finite, > 0 and at most 1e9 (one token per nanosecond); naming `burst`
    /// unless it is finite and >= 1 (and refilling it takes under ~584 years).
    pub fn new(rate_per_s: f64, burst: f64) -> Result<Self> {
        Ok(TokenBucket {
            gcra: Gcra::new(rate_per_s, burst)?,
            tat: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Takes `n` tokens at time `now_ns` (ns from the caller's origin) if the
    /// bucket holds them.
    ///
    /// Promises: `n == 0` is granted and changes nothing; a denial changes nothing
    /// and reports the exact wait; grants never exceed `burst + rate * elapsed`.
    ///
    /// # Errors
    /// [`crate::RouterError::InvalidArgument`] naming `n` when `n > burst` (such a
    /// request could never pass). The bucket is unchanged.
    pub fn try_acquire_at(&self, n: u32, now_ns: u64) -> Result<Acquire> {
        self.gcra.check_n(n)?;
        if n == 0 {
            return Ok(Acquire::Granted);
        }
        match acquire_on(&self.gcra, &self.tat, n, now_ns, None) {
            Some(outcome) => Ok(outcome),
            None => unreachable!("a bucket that retires nothing always decides"),
        }
    }

    /// [`Self::try_acquire_at`] at [`Self::now_ns`], the monotonic clock.
    ///
    /// # Errors
    /// As [`Self::try_acquire_at`].
    pub fn try_acquire(&self, n: u32) -> Result<Acquire> {
        self.try_acquire_at(n, self.now_ns())
    }

    /// Gives back `n` tokens taken by an earlier grant that was not used (a request
    /// admitted here but refused by a later limit). Never fills the bucket past
    /// `burst`.
    ///
    /// # Errors
    /// [`crate::RouterError::InvalidArgument`] naming `n` when `n > burst` (no grant
    /// could have taken that many). The bucket is unchanged.
    pub fn refund(&self, n: u32) -> Result<()> {
        self.gcra.check_n(n)?;
        refund_on(&self.gcra, &self.tat, n, None);
        Ok(())
    }

    /// Tokens available at `now_ns`, in `[0, burst]` (fractional between
    /// refills). For metrics: a concurrent acquire may take them first.
    pub fn available_at(&self, now_ns: u64) -> f64 {
        self.gcra
            .available(self.tat.load(Ordering::Acquire), now_ns)
    }

    /// [`Self::available_at`] at [`Self::now_ns`].
    pub fn available(&self) -> f64 {
        self.available_at(self.now_ns())
    }

    /// Nanoseconds since this bucket was created, on the monotonic clock: the time
    /// base of [`Self::try_acquire`].
    pub fn now_ns(&self) -> u64 {
        nanos_since(self.epoch)
    }

    /// The configured refill rate, tokens per second.
    pub fn rate_per_s(&self) -> f64 {
        self.gcra.rate_per_s()
    }

    /// The configured capacity, tokens.
    pub fn burst(&self) -> f64 {
        self.gcra.burst()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::RouterError;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicU32;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000_000_000;

    fn granted(b: &TokenBucket, n: u32, now: u64) -> bool {
        b.try_acquire_at(n, now).unwrap().is_granted()
    }

    fn invalid_what<T: std::fmt::Debug>(r: Result<T>) -> (&'static str, String) {
        match r {
            Err(RouterError::InvalidArgument { what, detail }) => (what, detail),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn new_validates_and_names_the_bad_value() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let (what, detail) = invalid_what(TokenBucket::new(rate, 1.0));
            assert_eq!(what, "rate_per_s");
            assert!(detail.contains(&format!("{rate}")), "{detail}");
        }
        for burst in [0.0, 0.5, -1.0, f64::NAN, f64::INFINITY] {
            let (what, detail) = invalid_what(TokenBucket::new(1.0, burst));
            assert_eq!(what, "burst");
            assert!(detail.contains(&format!("{burst}")), "{detail}");
        }
        let b = TokenBucket::new(2.5, 7.0).unwrap();
        assert_eq!((b.rate_per_s(), b.burst()), (2.5, 7.0));
    }

    #[test]
    fn refund_undoes_a_grant_and_never_overfills() {
        let b = TokenBucket::new(10.0, 3.0).unwrap();
        let t0 = 5 * SEC;
        for _ in 0..3 {
            assert!(granted(&b, 1, t0));
        }
        assert!(!granted(&b, 1, t0));
        b.refund(2).unwrap();
        assert!(granted(&b, 2, t0));
        assert!(!granted(&b, 1, t0));
        // Refunds into a full bucket are lost, not stored beyond `burst`.
        let full = TokenBucket::new(10.0, 3.0).unwrap();
        full.refund(3).unwrap();
        full.refund(3).unwrap();
        for _ in 0..3 {
            assert!(granted(&full, 1, t0));
        }
        assert!(!granted(&full, 1, t0));
        assert_eq!(invalid_what(b.refund(4)).0, "n");
    }

    #[test]
    fn burst_then_refusal_with_exact_retry_after() {
        let b = TokenBucket::new(10.0, 5.0).unwrap(); // one token per 100 ms
        let t0 = 42 * SEC;
        for _ in 0..5 {
            assert!(granted(&b, 1, t0));
        }
        assert_eq!(
            b.try_acquire_at(1, t0).unwrap(),
            Acquire::Denied {
                retry_after_ns: 100 * MS
            }
        );
        assert_eq!(
            b.try_acquire_at(1, t0 + 30 * MS).unwrap(),
            Acquire::Denied {
                retry_after_ns: 70 * MS
            }
        );
        assert!((b.try_acquire_at(1, t0).unwrap().retry_after_secs() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn refills_one_token_per_interval() {
        let b = TokenBucket::new(10.0, 3.0).unwrap();
        for _ in 0..3 {
            assert!(granted(&b, 1, 0));
        }
        for k in 1..=20u64 {
            let due = k * 100 * MS;
            assert!(!granted(&b, 1, due - 1), "token {k} early");
            assert!(granted(&b, 1, due), "token {k} on time");
            assert!(!granted(&b, 1, due), "token {k} twice");
        }
    }

    #[test]
    fn idle_time_refills_up_to_burst_only() {
        let b = TokenBucket::new(100.0, 4.0).unwrap();
        assert!(granted(&b, 4, 0));
        let later = 3600 * SEC;
        assert_eq!(b.available_at(later), 4.0);
        assert!(granted(&b, 4, later));
        assert!(!granted(&b, 1, later));
    }

    #[test]
    fn fractional_burst_admits_its_floor_then_refills_the_fraction() {
        let b = TokenBucket::new(1.0, 2.5).unwrap();
        assert!(granted(&b, 1, 0));
        assert!(granted(&b, 1, 0));
        // Half a token left: the next one is due after half an interval.
        assert_eq!(
            b.try_acquire_at(1, 0).unwrap(),
            Acquire::Denied {
                retry_after_ns: SEC / 2
            }
        );
        assert!(granted(&b, 1, SEC / 2));
        assert!(!granted(&b, 1, SEC / 2 + SEC - 1));
        assert!(granted(&b, 1, SEC / 2 + SEC));
    }

    #[test]
    fn multi_token_requests() {
        let b = TokenBucket::new(10.0, 10.0).unwrap();
        assert!(granted(&b, 7, 0));
        assert_eq!(
            b.try_acquire_at(4, 0).unwrap(),
            Acquire::Denied {
                retry_after_ns: 100 * MS
            }
        );
        assert!(granted(&b, 3, 0));
        assert!(granted(&b, 10, SEC));
    }

    #[test]
    fn denied_and_zero_requests_leave_state_unchanged() {
        let b = TokenBucket::new(1.0, 3.0).unwrap();
        assert!(granted(&b, 3, 0));
        let tat = b.tat.load(Ordering::SeqCst);
        for now in [0, 1, SEC / 2, SEC - 1] {
            assert!(!granted(&b, 1, now));
            assert!(!granted(&b, 2, now));
            assert!(granted(&b, 0, now));
            assert_eq!(b.tat.load(Ordering::SeqCst), tat);
        }
        assert!(b.try_acquire_at(4, 0).is_err());
        assert_eq!(b.tat.load(Ordering::SeqCst), tat);
    }

    #[test]
    fn request_larger_than_burst_is_an_error_naming_n() {
        let b = TokenBucket::new(1.0, 3.5).unwrap();
        let (what, detail) = invalid_what(b.try_acquire_at(4, 0));
        assert_eq!(what, "n");
        assert!(detail.contains("exceeds burst"), "{detail}");
        assert!(granted(&b, 3, 0));
    }

    #[test]
    fn available_reports_tokens() {
        let b = TokenBucket::new(10.0, 5.0).unwrap();
        assert_eq!(b.available_at(0), 5.0);
        assert!(granted(&b, 2, 0));
        assert_eq!(b.available_at(0), 3.0);
        assert_eq!(b.available_at(50 * MS), 3.5);
        assert!(granted(&b, 3, 0));
        assert_eq!(b.available_at(0), 0.0);
    }

    #[test]
    fn clock_going_backwards_is_conservative() {
        let b = TokenBucket::new(1.0, 2.0).unwrap();
        assert!(granted(&b, 2, 10 * SEC));
        // An earlier timestamp sees an even emptier bucket, never a fuller one.
        assert_eq!(
            b.try_acquire_at(1, 9 * SEC).unwrap(),
            Acquire::Denied {
                retry_after_ns: 2 * SEC
            }
        );
    }

    #[test]
    fn monotonic_clock_variant_starts_full() {
        // A refill every ~11.6 days: no refill can happen during the test.
        let b = TokenBucket::new(1e-6, 3.0).unwrap();
        for _ in 0..3 {
            assert!(b.try_acquire(1).unwrap().is_granted());
        }
        let denied = b.try_acquire(1).unwrap();
        assert!(!denied.is_granted());
        assert!(denied.retry_after_secs() > 1e5);
        assert!(b.available() < 1.0);
        assert!(b.now_ns() < 3600 * SEC);
    }

    #[test]
    fn contended_bucket_grants_exactly_the_burst() {
        const THREADS: u32 = 4;
        const CALLS: u32 = 20_000;
        let b = TokenBucket::new(1.0, 1000.0).unwrap();
        let total = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    let mine = (0..CALLS).filter(|_| granted(&b, 1, 5 * SEC)).count() as u32;
                    total.fetch_add(mine, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn contended_bucket_with_advancing_time_stays_within_budget() {
        // Threads draw timestamps from a shared clock that advances 1 us per call,
        // so they arrive slightly out of order; the budget must still hold.
        const THREADS: u64 = 4;
        const CALLS: u64 = 25_000;
        let b = TokenBucket::new(1000.0, 50.0).unwrap(); // 1 token per ms
        let clock = AtomicU64::new(0);
        let total = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..CALLS {
                        let now = clock.fetch_add(1_000, Ordering::Relaxed);
                        if granted(&b, 1, now) {
                            total.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let elapsed_ms = THREADS * CALLS / 1000; // clock advanced 1 us per call
        let total = total.load(Ordering::Relaxed);
        assert!(total <= 50 + elapsed_ms, "granted {total}");
        // And the bucket was not starved: nearly the whole budget went out.
        assert!(total >= elapsed_ms, "granted {total}");
    }

    proptest! {
        /// Over any sequence of calls with a non-decreasing clock, total tokens
        /// granted <= burst + rate * elapsed, and every denial's retry_after is
        /// honoured if nothing else is granted meanwhile.
        #[test]
        fn prop_budget_and_retry(
            rate in 0.1f64..1e5,
            burst in 1.0f64..64.0,
            calls in proptest::collection::vec((0u64..2_000, 0u32..64), 1..150),
        ) {
            let b = TokenBucket::new(rate, burst).unwrap();
            let t = b.gcra.emission_ns();
            let mut now = 0u64;
            let mut tokens = 0u64;
            for (dt, n) in calls {
                now += dt * t / 1000;
                let n = n.min(burst as u32);
                match b.try_acquire_at(n, now).unwrap() {
                    Acquire::Granted => tokens += u64::from(n),
                    Acquire::Denied { retry_after_ns } => {
                        prop_assert!(retry_after_ns > 0);
                        let retried = b.try_acquire_at(n, now + retry_after_ns).unwrap();
                        prop_assert!(retried.is_granted());
                        tokens += u64::from(n);
                        now += retry_after_ns;
                    }
                }
                // Integer form of burst + rate * elapsed with T in whole ns.
                // (The epsilon only absorbs float rounding at exact integers.)
                let budget = (burst + now as f64 / t as f64 + 1e-9).floor() as u64;
                prop_assert!(tokens <= budget, "{} tokens > budget {}", tokens, budget);
            }
        }
    }
}
