"""EnhancedRouter: each feature as a stage of one request's way in, with an
injected clock and seeded picks."""

from __future__ import annotations

import asyncio
import http.server
import random
import threading

import pytest

from fleetroute import EnhancedRouter, ManualClock, Priority

TIERS = [
    {"id": "tpu_primary", "device": "tpu", "capacity": 100, "priority": 1},
    {"id": "gpu_secondary", "device": "gpu", "capacity": 80, "priority": 2},
    {"id": "cpu_fallback", "device": "cpu", "capacity": 50, "priority": 3},
]


def make_router(
    features: list[str] | None = None, clock: ManualClock | None = None
) -> tuple[EnhancedRouter, ManualClock]:
    clock = clock or ManualClock(100.0)
    router = EnhancedRouter(features=features, clock=clock, seed=11)
    router.register_endpoints(TIERS)
    return router, clock


def fail(router: EnhancedRouter, times: int, user_tier: str = "standard") -> None:
    for _ in range(times):
        result = router.route_with_intelligence({"input": "x"}, user_tier=user_tier)
        assert result.endpoint_id == "tpu_primary"
        router.complete(result, success=False, latency_ms=5.0)


def test_open_circuit_sends_requests_down_the_fallback_chain() -> None:
    router, clock = make_router(["circuit_breaker"])
    fail(router, 5)
    assert router.endpoint_status("tpu_primary") == "open"
    result = router.route_with_intelligence({"input": "y"})
    assert result.endpoint_id == "gpu_secondary"
    assert result.fallback_used and result.circuit_breaker_open
    router.complete(result)
    # After the seed's 30 000 ms recovery timeout: half-open, three trials at most.
    clock.advance(30.0)
    trials = [router.route_with_intelligence({"input": str(i)}) for i in range(4)]
    assert [t.endpoint_id for t in trials[:3]] == ["tpu_primary"] * 3
    assert trials[3].endpoint_id == "gpu_secondary"
    router.complete(trials[0], latency_ms=20.0)
    assert router.endpoint_status("tpu_primary") == "healthy"
    for trial in trials[1:]:
        router.complete(trial)
    assert router.circuit_breaker_activations == 1


def test_slow_calls_count_as_failures() -> None:
    router, _ = make_router(["circuit_breaker"])
    router.configure_advanced_features(
        circuit_breaker={
            "failure_threshold": 2,
            "timeout_threshold": 1000,
            "recovery_timeout": 5000,
        }
    )
    for _ in range(2):
        result = router.route_with_intelligence({})
        router.complete(result, success=True, latency_ms=1500.0)
    assert router.endpoint_status("tpu_primary") == "open"


def test_abandoned_half_open_trial_frees_its_slot() -> None:
    router, clock = make_router(["circuit_breaker"])
    router.configure_advanced_features(
        circuit_breaker={"failure_threshold": 1, "recovery_timeout": 1000, "half_open_max_calls": 1}
    )
    fail(router, 1)
    clock.advance(1.0)
    trial = router.route_with_intelligence({})
    assert trial.endpoint_id == "tpu_primary"
    assert router.route_with_intelligence({}).endpoint_id == "gpu_secondary"
    router.abandon(trial)
    assert router.route_with_intelligence({}).endpoint_id == "tpu_primary"


def test_rate_limits_per_tier_with_retry_after() -> None:
    router, clock = make_router(["rate_limiting"])
    router.configure_advanced_features(
        rate_limiting={
            "requests_per_minute": 1000,
            "burst_capacity": 100,
            "per_user_limit": 50,
            "priority_multipliers": {"premium": 2.0, "standard": 1.0, "free": 0.5},
        }
    )
    admitted = 0
    result = None
    for _ in range(30):
        result = router.route_with_intelligence({"user": "bob"}, user_tier="free")
        if result.rate_limited:
            break
        admitted += 1
        router.complete(result)
    assert admitted == 25
    assert result is not None and result.endpoint_id is None
    assert result.retry_after == pytest.approx(60 / 25)
    clock.advance(60 / 25)
    again = router.route_with_intelligence({"user": "bob"}, user_tier="free")
    assert again.routed
    router.complete(again)
    # The global bucket refilled to its burst (100) over those 2.4 s; bob took one.
    carol = sum(
        not router.route_with_intelligence({}, user_tier="premium", user="carol").rate_limited
        for _ in range(120)
    )
    assert carol == 99
    # With global room to spare, a premium user has twice the standard allowance.
    roomy, _ = make_router(["rate_limiting"])
    roomy.configure_advanced_features(
        rate_limiting={"requests_per_minute": 60_000, "burst_capacity": 1000, "per_user_limit": 50}
    )
    allowance = {
        tier: sum(
            not roomy.route_with_intelligence({}, user_tier=tier, user=tier).rate_limited
            for _ in range(150)
        )
        for tier in ("premium", "standard", "free")
    }
    assert allowance == {"premium": 100, "standard": 50, "free": 25}
    with pytest.raises(ValueError, match="gold"):
        router.route_with_intelligence({}, user_tier="gold")


