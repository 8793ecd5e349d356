//! The shared-prefix arrivals: per-tenant system prompts and a seeded stream of
//! requests (tenant system prompt + unique suffix), Poisson in time.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Zipf};

use super::config::{PrefixSimConfig, BLOCK_TOKENS};
use crate::prefix::prefix_block_hashes_tokens;
use crate::sim::workload::{stream_seed, Stream};

/// Token ids are drawn uniformly from `0..VOCAB` (a Llama-2-sized vocabulary).
pub const VOCAB: u32 = 32_000;

/// Every tenant's system prompt, as token ids. Drawn from the scenario seed's
/// [`Stream::Fleet`] stream (the replicas themselves are identical, so the fleet
/// stream is free to describe what they serve): tenant 1's tokens first, then
/// tenant 2's, and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPrompts {
    prompts: Vec<Vec<u32>>,
}

impl TenantPrompts {
    /// The system prompts of `config` (assumed valid).
    pub fn generate(config: &PrefixSimConfig) -> Self {
        let mut rng = SmallRng::seed_from_u64(stream_seed(config.seed, Stream::Fleet));
        let prompts = (0..config.tenants)
            .map(|_| {
                (0..config.system_prompt_tokens)
                    .map(|_| rng.random_range(0..VOCAB))
                    .collect()
            })
            .collect();
        TenantPrompts { prompts }
    }

    /// Number of tenants.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// True when there are no tenants.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The system prompt of `tenant` (1-based, as in [`PrefixRequest::tenant`]).
    pub fn prompt(&self, tenant: u64) -> &[u32] {
        &self.prompts[(tenant - 1) as usize]
    }
}

/// One request as it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixRequest {
    /// Position in the stream, from 0.
    pub index: u64,
    /// Arrival time, simulated seconds.
    pub time: f64,
    /// Tenant id in `1..=tenants` (1 the most popular): `consistent_hash`'s key.
    pub tenant: u64,
    /// Prompt length in tokens (system prompt + suffix).
    pub prompt_tokens: usize,
    /// Chained hashes of the prompt's whole [`BLOCK_TOKENS`]-token blocks
    /// ([`prefix_block_hashes_tokens`]): `cache_aware`'s `Decision::prefix` and the
    /// replicas' cache keys.
    pub blocks: Vec<u64>,
}

impl PrefixRequest {
    /// A request for `tokens`, hashed as the benchmark does (used by hand-made
    /// tests).
    pub fn from_tokens(index: u64, time: f64, tenant: u64, tokens: &[u32]) -> Self {
        PrefixRequest {
            index,
            time,
            tenant,
            prompt_tokens: tokens.len(),
            blocks: prefix_block_hashes_tokens(tokens, BLOCK_TOKENS)
                .expect("BLOCK_TOKENS is not 0"),
        }
    }
}

/// The seeded stream of `config.requests` requests at `config.arrival_rate()` per
/// second, from the scenario seed's [`Stream::Workload`] stream: per request, an
/// exponential gap, a Zipf tenant, a uniform suffix length, then the suffix tokens.
#[derive(Debug, Clone)]
pub struct PrefixWorkload<'a> {
    prompts: &'a TenantPrompts,
    rng: SmallRng,
    interarrival: Exp<f64>,
    tenants: Zipf<f64>,
    suffix: (usize, usize),
    tokens: Vec<u32>,
    clock: f64,
    next: u64,
    total: u64,
}

impl<'a> PrefixWorkload<'a> {
    /// The arrivals of `config` (assumed valid) over `prompts`.
    pub fn new(config: &PrefixSimConfig, prompts: &'a TenantPrompts) -> Self {
        PrefixWorkload {
            prompts,
            rng: SmallRng::seed_from_u64(stream_seed(config.seed, Stream::Workload)),
            interarrival: Exp::new(config.arrival_rate()).expect("validated rate is > 0"),
            tenants: Zipf::new(prompts.len() as f64, config.zipf_exponent)
                .expect("validated tenants >= 1 and zipf exponent >= 0"),
            suffix: (config.suffix_min_tokens, config.suffix_max_tokens),
            tokens: Vec::with_capacity(config.system_prompt_tokens + config.suffix_max_tokens),
            clock: 0.0,
            next: 0,
            total: config.requests,
        }
    }
}

impl Iterator for PrefixWorkload<'_> {
    type Item = PrefixRequest;

    fn next(&mut self) -> Option<PrefixRequest> {
        if self.next == self.total {
            return None;
        }
        self.clock += self.interarrival.sample(&mut self.rng);
        let tenant =
            (self.tenants.sample(&mut self.rng) as u64).clamp(1, self.prompts.len() as u64);
        let suffix = self.rng.random_range(self.suffix.0..=self.suffix.1);
        self.tokens.clear();
        self.tokens.extend_from_slice(self.prompts.prompt(tenant));
        for _ in 0..suffix {
            self.tokens.push(self.rng.random_range(0..VOCAB));
        }
        let request = PrefixRequest::from_tokens(self.next, self.clock, tenant, &self.tokens);
        self.next += 1;
        Some(request)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.next) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for PrefixWorkload<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_share_their_tenants_prefix_only() {
        let config = PrefixSimConfig {
            tenants: 3,
            requests: 200,
            ..PrefixSimConfig::default()
        };
        let prompts = TenantPrompts::generate(&config);
        let requests: Vec<_> = PrefixWorkload::new(&config, &prompts).collect();
        assert_eq!(requests.len(), 200);
        let system_blocks = 2_000 / BLOCK_TOKENS;
        for pair in requests.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert!(a.time < b.time);
            let shared = a
                .blocks
                .iter()
                .zip(&b.blocks)
                .take_while(|(x, y)| x == y)
                .count();
            if a.tenant == b.tenant {
                assert_eq!(shared, system_blocks);
            } else {
                assert_eq!(shared, 0);
            }
        }
        for r in &requests {
            assert!((2_100..=2_500).contains(&r.prompt_tokens));
            assert_eq!(r.blocks.len(), r.prompt_tokens / BLOCK_TOKENS);
        }
        // Zipf: tenant 1 is the most popular.
        let count = |t| requests.iter().filter(|r| r.tenant == t).count();
        assert!(count(1) > count(3));
        // Same seed, same stream.
        let again: Vec<_> = PrefixWorkload::new(&config, &prompts).collect();
        assert_eq!(requests, again);
    }
}
