//! Peak-EWMA latency estimate of one endpoint (Finagle; Linkerd; tower's
//! `load/peak_ewma.rs`).
//!
//! An observation above the estimate replaces it at once (the *peak*: a slow replica
//! is avoided immediately); one below it is blended in with a weight that grows with
//! the time since the last observation, `1 - exp(-elapsed / decay)`, so the estimate
//! recovers from a spike within a few decay periods. Between observations the
//! estimate decays towards zero at the same rate, so an endpoint nobody has tried
//! for a while gets probed again. Before the first observation the estimate is a
//! configured default.
//!
//! The state is two atomics updated with a compare-exchange on the estimate: reads
//! never lock, and racing observations each land (the later timestamp wins).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, RouterError};

/// An observed latency must be a finite number of seconds >= 0.
pub fn validate_latency(latency_s: f64) -> Result<()> {
    if !latency_s.is_finite() || latency_s < 0.0 {
        return Err(RouterError::invalid(
            "latency",
            format!("latency must be a finite number of seconds >= 0 (got {latency_s})"),
        ));
    }
    Ok(())
}

/// `updated_at` before any observation.
const NEVER: u64 = u64::MAX;

/// One endpoint's estimate.
#[derive(Debug)]
pub struct LatencyEstimate {
    estimate_bits: AtomicU64,
    updated_at: AtomicU64,
}

impl Default for LatencyEstimate {
    fn default() -> Self {
        LatencyEstimate {
            estimate_bits: AtomicU64::new(0f64.to_bits()),
            updated_at: AtomicU64::new(NEVER),
        }
    }
}

impl LatencyEstimate {
    /// Forgets every observation (a new endpoint in a reused record).
    pub fn reset(&self) {
        self.updated_at.store(NEVER, Ordering::Release);
    }

    /// The estimate at `now_ns` in nanoseconds: `default_ns` before any observation,
    /// otherwise the last estimate decayed towards zero over the time since.
    #[inline]
    pub fn at(&self, now_ns: u64, default_ns: f64, decay_ns: f64) -> f64 {
        let updated_at = self.updated_at.load(Ordering::Acquire);
        if updated_at == NEVER {
            return default_ns;
        }
        let estimate = f64::from_bits(self.estimate_bits.load(Ordering::Acquire));
        let elapsed = now_ns.saturating_sub(updated_at) as f64;
        estimate * (-elapsed / decay_ns).exp()
    }

    /// Folds in one observed latency (nanoseconds) seen at `now_ns`.
    pub fn observe(&self, latency_ns: f64, now_ns: u64, decay_ns: f64) {
        loop {
            let bits = self.estimate_bits.load(Ordering::Acquire);
            let updated_at = self.updated_at.load(Ordering::Acquire);
            let current = f64::from_bits(bits);
            let next = if updated_at == NEVER || latency_ns > current {
                latency_ns
            } else {
                let elapsed = now_ns.saturating_sub(updated_at) as f64;
                let keep = (-elapsed / decay_ns).exp();
                current * keep + latency_ns * (1.0 - keep)
            };
            if self
                .estimate_bits
                .compare_exchange(bits, next.to_bits(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let seen = if updated_at == NEVER { 0 } else { updated_at };
                self.updated_at.store(seen.max(now_ns), Ordering::Release);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: f64 = 1e9;

    #[test]
    fn default_until_observed_then_peak() {
        let e = LatencyEstimate::default();
        assert_eq!(e.at(0, 5e8, 10.0 * SECOND), 5e8);
        e.observe(2e8, 0, 10.0 * SECOND);
        assert_eq!(e.at(0, 5e8, 10.0 * SECOND), 2e8);
        e.observe(9e8, 0, 10.0 * SECOND);
        assert_eq!(
            e.at(0, 5e8, 10.0 * SECOND),
            9e8,
            "a peak replaces the estimate"
        );
    }

    #[test]
    fn recovers_after_a_spike() {
        let decay = 10.0 * SECOND;
        let e = LatencyEstimate::default();
        e.observe(1e8, 0, decay);
        e.observe(5e9, 1_000_000_000, decay); // a 5 s spike
                                              // Fast observations, one per second, pull it back down.
        let mut now = 1_000_000_000u64;
        for _ in 0..60 {
            now += 1_000_000_000;
            e.observe(1e8, now, decay);
        }
        let estimate = e.at(now, 0.0, decay);
        assert!(estimate < 2e8, "estimate {estimate} did not recover");
    }

    #[test]
    fn idle_estimates_decay_towards_zero() {
        let decay = 10.0 * SECOND;
        let e = LatencyEstimate::default();
        e.observe(1e9, 0, decay);
        let later = e.at(10_000_000_000, 0.0, decay);
        assert!((later - 1e9 / std::f64::consts::E).abs() < 1.0);
    }
}
