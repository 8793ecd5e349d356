//! The shared-prefix benchmark's scenario: fleet, workload, service model and the
//! strategies to compare. See the [module docs](super) for the model.

use crate::error::{Result, RouterError};
use crate::sim::config::finite_at_least;
use crate::strategy::{Strategy, StrategyOptions};

/// Strategies compared by default, each on the same arrivals.
pub const DEFAULT_STRATEGIES: &[&str] = &[
    "random",
    "round_robin",
    "least_connections",
    "p2c",
    "consistent_hash",
    "cache_aware",
    "endpoint_picker",
];
/// Default number of model-server replicas.
pub const DEFAULT_REPLICAS: usize = 16;
/// Fewest replicas accepted.
pub const MIN_REPLICAS: usize = 8;
/// Most replicas accepted (`cache_aware` looks at every replica per decision).
pub const MAX_REPLICAS: usize = 64;
/// Default number of tenants.
pub const DEFAULT_TENANTS: usize = 150;
/// Default arrivals per strategy.
pub const DEFAULT_REQUESTS: u64 = 50_000;
/// Default system prompt length, tokens (125 blocks of 16).
pub const DEFAULT_SYSTEM_PROMPT_TOKENS: usize = 2_000;
/// Default shortest per-request suffix, tokens.
pub const DEFAULT_SUFFIX_MIN_TOKENS: usize = 100;
/// Default longest per-request suffix, tokens.
pub const DEFAULT_SUFFIX_MAX_TOKENS: usize = 500;
/// KV block size in tokens: vLLM's default, also the router's prompt block size.
pub const BLOCK_TOKENS: usize = 16;
/// Default per-replica KV prefix cache, blocks: 1,024 blocks = 16,384 tokens, about
/// 6 tenants' system prompts (6 x 125 blocks) plus the unique suffixes of the
/// requests that pass through meanwhile.
pub const DEFAULT_CACHE_BLOCKS: usize = 1_024;
/// Bounded-load factor `c` of `consistent_hash` (ketama ring).
pub const CONSISTENT_HASH_LOAD_BOUND: f64 = 1.25;

/// One shared-prefix scenario. Every field has a default
/// ([`PrefixSimConfig::default`]); [`PrefixSimConfig::validate`] checks them all
/// before anything runs and names the first offending field.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixSimConfig {
    /// Model-server replicas, in `[MIN_REPLICAS, MAX_REPLICAS]` = `[8, 64]`.
    pub replicas: usize,
    /// Tenants, each with its own system prompt (>= 1).
    pub tenants: usize,
    /// Arrivals simulated per strategy (>= 1).
    pub requests: u64,
    /// Seed of every random stream (prompts, arrivals, the strategies' choices).
    pub seed: u64,
    /// Strategies to compare, by [`Strategy::from_name`] name.
    pub strategies: Vec<String>,
    /// Tokens of every tenant's system prompt (>= 1).
    pub system_prompt_tokens: usize,
    /// Shortest unique suffix, tokens (>= 1).
    pub suffix_min_tokens: usize,
    /// Longest unique suffix, tokens (>= `suffix_min_tokens`); lengths are uniform.
    pub suffix_max_tokens: usize,
    /// Zipf exponent of tenant popularity (finite, >= 0; 0 is uniform).
    pub zipf_exponent: f64,
    /// Requests a replica serves at once (its batch, >= 1).
    pub max_batch: u32,
    /// FIFO queue per replica relative to `max_batch` (finite, >= 0): the router
    /// capacity is `floor(max_batch * (1 + queue_factor))`.
    pub queue_factor: f64,
    /// KV prefix cache per replica, in blocks of [`BLOCK_TOKENS`] tokens (>= 1).
    pub cache_blocks: usize,
    /// Prefill cost per uncached prompt token, milliseconds (finite, >= 0).
    pub prefill_ms_per_token: f64,
    /// Output tokens per request (>= 1).
    pub output_tokens: u32,
    /// Decode cost per output token, milliseconds (finite, > 0).
    pub decode_ms_per_token: f64,
    /// Offered load relative to the batch slots' service rate when every system
    /// prompt is a cache hit (finite, > 0); see [`PrefixSimConfig::arrival_rate`].
    pub load_factor: f64,
    /// Share of the arrivals, from the start, left out of the statistics (`[0, 1)`).
    pub warmup: f64,
}

