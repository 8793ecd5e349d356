//! The Generic Cell Rate Algorithm as pure arithmetic on one number, the
//! theoretical arrival time (TAT).
//!
//! GCRA comes from ATM traffic policing (ITU-T I.371, the "virtual scheduling"
//! form; ATM Forum TM 4.0); the Rust `governor` crate popularised it for API rate
//! limiting. It is exactly a token bucket of `burst` tokens refilled at `rate` per
//! second, but its whole state is a single timestamp instead of a (tokens,
//! last-refill) pair, so it can live in one `AtomicU64` and be updated with one
//! compare-exchange, with no lock and no torn reads.
//!
//! Parameters, in nanoseconds: the emission interval `T = 1e9 / rate` (the cost of
//! one token) and the tolerance `tau = (burst - 1) * T` (how far ahead of real time
//! the TAT may run). A request for `n` tokens at time `now` is conforming iff
//!
//! ```text
//! max(TAT, now) + n * T  <=  now + tau + T
//! ```
//!
//! and then `TAT := max(TAT, now) + n * T`; otherwise the state is untouched and the
//! request conforms again after `max(TAT, now) + n * T - (now + tau + T)` ns. The
//! quantity `now + tau + T - max(TAT, now)`, divided by `T`, is the number of tokens
//! in the equivalent bucket. This is `governor`'s `test_n_all_and_update`, with
//! `tau` rounded down from a possibly fractional `burst`. A fresh state (TAT 0, or
//! any TAT <= now) holds a full bucket: `floor(burst)` single tokens pass at one
//! instant, after which one more passes every `T`.
//!
//! All arithmetic is exact integer arithmetic (widened to u128 so no input can
//! overflow); floating point is used only to turn the configured rate and burst into
//! nanoseconds once, and for the informational token count.

use crate::error::{Result, RouterError};

/// Highest accepted rate: one token per nanosecond, the clock's resolution.
pub(crate) const MAX_RATE_PER_S: f64 = 1e9;

/// A TAT value no grant ever produces. [`Gcra::step`] never returns it, so
/// structures holding GCRA states may use it as a marker (the keyed limiter marks
/// states being removed with it).
pub(crate) const NEVER_TAT: u64 = u64::MAX;

/// Validated GCRA parameters, shared by every state that obeys one quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gcra {
    /// `T`: nanoseconds per token, >= 1.
    emission_ns: u64,
    /// `tau = floor((burst - 1) * T)`: how far the TAT may run ahead of now.
    tolerance_ns: u64,
    rate_per_s: f64,
    burst: f64,
}

/// Outcome of [`Gcra::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Conforming: store this TAT (never [`NEVER_TAT`]).
    Grant(u64),
    /// Not conforming: the state must stay as it is; the same request conforms
    /// after this many nanoseconds if nothing else is granted meanwhile
    /// (`u64::MAX` if the clock would have to pass `u64::MAX` ns).
    Deny(u64),
}

