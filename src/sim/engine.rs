//! The event loop: replays a workload through the real router, one strategy at a time.
//!
//! Each accelerator serves up to `slots` requests at once and queues the rest FIFO;
//! the router's load counter on it is the number of requests it holds (in service
//! plus queued), so the router's own atomic check `load + 1 <= capacity` is the
//! admission control. A request the router cannot place is rejected.

use std::collections::VecDeque;
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::cluster::Cluster;
use super::config::{strategy_for, SimConfig};
use super::event::{EventKind, EventQueue, SimTime};
use super::metrics::Recorder;
use super::report::{Scenario, StrategyReport};
use super::workload::{stream_seed, Arrival, Stream, Workload};
use crate::demand::{Decision, Demand};
use crate::error::Result;
use crate::fleet::Slot;
use crate::router::{Router, RouterOptions};

/// Arrivals between two progress reports.
const PROGRESS_EVERY: u64 = 1 << 16;

/// Observer of a run's progress: `(strategy, arrivals done, arrivals in total)`.
pub type Progress<'a> = dyn FnMut(&str, u64, u64) + 'a;

/// Runs every strategy of `config` on the same arrivals and reports each, in the
/// order given. `progress` is called as each strategy advances (pass `&mut |_, _, _|
/// {}` to ignore it). Fails, before simulating anything, on an invalid config.
pub fn run(config: &SimConfig, progress: &mut Progress<'_>) -> Result<Vec<StrategyReport>> {
    config.validate()?;
    let cluster = Cluster::generate(config);
    config
        .strategies
        .iter()
        .map(|name| run_strategy(config, &cluster, name, progress))
        .collect()
}

/// Runs one strategy on `cluster` with the arrivals of `config`'s seed.
pub fn run_strategy(
    config: &SimConfig,
    cluster: &Cluster,
    strategy: &str,
    progress: &mut Progress<'_>,
) -> Result<StrategyReport> {
    let workload = Workload::new(config, cluster.arrival_rate(config.load_factor));
    run_arrivals(config, cluster, strategy, workload, progress)
}

/// Runs one strategy on `cluster` with caller-supplied arrivals (in time order,
/// indexed from 0; `config.requests` is taken as their number for the warm-up and
/// progress). Used by the tests to replay hand-made workloads.
pub fn run_arrivals(
    config: &SimConfig,
    cluster: &Cluster,
    strategy: &str,
    arrivals: impl IntoIterator<Item = Arrival>,
    progress: &mut Progress<'_>,
) -> Result<StrategyReport> {
    config.validate()?;
    let started = Instant::now();
    let mut sim = Simulation::new(config, cluster, strategy)?;
    let name = sim.router.strategy().name();
    let summary = {
        let mut report = |done| progress(name, done, config.requests);
        sim.run(arrivals.into_iter(), &mut report)
    };
    let wall_seconds = started.elapsed().as_secs_f64();
    Ok(StrategyReport {
        strategy: name.to_owned(),
        summary,
        wall_seconds,
        decisions_per_second: if wall_seconds > 0.0 {
            config.requests as f64 / wall_seconds
        } else {
            0.0
        },
        scenario: Scenario::new(config, cluster),
    })
}

/// A request waiting in an accelerator's queue.
#[derive(Debug, Clone, Copy)]
struct Queued {
    arrived: f64,
    service: f64,
    measured: bool,
}

/// The state of one strategy's run.
struct Simulation<'a> {
    config: &'a SimConfig,
    cluster: &'a Cluster,
    /// The router that holds the true loads and admits requests.
    router: Router,
    /// With staleness: the router decisions are made on, its loads a periodic copy.
    view: Option<Router>,
    demand: Demand,
    rng: SmallRng,
    events: EventQueue,
    busy: Vec<u32>,
    queues: Vec<VecDeque<Queued>>,
    in_system: u64,
    recorder: Recorder,
}

fn build_router(config: &SimConfig, cluster: &Cluster, strategy: &str) -> Result<Router> {
    let router = Router::with_options(
        strategy_for(strategy)?,
        RouterOptions {
            seed: Some(config.seed),
            priority_reserve: 0.0,
        },
    )?;
    router.add_accelerators(&cluster.accelerators())?;
    Ok(router)
}