impl Default for PrefixSimConfig {
    fn default() -> Self {
        PrefixSimConfig {
            replicas: DEFAULT_REPLICAS,
            tenants: DEFAULT_TENANTS,
            requests: DEFAULT_REQUESTS,
            seed: 42,
            strategies: DEFAULT_STRATEGIES.iter().map(|s| s.to_string()).collect(),
            system_prompt_tokens: DEFAULT_SYSTEM_PROMPT_TOKENS,
            suffix_min_tokens: DEFAULT_SUFFIX_MIN_TOKENS,
            suffix_max_tokens: DEFAULT_SUFFIX_MAX_TOKENS,
            zipf_exponent: 1.0,
            max_batch: 8,
            queue_factor: 1.0,
            cache_blocks: DEFAULT_CACHE_BLOCKS,
            prefill_ms_per_token: 0.25,
            output_tokens: 200,
            decode_ms_per_token: 20.0,
            load_factor: 0.8,
            warmup: 0.1,
        }
    }
}

fn at_least_one(what: &'static str, value: u64) -> Result<()> {
    if value == 0 {
        return Err(RouterError::invalid(
            what,
            format!("{what} must be at least 1 (got 0)"),
        ));
    }
    Ok(())
}

/// The cache-aware balance guard's absolute threshold in this workload.
pub const CACHE_AWARE_BALANCE_ABS_THRESHOLD: u64 = 4;

/// The core strategy for a benchmark strategy name: `consistent_hash` is the ketama
/// ring with load bound [`CONSISTENT_HASH_LOAD_BOUND`] (key = tenant id),
/// `cache_aware` the affinity rule with [`BLOCK_TOKENS`]-token blocks and the guard
/// scaled to these replicas ([`CACHE_AWARE_BALANCE_ABS_THRESHOLD`]),
/// `endpoint_picker` the default scorers with the same blocks; the others take no
/// options.
pub fn strategy_for(name: &str) -> Result<Strategy> {
    let options = match name {
        "consistent_hash" => StrategyOptions {
            hash: Some("ring"),
            load_bound: Some(CONSISTENT_HASH_LOAD_BOUND),
            ..StrategyOptions::default()
        },
        // SGLang's absolute guard (32 requests) suits large batches; these replicas
        // hold 16, so the guard is scaled to a quarter of that.
        "cache_aware" => StrategyOptions {
            block_size: Some(BLOCK_TOKENS),
            balance_abs_threshold: Some(CACHE_AWARE_BALANCE_ABS_THRESHOLD),
            ..StrategyOptions::default()
        },
        "endpoint_picker" => StrategyOptions {
            block_size: Some(BLOCK_TOKENS),
            ..StrategyOptions::default()
        },
        _ => StrategyOptions::default(),
    };
    Strategy::from_options(name, &options)
}

