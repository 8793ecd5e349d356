"""Seed 001's multi-provider routers: ``IntelligentRouter`` and ``TaskBasedRouter``.

Both are the score stage over a set of providers: constraints, then normalised
cost/quality/latency scores (``ProviderScorer``), with optional budget pacing and
analytics. ``metrics`` (provider name -> ``ProviderMetrics``) is the router's view of
the providers and may be replaced wholesale, as seed 001's tests do; a provider is a
candidate exactly when it has metrics.
"""

from __future__ import annotations

import copy
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.scoring.budget import BudgetManager, Reservations
from fleetroute.scoring.provider import DEFAULT_CATALOGUE, Provider
from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics, Response
from fleetroute.scoring.provider_scoring import (
    Constraints,
    NoProvidersAvailable,
    ProviderScorer,
    RoutingStrategy,
    Weights,
)
from fleetroute.scoring.task_detection import (
    DEFAULT_PREFERENCES,
    TASK_PREFERENCES,
    detect_task_type,
)
from fleetroute.validation import positive_number

__all__ = ["IntelligentRouter", "NoProvidersAvailable", "TaskBasedRouter"]


class IntelligentRouter:
    """Picks the best provider for each request by the chosen strategy."""

    def __init__(
        self,
        strategy: RoutingStrategy | str = RoutingStrategy.BALANCED,
        *,
        providers: Iterable[tuple[Provider, ProviderMetrics]] | None = None,
        weights: Weights | Mapping[str, float] | None = None,
        constraints: Constraints | None = None,
        alpha: float = 0.1,
        budgets: BudgetManager | None = None,
        probe_interval: float = 30.0,
        clock: Clock = monotonic_clock,
        seed: int | None = None,
    ) -> None:
        self.budgets = budgets
        self.probe_interval = positive_number("probe_interval", probe_interval, "seconds")
        self._clock = clock
        # When each provider last got a probe while below the availability floor.
        self._last_probe: dict[str, float] = {}
        # Reservations of routed requests, settled in order by ``update_metrics``.
        self._open: dict[str, deque[Reservations]] = {}
        self._scorer = ProviderScorer(strategy, weights, constraints, rng=random.Random(seed))
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1] (got {alpha!r})")
        self.alpha = alpha
        # The default catalogue is shared module data: each router gets its own copies.
        self._catalogue = (
            [(p, copy.copy(m)) for p, m in DEFAULT_CATALOGUE]
            if providers is None
            else list(providers)
        )
        self._by_name: dict[str, Provider] = {}
        self.metrics: dict[str, ProviderMetrics] = {}
        for provider, metrics in self._catalogue:
            if provider.name in self._by_name:
                raise ValueError(f"provider {provider.name!r} is listed twice")
            if metrics.provider != provider.name:
                raise ValueError(
                    f"metrics for {metrics.provider!r} given with provider {provider.name!r}"
                )
            self._by_name[provider.name] = provider
            self.metrics[provider.name] = metrics
        self.providers = self._initialize_providers()

    @property
    def strategy(self) -> RoutingStrategy:
        return self._scorer.strategy

    def _initialize_providers(self) -> list[Provider]:
        return list(self._by_name.values())

    def provider(self, name: str) -> Provider:
        """The provider called ``name`` (made on the fly for metrics-only names)."""
        found = self._by_name.get(name)
        if found is None:
            if name not in self.metrics:
                raise KeyError(f"unknown provider {name!r}")
            found = self._by_name[name] = Provider(name)
            self.providers.append(found)
        return found

    def route(self, request: LLMRequest) -> Provider:
        """The best provider for ``request`` among every provider with metrics."""
        return self._choose(list(self.metrics.values()), request)

    def route_from_candidates(
        self, candidates: Sequence[Provider], request: LLMRequest
    ) -> Provider:
        """The best of ``candidates`` (those without metrics are skipped)."""
        metrics = [self.metrics[p.name] for p in candidates if p.name in self.metrics]
        return self._choose(metrics, request)

    def _choose(self, candidates: list[ProviderMetrics], request: LLMRequest) -> Provider:
        if not isinstance(request, LLMRequest):
            raise ValueError(f"request must be an LLMRequest (got {type(request).__name__})")
        probe = self._probe(candidates)
        if probe is not None:
            return self.provider(probe.provider)
        budgets = self.budgets
        if budgets is None:
            chosen = self._scorer.choose(candidates, request)
            return self.provider(chosen.provider)
        tokens_in, tokens_out = request.prompt_tokens, request.max_tokens
        affordable = [
            m
            for m in candidates
            if budgets.check(
                m.provider, request.tenant, m.estimate_cost(tokens_in, tokens_out), request.budget
            )
            is None
        ]
        if not affordable and candidates:
            refusals = "; ".join(
                f"{m.provider}: "
                + str(
                    budgets.check(
                        m.provider,
                        request.tenant,
                        m.estimate_cost(tokens_in, tokens_out),
                        request.budget,
                    )
                )
                for m in candidates
            )
            raise NoProvidersAvailable(f"no provider fits the budgets: {refusals}")
        chosen = self._scorer.choose(affordable, request, self._pressure(request))
        estimate = chosen.estimate_cost(tokens_in, tokens_out)
        reservation = budgets.reserve(chosen.provider, request.tenant, estimate, request.budget)
        self._open.setdefault(chosen.provider, deque()).append(reservation)
        return self.provider(chosen.provider)

    def _probe(self, candidates: list[ProviderMetrics]) -> ProviderMetrics | None:
        """A provider below the availability floor gets one request per
        ``probe_interval`` seconds, so that it can earn its availability back; seed
        001's rule alone (x1.01 per success, but no traffic below the floor) would shut
        it out for good after two errors."""
        floor = self._scorer.constraints.min_availability
        now = self._clock()
        for m in candidates:
            if m.availability < floor and now - self._last_probe.get(m.provider, -math.inf) >= (
                self.probe_interval
            ):
                self._last_probe[m.provider] = now
                return m
        return None

    def _pressure(self, request: LLMRequest) -> float:
        """Budget pacing pressure of the global and the tenant's budgets."""
        if self.budgets is None:
            return 0.0
        return self.budgets.pressure(tenant=request.tenant)

    async def update_metrics(self, provider: str, response: Response) -> None:
        """Folds an observed response into ``provider``'s averages (seed 001), and with
        budgets settles the oldest open reservation on ``provider`` at the response's
        real cost (its token counts at the provider's prices)."""
        metrics = self.metrics.get(provider)
        if metrics is None:
            raise KeyError(f"unknown provider {provider!r}")
        metrics.observe(response, self.alpha)
        pending = self._open.get(provider)
        if self.budgets is not None and pending:
            actual = metrics.estimate_cost(response.input_tokens, response.output_tokens)
            self.budgets.settle(pending.popleft(), actual)

    def rank(self, request: LLMRequest) -> list[tuple[Provider, float]]:
        """Every eligible provider with its score, best first (for inspection)."""
        ranked = self._scorer.rank(list(self.metrics.values()), request, self._pressure(request))
        return [(self.provider(m.provider), score) for m, score in ranked]


class TaskBasedRouter(IntelligentRouter):
    """Routes by task type (seed 001): detect the task, keep the providers whose model
    the task prefers, then score them as ``IntelligentRouter`` does. A task whose
    preferred models have no metrics here falls back to every provider."""

    TASK_PREFERENCES: ClassVar[dict[str, list[str]]] = {
        task: list(models) for task, models in TASK_PREFERENCES.items()
    }

    def route(self, request: LLMRequest) -> Provider:
        task_type = self._detect_task_type(request)
        preferred_models = self.TASK_PREFERENCES.get(task_type, list(DEFAULT_PREFERENCES))
        candidates = [
            p for p in self.providers if p.model in preferred_models and p.name in self.metrics
        ]
        if not candidates:
            return super().route(request)
        return super().route_from_candidates(candidates, request)

    def _detect_task_type(self, request: LLMRequest) -> str:
        if request.task_type is not None:
            return request.task_type
        return detect_task_type(request.prompt).task
