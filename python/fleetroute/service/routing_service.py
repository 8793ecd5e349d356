"""``RoutingService``: everything the HTTP API does, without HTTP.

It holds both seeds' fleets and every policy between a request and its target:

- seed 002's services behind ``MoERouter`` (``/api/v1/route``, batch, strategy
  override, registration, rebalance, metrics, the smart-routing demo);
- seed 004's models and their instances behind ``ModelFleet`` (``/routing/decide``,
  ``/routing/test``, status, load, breaker status) and the proxy's target picker
  (``pick``/``finish``), with circuit breakers and the global budget in the
  ``StateStore`` (Redis when replicas share state);
- leases that return a decision's load when its client never reports completion;
- metrics, the analytics store (one row per request, written when its outcome is
  known) and the event hub that feeds ``/ws/routing`` and the dashboard.

Every method that touches the shared state is async; the rest is plain and fast.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetroute.admission.response_cache import ResponseCache
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.fairness import jain_index
from fleetroute.routers.moe_router import MOE_STRATEGIES, MoERouter, Service
from fleetroute.scoring.specialisation import SpecialisationRule
from fleetroute.scoring.task_detection import TaskDetection
from fleetroute.service.analytics import AnalyticsStore, DecisionRecord
from fleetroute.service.events import EventHub
from fleetroute.service.leases import Lease, LeaseBook
from fleetroute.service.metrics import BREAKER_STATE_VALUES, ServiceMetrics
from fleetroute.service.model_fleet import Instance, ModelChoice, ModelFleet, NoModelAvailable
from fleetroute.service.proxy import ProxyOutcome, ProxyTarget
from fleetroute.service.shared_state import BreakerPolicy, BreakerStatus, StateStore

if TYPE_CHECKING:
    from fleetroute.service.config import ServiceConfig

__all__ = ["BudgetExhausted", "Decision", "NoModelAvailable", "RoutingService"]

logger = logging.getLogger("fleetroute.service")

_GLOBAL_BUDGET = "global"
# How far spend may run ahead of the window's elapsed share before cost gets all the
# weight (budget pacing; see doc/scoring.md).
_PACING_BAND = 0.2
# Sample requests of seed 002's demo, by complexity.
_DEMO_REQUESTS: Mapping[str, Sequence[Mapping[str, Any]]] = {
    "simple": (
        {"type": "storage", "data": {"key": "value"}, "complexity": 0.1},
        {"type": "inference", "data": [0.1], "complexity": 0.2},
    ),
    "moderate": (
        {"type": "inference", "data": [0.1, 0.2, 0.3], "complexity": 0.5},
        {"type": "analysis", "data": {"rows": 1000}, "capabilities": ["analysis"]},
        {"type": "consensus", "data": {"votes": [1, 0, 1]}, "complexity": 0.5},
    ),
    "complex": (
        {"type": "inference", "data": [0.1] * 64, "complexity": 0.9, "priority": 0.9},
        {"type": "analysis", "data": {"rows": 10**6}, "capabilities": ["analysis", "processing"]},
        {"type": "consensus", "data": {"votes": [1, 0, 1, 1, 0]}, "complexity": 0.8},
        {"type": "storage", "data": {"key": "k" * 64}, "key": "user-42", "complexity": 0.7},
    ),
}


class BudgetExhausted(RuntimeError):
    """The global budget of the current window cannot pay for the request."""

    def __init__(self, needed: float, spent: float, limit: float) -> None:
        super().__init__(
            f"the budget of {limit:g} for this window is spent ({spent:g} used; "
            f"this request needs {needed:g})"
        )
        self.needed = needed
        self.spent = spent
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Decision:
    """Seed 004's routing decision, ready for its JSON schema."""

    choice: ModelChoice
    breaker: BreakerStatus
    #: The request's record: id, client, estimate, decision time, the instance held.
    lease: Lease

    @property
    def request_id(self) -> str:
        return self.lease.request_id

    @property
    def cost_estimate(self) -> float:
        return self.lease.cost_estimate

    @property
    def latency_ms(self) -> float:
        return self.lease.decision_latency_ms


