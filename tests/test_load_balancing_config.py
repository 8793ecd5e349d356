"""Seed 000's configure_load_balancing on the routers that take it."""

from __future__ import annotations

from collections import Counter

import pytest

from fleetroute import AdaptiveRouter, BaseRouter, EnhancedRouter, ManualClock

SEED_CONFIG = {
    "algorithms": {
        "primary": "weighted_round_robin",
        "fallback": "least_connections",
        "intelligent": "ml_based_prediction",
    },
    "weights": {
        "endpoint_capacity": 0.3,
        "current_load": 0.25,
        "historical_performance": 0.2,
        "resource_availability": 0.15,
        "geographic_proximity": 0.1,
    },
    "dynamic_adjustment": {
        "enabled": True,
        "adjustment_frequency": 30,  # seconds
        "sensitivity": 0.1,
        "stability_factor": 0.8,
    },
}


def test_seed_000_loop_configures_every_router() -> None:
    clock = ManualClock()
    base_router = BaseRouter(clock=clock)
    adaptive_router = AdaptiveRouter(clock=clock)
    enhanced_router = EnhancedRouter(clock=clock)
    for router in [base_router, adaptive_router, enhanced_router]:
        router.register_endpoints([{"id": "a", "capacity": 10}, {"id": "b", "capacity": 10}])
    # Apply advanced load balancing
    for router in [base_router, adaptive_router, enhanced_router]:
        router.configure_load_balancing(SEED_CONFIG)
    for router in [base_router, adaptive_router, enhanced_router]:
        assert router.pool.native.strategy == "weighted_round_robin"
        assert router.load_balancing is not None
        assert router.load_balancing.fallback == "least_connections"
        assert router.load_balancing.weights["endpoint_capacity"] == pytest.approx(0.3)


def test_weights_follow_history_and_shift_traffic() -> None:
    clock = ManualClock()
    router = BaseRouter(clock=clock, latency_alpha=1.0)
    router.register_endpoints([{"id": "fast", "capacity": 100}, {"id": "slow", "capacity": 100}])
    config = {
        "algorithms": {"primary": "weighted_round_robin"},
        "weights": {"historical_performance": 1.0},
        "dynamic_adjustment": {
            "enabled": True,
            "adjustment_frequency": 30,
            "stability_factor": 0.0,
        },
    }
    router.configure_load_balancing(config)
    # Observed latencies (alpha 1: the EWMA is the last observation).
    router.pool.observe_latency(router.pool.native_id("fast"), 50.0)
    router.pool.observe_latency(router.pool.native_id("slow"), 500.0)
    clock.advance(30.0)
    picks: Counter[str | None] = Counter()
    for _ in range(110):
        result = router.route_request({})
        picks[result.endpoint_id] += 1
        router.complete(result, latency_ms=50.0 if result.endpoint_id == "fast" else 500.0)
    weights = {v.id: v.weight for v in router.pool.native.accelerators()}
    assert weights[router.pool.native_id("fast")] == pytest.approx(1.05)
    assert weights[router.pool.native_id("slow")] == pytest.approx(0.15)
    assert picks["fast"] > 5 * picks["slow"]


def test_strategy_change_waits_for_an_idle_router() -> None:
    router = BaseRouter(clock=ManualClock())
    router.register_endpoints([{"id": "a", "capacity": 10}])
    held = router.route_request({})
    with pytest.raises(ValueError, match="in flight"):
        router.configure_load_balancing({"algorithms": {"primary": "least_connections"}})
    assert router.pool.native.strategy == "p2c" and router.load_balancing is None
    router.complete(held)
    router.configure_load_balancing({"algorithms": {"primary": "least_connections"}})
    assert router.pool.native.strategy == "least_connections"
    assert router.route_request({}).endpoint_id == "a"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"algorithm": {}}, "unknown load balancing section"),
        ({"algorithms": {"primary": "fastest"}}, "unknown primary algorithm 'fastest'"),
        ({"algorithms": {"intelligent": "magic"}}, "unknown intelligent algorithm"),
        ({"weights": {"cost": 1.0}}, "unknown load balancing weights key"),
        ({"weights": {"current_load": -1}}, "current_load"),
        ({"dynamic_adjustment": {"enabled": True}}, "sum to > 0"),
        (
            {
                "weights": {"current_load": 1},
                "dynamic_adjustment": {"enabled": True, "sensitivity": 2},
            },
            "sensitivity",
        ),
    ],
)
def test_bad_configuration_is_refused(config: dict[str, object], message: str) -> None:
    router = BaseRouter(clock=ManualClock())
    with pytest.raises(ValueError, match=message):
        router.configure_load_balancing(config)
    assert router.load_balancing is None
