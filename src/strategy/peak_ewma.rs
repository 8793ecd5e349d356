//! Peak-EWMA: latency-aware selection (Finagle's and Linkerd's default balancer;
//! tower's `PeakEwma` load with its P2C balancer).
//!
//! Each accelerator's cost is its [`LatencyEstimate`] times its in-flight load plus
//! one, per unit of capacity: `estimate × (load + 1) / capacity`. Two accelerators are
//! sampled as in [`PowerOfTwoChoices`] and the cheaper one takes the request. A
//! replica that slows down is avoided from its first slow response (the peak), and
//! comes back as fast responses bring its estimate down. Latencies are fed in by
//! [`PeakEwma::observe`] (the router's `report_latency`).

use std::time::Instant;

use rand::Rng;

use crate::accelerator::AcceleratorState;
use crate::arena::Arena;
use crate::demand::Decision;
use crate::error::{Result, RouterError};
use crate::fleet::{Fleet, Slot};
use crate::latency_estimate::{validate_latency, LatencyEstimate};
use crate::strategy::PowerOfTwoChoices;

/// Default estimate before an accelerator's first observation.
pub const DEFAULT_RTT_S: f64 = 1.0;
/// Default decay time constant (Finagle's default is 10 s).
pub const DEFAULT_DECAY_S: f64 = 10.0;

/// Peak-EWMA selection.
#[derive(Debug)]
pub struct PeakEwma {
    // Boxed: the arena's segment table would make every `Strategy` value large.
    estimates: Box<Arena<LatencyEstimate>>,
    sampler: PowerOfTwoChoices,
    default_ns: f64,
    decay_ns: f64,
    origin: Instant,
}

fn positive_seconds(value: f64, what: &'static str) -> Result<f64> {
    if !value.is_finite() || value <= 0.0 {
        return Err(RouterError::invalid(
            what,
            format!("{what} must be a finite number of seconds > 0 (got {value})"),
        ));
    }
    Ok(value * 1e9)
}

impl PeakEwma {
    /// A Peak-EWMA selector: `default_rtt_s` before an accelerator's first
    /// observation, `decay_s` the time constant of the moving average.
    pub fn new(default_rtt_s: f64, decay_s: f64) -> Result<Self> {
        Ok(PeakEwma {
            estimates: Box::new(Arena::new()),
            sampler: PowerOfTwoChoices::new(),
            default_ns: positive_seconds(default_rtt_s, "default_rtt")?,
            decay_ns: positive_seconds(decay_s, "decay")?,
            origin: Instant::now(),
        })
    }

    /// Nanoseconds on this strategy's monotonic clock (used when a caller gives no
    /// time of its own).
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Makes room for the estimates of `slots` (called on registration).
    pub fn track(&self, slots: std::ops::Range<Slot>) {
        for slot in slots {
            // The fleet reserved the same slot already, so this cannot overflow.
            if self.estimates.reserve(slot as usize).is_ok() {
                self.estimates.get(slot as usize).reset();
            }
        }
    }

    /// Folds an observed latency into `slot`'s estimate.
    pub fn observe(&self, slot: Slot, latency_s: f64, now_ns: Option<u64>) -> Result<()> {
        validate_latency(latency_s)?;
        let now = now_ns.unwrap_or_else(|| self.now_ns());
        if let Some(estimate) = self.estimates.try_get(slot as usize) {
            estimate.observe(latency_s * 1e9, now, self.decay_ns);
        }
        Ok(())
    }

    /// The estimate (seconds) of `slot` at `now_ns`.
    pub fn estimate_s(&self, slot: Slot, now_ns: Option<u64>) -> f64 {
        let now = now_ns.unwrap_or_else(|| self.now_ns());
        self.estimates
            .try_get(slot as usize)
            .map_or(self.default_ns, |e| {
                e.at(now, self.default_ns, self.decay_ns)
            })
            / 1e9
    }

