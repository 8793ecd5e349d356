"""Choosing a provider by cost, quality and latency: seed 001's ``RoutingStrategy``.

The seed scores ``quality * 0.4 + 1/(1 + cost) * 0.3 + 1/(1 + latency) * 0.3``. Those
terms are not comparable: with latency in milliseconds, ``1/(1 + latency)`` is about
0.005 for every provider, so latency never matters, and ``1/(1 + cost)`` is about 1
for every price below a cent, so cost barely does. Here each criterion is normalised
across the candidates of this decision (min-max: the best candidate scores 1 on it, the
worst 0; all equal score 1), so a weight means what it says. Hard constraints come
first (availability, minimum quality, a latency SLO, the request's budget), then the
score; candidates that score within 1e-9 of the best are chosen among at random, so
equal providers share the traffic instead of the first one taking all of it.

Budget pacing enters as ``pressure`` in [0, 1]: the weights move toward cost,
``w = (1 - pressure) * w + pressure * cost_only``, so spending shifts to cheaper
providers progressively as a budget runs ahead of its pace.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics
from fleetroute.validation import non_negative_number

__all__ = [
    "DEFAULT_WEIGHTS",
    "Constraints",
    "NoProvidersAvailable",
    "ProviderScorer",
    "RoutingStrategy",
    "Weights",
    "pick_best",
]

_TIE = 1e-9


T = TypeVar("T")


def pick_best(candidates: Sequence[T], scores: Sequence[float], rng: random.Random) -> T:
    """The candidate with the highest score; those within 1e-9 of it are chosen among
    at random, so equal candidates share the traffic."""
    best = max(scores)
    top = [c for c, s in zip(candidates, scores, strict=True) if s >= best - _TIE]
    return top[0] if len(top) == 1 else rng.choice(top)


class NoProvidersAvailable(RuntimeError):
    """No provider meets the request's constraints; the message says which ruled
    each one out."""


class RoutingStrategy(Enum):
    """Seed 001's strategies."""

    COST = "cost"
    QUALITY = "quality"
    LATENCY = "latency"
    BALANCED = "balanced"


@dataclass(frozen=True, slots=True)
class Weights:
    """Relative weights of quality, cost and latency; normalised to sum to 1."""

    quality: float
    cost: float
    latency: float

    def __post_init__(self) -> None:
        values = [
            non_negative_number(f"weight {name}", getattr(self, name))
            for name in ("quality", "cost", "latency")
        ]
        total = sum(values)
        if not total > 0:
            raise ValueError(f"weights must sum to a positive number (got {values})")
        for name, value in zip(("quality", "cost", "latency"), values, strict=True):
            object.__setattr__(self, name, value / total)

    @classmethod
    def of(cls, weights: Weights | Mapping[str, float]) -> Weights:
        if isinstance(weights, Weights):
            return weights
        unknown = set(weights) - {"quality", "cost", "latency"}
        if unknown:
            raise ValueError(f"unknown weight(s) {sorted(unknown)}; known: cost, latency, quality")
        return cls(
            weights.get("quality", 0.0), weights.get("cost", 0.0), weights.get("latency", 0.0)
        )

    def paced(self, pressure: float) -> Weights:
        """These weights moved toward cost by ``pressure`` in [0, 1]."""
        if pressure <= 0:
            return self
        keep = 1.0 - min(pressure, 1.0)
        return Weights(self.quality * keep, self.cost * keep + (1 - keep), self.latency * keep)


#: Each strategy's weights. Seed 001's balanced split is kept (0.4, 0.3, 0.3).
DEFAULT_WEIGHTS: Mapping[RoutingStrategy, Weights] = {
    RoutingStrategy.COST: Weights(0.0, 1.0, 0.0),
    RoutingStrategy.QUALITY: Weights(1.0, 0.0, 0.0),
    RoutingStrategy.LATENCY: Weights(0.0, 0.0, 1.0),
    RoutingStrategy.BALANCED: Weights(0.4, 0.3, 0.3),
}


@dataclass(frozen=True, slots=True)
class Constraints:
    """What a provider must satisfy before it is scored. ``min_availability`` is seed
    001's 0.95; ``min_quality`` is seed 001's 0.8 for the cost strategy (its
    ``CostOptimizedRouter``) and none otherwise unless set."""

    min_availability: float = 0.95
    min_quality: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self) -> None:
        non_negative_number("min_availability", self.min_availability)
        if self.min_quality is not None:
            non_negative_number("min_quality", self.min_quality)
        if self.max_latency_ms is not None:
            non_negative_number("max_latency_ms", self.max_latency_ms)


def _parse_strategy(strategy: RoutingStrategy | str) -> RoutingStrategy:
    if isinstance(strategy, RoutingStrategy):
        return strategy
    try:
        return RoutingStrategy(strategy)
    except ValueError:
        known = ", ".join(s.value for s in RoutingStrategy)
        raise ValueError(f"unknown routing strategy {strategy!r}; known: {known}") from None