impl<'a> Simulation<'a> {
    fn new(config: &'a SimConfig, cluster: &'a Cluster, strategy: &str) -> Result<Self> {
        let router = build_router(config, cluster, strategy)?;
        let view = if config.staleness > 0.0 {
            Some(build_router(config, cluster, strategy)?)
        } else {
            None
        };
        let measured = config.requests - config.warmup_requests();
        Ok(Simulation {
            config,
            cluster,
            demand: router.demand(1, 0)?,
            router,
            view,
            rng: SmallRng::seed_from_u64(stream_seed(config.seed, Stream::Routing)),
            events: EventQueue::with_capacity(cluster.total_slots() as usize + 4),
            busy: vec![0; cluster.len()],
            queues: vec![VecDeque::new(); cluster.len()],
            in_system: 0,
            recorder: Recorder::with_capacity(measured as usize),
        })
    }

    fn run(
        &mut self,
        mut arrivals: impl Iterator<Item = Arrival>,
        progress: &mut dyn FnMut(u64),
    ) -> super::metrics::Summary {
        let warmup = self.config.warmup_requests();
        let mut pending = arrivals.next();
        if let Some(first) = &pending {
            self.events
                .push(SimTime::new(first.time), EventKind::Arrival);
        }
        if self.view.is_some() {
            self.events.push(SimTime::ZERO, EventKind::Refresh);
        }
        progress(0);
        let mut done = 0u64;
        while let Some(event) = self.events.pop() {
            let now = event.time.seconds();
            self.recorder.advance(now, self.in_system);
            match event.kind {
                EventKind::Arrival => {
                    let arrival = pending.take().expect("an arrival event has its arrival");
                    if arrival.index == warmup {
                        self.recorder.open_window(now);
                        self.events.push(event.time, EventKind::Sample);
                    }
                    self.arrive(now, &arrival, arrival.index >= warmup);
                    pending = arrivals.next();
                    match &pending {
                        Some(next) => self
                            .events
                            .push(SimTime::new(next.time), EventKind::Arrival),
                        None => self.recorder.close_window(now),
                    }
                    done += 1;
                    if done % PROGRESS_EVERY == 0 {
                        progress(done);
                    }
                }
                EventKind::Completion {
                    slot,
                    arrived,
                    measured,
                } => self.complete(now, slot, arrived, measured),
                EventKind::Refresh => {
                    if pending.is_some() {
                        self.refresh_view();
                        let next = now + self.config.staleness;
                        self.events.push(SimTime::new(next), EventKind::Refresh);
                    }
                }
                EventKind::Sample => {
                    if pending.is_some() {
                        let fleet = self.router.fleet();
                        self.recorder
                            .balance(fleet.iter().map(|(_, s)| s.utilisation()));
                        let next = now + self.config.sample_interval;
                        self.events.push(SimTime::new(next), EventKind::Sample);
                    }
                }
            }
        }
        progress(done);
        std::mem::take(&mut self.recorder).finish()
    }

    /// Picks a slot for one arrival; `None` means rejected.
    fn route(&mut self, now: f64, arrival: &Arrival) -> Option<Slot> {
        let decision = Decision {
            demand: self.demand,
            key: Some(arrival.session),
            candidates: None,
            prefix: None,
            adapter: None,
            now_ns: Some(sim_ns(now)),
        };
        let Some(view) = &self.view else {
            return self.router.route_slot(&decision, &mut self.rng);
        };
        let slot = view.route_slot(&decision, &mut self.rng)?;
        // The view does not count its own dispatches (a periodic bulletin board): its
        // per-accelerator load goes straight back. Its strategy is not told, so a
        // fleet-wide in-flight count (consistent_hash's load bound) keeps the
        // dispatch until the request is rejected or completes.
        view.fleet()
            .state(slot)
            .release(1)
            .expect("the view just took this load");
        view.strategy().after_change(view.fleet(), slot);
        if self.demand.try_take(self.router.fleet().state(slot)) {
            self.router
                .strategy()
                .after_change(self.router.fleet(), slot);
            Some(slot)
        } else {
            view.strategy().after_release(view.fleet(), slot, 1);
            None
        }
    }

    fn arrive(&mut self, now: f64, arrival: &Arrival, measured: bool) {
        let admitted = self.route(now, arrival);
        if measured {
            self.recorder.arrival(admitted.is_some());
        }
        let Some(slot) = admitted else {
            return;
        };
        self.in_system += 1;
        let i = slot as usize;
        if self.busy[i] < self.cluster.slots(i) {
            self.busy[i] += 1;
            if measured {
                self.recorder.service_start(0.0);
            }
            self.events.push(
                SimTime::new(now + arrival.service),
                EventKind::Completion {
                    slot,
                    arrived: now,
                    measured,
                },
            );
        } else {
            self.queues[i].push_back(Queued {
                arrived: now,
                service: arrival.service,
                measured,
            });
        }
    }