impl PrefixSimConfig {
    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_REPLICAS..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(RouterError::invalid(
                "replicas",
                format!(
                    "replicas must be in [{MIN_REPLICAS}, {MAX_REPLICAS}] (got {})",
                    self.replicas
                ),
            ));
        }
        at_least_one("tenants", self.tenants as u64)?;
        at_least_one("requests", self.requests)?;
        at_least_one("system_prompt_tokens", self.system_prompt_tokens as u64)?;
        at_least_one("suffix_min_tokens", self.suffix_min_tokens as u64)?;
        if self.suffix_max_tokens < self.suffix_min_tokens {
            return Err(RouterError::invalid(
                "suffix_max_tokens",
                format!(
                    "suffix_max_tokens must be >= suffix_min_tokens ({}) (got {})",
                    self.suffix_min_tokens, self.suffix_max_tokens
                ),
            ));
        }
        finite_at_least("zipf_exponent", self.zipf_exponent, 0.0, false)?;
        at_least_one("max_batch", self.max_batch as u64)?;
        finite_at_least("queue_factor", self.queue_factor, 0.0, false)?;
        at_least_one("cache_blocks", self.cache_blocks as u64)?;
        finite_at_least(
            "prefill_ms_per_token",
            self.prefill_ms_per_token,
            0.0,
            false,
        )?;
        at_least_one("output_tokens", self.output_tokens as u64)?;
        finite_at_least("decode_ms_per_token", self.decode_ms_per_token, 0.0, true)?;
        finite_at_least("load_factor", self.load_factor, 0.0, true)?;
        if !(0.0..1.0).contains(&self.warmup) {
            return Err(RouterError::invalid(
                "warmup",
                format!("warmup must be in [0, 1) (got {})", self.warmup),
            ));
        }
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

    /// Router capacity of a replica: `floor(max_batch * (1 + queue_factor))`, never
    /// below `max_batch`.
    pub fn capacity(&self) -> u64 {
        ((self.max_batch as f64 * (1.0 + self.queue_factor)).floor() as u64)
            .max(self.max_batch as u64)
    }

    /// Seconds to prefill `tokens` uncached tokens.
    pub fn prefill_seconds(&self, tokens: usize) -> f64 {
        tokens as f64 * self.prefill_ms_per_token / 1e3
    }

    /// Seconds to decode the output (the same for every request).
    pub fn decode_seconds(&self) -> f64 {
        self.output_tokens as f64 * self.decode_ms_per_token / 1e3
    }

    /// Mean prompt length, tokens: system prompt plus the mean suffix.
    pub fn mean_prompt_tokens(&self) -> f64 {
        self.system_prompt_tokens as f64
            + (self.suffix_min_tokens + self.suffix_max_tokens) as f64 / 2.0
    }

    /// Mean service time (prefill + decode, seconds) when the system prompt's whole
    /// blocks are cached and nothing else is: the best any router can do on average.
    pub fn ideal_mean_service(&self) -> f64 {
        let cached = (self.system_prompt_tokens / BLOCK_TOKENS * BLOCK_TOKENS) as f64;
        self.prefill_ms_per_token * (self.mean_prompt_tokens() - cached) / 1e3
            + self.decode_seconds()
    }

    /// Poisson arrival rate, requests per simulated second:
    /// `load_factor * replicas * max_batch / ideal_mean_service()`.
    pub fn arrival_rate(&self) -> f64 {
        self.load_factor * (self.replicas as f64 * self.max_batch as f64)
            / self.ideal_mean_service()
    }

    /// Number of leading arrivals left out of the statistics.
    pub fn warmup_requests(&self) -> u64 {
        ((self.requests as f64 * self.warmup).floor() as u64).min(self.requests.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(config: PrefixSimConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = PrefixSimConfig::default();
        c.validate().unwrap();
        assert_eq!(c.capacity(), 16);
        // 300 uncached suffix tokens x 0.25 ms + 200 x 20 ms.
        assert!((c.ideal_mean_service() - 4.075).abs() < 1e-12);
        assert!((c.arrival_rate() - 0.8 * 128.0 / 4.075).abs() < 1e-9);
        assert_eq!(c.warmup_requests(), 5_000);
        for name in DEFAULT_STRATEGIES {
            strategy_for(name).unwrap();
        }
        assert_eq!(
            strategy_for("cache_aware").unwrap().prefix_block_size(),
            Some(16)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = PrefixSimConfig::default;
        let cases: Vec<(PrefixSimConfig, &str)> = vec![
            (
                PrefixSimConfig {
                    replicas: 7,
                    ..base()
                },
                "invalid replicas: replicas must be in [8, 64] (got 7)",
            ),
            (
                PrefixSimConfig {
                    replicas: 65,
                    ..base()
                },
                "invalid replicas:",
            ),
            (
                PrefixSimConfig {
                    tenants: 0,
                    ..base()
                },
                "invalid tenants: tenants must be at least 1 (got 0)",
            ),
            (
                PrefixSimConfig {
                    requests: 0,
                    ..base()
                },
                "invalid requests:",
            ),
            (
                PrefixSimConfig {
                    system_prompt_tokens: 0,
                    ..base()
                },
                "invalid system_prompt_tokens:",
            ),
            (
                PrefixSimConfig {
                    suffix_min_tokens: 0,
                    ..base()
                },
                "invalid suffix_min_tokens:",
            ),
            (
                PrefixSimConfig {
                    suffix_max_tokens: 99,
                    ..base()
                },
                "invalid suffix_max_tokens: suffix_max_tokens must be >= suffix_min_tokens (100) (got 99)",
            ),
            (
                PrefixSimConfig {
                    zipf_exponent: f64::NAN,
                    ..base()
                },
                "invalid zipf_exponent:",
            ),
            (
                PrefixSimConfig {
                    max_batch: 0,
                    ..base()
                },
                "invalid max_batch:",
            ),
            (
                PrefixSimConfig {
                    queue_factor: -0.5,
                    ..base()
                },
                "invalid queue_factor:",
            ),
            (
                PrefixSimConfig {
                    cache_blocks: 0,
                    ..base()
                },
                "invalid cache_blocks:",
            ),
            (
                PrefixSimConfig {
                    prefill_ms_per_token: -1.0,
                    ..base()
                },
                "invalid prefill_ms_per_token:",
            ),
            (
                PrefixSimConfig {
                    output_tokens: 0,
                    ..base()
                },
                "invalid output_tokens:",
            ),
            (
                PrefixSimConfig {
                    decode_ms_per_token: 0.0,
                    ..base()
                },
                "invalid decode_ms_per_token:",
            ),
            (
                PrefixSimConfig {
                    load_factor: f64::INFINITY,
                    ..base()
                },
                "invalid load_factor:",
            ),
            (
                PrefixSimConfig {
                    warmup: 1.0,
                    ..base()
                },
                "invalid warmup:",
            ),
            (
                PrefixSimConfig {
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
        let msg = err_of(PrefixSimConfig {
            strategies: vec!["p2c".into(), "fastest".into()],
            ..base()
        });
        assert!(msg.contains("unknown strategy \"fastest\""), "{msg}");
    }
}
