//! The shared-prefix benchmark of LLM-aware routing: a multi-tenant workload whose
//! requests share long per-tenant system prompts, served by model-server replicas
//! that each keep their own KV prefix cache, after the shape of llm-d's published
//! prefix-cache benchmark. Run it with
//! `cargo run --release -- --workload prefix [--replicas 16 --tenants 150
//! --requests 50000 --seed 42 --format table|json]`.
//!
//! Every routing decision is made by the real core: a [`crate::Router`] built with
//! `Router::with_options(strategy, RouterOptions { seed: Some(seed),
//! priority_reserve: 0.0 })`, replicas registered with `add_accelerators`, each
//! request routed with `route_slot` and released with `release_slot(slot, 1)` when it
//! completes. The simulation supplies time, prompts, queues and caches.
//!
//! # Workload ([`PrefixWorkload`])
//!
//! - **Tenants.** `tenants` (default 150) tenants, each with a system prompt of
//!   `system_prompt_tokens` (default 2,000) token ids drawn uniformly from
//!   `0..32,000` ([`workload::VOCAB`]) by a seeded RNG ([`TenantPrompts`]).
//! - **Requests.** A request is its tenant's system prompt followed by a unique
//!   suffix of `suffix_min_tokens..=suffix_max_tokens` (default 100..=500, uniform)
//!   random token ids, so prompts are 2,100–2,500 tokens (mean 2,300). The tenant is
//!   drawn from a Zipf law with exponent `zipf_exponent` (default 1) over
//!   `1..=tenants`: tenant 1 gets `1 / H(150)` = 17.9% of the requests, the top 6
//!   together 43.8%, the median tenant about 0.24%.
//! - **Blocks.** A prompt is cut into whole blocks of [`BLOCK_TOKENS`] = 16 tokens
//!   (vLLM's KV block size) and hashed with
//!   [`crate::prefix::prefix_block_hashes_tokens`]: a chained hash, so two prompts
//!   share exactly the blocks of their common whole-block prefix. A 2,000-token
//!   system prompt is 125 blocks; a trailing partial block is never cached.
//! - **Arrivals.** Poisson at `lambda = load_factor * replicas * max_batch /
//!   S_ideal` per second, where `S_ideal = prefill_ms_per_token * (mean prompt -
//!   16 * floor(system_prompt_tokens / 16)) + output_tokens * decode_ms_per_token`
//!   is the mean service time when every system prompt is a hit and no suffix is.
//!   Defaults: `S_ideal` = 0.25 ms x 300 + 200 x 20 ms = 4.075 s, `load_factor`
//!   0.8, 16 x 8 = 128 batch slots: lambda = 25.13 req/s, so 50,000 requests span
//!   about 1,990 simulated seconds. A router that always misses needs 4.575 s per
//!   request, 89.8% of the slots; one that hits every system prompt 80%.
//!
//! # Replicas
//!
//! `replicas` (default 16, 8 to 64) identical model servers. Each serves up to
//! `max_batch` (default 8) requests at once and queues the rest FIFO. It is
//! registered with router capacity `floor(max_batch * (1 + queue_factor))` (default
//! 16) and weight 1; the router's load on it is the number of requests it holds,
//! in service or queued, so the core's atomic check `load + 1 <= capacity` is the
//! admission control. A request no replica can take is *rejected* (counted, never
//! retried).
//!
//! **Prefix cache** ([`BlockLru`]). Each replica has its own LRU over block hashes
//! holding `cache_blocks` blocks (default 1,024 = 16,384 tokens: about 6 tenants'
//! system prompts plus the suffixes that pass through meanwhile; 16 replicas hold
//! about 100 of the 150 system prompts, so no replica can hold every tenant). When
//! a request starts service (takes a batch slot), the replica counts the request's
//! *leading* blocks found in its LRU: `cached = 16 * hits` tokens are free, and
//! then all of the request's blocks are put in the LRU (touched from the last to
//! the first, so the head of a prompt is evicted last, as vLLM does). Blocks are
//! cached from prefill onwards, so a same-tenant request starting while the first
//! still decodes already hits (vLLM's automatic prefix caching shares computed
//! blocks the same way); after serving, the replica's LRU holds the request's
//! blocks until evicted.
//!
//! **Service.** `prefill = (prompt_tokens - cached) * prefill_ms_per_token`
//! (default 0.25 ms per token: 575 ms for a full miss of a 2,300-token prompt,
//! 75 ms when the system prompt hits), then `decode = output_tokens *
//! decode_ms_per_token` (default 200 x 20 ms = 4 s), during which the request keeps
//! its batch slot. Time to first token (TTFT) = queue wait + prefill; end-to-end
//! latency = TTFT + decode. Batched requests do not slow each other down (decode at
//! a fixed per-token time, prefill not interleaved with other requests' decode):
//! the cache shows in prefill time and, through the slot time it saves, in
//! queueing.
//!
//! # Strategies
//!
//! `random`, `round_robin`, `least_connections`, `p2c`, `consistent_hash` (ketama
//! ring, bounded load `c = 1.25`, key = tenant id) and `cache_aware` (the default
//! affinity rule: cache threshold 0.5, balance guard 32 / 1.5, with 16-token blocks
//! via `StrategyOptions { block_size: Some(16), .. }`; `Decision::prefix` = the
//! request's block hashes). Every decision carries the tenant id as `key` and the
//! block hashes as `prefix`; strategies that do not use them ignore them. Note that
//! `cache_aware`'s index remembers where prompts were *sent*, not what each
//! replica's LRU still holds: it predicts the caches, it does not read them.
//!
//! Every strategy replays the *same* arrivals: prompts, arrivals and the
//! strategies' randomness come from separate streams of one seed
//! ([`crate::sim::workload::stream_seed`]: `Fleet` for the system prompts,
//! `Workload` for arrivals, tenants and suffixes, `Routing` for the strategies), so
//! one seed gives identical reports from run to run (wall-clock fields aside).
//!
//! # Measurement ([`PrefixReport`])
//!
//! The first `warmup` share of the arrivals (default 10%) warms the caches and is
//! left out; the window runs from the first measured arrival to the last arrival,
//! then the run drains so every measured request is followed to completion. Per
//! strategy: cache hit rate (cached prompt tokens / prompt tokens of the measured
//! requests, from the replicas' own LRUs), throughput (completions per simulated
//! second in the window), slot utilisation (time-averaged busy batch slots /
//! slots in the window), mean, p90 and p99 TTFT (nearest rank), mean end-to-end
//! latency, mean queue wait, rejections, and the router's decision cost: wall-clock
//! nanoseconds per `route_slot` call (timed with `Instant` around each call, so
//! about 20–40 ns of timer overhead is included in every strategy's figure;
//! prompt hashing is workload generation and not included), with its ratio to
//! `p2c`'s in the same run.
//!
//! # Cost
//!
//! The default run (6 strategies x 50,000 requests) hashes 300,000 prompts and
//! does about 145 LRU operations per request: a few seconds in release mode.

pub mod config;
pub mod engine;
pub mod lru;
pub mod report;
pub mod workload;

pub use config::{PrefixSimConfig, BLOCK_TOKENS, DEFAULT_STRATEGIES};
pub use engine::{run, run_requests, Progress};
pub use lru::BlockLru;
pub use report::{render_json, render_table, set_p2c_baseline, PrefixReport, PrefixScenario};
pub use workload::{PrefixRequest, PrefixWorkload, TenantPrompts};
