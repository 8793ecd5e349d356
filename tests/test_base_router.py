"""BaseRouter: registration, fallback tiers, priority headroom, completion."""

from __future__ import annotations

import pytest

from fleetroute import BaseRouter, Endpoint, ManualClock, RoutingResult

SEED_ENDPOINTS = [
    {"id": "tpu_primary", "device": "tpu", "capacity": 100, "priority": 1},
    {"id": "gpu_secondary", "device": "gpu", "capacity": 80, "priority": 2},
    {"id": "cpu_fallback", "device": "cpu", "capacity": 50, "priority": 3},
]


def seed_router(**kwargs: object) -> BaseRouter:
    router = BaseRouter(clock=ManualClock(), seed=7, **kwargs)  # type: ignore[arg-type]
    router.register_endpoints(SEED_ENDPOINTS)
    return router


def test_fallback_order_follows_tiers_as_each_fills() -> None:
    router = seed_router()
    placed = [router.route_request({"priority": "high"}) for _ in range(231)]
    order = [r.endpoint_id for r in placed]
    assert order[:100] == ["tpu_primary"] * 100
    assert order[100:180] == ["gpu_secondary"] * 80
    assert order[180:230] == ["cpu_fallback"] * 50
    assert order[230] is None and placed[230].no_capacity
    assert [r.fallback_used for r in placed[99:101]] == [False, True]
    assert placed[150].tier == 2 and placed[150].device == "gpu"


def test_fallback_disabled_stays_in_the_first_tier() -> None:
    router = seed_router()
    for _ in range(100):
        assert router.route_request({"priority": "high"}, enable_fallback=False).routed
    refused = router.route_request({"priority": "high"}, enable_fallback=False)
    assert refused.endpoint_id is None and refused.no_capacity
    assert router.route_request({"priority": "high"}).endpoint_id == "gpu_secondary"


def test_unhealthy_and_drained_endpoints_are_skipped_and_come_back() -> None:
    router = seed_router()
    router.set_endpoint_health("tpu_primary", False)
    assert router.route_request({}).endpoint_id == "gpu_secondary"
    assert router.endpoint_status("tpu_primary") == "unhealthy"
    router.drain("gpu_secondary")
    assert router.route_request({}).endpoint_id == "cpu_fallback"
    assert router.endpoint_status("gpu_secondary") == "drained"
    router.set_endpoint_health("tpu_primary", True)
    assert router.route_request({}).endpoint_id == "tpu_primary"


def test_normal_priority_leaves_reserved_headroom_for_high() -> None:
    router = BaseRouter(clock=ManualClock(), seed=1, priority_reserve=0.2)
    router.register_endpoints([{"id": "only", "capacity": 10}])
    normal = [router.route_request({"priority": "normal"}) for _ in range(9)]
    assert [r.routed for r in normal] == [True] * 8 + [False]
    high = [router.route_request({"priority": "high"}) for _ in range(3)]
    assert [r.routed for r in high] == [True, True, False]


