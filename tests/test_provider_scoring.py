"""Provider scoring: constraints before scores, normalised criteria, random ties,
budget pacing, EWMA updates, and clear errors."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics, Response
from fleetroute.scoring.provider_scoring import (
    Constraints,
    NoProvidersAvailable,
    ProviderScorer,
    RoutingStrategy,
    Weights,
)


def fleet() -> list[ProviderMetrics]:
    # name, latency ms, quality, price per 1k tokens
    return [
        ProviderMetrics("strong", 900.0, 0.95, 0.030),
        ProviderMetrics("cheap", 300.0, 0.82, 0.001),
        ProviderMetrics("fast", 120.0, 0.86, 0.010),
        ProviderMetrics("weak", 200.0, 0.60, 0.0005),
    ]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("cost", "cheap"),  # "weak" is cheaper but below the cost strategy's 0.8 quality floor
        ("quality", "strong"),
        ("latency", "fast"),
    ],
)
def test_each_strategy_picks_its_criterion(strategy: str, expected: str) -> None:
    scorer = ProviderScorer(strategy, rng=random.Random(1))
    assert scorer.choose(fleet()).provider == expected


def test_balanced_normalises_each_criterion() -> None:
    scorer = ProviderScorer("balanced", rng=random.Random(1))
    scores = dict(zip([m.provider for m in fleet()], scorer.scores(fleet()), strict=True))
    # quality (0.4): strong 1, weak 0; cost (0.3): weak 1, strong 0; latency (0.3): fast 1.
    assert scores["strong"] == pytest.approx(0.4 * 1 + 0.3 * 0 + 0.3 * 0)
    quality_fast = (0.86 - 0.60) / (0.95 - 0.60)
    cost_fast = (0.030 - 0.010) / (0.030 - 0.0005)
    assert scores["fast"] == pytest.approx(0.4 * quality_fast + 0.3 * cost_fast + 0.3)
    assert max(scores, key=scores.__getitem__) == "fast"


def test_the_seeds_formula_would_ignore_latency() -> None:
    # Seed 001's 1/(1 + latency) term: about 0.001-0.008 for any latency in ms, so a
    # provider 10x faster gains almost nothing. Normalised, the faster one wins.
    slow = ProviderMetrics("slow", 2000.0, 0.9, 0.01)
    quick = ProviderMetrics("quick", 200.0, 0.9, 0.01)

    def seed_score(m: ProviderMetrics) -> float:
        return (
            m.quality_score * 0.4
            + 1 / (1 + m.cost_per_1k_tokens) * 0.3
            + 1 / (1 + m.avg_latency) * 0.3
        )

    assert seed_score(quick) - seed_score(slow) < 0.002
    scorer = ProviderScorer(RoutingStrategy.BALANCED, rng=random.Random(0))
    assert scorer.choose([slow, quick]).provider == "quick"


def test_constraints_apply_before_scores() -> None:
    providers = fleet()
    providers[1].availability = 0.5  # "cheap" is failing
    scorer = ProviderScorer("cost", rng=random.Random(1))
    assert scorer.choose(providers).provider == "fast"
    slo = ProviderScorer("quality", constraints=Constraints(max_latency_ms=500))
    assert slo.choose(fleet()).provider in {"fast", "cheap"}
    assert slo.choose(fleet()).provider == "fast"  # best quality within the SLO
    strict = ProviderScorer("cost", constraints=Constraints(min_quality=0.99))
    with pytest.raises(NoProvidersAvailable, match=r"strong: quality 0\.950 < 0\.99"):
        strict.choose(fleet())


def test_request_budget_excludes_what_it_cannot_afford() -> None:
    scorer = ProviderScorer("quality", rng=random.Random(1))
    # 4,000 characters is about 1,000 prompt tokens; 1,000 tokens out.
    request = LLMRequest("x" * 4000, max_tokens=1000, budget=0.03)
    chosen = scorer.choose(fleet(), request)
    assert chosen.provider == "fast"  # strong would cost $0.06
    with pytest.raises(NoProvidersAvailable, match="budget"):
        scorer.choose(fleet(), LLMRequest("x" * 4000, max_tokens=1000, budget=0.0001))


def test_ties_are_broken_at_random_not_by_position() -> None:
    twins = [ProviderMetrics(f"twin{i}", 100.0, 0.9, 0.01) for i in range(4)]
    scorer = ProviderScorer("balanced", rng=random.Random(7))
    counts = Counter(scorer.choose(twins).provider for _ in range(4000))
    assert set(counts) == {f"twin{i}" for i in range(4)}
    assert all(800 < n < 1200 for n in counts.values())


def test_pacing_pressure_moves_traffic_to_cheaper_providers() -> None:
    scorer = ProviderScorer("quality", rng=random.Random(1))
    assert scorer.choose(fleet(), pressure=0.0).provider == "strong"
    assert scorer.choose(fleet(), pressure=1.0).provider == "weak"
    prices = {m.provider: m.blended_price for m in fleet()}
    picks = [scorer.choose(fleet(), pressure=p / 10).provider for p in range(11)]
    paid = [prices[name] for name in picks]
    assert paid == sorted(paid, reverse=True)  # never a dearer pick under more pressure
    assert picks[0] == "strong" and "cheap" in picks and picks[-1] == "weak"


def test_ewma_updates_follow_seed_001() -> None:
    metrics = ProviderMetrics("p", 200.0, 0.8, 0.01)
    metrics.observe(Response(latency=300.0, quality_score=1.0))
    assert metrics.avg_latency == pytest.approx(0.9 * 200 + 0.1 * 300)
    assert metrics.quality_score == pytest.approx(0.9 * 0.8 + 0.1 * 1.0)
    assert metrics.availability == 1.0
    metrics.observe(Response(error="HTTP 503"))
    assert metrics.availability == pytest.approx(0.95)
    assert metrics.avg_latency == pytest.approx(210.0)  # a failure carries no latency
    metrics.observe(Response(latency=100.0))
    assert metrics.availability == pytest.approx(0.95 * 1.01)
    assert (metrics.requests, metrics.errors) == (3, 1)


def test_input_and_output_are_priced_apart() -> None:
    metrics = ProviderMetrics("p", 100.0, 0.9, 0.0, input_cost_per_1k=0.01, output_cost_per_1k=0.03)
    assert metrics.estimate_cost(2000, 500) == pytest.approx(0.02 + 0.015)
    assert metrics.blended_price == pytest.approx(0.02)
    metrics.output_cost_per_1k = 0.05
    assert metrics.blended_price == pytest.approx(0.03)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="unknown routing strategy 'cheapest'"):
        ProviderScorer("cheapest")
    with pytest.raises(ValueError, match="sum to a positive number"):
        Weights(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="weight cost"):
        Weights(0.5, -0.1, 0.5)
    with pytest.raises(ValueError, match="unknown weight"):
        ProviderScorer("balanced", weights={"speed": 1.0})
    with pytest.raises(ValueError, match="cost_per_1k_tokens"):
        ProviderMetrics("p", 100.0, 0.9, -0.01)
    with pytest.raises(ValueError, match="quality_score"):
        ProviderMetrics("p", 100.0, 1.5, 0.01)
    with pytest.raises(NoProvidersAvailable, match="no providers registered"):
        ProviderScorer().choose([])
    with pytest.raises(ValueError, match="max_tokens"):
        LLMRequest("hi", max_tokens=0)
