"""``BaseRouter``: seed 000's router with fallback tiers, over the Rust core.

It composes the stages: the endpoint pool (candidates and pick, in Rust), the
availability flags (who is out of service), the observe stage (latency EWMA and
``RouterMetrics``) and the dispatch loop (``call``: pick, call, observe, retry along
the fallback chain). ``EnhancedRouter`` adds admission and resilience policies to
the same composition.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from fleetroute.admission.priority import (
    NATIVE_PRIORITY,
    PRIORITY_BY_VALUE,
    Priority,
    parse_priority,
)
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.resilience.availability import Unavailable
from fleetroute.resilience.retry import RetryPolicy, is_retryable
from fleetroute.routers.endpoint import Endpoint
from fleetroute.routers.endpoint_pool import EndpointPool
from fleetroute.routers.load_balancing import LoadBalancingConfig
from fleetroute.routers.router_metrics import RouterMetrics
from fleetroute.routers.routing_result import RoutingResult
from fleetroute.validation import non_negative_number

__all__ = ["TPU_CONFIG_DEFAULTS", "BaseRouter", "NoEndpointAvailable"]

T = TypeVar("T")

#: Seed 000's ``tpu_config`` keys and their defaults. ``enable_fallback`` is the
#: default of ``route_request(enable_fallback=...)``; ``latency_threshold_ms`` is the
#: latency above which ``RouterMonitor`` calls an endpoint slow; ``mesh_shape``,
#: ``memory_threshold_gb`` and ``fallback_device`` describe the deployment (the
#: fallback order itself is the endpoints' ``priority`` tiers).
TPU_CONFIG_DEFAULTS: Mapping[str, Any] = {
    "mesh_shape": (8, 4),
    "memory_threshold_gb": 30.0,
    "latency_threshold_ms": 500.0,
    "enable_fallback": True,
    "fallback_device": "cpu",
}


class NoEndpointAvailable(RuntimeError):
    """``call`` found no endpoint for the request; ``result`` says why."""

    def __init__(self, result: RoutingResult) -> None:
        if result.rate_limited:
            why = f"rate limited, retry after {result.retry_after:.3f} s"
        elif result.shed:
            why = f"shed under overload (priority {result.priority.name.lower()})"
        elif result.circuit_breaker_open:
            why = "no capacity: open circuits on the preferred endpoints"
        else:
            why = "no endpoint has capacity"
        super().__init__(why)
        self.result = result


def _validate_tpu_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(TPU_CONFIG_DEFAULTS)
    if config is None:
        return merged
    unknown = set(config) - set(TPU_CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown tpu_config key(s) {sorted(unknown)}; known: {sorted(TPU_CONFIG_DEFAULTS)}"
        )
    merged.update(config)
    shape = merged["mesh_shape"]
    if not (
        isinstance(shape, tuple | list)
        and len(shape) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise ValueError(f"tpu_config mesh_shape must be two positive ints (got {shape!r})")
    merged["mesh_shape"] = tuple(shape)
    for key in ("memory_threshold_gb", "latency_threshold_ms"):
        value = merged[key]
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"tpu_config {key} must be finite and > 0 (got {value!r})")
    if not isinstance(merged["enable_fallback"], bool):
        raise ValueError(
            f"tpu_config enable_fallback must be a bool (got {merged['enable_fallback']!r})"
        )
    if merged["fallback_device"] is not None and not isinstance(merged["fallback_device"], str):
        raise ValueError(
            f"tpu_config fallback_device must be a device name (got {merged['fallback_device']!r})"
        )
    return merged


def request_class(request: Mapping[str, Any]) -> tuple[int, Priority]:
    """A request's cost and priority, validated; the common values cost no parsing."""
    if request.__class__ is not dict and not isinstance(request, Mapping):
        raise ValueError(f"request must be a mapping (got {type(request).__name__})")
    cost = request.get("cost", 1)
    if cost.__class__ is not int or cost < 1:
        cost = request_cost(request)
    value = request.get("priority")
    try:
        return cost, PRIORITY_BY_VALUE[value]
    except (KeyError, TypeError):
        return cost, parse_priority(value)


