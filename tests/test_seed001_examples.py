"""Seed 001's tests and examples, run against fleetroute (imports renamed, the
breaker's clock injected instead of sleeping 61 s, async tests run with asyncio)."""

from __future__ import annotations

import asyncio

import pytest

from fleetroute import ManualClock
from fleetroute.resilience.circuit_breaker import CircuitBreaker
from fleetroute.routers.intelligent_router import (
    IntelligentRouter,
    NoProvidersAvailable,
    TaskBasedRouter,
)
from fleetroute.routers.router_analytics import RouterAnalytics
from fleetroute.scoring.budget import BudgetManager
from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics, Response
from fleetroute.scoring.provider_scoring import RoutingStrategy


async def seed_test_cost_routing() -> None:
    router = IntelligentRouter(strategy=RoutingStrategy.COST)

    # Mock providers with different costs
    router.metrics = {
        "gpt-4": ProviderMetrics("gpt-4", 200, 0.95, 0.03, 1.0, 0.5),
        "gpt-3.5": ProviderMetrics("gpt-3.5", 150, 0.85, 0.002, 1.0, 0.3),
    }

    provider = router.route(LLMRequest("simple task"))

    # Should select cheaper option
    assert provider.name == "gpt-3.5"


async def seed_test_quality_routing() -> None:
    router = IntelligentRouter(strategy=RoutingStrategy.QUALITY)

    provider = router.route(LLMRequest("complex reasoning"))

    # Should select higher quality
    assert provider.name == "gpt-4"


async def seed_test_circuit_breaker(clock: ManualClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)

    # Simulate failures
    for _ in range(3):
        breaker.record_failure("failing-provider")

    assert not breaker.is_available("failing-provider")

    # After timeout, should be available again
    clock.advance(61)  # the seed's time.sleep(61)
    assert breaker.is_available("failing-provider")


def test_seed_cost_routing() -> None:
    asyncio.run(seed_test_cost_routing())


def test_seed_quality_routing() -> None:
    asyncio.run(seed_test_quality_routing())


def test_seed_circuit_breaker() -> None:
    asyncio.run(seed_test_circuit_breaker(ManualClock()))


def test_metrics_only_providers_are_candidates() -> None:
    router = IntelligentRouter(strategy="latency", seed=1)
    router.metrics = {"local-llama": ProviderMetrics("local-llama", 80, 0.7, 0.0)}
    provider = router.route(LLMRequest("hi"))
    assert (provider.name, provider.model) == ("local-llama", "local-llama")


def test_update_metrics_is_seed_001s_moving_average() -> None:
    router = IntelligentRouter(seed=1)
    before = router.metrics["gpt-4"].avg_latency
    asyncio.run(router.update_metrics("gpt-4", Response(latency=100.0, quality_score=0.5)))
    assert router.metrics["gpt-4"].avg_latency == pytest.approx(0.9 * before + 10.0)
    for _ in range(3):
        asyncio.run(router.update_metrics("gpt-4", Response(error="timeout")))
    # 0.95^3 < 0.95: below seed 001's availability floor, gpt-4 gets one probe per
    # probe_interval and no other traffic.
    assert router.metrics["gpt-4"].availability == pytest.approx(0.95**3)
    assert router.route(LLMRequest("complex reasoning")).name == "gpt-4"  # the probe
    assert router.route(LLMRequest("complex reasoning")).name != "gpt-4"
    with pytest.raises(KeyError, match="nope"):
        asyncio.run(router.update_metrics("nope", Response(latency=1.0)))


def test_no_available_provider_is_an_error_that_says_why() -> None:
    clock = ManualClock()
    router = IntelligentRouter(clock=clock)
    for metrics in router.metrics.values():
        metrics.availability = 0.5
    # Each provider below the floor gets one probe per interval, then nothing.
    probed = {router.route(LLMRequest("anything")).name for _ in range(6)}
    assert probed == set(router.metrics)
    with pytest.raises(NoProvidersAvailable, match=r"availability 0\.500 < 0\.95"):
        router.route(LLMRequest("anything"))
    clock.advance(30.0)
    assert router.route(LLMRequest("anything")).name in router.metrics


