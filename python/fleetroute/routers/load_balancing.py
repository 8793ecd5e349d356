"""Seed 000's ``configure_load_balancing``: the pick algorithm, and endpoint weights
that follow capacity, load, history, availability and proximity.

``weights`` blend five per-endpoint signals, each in [0, 1]:

- ``endpoint_capacity``: the endpoint's share of its tier's capacity (relative to the
  largest endpoint of the tier);
- ``current_load``: its free share, ``1 - load / capacity``;
- ``historical_performance``: its latency EWMA relative to the fastest of its tier;
- ``resource_availability``: 1 in service, 0 out;
- ``geographic_proximity``: 1 when its ``region`` (a registration field) is the
  router's ``region``, else 0 (1 for all when no region is set).

With ``dynamic_adjustment`` enabled, every ``adjustment_frequency`` seconds each
endpoint's weight in the Rust registry moves toward ``registered weight x (0.05 +
score)``, smoothed by ``stability_factor`` (the share of the old weight kept), and is
written only when it changed by more than ``sensitivity`` (relative): the weighted
strategies (``weighted_round_robin``, Maglev) then follow it. ``algorithms.primary`` is
the Rust strategy; ``fallback`` and ``intelligent`` name what serves beyond it (the tier
chain, a learned router) and are validated and recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetroute._native import STRATEGIES

__all__ = ["BALANCING_SIGNALS", "LoadBalancingConfig"]

#: The signals seed 000's ``weights`` may name.
BALANCING_SIGNALS = (
    "endpoint_capacity",
    "current_load",
    "historical_performance",
    "resource_availability",
    "geographic_proximity",
)
_INTELLIGENT = frozenset({"ml_based_prediction", "bandit", "none"})
_SECTIONS = frozenset({"algorithms", "weights", "dynamic_adjustment", "region"})


def _section(config: Mapping[str, Any], name: str, known: frozenset[str]) -> Mapping[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise ValueError(f"load balancing {name} must be a mapping (got {value!r})")
    unknown = set(value) - known
    if unknown:
        raise ValueError(
            f"unknown load balancing {name} key(s) {sorted(unknown)}; known: {sorted(known)}"
        )
    return value


@dataclass(frozen=True, slots=True)
class LoadBalancingConfig:
    """A validated ``configure_load_balancing`` configuration."""

    primary: str
    fallback: str
    intelligent: str
    weights: Mapping[str, float]
    enabled: bool
    adjustment_frequency: float
    sensitivity: float
    stability_factor: float
    region: str | None

    @classmethod
    def parse(cls, config: Mapping[str, Any], current_strategy: str) -> LoadBalancingConfig:
        if not isinstance(config, Mapping):
            raise ValueError(f"load balancing config must be a mapping (got {config!r})")
        unknown = set(config) - _SECTIONS
        if unknown:
            raise ValueError(
                f"unknown load balancing section(s) {sorted(unknown)}; known: {sorted(_SECTIONS)}"
            )
        algorithms = _section(
            config, "algorithms", frozenset({"primary", "fallback", "intelligent"})
        )
        primary = algorithms.get("primary", current_strategy)
        fallback = algorithms.get("fallback", primary)
        for role, name in (("primary", primary), ("fallback", fallback)):
            if name not in STRATEGIES:
                raise ValueError(
                    f"unknown {role} algorithm {name!r}; known: {', '.join(STRATEGIES)}"
                )
        intelligent = algorithms.get("intelligent", "none")
        if intelligent not in _INTELLIGENT:
            raise ValueError(
                f"unknown intelligent algorithm {intelligent!r}; known: {sorted(_INTELLIGENT)}"
            )
        raw = _section(config, "weights", frozenset(BALANCING_SIGNALS))
        weights: dict[str, float] = {}
        for name in BALANCING_SIGNALS:
            value = raw.get(name, 0.0)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value >= 0)
            ):
                raise ValueError(
                    f"load balancing weight {name} must be finite and >= 0 (got {value!r})"
                )
            weights[name] = float(value)
        total = sum(weights.values())
        adjustment = _section(
            config,
            "dynamic_adjustment",
            frozenset({"enabled", "adjustment_frequency", "sensitivity", "stability_factor"}),
        )
        enabled = adjustment.get("enabled", False)
        if not isinstance(enabled, bool):
            raise ValueError(f"dynamic_adjustment enabled must be a bool (got {enabled!r})")
        if enabled and not total > 0:
            raise ValueError("dynamic adjustment needs load balancing weights that sum to > 0")
        frequency = adjustment.get("adjustment_frequency", 30.0)
        sensitivity = adjustment.get("sensitivity", 0.1)
        stability = adjustment.get("stability_factor", 0.8)
        if not (isinstance(frequency, int | float) and math.isfinite(frequency) and frequency > 0):
            raise ValueError(
                f"adjustment_frequency must be finite and > 0 seconds (got {frequency!r})"
            )
        if not (isinstance(sensitivity, int | float) and 0 <= sensitivity < 1):
            raise ValueError(f"sensitivity must be in [0, 1) (got {sensitivity!r})")
        if not (isinstance(stability, int | float) and 0 <= stability < 1):
            raise ValueError(f"stability_factor must be in [0, 1) (got {stability!r})")
        region = config.get("region")
        if region is not None and not isinstance(region, str):
            raise ValueError(f"region must be a string (got {region!r})")
        normalised = {k: v / total for k, v in weights.items()} if total > 0 else weights
        return cls(
            primary,
            fallback,
            intelligent,
            normalised,
            enabled,
            float(frequency),
            float(sensitivity),
            float(stability),
            region,
        )
