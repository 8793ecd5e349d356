//! `Router::route_in_order`: a strict preference order among candidates, with the
//! strategy's own index kept in step so its later picks stay exact.

use fleetroute::accelerator::Accelerator;
use fleetroute::demand::Candidates;
use fleetroute::router::Router;
use fleetroute::strategy::Strategy;

fn router(strategy: &str, capacities: &[u64]) -> Router {
    let router = Router::new(Strategy::from_name(strategy, None, None).unwrap());
    for (id, &capacity) in capacities.iter().enumerate() {
        router
            .add_accelerator(Accelerator::new(id as u64, capacity))
            .unwrap();
    }
    router
}

#[test]
fn first_candidate_with_room_takes_it_in_the_given_order() {
    let router = router("round_robin", &[2, 2, 2]);
    let order = Candidates::from_ids(router.fleet(), [2, 0]).unwrap();
    let demand = router.demand(1, 1).unwrap();
    let picks: Vec<_> = (0..5)
        .map(|_| router.route_in_order(demand, &order))
        .collect();
    assert_eq!(picks, [Some(2), Some(2), Some(0), Some(0), None]);
    assert_eq!(router.loads().1, [2, 0, 2]);
}

#[test]
fn least_connections_index_follows_ordered_takes() {
    let router = router("least_connections", &[10, 10, 10]);
    let only_first = Candidates::from_ids(router.fleet(), [0]).unwrap();
    let demand = router.demand(4, 1).unwrap();
    assert_eq!(router.route_in_order(demand, &only_first), Some(0));
    // The tree must know accelerator 0 is busy: the next two picks avoid it.
    assert_ne!(router.route(1, 1, None, None).unwrap(), Some(0));
    assert_ne!(router.route(1, 1, None, None).unwrap(), Some(0));
    router.release(0, 4).unwrap();
}

#[test]
fn bounded_load_hashing_counts_ordered_takes() {
    let strategy = Strategy::from_name("consistent_hash", None, Some(1.25)).unwrap();
    let router = Router::new(strategy);
    for id in 0..4 {
        router.add_accelerator(Accelerator::new(id, 100)).unwrap();
    }
    let all = Candidates::from_ids(router.fleet(), 0..4).unwrap();
    let demand = router.demand(3, 1).unwrap();
    assert_eq!(router.route_in_order(demand, &all), Some(0));
    // Releasing what was taken in order leaves the in-flight count at zero, not
    // below it: a following routed request is still accepted.
    router.release(0, 3).unwrap();
    assert!(router.route(1, 1, Some(7), None).unwrap().is_some());
}