class _RequestIds:
    """Request ids: a random prefix per process (replicas sharing an analytics store do
    not collide) and a counter. A uuid4 per decision costs a system call for entropy,
    which the batch endpoint would make a thousand times a call."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


class RoutingService:
    """Both seeds' routing behind one object; see the module docstring."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        state: StateStore,
        analytics: AnalyticsStore | None,
        metrics: ServiceMetrics,
        hub: EventHub,
        clock: Clock = monotonic_clock,
        wall_clock: Clock = time.time,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.analytics = analytics
        self.metrics = metrics
        self.hub = hub
        self.clock = clock
        self.wall_clock = wall_clock
        routing = config.routing
        self.lease_s = float(routing.decision_lease_s)
        self.moe = MoERouter(
            strategy=routing.default_strategy,
            top_k=routing.top_k,
            max_services=routing.max_services,
            clock=clock,
            seed=0 if seed is None else seed,
        )
        self.fleet = ModelFleet(
            algorithm=config.load_balancing.algorithm,
            preference=config.cost_optimization.preference,
            rules=[
                SpecialisationRule(rule.model, tuple(rule.specializations))
                for rule in config.model_specialization.specialization_rules
            ],
            specialisation_enabled=config.model_specialization.enabled,
            seed=seed,
        )
        cb = config.circuit_breaker
        self.breaker_policy = BreakerPolicy(
            failure_threshold=cb.failure_threshold,
            recovery_timeout_s=float(cb.recovery_timeout),
            half_open_limit=cb.half_open_limit,
        )
        self.leases = LeaseBook()
        self._request_id = _RequestIds()
        # Labelled metric children, looked up once: ``labels()`` costs microseconds.
        self._decision_counters: dict[tuple[str, str], Any] = {}
        self._strategy_counters: dict[str, Any] = {}
        # Seed 004's routing cache: the task detected for a request type and content,
        # the one part of a decision that depends on the request alone (model scores
        # and loads are read afresh each time).
        perf = config.performance
        self.detections: ResponseCache | None = (
            ResponseCache(ttl=float(perf.cache_ttl), clock=clock) if perf.cache_enabled else None
        )
        self._breaker_view: dict[str, BreakerStatus] = {}
        self._budget_spent = 0.0
        self._decision_times: deque[float] = deque()
        self.decisions_total = 0
        self.total_cost = 0.0
        self.proxy_in_flight = 0
        self.started_at = wall_clock()
        self.health_checked_at: dict[str, float] = {}
        for spec in config.fleet.services:
            self.register_service(spec.model_dump())
        for model in config.fleet.models:
            self.add_model(
                model.name,
                cost_per_request=model.cost_per_request,
                quality=model.quality,
                latency_ms=model.latency_ms,
                instances=[
                    (
                        i.id,
                        i.url,
                        i.capacity,
                        i.weight,
                        i.api_key.get_secret_value() if i.api_key is not None else None,
                    )
                    for i in model.instances
                ],
            )

    # -- fleet set-up ---------------------------------------------------------------------

    def add_model(
        self,
        name: str,
        *,
        cost_per_request: float | None,
        quality: float,
        latency_ms: float,
        instances: Iterable[tuple[str, str | None, int, float, str | None]],
    ) -> None:
        """Adds a seed 004 model; its price defaults to ``cost_per_request`` of the
        cost-optimisation section, then 0."""
        if cost_per_request is None:
            cost_per_request = self.config.cost_optimization.cost_per_request.get(name, 0.0)
        self.fleet.add_model(
            name,
            cost_per_request=cost_per_request,
            quality=quality,
            latency_ms=latency_ms,
            instances=instances,
        )

    # -- bookkeeping shared by every API --------------------------------------------------

    def _count(self, api: str, outcome: str) -> None:
        counter = self._decision_counters.get((api, outcome))
        if counter is None:
            counter = self.metrics.decisions.labels(api, outcome)
            self._decision_counters[(api, outcome)] = counter
        counter.inc()

    def _count_decision(self, now: float, cost: float) -> None:
        self.decisions_total += 1
        self.total_cost += cost
        self._decision_times.append(now)

    def decisions_per_second(self, window_s: float = 5.0) -> float:
        now = self.clock()
        times = self._decision_times
        while times and times[0] < now - window_s:
            times.popleft()
        return len(times) / window_s

    def _record(self, lease: Lease, status: str, **outcome: Any) -> None:
        if self.analytics is None:
            return
        self.analytics.record(
            DecisionRecord(
                request_id=lease.request_id,
                timestamp=self.wall_clock(),
                api=lease.api,
                client_id=lease.client_id,
                strategy=lease.strategy,
                model=lease.model,
                target=lease.target,
                decision_latency_ms=lease.decision_latency_ms,
                cost_estimate=lease.cost_estimate,
                status=status,
                **outcome,
            )
        )

    def _publish(self, lease: Lease, selected: Sequence[str]) -> None:
        if not self.hub.subscribers:
            return
        self.hub.publish(
            {
                "type": "decision",
                "request_id": lease.request_id,
                "api": lease.api,
                "selected_services": list(selected),
                "routing_strategy": lease.strategy,
                "model": lease.model,
                "target": lease.target,
                "cost": lease.cost_estimate,
                "latency_ms": round(lease.decision_latency_ms, 4),
                "timestamp": self.wall_clock(),
            }
        )

    def sweep(self) -> int:
        """Returns the load of every decision whose lease ran out."""
        return self.leases.expire(self.clock(), self._expire)

    def _expire(self, lease: Lease) -> None:
        self._release(lease)
        self.metrics.leases_expired.inc()
        self._record(lease, "routed")

    def _release(self, lease: Lease) -> None:
        handle = lease.handle
        if isinstance(handle, Instance):
            self.fleet.release(handle)
        elif isinstance(handle, int):
            self.moe.abandon(handle)

    # -- seed 002: services ---------------------------------------------------------------

    def register_service(self, spec: Mapping[str, Any]) -> Service:
        return self.moe.register_service(spec)

    def unregister_service(self, service_id: str) -> Service:
        return self.moe.unregister_service(service_id)

    def services(self) -> list[dict[str, Any]]:
        loads = self._service_loads()
        return [
            {
                "service_id": s.service_id,
                "service_type": s.service_type,
                "endpoint": s.endpoint,
                "capabilities": sorted(s.capabilities),
                "max_capacity": s.max_capacity,
                "current_load": loads.get(s.service_id, 0),
            }
            for s in self.moe.services()
        ]

    def _service_loads(self) -> dict[str, int]:
        by_slot = {s.slot: s.service_id for s in self.moe.services()}
        registry = self.moe.registry
        return {
            by_slot[int(slot)]: int(load)
            for slot, load in zip(registry.ids(), registry.loads(), strict=True)
        }

    def override_strategy(self, strategy: str) -> str:
        previous = self.moe.strategy
        self.moe.override_strategy(strategy)
        return previous

    # -- seed 002: routing ----------------------------------------------------------------

    def route(
        self,
        data: Mapping[str, Any],
        *,
        strategy: str | None = None,
        top_k: int | None = None,
        client_id: str | None = None,
        api: str = "route",
    ) -> dict[str, Any]:
        """Seed 002's ``/api/v1/route``: the selected services hold one unit of load
        each until ``complete`` or the lease runs out."""
        start = self.clock()
        self.leases.expire(start, self._expire)
        result = self.moe.route(data, strategy, top_k)
        now = self.clock()
        latency_ms = (now - start) * 1000.0
        selected: list[str] = result["selected_services"]
        used = result["routing_strategy"]
        lease = Lease(
            request_id=self._request_id(),
            api=api,
            client_id=client_id,
            strategy=used,
            model=None,
            target=",".join(selected) or None,
            cost_estimate=0.0,
            decision_latency_ms=latency_ms,
            started_at=now,
            expires_at=now + self.lease_s,
            handle=result["decision_id"],
        )
        counter = self._strategy_counters.get(used)
        if counter is None:
            counter = self._strategy_counters[used] = self.metrics.moe_routing_total.labels(used)
        counter.inc()
        self.metrics.moe_routing_latency_ms.observe(latency_ms)
        if selected:
            self.leases.add(lease)
            self._count(api, "routed")
        else:
            self.moe.abandon(result["decision_id"])
            self._count(api, "rejected")
            self._record(lease, "rejected")
        self._count_decision(now, 0.0)
        self._publish(lease, selected)
        services = self.moe.services_by_id(selected)
        return {
            "request_id": lease.request_id,
            "selected_services": selected,
            "services": [{"service_id": s.service_id, "endpoint": s.endpoint} for s in services],
            "routing_strategy": used,
            "latency_ms": latency_ms,
            "lease_expires_in_s": self.lease_s if selected else 0.0,
        }

    def route_batch(
        self,
        requests: Sequence[Mapping[str, Any]],
        *,
        strategy: str | None = None,
        client_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Seed 002's ``/api/v1/route/batch``: ``route`` for each request, in order."""
        if strategy is not None:
            self.moe._check_strategy(strategy)
        # Checked before any is routed, so a bad request leaves no decision counted or
        # published; the rollback below covers failures past the checks.
        for index, request in enumerate(requests):
            try:
                self.moe.check_request(request)
            except ValueError as exc:
                raise ValueError(f"requests[{index}]: {exc}") from None
        results: list[dict[str, Any]] = []
        try:
            for request in requests:
                results.append(
                    self.route(request, strategy=strategy, client_id=client_id, api="batch")
                )
        except BaseException:
            # All or nothing: what this batch took is given back before the error leaves.
            for result in results:
                lease = self.leases.pop(result["request_id"])
                if lease is not None:
                    self._release(lease)
            raise
        return results

    async def complete(
        self,
        request_id: str,
        *,
        success: bool,
        latency_ms: float | None = None,
        cost_actual: float | None = None,
    ) -> Lease:
        """Ends a decision of any API: returns its load and feeds what learns from
        outcomes (the gate and chooser, the breaker, the model's latency, the budget).
        Raises KeyError for an unknown, completed or expired request id."""
        lease = self.leases.pop(request_id)
        if lease is None:
            raise KeyError(f"no open decision {request_id!r} (unknown, completed or expired)")
        handle = lease.handle
        if isinstance(handle, int):
            self.moe.observe(handle, latency_ms or 0.0, success)
        elif isinstance(handle, Instance):
            await self._end_on_instance(
                lease, success=success, latency_ms=latency_ms, cost_actual=cost_actual
            )
        self._record(
            lease,
            "completed" if success else "failed",
            success=success,
            upstream_latency_ms=latency_ms,
            cost_actual=cost_actual,
        )
        return lease

    async def _end_on_instance(
        self,
        lease: Lease,
        *,
        success: bool,
        latency_ms: float | None,
        cost_actual: float | None,
        judge_backend: bool = True,
    ) -> None:
        """Ends a request on a model instance: its load back, the model's latency, the
        breaker (unless the outcome says nothing about the backend), the cost settled."""
        instance = lease.handle
        assert isinstance(instance, Instance)
        self.fleet.release(instance)
        self.fleet.observe(instance.model, success, latency_ms)
        if judge_backend:
            await self._breaker_record(instance.id, success)
        if cost_actual is not None:
            await self._settle(lease.cost_estimate, cost_actual)

    # -- seed 002: operations -------------------------------------------------------------

    def load_balance_score(self) -> float:
        registry = self.moe.registry
        if not len(registry.ids()):
            return 1.0
        return jain_index((registry.loads() / registry.capacities()).tolist())

    def rebalance(self) -> dict[str, Any]:
        """Seed 002's ``/api/v1/load/rebalance``: reclaims the load of decisions whose
        leases ran out and reports the balance before and after. In-flight requests are
        never moved; new decisions spread the load by each strategy's rules."""
        before = self.load_balance_score()
        released = self.sweep()
        return {
            "released_leases": released,
            "open_leases": len(self.leases),
            "load_balance_score_before": before,
            "load_balance_score_after": self.load_balance_score(),
            "services": self._service_loads(),
        }

    def moe_metrics(self) -> dict[str, Any]:
        metrics = self.moe.metrics()
        metrics.update(
            {
                "strategy": self.moe.strategy,
                "decisions_total": self.decisions_total,
                "decisions_per_second": self.decisions_per_second(),
                "open_leases": len(self.leases),
                "load_balance_score": self.load_balance_score(),
            }
        )
        return metrics

    def demo(self, complexity: str) -> dict[str, Any]:
        """Seed 002's smart-routing demo: the sample requests of one complexity under
        every strategy. Nothing stays routed: each decision's load is returned."""
        if complexity not in _DEMO_REQUESTS:
            raise ValueError(
                f"unknown complexity {complexity!r}; known: {', '.join(_DEMO_REQUESTS)}"
            )
        requests = _DEMO_REQUESTS[complexity]
        by_strategy: dict[str, list[list[str]]] = {}
        for strategy in MOE_STRATEGIES:
            chosen: list[list[str]] = []
            for request in requests:
                result = self.moe.route(request, strategy)
                self.moe.abandon(result["decision_id"])
                chosen.append(result["selected_services"])
            by_strategy[strategy] = chosen
        return {"complexity": complexity, "requests": list(requests), "strategies": by_strategy}

    # -- seed 004: decisions --------------------------------------------------------------

    def _pressure(self) -> float:
        """Budget pacing: how far spend runs ahead of the window's elapsed share."""
        co = self.config.cost_optimization
        limit = float(co.budget_limit)
        if not co.enabled or limit <= 0:
            return 0.0
        window = float(co.budget_window_s)
        elapsed = (self.wall_clock() % window) / window
        ahead = self._budget_spent / limit - elapsed
        return min(max(ahead / _PACING_BAND, 0.0), 1.0)

    async def _charge(self, amount: float) -> None:
        co = self.config.cost_optimization
        if not co.enabled:
            return
        charge = await self.state.charge_budget(
            _GLOBAL_BUDGET, amount, limit=float(co.budget_limit), window_s=co.budget_window_s
        )
        self._budget_spent = charge.spent
        if not charge.admitted:
            self.metrics.budget_refusals.labels(_GLOBAL_BUDGET).inc()
            raise BudgetExhausted(amount, charge.spent, charge.limit)

    async def refresh_budget(self) -> float:
        """Reads the global budget's spend in this window from the state store (shared by
        every replica with Redis) and returns it."""
        co = self.config.cost_optimization
        if co.enabled:
            self._budget_spent = await self.state.budget_spent(
                _GLOBAL_BUDGET, window_s=co.budget_window_s
            )
        return self._budget_spent

    @property
    def budget_spent(self) -> float:
        """The spend last read from or written to the state store."""
        return self._budget_spent

    async def _settle(self, estimate: float, actual: float) -> None:
        co = self.config.cost_optimization
        if co.enabled and actual != estimate:
            self._budget_spent = await self.state.adjust_budget(
                _GLOBAL_BUDGET, actual - estimate, window_s=co.budget_window_s
            )

    async def _breaker_allows(self, instance_id: str) -> bool:
        if not self.config.circuit_breaker.enabled:
            return True
        known = self._breaker_view.get(instance_id)
        if self.state.backend == "local" and known is not None and known.state == "closed":
            # A closed breaker admits everything and only this process's recorded
            # failures change a local one (refreshing this view). A shared breaker can be
            # opened by another replica, so it is always asked.
            return True
        allowed = await self.state.breaker_allow(instance_id, self.breaker_policy)
        if allowed and known is not None and known.state != "closed":
            # Admitted past an open breaker: it is half-open now, and the decision says so.
            await self.breaker_status(instance_id)
        return allowed

    async def _breaker_record(self, instance_id: str, success: bool) -> None:
        if not self.config.circuit_breaker.enabled:
            return
        status = await self.state.breaker_record(instance_id, success, self.breaker_policy)
        self._breaker_view[instance_id] = status

    async def breaker_status(self, instance_id: str) -> BreakerStatus:
        status = await self.state.breaker_status(instance_id, self.breaker_policy)
        self._breaker_view[instance_id] = status
        return status

    async def decide(
        self,
        request_type: str,
        content: str,
        *,
        budget: float | None = None,
        model: str | None = None,
        client_id: str | None = None,
        api: str = "decide",
        exclude: Iterable[str] = (),
        hold: bool = True,
    ) -> Decision | None:
        """Seed 004's decision. The instance holds one unit of load under a lease
        (``hold``) until ``complete`` or expiry; without ``hold`` the caller releases it
        (``release_decision``). None when every candidate instance is full. Raises
        NoModelAvailable (nothing eligible) or BudgetExhausted."""
        start = self.clock()
        self.leases.expire(start, self._expire)
        detection = self._detect(request_type, content)
        blocked = set(exclude)
        while True:
            choice = self.fleet.choose(
                request_type,
                content,
                budget=budget,
                pinned_model=model,
                blocked=blocked,
                pressure=self._pressure(),
                detection=detection,
            )
            if choice is None:
                self._count(api, "rejected")
                return None
            if await self._breaker_allows(choice.instance.id):
                break
            self.fleet.release(choice.instance)
            blocked.add(choice.instance.id)
        estimate = choice.model.cost_per_request
        try:
            await self._charge(estimate)
        except BudgetExhausted:
            self.fleet.release(choice.instance)
            self._count(api, "rejected")
            raise
        breaker = self._breaker_view.get(choice.instance.id) or BreakerStatus(
            choice.instance.id, "closed", 0, None
        )
        now = self.clock()
        latency_ms = (now - start) * 1000.0
        lease = Lease(
            request_id=self._request_id(),
            api=api,
            client_id=client_id,
            strategy=self.fleet.strategy.value,
            model=choice.model.name,
            target=choice.instance.id,
            cost_estimate=estimate,
            decision_latency_ms=latency_ms,
            started_at=now,
            expires_at=now + self.lease_s,
            handle=choice.instance,
        )
        decision = Decision(choice, breaker, lease)
        if hold:
            self.leases.add(lease)
        self._count(api, "routed")
        self.metrics.decision_latency.labels(api).observe(latency_ms)
        self.metrics.model_selected.labels(choice.model.name).inc()
        self.metrics.cost.labels(choice.model.name).inc(estimate)
        self._count_decision(now, estimate)
        self._publish(lease, [choice.instance.id])
        return decision

    def _detect(self, request_type: str, content: str) -> TaskDetection:
        if self.detections is None:
            return self.fleet.detect(request_type, content)
        key = {"request_type": request_type, "content": content}
        cached = self.detections.get(key)
        if isinstance(cached, TaskDetection):
            self.metrics.routing_cache.labels("hit").inc()
            return cached
        self.metrics.routing_cache.labels("miss").inc()
        detection = self.fleet.detect(request_type, content)
        self.detections.put(key, detection)
        return detection

    async def release_decision(self, decision: Decision) -> None:
        """Returns the load of a decision made without ``hold`` and refunds its budget
        charge (``/routing/test`` decides for real, then lets go)."""
        self.fleet.release(decision.choice.instance)
        await self._settle(decision.cost_estimate, 0.0)

    # -- the proxy's target picker --------------------------------------------------------

    async def pick(
        self, body: Mapping[str, Any], exclude: frozenset[str], client_id: str
    ) -> ProxyTarget | None:
        requested = body.get("model")
        pinned = (
            requested if isinstance(requested, str) and requested in self.fleet.models else None
        )
        try:
            decision = await self.decide(
                "chat_completion" if "messages" in body else "completion",
                _prompt_text(body),
                budget=None,
                model=pinned,
                client_id=client_id,
                api="proxy",
                exclude=exclude,
                hold=False,
            )
        except NoModelAvailable as exc:
            # BudgetExhausted is not caught: the app answers it with 402, which tells the
            # client more than "no target" would.
            logger.info("proxy: no target: %s", exc)
            return None
        if decision is None:
            return None
        instance = decision.choice.instance
        if instance.url is None:
            self.fleet.release(instance)
            return None
        self.proxy_in_flight += 1
        return ProxyTarget(
            target=instance.id,
            model=instance.model,
            base_url=instance.url,
            api_key=instance.api_key,
            lease=decision,
        )

    async def finish(self, target: ProxyTarget, outcome: ProxyOutcome) -> None:
        decision = target.lease
        assert isinstance(decision, Decision)
        self.proxy_in_flight -= 1
        served = outcome.status_code is not None and outcome.status_code < 500
        actual = decision.cost_estimate if outcome.success and served else 0.0
        await self._end_on_instance(
            decision.lease,
            success=outcome.success,
            latency_ms=outcome.latency_ms,
            cost_actual=actual,
            # A client that went away says nothing about the backend's health.
            judge_backend=not outcome.client_disconnected,
        )
        model = decision.choice.model.name
        result = "ok" if outcome.success else "error"
        if outcome.client_disconnected:
            result = "client_disconnected"
        self.metrics.proxy_requests.labels(model, result).inc()
        self.metrics.proxy_upstream_latency.labels(model).observe(outcome.latency_ms / 1000.0)
        self._record(
            decision.lease,
            "completed" if outcome.success else "failed",
            cost_actual=actual,
            success=outcome.success,
            tokens_in=outcome.prompt_tokens,
            tokens_out=outcome.completion_tokens,
            upstream_latency_ms=outcome.latency_ms,
        )

    # -- views ----------------------------------------------------------------------------

    def instance_rows(self) -> list[dict[str, Any]]:
        rows = []
        for instance in self.fleet.instances.values():
            view = self._breaker_view.get(instance.id)
            rows.append(
                {
                    "id": instance.id,
                    "kind": "instance",
                    "model": instance.model,
                    "load": self.fleet.load(instance),
                    "capacity": instance.capacity,
                    "breaker": view.state if view is not None else "closed",
                    "healthy": instance.healthy,
                }
            )
        return rows

    def service_rows(self) -> list[dict[str, Any]]:
        loads = self._service_loads()
        return [
            {
                "id": s.service_id,
                "kind": "service",
                "model": None,
                "load": loads.get(s.service_id, 0),
                "capacity": s.max_capacity,
                "breaker": "closed",
                "healthy": True,
            }
            for s in self.moe.services()
        ]

    def shared_state_mode(self) -> str:
        mode = getattr(self.state, "mode", self.state.backend)
        return str(mode)

    def snapshot(self) -> dict[str, Any]:
        """The once-a-second message of ``/ws/routing``."""
        return {
            "type": "snapshot",
            "timestamp": self.wall_clock(),
            "decisions_per_second": self.decisions_per_second(),
            "decisions_total": self.decisions_total,
            "total_cost": round(self.total_cost, 6),
            "budget_limit": float(self.config.cost_optimization.budget_limit),
            "shared_state": self.shared_state_mode(),
            "endpoints": self.service_rows() + self.instance_rows(),
        }

    def refresh_gauges(self) -> None:
        """Sets the gauges of live state before a scrape."""
        m = self.metrics
        for row in self.service_rows():
            m.moe_expert_usage.labels(row["id"]).set(row["load"] / row["capacity"])
            m.endpoint_load.labels(row["id"], "service").set(row["load"])
            m.endpoint_capacity.labels(row["id"], "service").set(row["capacity"])
        for row in self.instance_rows():
            m.endpoint_load.labels(row["id"], "instance").set(row["load"])
            m.endpoint_capacity.labels(row["id"], "instance").set(row["capacity"])
            m.breaker_state.labels(row["id"]).set(BREAKER_STATE_VALUES[row["breaker"]])
        m.moe_load_balance_score.set(self.load_balance_score())
        m.budget_spend.labels(_GLOBAL_BUDGET).set(self._budget_spent)
        m.budget_limit.labels(_GLOBAL_BUDGET).set(float(self.config.cost_optimization.budget_limit))
        m.shared_state_degraded.set(1.0 if self.state.degraded else 0.0)
        now = self.wall_clock()
        checked = self.health_checked_at.values()
        m.load_data_age.labels("health_check").set(now - min(checked) if checked else 0.0)
        m.websocket_subscribers.set(self.hub.subscribers)
        if self.analytics is not None:
            m.analytics_queue.set(self.analytics.queue_depth)
            m.analytics_dropped.set(self.analytics.dropped_total)

    def drain(self) -> int:
        """Shutdown: closes every open lease, recording it, so a clean stop loses no
        decision. Returns how many were open."""
        leases = self.leases.drain()
        for lease in leases:
            self._release(lease)
            self._record(lease, "routed")
        return len(leases)


def _prompt_text(body: Mapping[str, Any]) -> str:
    """The text a proxied request asks about: its messages' contents or its prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if isinstance(message, Mapping):
                content = message.get("content")
                if isinstance(content, str):
                    parts.append(content)
                elif isinstance(content, list):
                    parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        return "\n".join(parts)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return "\n".join(map(str, prompt))
    return prompt if isinstance(prompt, str) else ""