def test_low_priority_is_shed_first_and_boost_lifts_it() -> None:
    router, _ = make_router(["request_prioritization"])
    held = []
    while router.pool.utilisation < 0.8:
        result = router.route_with_intelligence({"priority": "high"})
        assert result.routed
        held.append(result)
    low = router.route_with_intelligence({"priority": "low"})
    assert low.shed and low.endpoint_id is None
    boosted = router.route_with_intelligence({"priority": "low"}, priority_boost=True)
    assert boosted.routed and boosted.priority.name == "NORMAL"
    normal = router.route_with_intelligence({"priority": "normal"})
    assert normal.routed
    assert router.shedder is not None and router.shedder.shed[Priority.LOW] == 1
    for result in [*held, boosted, normal]:
        router.complete(result)
    assert router.pool.in_flight == 0


def test_cache_is_opt_in_and_expires() -> None:
    router, clock = make_router(["intelligent_caching"])
    request = {"model": "m", "input": "What is 2+2?", "user": "u1"}
    first = router.route_with_intelligence(request, enable_caching=True)
    assert first.routed and first.cached_response is None
    router.complete(first, response={"text": "4"})
    # Same request from another user, keys reordered: a hit, no load taken.
    hit = router.route_with_intelligence(
        {"input": "What is 2+2?", "model": "m", "user": "u2"}, enable_caching=True
    )
    assert hit.cached_response == {"text": "4"} and hit.endpoint_id is None
    assert router.pool.in_flight == 0
    # Not opted in: routed as usual.
    plain = router.route_with_intelligence(request)
    assert plain.routed
    router.complete(plain)
    clock.advance(61.0)
    expired = router.route_with_intelligence(request, enable_caching=True)
    assert expired.routed
    router.complete(expired, success=False)
    assert router.route_with_intelligence(request, enable_caching=True).routed
    assert router.cache is not None and router.cache.stats.hits == 1


def test_outlier_ejection_takes_an_endpoint_out_and_brings_it_back() -> None:
    router, clock = make_router(["outlier_detection"])
    router.configure_advanced_features(
        outlier_detection={"consecutive_errors": 3, "base_ejection_time": 30.0}
    )
    fail(router, 3)
    assert router.endpoint_status("tpu_primary") == "ejected"
    assert router.route_with_intelligence({}).endpoint_id == "gpu_secondary"
    clock.advance(30.0)
    assert router.route_with_intelligence({}).endpoint_id == "tpu_primary"


def test_anomalous_endpoint_is_deweighted_and_alerts() -> None:
    clock = ManualClock(0.0)
    router = EnhancedRouter(features=["anomaly_detection"], clock=clock, seed=2)
    router.register_endpoints([{"id": f"r{i}", "capacity": 1000} for i in range(8)])
    router.configure_advanced_features(anomaly_detection={"interval": 5.0, "min_samples": 10})
    rng = random.Random(4)
    for _ in range(400):
        result = router.route_with_intelligence({})
        slow = result.endpoint_id == "r3"
        router.complete(result, latency_ms=(900.0 if slow else 100.0) * rng.uniform(0.9, 1.1))
    clock.advance(5.0)
    router.route_with_intelligence({})  # the periodic evaluation runs on the request path
    assert router.endpoint_status("r3") == "degraded"
    assert "r3" in router.deweighted
    (alert,) = [a for a in router.alerts if a.endpoint_id == "r3"]
    assert alert.metric == "anomaly_latency" and alert.severity == "warning"
    native = router.pool.native.accelerator(router.pool.native_id("r3"))
    assert native.weight == pytest.approx(0.25)


