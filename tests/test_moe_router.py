"""MoERouter: seed 002's strategy set and response shape."""

from __future__ import annotations

from collections import Counter

import pytest

from fleetroute import ManualClock
from fleetroute.routers.moe_router import MOE_STRATEGIES, MoERouter

SERVICES = [
    {
        "service_id": "inference_a",
        "service_type": "inference",
        "capabilities": ["inference"],
        "max_capacity": 50,
    },
    {
        "service_id": "inference_b",
        "service_type": "inference",
        "capabilities": ["inference"],
        "max_capacity": 50,
    },
    {
        "service_id": "storage",
        "service_type": "storage",
        "capabilities": ["storage"],
        "max_capacity": 50,
    },
    {
        "service_id": "custom_processor",
        "service_type": "custom",
        "endpoint": "http://localhost:8006",
        "capabilities": ["processing", "analysis"],
        "max_capacity": 100,
    },
]


def make(**kwargs: object) -> MoERouter:
    router = MoERouter(clock=ManualClock(), seed=3, **kwargs)  # type: ignore[arg-type]
    for spec in SERVICES:
        router.register_service(spec)
    return router


@pytest.mark.parametrize("strategy", MOE_STRATEGIES)
def test_every_strategy_answers_in_seed_002s_shape(strategy: str) -> None:
    router = make()
    response = router.route({"type": "inference", "data": [0.1, 0.2]}, strategy=strategy)
    assert set(response) == {"selected_services", "routing_strategy", "decision_id"}
    assert response["selected_services"]
    assert all(
        s in {spec["service_id"] for spec in SERVICES} for s in response["selected_services"]
    )
    assert response["routing_strategy"].split(":")[0] == strategy
    router.observe(response["decision_id"], latency_ms=20.0, success=True)
    assert int(router.registry.loads().sum()) == 0


def test_top_k_and_semantic_and_hashing() -> None:
    router = make()
    assert len(router.route({"type": "x"}, strategy="top_k", top_k=3)["selected_services"]) == 3
    semantic = router.route(
        {"type": "x", "capabilities": ["processing", "analysis"]}, strategy="semantic"
    )
    assert semantic["selected_services"] == ["custom_processor"]
    first = router.route({"key": "user-42"}, strategy="consistent_hash")["selected_services"]
    again = router.route({"key": "user-42"}, strategy="consistent_hash")["selected_services"]
    assert first == again


def test_tda_aware_avoids_anomalous_services() -> None:
    router = make()
    for _ in range(40):
        for service in ("inference_a", "inference_b", "storage", "custom_processor"):
            response = router.route({"key": service}, strategy="power_of_two")
            chosen = response["selected_services"][0]
            slow = chosen == "storage"
            router.observe(response["decision_id"], 900.0 if slow else 50.0, success=True)
    picks = Counter(
        router.route({"type": "inference"}, strategy="tda_aware")["selected_services"][0]
        for _ in range(60)
    )
    assert picks["storage"] == 0 and sum(picks.values()) == 60


def test_adaptive_learns_which_strategy_works() -> None:
    router = make(exploration=0.1)
    for _ in range(400):
        response = router.route({"type": "analysis", "capabilities": ["analysis"]})
        ok = response["selected_services"] == ["custom_processor"]
        router.observe(response["decision_id"], 30.0, success=ok)
    late = Counter(
        router.route({"type": "analysis", "capabilities": ["analysis"]})["routing_strategy"]
        for _ in range(100)
    )
    assert late["adaptive:semantic"] >= 80
    assert router.metrics()["strategy_choices"]["semantic"] > 300


def test_registration_and_errors() -> None:
    router = make()
    with pytest.raises(ValueError, match="already registered"):
        router.register_service(SERVICES[0])
    with pytest.raises(ValueError, match="unknown service field"):
        router.register_service({"service_id": "x", "cpu": 3})
    with pytest.raises(ValueError, match="unknown strategy 'neural'"):
        router.route({"type": "x"}, strategy="neural")
    router.unregister_service("storage")
    assert "storage" not in {s.service_id for s in router.services()}
    router.register_service({"service_id": "storage2", "capabilities": ["storage"]})
    assert router.route({"capabilities": ["storage"]}, strategy="semantic")[
        "selected_services"
    ] == ["storage2"]
    with pytest.raises(KeyError):
        router.observe(12345, 1.0, True)
    with pytest.raises(ValueError, match="no services"):
        MoERouter().route({"type": "x"})


def test_semantic_spreads_load_over_equal_matches_and_overflows_to_the_next_best() -> None:
    router = MoERouter(strategy="semantic", seed=4)
    for name in ("a1", "a2", "a3"):
        router.register_service(
            {"service_id": name, "capabilities": ["analysis", "sql"], "max_capacity": 10}
        )
    router.register_service(
        {"service_id": "broad", "capabilities": ["analysis"], "max_capacity": 5}
    )
    picks = Counter(
        router.route({"type": "x", "capabilities": ["analysis", "sql"]})["selected_services"][0]
        for _ in range(30)
    )
    # The three full covers share the load (P2C), and only when they are all full does
    # the partial match take any.
    assert picks == {"a1": 10, "a2": 10, "a3": 10}
    overflow = router.route({"type": "x", "capabilities": ["analysis", "sql"]})
    assert overflow["selected_services"] == ["broad"]
    early = MoERouter(strategy="semantic", seed=4)
    for name in ("a1", "a2", "a3"):
        early.register_service({"service_id": name, "capabilities": ["analysis"]})
    first_nine = Counter(
        early.route({"type": "x", "capabilities": ["analysis"]})["selected_services"][0]
        for _ in range(9)
    )
    assert len(first_nine) == 3 and max(first_nine.values()) <= 4


def test_semantic_groups_follow_registrations() -> None:
    router = MoERouter(strategy="semantic", seed=1)
    router.register_service({"service_id": "old", "capabilities": ["vision"]})
    assert router.route({"capabilities": ["vision"]})["selected_services"] == ["old"]
    router.unregister_service("old")
    router.register_service({"service_id": "new", "capabilities": ["vision"]})
    assert router.route({"capabilities": ["vision"]})["selected_services"] == ["new"]
