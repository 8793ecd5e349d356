//! Seed 003's Rust usage example, with `intelligent_routing` renamed to `fleetroute`.

use fleetroute::accelerator::Accelerator;
use fleetroute::request::Request;
use fleetroute::router::Router;
use fleetroute::strategy::{LeastConnections, PowerOfTwoChoices, RoundRobin};

#[test]
fn seed_quick_start_runs() {
    let mut accelerators = Vec::new();
    for i in 0..1000 {
        accelerators.push(Accelerator::new(i, 100)); // 100 capacity units each
    }

    let strategy = Box::new(PowerOfTwoChoices::new());
    let router = Router::new(strategy);

    for acc in accelerators {
        router.add_accelerator(acc).unwrap();
    }

    let request = Request::new(1, 5, 1); // id=1, cost=5, priority=1
    match router.route_request(&request) {
        Some(acc_id) => assert!(acc_id < 1000),
        None => panic!("No available accelerator"),
    }
}

#[test]
fn seed_strategy_choices_construct() {
    for router in [
        Router::new(Box::new(RoundRobin::new())),
        Router::new(Box::new(LeastConnections::new())),
        Router::new(Box::new(PowerOfTwoChoices::new())),
    ] {
        router.add_accelerator(Accelerator::new(1, 10)).unwrap();
        assert_eq!(router.route_request(&Request::new(1, 5, 1)), Some(1));
    }
}