    fn complete(&mut self, now: f64, slot: Slot, arrived: f64, measured: bool) {
        self.router
            .release_slot(slot, 1)
            .expect("a completing request holds one unit on its accelerator");
        if let Some(view) = &self.view {
            view.strategy().after_release(view.fleet(), slot, 1);
        }
        self.in_system -= 1;
        // Latency-aware strategies (Peak-EWMA) learn from each completion, on the
        // simulated clock; the others ignore it.
        let observe = |strategy: &crate::strategy::Strategy| {
            strategy
                .observe_latency(slot, now - arrived, Some(sim_ns(now)))
                .expect("simulated latencies are finite and >= 0");
        };
        observe(self.router.strategy());
        if let Some(view) = &self.view {
            observe(view.strategy());
        }
        self.recorder.completion(measured, now - arrived);
        let i = slot as usize;
        match self.queues[i].pop_front() {
            Some(next) => {
                if next.measured {
                    self.recorder.service_start(now - next.arrived);
                }
                self.events.push(
                    SimTime::new(now + next.service),
                    EventKind::Completion {
                        slot,
                        arrived: next.arrived,
                        measured: next.measured,
                    },
                );
            }
            None => self.busy[i] -= 1,
        }
    }

    /// Copies the true loads into the view (and its strategy's index).
    fn refresh_view(&self) {
        let Some(view) = &self.view else {
            return;
        };
        for (slot, state) in self.router.fleet().iter() {
            let load = state.load();
            let seen = view.fleet().state(slot);
            if seen.load() != load {
                seen.store_load(load);
                view.strategy().after_change(view.fleet(), slot);
            }
        }
    }
}

