//! The benchmark's results: one [`PrefixReport`] per strategy, rendered as an
//! aligned table (with a scenario header) or JSON.

use serde::Serialize;

use super::config::{PrefixSimConfig, BLOCK_TOKENS};
use crate::sim::table::Column;

/// The scenario every strategy ran, for the table header and the JSON output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixScenario {
    /// Model-server replicas.
    pub replicas: usize,
    /// Tenants.
    pub tenants: usize,
    /// Arrivals per strategy.
    pub requests: u64,
    /// Arrivals left out as warm-up.
    pub warmup_requests: u64,
    /// Seed.
    pub seed: u64,
    /// Poisson arrival rate, requests per simulated second.
    pub arrival_rate: f64,
    /// Concurrent requests per replica.
    pub max_batch: u32,
    /// Router capacity per replica (batch + queue).
    pub capacity: u64,
    /// Prefix cache per replica, blocks.
    pub cache_blocks: usize,
    /// Block size, tokens.
    pub block_tokens: usize,
    /// System prompt, tokens.
    pub system_prompt_tokens: usize,
    /// Suffix length range, tokens.
    pub suffix_tokens: (usize, usize),
    /// Zipf exponent of tenant popularity.
    pub zipf_exponent: f64,
    /// Prefill cost per uncached token, ms.
    pub prefill_ms_per_token: f64,
    /// Output tokens per request.
    pub output_tokens: u32,
    /// Decode cost per output token, ms.
    pub decode_ms_per_token: f64,
    /// Offered load relative to the ideal (system prompt cached) service rate.
    pub load_factor: f64,
}

impl PrefixScenario {
    /// The scenario of `config`.
    pub fn new(config: &PrefixSimConfig) -> Self {
        PrefixScenario {
            replicas: config.replicas,
            tenants: config.tenants,
            requests: config.requests,
            warmup_requests: config.warmup_requests(),
            seed: config.seed,
            arrival_rate: config.arrival_rate(),
            max_batch: config.max_batch,
            capacity: config.capacity(),
            cache_blocks: config.cache_blocks,
            block_tokens: BLOCK_TOKENS,
            system_prompt_tokens: config.system_prompt_tokens,
            suffix_tokens: (config.suffix_min_tokens, config.suffix_max_tokens),
            zipf_exponent: config.zipf_exponent,
            prefill_ms_per_token: config.prefill_ms_per_token,
            output_tokens: config.output_tokens,
            decode_ms_per_token: config.decode_ms_per_token,
            load_factor: config.load_factor,
        }
    }

    /// A few lines describing the scenario, for the top of the table.
    pub fn header(&self) -> String {
        format!(
            "shared-prefix benchmark: {} replicas x batch {} (capacity {}), {} tenants \
             (Zipf s={}), {} requests ({} warm-up), seed {}\n\
             prompt = {}-token system prompt + {}..={} unique tokens; cache {} blocks of {} \
             tokens per replica (LRU)\n\
             service = {} ms/uncached prompt token + {} x {} ms decode; Poisson {:.2} req/s \
             (load factor {} of the all-hit service rate)\n",
            self.replicas,
            self.max_batch,
            self.capacity,
            self.tenants,
            self.zipf_exponent,
            self.requests,
            self.warmup_requests,
            self.seed,
            self.system_prompt_tokens,
            self.suffix_tokens.0,
            self.suffix_tokens.1,
            self.cache_blocks,
            self.block_tokens,
            self.prefill_ms_per_token,
            self.output_tokens,
            self.decode_ms_per_token,
            self.arrival_rate,
            self.load_factor,
        )
    }
}

/// One strategy's results. Latencies are in simulated seconds and cover the
/// measured (post-warm-up) requests, each followed to completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixReport {
    /// Strategy name.
    pub strategy: String,
    /// Measured arrivals.
    pub measured: u64,
    /// Measured arrivals served to completion.
    pub completed: u64,
    /// Measured arrivals no replica could take (the router's capacity check).
    pub rejected: u64,
    /// Cached prompt tokens / prompt tokens over the completed measured requests,
    /// counted by the replicas' own LRU caches at service start.
    pub cache_hit_rate: f64,
    /// Completions per simulated second in the measurement window.
    pub throughput: f64,
    /// Mean time to first token (queue wait + prefill).
    pub mean_ttft_s: f64,
    /// 90th percentile TTFT (nearest rank).
    pub p90_ttft_s: f64,
    /// 99th percentile TTFT (nearest rank).
    pub p99_ttft_s: f64,
    /// Mean end-to-end latency (queue wait + prefill + decode).
    pub mean_e2e_s: f64,
    /// Mean queue wait.
    pub mean_wait_s: f64,
    /// Share of the batch slots busy, time-averaged over the window.
    pub utilisation: f64,
    /// Wall-clock nanoseconds per routing decision (`Router::route_slot` alone,
    /// every arrival, timed with `Instant` around each call).
    pub decision_ns: f64,
    /// `decision_ns` relative to `p2c`'s in the same run (`None` without p2c).
    pub decision_cost_vs_p2c: Option<f64>,
    /// Wall-clock seconds the strategy's simulation took.
    pub wall_seconds: f64,
}

