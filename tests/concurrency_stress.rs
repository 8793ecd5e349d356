//! Many threads route and release while a writer changes the fleet. Afterwards every
//! load is zero, and no observer ever saw an accelerator above its capacity.
//! Each scenario runs under a deadline, so a hang reads as a deadlock, not a stall.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use fleetroute::prefix::prefix_block_hashes;
use fleetroute::{Accelerator, Decision, Router, RouterOptions, Strategy};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const THREADS: usize = 4;
const OPS_PER_THREAD: usize = 20_000;
/// Fleet changes made during one scenario, spread evenly over the routing work.
const FLEET_CHANGES: usize = 200;

fn with_deadline<F: FnOnce() + Send + 'static>(name: &str, f: F) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{name}: no progress within 120 s (deadlock?)"));
}

fn router(strategy: &str) -> Arc<Router> {
    let (hash, bound) = if strategy == "consistent_hash" {
        (Some("maglev"), Some(1.5))
    } else {
        (None, None)
    };
    let strategy = Strategy::from_name(strategy, hash, bound).unwrap();
    let router = Router::with_options(
        strategy,
        RouterOptions {
            seed: Some(7),
            priority_reserve: 0.0,
        },
    )
    .unwrap();
    let fleet: Vec<_> = (0..64)
        .map(|id| Accelerator::new(id, 1 + id % 5).with_weight((1 + id % 3) as f64))
        .collect();
    router.add_accelerators(&fleet).unwrap();
    Arc::new(router)
}

fn stress(strategy: &'static str) {
    with_deadline(strategy, move || {
        let router = router(strategy);
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicUsize::new(0));
        let observer = {
            let (router, stop) = (Arc::clone(&router), Arc::clone(&stop));
            thread::spawn(move || {
                let mut samples = 0u64;
                while !stop.load(Ordering::Acquire) {
                    for (_, state) in router.fleet().iter() {
                        assert!(
                            state.load() <= state.capacity().max(5),
                            "{strategy}: load {} above capacity {}",
                            state.load(),
                            state.capacity()
                        );
                    }
                    samples += 1;
                }
                samples
            })
        };
        let writer = {
            let (router, stop, progress) = (
                Arc::clone(&router),
                Arc::clone(&stop),
                Arc::clone(&progress),
            );
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(99);
                let mut next_id = 1000;
                let step = THREADS * OPS_PER_THREAD / FLEET_CHANGES;
                for change in 0..FLEET_CHANGES {
                    // Paced by the workers' progress, so changes interleave with routing.
                    while progress.load(Ordering::Acquire) < change * step {
                        if stop.load(Ordering::Acquire) {
                            return;
                        }
                        thread::yield_now();
                    }
                    let id = rng.random_range(0..64);
                    match rng.random_range(0..4) {
                        0 => router.set_healthy(id, rng.random_bool(0.7)).unwrap(),
                        1 => router.set_weight(id, rng.random_range(0.0..4.0)).unwrap(),
                        2 => {
                            router
                                .add_accelerator(Accelerator::new(next_id, 3))
                                .unwrap();
                            next_id += 1;
                        }
                        _ => thread::yield_now(),
                    }
                }
            })
        };
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (router, progress) = (Arc::clone(&router), Arc::clone(&progress));
                thread::spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(t as u64);
                    let mut held: Vec<(u32, u64)> = Vec::new();
                    for op in 0..OPS_PER_THREAD {
                        progress.fetch_add(1, Ordering::Release);
                        if held.is_empty() || rng.random_bool(0.55) {
                            let cost = rng.random_range(1..3);
                            let prompt =
                                format!("tenant {} system prompt {}", op % 7, "x".repeat(200));
                            let blocks = prefix_block_hashes(prompt.as_bytes(), 64).unwrap();
                            let decision = Decision {
                                key: Some(op as u64 % 97),
                                prefix: Some(&blocks),
                                ..Decision::new(router.demand(cost, 1).unwrap())
                            };
                            if let Some(slot) = router.route_slot(&decision, &mut rng) {
                                router
                                    .strategy()
                                    .observe_latency(slot, rng.random_range(0.0..2.0), None)
                                    .unwrap();
                                held.push((slot, cost));
                            }
                        } else {
                            let i = rng.random_range(0..held.len());
                            let (slot, cost) = held.swap_remove(i);
                            router.release_slot(slot, cost).unwrap();
                        }
                    }
                    for (slot, cost) in held {
                        router.release_slot(slot, cost).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Release);
        writer.join().unwrap();
        assert!(observer.join().unwrap() > 0);
        for (_, state) in router.fleet().iter() {
            assert_eq!(state.load(), 0, "{strategy}: load left on {}", state.id());
        }
    });
}

#[test]
fn round_robin_under_contention() {
    stress("round_robin");
}

#[test]
fn least_connections_under_contention() {
    stress("least_connections");
}

#[test]
fn p2c_under_contention() {
    stress("p2c");
}

#[test]
fn random_under_contention() {
    stress("random");
}

#[test]
fn weighted_round_robin_under_contention() {
    stress("weighted_round_robin");
}

#[test]
fn consistent_hash_under_contention() {
    stress("consistent_hash");
}

#[test]
fn peak_ewma_under_contention() {
    stress("peak_ewma");
}

#[test]
fn cache_aware_under_contention() {
    stress("cache_aware");
}

#[test]
fn endpoint_picker_under_contention() {
    stress("endpoint_picker");
}

#[test]
fn capacity_is_never_overfilled_by_racing_routers() {
    // Exactly `capacity` units fit; racing threads must never place one more.
    with_deadline("overfill", || {
        for strategy in ["round_robin", "least_connections", "p2c", "random"] {
            let router = Arc::new(
                Router::with_options(
                    Strategy::from_name(strategy, None, None).unwrap(),
                    RouterOptions {
                        seed: Some(1),
                        priority_reserve: 0.0,
                    },
                )
                .unwrap(),
            );
            let fleet: Vec<_> = (0..8).map(|id| Accelerator::new(id, 50)).collect();
            router.add_accelerators(&fleet).unwrap();
            let placed: usize = (0..THREADS)
                .map(|_| {
                    let router = Arc::clone(&router);
                    thread::spawn(move || {
                        (0..1000)
                            .filter(|_| router.route(1, 1, None, None).unwrap().is_some())
                            .count()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum();
            assert_eq!(placed, 8 * 50, "{strategy}");
            assert!(router.fleet().iter().all(|(_, s)| s.load() == 50));
        }
    });
}
