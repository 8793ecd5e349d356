//! The simulated hardware: how many execution slots each accelerator has and how much
//! load the router lets it hold (slots plus queue).

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::config::SimConfig;
use super::workload::{stream_seed, Stream, MEAN_SERVICE};
use crate::accelerator::Accelerator;

/// A heterogeneous fleet drawn from [`SimConfig::slot_mix`]. Accelerator `i` is
/// registered with id `i`, capacity [`SimConfig::capacity_for`] its slots, and
/// weight equal to its slots (what `weighted_round_robin` divides traffic by).
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    slots: Vec<u32>,
    capacities: Vec<u64>,
}

impl Cluster {
    /// Draws the fleet for `config` (deterministic in `config.seed`). The config is
    /// assumed valid ([`SimConfig::validate`]).
    pub fn generate(config: &SimConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(stream_seed(config.seed, Stream::Fleet));
        let classes = WeightedIndex::new(config.slot_mix.iter().map(|&(_, p)| p))
            .expect("validated slot mix has a positive total");
        let slots: Vec<u32> = (0..config.accelerators)
            .map(|_| config.slot_mix[classes.sample(&mut rng)].0)
            .collect();
        Self::from_slots(config, slots)
    }

    /// A fleet with the given slots per accelerator (capacities from `config`).
    pub fn from_slots(config: &SimConfig, slots: Vec<u32>) -> Self {
        let capacities = slots.iter().map(|&s| config.capacity_for(s)).collect();
        Cluster { slots, capacities }
    }

    /// Number of accelerators.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True for an empty fleet.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Concurrent execution slots of accelerator `i`.
    #[inline]
    pub fn slots(&self, i: usize) -> u32 {
        self.slots[i]
    }

    /// Router capacity (slots plus queue) of accelerator `i`.
    #[inline]
    pub fn capacity(&self, i: usize) -> u64 {
        self.capacities[i]
    }

    /// Sum of slots over the fleet.
    pub fn total_slots(&self) -> u64 {
        self.slots.iter().map(|&s| s as u64).sum()
    }

    /// Sum of capacities over the fleet.
    pub fn total_capacity(&self) -> u64 {
        self.capacities.iter().sum()
    }

    /// Poisson arrival rate (requests per simulated second) that offers
    /// `load_factor` of the fleet's slots: `load_factor * total_slots / E[service]`.
    pub fn arrival_rate(&self, load_factor: f64) -> f64 {
        load_factor * self.total_slots() as f64 / MEAN_SERVICE
    }

    /// (slots, accelerators with that many) for each class present, by slots.
    pub fn class_counts(&self) -> Vec<(u32, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for &s in &self.slots {
            *counts.entry(s).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }

    /// The registrations for a [`crate::Router`]: id `i`, capacity, weight = slots.
    pub fn accelerators(&self) -> Vec<Accelerator> {
        self.slots
            .iter()
            .zip(&self.capacities)
            .enumerate()
            .map(|(i, (&s, &c))| Accelerator::new(i as u64, c).with_weight(s as f64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_followed_and_deterministic() {
        let config = SimConfig {
            accelerators: 20_000,
            ..SimConfig::default()
        };
        let a = Cluster::generate(&config);
        assert_eq!(a, Cluster::generate(&config));
        let counts = a.class_counts();
        assert_eq!(counts.iter().map(|c| c.0).collect::<Vec<_>>(), [4, 8, 16]);
        for ((_, n), p) in counts.iter().zip([0.5, 0.3, 0.2]) {
            let share = *n as f64 / 20_000.0;
            assert!((share - p).abs() < 0.02, "{counts:?}");
        }
        let mean = a.total_slots() as f64 / 20_000.0;
        assert!((mean - 7.6).abs() < 0.2, "{mean}");
        assert_eq!(a.total_capacity(), 2 * a.total_slots());
        let other = Cluster::generate(&SimConfig {
            seed: 7,
            ..config.clone()
        });
        assert_ne!(a, other);
    }

    #[test]
    fn registrations_carry_capacity_and_weight() {
        let config = SimConfig {
            queue_factor: 0.5,
            ..SimConfig::default()
        };
        let cluster = Cluster::from_slots(&config, vec![4, 16]);
        let accs = cluster.accelerators();
        assert_eq!(accs[1], Accelerator::new(1, 24).with_weight(16.0));
        assert_eq!(cluster.arrival_rate(0.5), 10.0);
    }
}