impl Gcra {
    /// Validates `rate_per_s` and `burst` and converts them to nanoseconds.
    ///
    /// `T` is `1e9 / rate_per_s` rounded to the nearest nanosecond, so the
    /// effective rate differs from the configured one by at most half a
    /// nanosecond per token (e.g. 3/s becomes one token per 333_333_333 ns).
    ///
    /// # Errors
    /// [`RouterError::InvalidArgument`] naming `rate_per_s` unless it is finite, > 0
    /// and at most 1e9 (one token per nanosecond) with `1 / rate` below 2^64 ns;
    /// naming `burst` unless it is finite, >= 1 and `(burst - 1) / rate` fits in
    /// 2^64 ns (~584 years).
    pub(crate) fn new(rate_per_s: f64, burst: f64) -> Result<Gcra> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
            return Err(RouterError::invalid(
                "rate_per_s",
                format!("must be finite and > 0, got {rate_per_s}"),
            ));
        }
        if rate_per_s > MAX_RATE_PER_S {
            return Err(RouterError::invalid(
                "rate_per_s",
                format!(
                    "must be at most {MAX_RATE_PER_S} (one token per nanosecond), got {rate_per_s}"
                ),
            ));
        }
        if !(burst.is_finite() && burst >= 1.0) {
            return Err(RouterError::invalid(
                "burst",
                format!("must be finite and >= 1, got {burst}"),
            ));
        }
        let emission = (1e9 / rate_per_s).round();
        // 2^64 as f64 is exact; anything at or above it does not fit in u64.
        if emission >= 18_446_744_073_709_551_616.0 {
            return Err(RouterError::invalid(
                "rate_per_s",
                format!("is too small: one token per more than 2^64 ns, got {rate_per_s}"),
            ));
        }
        let emission_ns = emission as u64; // >= 1 because rate <= 1e9

        // tau = floor((burst - 1) * T), computed as whole * T + floor(frac * T) so
        // the integer part is exact: then (n - 1) * T <= tau for every n <= burst,
        // and floor(burst) + 1 tokens never fit.
        let extra = burst - 1.0;
        let whole = extra.floor();
        let frac_ns = ((extra - whole) * emission_ns as f64).floor() as u64;
        let tolerance_ns = if whole >= 18_446_744_073_709_551_616.0 {
            None
        } else {
            (whole as u64)
                .checked_mul(emission_ns)
                .and_then(|w| w.checked_add(frac_ns))
                .filter(|t| t.checked_add(emission_ns).is_some())
        };
        let Some(tolerance_ns) = tolerance_ns else {
            return Err(RouterError::invalid(
                "burst",
                format!(
                    "{burst} tokens at {rate_per_s} per second take more than 2^64 ns to refill"
                ),
            ));
        };
        Ok(Gcra {
            emission_ns,
            tolerance_ns,
            rate_per_s,
            burst,
        })
    }

    /// The configured rate, tokens per second.
    #[inline]
    pub(crate) fn rate_per_s(&self) -> f64 {
        self.rate_per_s
    }

    /// The configured burst (bucket capacity), tokens.
    #[inline]
    pub(crate) fn burst(&self) -> f64 {
        self.burst
    }

    /// `T`, nanoseconds per token (tests bound budgets with it).
    #[cfg(test)]
    pub(crate) fn emission_ns(&self) -> u64 {
        self.emission_ns
    }

    /// Checks that a request for `n` tokens can ever be granted.
    ///
    /// # Errors
    /// [`RouterError::InvalidArgument`] naming `n` when `n > burst`.
    #[inline]
    pub(crate) fn check_n(&self, n: u32) -> Result<()> {
        if f64::from(n) > self.burst {
            return Err(RouterError::invalid(
                "n",
                format!("{n} tokens exceeds burst {}", self.burst),
            ));
        }
        Ok(())
    }

    /// One GCRA decision for `n` tokens (`1 <= n <= burst`, see [`Self::check_n`])
    /// at `now_ns` against the stored `tat`.
    ///
    /// Promise: `Grant(new_tat)` iff the request conforms, with
    /// `new_tat = max(tat, now) + n * T < u64::MAX`; otherwise `Deny(wait)` where
    /// `wait` is the exact number of nanoseconds after `now_ns` at which the same
    /// request would conform. Pure: the caller stores `new_tat` (or nothing).
    #[inline]
    pub(crate) fn step(&self, tat: u64, n: u32, now_ns: u64) -> Step {
        let t = u128::from(self.emission_ns);
        let now = u128::from(now_ns);
        let new_tat = u128::from(tat.max(now_ns)) + u128::from(n) * t;
        let limit = now + u128::from(self.tolerance_ns) + t;
        if new_tat > limit {
            Step::Deny(u64::try_from(new_tat - limit).unwrap_or(u64::MAX))
        } else if new_tat >= u128::from(NEVER_TAT) {
            // Only reachable with clocks ~584 years past their origin.
            Step::Deny(u64::MAX)
        } else {
            Step::Grant(new_tat as u64)
        }
    }

    /// The TAT after giving back `n` tokens granted earlier: `tat - n * T`, never
    /// below 0. Any TAT at or below the caller's now already means a full bucket, so
    /// a refund never creates tokens beyond `burst`; it undoes exactly the grant it
    /// refunds when nothing was granted in between, and returns the same number of
    /// tokens when something was.
    #[inline]
    pub(crate) fn refund(&self, tat: u64, n: u32) -> u64 {
        tat.saturating_sub(u64::from(n).saturating_mul(self.emission_ns))
    }

    /// Tokens in the equivalent bucket at `now_ns` given `tat`: in `[0, burst]`,
    /// fractional between refills. Informational (metrics), not a promise that a
    /// concurrent acquire will succeed.
    #[inline]
    pub(crate) fn available(&self, tat: u64, now_ns: u64) -> f64 {
        let limit =
            u128::from(now_ns) + u128::from(self.tolerance_ns) + u128::from(self.emission_ns);
        let used = u128::from(tat.max(now_ns));
        if used >= limit {
            0.0
        } else {
            ((limit - used) as f64 / self.emission_ns as f64).min(self.burst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn what(r: Result<Gcra>) -> &'static str {
        match r {
            Err(RouterError::InvalidArgument { what, .. }) => what,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn parameters_in_nanoseconds() {
        let g = Gcra::new(10.0, 5.0).unwrap();
        assert_eq!(g.emission_ns, 100_000_000);
        assert_eq!(g.tolerance_ns, 400_000_000);
        let g = Gcra::new(3.0, 2.5).unwrap();
        assert_eq!(g.emission_ns, 333_333_333);
        assert_eq!(g.tolerance_ns, 499_999_999);
        let g = Gcra::new(1e9, 1.0).unwrap();
        assert_eq!((g.emission_ns, g.tolerance_ns), (1, 0));
    }

    #[test]
    fn rejects_bad_parameters_naming_them() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9, 1e-12] {
            assert_eq!(what(Gcra::new(rate, 1.0)), "rate_per_s", "rate {rate}");
        }
        for burst in [0.0, 0.999, -3.0, f64::NAN, f64::INFINITY, 1e30] {
            assert_eq!(what(Gcra::new(1.0, burst)), "burst", "burst {burst}");
        }
        match Gcra::new(-2.5, 1.0) {
            Err(e) => assert!(e.to_string().contains("-2.5"), "{e}"),
            Ok(_) => unreachable!(),
        }
    }

    #[test]
    fn step_grants_burst_then_denies_with_exact_wait() {
        let g = Gcra::new(10.0, 3.0).unwrap(); // T = 100 ms
        let mut tat = 0;
        for k in 1..=3u64 {
            match g.step(tat, 1, 1_000) {
                Step::Grant(t) => {
                    assert_eq!(t, 1_000 + k * 100_000_000);
                    tat = t;
                }
                Step::Deny(_) => panic!("token {k} denied"),
            }
        }
        assert_eq!(g.step(tat, 1, 1_000), Step::Deny(100_000_000));
        assert_eq!(g.step(tat, 1, 1_000 + 99_999_999), Step::Deny(1));
        assert!(matches!(
            g.step(tat, 1, 1_000 + 100_000_000),
            Step::Grant(_)
        ));
    }

    #[test]
    fn step_never_returns_the_marker() {
        let g = Gcra::new(1e9, 1.0).unwrap();
        assert_eq!(g.step(0, 1, u64::MAX - 1), Step::Deny(u64::MAX));
        assert_eq!(g.step(0, 1, u64::MAX - 2), Step::Grant(u64::MAX - 1));
    }

    #[test]
    fn check_n_rejects_more_than_burst() {
        let g = Gcra::new(1.0, 2.5).unwrap();
        assert!(g.check_n(0).is_ok());
        assert!(g.check_n(2).is_ok());
        match g.check_n(3) {
            Err(RouterError::InvalidArgument { what, detail }) => {
                assert_eq!(what, "n");
                assert!(detail.contains("exceeds burst"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn available_counts_tokens() {
        let g = Gcra::new(10.0, 4.0).unwrap();
        assert_eq!(g.available(0, 5), 4.0);
        assert_eq!(g.available(200_000_000, 0), 2.0);
        assert_eq!(g.available(200_000_000, 50_000_000), 2.5);
        assert_eq!(g.available(500_000_000, 0), 0.0);
        assert_eq!(g.available(0, u64::MAX), 4.0);
    }

    /// Textbook token bucket in integer nanoseconds: `level` is the stored credit
    /// in ns (capacity `tau + T`), refilled 1 ns per ns, a token costs `T`.
    struct ReferenceBucket {
        level: u128,
        capacity: u128,
        t: u128,
        last: u64,
    }

    impl ReferenceBucket {
        fn acquire(&mut self, n: u32, now: u64) -> bool {
            let elapsed = u128::from(now.saturating_sub(self.last));
            self.level = (self.level + elapsed).min(self.capacity);
            self.last = self.last.max(now);
            let cost = u128::from(n) * self.t;
            if cost <= self.level {
                self.level -= cost;
                true
            } else {
                false
            }
        }
    }

    fn arb_config() -> impl Strategy<Value = (f64, f64)> {
        (
            0.5f64..2e6,
            prop_oneof![1.0f64..8.0, Just(1.0), Just(5.0), 1.0f64..500.0],
        )
    }

    proptest! {
        /// With a non-decreasing clock GCRA and the textbook token bucket make the
        /// same decision on every call.
        #[test]
        fn prop_equals_token_bucket(
            (rate, burst) in arb_config(),
            calls in proptest::collection::vec((0u64..3000, 1u32..8), 1..200),
        ) {
            let g = Gcra::new(rate, burst).unwrap();
            let mut reference = ReferenceBucket {
                level: u128::from(g.tolerance_ns + g.emission_ns),
                capacity: u128::from(g.tolerance_ns + g.emission_ns),
                t: u128::from(g.emission_ns),
                last: 0,
            };
            let (mut tat, mut now) = (0u64, 0u64);
            for (dt, n) in calls {
                // Steps of 0 to 3 tokens' worth of time, whatever the rate.
                now += dt * g.emission_ns / 1000;
                let n = n.min(burst.floor() as u32);
                let got = match g.step(tat, n, now) {
                    Step::Grant(t) => { tat = t; true }
                    Step::Deny(_) => false,
                };
                prop_assert_eq!(got, reference.acquire(n, now));
            }
        }

        /// Over any window of grants (arrival times in any order, even backwards),
        /// tokens granted never exceed `burst + rate * (latest - earliest arrival)`.
        #[test]
        fn prop_never_exceeds_burst_plus_rate_times_elapsed(
            (rate, burst) in arb_config(),
            calls in proptest::collection::vec((0u64..2000, 1u32..8), 1..120),
        ) {
            let g = Gcra::new(rate, burst).unwrap();
            let mut tat = 0u64;
            let mut granted: Vec<(u64, u32)> = Vec::new();
            for (at, n) in calls {
                // Arrival times spread over 20 tokens' worth of time, in any order.
                let now = at * g.emission_ns / 100;
                let n = n.min(burst.floor() as u32);
                if let Step::Grant(t) = g.step(tat, n, now) {
                    tat = t;
                    granted.push((now, n));
                }
            }
            // For every suffix of the grants: GCRA's TAT advances by n*T per grant
            // from at least the earliest arrival time in the suffix, and stays within
            // tau + T of the latest one.
            for i in 0..granted.len() {
                let window = &granted[i..];
                let lo = window.iter().map(|g| g.0).min().unwrap();
                let hi = window.iter().map(|g| g.0).max().unwrap();
                let tokens: u64 = window.iter().map(|g| u64::from(g.1)).sum();
                // floor(burst + (hi - lo) * rate), with T in whole nanoseconds.
                let bound = (g.tolerance_ns + g.emission_ns + (hi - lo)) / g.emission_ns;
                prop_assert!(tokens <= bound, "{} tokens > bound {}", tokens, bound);
            }
        }

        /// A denied request conforms exactly `wait` ns later, and not 1 ns earlier.
        #[test]
        fn prop_retry_after_is_exact(
            (rate, burst) in arb_config(),
            tat in 0u64..10_000_000_000,
            now in 0u64..10_000_000_000,
            n in 1u32..8,
        ) {
            let g = Gcra::new(rate, burst).unwrap();
            let n = n.min(burst.floor() as u32);
            if let Step::Deny(wait) = g.step(tat, n, now) {
                prop_assert!(wait > 0);
                prop_assert!(matches!(g.step(tat, n, now + wait), Step::Grant(_)));
                prop_assert!(matches!(g.step(tat, n, now + wait - 1), Step::Deny(1)));
            }
        }
    }
}