def request_cost(request: Mapping[str, Any]) -> int:
    """The load units a request holds: its ``cost`` field, 1 by default."""
    cost = request.get("cost", 1)
    if cost.__class__ is int and cost >= 1:
        return cost
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"request cost must be an integer >= 1 (got {cost!r})")
    return cost


class BaseRouter:
    """Routes requests to registered endpoints, preferred tier first."""

    #: What placed requests are described with (routers that record more, subclass it).
    _result_type: ClassVar[type[RoutingResult]] = RoutingResult

    def __init__(
        self,
        tpu_config: Mapping[str, Any] | None = None,
        monitoring_enabled: bool = True,
        automatic_scaling: bool = False,
        *,
        strategy: str = "p2c",
        priority_reserve: float = 0.1,
        default_latency_ms: float = 100.0,
        latency_alpha: float = 0.1,
        seed: int | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Clock = monotonic_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str | None = None,
    ) -> None:
        self.tpu_config = _validate_tpu_config(tpu_config)
        self._default_fallback: bool = self.tpu_config["enable_fallback"]
        if not isinstance(monitoring_enabled, bool) or not isinstance(automatic_scaling, bool):
            raise ValueError("monitoring_enabled and automatic_scaling must be bools")
        self.monitoring_enabled = monitoring_enabled
        self.automatic_scaling = automatic_scaling
        self.name = name or type(self).__name__
        self.pool = EndpointPool(
            strategy=strategy,
            priority_reserve=priority_reserve,
            seed=seed,
            default_latency_ms=default_latency_ms,
            latency_alpha=latency_alpha,
        )
        self.metrics = RouterMetrics(clock=clock)
        self.retry_policy = retry_policy or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._deweighted: set[str] = set()
        self.load_balancing: LoadBalancingConfig | None = None
        self._next_rebalance = math.inf

    # Registration -----------------------------------------------------------------------

    def register_endpoints(
        self, endpoints: Iterable[Mapping[str, Any] | Endpoint]
    ) -> list[Endpoint]:
        """Registers endpoints given as seed 000 dicts or :class:`Endpoint`: all of
        them, or none when one is invalid or already registered."""
        parsed = [e if isinstance(e, Endpoint) else Endpoint.from_mapping(e) for e in endpoints]
        self.pool.add(parsed)
        for endpoint in parsed:
            self._on_register(endpoint)
        return parsed

    def remove_endpoint(self, endpoint_id: str) -> Endpoint:
        """Unregisters an endpoint (load in flight on it is forgotten)."""
        endpoint = self.pool.remove(endpoint_id)
        self._on_remove(endpoint_id)
        return endpoint

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.pool.endpoints()

    def set_endpoint_health(self, endpoint_id: str, healthy: bool) -> None:
        """Marks an endpoint up or down (an external health signal)."""
        self.pool.get(endpoint_id)
        self.pool.availability.set(endpoint_id, Unavailable.HEALTH_CHECK_FAILED, not healthy)

    def drain(self, endpoint_id: str, drained: bool = True) -> None:
        """Takes an endpoint out of service for maintenance (or puts it back)."""
        self.pool.get(endpoint_id)
        self.pool.availability.set(endpoint_id, Unavailable.DRAINED, drained)

    def deweight(self, endpoint_id: str, factor: float = 0.25) -> None:
        """De-weights an endpoint: its weight in the Rust registry is multiplied by
        ``factor`` (weighted strategies), and it is tried only after the rest of its
        tier (every strategy)."""
        endpoint = self.pool.get(endpoint_id)
        if not (isinstance(factor, int | float) and 0 < factor <= 1):
            raise ValueError(f"factor must be in (0, 1] (got {factor!r})")
        self.pool.reweigh(endpoint_id, endpoint.weight * factor)
        self._deweighted.add(endpoint_id)
        self.pool.set_deprioritised(self._deweighted)

    def restore_weight(self, endpoint_id: str) -> None:
        """Undoes :meth:`deweight`."""
        endpoint = self.pool.get(endpoint_id)
        self.pool.reweigh(endpoint_id, endpoint.weight)
        self._deweighted.discard(endpoint_id)
        self.pool.set_deprioritised(self._deweighted)

    @property
    def deweighted(self) -> frozenset[str]:
        return frozenset(self._deweighted)

    # Routing ----------------------------------------------------------------------------

    def route_request(
        self,
        request: Mapping[str, Any],
        consider_load: bool = True,
        enable_fallback: bool | None = None,
        return_metrics: bool = False,
    ) -> RoutingResult:
        """Places ``request`` on the preferred tier with room (the next tiers when
        ``enable_fallback``). With ``consider_load`` the strategy picks among the tier
        by load; without, the tier's endpoints are tried in registration order. The
        result holds load until ``complete(result)``."""
        cost, priority = request_class(request)
        return self._route(
            cost,
            priority,
            self._clock(),
            consider_load,
            self._default_fallback if enable_fallback is None else self._fallback(enable_fallback),
            return_metrics,
        )

    def _fallback(self, enable_fallback: bool | None) -> bool:
        if enable_fallback is None:
            return self._default_fallback
        if enable_fallback is not True and enable_fallback is not False:
            raise ValueError(f"enable_fallback must be a bool (got {enable_fallback!r})")
        return enable_fallback

    def _route(
        self,
        cost: int,
        priority: Priority,
        now: float,
        consider_load: bool = True,
        fallback: bool = True,
        return_metrics: bool = False,
        exclude: tuple[int, ...] = (),
    ) -> RoutingResult:
        if now >= self._next_rebalance:
            self._next_rebalance = now + self.load_balancing.adjustment_frequency  # type: ignore[union-attr]
            self.rebalance()
        pool = self.pool
        placement = pool.place(cost, NATIVE_PRIORITY[priority], consider_load, fallback, exclude)
        if placement is None:
            result = RoutingResult(None, priority=priority, cost=cost, no_capacity=True)
            result.consider_load = consider_load
            result.fallback = fallback
            if self.monitoring_enabled:
                self.metrics.record_refused("no_capacity")
            return result
        endpoint, native_id, tier_index = placement
        result = self._placed(
            endpoint, native_id, tier_index, cost, priority, now, consider_load, fallback
        )
        if return_metrics:
            result.metrics = {
                "tier_index": tier_index,
                "tiers": pool.tier_priorities,
                "endpoint_load": pool.native.load(native_id),
                "endpoint_capacity": endpoint.capacity,
                "fleet_utilisation": pool.utilisation,
                "strategy": pool.native.strategy,
            }
        return result

    def _placed(
        self,
        endpoint: Endpoint,
        native_id: int,
        tier_index: int,
        cost: int,
        priority: Priority,
        now: float,
        consider_load: bool = True,
        fallback: bool = True,
    ) -> RoutingResult:
        """The result of a request whose ``cost`` the pool placed on ``native_id``,
        counted in the metrics."""
        pool = self.pool
        result = self._result_type(
            endpoint.id,
            endpoint,
            pool.latency_by_native[native_id],
            1.0 - pool.native.load(native_id) / endpoint.capacity,
            endpoint.priority,
            tier_index > 0,
            priority,
            cost,
            now,
            native_id,
            consider_load,
            fallback,
        )
        if self.monitoring_enabled:
            metrics = self.metrics
            metrics.requests += 1
            metrics.routed += 1
            if tier_index:
                metrics.fallbacks += 1
        return result

    def configure_load_balancing(self, config: Mapping[str, Any]) -> LoadBalancingConfig:
        """Seed 000's load balancing settings (see ``fleetroute.routers.load_balancing``):
        ``algorithms.primary`` becomes the Rust strategy (refused while requests are in
        flight), and with ``dynamic_adjustment`` enabled the endpoints' weights follow
        the weighted signals every ``adjustment_frequency`` seconds."""
        parsed = LoadBalancingConfig.parse(config, self.pool.native.strategy)
        self.pool.set_strategy(parsed.primary)
        self.load_balancing = parsed
        self._balancing_weights: dict[str, float] = {}
        if parsed.enabled and not self._owns_weights():
            self.rebalance()
            self._next_rebalance = self._clock() + parsed.adjustment_frequency
        else:
            self._next_rebalance = math.inf
        return parsed

    def _owns_weights(self) -> bool:
        """True for routers that set endpoint weights themselves (learned weights)."""
        return False

    def rebalance(self) -> int:
        """Moves every endpoint's weight toward its load balancing score now; returns
        how many weights were written (those that changed by more than the
        sensitivity). Endpoints de-weighted by a mitigation keep their weight."""
        config = self.load_balancing
        if config is None:
            raise ValueError("configure_load_balancing has not been called")
        pool = self.pool
        w = config.weights
        by_tier: dict[int, list[Endpoint]] = {}
        for endpoint in pool.endpoints():
            by_tier.setdefault(endpoint.priority, []).append(endpoint)
        written = 0
        for members in by_tier.values():
            largest = max(e.capacity for e in members)
            latencies = {e.id: pool.latency_ms(e.id) for e in members}
            fastest = min(latencies.values())
            for endpoint in members:
                if endpoint.id in self._deweighted:
                    continue
                region = endpoint.metadata.get("region")
                score = (
                    w["endpoint_capacity"] * endpoint.capacity / largest
                    + w["current_load"] * max(0.0, 1.0 - pool.load(endpoint.id) / endpoint.capacity)
                    + w["historical_performance"] * fastest / latencies[endpoint.id]
                    + w["resource_availability"] * pool.availability.is_routable(endpoint.id)
                    + w["geographic_proximity"] * (config.region is None or region == config.region)
                )
                target = endpoint.weight * (0.05 + score)
                old = self._balancing_weights.get(endpoint.id, endpoint.weight)
                new = config.stability_factor * old + (1 - config.stability_factor) * target
                if (
                    abs(new - old) > config.sensitivity * old
                    or endpoint.id not in self._balancing_weights
                ):
                    pool.reweigh(endpoint.id, new)
                    self._balancing_weights[endpoint.id] = new
                    written += 1
        return written

    def endpoint_status(self, endpoint_id: str) -> str:
        """``healthy``, ``unhealthy`` or ``drained``."""
        reasons, _ = self.pool.status(endpoint_id)
        if reasons & Unavailable.DRAINED:
            return "drained"
        return "unhealthy" if reasons else "healthy"

    @property
    def circuit_breaker_activations(self) -> int:
        """Times a circuit opened (none without breakers)."""
        return 0

    # Completion -------------------------------------------------------------------------

    def complete(
        self,
        result: RoutingResult,
        *,
        success: bool = True,
        latency_ms: float | None = None,
        response: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Ends a routed request: returns its load and records its outcome. Latency
        defaults to the time since it was routed, on the router's clock."""
        if result.__class__ is not RoutingResult or result.completed:
            self._check_open(result)
        now = self._clock()
        if latency_ms is None:
            latency_ms = (now - result.started_at) * 1000.0
        elif not (latency_ms.__class__ is float and 0.0 <= latency_ms < math.inf):
            latency_ms = non_negative_number("latency_ms", latency_ms)
        if success is not True and success is not False:
            raise ValueError(f"success must be a bool (got {success!r})")
        result.completed = True
        endpoint_id = result.endpoint_id
        if endpoint_id is None:
            return
        pool = self.pool
        native_id = result.native_id
        pool.release(native_id, result.cost)
        pool.observe_latency(native_id, latency_ms)
        if self.monitoring_enabled:
            self.metrics.record_completion(endpoint_id, latency_ms, success, result.cost, now)
        self._observe(result, success, latency_ms, response, error, now)

    def abandon(self, result: RoutingResult) -> None:
        """Ends a routed request that never ran (cancelled): returns its load and
        records nothing against the endpoint."""
        self._check_open(result)
        result.completed = True
        if result.endpoint_id is not None:
            self.pool.release(result.native_id, result.cost)
            self._on_abandon(result)

    @staticmethod
    def _check_open(result: RoutingResult) -> None:
        if not isinstance(result, RoutingResult):
            raise ValueError(f"expected a RoutingResult (got {type(result).__name__})")
        if result.completed:
            raise ValueError(f"request on {result.endpoint_id!r} was already completed")

    # Dispatch ---------------------------------------------------------------------------

    async def call(
        self,
        request: Mapping[str, Any],
        fn: Callable[[Endpoint], Awaitable[T]],
        *,
        max_retries: int | None = None,
        attempt_timeout: float | None = None,
        **route_options: Any,
    ) -> T:
        """Runs the whole loop for one request: admit and pick, ``await fn(endpoint)``,
        observe, and on a retryable failure (timeout, connection error, 429, 5xx)
        back off and retry on another endpoint, never one that already failed this
        request, at most ``max_retries`` times (the retry policy's by default).
        The load is returned on every path: success, error and cancellation.
        ``route_options`` go to the first routing call."""
        retries = self.retry_policy.max_retries if max_retries is None else max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0 (got {max_retries!r})")
        if attempt_timeout is not None and not (
            math.isfinite(attempt_timeout) and attempt_timeout > 0
        ):
            raise ValueError(f"attempt_timeout must be finite and > 0 (got {attempt_timeout!r})")
        failed: list[int] = []
        first = self._first_attempt(request, route_options)
        if first.cached_response is not None:
            return first.cached_response  # type: ignore[no-any-return]
        result = first
        last_error: BaseException | None = None
        for attempt in range(retries + 1):
            if attempt:
                result = self._retry_attempt(first, tuple(failed))
            if not result.routed:
                if last_error is not None:
                    raise last_error
                raise NoEndpointAvailable(result)
            assert result.endpoint is not None
            try:
                if attempt_timeout is None:
                    response = await fn(result.endpoint)
                else:
                    response = await asyncio.wait_for(fn(result.endpoint), attempt_timeout)
            except asyncio.CancelledError:
                self.abandon(result)
                raise
            except Exception as error:
                self.complete(result, success=False, error=error)
                if not is_retryable(error) or attempt == retries:
                    raise
                failed.append(result.native_id)
                last_error = error
                self.metrics.retries += 1
                await self._sleep(self.retry_policy.backoff(attempt))
                continue
            self.complete(result, success=True, response=response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _first_attempt(
        self, request: Mapping[str, Any], options: Mapping[str, Any]
    ) -> RoutingResult:
        return self.route_request(request, **options)

    def _retry_attempt(self, first: RoutingResult, exclude: tuple[int, ...]) -> RoutingResult:
        return self._route(
            first.cost,
            first.priority,
            self._clock(),
            first.consider_load,
            first.fallback,
            exclude=exclude,
        )

    # Hooks for subclasses ---------------------------------------------------------------

    def _on_register(self, endpoint: Endpoint) -> None:
        """Called after each endpoint is registered."""

    def _on_remove(self, endpoint_id: str) -> None:
        """Called after an endpoint is removed."""
        self.metrics.forget(endpoint_id)
        self._deweighted.discard(endpoint_id)

    def _observe(
        self,
        result: RoutingResult,
        success: bool,
        latency_ms: float,
        response: Any,
        error: BaseException | None,
        now: float,
    ) -> None:
        """Called for every completed request with an endpoint, at ``now``."""

    def _on_abandon(self, result: RoutingResult) -> None:
        """Called when a routed request is abandoned."""
