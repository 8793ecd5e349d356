"""RouterMonitor: metrics over a window, alerts against thresholds, mitigations."""

from __future__ import annotations

import asyncio

import pytest

from fleetroute import BaseRouter, EnhancedRouter, ManualClock, RouterMonitor


def fleet(clock: ManualClock, features: list[str] | None = None) -> EnhancedRouter:
    router = EnhancedRouter(features=features or [], clock=clock, seed=3, name="edge")
    router.register_endpoints(
        [{"id": f"g{i}", "capacity": 50} for i in range(4)]
        + [{"id": "spare", "capacity": 50, "priority": 2}]
    )
    return router


def serve(
    router: BaseRouter, clock: ManualClock, n: int, latency_ms: float, fail_on: str | None = None
) -> None:
    for _ in range(n):
        result = router.route_request({})
        clock.advance(0.01)
        router.complete(result, latency_ms=latency_ms, success=result.endpoint_id != fail_on)


def test_comprehensive_metrics_over_the_window() -> None:
    clock = ManualClock()
    router = fleet(clock)
    monitor = RouterMonitor([router], metrics_collection_frequency=5, window=60, clock=clock)
    serve(router, clock, 200, 120.0, fail_on="g2")
    held = router.route_request({})
    metrics = monitor.get_comprehensive_metrics()
    assert metrics["throughput"]["completed"] == 200
    assert metrics["throughput"]["total_rps"] == pytest.approx(200 / 2.0)
    assert metrics["latency"]["avg_ms"] == pytest.approx(120.0)
    assert metrics["latency"]["p99_ms"] == pytest.approx(120.0)
    failures = router.metrics.endpoint_totals("g2")[1]
    assert metrics["errors"]["rate"] == pytest.approx(failures / 200)
    assert 0.9 < metrics["load_balance"]["score"] <= 1.0
    by_id = {e["id"]: e for e in metrics["endpoints"]}
    assert by_id["g2"]["error_rate"] == 1.0 and by_id["g0"]["error_rate"] == 0.0
    assert sum(e["current_load"] for e in metrics["endpoints"]) == 1
    assert metrics["caching"]["hit_rate"] == 0.0
    assert metrics["adaptation"]["effectiveness"] is None
    router.complete(held)
    # Outside the window, nothing is counted.
    clock.advance(120.0)
    assert monitor.get_comprehensive_metrics()["throughput"]["completed"] == 0


def test_alerts_fire_and_mitigations_apply() -> None:
    clock = ManualClock()
    router = fleet(clock, ["circuit_breaker", "outlier_detection"])
    router.configure_advanced_features(
        circuit_breaker={"failure_threshold": 1000},
        outlier_detection={"consecutive_errors": 1000},
    )
    monitor = RouterMonitor(
        [router],
        alert_thresholds={
            "high_latency": 1000,
            "high_error_rate": 0.05,
            "load_imbalance": 0.3,
            "endpoint_failure": True,
        },
        clock=clock,
    )
    serve(router, clock, 200, 100.0, fail_on="g1")
    alerts = monitor.check_alerts()
    by_metric = {(a.metric, a.endpoint_id): a for a in alerts}
    fleet_alert = by_metric[("high_error_rate", None)]
    assert fleet_alert.severity == "critical" and not fleet_alert.auto_mitigation_available
    endpoint_alert = by_metric[("endpoint_error_rate", "g1")]
    assert endpoint_alert.mitigation_action == "open_breaker"
    assert monitor.apply_auto_mitigation(endpoint_alert)
    assert router.endpoint_status("g1") == "open"
    assert not monitor.apply_auto_mitigation(endpoint_alert)  # already open
    after = {(a.metric, a.endpoint_id) for a in monitor.check_alerts()}
    assert ("endpoint_failure", "g1") in after
    with pytest.raises(ValueError, match="no automatic mitigation"):
        monitor.apply_auto_mitigation(fleet_alert)


