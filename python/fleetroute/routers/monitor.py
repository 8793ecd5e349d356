"""``RouterMonitor``: seed 000's metrics, alerts and mitigations over many routers.

It reads what the routers' observe stages recorded (``RouterMetrics``, breakers,
ejections, caches) and computes, over a recent ``window`` of seconds:

- throughput (completed requests per second), latency (mean, p50, p95, p99), error
  rate;
- a load balance score: Jain's fairness index of requests per unit of capacity
  among the in-service endpoints of each fallback tier, weighted by the tier's
  requests (a lower tier that only takes overflow is not "imbalanced");
- per-endpoint status, load, latency estimate and error rate.

``check_alerts`` compares these with ``alert_thresholds`` and proposes a mitigation
per alert; ``apply_auto_mitigation`` carries it out (open the endpoint's breaker,
eject it, or de-weight it).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.durations import parse_duration
from fleetroute.fairness import jain_index
from fleetroute.routers.alert import MITIGATIONS, Alert
from fleetroute.routers.base_router import BaseRouter
from fleetroute.routers.router_metrics import Completion

__all__ = ["DEFAULT_ALERT_THRESHOLDS", "RouterMonitor"]

#: Seed 000's thresholds: latency in ms, error rate and imbalance as fractions.
DEFAULT_ALERT_THRESHOLDS: Mapping[str, Any] = {
    "high_latency": 1000.0,
    "high_error_rate": 0.05,
    "load_imbalance": 0.3,
    "endpoint_failure": True,
}

#: Requests an endpoint needs in the window before its own error rate or latency is
#: judged (fewer is noise).
MIN_ENDPOINT_REQUESTS = 10

_OUT_OF_SERVICE = frozenset({"open", "ejected", "unhealthy"})


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (numpy's default)."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


class RouterMonitor:
    """Aggregates metrics and alerts over ``routers``."""

    def __init__(
        self,
        routers: Iterable[BaseRouter],
        metrics_collection_frequency: float = 5.0,
        alert_thresholds: Mapping[str, Any] | None = None,
        *,
        window: float = 60.0,
        history: int = 720,
        clock: Clock = monotonic_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.routers: dict[str, BaseRouter] = {}
        for router in routers:
            if not isinstance(router, BaseRouter):
                raise ValueError(f"RouterMonitor watches routers (got {router!r})")
            if router.name in self.routers:
                raise ValueError(
                    f"two routers are named {router.name!r}; give them distinct name= values"
                )
            self.routers[router.name] = router
        self.metrics_collection_frequency = parse_duration(
            metrics_collection_frequency, "metrics_collection_frequency"
        )
        self.window = parse_duration(window, "window")
        thresholds = dict(DEFAULT_ALERT_THRESHOLDS)
        for key, value in (alert_thresholds or {}).items():
            if key not in DEFAULT_ALERT_THRESHOLDS:
                raise ValueError(
                    f"unknown alert threshold {key!r}; known: {sorted(DEFAULT_ALERT_THRESHOLDS)}"
                )
            if key == "endpoint_failure":
                if not isinstance(value, bool):
                    raise ValueError(f"endpoint_failure must be a bool (got {value!r})")
            elif not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0
            ):
                raise ValueError(f"alert threshold {key} must be finite and > 0 (got {value!r})")
            elif key != "high_latency" and value > 1:
                raise ValueError(f"alert threshold {key} is a fraction in (0, 1] (got {value!r})")
            thresholds[key] = value
        self.alert_thresholds = thresholds
        self._clock = clock
        self._sleep = sleep
        self.snapshots: deque[dict[str, Any]] = deque(maxlen=history)
        self.mitigations_applied: list[Alert] = []

    # Metrics ----------------------------------------------------------------------------

    def _recent(self, seconds: float) -> dict[str, list[Completion]]:
        return {name: router.metrics.recent(seconds) for name, router in self.routers.items()}

    def _balance(
        self, recent: Mapping[str, list[Completion]]
    ) -> tuple[float, str | None, str | None]:
        """The tier-weighted Jain score, and the most loaded endpoint (router, id)."""
        weighted = 0.0
        total = 0
        worst: tuple[float, str | None, str | None] = (-1.0, None, None)
        for name, router in self.routers.items():
            counts: dict[str, int] = {}
            for completion in recent[name]:
                counts[completion.endpoint_id] = counts.get(completion.endpoint_id, 0) + 1
            tiers: dict[int, list[tuple[str, float]]] = {}
            for endpoint in router.endpoints:
                if router.endpoint_status(endpoint.id) in _OUT_OF_SERVICE | {"drained"}:
                    continue
                share = counts.get(endpoint.id, 0) / endpoint.capacity
                tiers.setdefault(endpoint.priority, []).append((endpoint.id, share))
            for members in tiers.values():
                requests = sum(counts.get(e, 0) for e, _ in members)
                if requests == 0 or len(members) < 2:
                    continue
                weighted += requests * jain_index([share for _, share in members])
                total += requests
                endpoint_id, share = max(members, key=lambda m: m[1])
                if share > worst[0]:
                    worst = (share, name, endpoint_id)
        return (weighted / total if total else 1.0), worst[1], worst[2]

    def get_comprehensive_metrics(self) -> dict[str, Any]:
        """Throughput, latency, errors, load balance, endpoints, caching and
        reliability over the last ``window`` seconds, across every router."""
        now = self._clock()
        recent = self._recent(self.window)
        completions = [c for per_router in recent.values() for c in per_router]
        latencies = sorted(c.latency_ms for c in completions)
        failures = sum(not c.success for c in completions)
        elapsed = min(
            self.window,
            max((now - r.metrics.started_at for r in self.routers.values()), default=0.0),
        )
        span = elapsed if elapsed > 0 else self.window
        score, _, _ = self._balance(recent)
        endpoints: list[dict[str, Any]] = []
        open_circuits = ejected = unhealthy = 0
        for name, router in self.routers.items():
            windowed: dict[str, list[Completion]] = {}
            for completion in recent[name]:
                windowed.setdefault(completion.endpoint_id, []).append(completion)
            for endpoint in router.endpoints:
                status = router.endpoint_status(endpoint.id)
                open_circuits += status in ("open", "half_open")
                ejected += status == "ejected"
                unhealthy += status == "unhealthy"
                mine = windowed.get(endpoint.id, [])
                load = router.pool.load(endpoint.id)
                endpoints.append(
                    {
                        "id": endpoint.id,
                        "router": name,
                        "device": endpoint.device,
                        "tier": endpoint.priority,
                        "status": status,
                        "current_load": load,
                        "capacity": endpoint.capacity,
                        "utilisation": load / endpoint.capacity,
                        "avg_response_time": router.pool.latency_ms(endpoint.id),
                        "error_rate": (sum(not c.success for c in mine) / len(mine))
                        if mine
                        else 0.0,
                        "requests": len(mine),
                    }
                )
        hits = misses = 0
        for router in self.routers.values():
            cache = getattr(router, "cache", None)
            if cache is not None:
                stats = cache.stats
                hits += stats.hits
                misses += stats.misses
        capacity = sum(r.pool.total_capacity for r in self.routers.values())
        in_flight = sum(r.pool.in_flight for r in self.routers.values())
        metrics = {
            "timestamp": now,
            "window_seconds": self.window,
            "throughput": {
                "total_rps": len(completions) / span,
                "completed": len(completions),
                "requests_total": sum(r.metrics.requests for r in self.routers.values()),
                "per_router_rps": {name: len(recent[name]) / span for name in self.routers},
            },
            "latency": {
                "avg_ms": sum(latencies) / len(latencies) if latencies else 0.0,
                "p50_ms": _percentile(latencies, 0.50),
                "p95_ms": _percentile(latencies, 0.95),
                "p99_ms": _percentile(latencies, 0.99),
                "max_ms": latencies[-1] if latencies else 0.0,
            },
            "errors": {
                "rate": failures / len(completions) if completions else 0.0,
                "count": failures,
                "rate_limited_total": sum(r.metrics.rate_limited for r in self.routers.values()),
                "shed_total": sum(r.metrics.shed for r in self.routers.values()),
                "no_capacity_total": sum(r.metrics.no_capacity for r in self.routers.values()),
            },
            "load_balance": {
                "score": score,
                "fleet_utilisation": in_flight / capacity if capacity else 0.0,
            },
            "endpoints": endpoints,
            "adaptation": {"effectiveness": self._optional_mean("adaptation_effectiveness")},
            "prediction": {"accuracy": self._optional_mean("prediction_accuracy")},
            "caching": {
                "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
                "hits": hits,
                "misses": misses,
            },
            "reliability": {
                "cb_activations": sum(r.circuit_breaker_activations for r in self.routers.values()),
                "open_circuits": open_circuits,
                "ejected": ejected,
                "unhealthy": unhealthy,
                "retries_total": sum(r.metrics.retries for r in self.routers.values()),
                "fallbacks_total": sum(r.metrics.fallbacks for r in self.routers.values()),
            },
        }
        return metrics

    def _optional_mean(self, attribute: str) -> float | None:
        """Mean of a figure only some routers have (adaptive, forecasting); None if none."""
        values = [getattr(r, attribute) for r in self.routers.values() if hasattr(r, attribute)]
        values = [v for v in values if isinstance(v, int | float)]
        return sum(values) / len(values) if values else None

    def collect(self) -> dict[str, Any]:
        """Takes one metrics snapshot into ``snapshots``."""
        snapshot = self.get_comprehensive_metrics()
        self.snapshots.append(snapshot)
        return snapshot

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Collects a snapshot every ``metrics_collection_frequency`` seconds until
        ``stop`` is set."""
        while stop is None or not stop.is_set():
            self.collect()
            await self._sleep(self.metrics_collection_frequency)

    # Alerts -----------------------------------------------------------------------------

    def check_alerts(self) -> list[Alert]:
        """Alerts against ``alert_thresholds`` now, plus those the routers' own
        policies raised since the last check (anomalies)."""
        now = self._clock()
        thresholds = self.alert_thresholds
        recent = self._recent(self.window)
        alerts: list[Alert] = []
        for name, router in self.routers.items():
            pending = getattr(router, "alerts", None)
            if pending:
                alerts.extend(pending)
                pending.clear()
            completions = recent[name]
            if completions:
                latencies = sorted(c.latency_ms for c in completions)
                p95 = _percentile(latencies, 0.95)
                if p95 > thresholds["high_latency"]:
                    alerts.append(
                        Alert(
                            "warning",
                            f"{name}: p95 latency {p95:.0f} ms over "
                            f"{thresholds['high_latency']} ms",
                            "high_latency",
                            p95,
                            float(thresholds["high_latency"]),
                            name,
                            raised_at=now,
                        )
                    )
                rate = sum(not c.success for c in completions) / len(completions)
                if rate > thresholds["high_error_rate"]:
                    alerts.append(
                        Alert(
                            "critical",
                            f"{name}: error rate {rate:.1%} over "
                            f"{thresholds['high_error_rate']:.1%}",
                            "high_error_rate",
                            rate,
                            float(thresholds["high_error_rate"]),
                            name,
                            raised_at=now,
                        )
                    )
            alerts.extend(self._endpoint_alerts(name, router, completions, now))
        score, worst_router, worst_endpoint = self._balance(recent)
        imbalance = 1.0 - score
        if imbalance > thresholds["load_imbalance"] and worst_router is not None:
            alerts.append(
                Alert(
                    "warning",
                    f"load imbalance {imbalance:.2f} over {thresholds['load_imbalance']}; "
                    f"{worst_endpoint} takes the most per unit of capacity",
                    "load_imbalance",
                    imbalance,
                    float(thresholds["load_imbalance"]),
                    worst_router,
                    endpoint_id=worst_endpoint,
                    mitigation_action="reweigh",
                    raised_at=now,
                )
            )
        return alerts

    def _endpoint_alerts(
        self, name: str, router: BaseRouter, completions: list[Completion], now: float
    ) -> list[Alert]:
        thresholds = self.alert_thresholds
        by_endpoint: dict[str, list[Completion]] = {}
        for completion in completions:
            by_endpoint.setdefault(completion.endpoint_id, []).append(completion)
        has_breaker = getattr(router, "breaker", None) is not None
        has_ejection = getattr(router, "outlier_detector", None) is not None
        alerts: list[Alert] = []
        for endpoint in router.endpoints:
            status = router.endpoint_status(endpoint.id)
            if thresholds["endpoint_failure"] and status in _OUT_OF_SERVICE:
                alerts.append(
                    Alert(
                        "critical",
                        f"{endpoint.id} is out of service ({status})",
                        "endpoint_failure",
                        1.0,
                        1.0,
                        name,
                        endpoint_id=endpoint.id,
                        raised_at=now,
                    )
                )
                continue
            mine = by_endpoint.get(endpoint.id, [])
            if len(mine) < MIN_ENDPOINT_REQUESTS:
                continue
            rate = sum(not c.success for c in mine) / len(mine)
            if rate > thresholds["high_error_rate"]:
                action = "open_breaker" if has_breaker else ("eject" if has_ejection else None)
                alerts.append(
                    Alert(
                        "critical",
                        f"{endpoint.id}: error rate {rate:.1%} over "
                        f"{thresholds['high_error_rate']:.1%}",
                        "endpoint_error_rate",
                        rate,
                        float(thresholds["high_error_rate"]),
                        name,
                        endpoint_id=endpoint.id,
                        mitigation_action=action,
                        raised_at=now,
                    )
                )
            latency = sum(c.latency_ms for c in mine) / len(mine)
            if latency > thresholds["high_latency"] and endpoint.id not in router.deweighted:
                alerts.append(
                    Alert(
                        "warning",
                        f"{endpoint.id}: mean latency {latency:.0f} ms over "
                        f"{thresholds['high_latency']} ms",
                        "endpoint_latency",
                        latency,
                        float(thresholds["high_latency"]),
                        name,
                        endpoint_id=endpoint.id,
                        mitigation_action="reweigh",
                        raised_at=now,
                    )
                )
        return alerts

    def apply_auto_mitigation(self, alert: Alert) -> bool:
        """Carries out ``alert.mitigation_action`` on its endpoint: ``open_breaker``
        opens the breaker, ``eject`` ejects (within the ejection cap), ``reweigh``
        de-weights. Returns whether anything changed."""
        action = alert.mitigation_action
        if action is None:
            raise ValueError(f"alert {alert.metric!r} has no automatic mitigation")
        if action not in MITIGATIONS:
            raise ValueError(f"unknown mitigation {action!r}; known: {sorted(MITIGATIONS)}")
        router = self.routers.get(alert.router)
        if router is None:
            raise KeyError(f"alert names unknown router {alert.router!r}")
        if alert.endpoint_id is None or alert.endpoint_id not in router.pool:
            raise KeyError(f"alert names unknown endpoint {alert.endpoint_id!r}")
        endpoint_id = alert.endpoint_id
        applied: bool
        if action == "open_breaker":
            breaker = getattr(router, "breaker", None)
            if breaker is None:
                raise ValueError(f"router {alert.router!r} has no circuit breaker")
            was_open = breaker.state(endpoint_id).value == "open"
            breaker.force_open(endpoint_id)
            applied = not was_open
        elif action == "eject":
            detector = getattr(router, "outlier_detector", None)
            if detector is None:
                raise ValueError(f"router {alert.router!r} has no outlier detection")
            applied = bool(detector.eject(endpoint_id))
        else:
            applied = endpoint_id not in router.deweighted
            router.deweight(endpoint_id)
        if applied:
            self.mitigations_applied.append(alert)
        return applied

    # Analysis ---------------------------------------------------------------------------

    def analyze_load_balancing_effectiveness(
        self, time_window: str | float = "1h", include_predictions: bool = True
    ) -> dict[str, Any]:
        """How well load was spread over ``time_window`` (e.g. "1h", "30min", 600):

        - ``distribution_efficiency``: the tier-weighted Jain score in [0, 1];
        - ``resource_utilization``: busy capacity-seconds (latency x cost of every
          completed request) over capacity x window, in [0, 1] for a fleet that
          never exceeds its capacity;
        - ``response_time_variance``: the squared coefficient of variation of
          latency (variance over mean squared; 0 = every request alike);
        - ``improvement_potential``: 1 - distribution_efficiency, the share of
          fairness a perfect spread would add.

        With ``include_predictions``, routers that forecast load (``predict_load``)
        add their forecast under ``predictions``.
        """
        seconds = parse_duration(time_window, "time_window")
        recent = self._recent(seconds)
        completions = [c for per_router in recent.values() for c in per_router]
        score, _, _ = self._balance(recent)
        capacity = sum(r.pool.total_capacity for r in self.routers.values())
        now = self._clock()
        observed = min(
            seconds,
            max((now - r.metrics.started_at for r in self.routers.values()), default=0.0),
        )
        busy = sum(c.latency_ms / 1000.0 * c.cost for c in completions)
        utilisation = busy / (capacity * observed) if capacity and observed > 0 else 0.0
        latencies = [c.latency_ms for c in completions]
        mean = sum(latencies) / len(latencies) if latencies else 0.0
        variance = sum((x - mean) ** 2 for x in latencies) / len(latencies) if latencies else 0.0
        analysis: dict[str, Any] = {
            "window_seconds": seconds,
            "requests": len(completions),
            "distribution_efficiency": score,
            "resource_utilization": utilisation,
            "response_time_variance": variance / (mean * mean) if mean > 0 else 0.0,
            "improvement_potential": 1.0 - score,
        }
        if include_predictions:
            analysis["predictions"] = {
                name: router.predict_load()  # type: ignore[attr-defined]
                for name, router in self.routers.items()
                if callable(getattr(router, "predict_load", None))
            }
        return analysis