/// Simulated seconds as the nanoseconds that time-aware strategies read.
fn sim_ns(seconds: f64) -> u64 {
    (seconds * 1e9) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::STRATEGY_NAMES;

    fn arrivals(spec: &[(f64, f64)]) -> Vec<Arrival> {
        spec.iter()
            .enumerate()
            .map(|(i, &(time, service))| Arrival {
                index: i as u64,
                time,
                service,
                session: 1 + i as u64,
            })
            .collect()
    }

    fn config(requests: u64, queue_factor: f64) -> SimConfig {
        SimConfig {
            requests,
            queue_factor,
            warmup: 0.0,
            ..SimConfig::default()
        }
    }

    #[test]
    fn one_slot_fifo_by_hand() {
        // One accelerator, one slot, room for two queued (capacity 3).
        let config = config(5, 2.0);
        let cluster = Cluster::from_slots(&config, vec![1]);
        let work = arrivals(&[(0.0, 2.5), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (3.2, 1.0)]);
        for &name in STRATEGY_NAMES {
            let r = run_arrivals(&config, &cluster, name, work.clone(), &mut |_, _, _| {}).unwrap();
            let s = r.summary;
            // A0 0..2.5; A1 waits 1.5, 2.5..3.5; A2 waits 1.5, 3.5..4.5; A3 arrives
            // at 3 (load 2) and waits 1.5, 4.5..5.5; A4 at 3.2 finds 3 held: rejected.
            assert_eq!((s.measured, s.completed, s.rejected), (5, 4, 1), "{name}");
            assert!((s.mean_time_in_system - 2.5).abs() < 1e-12, "{name} {s:?}");
            assert!((s.p99_time_in_system - 2.5).abs() < 1e-12, "{name}");
            assert!((s.mean_wait - 4.5 / 4.0).abs() < 1e-12, "{name}");
            assert!((s.window_seconds - 3.2).abs() < 1e-12);
            // Only A0 completes inside the window [0, 3.2].
            assert!((s.throughput - 1.0 / 3.2).abs() < 1e-12);
            // Held: 1 on [0,1), 2 on [1,2), 3 on [2,2.5), 2 on [2.5,3), 3 on [3,3.2).
            assert!((s.mean_in_system - 6.1 / 3.2).abs() < 1e-12, "{s:?}");
            assert_eq!(r.strategy, name);
        }
    }

    #[test]
    fn completion_frees_the_slot_for_a_same_time_arrival() {
        let config = config(2, 0.0);
        let cluster = Cluster::from_slots(&config, vec![1]);
        let work = arrivals(&[(0.0, 1.0), (1.0, 1.0)]);
        let r = run_arrivals(&config, &cluster, "p2c", work, &mut |_, _, _| {}).unwrap();
        assert_eq!((r.summary.completed, r.summary.rejected), (2, 0));
        assert_eq!(r.summary.mean_time_in_system, 1.0);
    }

    #[test]
    fn round_robin_alternates_and_queues_by_hand() {
        // Two accelerators of one slot, queue of one each.
        let config = config(5, 1.0);
        let cluster = Cluster::from_slots(&config, vec![1, 1]);
        let work = arrivals(&[(0.0, 4.0), (0.1, 4.0), (0.2, 1.0), (0.3, 1.0), (0.4, 1.0)]);
        let r = run_arrivals(&config, &cluster, "round_robin", work, &mut |_, _, _| {}).unwrap();
        // A0 -> 0, A1 -> 1, A2 queues on 0 (waits 3.8), A3 on 1 (waits 3.8), A4 finds
        // both full.
        let s = r.summary;
        assert_eq!((s.completed, s.rejected), (4, 1));
        assert!((s.mean_wait - 7.6 / 4.0).abs() < 1e-9, "{s:?}");
        assert!((s.mean_time_in_system - (4.0 + 4.0 + 4.8 + 4.8) / 4.0).abs() < 1e-9);
        assert!((s.p99_time_in_system - 4.8).abs() < 1e-9);
    }

    #[test]
    fn warmup_is_left_out() {
        let config = SimConfig {
            warmup: 0.5,
            ..config(4, 0.0)
        };
        let cluster = Cluster::from_slots(&config, vec![4]);
        let work = arrivals(&[(0.0, 9.0), (1.0, 9.0), (2.0, 1.0), (3.0, 2.0)]);
        let r = run_arrivals(&config, &cluster, "random", work, &mut |_, _, _| {}).unwrap();
        assert_eq!(r.summary.measured, 2);
        assert_eq!(r.summary.mean_time_in_system, 1.5);
        assert_eq!(r.summary.window_seconds, 1.0);
    }

    #[test]
    fn littles_law_holds_on_a_mid_size_run() {
        for (name, staleness) in [("p2c", 0.0), ("least_connections", 0.0), ("p2c", 0.2)] {
            let config = SimConfig {
                accelerators: 300,
                requests: 120_000,
                staleness,
                strategies: vec![name.into()],
                ..SimConfig::default()
            };
            let r = &run(&config, &mut |_, _, _| {}).unwrap()[0];
            let s = r.summary;
            let little = s.throughput * s.mean_time_in_system;
            let rel = (s.mean_in_system - little).abs() / s.mean_in_system;
            assert!(rel < 0.05, "{name}: L={} X*W={little}", s.mean_in_system);
            // The offered load is carried: 0.9 of the slots' service rate.
            let offered = r.scenario.arrival_rate * (1.0 - r.rejected_pct() / 100.0);
            assert!((s.throughput / offered - 1.0).abs() < 0.05, "{s:?}");
            assert!(s.balance_samples > 100);
        }
    }

    #[test]
    fn progress_reaches_the_total_per_strategy() {
        let config = SimConfig {
            accelerators: 20,
            requests: 70_000,
            strategies: vec!["round_robin".into(), "consistent_hash".into()],
            ..SimConfig::default()
        };
        let mut calls: Vec<(String, u64, u64)> = Vec::new();
        let reports = run(&config, &mut |s, d, t| calls.push((s.to_owned(), d, t))).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(
            calls.first().unwrap(),
            &("round_robin".to_owned(), 0, 70_000)
        );
        assert!(calls.contains(&("round_robin".to_owned(), 65_536, 70_000)));
        assert_eq!(
            calls.last().unwrap(),
            &("consistent_hash".to_owned(), 70_000, 70_000)
        );
    }

    #[test]
    fn invalid_config_runs_nothing() {
        let config = SimConfig {
            load_factor: f64::NAN,
            ..SimConfig::default()
        };
        let mut called = false;
        let err = run(&config, &mut |_, _, _| called = true).unwrap_err();
        assert!(err.to_string().contains("load_factor"));
        assert!(!called);
    }
}
