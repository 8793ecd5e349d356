//! Seed 003's Rust usage example, with `intelligent_routing` renamed to `fleetroute`
//! and `fn main` made a test. The seed ignores `add_accelerator`'s result, hence the
//! allowances; everything else is the seed's code as written.

use fleetroute::accelerator::Accelerator;
use fleetroute::request::Request;
use fleetroute::router::Router;
use fleetroute::strategies::least_connections::LeastConnections;
use fleetroute::strategies::p2c::PowerOfTwoChoices;
use fleetroute::strategies::round_robin::RoundRobin;

#[test]
#[allow(unused_must_use, unused_mut)]
fn seed_quick_start_runs() {
    // Create accelerators
    let mut accelerators = Vec::new();
    for i in 0..1000 {
        accelerators.push(Accelerator::new(i, 100)); // 100 capacity units each
    }

    // Create router with Power of Two Choices strategy
    let strategy = Box::new(PowerOfTwoChoices::new());
    let mut router = Router::new(strategy);

    for acc in accelerators {
        router.add_accelerator(acc);
    }

    // Route a request
    let request = Request::new(1, 5, 1); // id=1, cost=5, priority=1
    match router.route_request(&request) {
        Some(acc_id) => println!("Request routed to accelerator {}", acc_id),
        None => panic!("No available accelerator"),
    }
}

#[test]
fn seed_strategy_choices_construct() {
    // Round Robin - Simple sequential distribution
    let round_robin = Box::new(RoundRobin::new());
    // Least Connections - Route to least loaded accelerator
    let least_connections = Box::new(LeastConnections::new());
    // Power of Two Choices - Optimal balance of performance and distribution
    let p2c = Box::new(PowerOfTwoChoices::new());
    for router in [
        Router::new(round_robin),
        Router::new(least_connections),
        Router::new(p2c),
    ] {
        router.add_accelerator(Accelerator::new(1, 10)).unwrap();
        assert_eq!(router.route_request(&Request::new(1, 5, 1)), Some(1));
    }
}
