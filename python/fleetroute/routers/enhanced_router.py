"""``EnhancedRouter``: ``BaseRouter`` plus seed 000's advanced features.

Each feature is a stage, enabled by name in ``features=[...]``:

- ``rate_limiting`` (admit): :class:`TieredRateLimiter`, global and per user and tier;
- ``request_prioritization`` (admit): :class:`LoadShedder`, lowest class shed first,
  ``priority_boost`` raises a request one class;
- ``intelligent_caching`` (admit): :class:`ResponseCache`, opt-in per request;
- ``circuit_breaker`` (candidates): :class:`CircuitBreaker` per endpoint;
- ``outlier_detection`` (candidates): :class:`OutlierDetector`, Envoy's ejection;
- ``health_checks`` (candidates): :class:`HealthChecker` on endpoints with a ``url``;
- ``anomaly_detection`` (observe): :class:`AnomalyDetector`; an anomalous endpoint is
  de-weighted, tried after the rest of its tier, and raises an alert.

Out-of-service endpoints are unroutable in the Rust registry, so none of this costs
a per-endpoint loop on a request; the time-driven transitions (breaker recovery,
ejection expiry, anomaly evaluation) are polled with one comparison per request.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleetroute.admission.priority import LoadShedder
from fleetroute.admission.rate_limit import TieredRateLimiter
from fleetroute.admission.response_cache import ResponseCache
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.resilience.anomaly_detection import AnomalyDetector
from fleetroute.resilience.availability import Unavailable
from fleetroute.resilience.circuit_breaker import CircuitBreaker
from fleetroute.resilience.health_check import HealthChecker
from fleetroute.resilience.outlier_detection import Ejection, OutlierDetector
from fleetroute.resilience.retry import RetryPolicy
from fleetroute.routers.alert import Alert
from fleetroute.routers.base_router import BaseRouter, request_class
from fleetroute.routers.endpoint import Endpoint
from fleetroute.routers.routing_result import RoutingResult

if TYPE_CHECKING:
    # JAX loads only when an expert system is used, not with every router.
    from fleetroute.moe.dynamic_moe import DynamicMoE, ExpertRoutingResult

__all__ = ["DEFAULT_FEATURES", "DEFAULT_MAX_OPEN_PERCENT", "FEATURES", "EnhancedRouter"]

_log = logging.getLogger("fleetroute.enhanced_router")

#: Enabled when ``features`` is not given: seed 000's five, and outlier ejection.
DEFAULT_FEATURES = (
    "circuit_breaker",
    "rate_limiting",
    "request_prioritization",
    "intelligent_caching",
    "anomaly_detection",
    "outlier_detection",
)

#: Every feature name ``EnhancedRouter`` knows.
FEATURES = frozenset({*DEFAULT_FEATURES, "health_checks"})

# Seed 000's circuit_breaker config is in milliseconds; these keys are converted.
_BREAKER_MS_KEYS = {
    "timeout_threshold": "timeout_threshold",
    "recovery_timeout": "recovery_timeout",
}
_BREAKER_KEYS = frozenset(
    {
        "max_open_percent",
        "failure_threshold",
        "timeout_threshold",
        "recovery_timeout",
        "half_open_max_calls",
        "automatic_recovery",
        "failure_rate_threshold",
        "window_size",
        "minimum_calls",
    }
)
_SEED_BREAKER_DEFAULTS: Mapping[str, Any] = {
    "failure_threshold": 5,
    "timeout_threshold": 10_000,
    "recovery_timeout": 30_000,
    "half_open_max_calls": 3,
    "automatic_recovery": True,
}
#: At most this share of a tier is taken out of service by open circuits; beyond it
#: a tripped endpoint keeps serving (one may always be taken out). Without a cap, a
#: brown-out that fails a share of every endpoint's calls opens every breaker and
#: turns partial failure into an outage (Envoy's panic threshold answers the same).
DEFAULT_MAX_OPEN_PERCENT = 50.0
_ANOMALY_ROUTER_KEYS = frozenset({"interval", "deweight_factor"})


def _only_keys(what: str, config: Mapping[str, Any], known: Iterable[str]) -> None:
    if not isinstance(config, Mapping):
        raise ValueError(f"{what} config must be a mapping (got {config!r})")
    unknown = set(config) - set(known)
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {sorted(unknown)}; known: {sorted(known)}")


class EnhancedRouter(BaseRouter):
    """A router with circuit breakers, rate limits, priorities, caching, ejection,
    health checks and anomaly detection, each enabled by name."""

    def __init__(
        self,
        features: Iterable[str] | None = None,
        multi_objective_optimization: bool = False,
        real_time_analytics: bool = True,
        *,
        tpu_config: Mapping[str, Any] | None = None,
        strategy: str = "p2c",
        priority_reserve: float = 0.1,
        default_latency_ms: float = 100.0,
        seed: int | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Clock = monotonic_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str | None = None,
        expert_system: DynamicMoE | None = None,
        expert_routing: bool | None = None,
        load_aware_expert_selection: bool = True,
    ) -> None:
        if expert_system is not None and not callable(getattr(expert_system, "route", None)):
            raise ValueError(f"expert_system must be a DynamicMoE (got {expert_system!r})")
        self.expert_system = expert_system
        self.expert_routing = (
            expert_system is not None if expert_routing is None else expert_routing
        )
        if self.expert_routing and expert_system is None:
            raise ValueError("expert_routing needs an expert_system")
        self.load_aware_expert_selection = bool(load_aware_expert_selection)
        chosen = list(DEFAULT_FEATURES if features is None else features)
        for feature in chosen:
            if feature not in FEATURES:
                raise ValueError(f"unknown feature {feature!r}; known: {sorted(FEATURES)}")
        if not isinstance(multi_objective_optimization, bool) or not isinstance(
            real_time_analytics, bool
        ):
            raise ValueError("multi_objective_optimization and real_time_analytics must be bools")
        super().__init__(
            tpu_config,
            monitoring_enabled=real_time_analytics,
            strategy=strategy,
            priority_reserve=priority_reserve,
            default_latency_ms=default_latency_ms,
            seed=seed,
            retry_policy=retry_policy,
            clock=clock,
            sleep=sleep,
            name=name,
        )
        self.features = frozenset(chosen)
        self.multi_objective_optimization = multi_objective_optimization
        self.real_time_analytics = real_time_analytics
        self.alerts: deque[Alert] = deque(maxlen=1000)
        self.breaker: CircuitBreaker | None = None
        self.rate_limiter: TieredRateLimiter | None = None
        self.shedder: LoadShedder | None = None
        self.cache: ResponseCache | None = None
        self.anomaly_detector: AnomalyDetector | None = None
        self.outlier_detector: OutlierDetector | None = None
        self.health_checker: HealthChecker | None = None
        self._breaker_blocked: set[str] = set()
        self.max_open_percent = DEFAULT_MAX_OPEN_PERCENT
        #: Breaker openings that left the endpoint in service because of the cap.
        self.breaker_cap_hits = 0
        self._anomaly_interval = 10.0
        self._deweight_factor = 0.25
        self._next_anomaly_check = math.inf
        self._next_poll = -math.inf
        self._health_task: asyncio.Task[None] | None = None
        if "circuit_breaker" in self.features:
            self._install_breaker(dict(_SEED_BREAKER_DEFAULTS))
        if "rate_limiting" in self.features:
            self.rate_limiter = TieredRateLimiter(clock=clock)
        if "request_prioritization" in self.features:
            self.shedder = LoadShedder()
        if "intelligent_caching" in self.features:
            self.cache = ResponseCache(clock=clock)
        if "anomaly_detection" in self.features:
            self._install_anomaly_detector({})
        if "outlier_detection" in self.features:
            self._install_outlier_detector({})
        if "health_checks" in self.features:
            self._install_health_checker({})

    # Configuration ----------------------------------------------------------------------

    def configure_advanced_features(
        self,
        circuit_breaker: Mapping[str, Any] | None = None,
        rate_limiting: Mapping[str, Any] | None = None,
        request_prioritization: Mapping[str, Any] | None = None,
        intelligent_caching: Mapping[str, Any] | None = None,
        anomaly_detection: Mapping[str, Any] | None = None,
        outlier_detection: Mapping[str, Any] | None = None,
        health_checks: Mapping[str, Any] | None = None,
    ) -> None:
        """Replaces the named features' settings. Seed 000's ``circuit_breaker``
        times are milliseconds; every other time is seconds. Everything is
        validated before anything changes."""
        given = {
            "circuit_breaker": circuit_breaker,
            "rate_limiting": rate_limiting,
            "request_prioritization": request_prioritization,
            "intelligent_caching": intelligent_caching,
            "anomaly_detection": anomaly_detection,
            "outlier_detection": outlier_detection,
            "health_checks": health_checks,
        }
        for feature, config in given.items():
            if config is not None and feature not in self.features:
                raise ValueError(
                    f"feature {feature!r} is not enabled; add it to EnhancedRouter(features=[...])"
                )
        # Build every replacement first, so a bad setting changes nothing.
        built: dict[str, Any] = {}
        if circuit_breaker is not None:
            _only_keys("circuit_breaker", circuit_breaker, _BREAKER_KEYS)
            built["circuit_breaker"] = self._breaker_from(
                {**_SEED_BREAKER_DEFAULTS, **circuit_breaker}
            )
        if rate_limiting is not None:
            built["rate_limiting"] = TieredRateLimiter.from_config(rate_limiting, clock=self._clock)
        if request_prioritization is not None:
            _only_keys("request_prioritization", request_prioritization, {"shed_thresholds"})
            built["request_prioritization"] = LoadShedder(
                request_prioritization.get("shed_thresholds")
            )
        if intelligent_caching is not None:
            _only_keys(
                "intelligent_caching", intelligent_caching, {"max_entries", "ttl", "ignored_fields"}
            )
            built["intelligent_caching"] = ResponseCache(**intelligent_caching, clock=self._clock)
        if anomaly_detection is not None:
            _only_keys(
                "anomaly_detection",
                anomaly_detection,
                _ANOMALY_ROUTER_KEYS
                | {
                    "window",
                    "threshold",
                    "min_samples",
                    "min_endpoints",
                    "min_error_rate_delta",
                    "min_latency_ratio",
                },
            )
            built["anomaly_detection"] = self._anomaly_from(anomaly_detection)
        if outlier_detection is not None:
            built["outlier_detection"] = self._outlier_from(outlier_detection)
        if health_checks is not None:
            built["health_checks"] = self._health_from(health_checks)
        if "circuit_breaker" in built:
            self._swap_breaker(*built["circuit_breaker"])
        if "rate_limiting" in built:
            self.rate_limiter = built["rate_limiting"]
        if "request_prioritization" in built:
            self.shedder = built["request_prioritization"]
        if "intelligent_caching" in built:
            self.cache = built["intelligent_caching"]
        if "anomaly_detection" in built:
            detector, interval, factor = built["anomaly_detection"]
            self._set_anomaly_detector(detector, interval, factor)
        if "outlier_detection" in built:
            self._swap_outlier_detector(built["outlier_detection"])
        if "health_checks" in built:
            self._swap_health_checker(built["health_checks"])
        self._next_poll = -math.inf

    def _breaker_from(self, config: Mapping[str, Any]) -> tuple[CircuitBreaker, float]:
        settings = dict(config)
        cap = settings.pop("max_open_percent", DEFAULT_MAX_OPEN_PERCENT)
        if not (isinstance(cap, int | float) and not isinstance(cap, bool) and 0 <= cap <= 100):
            raise ValueError(f"circuit_breaker max_open_percent must be in [0, 100] (got {cap!r})")
        for key in _BREAKER_MS_KEYS:
            value = settings.get(key)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"circuit_breaker {key} must be milliseconds (got {value!r})")
                settings[key] = value / 1000.0
        breaker = CircuitBreaker(clock=self._clock, **settings)
        breaker.add_availability_listener(self._on_breaker_availability)
        return breaker, float(cap)

    def _install_breaker(self, config: Mapping[str, Any]) -> None:
        self._swap_breaker(*self._breaker_from(config))

    def _swap_breaker(self, breaker: CircuitBreaker, max_open_percent: float) -> None:
        for endpoint_id in list(self._breaker_blocked):
            self.pool.availability.include(endpoint_id, Unavailable.CIRCUIT_OPEN)
        self._breaker_blocked.clear()
        self.breaker = breaker
        self.max_open_percent = max_open_percent

    def _on_breaker_availability(self, endpoint_id: str, available: bool) -> None:
        self._next_poll = -math.inf  # a new recovery deadline may now be the earliest
        pool = self.pool
        if endpoint_id not in pool:
            return
        if available:
            self._breaker_blocked.discard(endpoint_id)
            pool.availability.include(endpoint_id, Unavailable.CIRCUIT_OPEN)
            return
        tier = pool.get(endpoint_id).priority
        members = sum(1 for e in pool.endpoints() if e.priority == tier)
        blocked = sum(1 for e in self._breaker_blocked if pool.get(e).priority == tier)
        if blocked and (blocked + 1) * 100 > self.max_open_percent * members:
            self.breaker_cap_hits += 1
            _log.warning(
                "circuit open for %s but %d of %d endpoints of tier %d are already out "
                "(max_open_percent %.0f): it stays in service",
                endpoint_id,
                blocked,
                members,
                tier,
                self.max_open_percent,
            )
            return
        self._breaker_blocked.add(endpoint_id)
        pool.availability.exclude(endpoint_id, Unavailable.CIRCUIT_OPEN)

    def _anomaly_from(self, config: Mapping[str, Any]) -> tuple[AnomalyDetector, float, float]:
        settings = dict(config)
        interval = settings.pop("interval", 10.0)
        factor = settings.pop("deweight_factor", 0.25)
        if not (isinstance(interval, int | float) and math.isfinite(interval) and interval > 0):
            raise ValueError(
                f"anomaly_detection interval must be finite and > 0 (got {interval!r})"
            )
        if not (isinstance(factor, int | float) and 0 < factor <= 1):
            raise ValueError(
                f"anomaly_detection deweight_factor must be in (0, 1] (got {factor!r})"
            )
        return AnomalyDetector(clock=self._clock, **settings), float(interval), float(factor)

    def _install_anomaly_detector(self, config: Mapping[str, Any]) -> None:
        self._set_anomaly_detector(*self._anomaly_from(config))

    def _set_anomaly_detector(
        self, detector: AnomalyDetector, interval: float, factor: float
    ) -> None:
        if self.anomaly_detector is not None:
            for endpoint_id in self.anomaly_detector.anomalous() & self.deweighted:
                self.restore_weight(endpoint_id)
        self.anomaly_detector = detector
        self._anomaly_interval = interval
        self._deweight_factor = factor
        self._next_anomaly_check = self._clock() + interval
        self._next_poll = -math.inf

    def _outlier_from(self, config: Mapping[str, Any]) -> OutlierDetector:
        if not isinstance(config, Mapping):
            raise ValueError(f"outlier_detection config must be a mapping (got {config!r})")
        return OutlierDetector(
            clock=self._clock, on_eject=self._on_eject, on_restore=self._on_restore, **config
        )

    def _install_outlier_detector(self, config: Mapping[str, Any]) -> None:
        self._swap_outlier_detector(self._outlier_from(config))

    def _swap_outlier_detector(self, detector: OutlierDetector) -> None:
        if self.outlier_detector is not None:
            for endpoint_id in self.outlier_detector.ejected():
                if endpoint_id in self.pool:
                    self.pool.availability.include(endpoint_id, Unavailable.EJECTED)
        for endpoint in self.pool.endpoints():
            detector.add_endpoint(endpoint.id)
        self.outlier_detector = detector

    def _on_eject(self, endpoint_id: str, ejection: Ejection) -> None:
        self._next_poll = -math.inf  # its expiry may now be the earliest deadline
        if endpoint_id in self.pool:
            self.pool.availability.exclude(endpoint_id, Unavailable.EJECTED)

    def _on_restore(self, endpoint_id: str) -> None:
        if endpoint_id in self.pool:
            self.pool.availability.include(endpoint_id, Unavailable.EJECTED)

    def _health_from(self, config: Mapping[str, Any]) -> HealthChecker:
        if not isinstance(config, Mapping):
            raise ValueError(f"health_checks config must be a mapping (got {config!r})")
        return HealthChecker(clock=self._clock, on_change=self._on_health_change, **config)

    def _install_health_checker(self, config: Mapping[str, Any]) -> None:
        self._swap_health_checker(self._health_from(config))

    def _swap_health_checker(self, checker: HealthChecker) -> None:
        if self.health_checker is not None:
            for status in self.health_checker.statuses():
                if status.endpoint_id in self.pool:
                    self.pool.availability.include(
                        status.endpoint_id, Unavailable.HEALTH_CHECK_FAILED
                    )
        for endpoint in self.pool.endpoints():
            if endpoint.url is not None:
                checker.add_target(endpoint.id, endpoint.url)
        self.health_checker = checker

    def _on_health_change(self, endpoint_id: str, healthy: bool) -> None:
        if endpoint_id in self.pool:
            self.pool.availability.set(endpoint_id, Unavailable.HEALTH_CHECK_FAILED, not healthy)

    async def run_health_checks(self, stop: asyncio.Event | None = None) -> None:
        """Runs the active health checks until ``stop`` is set (feature ``health_checks``)."""
        if self.health_checker is None:
            raise ValueError("feature 'health_checks' is not enabled")
        await self.health_checker.run(stop)

    # Registration hooks -----------------------------------------------------------------

    def _on_register(self, endpoint: Endpoint) -> None:
        if self.outlier_detector is not None:
            self.outlier_detector.add_endpoint(endpoint.id)
        if self.health_checker is not None and endpoint.url is not None:
            self.health_checker.add_target(endpoint.id, endpoint.url)

    def _on_remove(self, endpoint_id: str) -> None:
        super()._on_remove(endpoint_id)
        if self.breaker is not None:
            self.breaker.forget(endpoint_id)
        self._breaker_blocked.discard(endpoint_id)
        if self.outlier_detector is not None and endpoint_id in self.outlier_detector:
            self.outlier_detector.remove_endpoint(endpoint_id)
        if self.anomaly_detector is not None and self.anomaly_detector.sample_count(endpoint_id):
            self.anomaly_detector.forget(endpoint_id)
        if self.health_checker is not None and endpoint_id in self._health_targets():
            self.health_checker.remove_target(endpoint_id)

    def _health_targets(self) -> set[str]:
        checker = self.health_checker
        return set() if checker is None else {s.endpoint_id for s in checker.statuses()}

    # Routing ----------------------------------------------------------------------------

    def route_with_intelligence(
        self,
        request: Mapping[str, Any],
        user_tier: str | None = None,
        enable_caching: bool = False,
        priority_boost: bool = False,
        *,
        user: str | None = None,
        consider_load: bool = True,
        enable_fallback: bool | None = None,
        return_metrics: bool = False,
    ) -> RoutingResult:
        """Admits and routes ``request``: a cached response (``enable_caching``), a
        rate-limit refusal with ``retry_after`` (seconds), a shed refusal, or a
        placement (which holds load until ``complete``). ``user`` defaults to the
        request's ``user`` or ``user_id`` field."""
        cost, priority = request_class(request)
        if priority_boost:
            priority = priority.boosted()
        fallback = (
            self._default_fallback if enable_fallback is None else self._fallback(enable_fallback)
        )
        now = self._clock()
        if now >= self._next_poll:
            self._poll(now)
        cache_key = None
        if enable_caching:
            if self.cache is None:
                raise ValueError("enable_caching needs the 'intelligent_caching' feature")
            cache_key = self.cache.key_for(request)
            cached = self.cache.get_by_key(cache_key)
            if cached is not None:
                if self.monitoring_enabled:
                    self.metrics.record_refused("cache_hit")
                return RoutingResult(
                    None, priority=priority, cost=cost, cached_response=cached, user_tier=user_tier
                )
        limiter = self.rate_limiter
        if limiter is not None:
            if user is None:
                found = request.get("user") or request.get("user_id")
                user = None if found is None else str(found)
            decision = limiter.check(user, user_tier, 1, now)
            if not decision.allowed:
                if self.monitoring_enabled:
                    self.metrics.record_refused("rate_limited")
                return RoutingResult(
                    None,
                    priority=priority,
                    cost=cost,
                    rate_limited=True,
                    retry_after=decision.retry_after,
                    user_tier=user_tier,
                )
        elif user_tier is not None and not isinstance(user_tier, str):
            raise ValueError(f"user_tier must be a tier name (got {user_tier!r})")
        shedder = self.shedder
        pool = self.pool
        if (
            shedder is not None
            and pool.in_flight >= shedder.lowest_threshold * pool.total_capacity
            and not shedder.admit(priority, pool.utilisation)
        ):
            if self.monitoring_enabled:
                self.metrics.record_refused("shed")
            return RoutingResult(None, priority=priority, cost=cost, shed=True, user_tier=user_tier)
        result = self._route(cost, priority, now, consider_load, fallback, return_metrics)
        result.user_tier = user_tier
        result.cache_key = cache_key
        return self._finish_route(result)

    def route_to_expert(
        self,
        request: Mapping[str, Any],
        required_expertise: Sequence[str] = (),
        quality_requirements: Mapping[str, float] | None = None,
        top_k: int | None = None,
    ) -> ExpertRoutingResult:
        """Seed 000's expert routing: the ``expert_system`` chooses the experts (load
        aware when ``load_aware_expert_selection``), and when endpoints are registered
        the request is also placed on one (``result.endpoint``, a ``RoutingResult``
        that holds load until ``complete``)."""
        if not self.expert_routing or self.expert_system is None:
            raise ValueError("expert routing is off: pass expert_system= (and expert_routing=True)")
        result = self.expert_system.route(
            request,
            required_expertise,
            quality_requirements,
            top_k,
            load_aware=self.load_aware_expert_selection,
        )
        if len(self.pool):
            result.endpoint = self.route_with_intelligence(request)
        return result

    def _poll(self, now: float) -> None:
        """Runs the time-driven transitions that are due: breaker recoveries, ejection
        expiries and interval ends, the periodic anomaly evaluation."""
        if self.breaker is not None:
            self.breaker.poll()
        if self.outlier_detector is not None:
            self.outlier_detector.poll()
        if now >= self._next_anomaly_check:
            self.evaluate_anomalies()
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        """The earliest time a time-driven transition may be due."""
        due = self._next_anomaly_check
        if self.breaker is not None:
            due = min(due, self.breaker.next_recovery)
        if self.outlier_detector is not None:
            due = min(due, self.outlier_detector.next_event)
        self._next_poll = due

    def _finish_route(self, result: RoutingResult) -> RoutingResult:
        """After a placement: a half-open endpoint's trial slot is taken, and a
        fallback (or refusal) caused by open circuits on the first tier is flagged."""
        breaker = self.breaker
        endpoint_id = result.endpoint_id
        if breaker is not None and breaker.half_open and endpoint_id in breaker.half_open:
            breaker.try_acquire(endpoint_id)
        if self._breaker_blocked and (result.fallback_used or result.no_capacity):
            tiers = self.pool.tier_priorities
            first_tier = tiers[0] if tiers else None
            result.circuit_breaker_open = any(
                self.pool.get(e).priority == first_tier for e in self._breaker_blocked
            )
        return result

    def _first_attempt(
        self, request: Mapping[str, Any], options: Mapping[str, Any]
    ) -> RoutingResult:
        return self.route_with_intelligence(request, **options)

    def _retry_attempt(self, first: RoutingResult, exclude: tuple[int, ...]) -> RoutingResult:
        now = self._clock()
        if now >= self._next_poll:
            self._poll(now)
        result = self._route(
            first.cost, first.priority, now, first.consider_load, first.fallback, exclude=exclude
        )
        result.cache_key = first.cache_key
        result.user_tier = first.user_tier
        return self._finish_route(result)

    # Observe ----------------------------------------------------------------------------

    def _observe(
        self,
        result: RoutingResult,
        success: bool,
        latency_ms: float,
        response: Any,
        error: BaseException | None,
        now: float,
    ) -> None:
        endpoint_id: str = result.endpoint_id  # type: ignore[assignment]
        latency = latency_ms / 1000.0
        breaker = self.breaker
        if breaker is not None:
            breaker.record_result(endpoint_id, success, latency)
            if breaker.next_recovery < self._next_poll:
                self._next_poll = breaker.next_recovery
        detector = self.outlier_detector
        if detector is not None:
            detector.record(endpoint_id, success, now)
            if detector.next_event < self._next_poll:
                self._next_poll = detector.next_event
        if self.anomaly_detector is not None:
            self.anomaly_detector.observe(endpoint_id, latency, success)
        cache = self.cache
        if success and result.cache_key is not None and response is not None and cache is not None:
            cache.put_by_key(result.cache_key, response)

    def _on_abandon(self, result: RoutingResult) -> None:
        breaker = self.breaker
        if breaker is not None and result.endpoint_id in breaker.half_open:
            breaker.cancel(result.endpoint_id)

    def evaluate_anomalies(self) -> list[Alert]:
        """Re-evaluates anomalies now: newly anomalous endpoints are de-weighted and
        deprioritised and raise an alert; recovered ones get their weight back."""
        detector = self.anomaly_detector
        now = self._clock()
        self._next_anomaly_check = now + self._anomaly_interval if detector else math.inf
        if detector is None:
            return []
        anomalies = detector.evaluate()
        became, recovered = detector.last_changes
        for endpoint_id in recovered & self.deweighted:
            self.restore_weight(endpoint_id)
        for endpoint_id in became:
            if endpoint_id in self.pool:
                self.deweight(endpoint_id, self._deweight_factor)
        raised = [
            Alert(
                severity="warning",
                message=(
                    f"{a.endpoint_id}: {a.metric} {a.value:.4g} against fleet median "
                    f"{a.baseline:.4g} (robust z {a.score:.1f})"
                ),
                metric=f"anomaly_{a.metric}",
                value=a.value,
                threshold=a.baseline,
                router=self.name,
                endpoint_id=a.endpoint_id,
                mitigation_action="eject" if self.outlier_detector is not None else None,
                raised_at=now,
            )
            for a in anomalies
            if a.endpoint_id in became
        ]
        self.alerts.extend(raised)
        return raised

    # Reading ----------------------------------------------------------------------------

    @property
    def circuit_breaker_activations(self) -> int:
        return 0 if self.breaker is None else self.breaker.activations

    def endpoint_status(self, endpoint_id: str) -> str:
        """``healthy``, ``degraded`` (anomalous), ``half_open``, ``open``,
        ``ejected``, ``unhealthy`` or ``drained``."""
        reasons, deprioritised = self.pool.status(endpoint_id)
        if reasons & Unavailable.DRAINED:
            return "drained"
        if reasons & Unavailable.HEALTH_CHECK_FAILED:
            return "unhealthy"
        if reasons & Unavailable.EJECTED:
            return "ejected"
        if self.breaker is not None:
            state = self.breaker.state(endpoint_id).value
            if state != "closed":
                return state
        return "degraded" if deprioritised else "healthy"
