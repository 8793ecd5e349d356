//! Criterion benchmarks of the routing core (`cargo bench --bench routing`, about 3 min;
//! `cargo bench --bench routing -- --quick` for a fast pass).
//!
//! Groups:
//!
//! * `decision/*`: one decision per iteration on 10,000 accelerators through
//!   [`Router::route_slot`], immediately followed by [`Router::release_slot`] so the
//!   fleet never fills: the figure is route + release.
//! * `seed_api/*`: [`Router::route_request`] (the seed API: lazily seeded random
//!   source, id lookup of the result) in loops of 10,000, releases untimed.
//! * `batch/*`: [`Router::route_batch`] with p2c, 100,000 decisions per iteration,
//!   against a plain `route_slot` loop over the same 100,000 decisions, on fleets of
//!   1,000, 10,000 and 100,000 accelerators; the release between iterations is not
//!   timed.
//! * `threads/*`: p2c and least connections on 1 and 2 threads, each thread with its
//!   own `SmallRng` running route + release on one shared router; decisions/s of the
//!   whole router.
//! * `reference/*`: what single primitives cost on this machine (an uncontended
//!   locked add and compare-exchange, seeding a `SmallRng`, a p2c sample + read +
//!   compare without the atomic take), to read the figures above against.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fleetroute::strategy::power_of_two_choices::{less_utilised, sample_two_distinct};
use fleetroute::{Accelerator, Decision, Request, Router, RouterOptions, Slot, Strategy};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Accelerators in every benchmark fleet.
const FLEET: u64 = 10_000;
/// Capacity of each: far above what a benchmark keeps in flight at once.
const CAPACITY: u64 = 1_000;
/// Decisions per `batch/*` iteration.
const BATCH: usize = 100_000;
/// Fleet sizes of the `batch/*` group: the arena (64 B per accelerator) fits L2 at
/// 1,000, spills to L3 at 10,000 and beyond at 100,000 on most machines.
const BATCH_FLEETS: [u64; 3] = [1_000, 10_000, 100_000];
/// Decisions per `seed_api/*` iteration.
const SEED_LOOP: usize = 10_000;
/// Decisions per thread per `threads/*` iteration.
const PER_THREAD: u64 = 10_000;

/// (benchmark name, strategy name, hash kind for consistent hashing)
const STRATEGIES: &[(&str, &str, Option<&str>)] = &[
    ("round_robin", "round_robin", None),
    ("least_connections", "least_connections", None),
    ("p2c", "p2c", None),
    ("random", "random", None),
    ("weighted_round_robin", "weighted_round_robin", None),
    ("consistent_hash_ring", "consistent_hash", Some("ring")),
    ("consistent_hash_jump", "consistent_hash", Some("jump")),
    ("consistent_hash_maglev", "consistent_hash", Some("maglev")),
];

fn router(strategy: &str, hash: Option<&str>) -> Router {
    router_of(strategy, hash, FLEET)
}

fn router_of(strategy: &str, hash: Option<&str>, size: u64) -> Router {
    let strategy = Strategy::from_name(strategy, hash, None).expect("known strategy");
    let options = RouterOptions {
        seed: Some(1),
        priority_reserve: 0.1,
    };
    let router = Router::with_options(strategy, options).expect("valid options");
    let fleet: Vec<_> = (0..size)
        .map(|id| Accelerator::new(id, CAPACITY).with_weight((1 + id % 4) as f64))
        .collect();
    router.add_accelerators(&fleet).expect("fresh ids");
    router
}

/// A well-mixed key for decision `i` (keys reach the strategies already hashed).
#[inline]
fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));
    for &(name, strategy, hash) in STRATEGIES {
        let router = router(strategy, hash);
        let demand = router.demand(1, 1).expect("cost 1 is valid");
        let keyed = router.strategy().uses_key();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut i = 0u64;
        group.bench_function(BenchmarkId::new("route+release", name), |b| {
            b.iter(|| {
                i += 1;
                let decision = Decision {
                    key: keyed.then(|| key(i)),
                    ..Decision::new(demand)
                };
                let slot = router
                    .route_slot(black_box(&decision), &mut rng)
                    .expect("the fleet never fills");
                router
                    .release_slot(black_box(slot), 1)
                    .expect("taken above");
            })
        });
    }
    group.finish();
}