def test_breaker_open_with_no_capacity_left_reports_why() -> None:
    router, _ = make_router(["circuit_breaker"])
    router.configure_advanced_features(circuit_breaker={"failure_threshold": 1})
    fail(router, 1)
    held = [router.route_with_intelligence({"priority": "high"}) for _ in range(130)]
    refused = router.route_with_intelligence({"priority": "high"})
    assert refused.no_capacity and refused.circuit_breaker_open
    for result in held:
        router.complete(result)


def test_feature_configuration_errors() -> None:
    with pytest.raises(ValueError, match="unknown feature 'teleport'"):
        EnhancedRouter(features=["circuit_breaker", "teleport"])
    router, _ = make_router(["circuit_breaker"])
    with pytest.raises(ValueError, match="not enabled"):
        router.configure_advanced_features(rate_limiting={"requests_per_minute": 10})
    with pytest.raises(ValueError, match="failure_threshold"):
        router.configure_advanced_features(circuit_breaker={"failure_threshold": 0})
    with pytest.raises(ValueError, match="recovery_timeout"):
        router.configure_advanced_features(circuit_breaker={"recovery_timeout": -1})
    with pytest.raises(ValueError, match="unknown circuit_breaker setting"):
        router.configure_advanced_features(circuit_breaker={"treshold": 3})
    with pytest.raises(ValueError, match="intelligent_caching"):
        router.route_with_intelligence({}, enable_caching=True)
    # The refused configurations changed nothing: the seed defaults still hold.
    assert router.breaker is not None and router.breaker.failure_threshold == 5
    other, _ = make_router(["rate_limiting"])
    with pytest.raises(ValueError, match="unknown rate_limiting setting"):
        other.configure_advanced_features(rate_limiting={"rpm": 5})
    with pytest.raises(ValueError, match="platinum"):
        other.configure_advanced_features(
            rate_limiting={"priority_multipliers": {"platinum": 3.0}, "default_tier": "standard"}
        )


def test_bad_config_leaves_earlier_features_unchanged() -> None:
    router, _ = make_router(["circuit_breaker", "rate_limiting"])
    limiter = router.rate_limiter
    with pytest.raises(ValueError):
        router.configure_advanced_features(
            circuit_breaker={"failure_threshold": 2}, rate_limiting={"burst_capacity": -1}
        )
    assert router.rate_limiter is limiter
    assert router.breaker is not None and router.breaker.failure_threshold == 5


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_active_health_checks_take_a_down_endpoint_out() -> None:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        router = EnhancedRouter(features=["health_checks"], clock=ManualClock(), seed=1)
        router.configure_advanced_features(
            health_checks={"unhealthy_threshold": 2, "healthy_threshold": 1, "timeout": 5.0}
        )
        router.register_endpoints(
            [
                {"id": "served", "capacity": 4, "url": url},
                {"id": "backup", "capacity": 4, "priority": 2},
            ]
        )
        checker = router.health_checker
        assert checker is not None

        async def rounds(n: int) -> None:
            for _ in range(n):
                await checker.check_once()
            await checker.aclose()

        handler.status = 503
        asyncio.run(rounds(2))
        assert router.endpoint_status("served") == "unhealthy"
        assert router.route_with_intelligence({}).endpoint_id == "backup"
        handler.status = 200
        asyncio.run(rounds(1))
        assert router.endpoint_status("served") == "healthy"
        assert router.route_with_intelligence({}).endpoint_id == "served"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_open_circuits_take_at_most_max_open_percent_of_a_tier() -> None:
    router = EnhancedRouter(features=["circuit_breaker"], clock=ManualClock(), seed=4)
    router.register_endpoints([{"id": f"w{i}", "capacity": 10} for i in range(4)])
    router.configure_advanced_features(
        circuit_breaker={"failure_threshold": 1, "max_open_percent": 50}
    )
    breaker = router.breaker
    assert breaker is not None
    for i in range(4):
        breaker.record_failure(f"w{i}")
    assert breaker.open_endpoints() == frozenset({"w0", "w1", "w2", "w3"})
    statuses = [router.pool.availability.is_routable(f"w{i}") for i in range(4)]
    assert statuses == [False, False, True, True]
    assert router.breaker_cap_hits == 2
    served = {router.route_with_intelligence({}).endpoint_id for _ in range(8)}
    assert served == {"w2", "w3"}
    with pytest.raises(ValueError, match="max_open_percent"):
        router.configure_advanced_features(circuit_breaker={"max_open_percent": 150})