def test_slow_endpoint_is_reweighed() -> None:
    clock = ManualClock()
    router = BaseRouter(clock=clock, seed=4, name="plain")
    router.register_endpoints([{"id": f"n{i}", "capacity": 50} for i in range(3)])
    monitor = RouterMonitor([router], alert_thresholds={"high_latency": 500}, clock=clock)
    for _ in range(90):
        result = router.route_request({})
        clock.advance(0.01)
        router.complete(result, latency_ms=2000.0 if result.endpoint_id == "n0" else 50.0)
    slow = [a for a in monitor.check_alerts() if a.metric == "endpoint_latency"]
    assert [a.endpoint_id for a in slow] == ["n0"]
    assert monitor.apply_auto_mitigation(slow[0])
    assert router.deweighted == frozenset({"n0"})
    assert monitor.mitigations_applied == slow


def test_load_imbalance_is_measured_within_tiers() -> None:
    clock = ManualClock()
    router = BaseRouter(clock=clock, seed=4, name="skewed")
    router.register_endpoints([{"id": "a", "capacity": 100}, {"id": "b", "capacity": 100}])
    monitor = RouterMonitor([router], clock=clock)
    for _ in range(100):
        result = router.route_request({}, consider_load=False)  # always "a" first
        clock.advance(0.01)
        router.complete(result, latency_ms=10.0)
    (alert,) = [a for a in monitor.check_alerts() if a.metric == "load_imbalance"]
    assert alert.endpoint_id == "a" and alert.value == pytest.approx(0.5)
    analysis = monitor.analyze_load_balancing_effectiveness(time_window="1h")
    assert analysis["distribution_efficiency"] == pytest.approx(0.5)
    assert analysis["improvement_potential"] == pytest.approx(0.5)
    assert analysis["response_time_variance"] == pytest.approx(0.0)
    # 100 requests x 10 ms busy over 200 units x 1 s observed.
    assert analysis["resource_utilization"] == pytest.approx(1.0 / 200.0)
    assert analysis["predictions"] == {}


def test_anomaly_alerts_from_routers_are_collected_once() -> None:
    clock = ManualClock()
    router = EnhancedRouter(features=["anomaly_detection"], clock=clock, seed=1)
    router.register_endpoints([{"id": f"r{i}", "capacity": 1000} for i in range(6)])
    router.configure_advanced_features(anomaly_detection={"min_samples": 10})
    for _ in range(300):
        result = router.route_with_intelligence({})
        router.complete(result, latency_ms=800.0 if result.endpoint_id == "r0" else 80.0)
    router.evaluate_anomalies()
    monitor = RouterMonitor([router], clock=clock)
    first = [a for a in monitor.check_alerts() if a.metric.startswith("anomaly")]
    assert [a.endpoint_id for a in first] == ["r0"]
    assert not [a for a in monitor.check_alerts() if a.metric.startswith("anomaly")]


def test_run_collects_snapshots_on_the_injected_sleep() -> None:
    clock = ManualClock()
    router = BaseRouter(clock=clock, name="r")
    router.register_endpoints([{"id": "a", "capacity": 1}])
    stop = asyncio.Event()
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            stop.set()

    monitor = RouterMonitor([router], metrics_collection_frequency=5, clock=clock, sleep=nap)
    asyncio.run(monitor.run(stop))
    assert naps == [5.0, 5.0, 5.0] and len(monitor.snapshots) == 3


def test_bad_monitor_configuration() -> None:
    router = BaseRouter(name="x")
    with pytest.raises(ValueError, match="unknown alert threshold 'slow'"):
        RouterMonitor([router], alert_thresholds={"slow": 5})
    with pytest.raises(ValueError, match="high_error_rate"):
        RouterMonitor([router], alert_thresholds={"high_error_rate": 5})
    with pytest.raises(ValueError, match="endpoint_failure"):
        RouterMonitor([router], alert_thresholds={"endpoint_failure": "yes"})
    with pytest.raises(ValueError, match="named 'x'"):
        RouterMonitor([router, BaseRouter(name="x")])
    with pytest.raises(ValueError, match="metrics_collection_frequency"):
        RouterMonitor([router], metrics_collection_frequency=0)
    with pytest.raises(ValueError, match="time_window"):
        RouterMonitor([router]).analyze_load_balancing_effectiveness(time_window="soon")
