//! Discrete-event simulation of an inference fleet behind the router: the engine of
//! `cargo run --release`, of `fleetroute simulate` and of Python's
//! `fleetroute.simulate`.
//!
//! Every routing decision is made by the real core ([`crate::Router`] with the named
//! [`crate::Strategy`]); the simulation supplies only time, the workload and the
//! accelerators' queues.
//!
//! # Model
//!
//! **Fleet** ([`Cluster`]). `accelerators` accelerators (default 10,000). Each has
//! `slots` concurrent execution slots drawn independently from
//! [`SimConfig::slot_mix`]: 4, 8 or 16 slots with probabilities 0.5, 0.3, 0.2
//! (7.6 on average), and one FIFO queue. It is registered with the router with
//! `capacity = floor(slots * (1 + queue_factor))` (default `queue_factor` 1.0, so
//! twice its slots) and weight `slots`.
//!
//! **Admission.** The router's load on an accelerator is the number of requests it
//! holds, in service or queued. A request (cost 1, priority reserve 0) is admitted
//! only while `load + 1 <= capacity`: that is the core's own atomic check-and-add,
//! done inside the strategy's pick. The first `slots` requests held are in service;
//! later ones wait in the queue and take the next slot freed, in arrival order. A
//! request no accelerator can take is *rejected* (counted, never retried).
//!
//! **Workload** ([`Workload`]). Poisson arrivals at rate
//! `lambda = load_factor * total_slots / E[service]` (default `load_factor` 0.9),
//! so `load_factor` is the share of the slots' service rate that is offered.
//! Service times are Pareto with shape `alpha = service_shape` (default 2.2: heavy
//! tail, finite variance) and scale `x_m = (alpha - 1) / alpha`, which makes the mean
//! exactly 1 s (p99 of the service time alone is `x_m * 100^(1/alpha)`, 4.4 s at
//! the default). Each request belongs to a session drawn from a Zipf(`s = 1`) law
//! over 100,000 sessions (the most popular about 8% of requests); the session id is
//! the routing key of `consistent_hash` and is ignored by the other strategies.
//!
//! **Strategies.** `round_robin`, `least_connections`, `p2c`, `random`,
//! `weighted_round_robin` (weights = slots) and `consistent_hash` (ketama ring with
//! bounded loads, `c = 1.25`) each replay the *same* arrivals: the fleet, the
//! workload and the strategies' randomness come from separate streams of one seed
//! (see [`workload::stream_seed`]), so one seed gives identical inputs to every
//! strategy and identical reports from run to run (wall-clock fields aside).
//!
//! **Stale load information** (`staleness` > 0 seconds). Decisions are then made on a
//! second router over the same fleet, the *view*, whose per-accelerator loads are
//! copied from the true router every `staleness` seconds of simulated time
//! ([`crate::accelerator::AcceleratorState::store_load`] followed by
//! [`crate::Strategy::after_change`] so least connections' index sees the copy). A
//! decision picks on the view and gives the unit straight back there, so the view
//! does not count its own dispatches: the periodic bulletin-board model of
//! Mitzenmacher ("How useful is old information?", 2000). The true router then admits
//! the request on the picked accelerator with the atomic check; if it is full the
//! request is rejected. Between two refreshes least connections sends every request
//! to the same accelerator (herding), while p2c's two random samples spread them;
//! the view's fleet-wide in-flight count (what `consistent_hash`'s load bound uses)
//! is the router's own count of its dispatches and stays exact.
//!
//! # Events and measurement
//!
//! The [`event`] queue is a `BinaryHeap` ordered by (time, kind, insertion): times are
//! finite [`SimTime`]s (a total order, no NaN), and at one instant completions come
//! first, then view refreshes, balance samples and arrivals. Only the next arrival,
//! sample and refresh are ever queued, so the heap holds about one event per busy
//! slot.
//!
//! The first `warmup` share of the arrivals (default 20%) fills the empty fleet and
//! is left out. The [`metrics`] window runs from the first measured arrival to the
//! last arrival; the run then drains, so every measured request is followed to its
//! completion. Reported per strategy ([`StrategyReport`]): completed throughput
//! (completions per simulated second in the window), mean, median and exact p99
//! time in system (queueing plus service, nearest rank via `select_nth_unstable`),
//! mean queueing delay, rejections (count and % of measured arrivals), load balance
//! sampled every `sample_interval` (default 0.1 s) in the window: the mean over
//! samples of max/mean utilisation and of the coefficient of variation of
//! utilisation (`load / capacity`) across accelerators, the time-averaged number in
//! system (for Little's law), and the simulation's wall-clock decisions per second.
//!
//! # Reading the numbers
//!
//! - A full accelerator's utilisation is 1, so the balance figures saturate: a
//!   strategy that keeps the small accelerators full (`random`, `round_robin`, which
//!   give every accelerator the same share) shows a max/mean near `1 / mean` and a
//!   CV clipped by the cap. Compare them with a deeper queue (`queue_factor`) too.
//! - On this mixed fleet `p2c` samples its two candidates in proportion to capacity
//!   (uniform sampling would cap any accelerator at about 2/n of the traffic, below a
//!   16-slot accelerator's fair share of 16/7.6 = 2.1/n), so it comes close to exact
//!   least connections with fresh loads and stays close with stale ones.
//! - Heavy-tailed service makes the fleet fill slowly (the number in service
//!   approaches its limit like `t^-(alpha - 1)`), so with the default 20% warm-up the
//!   throughput sits a little (about 0.5% for least connections) below the admitted
//!   arrival rate.
//! - With `staleness` > 0 a rejection is final: herding shows as rejections first,
//!   and in latency when queues are deep enough (`queue_factor`) for the herded
//!   accelerator to take many requests before refusing.
//!
//! # Cost
//!
//! The default run (10,000 accelerators, 1,000,000 arrivals per strategy: about
//! 14.5 s of simulated time at `lambda` of about 68,700 per second, six strategies)
//! is 6 M decisions and about 12 M heap operations: about 8 s of CPU on a two-core
//! machine in release mode (20–40 s is the budget), `consistent_hash` being the
//! slowest (a hot session walks the ring past accelerators at their load bound).
//! With staleness every refresh also reads each accelerator's load once.

pub mod cluster;
pub mod config;
pub mod engine;
pub mod event;
pub mod metrics;
pub mod prefix;
pub mod report;
pub mod table;
pub mod workload;

pub use cluster::Cluster;
pub use config::SimConfig;
pub use engine::{run, run_arrivals, run_strategy, Progress};
pub use event::{EventQueue, SimTime};
pub use metrics::Summary;
pub use report::{render, render_csv, render_json, render_table, Format, Scenario, StrategyReport};
pub use workload::{Arrival, Workload};
