"""Seed 000's BaseRouter, EnhancedRouter and RouterMonitor examples, as written
(import renamed to fleetroute, undefined variables filled in, a clock injected where
the example waits)."""

from __future__ import annotations

import pytest

from fleetroute import ManualClock
from fleetroute.routers import (
    AdaptiveRouter,
    BaseRouter,
    BTORouter,
    EnhancedRouter,
    RouterMonitor,
)


def seed_base_router() -> BaseRouter:
    # Configure base router with TPU v4-32 optimizations
    base_router = BaseRouter(
        tpu_config={
            "mesh_shape": (8, 4),  # TPU v4-32
            "memory_threshold_gb": 30,
            "latency_threshold_ms": 500,
            "enable_fallback": True,
            "fallback_device": "cpu",
        },
        monitoring_enabled=True,
        automatic_scaling=True,
    )

    # Configure endpoints and services
    endpoints = [
        {"id": "tpu_primary", "device": "tpu", "capacity": 100, "priority": 1},
        {"id": "gpu_secondary", "device": "gpu", "capacity": 80, "priority": 2},
        {"id": "cpu_fallback", "device": "cpu", "capacity": 50, "priority": 3},
    ]

    base_router.register_endpoints(endpoints)
    return base_router


def test_base_router_example(capsys: pytest.CaptureFixture[str]) -> None:
    base_router = seed_base_router()
    # Route request with automatic optimization
    request_data = {
        "model": "capibara_large",
        "input": "Explain quantum computing",
        "max_tokens": 1000,
        "priority": "high",
    }

    routing_result = base_router.route_request(
        request=request_data, consider_load=True, enable_fallback=True, return_metrics=True
    )

    print(f"Routed to: {routing_result.endpoint_id}")
    print(f"Expected latency: {routing_result.estimated_latency_ms}ms")
    print(f"Load balancing score: {routing_result.load_score:.3f}")
    assert capsys.readouterr().out.splitlines() == [
        "Routed to: tpu_primary",
        "Expected latency: 100.0ms",
        "Load balancing score: 0.990",
    ]


def seed_enhanced_router(clock: ManualClock) -> EnhancedRouter:
    # Router with advanced features
    enhanced_router = EnhancedRouter(
        features=[
            "circuit_breaker",
            "rate_limiting",
            "request_prioritization",
            "intelligent_caching",
            "anomaly_detection",
        ],
        multi_objective_optimization=True,
        real_time_analytics=True,
        clock=clock,
    )
    enhanced_router.register_endpoints(
        [
            {"id": "tpu_primary", "device": "tpu", "capacity": 100, "priority": 1},
            {"id": "gpu_secondary", "device": "gpu", "capacity": 80, "priority": 2},
        ]
    )

    # Configure circuit breaker
    circuit_breaker_config = {
        "failure_threshold": 5,
        "timeout_threshold": 10000,  # ms
        "recovery_timeout": 30000,  # ms
        "half_open_max_calls": 3,
        "automatic_recovery": True,
    }

    # Configure rate limiting
    rate_limiting_config = {
        "requests_per_minute": 1000,
        "burst_capacity": 100,
        "per_user_limit": 50,
        "priority_multipliers": {"premium": 2.0, "standard": 1.0, "free": 0.5},
    }

    enhanced_router.configure_advanced_features(
        circuit_breaker=circuit_breaker_config, rate_limiting=rate_limiting_config
    )
    return enhanced_router


def run_enhanced_example(
    enhanced_router: EnhancedRouter, complex_request: dict[str, object]
) -> str:
    # Routing with advanced features
    advanced_result = enhanced_router.route_with_intelligence(
        request=complex_request, user_tier="premium", enable_caching=True, priority_boost=True
    )

    if advanced_result.circuit_breaker_open:
        outcome = "⚠️ Circuit breaker activated for endpoint"
    elif advanced_result.rate_limited:
        outcome = f"🕒 Request rate limited, retry after: {advanced_result.retry_after}"
    elif advanced_result.cached_response:
        outcome = "⚡ Response served from cache"
    else:
        outcome = f"routed to {advanced_result.endpoint_id}"
        enhanced_router.complete(advanced_result, response={"text": "answer"})
    return outcome


def test_enhanced_router_example_each_branch() -> None:
    clock = ManualClock(50.0)
    enhanced_router = seed_enhanced_router(clock)
    complex_request = {"model": "capibara_large", "input": "Prove Fermat", "user": "ada"}
    assert run_enhanced_example(enhanced_router, complex_request) == "routed to tpu_primary"
    assert run_enhanced_example(enhanced_router, complex_request) == "⚡ Response served from cache"
    # Five failures open tpu_primary's circuit: the next request falls back.
    for i in range(5):
        result = enhanced_router.route_with_intelligence({"input": str(i)}, user_tier="standard")
        enhanced_router.complete(result, success=False)
    assert run_enhanced_example(enhanced_router, {"input": "new", "user": "ada"}) == (
        "⚠️ Circuit breaker activated for endpoint"
    )
    # A premium user's 100 requests a minute run out.
    outcomes = [
        run_enhanced_example(enhanced_router, {"input": f"q{i}", "user": "ada"}) for i in range(100)
    ]
    assert outcomes[-1].startswith("🕒 Request rate limited, retry after: ")


