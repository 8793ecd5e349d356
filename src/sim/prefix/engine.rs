//! The event loop: replays the shared-prefix arrivals through the real router, one
//! strategy at a time, on replicas with their own batch slots, FIFO queues and LRU
//! prefix caches.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::config::{strategy_for, PrefixSimConfig, BLOCK_TOKENS};
use super::lru::BlockLru;
use super::report::{set_p2c_baseline, PrefixReport};
use super::workload::{PrefixRequest, PrefixWorkload, TenantPrompts};
use crate::accelerator::Accelerator;
use crate::demand::{Decision, Demand};
use crate::error::Result;
use crate::fleet::Slot;
use crate::router::{Router, RouterOptions};
use crate::sim::workload::{stream_seed, Stream};

/// Arrivals between two progress reports.
const PROGRESS_EVERY: u64 = 1 << 12;

/// Observer of a run's progress: `(strategy, arrivals done, arrivals in total)`.
pub type Progress<'a> = dyn FnMut(&str, u64, u64) + 'a;

/// Runs every strategy of `config` on the same arrivals, in the order given, and
/// fills each report's cost relative to `p2c`. Fails, before simulating anything,
/// on an invalid config.
pub fn run(config: &PrefixSimConfig, progress: &mut Progress<'_>) -> Result<Vec<PrefixReport>> {
    config.validate()?;
    let prompts = TenantPrompts::generate(config);
    let mut reports = config
        .strategies
        .iter()
        .map(|name| {
            let requests = PrefixWorkload::new(config, &prompts);
            run_requests(config, name, requests, progress)
        })
        .collect::<Result<Vec<_>>>()?;
    set_p2c_baseline(&mut reports);
    Ok(reports)
}

/// Runs one strategy on caller-supplied requests (in time order, indexed from 0;
/// `config.requests` is taken as their number for the warm-up and progress).
pub fn run_requests(
    config: &PrefixSimConfig,
    strategy: &str,
    requests: impl IntoIterator<Item = PrefixRequest>,
    progress: &mut Progress<'_>,
) -> Result<PrefixReport> {
    config.validate()?;
    let started = Instant::now();
    let mut sim = Simulation::new(config, strategy)?;
    let name = sim.router.strategy().name();
    {
        let mut report = |done| progress(name, done, config.requests);
        sim.run(requests.into_iter(), &mut report);
    }
    let mut report = sim.finish(name);
    report.wall_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A request held by a replica, queued or in service.
#[derive(Debug, Clone)]
struct Held {
    arrived: f64,
    prompt_tokens: usize,
    blocks: Vec<u64>,
    measured: bool,
}

/// One model-server replica.
#[derive(Debug)]
struct Replica {
    busy: u32,
    queue: VecDeque<Held>,
    cache: BlockLru,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A request on `slot` finishes decoding.
    Completion {
        slot: Slot,
        arrived: f64,
        measured: bool,
    },
    /// The next arrival.
    Arrival,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    time: f64,
    seq: u64,
    kind: Kind,
}

impl Event {
    /// At one instant completions come first (a freed slot serves a same-time
    /// arrival), then insertion order.
    fn key(&self) -> (f64, u8, u64) {
        let rank = match self.kind {
            Kind::Completion { .. } => 0,
            Kind::Arrival => 1,
        };
        (self.time, rank, self.seq)
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Event {}

impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    /// Reversed, so the `BinaryHeap` pops the earliest event.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.key(), other.key());
        b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2))
    }
}

#[derive(Debug, Default)]
struct Stats {
    measured: u64,
    rejected: u64,
    completed: u64,
    prompt_tokens: u64,
    cached_tokens: u64,
    ttft: Vec<f64>,
    wait_sum: f64,
    e2e_sum: f64,
    window: Option<(f64, Option<f64>)>,
    window_completions: u64,
    busy_area: f64,
    last_time: f64,
    decision_ns: u128,
    decisions: u64,
}

struct Simulation<'a> {
    config: &'a PrefixSimConfig,
    router: Router,
    demand: Demand,
    rng: SmallRng,
    events: BinaryHeap<Event>,
    seq: u64,
    replicas: Vec<Replica>,
    busy_total: u64,
    stats: Stats,
}