def test_a_locked_out_provider_earns_its_way_back_through_probes() -> None:
    clock = ManualClock()
    router = IntelligentRouter(strategy="quality", clock=clock, probe_interval=10.0, seed=1)
    for _ in range(2):
        asyncio.run(router.update_metrics("gpt-4", Response(error="HTTP 500")))
    served = []
    for _ in range(80):
        name = router.route(LLMRequest("q")).name
        served.append(name)
        asyncio.run(router.update_metrics(name, Response(latency=500.0)))
        clock.advance(1.0)
    # Six successful probes (one per 10 s) bring 0.9025 back over 0.95 (x1.01 each).
    assert router.metrics["gpt-4"].availability >= 0.95
    assert served[-1] == "gpt-4"


def test_task_based_routing_prefers_the_tasks_models() -> None:
    router = TaskBasedRouter(strategy=RoutingStrategy.BALANCED, seed=3)
    code = router.route(LLMRequest("Write a Python function that parses ISO dates"))
    assert code.model in TaskBasedRouter.TASK_PREFERENCES["code_generation"]
    summary = router.route(LLMRequest("Summarize this article in three bullet points: ..."))
    assert summary.model in TaskBasedRouter.TASK_PREFERENCES["summarization"]
    told = router.route(LLMRequest("anything", task_type="translation"))
    assert told.model in TaskBasedRouter.TASK_PREFERENCES["translation"]


def test_router_analytics_report(capsys: pytest.CaptureFixture[str]) -> None:
    analytics = RouterAnalytics()
    analytics.track_request("gpt-4", 0.05, 900)
    analytics.track_request("gpt-4", 0.03, 700)
    analytics.track_request("claude-haiku", 0.001, 300)
    analytics.generate_report()
    out = capsys.readouterr().out
    assert "📊 Router Performance Report" in out
    assert (
        "gpt-4:\n  Requests: 2\n  Total Cost: $0.08\n  Avg Latency: 800ms\n  Cost/Request: $0.0400"
        in out
    )
    (gpt4, haiku) = analytics.report()
    assert (gpt4.requests, haiku.avg_latency) == (2, 300.0)
    with pytest.raises(ValueError, match="cost"):
        analytics.track_request("gpt-4", -1.0, 10)


def test_budgets_pace_and_settle_through_the_router() -> None:
    clock = ManualClock()
    budgets = BudgetManager(clock=clock)
    budgets.set_global(1.0, window="day")
    router = IntelligentRouter(strategy="quality", budgets=budgets, seed=4)
    request = LLMRequest("x" * 4000, max_tokens=1000)  # about 1,000 tokens in, 1,000 out
    first = router.route(request)
    assert first.name == "gpt-4"  # no pressure yet: the best quality
    reserved = budgets.global_budget.reserved  # type: ignore[union-attr]
    assert reserved == pytest.approx(router.metrics["gpt-4"].estimate_cost(1000, 1000))
    asyncio.run(
        router.update_metrics(
            "gpt-4", Response(latency=800.0, input_tokens=1000, output_tokens=200)
        )
    )
    assert budgets.global_budget.spent == pytest.approx(0.03 + 0.012)  # type: ignore[union-attr]
    # Spending far ahead of the day's pace: the router turns to cheaper models.
    picks = []
    for _ in range(15):
        provider = router.route(request)
        picks.append(provider.name)
        asyncio.run(
            router.update_metrics(
                provider.name, Response(latency=500.0, input_tokens=1000, output_tokens=1000)
            )
        )
    assert picks[0] == "gpt-4" and picks[-1] != "gpt-4"
    prices = [router.metrics[name].blended_price for name in picks]
    assert prices[-1] < prices[0]