def test_load_returns_to_zero_after_complete_and_abandon() -> None:
    router = seed_router()
    results = [router.route_request({"cost": 3}) for _ in range(20)]
    assert router.pool.in_flight == 60
    for i, result in enumerate(results):
        if i % 3 == 0:
            router.abandon(result)
        else:
            router.complete(result, success=i % 2 == 0, latency_ms=50.0)
    assert router.pool.in_flight == 0
    assert all(router.pool.load(e["id"]) == 0 for e in SEED_ENDPOINTS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already completed"):
        router.complete(results[1])


def test_result_fields_and_metrics() -> None:
    router = seed_router(default_latency_ms=40.0)
    result = router.route_request({"priority": "high"}, return_metrics=True)
    assert isinstance(result, RoutingResult)
    assert result.endpoint_id == "tpu_primary"
    assert result.estimated_latency_ms == 40.0
    assert result.load_score == pytest.approx(0.99)
    assert result.metrics is not None and result.metrics["tiers"] == [1, 2, 3]
    router.complete(result, latency_ms=140.0)
    # EWMA with alpha 0.1: 40 + 0.1 * (140 - 40).
    assert router.pool.latency_ms("tpu_primary") == pytest.approx(50.0)


def test_latency_defaults_to_the_clock() -> None:
    clock = ManualClock(10.0)
    router = BaseRouter(clock=clock, seed=1, latency_alpha=1.0)
    router.register_endpoints([{"id": "a", "capacity": 4}])
    result = router.route_request({})
    clock.advance(0.25)
    router.complete(result)
    assert router.pool.latency_ms("a") == pytest.approx(250.0)


def test_consider_load_false_is_registration_order() -> None:
    router = BaseRouter(clock=ManualClock(), seed=3)
    router.register_endpoints([{"id": f"e{i}", "capacity": 2} for i in range(3)])
    picks = [router.route_request({}, consider_load=False).endpoint_id for _ in range(5)]
    assert picks == ["e0", "e0", "e1", "e1", "e2"]


def test_consider_load_spreads_within_a_tier() -> None:
    router = BaseRouter(clock=ManualClock(), seed=3)
    router.register_endpoints([{"id": f"e{i}", "capacity": 100} for i in range(4)])
    for _ in range(200):
        router.route_request({})
    loads = [router.pool.load(f"e{i}") for i in range(4)]
    assert sum(loads) == 200 and max(loads) - min(loads) <= 4


def test_registration_is_all_or_nothing_and_validated() -> None:
    router = seed_router()
    with pytest.raises(ValueError, match="already registered"):
        router.register_endpoints(
            [{"id": "new", "capacity": 1}, {"id": "tpu_primary", "capacity": 1}]
        )
    assert "new" not in router.pool
    bad = [
        ({"id": "x", "capacity": 0}, "capacity"),
        ({"id": "x", "capacity": 1, "priority": -1}, "priority"),
        ({"id": "x", "capacity": 1, "weight": float("nan")}, "weight"),
        ({"id": "", "capacity": 1}, "id"),
        ({"id": "x"}, "capacity"),
        ({"id": "x", "capacity": 1, "url": "ftp://h"}, "url"),
    ]
    for spec, field in bad:
        with pytest.raises(ValueError, match=field):
            router.register_endpoints([spec])
    assert len(router.endpoints) == 3


def test_extra_registration_keys_are_metadata() -> None:
    router = BaseRouter(clock=ManualClock())
    (endpoint,) = router.register_endpoints([{"id": "a", "capacity": 2, "region": "eu"}])
    assert isinstance(endpoint, Endpoint) and endpoint.metadata == {"region": "eu"}


def test_bad_requests_and_config_name_the_problem() -> None:
    router = seed_router()
    with pytest.raises(ValueError, match="priority"):
        router.route_request({"priority": "urgent"})
    with pytest.raises(ValueError, match="cost"):
        router.route_request({"cost": 0})
    with pytest.raises(ValueError, match="mapping"):
        router.route_request(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="enable_fallback"):
        router.route_request({}, enable_fallback="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tpu_config"):
        BaseRouter(tpu_config={"mesh": (8, 4)})
    with pytest.raises(ValueError, match="mesh_shape"):
        BaseRouter(tpu_config={"mesh_shape": (8, 0)})
    with pytest.raises(ValueError, match="latency_threshold_ms"):
        BaseRouter(tpu_config={"latency_threshold_ms": -5})
    with pytest.raises(ValueError, match="strategy"):
        BaseRouter(strategy="fastest")
    assert router.pool.in_flight == 0


def test_tpu_config_enable_fallback_is_the_default() -> None:
    router = BaseRouter(tpu_config={"enable_fallback": False}, clock=ManualClock())
    router.register_endpoints(
        [{"id": "a", "capacity": 1}, {"id": "b", "capacity": 1, "priority": 2}]
    )
    assert router.route_request({"priority": "high"}).endpoint_id == "a"
    assert router.route_request({"priority": "high"}).endpoint_id is None
    assert router.route_request({"priority": "high"}, enable_fallback=True).endpoint_id == "b"


def test_remove_endpoint_forgets_its_load() -> None:
    router = seed_router()
    held = router.route_request({"priority": "high"})
    router.remove_endpoint("tpu_primary")
    assert router.pool.in_flight == 0
    router.complete(held)  # releasing on a removed endpoint is a no-op
    assert router.route_request({}).endpoint_id == "gpu_secondary"
    with pytest.raises(KeyError, match="tpu_primary"):
        router.remove_endpoint("tpu_primary")


def test_deweighted_endpoints_are_tried_after_the_rest_of_their_tier() -> None:
    router = BaseRouter(clock=ManualClock(), seed=5)
    router.register_endpoints([{"id": f"e{i}", "capacity": 3} for i in range(3)])
    router.deweight("e0")
    picks = [router.route_request({"priority": "high"}).endpoint_id for _ in range(9)]
    assert set(picks[:6]) == {"e1", "e2"} and picks[6:] == ["e0"] * 3
    router.restore_weight("e0")
    assert router.deweighted == frozenset()