    #[inline]
    fn cost(&self, slot: Slot, state: &AcceleratorState, now: u64) -> f64 {
        let estimate = self
            .estimates
            .try_get(slot as usize)
            .map_or(self.default_ns, |e| {
                e.at(now, self.default_ns, self.decay_ns)
            });
        estimate * (state.load() + 1) as f64 / state.capacity() as f64
    }

    /// Picks the cheaper of two sampled accelerators that can take the demand.
    pub fn pick<R: Rng + ?Sized>(
        &self,
        fleet: &Fleet,
        decision: &Decision<'_>,
        rng: &mut R,
    ) -> Option<Slot> {
        let now = decision.now_ns.unwrap_or_else(|| self.now_ns());
        let b_first = |a: Slot, state_a: &AcceleratorState, b: Slot, state_b: &AcceleratorState| {
            self.cost(b, state_b, now) < self.cost(a, state_a, now)
        };
        self.sampler.pick_by(fleet, decision, rng, &b_first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::Demand;
    use crate::fleet::tests::fleet;
    use rand::{rngs::SmallRng, SeedableRng};

    fn setup(n: u64) -> (Fleet, PeakEwma) {
        let fleet = fleet(n, 1000);
        let ewma = PeakEwma::new(DEFAULT_RTT_S, DEFAULT_DECAY_S).unwrap();
        ewma.track(0..n as Slot);
        (fleet, ewma)
    }

    fn at(now_ns: u64) -> Decision<'static> {
        Decision {
            now_ns: Some(now_ns),
            ..Decision::new(Demand::new(1, 1, 0).unwrap())
        }
    }

    #[test]
    fn prefers_the_faster_replica() {
        let (fleet, ewma) = setup(2);
        ewma.observe(0, 0.05, Some(0)).unwrap();
        ewma.observe(1, 0.5, Some(0)).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0; 2];
        for _ in 0..100 {
            let slot = ewma.pick(&fleet, &at(0), &mut rng).unwrap();
            counts[slot as usize] += 1;
        }
        // Cost 0.05 * (k + 1) stays below 0.5 * 1 until slot 0 holds 9 requests.
        assert!(counts[0] >= 80, "{counts:?}");
    }

    #[test]
    fn a_spike_moves_traffic_away_and_it_returns() {
        let (fleet, ewma) = setup(2);
        for slot in 0..2 {
            ewma.observe(slot, 0.1, Some(0)).unwrap();
        }
        ewma.observe(0, 3.0, Some(1_000_000_000)).unwrap();
        let mut rng = SmallRng::seed_from_u64(2);
        let slot = ewma.pick(&fleet, &at(1_000_000_000), &mut rng).unwrap();
        assert_eq!(slot, 1);
        fleet.state(1).release(1).unwrap();
        // A minute of fast responses from slot 0 brings it back under slot 1's.
        let mut now = 1_000_000_000;
        for _ in 0..60 {
            now += 1_000_000_000;
            ewma.observe(0, 0.05, Some(now)).unwrap();
            ewma.observe(1, 0.1, Some(now)).unwrap();
        }
        assert!(ewma.estimate_s(0, Some(now)) < ewma.estimate_s(1, Some(now)));
        assert_eq!(ewma.pick(&fleet, &at(now), &mut rng), Some(0));
    }

    #[test]
    fn bad_configuration_and_observations() {
        assert!(PeakEwma::new(0.0, 10.0)
            .unwrap_err()
            .to_string()
            .contains("default_rtt"));
        assert!(PeakEwma::new(1.0, f64::NAN)
            .unwrap_err()
            .to_string()
            .contains("decay"));
        let (_, ewma) = setup(1);
        assert!(ewma
            .observe(0, -1.0, None)
            .unwrap_err()
            .to_string()
            .contains("latency"));
        assert!(ewma.observe(0, f64::INFINITY, None).is_err());
    }
}