def test_router_monitor_example(capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock(0.0)
    base_router = seed_base_router()
    enhanced_router = seed_enhanced_router(clock)
    for i in range(40):
        result = enhanced_router.route_with_intelligence({"input": str(i)})
        clock.advance(0.05)
        enhanced_router.complete(result, latency_ms=1500.0, success=i % 4 != 0)

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
    adaptive_router.register_endpoints([{"id": "adaptive_a", "capacity": 10}])

    # BTO router for temporal optimization
    bto_router = BTORouter(
        optimization_objective="minimize_total_time",
        prediction_model="lstm_based",
        look_ahead_window=300,  # 5 minutes
        dynamic_rebalancing=True,
        clock=clock,
    )
    bto_router.register_endpoints([{"id": "bto_a", "capacity": 10}])
    for load in (4.0, 6.0, 5.0):
        bto_router.record_load_sample(load)
    bto_router.predict_future_load(time_horizon="1h", include_seasonal=True)
    bto_router.record_load_sample(5.0)

    # Router monitoring system
    monitor = RouterMonitor(
        routers=[base_router, adaptive_router, bto_router, enhanced_router],
        metrics_collection_frequency=5,  # seconds
        alert_thresholds={
            "high_latency": 1000,  # ms
            "high_error_rate": 0.05,
            "load_imbalance": 0.3,
            "endpoint_failure": True,
        },
        clock=clock,
    )

    # Real-time metrics dashboard
    routing_metrics = monitor.get_comprehensive_metrics()

    performance_dashboard = {
        "overall_performance": {
            "total_requests_per_sec": routing_metrics["throughput"]["total_rps"],
            "average_latency_ms": routing_metrics["latency"]["avg_ms"],
            "error_rate": routing_metrics["errors"]["rate"],
            "load_balance_score": routing_metrics["load_balance"]["score"],
        },
        "endpoint_health": {
            endpoint["id"]: {
                "status": endpoint["status"],
                "load": endpoint["current_load"],
                "response_time": endpoint["avg_response_time"],
                "error_rate": endpoint["error_rate"],
            }
            for endpoint in routing_metrics["endpoints"]
        },
        "router_intelligence": {
            "adaptation_score": routing_metrics["adaptation"]["effectiveness"],
            "prediction_accuracy": routing_metrics["prediction"]["accuracy"],
            "cache_hit_rate": routing_metrics["caching"]["hit_rate"],
            "circuit_breaker_activations": routing_metrics["reliability"]["cb_activations"],
        },
    }

    # Automatic alerts
    active_alerts = monitor.check_alerts()
    for alert in active_alerts:
        print(f"🚨 {alert.severity}: {alert.message}")
        if alert.auto_mitigation_available:
            print(f"🔧 Applying mitigation: {alert.mitigation_action}")
            monitor.apply_auto_mitigation(alert)

    # Effectiveness analysis
    balancing_analysis = monitor.analyze_load_balancing_effectiveness(
        time_window="1h", include_predictions=True
    )

    print("📈 Load Balancing Analysis:")
    print(f"Distribution efficiency: {balancing_analysis['distribution_efficiency']:.3f}")
    print(f"Resource utilization: {balancing_analysis['resource_utilization']:.3f}")
    print(f"Response time variance: {balancing_analysis['response_time_variance']:.3f}")
    print(f"Predicted improvements: {balancing_analysis['improvement_potential']:.3f}")

    overall = performance_dashboard["overall_performance"]
    assert overall["average_latency_ms"] == pytest.approx(1500.0)
    assert overall["error_rate"] == pytest.approx(0.25)
    assert overall["total_requests_per_sec"] == pytest.approx(40 / 2.0)
    health = performance_dashboard["endpoint_health"]
    assert set(health) == {"tpu_primary", "gpu_secondary", "cpu_fallback", "adaptive_a", "bto_a"}
    assert isinstance(performance_dashboard["router_intelligence"]["prediction_accuracy"], float)
    assert isinstance(performance_dashboard["router_intelligence"]["adaptation_score"], float)
    out = capsys.readouterr().out
    assert "🚨 warning: EnhancedRouter: p95 latency 1500 ms over 1000 ms" in out
    assert "🚨 critical: EnhancedRouter: error rate 25.0% over 5.0%" in out
    assert "🔧 Applying mitigation: open_breaker" in out
    assert enhanced_router.endpoint_status("tpu_primary") == "open"
    assert "Distribution efficiency: 1.000" in out