impl<'a> Simulation<'a> {
    fn new(config: &'a PrefixSimConfig, strategy: &str) -> Result<Self> {
        let router = Router::with_options(
            strategy_for(strategy)?,
            RouterOptions {
                seed: Some(config.seed),
                priority_reserve: 0.0,
            },
        )?;
        let accelerators: Vec<Accelerator> = (0..config.replicas as u64)
            .map(|id| Accelerator::new(id, config.capacity()))
            .collect();
        router.add_accelerators(&accelerators)?;
        let measured = config.requests - config.warmup_requests();
        Ok(Simulation {
            config,
            demand: router.demand(1, 0)?,
            router,
            rng: SmallRng::seed_from_u64(stream_seed(config.seed, Stream::Routing)),
            events: BinaryHeap::with_capacity(config.replicas * config.max_batch as usize + 2),
            seq: 0,
            replicas: (0..config.replicas)
                .map(|_| Replica {
                    busy: 0,
                    queue: VecDeque::new(),
                    cache: BlockLru::new(config.cache_blocks),
                })
                .collect(),
            busy_total: 0,
            stats: Stats {
                ttft: Vec::with_capacity(measured as usize),
                ..Stats::default()
            },
        })
    }

    fn push(&mut self, time: f64, kind: Kind) {
        self.seq += 1;
        self.events.push(Event {
            time,
            seq: self.seq,
            kind,
        });
    }

    fn run(
        &mut self,
        mut requests: impl Iterator<Item = PrefixRequest>,
        progress: &mut dyn FnMut(u64),
    ) {
        let warmup = self.config.warmup_requests();
        let mut pending = requests.next();
        if let Some(first) = &pending {
            self.push(first.time, Kind::Arrival);
        }
        progress(0);
        let mut done = 0u64;
        while let Some(event) = self.events.pop() {
            let now = event.time;
            self.advance(now);
            match event.kind {
                Kind::Arrival => {
                    let request = pending.take().expect("an arrival event has its request");
                    let measured = request.index >= warmup;
                    if request.index == warmup {
                        self.stats.window = Some((now, None));
                    }
                    self.arrive(now, request, measured);
                    pending = requests.next();
                    match &pending {
                        Some(next) => self.push(next.time, Kind::Arrival),
                        None => {
                            if let Some((open, _)) = self.stats.window {
                                self.stats.window = Some((open, Some(now)));
                            }
                        }
                    }
                    done += 1;
                    if done % PROGRESS_EVERY == 0 {
                        progress(done);
                    }
                }
                Kind::Completion {
                    slot,
                    arrived,
                    measured,
                } => self.complete(now, slot, arrived, measured),
            }
        }
        progress(done);
    }

    /// Integrates the busy slots over the open measurement window.
    fn advance(&mut self, now: f64) {
        if let Some((open, close)) = self.stats.window {
            let from = self.stats.last_time.max(open);
            let to = close.map_or(now, |c| now.min(c));
            if to > from {
                self.stats.busy_area += self.busy_total as f64 * (to - from);
            }
        }
        self.stats.last_time = now;
    }

    fn arrive(&mut self, now: f64, request: PrefixRequest, measured: bool) {
        let decision = Decision {
            demand: self.demand,
            key: Some(request.tenant),
            candidates: None,
            prefix: Some(&request.blocks),
            adapter: None,
            now_ns: Some((now * 1e9) as u64),
        };
        let t0 = Instant::now();
        let slot = self.router.route_slot(&decision, &mut self.rng);
        self.stats.decision_ns += t0.elapsed().as_nanos();
        self.stats.decisions += 1;
        if measured {
            self.stats.measured += 1;
        }
        let Some(slot) = slot else {
            if measured {
                self.stats.rejected += 1;
            }
            return;
        };
        let held = Held {
            arrived: now,
            prompt_tokens: request.prompt_tokens,
            blocks: request.blocks,
            measured,
        };
        let replica = &mut self.replicas[slot as usize];
        if replica.busy < self.config.max_batch {
            replica.busy += 1;
            self.busy_total += 1;
            self.start(now, slot, held);
        } else {
            replica.queue.push_back(held);
        }
    }

