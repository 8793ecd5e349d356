//! What one simulation run is: the fleet, the workload, the strategies to compare
//! and how the run is measured. See the [module docs](crate::sim) for the model.

use crate::error::{Result, RouterError};
use crate::strategy::Strategy;

/// Strategies simulated by default: every strategy meant for a whole fleet.
/// `cache_aware` looks at every replica per decision and needs prompts, so it is
/// for model-server pools and is not in the fleet simulation.
pub const DEFAULT_STRATEGIES: &[&str] = &[
    "round_robin",
    "least_connections",
    "p2c",
    "random",
    "weighted_round_robin",
    "consistent_hash",
    "peak_ewma",
];

/// Default fleet size.
pub const DEFAULT_ACCELERATORS: usize = 10_000;
/// Default arrivals per strategy: about 15 s of simulated time on the default fleet,
/// and 20–40 s of wall time for all six strategies on two cores (`--release`).
pub const DEFAULT_REQUESTS: u64 = 1_000_000;
/// Default Pareto shape of the service times (mean 1 s, finite variance).
pub const DEFAULT_SERVICE_SHAPE: f64 = 2.2;
/// Default slot mix: 4, 8 or 16 concurrent slots with probabilities 0.5, 0.3, 0.2
/// (7.6 slots per accelerator on average).
pub const DEFAULT_SLOT_MIX: &[(u32, f64)] = &[(4, 0.5), (8, 0.3), (16, 0.2)];
/// Bounded-load factor `c` of the `consistent_hash` strategy (ketama ring).
pub const CONSISTENT_HASH_LOAD_BOUND: f64 = 1.25;
/// Table kind of the `consistent_hash` strategy.
pub const CONSISTENT_HASH_KIND: &str = "ring";

/// One simulation scenario. Every field has a default ([`SimConfig::default`]);
/// [`SimConfig::validate`] checks them all before anything runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Number of accelerators (>= 1).
    pub accelerators: usize,
    /// Offered load relative to the fleet's total slots: the arrival rate is
    /// `load_factor * total_slots / mean_service` (> 0; above 1 overloads the fleet).
    pub load_factor: f64,
    /// Arrivals simulated per strategy (>= 1).
    pub requests: u64,
    /// Age of the load information decisions are made on, in simulated seconds
    /// (>= 0; 0 means every decision sees the live loads).
    pub staleness: f64,
    /// Seed of every random stream (fleet, workload, strategies).
    pub seed: u64,
    /// Strategies to compare, by [`Strategy::from_name`] name, each on the same
    /// arrivals.
    pub strategies: Vec<String>,
    /// Queue depth per accelerator relative to its slots (>= 0): router capacity is
    /// `floor(slots * (1 + queue_factor))`.
    pub queue_factor: f64,
    /// Pareto shape `alpha` of the service times (> 1 so the mean exists; the scale is
    /// set so the mean is 1 s; above 2 the variance is finite too).
    pub service_shape: f64,
    /// Simulated seconds between two load-balance samples (> 0).
    pub sample_interval: f64,
    /// Share of the arrivals, from the start, left out of the statistics while the
    /// empty fleet fills up (in `[0, 1)`).
    pub warmup: f64,
    /// Number of distinct sessions (routing keys for `consistent_hash`, >= 1).
    pub sessions: u64,
    /// Zipf exponent of session popularity (finite, >= 0; 0 is uniform).
    pub zipf_exponent: f64,
    /// Accelerator classes: (slots, probability). Probabilities are relative weights.
    pub slot_mix: Vec<(u32, f64)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            accelerators: DEFAULT_ACCELERATORS,
            load_factor: 0.9,
            requests: DEFAULT_REQUESTS,
            staleness: 0.0,
            seed: 42,
            strategies: DEFAULT_STRATEGIES.iter().map(|s| s.to_string()).collect(),
            queue_factor: 1.0,
            service_shape: DEFAULT_SERVICE_SHAPE,
            sample_interval: 0.1,
            warmup: 0.2,
            sessions: 100_000,
            zipf_exponent: 1.0,
            slot_mix: DEFAULT_SLOT_MIX.to_vec(),
        }
    }
}

/// Checks that `value` is finite and above `min` (or at least `min` when not
/// `strict`), naming `what` otherwise.
pub(crate) fn finite_at_least(
    what: &'static str,
    value: f64,
    min: f64,
    strict: bool,
) -> Result<()> {
    let ok = value.is_finite() && if strict { value > min } else { value >= min };
    if ok {
        return Ok(());
    }
    let relation = if strict { ">" } else { ">=" };
    Err(RouterError::invalid(
        what,
        format!("{what} must be a finite number {relation} {min} (got {value})"),
    ))
}

/// The core strategy for a simulation strategy name: `consistent_hash` is the ketama
/// ring with load bound [`CONSISTENT_HASH_LOAD_BOUND`], the others take no options.
pub fn strategy_for(name: &str) -> Result<Strategy> {
    if name == "consistent_hash" {
        Strategy::from_name(
            name,
            Some(CONSISTENT_HASH_KIND),
            Some(CONSISTENT_HASH_LOAD_BOUND),
        )
    } else {
        Strategy::from_name(name, None, None)
    }
}