class ProviderScorer:
    """Filters providers by the constraints and ranks the rest by weighted,
    normalised criteria."""

    def __init__(
        self,
        strategy: RoutingStrategy | str = RoutingStrategy.BALANCED,
        weights: Weights | Mapping[str, float] | None = None,
        constraints: Constraints | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.strategy = _parse_strategy(strategy)
        self.weights = DEFAULT_WEIGHTS[self.strategy] if weights is None else Weights.of(weights)
        if constraints is None:
            constraints = Constraints(
                min_quality=0.8 if self.strategy is RoutingStrategy.COST else None
            )
        self.constraints = constraints
        self._rng = rng or random.Random()

    def eligible(
        self, candidates: Sequence[ProviderMetrics], request: LLMRequest | None = None
    ) -> list[ProviderMetrics]:
        """The candidates that meet the constraints and the request's budget."""
        c = self.constraints
        out = [
            m
            for m in candidates
            if m.availability >= c.min_availability
            and (c.min_quality is None or m.quality_score >= c.min_quality)
            and (c.max_latency_ms is None or m.avg_latency <= c.max_latency_ms)
        ]
        if request is not None and request.budget is not None:
            tokens_in, tokens_out = request.prompt_tokens, request.max_tokens
            out = [m for m in out if m.estimate_cost(tokens_in, tokens_out) <= request.budget]
        return out

    def scores(self, candidates: Sequence[ProviderMetrics], pressure: float = 0.0) -> list[float]:
        """Each candidate's score in [0, 1] (already eligible candidates)."""
        if not candidates:
            return []
        return self.score_lists(
            [m.quality_score for m in candidates],
            [m.blended_price for m in candidates],
            [m.avg_latency for m in candidates],
            pressure,
        )

    def score_lists(
        self, quality: list[float], cost: list[float], latency: list[float], pressure: float
    ) -> list[float]:
        """Scores from the criteria directly: ``quality[i]``, ``cost[i]`` (price per
        1,000 tokens) and ``latency[i]`` (ms) of candidate ``i`` (non-empty lists)."""
        w = self.weights.paced(pressure) if pressure > 0 else self.weights
        q_low = min(quality)
        q_span = max(quality) - q_low
        c_high = max(cost)
        c_span = c_high - min(cost)
        l_high = max(latency)
        l_span = l_high - min(latency)
        # score = sum of w * normalised criterion, rearranged as a constant plus a
        # linear form, so the per-candidate work is three products. A criterion on
        # which every candidate is equal adds its full weight to each.
        kq = w.quality / q_span if q_span > 0 else 0.0
        kc = w.cost / c_span if c_span > 0 else 0.0
        kl = w.latency / l_span if l_span > 0 else 0.0
        constant = (
            (w.quality if q_span <= 0 else -kq * q_low)
            + (w.cost if c_span <= 0 else kc * c_high)
            + (w.latency if l_span <= 0 else kl * l_high)
        )
        return [
            constant + kq * q - kc * c - kl * lat
            for q, c, lat in zip(quality, cost, latency, strict=True)
        ]

    def choose(
        self,
        candidates: Sequence[ProviderMetrics],
        request: LLMRequest | None = None,
        pressure: float = 0.0,
    ) -> ProviderMetrics:
        """The best eligible candidate (ties broken at random)."""
        if not candidates:
            raise NoProvidersAvailable("no providers registered")
        c = self.constraints
        min_availability = c.min_availability
        min_quality = -1.0 if c.min_quality is None else c.min_quality
        max_latency = math.inf if c.max_latency_ms is None else c.max_latency_ms
        # Comprehensions, not an appending loop: this runs on every request.
        eligible = [
            m
            for m in candidates
            if m.availability >= min_availability
            and m.quality_score >= min_quality
            and m.avg_latency <= max_latency
        ]
        quality = [m.quality_score for m in eligible]
        cost = [m.blended_price for m in eligible]
        latency = [m.avg_latency for m in eligible]
        if request is not None and request.budget is not None:
            tokens_in, tokens_out, budget = (
                request.prompt_tokens,
                request.max_tokens,
                request.budget,
            )
            keep = [
                i
                for i, m in enumerate(eligible)
                if m.estimate_cost(tokens_in, tokens_out) <= budget
            ]
            eligible = [eligible[i] for i in keep]
            quality = [quality[i] for i in keep]
            cost = [cost[i] for i in keep]
            latency = [latency[i] for i in keep]
        if not eligible:
            raise NoProvidersAvailable(self._why_none(candidates, request))
        if len(eligible) == 1:
            return eligible[0]
        return pick_best(eligible, self.score_lists(quality, cost, latency, pressure), self._rng)

    def rank(
        self,
        candidates: Sequence[ProviderMetrics],
        request: LLMRequest | None = None,
        pressure: float = 0.0,
    ) -> list[tuple[ProviderMetrics, float]]:
        """Eligible candidates with their scores, best first."""
        eligible = self.eligible(candidates, request)
        ranked = list(zip(eligible, self.scores(eligible, pressure), strict=True))
        ranked.sort(key=lambda pair: pair[1], reverse=True)
        return ranked

    def _why_none(self, candidates: Sequence[ProviderMetrics], request: LLMRequest | None) -> str:
        c = self.constraints
        reasons = []
        for m in candidates:
            if m.availability < c.min_availability:
                reasons.append(
                    f"{m.provider}: availability {m.availability:.3f} < {c.min_availability}"
                )
            elif c.min_quality is not None and m.quality_score < c.min_quality:
                reasons.append(f"{m.provider}: quality {m.quality_score:.3f} < {c.min_quality}")
            elif c.max_latency_ms is not None and m.avg_latency > c.max_latency_ms:
                reasons.append(
                    f"{m.provider}: latency {m.avg_latency:.0f} ms > {c.max_latency_ms} ms"
                )
            elif request is not None and request.budget is not None:
                cost = m.estimate_cost(request.prompt_tokens, request.max_tokens)
                reasons.append(f"{m.provider}: estimated ${cost:.4f} > budget ${request.budget}")
        return "no provider meets the constraints: " + "; ".join(reasons)