impl PrefixReport {
    /// Rejections as a percentage of the measured arrivals.
    pub fn rejected_pct(&self) -> f64 {
        if self.measured == 0 {
            0.0
        } else {
            100.0 * self.rejected as f64 / self.measured as f64
        }
    }
}

/// Fills [`PrefixReport::decision_cost_vs_p2c`] from the `p2c` report, if any.
pub fn set_p2c_baseline(reports: &mut [PrefixReport]) {
    let base = reports
        .iter()
        .find(|r| r.strategy == "p2c")
        .map(|r| r.decision_ns);
    for r in reports.iter_mut() {
        r.decision_cost_vs_p2c = base.filter(|&b| b > 0.0).map(|b| r.decision_ns / b);
    }
}

const COLUMNS: &[Column<PrefixReport>] = &[
    ("strategy", |r| r.strategy.clone()),
    ("hit %", |r| format!("{:.1}", 100.0 * r.cache_hit_rate)),
    ("done/s", |r| format!("{:.2}", r.throughput)),
    ("util %", |r| format!("{:.1}", 100.0 * r.utilisation)),
    ("ttft mean s", |r| format!("{:.3}", r.mean_ttft_s)),
    ("ttft p90 s", |r| format!("{:.3}", r.p90_ttft_s)),
    ("ttft p99 s", |r| format!("{:.3}", r.p99_ttft_s)),
    ("e2e mean s", |r| format!("{:.3}", r.mean_e2e_s)),
    ("wait mean s", |r| format!("{:.3}", r.mean_wait_s)),
    ("rejected", |r| {
        format!("{} ({:.2}%)", r.rejected, r.rejected_pct())
    }),
    ("ns/decision", |r| format!("{:.0}", r.decision_ns)),
    ("x p2c", |r| {
        r.decision_cost_vs_p2c
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
    }),
];

/// An aligned text table: a title row, a rule, one row per strategy.
pub fn render_table(reports: &[PrefixReport]) -> String {
    crate::sim::table::render_columns(reports, COLUMNS)
}

#[derive(Serialize)]
struct JsonReport<'a> {
    scenario: &'a PrefixScenario,
    strategies: &'a [PrefixReport],
}

/// Pretty JSON: `{"scenario": {...}, "strategies": [{...}, ...]}`.
pub fn render_json(scenario: &PrefixScenario, reports: &[PrefixReport]) -> String {
    let mut text = serde_json::to_string_pretty(&JsonReport {
        scenario,
        strategies: reports,
    })
    .expect("reports serialise to JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(strategy: &str, decision_ns: f64) -> PrefixReport {
        PrefixReport {
            strategy: strategy.to_owned(),
            measured: 10,
            completed: 9,
            rejected: 1,
            cache_hit_rate: 0.5,
            throughput: 2.0,
            mean_ttft_s: 0.1,
            p90_ttft_s: 0.2,
            p99_ttft_s: 0.3,
            mean_e2e_s: 4.0,
            mean_wait_s: 0.05,
            utilisation: 0.8,
            decision_ns,
            decision_cost_vs_p2c: None,
            wall_seconds: 0.0,
        }
    }

    #[test]
    fn table_is_aligned_and_json_parses() {
        let mut reports = vec![report("p2c", 40.0), report("cache_aware", 400.0)];
        set_p2c_baseline(&mut reports);
        assert_eq!(reports[1].decision_cost_vs_p2c, Some(10.0));
        let table = render_table(&reports);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("strategy"));
        assert!(lines[3].contains("10.0") && lines[3].contains("1 (10.00%)"));
        assert_eq!(lines[2].len(), lines[3].len());
        let scenario = PrefixScenario::new(&PrefixSimConfig::default());
        assert!(scenario.header().contains("16 replicas"));
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&scenario, &reports)).unwrap();
        assert_eq!(json["strategies"][1]["strategy"], "cache_aware");
        assert_eq!(json["scenario"]["replicas"], 16);
    }
}
