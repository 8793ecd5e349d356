"""``AdaptiveRouter``: seed 000's example, learning on seeded workloads (weights and
bandits), the adaptation triggers, outcome reporting and validation."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

from fleetroute import Endpoint, ManualClock, RouterMonitor
from fleetroute.routers.adaptive_router import (
    AdaptiveRouter,
    AdaptiveRoutingResult,
    RequestFeatures,
)

SEED_ADAPTATION_CONFIG: dict[str, Any] = {
    "load_monitoring": {
        "cpu_utilization": True,
        "memory_usage": True,
        "queue_length": True,
        "response_time": True,
    },
    "performance_tracking": {
        "success_rate": True,
        "error_rate": True,
        "timeout_rate": True,
        "quality_metrics": True,
    },
    "adaptation_triggers": {
        "performance_degradation": 0.2,
        "load_imbalance": 0.3,
        "failure_rate": 0.05,
    },
}

NO_TRIGGERS = {
    "adaptation_triggers": {
        "performance_degradation": None,
        "load_imbalance": None,
        "failure_rate": None,
    }
}

# One fallback tier of three endpoints, so the weights decide among them.
FLEET: list[dict[str, Any]] = [
    {"id": "tpu_primary", "device": "tpu", "capacity": 100},
    {"id": "tpu_secondary", "device": "tpu", "capacity": 100},
    {"id": "gpu_pool", "device": "gpu", "capacity": 100},
]


def seed_adaptive_router(clock: ManualClock) -> AdaptiveRouter:
    # Router that adapts based on load and performance
    adaptive_router = AdaptiveRouter(
        adaptation_strategy="dynamic_weighted",
        learning_rate=0.1,
        history_window=1000,
        performance_weights={
            "latency": 0.4,
            "throughput": 0.3,
            "accuracy": 0.2,
            "availability": 0.1,
        },
        clock=clock,
    )

    # Configure adaptation metrics
    adaptation_config = SEED_ADAPTATION_CONFIG

    adaptive_router.configure_adaptation(adaptation_config)
    adaptive_router.register_endpoints(FLEET)
    return adaptive_router


def test_seed_example_as_written_returns_every_load() -> None:
    clock = ManualClock()
    adaptive_router = seed_adaptive_router(clock)
    request_stream = [
        {"model": "capibara_large", "input": f"Explain topic {i}", "max_tokens": 1000}
        for i in range(60)
    ]

    # Adaptive processing
    for request in request_stream:
        # Router learns and adapts automatically
        result = adaptive_router.route_adaptive(
            request=request, update_weights=True, record_performance=True
        )

        # Update metrics based on result
        adaptive_router.update_performance_metrics(
            endpoint_id=result.endpoint_id,
            actual_latency=result.actual_latency,
            success=result.success,
            quality_score=result.quality_score,
        )

    # Nothing was dispatched, so each outcome is "completed now": success, the time
    # since routing as latency, no quality; every load unit came back.
    assert adaptive_router.pool.in_flight == 0
    assert adaptive_router.metrics.completed == 60
    assert adaptive_router.observations == 60
    assert result.completed and result.success is True and result.actual_latency == 0.0
    assert result.quality_score is None
    assert Counter(adaptive_router.metrics.endpoint_totals(e["id"])[0] for e in FLEET) == {20: 3}


class Backend:
    """A seeded stand-in for the endpoints: latency (ms), success probability and
    answer quality per endpoint."""

    def __init__(self, profiles: Mapping[str, tuple[float, float, float]], seed: int) -> None:
        self.profiles = dict(profiles)
        self.rng = np.random.default_rng(seed)

    def serve(self, result: AdaptiveRoutingResult) -> None:
        """Fills in the outcome the seed example reads back from the result."""
        assert result.endpoint_id is not None
        latency, p_success, quality = self.profiles[result.endpoint_id]
        result.actual_latency = float(self.rng.gamma(4.0, latency / 4.0))
        result.success = bool(self.rng.random() < p_success)
        result.quality_score = float(np.clip(self.rng.normal(quality, 0.05), 0.0, 1.0))


def run_seed_loop(
    adaptive_router: AdaptiveRouter,
    backend: Backend,
    request_stream: Iterator[dict[str, Any]],
    clock: ManualClock,
) -> list[str]:
    chosen: list[str] = []
    for request in request_stream:
        result = adaptive_router.route_adaptive(
            request=request, update_weights=True, record_performance=True
        )
        backend.serve(result)  # the dispatch the seed leaves out
        clock.advance(0.01)
        adaptive_router.update_performance_metrics(
            endpoint_id=result.endpoint_id,
            actual_latency=result.actual_latency,
            success=result.success,
            quality_score=result.quality_score,
        )
        assert result.endpoint_id is not None
        chosen.append(result.endpoint_id)
    return chosen


def requests(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"model": "capibara_large", "input": f"question {i}", "max_tokens": 256}


def test_dynamic_weighted_learns_to_prefer_the_better_endpoint() -> None:
    clock = ManualClock()
    adaptive_router = seed_adaptive_router(clock)
    adaptive_router.configure_adaptation(NO_TRIGGERS)
    backend = Backend(
        {
            "tpu_primary": (40.0, 0.995, 0.9),
            "tpu_secondary": (120.0, 0.99, 0.8),
            "gpu_pool": (300.0, 0.99, 0.7),
        },
        seed=3,
    )
    chosen = run_seed_loop(adaptive_router, backend, requests(3000), clock)
    last = Counter(chosen[-600:])
    # Weighted round robin starts even; the learned weights move traffic to the best.
    assert sorted(chosen[:3]) == sorted(e["id"] for e in FLEET)
    assert last["tpu_primary"] > last["tpu_secondary"] > last["gpu_pool"]
    assert last["tpu_primary"] / 600 > 0.5
    weights = adaptive_router.weights()
    assert weights["tpu_primary"] > 2 * weights["gpu_pool"]
    assert adaptive_router.performance("tpu_primary").latency_ms == pytest.approx(40.0, rel=0.4)
    # The window's mean reward is well above what the endpoints would earn together
    # than static routing would (the first baseline): adaptation worked.
    assert 0.1 < adaptive_router.adaptation_effectiveness <= 1.0
    assert adaptive_router.pool.in_flight == 0


def test_route_request_and_call_use_the_learned_weights() -> None:
    clock = ManualClock()
    router = AdaptiveRouter(clock=clock, sleep=clock.sleep, seed=1)
    router.configure_adaptation(NO_TRIGGERS)
    router.register_endpoints([{"id": "good", "capacity": 10}, {"id": "bad", "capacity": 10}])
    latency = {"good": 20.0, "bad": 400.0}

    async def send(endpoint: Endpoint) -> str:
        clock.advance(latency[endpoint.id] / 1000.0)
        return endpoint.id

    served = [asyncio.run(router.call({"input": "hi"}, send)) for _ in range(400)]
    assert Counter(served[-100:])["good"] > 65
    assert router.observations == 400 and router.pool.in_flight == 0
    plain = Counter(router.route_request({}).endpoint_id for _ in range(10))
    assert plain["good"] > plain["bad"]


TASK_QUALITY = {"code": {"small": 0.4, "large": 0.9}, "chat": {"small": 0.8, "large": 0.85}}
LATENCY_MS = {"small": 200.0, "large": 1500.0}


def bandit_router(strategy: str, **kwargs: Any) -> AdaptiveRouter:
    router = AdaptiveRouter(
        adaptation_strategy=strategy,
        task_types=("code", "chat"),
        clock=ManualClock(),
        seed=4,
        **kwargs,
    )
    router.configure_adaptation(NO_TRIGGERS)
    router.register_endpoints(
        [
            {"id": "small", "capacity": 50, "cost_per_request": 0.001},
            {"id": "large", "capacity": 50, "cost_per_request": 0.01},
        ]
    )
    return router


def best_endpoint(task: str) -> str:
    def value(endpoint: str) -> float:
        cost = 0.001 if endpoint == "small" else 0.01
        return TASK_QUALITY[task][endpoint] - cost - 0.1 * LATENCY_MS[endpoint] / 1000.0

    return max(("small", "large"), key=value)


@pytest.mark.parametrize("strategy", ["bandit", "thompson_sampling", "epsilon_greedy"])
def test_bandit_strategies_learn_the_best_endpoint_per_task(strategy: str) -> None:
    router = bandit_router(strategy)
    rng = np.random.default_rng(8)
    optimal: list[bool] = []
    for _ in range(1500):
        task = ("code", "chat")[int(rng.integers(2))]
        result = router.route_adaptive({"task_type": task, "input": "x" * int(rng.integers(400))})
        endpoint = result.endpoint_id
        assert endpoint is not None and result.bandit_arm == endpoint
        optimal.append(endpoint == best_endpoint(task))
        quality = float(np.clip(rng.normal(TASK_QUALITY[task][endpoint], 0.05), 0.0, 1.0))
        router.complete(result, latency_ms=LATENCY_MS[endpoint], quality_score=quality)
    share = sum(optimal[-300:]) / 300
    assert share >= (0.85 if strategy == "epsilon_greedy" else 0.9), share
    assert best_endpoint("code") == "large" and best_endpoint("chat") == "small"
    assert router.bandit is not None and sum(router.bandit.pulls().values()) == 1500


def test_bandit_falls_back_when_its_choice_is_full_or_out_of_service() -> None:
    router = AdaptiveRouter("bandit", clock=ManualClock(), seed=2)
    router.register_endpoints([{"id": "a", "capacity": 1}, {"id": "b", "capacity": 1}])
    for _ in range(30):
        result = router.route_adaptive({}, update_weights=True)
        router.complete(
            result, latency_ms=10.0, quality_score=1.0 if result.endpoint_id == "a" else 0.2
        )
    first = router.route_adaptive({})
    second = router.route_adaptive({})
    assert first.endpoint_id == "a" and first.bandit_arm == "a"
    assert second.bandit_arm == "a" and second.endpoint_id == "b"  # "a" was full
    assert router.route_adaptive({}).no_capacity
    router.complete(first)
    router.complete(second)
    router.drain("a")
    third = router.route_adaptive({})
    assert third.bandit_arm == "b" and third.endpoint_id == "b"


def test_bandit_arms_follow_registration() -> None:
    router = bandit_router("bandit")
    assert router.bandit is not None and router.bandit.arms == ["small", "large"]
    result = router.route_adaptive({"task_type": "code"}, return_metrics=True)
    assert result.metrics is not None and result.metrics["strategy"] == "bandit"
    router.complete(result, latency_ms=5.0)
    router.remove_endpoint("small")
    assert router.bandit.arms == ["large"]
    assert router.route_adaptive({"task_type": "chat"}).endpoint_id == "large"
    router.register_endpoints([{"id": "small", "capacity": 5}])
    assert router.bandit.arms == ["large", "small"]


def test_request_features() -> None:
    router = bandit_router("bandit")
    assert router.features({"task_type": "code", "prompt_tokens": 77, "tier": "pro"}) == (
        RequestFeatures("code", 77, "pro")
    )
    assert router.features({"input": "x" * 400, "priority": "high"}) == (
        RequestFeatures("general", 100, "high")
    )
    assert router.features({"prompt": [1, 2, 3], "user_tier": "free"}) == (
        RequestFeatures("general", 3, "free")
    )
    custom = AdaptiveRouter(
        "bandit",
        task_types=("a", "b"),
        tiers=("t",),
        feature_extractor=lambda request: RequestFeatures(request["kind"], 1, "t"),
    )
    assert custom.features({"kind": "b"}) == RequestFeatures("b", 1, "t")
    assert custom.encoder.dimension == 5


def failure_backend(seed: int) -> Backend:
    return Backend(
        {
            "tpu_primary": (50.0, 1.0, 0.9),
            "tpu_secondary": (50.0, 1.0, 0.9),
            "gpu_pool": (50.0, 0.6, 0.9),
        },
        seed=seed,
    )


def test_failure_rate_trigger_penalises_the_failing_endpoint() -> None:
    clock = ManualClock()
    router = AdaptiveRouter(history_window=200, clock=clock)
    router.configure_adaptation(
        {
            "adaptation_triggers": {
                "failure_rate": 0.05,
                "performance_degradation": None,
                "load_imbalance": None,
            }
        }
    )
    router.register_endpoints(FLEET)
    chosen = run_seed_loop(router, failure_backend(5), requests(1200), clock)
    assert router.adaptation_events >= 1
    event = router.adaptation_log[0]
    assert event.triggers == ("failure_rate",) and event.values["failure_rate"] > 0.05
    assert router.performance("gpu_pool").penalty < 1.0
    weights = router.weights()
    assert weights["gpu_pool"] < 0.5 * weights["tpu_primary"]
    assert Counter(chosen[:300])["gpu_pool"] > 2 * Counter(chosen[-300:])["gpu_pool"]


def test_penalty_is_lifted_when_the_endpoint_recovers() -> None:
    clock = ManualClock()
    router = AdaptiveRouter(history_window=200, clock=clock)
    router.configure_adaptation({"adaptation_triggers": {"load_imbalance": None}})
    router.register_endpoints(FLEET)
    backend = failure_backend(6)
    run_seed_loop(router, backend, requests(600), clock)
    assert router.performance("gpu_pool").penalty < 1.0
    backend.profiles["gpu_pool"] = (50.0, 1.0, 0.9)
    run_seed_loop(router, backend, requests(2000), clock)
    assert router.performance("gpu_pool").penalty == 1.0


def test_performance_degradation_trigger() -> None:
    clock = ManualClock()
    router = AdaptiveRouter(history_window=100, clock=clock)
    router.configure_adaptation(
        {"adaptation_triggers": {"failure_rate": None, "load_imbalance": None, "min_samples": 50}}
    )
    router.register_endpoints(FLEET)
    steady = {e["id"]: (100.0, 1.0, 0.9) for e in FLEET}
    backend = Backend(steady, seed=1)
    run_seed_loop(router, backend, requests(300), clock)
    assert router.adaptation_events == 0
    backend.profiles = {e: (200.0, 1.0, 0.9) for e in steady}  # the whole fleet slows down
    run_seed_loop(router, backend, requests(100), clock)
    assert router.adaptation_events == 1
    event = router.adaptation_log[-1]
    assert event.triggers == ("performance_degradation",)
    assert event.values["performance_degradation"] > 0.2
    assert event.observation < 400


def test_load_imbalance_trigger_flattens_the_weights() -> None:
    clock = ManualClock()
    router = AdaptiveRouter(history_window=200, sharpness=4.0, clock=clock)
    router.configure_adaptation(
        {"adaptation_triggers": {"failure_rate": None, "performance_degradation": None}}
    )
    router.register_endpoints(FLEET[:2])
    backend = Backend(
        {"tpu_primary": (20.0, 1.0, 0.95), "tpu_secondary": (200.0, 1.0, 0.6)}, seed=2
    )
    run_seed_loop(router, backend, requests(400), clock)
    assert router.adaptation_events >= 1
    assert router.adaptation_log[0].triggers == ("load_imbalance",)
    assert router.adaptation_log[0].values["load_imbalance"] > 0.3
    assert router.weight_temper < 1.0
    assert 0.0 <= router.load_imbalance <= 1.0


def test_bandit_adaptation_discounts_what_it_learned() -> None:
    router = bandit_router("bandit")
    assert router.bandit is not None
    x = router.request_context({"task_type": "code"})
    for _ in range(10):
        result = router.route_adaptive({"task_type": "code"})
        router.complete(result, latency_ms=100.0, quality_score=0.5)
    before = router.bandit.scores(x)
    router.adapt_now()
    after = router.bandit.scores(x)
    assert router.adaptation_events == 1
    assert all(after[arm] >= before[arm] for arm in before)  # wider confidence bounds


def test_adaptation_effectiveness_is_bounded_and_monitored() -> None:
    clock = ManualClock()
    router = seed_adaptive_router(clock)
    assert router.adaptation_effectiveness == 0.0
    backend = Backend({e["id"]: (80.0, 0.97, 0.8) for e in FLEET}, seed=9)
    run_seed_loop(router, backend, requests(500), clock)
    assert -1.0 <= router.adaptation_effectiveness <= 1.0
    router.adapt_now()
    assert router.adaptation_effectiveness == 0.0  # measured from the adaptation on
    assert router.adaptation_log[-1].triggers == ("manual",)

    monitor = RouterMonitor(routers=[router], clock=clock)
    metrics = monitor.get_comprehensive_metrics()
    assert metrics["adaptation"]["effectiveness"] == router.adaptation_effectiveness


def single_endpoint_router() -> AdaptiveRouter:
    router = AdaptiveRouter(clock=ManualClock())
    router.register_endpoints([{"id": "only", "capacity": 4}])
    return router


def test_update_performance_metrics_completes_the_oldest_request_in_flight() -> None:
    router = single_endpoint_router()
    first = router.route_adaptive({})
    second = router.route_adaptive({})
    assert router.in_flight("only") == 2 and router.pool.load("only") == 2
    closed = router.update_performance_metrics("only", actual_latency=30.0, success=False)
    assert closed is first and first.completed and first.success is False
    assert first.actual_latency == 30.0 and router.pool.load("only") == 1
    third = router.route_adaptive({})
    closed = router.update_performance_metrics("only", 10.0, True, 0.9, result=third)
    assert closed is third and not second.completed and third.quality_score == 0.9
    assert router.in_flight("only") == 1
    stats = router.performance("only")
    assert stats.observations == 2 and stats.failures == 1


def test_update_performance_metrics_without_a_request_in_flight_still_learns() -> None:
    router = single_endpoint_router()
    assert router.update_performance_metrics("only", 250.0, False, 0.3) is None
    stats = router.performance("only")
    assert stats.observations == 1 and stats.failures == 1
    assert stats.latency_ms == 250.0 and stats.quality == 0.3 and stats.success_rate == 0.0
    assert router.pool.load("only") == 0 and router.metrics.completed == 0
    assert router.pool.latency_ms("only") == pytest.approx(100.0 + 0.1 * 150.0)
    # A request already completed is reported again as a new observation.
    result = router.route_adaptive({})
    router.complete(result, latency_ms=20.0, quality_score=0.8)
    assert result.actual_latency == 20.0 and result.success and result.quality_score == 0.8
    assert router.update_performance_metrics("only", 20.0, True, 0.8, result=result) is None
    assert router.performance("only").observations == 3


def test_an_unplaced_request_reports_nothing() -> None:
    router = AdaptiveRouter(clock=ManualClock())
    router.register_endpoints([{"id": "only", "capacity": 1}])
    held = router.route_adaptive({"priority": "high"})
    result = router.route_adaptive({"priority": "high"})
    assert result.no_capacity and result.endpoint_id is None
    assert router.update_performance_metrics(endpoint_id=result.endpoint_id) is None
    assert router.metrics.no_capacity == 1 and router.observations == 0
    router.update_performance_metrics(endpoint_id=held.endpoint_id, actual_latency=5.0)
    assert held.completed and router.pool.in_flight == 0


def test_abandon_and_flags() -> None:
    router = single_endpoint_router()
    result = router.route_adaptive({})
    router.abandon(result)
    assert router.in_flight("only") == 0 and router.observations == 0
    quiet = router.route_adaptive({}, record_performance=False)
    router.complete(quiet, latency_ms=5.0)
    assert router.observations == 0 and router.metrics.completed == 1
    weight = router.weights()["only"]
    frozen = router.route_adaptive({}, update_weights=False)
    router.complete(frozen, latency_ms=5000.0, success=False)
    assert router.observations == 1 and router.weights()["only"] == weight


def test_deweight_stays_on_top_of_the_learned_weight() -> None:
    clock = ManualClock()
    router = AdaptiveRouter(clock=clock)
    router.register_endpoints([{"id": "a", "capacity": 10}, {"id": "b", "capacity": 30}])
    # Integer weights, capacity x weight x score (1 before any outcome) x units: a
    # small fleet gets the finest units (64).
    assert router.weights() == {"a": 640.0, "b": 1920.0}
    router.deweight("b", 0.5)
    assert router.weights()["b"] == 960.0
    router.restore_weight("b")
    assert router.weights()["b"] == 1920.0
    assert "b" not in router.deweighted


def test_weight_units_follow_the_fleet_size() -> None:
    router = AdaptiveRouter(clock=ManualClock())
    router.register_endpoints([{"id": "big", "capacity": 20_000}])
    # Units: the largest power of two (at most 64) keeping the weights' sum <= 65,536.
    assert router.weights() == {"big": 40_000.0}  # units 2
    router.register_endpoints([{"id": f"e{i}", "capacity": 100} for i in range(400)])
    weights = router.weights()
    assert weights["big"] == 20_000.0 and weights["e0"] == 100.0  # 60,000: units 1
    router.remove_endpoint("big")
    assert router.weights()["e0"] == 100.0  # 40,000: still units 1
    for i in range(300):
        router.remove_endpoint(f"e{i}")
    assert router.weights()["e399"] == 400.0  # 10,000: units 4


def test_monitoring_switches() -> None:
    router = single_endpoint_router()
    router.configure_adaptation(
        {
            "load_monitoring": {"response_time": False},
            "performance_tracking": {"quality_metrics": False},
        }
    )
    router.update_performance_metrics("only", 80.0, True, 0.5)
    stats = router.performance("only")
    assert stats.latency_ms is None and stats.quality is None and stats.success_rate == 1.0
    assert router.adaptation_config["load_monitoring"]["queue_length"] is True


def test_construction_validation() -> None:
    with pytest.raises(ValueError, match="unknown adaptation_strategy 'greedy'"):
        AdaptiveRouter(adaptation_strategy="greedy")
    for rate in (0.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="learning_rate"):
            AdaptiveRouter(learning_rate=rate)
    for window in (0, -5, True, 10.0):
        with pytest.raises(ValueError, match="history_window"):
            AdaptiveRouter(history_window=window)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown performance_weights key\(s\) \['cost'\]"):
        AdaptiveRouter(performance_weights={"latency": 0.5, "cost": 0.5})
    with pytest.raises(ValueError, match="positive sum"):
        AdaptiveRouter(performance_weights={"latency": 0.0})
    with pytest.raises(ValueError, match=r"performance_weights\['latency'\]"):
        AdaptiveRouter(performance_weights={"latency": -1.0, "accuracy": 2.0})
    with pytest.raises(ValueError, match="only strategy 'weighted_round_robin' reads"):
        AdaptiveRouter(strategy="p2c")
    with pytest.raises(ValueError, match="exploration applies to the bandit"):
        AdaptiveRouter(exploration=0.5)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        AdaptiveRouter("bandit", exploration=-1.0)
    with pytest.raises(ValueError, match='unknown strategy "no_such_strategy"'):
        AdaptiveRouter("bandit", strategy="no_such_strategy")
    partial = AdaptiveRouter(performance_weights={"latency": 3.0, "accuracy": 1.0})
    assert partial.performance_weights == {
        "latency": 0.75,
        "throughput": 0.0,
        "accuracy": 0.25,
        "availability": 0.0,
    }


def test_configure_adaptation_validation_changes_nothing_on_error() -> None:
    router = AdaptiveRouter()
    before = {k: dict(v) for k, v in router.adaptation_config.items()}
    with pytest.raises(ValueError, match=r"unknown adaptation config section\(s\) \['triggers'\]"):
        router.configure_adaptation({"triggers": {}})
    with pytest.raises(ValueError, match=r"unknown adaptation_triggers setting\(s\) \['latency'\]"):
        router.configure_adaptation({"adaptation_triggers": {"latency": 0.1}})
    with pytest.raises(ValueError, match=r"unknown load_monitoring setting\(s\) \['gpu_temp'\]"):
        router.configure_adaptation({"load_monitoring": {"gpu_temp": True}})
    with pytest.raises(ValueError, match="load_monitoring queue_length must be a bool"):
        router.configure_adaptation({"load_monitoring": {"queue_length": "yes"}})
    with pytest.raises(ValueError, match=r"adaptation_triggers failure_rate must be in \(0, 1\]"):
        router.configure_adaptation(
            {"adaptation_triggers": {"load_imbalance": 0.5, "failure_rate": 2.0}}
        )
    with pytest.raises(ValueError, match="min_samples"):
        router.configure_adaptation({"adaptation_triggers": {"min_samples": 0}})
    with pytest.raises(ValueError, match="performance_degradation"):
        router.configure_adaptation({"adaptation_triggers": {"performance_degradation": -0.2}})
    with pytest.raises(ValueError, match="must be a mapping"):
        router.configure_adaptation({"adaptation_triggers": 0.2})
    assert router.adaptation_config == before
    router.configure_adaptation({"adaptation_triggers": {"performance_degradation": 1.5}})
    assert router.adaptation_config["adaptation_triggers"]["performance_degradation"] == 1.5
    assert router.adaptation_config["adaptation_triggers"]["failure_rate"] == 0.05


def test_outcome_validation() -> None:
    router = single_endpoint_router()
    result = router.route_adaptive({})
    with pytest.raises(KeyError, match="unknown endpoint 'nope'"):
        router.update_performance_metrics("nope", 10.0, True)
    with pytest.raises(ValueError, match="actual_latency"):
        router.update_performance_metrics("only", -1.0, True)
    with pytest.raises(ValueError, match="quality_score must be in"):
        router.update_performance_metrics("only", 1.0, True, 1.5)
    with pytest.raises(ValueError, match="success must be a bool"):
        router.update_performance_metrics("only", 1.0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quality_score must be in"):
        router.complete(result, quality_score=math.nan)
    with pytest.raises(ValueError, match="update_weights must be a bool"):
        router.route_adaptive({}, update_weights=1)  # type: ignore[arg-type]
    # Nothing above changed the request in flight.
    assert router.in_flight("only") == 1 and router.observations == 0
    router.complete(result)
    with pytest.raises(ValueError, match="already completed"):
        router.complete(result)
    with pytest.raises(ValueError, match="cost_per_request"):
        router.register_endpoints(
            [{"id": "x", "capacity": 1}, {"id": "y", "capacity": 1, "cost_per_request": -1}]
        )
    assert [e.id for e in router.endpoints] == ["only"]