impl SimConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        if self.accelerators == 0 {
            return Err(RouterError::invalid(
                "accelerators",
                "accelerators must be at least 1 (got 0)",
            ));
        }
        finite_at_least("load_factor", self.load_factor, 0.0, true)?;
        if self.requests == 0 {
            return Err(RouterError::invalid(
                "requests",
                "requests must be at least 1 (got 0)",
            ));
        }
        finite_at_least("staleness", self.staleness, 0.0, false)?;
        finite_at_least("queue_factor", self.queue_factor, 0.0, false)?;
        finite_at_least("service_shape", self.service_shape, 1.0, true)?;
        finite_at_least("sample_interval", self.sample_interval, 0.0, true)?;
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(RouterError::invalid(
                "warmup",
                format!("warmup must be in [0, 1) (got {})", self.warmup),
            ));
        }
        if self.sessions == 0 {
            return Err(RouterError::invalid(
                "sessions",
                "sessions must be at least 1 (got 0)",
            ));
        }
        finite_at_least("zipf_exponent", self.zipf_exponent, 0.0, false)?;
        self.validate_slot_mix()?;
        if self.strategies.is_empty() {
            return Err(RouterError::invalid(
                "strategies",
                format!(
                    "strategies must name at least one of: {}",
                    crate::strategy::STRATEGY_NAMES.join(", ")
                ),
            ));
        }
        for name in &self.strategies {
            strategy_for(name)?;
        }
        Ok(())
    }

    fn validate_slot_mix(&self) -> Result<()> {
        if self.slot_mix.is_empty() {
            return Err(RouterError::invalid(
                "slot_mix",
                "slot_mix must list at least one (slots, probability) class",
            ));
        }
        for &(slots, p) in &self.slot_mix {
            if slots == 0 {
                return Err(RouterError::invalid(
                    "slot_mix",
                    "every slot_mix class needs at least 1 slot (got 0)",
                ));
            }
            if !p.is_finite() || p < 0.0 {
                return Err(RouterError::invalid(
                    "slot_mix",
                    format!("slot_mix probabilities must be finite and >= 0 (got {p})"),
                ));
            }
        }
        if self.slot_mix.iter().map(|&(_, p)| p).sum::<f64>() <= 0.0 {
            return Err(RouterError::invalid(
                "slot_mix",
                "slot_mix probabilities must not all be 0",
            ));
        }
        Ok(())
    }

    /// The router capacity of an accelerator with `slots` slots:
    /// `floor(slots * (1 + queue_factor))`, never below `slots`.
    pub fn capacity_for(&self, slots: u32) -> u64 {
        ((slots as f64 * (1.0 + self.queue_factor)).floor() as u64).max(slots as u64)
    }

    /// Number of leading arrivals left out of the statistics.
    pub fn warmup_requests(&self) -> u64 {
        ((self.requests as f64 * self.warmup).floor() as u64).min(self.requests.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(config: SimConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        SimConfig::default().validate().unwrap();
        assert_eq!(
            SimConfig::default().strategies.len(),
            DEFAULT_STRATEGIES.len()
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = SimConfig::default;
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let msg = err_of(SimConfig {
                load_factor: bad,
                ..base()
            });
            assert!(msg.starts_with("invalid load_factor:"), "{msg}");
        }
        let cases: Vec<(SimConfig, &str)> = vec![
            (
                SimConfig {
                    accelerators: 0,
                    ..base()
                },
                "invalid accelerators: accelerators must be at least 1",
            ),
            (
                SimConfig {
                    requests: 0,
                    ..base()
                },
                "invalid requests:",
            ),
            (
                SimConfig {
                    staleness: -0.5,
                    ..base()
                },
                "invalid staleness: staleness must be a finite number >= 0 (got -0.5)",
            ),
            (
                SimConfig {
                    staleness: f64::NAN,
                    ..base()
                },
                "invalid staleness:",
            ),
            (
                SimConfig {
                    queue_factor: -1.0,
                    ..base()
                },
                "invalid queue_factor:",
            ),
            (
                SimConfig {
                    service_shape: 1.0,
                    ..base()
                },
                "invalid service_shape:",
            ),
            (
                SimConfig {
                    sample_interval: 0.0,
                    ..base()
                },
                "invalid sample_interval:",
            ),
            (
                SimConfig {
                    warmup: 1.0,
                    ..base()
                },
                "invalid warmup:",
            ),
            (
                SimConfig {
                    sessions: 0,
                    ..base()
                },
                "invalid sessions:",
            ),
            (
                SimConfig {
                    zipf_exponent: -0.1,
                    ..base()
                },
                "invalid zipf_exponent:",
            ),
            (
                SimConfig {
                    slot_mix: vec![(0, 1.0)],
                    ..base()
                },
                "invalid slot_mix:",
            ),
            (
                SimConfig {
                    slot_mix: vec![(4, 0.0)],
                    ..base()
                },
                "invalid slot_mix:",
            ),
            (
                SimConfig {
                    strategies: vec![],
                    ..base()
                },
                "invalid strategies:",
            ),
        ];
        for (config, expected) in cases {
            let msg = err_of(config);
            assert!(msg.starts_with(expected), "{msg:?} vs {expected:?}");
        }
    }

    #[test]
    fn unknown_strategy_is_the_cores_error() {
        let config = SimConfig {
            strategies: vec!["p2c".into(), "fastest".into()],
            ..SimConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err, Strategy::from_name("fastest", None, None).unwrap_err());
        assert!(err.to_string().contains("unknown strategy \"fastest\""));
    }

    #[test]
    fn capacity_and_warmup() {
        let config = SimConfig::default();
        assert_eq!(config.capacity_for(4), 8);
        let config = SimConfig {
            queue_factor: 0.3,
            requests: 10,
            warmup: 0.99,
            ..SimConfig::default()
        };
        assert_eq!(config.capacity_for(4), 5);
        assert_eq!(config.capacity_for(1), 1);
        assert_eq!(config.warmup_requests(), 9);
    }
}