    /// Starts serving `held` on `slot` (whose batch slot is already counted busy):
    /// counts the cached leading blocks, caches the prompt's blocks and schedules
    /// the completion after prefill and decode.
    fn start(&mut self, now: f64, slot: Slot, held: Held) {
        let cache = &mut self.replicas[slot as usize].cache;
        let cached_tokens =
            (cache.leading_hits(&held.blocks) * BLOCK_TOKENS).min(held.prompt_tokens);
        cache.insert(&held.blocks);
        let prefill = self
            .config
            .prefill_seconds(held.prompt_tokens - cached_tokens);
        let wait = now - held.arrived;
        if held.measured {
            let s = &mut self.stats;
            s.prompt_tokens += held.prompt_tokens as u64;
            s.cached_tokens += cached_tokens as u64;
            s.ttft.push(wait + prefill);
            s.wait_sum += wait;
        }
        let done = now + prefill + self.config.decode_seconds();
        self.push(
            done,
            Kind::Completion {
                slot,
                arrived: held.arrived,
                measured: held.measured,
            },
        );
    }

    fn complete(&mut self, now: f64, slot: Slot, arrived: f64, measured: bool) {
        self.router
            .release_slot(slot, 1)
            .expect("a completing request holds one unit on its replica");
        if measured {
            self.stats.completed += 1;
            self.stats.e2e_sum += now - arrived;
        }
        if let Some((open, close)) = self.stats.window {
            if now >= open && close.is_none_or(|c| now <= c) {
                self.stats.window_completions += 1;
            }
        }
        match self.replicas[slot as usize].queue.pop_front() {
            Some(next) => self.start(now, slot, next),
            None => {
                self.replicas[slot as usize].busy -= 1;
                self.busy_total -= 1;
            }
        }
    }

    fn finish(&mut self, name: &str) -> PrefixReport {
        let s = std::mem::take(&mut self.stats);
        let mut ttft = s.ttft;
        let completed = s.completed;
        let per = |sum: f64| {
            if completed == 0 {
                0.0
            } else {
                sum / completed as f64
            }
        };
        let window = match s.window {
            Some((open, Some(close))) => close - open,
            _ => 0.0,
        };
        let slots = (self.config.replicas as f64) * self.config.max_batch as f64;
        PrefixReport {
            strategy: name.to_owned(),
            measured: s.measured,
            completed,
            rejected: s.rejected,
            cache_hit_rate: if s.prompt_tokens == 0 {
                0.0
            } else {
                s.cached_tokens as f64 / s.prompt_tokens as f64
            },
            throughput: if window > 0.0 {
                s.window_completions as f64 / window
            } else {
                0.0
            },
            mean_ttft_s: per(ttft.iter().sum()),
            p90_ttft_s: nearest_rank(&mut ttft, 0.90),
            p99_ttft_s: nearest_rank(&mut ttft, 0.99),
            mean_e2e_s: per(s.e2e_sum),
            mean_wait_s: per(s.wait_sum),
            utilisation: if window > 0.0 {
                s.busy_area / (window * slots)
            } else {
                0.0
            },
            decision_ns: if s.decisions == 0 {
                0.0
            } else {
                s.decision_ns as f64 / s.decisions as f64
            },
            decision_cost_vs_p2c: None,
            wall_seconds: 0.0,
        }
    }
}

