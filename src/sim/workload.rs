//! The arrival stream: Poisson arrivals, Pareto service times, Zipf sessions.
//!
//! A [`Workload`] is an iterator seeded from the scenario's seed alone, so every
//! strategy of a run replays exactly the same arrivals, service times and sessions.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp, Pareto, Zipf};

use super::config::SimConfig;

/// Mean service time in simulated seconds.
pub const MEAN_SERVICE: f64 = 1.0;

/// The independent random streams of a run, each seeded from the scenario seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Accelerator classes.
    Fleet = 1,
    /// Arrival times, service times, sessions.
    Workload = 2,
    /// The strategies' own choices (p2c, random).
    Routing = 3,
}

/// A 64-bit seed for `stream`, mixed from `seed` with splitmix64 so neighbouring
/// seeds give unrelated streams.
pub fn stream_seed(seed: u64, stream: Stream) -> u64 {
    let mut z = seed
        .wrapping_add((stream as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The Pareto scale that gives shape `alpha` a mean of [`MEAN_SERVICE`]:
/// `x_m = MEAN_SERVICE * (alpha - 1) / alpha`.
pub fn pareto_scale(alpha: f64) -> f64 {
    MEAN_SERVICE * (alpha - 1.0) / alpha
}

/// One request as it arrives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Position in the stream, from 0.
    pub index: u64,
    /// Arrival time in simulated seconds.
    pub time: f64,
    /// Service time once a slot takes it, in simulated seconds.
    pub service: f64,
    /// Session id in `1..=sessions`; the routing key of `consistent_hash`.
    pub session: u64,
}

/// The seeded stream of `requests` arrivals at `rate` per second.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: SmallRng,
    interarrival: Exp<f64>,
    service: Pareto<f64>,
    sessions: Zipf<f64>,
    clock: f64,
    next: u64,
    total: u64,
}

impl Workload {
    /// The arrivals of `config` at `rate` requests per simulated second. The config
    /// is assumed valid ([`SimConfig::validate`]) and `rate` positive and finite.
    pub fn new(config: &SimConfig, rate: f64) -> Self {
        let alpha = config.service_shape;
        Workload {
            rng: SmallRng::seed_from_u64(stream_seed(config.seed, Stream::Workload)),
            interarrival: Exp::new(rate).expect("arrival rate is positive and finite"),
            service: Pareto::new(pareto_scale(alpha), alpha)
                .expect("validated service shape is > 1"),
            sessions: Zipf::new(config.sessions as f64, config.zipf_exponent)
                .expect("validated sessions >= 1 and zipf exponent >= 0"),
            clock: 0.0,
            next: 0,
            total: config.requests,
        }
    }

    /// Arrivals in the whole stream.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl Iterator for Workload {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        if self.next == self.total {
            return None;
        }
        self.clock += self.interarrival.sample(&mut self.rng);
        let service = self.service.sample(&mut self.rng);
        let session = self.sessions.sample(&mut self.rng) as u64;
        let arrival = Arrival {
            index: self.next,
            time: self.clock,
            service,
            session,
        };
        self.next += 1;
        Some(arrival)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Workload {}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64, requests: u64) -> SimConfig {
        SimConfig {
            seed,
            requests,
            ..SimConfig::default()
        }
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a: Vec<_> = Workload::new(&config(42, 1000), 50.0).collect();
        let b: Vec<_> = Workload::new(&config(42, 1000), 50.0).collect();
        let c: Vec<_> = Workload::new(&config(43, 1000), 50.0).collect();
        assert_eq!(a.len(), 1000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0].time < w[1].time));
        assert!(a.iter().enumerate().all(|(i, x)| x.index == i as u64));
    }

    #[test]
    fn moments_match_the_model() {
        let n = 200_000;
        let arrivals: Vec<_> = Workload::new(&config(1, n), 100.0).collect();
        let rate = n as f64 / arrivals.last().unwrap().time;
        assert!((rate - 100.0).abs() < 1.5, "rate {rate}");
        let mean = arrivals.iter().map(|a| a.service).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.03, "mean service {mean}");
        let min = arrivals.iter().map(|a| a.service).fold(f64::MAX, f64::min);
        assert!(min >= pareto_scale(2.2));
        assert!(arrivals.iter().all(|a| (1..=100_000).contains(&a.session)));
        // Zipf(1): session 1 is the most popular, about 1 / H(100000) ~ 8%.
        let top = arrivals.iter().filter(|a| a.session == 1).count() as f64 / n as f64;
        assert!((0.07..0.10).contains(&top), "top session share {top}");
    }

    #[test]
    fn streams_differ() {
        let seeds: Vec<u64> = [Stream::Fleet, Stream::Workload, Stream::Routing]
            .iter()
            .map(|&s| stream_seed(42, s))
            .collect();
        assert_ne!(seeds[0], seeds[1]);
        assert_ne!(seeds[1], seeds[2]);
        assert_ne!(
            stream_seed(42, Stream::Fleet),
            stream_seed(43, Stream::Fleet)
        );
    }
}