fn seed_api(c: &mut Criterion) {
    let mut group = c.benchmark_group("seed_api");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SEED_LOOP as u64));
    for strategy in ["round_robin", "p2c", "least_connections"] {
        let router = router(strategy, None);
        let requests: Vec<_> = (0..SEED_LOOP as u64)
            .map(|id| Request::new(id, 1, 1))
            .collect();
        let mut ids = vec![0u64; SEED_LOOP];
        group.bench_function(BenchmarkId::new("route_request_x10k", strategy), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for (out, request) in ids.iter_mut().zip(&requests) {
                        *out = router
                            .route_request(black_box(request))
                            .expect("the fleet never fills");
                    }
                    timed += start.elapsed();
                    for &id in &ids {
                        router.release(id, 1).expect("routed above");
                    }
                }
                timed
            })
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let costs = vec![1u64; BATCH];
    let mut out = vec![0i64; BATCH];
    let mut slots: Vec<Slot> = vec![0; BATCH];
    for fleet in BATCH_FLEETS {
        let router = router_of("p2c", None, fleet);
        group.bench_function(BenchmarkId::new("p2c_route_batch_100k", fleet), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    router
                        .route_batch(black_box(&costs), None, 1, &mut out)
                        .expect("valid batch");
                    timed += start.elapsed();
                    router.release_batch(&out, &costs).expect("routed above");
                }
                timed
            })
        });
        let decision = Decision::new(router.demand(1, 1).expect("cost 1 is valid"));
        let mut rng = SmallRng::seed_from_u64(11);
        group.bench_function(BenchmarkId::new("p2c_route_slot_loop_100k", fleet), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    for slot in slots.iter_mut() {
                        *slot = router
                            .route_slot(black_box(&decision), &mut rng)
                            .expect("the fleet never fills");
                    }
                    timed += start.elapsed();
                    for &slot in &slots {
                        router.release_slot(slot, 1).expect("routed above");
                    }
                }
                timed
            })
        });
    }
    group.finish();
}

/// Runs `threads` threads of `per_thread` route + release pairs each on `router` and
/// returns the wall time from a common start to the last thread's end.
fn run_threads(router: &Router, threads: usize, per_thread: u64, seed: u64) -> Duration {
    let demand = router.demand(1, 1).expect("cost 1 is valid");
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(seed ^ ((t as u64) << 32));
                    let decision = Decision::new(demand);
                    barrier.wait();
                    for _ in 0..per_thread {
                        let slot = router
                            .route_slot(black_box(&decision), &mut rng)
                            .expect("the fleet never fills");
                        router.release_slot(slot, 1).expect("taken above");
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for worker in workers {
            worker.join().expect("worker panicked");
        }
        start.elapsed()
    })
}

fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    for strategy in ["p2c", "least_connections"] {
        let router = router(strategy, None);
        for count in [1usize, 2] {
            group.throughput(Throughput::Elements(count as u64 * PER_THREAD));
            let id = BenchmarkId::new(strategy, format!("{count}t"));
            let mut seed = 0u64;
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    seed += 1;
                    run_threads(&router, count, iters * PER_THREAD, seed)
                })
            });
        }
    }
    group.finish();
}

fn reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("reference");
    group.throughput(Throughput::Elements(1));
    let cell = AtomicU64::new(0);
    group.bench_function("atomic_fetch_add_uncontended", |b| {
        b.iter(|| black_box(&cell).fetch_add(1, Ordering::AcqRel))
    });
    group.bench_function("atomic_compare_exchange_uncontended", |b| {
        b.iter(|| {
            let cell = black_box(&cell);
            let seen = cell.load(Ordering::Relaxed);
            cell.compare_exchange(seen, seen + 1, Ordering::AcqRel, Ordering::Relaxed)
        })
    });
    let mut plain = 0u64;
    group.bench_function("plain_add", |b| {
        b.iter(|| {
            plain = black_box(plain).wrapping_add(1);
            plain
        })
    });
    let mut next_seed = 0u64;
    group.bench_function("smallrng_seed_and_draw", |b| {
        b.iter(|| {
            next_seed += 1;
            SmallRng::seed_from_u64(black_box(next_seed)).random::<u64>()
        })
    });
    let router = router("p2c", None);
    group.bench_function("router_rng_seed_and_draw", |b| {
        b.iter(|| router.rng().random::<u64>())
    });
    // A p2c decision without taking the load: sample two distinct records of the
    // 10,000, read them and compare. The gap to `decision/route+release/p2c` is the
    // compare-exchange, the release and the bookkeeping around them.
    let fleet = router.fleet();
    let n = fleet.slot_count();
    let mut rng = SmallRng::seed_from_u64(5);
    group.bench_function("p2c_sample_read_compare_10k", |b| {
        b.iter(|| {
            let (i, j) = sample_two_distinct(&mut rng, black_box(n));
            let (a, b) = (fleet.state(i as Slot), fleet.state(j as Slot));
            if less_utilised(a, b) {
                i
            } else {
                j
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200))
        .sample_size(20);
    targets = decisions, seed_api, batch, threads, reference
}
criterion_main!(benches);