/// The nearest-rank `q` quantile of `values` (0 when empty).
fn nearest_rank(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    let (_, value, _) = values.select_nth_unstable_by(rank - 1, f64::total_cmp);
    *value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 8 replicas (the minimum), batch 1, no queue, no warm-up.
    fn tiny(requests: u64) -> PrefixSimConfig {
        PrefixSimConfig {
            replicas: 8,
            requests,
            max_batch: 1,
            queue_factor: 0.0,
            warmup: 0.0,
            prefill_ms_per_token: 1.0,
            output_tokens: 1,
            decode_ms_per_token: 1000.0,
            ..PrefixSimConfig::default()
        }
    }

    fn tokens(seed: u32, n: usize) -> Vec<u32> {
        (0..n as u32).map(|i| seed * 100_000 + i).collect()
    }

    fn run_on(config: &PrefixSimConfig, name: &str, requests: Vec<PrefixRequest>) -> PrefixReport {
        run_requests(config, name, requests, &mut |_, _, _| {}).unwrap()
    }

    #[test]
    fn a_second_identical_request_on_the_same_replica_is_a_full_hit() {
        // 64 tokens = 4 blocks; consistent hashing sends both to one replica. The
        // first pays 64 ms of prefill, the second (after the first completes) none.
        let config = tiny(2);
        let prompt = tokens(1, 64);
        let requests = vec![
            PrefixRequest::from_tokens(0, 0.0, 7, &prompt),
            PrefixRequest::from_tokens(1, 5.0, 7, &prompt),
        ];
        for name in ["consistent_hash", "cache_aware"] {
            let r = run_on(&config, name, requests.clone());
            assert_eq!((r.completed, r.rejected), (2, 0), "{name}");
            assert!((r.cache_hit_rate - 0.5).abs() < 1e-12, "{name}: {r:?}");
            // TTFTs 0.064 and 0: mean 0.032.
            assert!((r.mean_ttft_s - 0.032).abs() < 1e-12, "{name}: {r:?}");
            assert!((r.p90_ttft_s - 0.064).abs() < 1e-12);
            assert!((r.mean_e2e_s - (1.064 + 1.0) / 2.0).abs() < 1e-12);
            assert_eq!(r.mean_wait_s, 0.0);
        }
    }

    #[test]
    fn a_shared_prefix_is_a_partial_hit_and_a_partial_block_is_never_cached() {
        // Same 32-token head (2 blocks), different tails; the second prompt has 40
        // tokens: 2 cached blocks = 32 of its 40 tokens (the 8-token tail is not a
        // whole block).
        let config = tiny(2);
        let head = tokens(1, 32);
        let a = [head.clone(), tokens(2, 16)].concat();
        let b = [head, tokens(3, 8)].concat();
        let requests = vec![
            PrefixRequest::from_tokens(0, 0.0, 1, &a),
            PrefixRequest::from_tokens(1, 5.0, 1, &b),
        ];
        let r = run_on(&config, "consistent_hash", requests);
        assert!((r.cache_hit_rate - 32.0 / 88.0).abs() < 1e-12, "{r:?}");
        // TTFT 48 ms then 8 ms.
        assert!((r.mean_ttft_s - 0.028).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn queued_requests_wait_fifo_and_hit_the_cache_of_their_predecessor() {
        // Batch 1 with one queue place on each of the 8 replicas; cache_aware sends
        // the second request to the first one's replica (a full prefix match, and a
        // load gap of 1 is far below the balance guard), where it queues.
        let config = PrefixSimConfig {
            queue_factor: 1.0,
            ..tiny(3)
        };
        let prompt = tokens(4, 160);
        let requests = vec![
            PrefixRequest::from_tokens(0, 0.0, 3, &prompt),
            PrefixRequest::from_tokens(1, 0.1, 3, &prompt),
        ];
        let r = run_on(&config, "cache_aware", requests);
        // First: 0.16 s prefill + 1 s decode, done at 1.16. Second waits 1.06 s,
        // full hit: TTFT 1.06, done at 2.16.
        assert_eq!(r.completed, 2);
        assert!((r.mean_wait_s - 0.53).abs() < 1e-12, "{r:?}");
        assert!((r.mean_ttft_s - (0.16 + 1.06) / 2.0).abs() < 1e-12);
        assert!((r.cache_hit_rate - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_full_fleet_rejects() {
        let config = tiny(9);
        let requests: Vec<_> = (0..9)
            .map(|i| PrefixRequest::from_tokens(i, 0.01 * i as f64, i + 1, &tokens(i as u32, 16)))
            .collect();
        for name in [
            "random",
            "round_robin",
            "p2c",
            "least_connections",
            "cache_aware",
        ] {
            let r = run_on(&config, name, requests.clone());
            assert_eq!((r.measured, r.completed, r.rejected), (9, 8, 1), "{name}");
            assert_eq!(r.cache_hit_rate, 0.0);
        }
    }

    #[test]
    fn invalid_config_runs_nothing() {
        let config = PrefixSimConfig {
            replicas: 2,
            ..PrefixSimConfig::default()
        };
        let mut called = false;
        let err = run(&config, &mut |_, _, _| called = true).unwrap_err();
        assert!(err.to_string().starts_with("invalid replicas:"));
        assert!(!called);
    }
}
