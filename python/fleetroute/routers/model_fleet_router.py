"""Two-level routing: the model (or provider) by score, then the replica inside that
model's pool by load, in one call into the Rust core.

Every replica of every model is an accelerator of one native ``Router``. A decision
scores the eligible models (``ProviderScorer``: constraints, then normalised cost,
quality and latency) and hands the core a list of ``(score, replica ids)`` groups;
``Router.route_joint`` takes the best group that has a replica with room and picks the
replica with the router's strategy (P2C by default), atomically. So a model whose
replicas are all busy never takes a request that an equally good model could serve.

Regions: with ``request.region`` set, each model contributes two groups, its replicas
in that region and those elsewhere; the remote group's score is lowered by
``region_penalty`` (seed 001's multi-region routing, seed 000's geographic proximity),
so a nearby replica wins unless the remote model scores better by more than the
penalty. The penalty is in score units, not milliseconds: scores are normalised across
the candidates, so an added latency would only reorder the latency criterion, however
large it was. Scores lie in [0, 1], so a penalty of 1 or more keeps traffic in its
region whenever a local replica has room. A hard latency limit is a
``Constraints.max_latency_ms``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetroute._native import Accelerator, Router
from fleetroute.scoring.provider_metrics import LLMRequest, ProviderMetrics, Response
from fleetroute.scoring.provider_scoring import (
    Constraints,
    NoProvidersAvailable,
    ProviderScorer,
    RoutingStrategy,
    Weights,
)
from fleetroute.validation import non_negative_number, positive_int

__all__ = ["ModelFleetRouter", "ModelPlacement"]


@dataclass(frozen=True, slots=True)
class ModelPlacement:
    """Where a request went: the model, the replica, and whether it left its region."""

    provider: str
    replica: str
    region: str | None
    remote: bool
    cost: int
    replica_native_id: int


@dataclass(slots=True)
class _Model:
    metrics: ProviderMetrics
    replica_ids: list[int]
    by_region: dict[str | None, list[int]]


class ModelFleetRouter:
    """Models with replica pools; one decision picks both."""

    def __init__(
        self,
        strategy: RoutingStrategy | str = RoutingStrategy.BALANCED,
        *,
        replica_strategy: str = "p2c",
        weights: Weights | Mapping[str, float] | None = None,
        constraints: Constraints | None = None,
        region_penalty: float = 0.2,
        tolerance: float = 0.0,
        priority_reserve: float = 0.1,
        alpha: float = 0.1,
        seed: int | None = None,
    ) -> None:
        self._scorer = ProviderScorer(strategy, weights, constraints, rng=random.Random(seed))
        self.native = Router(replica_strategy, seed=seed, priority_reserve=priority_reserve)
        self.region_penalty = non_negative_number("region_penalty", region_penalty)
        self.tolerance = non_negative_number("tolerance", tolerance)
        self.alpha = alpha
        self._models: dict[str, _Model] = {}
        self._replicas: list[tuple[str, str, str | None]] = []  # native id -> (model, name, region)
        self._replica_names: set[str] = set()

    def add_model(self, metrics: ProviderMetrics, replicas: Iterable[Mapping[str, Any]]) -> None:
        """Registers a model and its replicas (``{"id", "capacity", "region"}``), all or
        nothing."""
        if metrics.provider in self._models:
            raise ValueError(f"model {metrics.provider!r} is already registered")
        specs = list(replicas)
        if not specs:
            raise ValueError(f"model {metrics.provider!r} needs at least one replica")
        first = len(self._replicas)
        parsed: list[tuple[str, int, str | None]] = []
        seen: set[str] = set()
        for spec in specs:
            name = spec.get("id")
            if not isinstance(name, str) or not name:
                raise ValueError(f"replica id must be a non-empty string (got {name!r})")
            if name in self._replica_names or name in seen:
                raise ValueError(f"replica {name!r} is already registered")
            seen.add(name)
            capacity = positive_int(f"replica {name!r} capacity", spec.get("capacity"))
            region = spec.get("region")
            if region is not None and not isinstance(region, str):
                raise ValueError(f"replica {name!r} region must be a string (got {region!r})")
            parsed.append((name, capacity, region))
        self.native.add_accelerators(
            [Accelerator(first + i, capacity) for i, (_, capacity, _) in enumerate(parsed)]
        )
        model = _Model(metrics, [], {})
        for i, (name, _, region) in enumerate(parsed):
            native_id = first + i
            self._replicas.append((metrics.provider, name, region))
            self._replica_names.add(name)
            model.replica_ids.append(native_id)
            model.by_region.setdefault(region, []).append(native_id)
        self._models[metrics.provider] = model

    @property
    def metrics(self) -> dict[str, ProviderMetrics]:
        return {name: model.metrics for name, model in self._models.items()}

    def route(
        self, request: LLMRequest, cost: int = 1, priority: int = 0, pressure: float = 0.0
    ) -> ModelPlacement | None:
        """Places ``request`` on a replica of the best model with room, or returns None
        when every eligible model's replicas are full."""
        eligible = self._scorer.eligible([m.metrics for m in self._models.values()], request)
        if not eligible:
            raise NoProvidersAvailable("no model meets the request's constraints")
        region = request.region
        groups: list[tuple[str, bool, list[int]]] = []
        model_index: list[int] = []
        for index, metrics in enumerate(eligible):
            model = self._models[metrics.provider]
            if region is None:
                parts = [(False, model.replica_ids)]
            else:
                local = model.by_region.get(region, [])
                remote = [i for i in model.replica_ids if self._replicas[i][2] != region]
                parts = [(False, local), (True, remote)]
            for is_remote, ids in parts:
                if not ids:
                    continue
                groups.append((metrics.provider, is_remote, ids))
                model_index.append(index)
        model_scores = self._scorer.scores(eligible, pressure)
        picked = self.native.route_joint(
            [
                (model_scores[index] - (self.region_penalty if is_remote else 0.0), ids)
                for index, (_, is_remote, ids) in zip(model_index, groups, strict=True)
            ],
            cost=cost,
            priority=priority,
            tolerance=self.tolerance,
        )
        if picked is None:
            return None
        group, native_id = picked
        provider, is_remote, _ = groups[group]
        _, replica, replica_region = self._replicas[native_id]
        return ModelPlacement(provider, replica, replica_region, is_remote, cost, native_id)

    def release(self, placement: ModelPlacement) -> None:
        """Returns the load of a finished request."""
        self.native.release(placement.replica_native_id, placement.cost)

    def observe(self, provider: str, response: Response) -> None:
        """Folds a response into the model's averages."""
        model = self._models.get(provider)
        if model is None:
            raise KeyError(f"unknown model {provider!r}")
        model.metrics.observe(response, self.alpha)
