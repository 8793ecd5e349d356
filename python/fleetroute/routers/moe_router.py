"""``MoERouter``: seed 002's strategy set over registered services.

Services register as seed 002's ``/api/v1/services/register`` body (``service_id``,
``service_type``, ``endpoint``, ``capabilities``, ``max_capacity``). Each is an
accelerator of one Rust registry, so every strategy takes load there atomically and
they all see the same live loads. ``route(request)`` answers like seed 002's
``/api/v1/route``: ``{"selected_services": [...], "routing_strategy": name, ...}``.

- ``switch``: the neural gate's top-1 service (Switch Transformer's top-1 routing, for
  services), load-aware;
- ``top_k``: the gate's top-k services;
- ``semantic``: the services that best cover the request's ``capabilities``;
- ``tda_aware``: power of two choices among the services whose latency and error
  rate are not anomalous (``AnomalyDetector``), all services when every one is;
- ``consistent_hash``: jump consistent hash of the request's ``key`` (or ``id``) over
  the services, walking on past full ones, so a key keeps its service;
- ``power_of_two``: the Rust core's P2C;
- ``adaptive``: an epsilon-greedy bandit over the request's ``type`` chooses one of
  the strategies above per request and learns from ``observe``'s rewards which works
  best for which type.

The gate is a ``NeuralGate`` over a fixed number of service slots
(``max_services``); request features are the hashed request type and data plus the
required capabilities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetroute._native import Accelerator, CandidateSet, Router, hash_key, jump_hash
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.moe.neural_gate import NeuralGate
from fleetroute.resilience.anomaly_detection import AnomalyDetector
from fleetroute.scoring.bandit import EpsilonGreedy
from fleetroute.scoring.encoders import HashingEncoder
from fleetroute.scoring.semantic import CapabilityMatcher
from fleetroute.validation import positive_int

__all__ = ["MOE_STRATEGIES", "MoERouter", "Service"]

#: Seed 002's strategies, in its order.
MOE_STRATEGIES = (
    "switch",
    "top_k",
    "semantic",
    "tda_aware",
    "consistent_hash",
    "power_of_two",
    "adaptive",
)
_LEARNED = MOE_STRATEGIES[:-1]
_SERVICE_KEYS = frozenset(
    {"service_id", "service_type", "endpoint", "capabilities", "max_capacity"}
)


@dataclass(frozen=True, slots=True)
class Service:
    """A registered service (seed 002's registration body)."""

    service_id: str
    service_type: str
    endpoint: str | None
    capabilities: frozenset[str]
    max_capacity: int
    slot: int = field(repr=False)


@dataclass(slots=True)
class _Decision:
    services: list[Service]
    strategy: str
    chosen_by: str
    features: npt.NDArray[np.float32] | None
    context: npt.NDArray[np.float64] | None


class MoERouter:
    """Routes requests to services with seed 002's strategies."""

    def __init__(
        self,
        *,
        strategy: str = "adaptive",
        top_k: int = 2,
        max_services: int = 64,
        request_types: Sequence[str] = ("inference", "storage", "consensus", "analysis"),
        exploration: float = 0.1,
        clock: Clock = monotonic_clock,
        seed: int = 0,
    ) -> None:
        self.strategy = self._check_strategy(strategy)
        self.top_k = positive_int("top_k", top_k)
        self.max_services = positive_int("max_services", max_services)
        self.request_types = tuple(request_types)
        self.registry = Router("p2c", seed=seed, priority_reserve=0.0)
        self._services: dict[str, Service] = {}
        self._by_slot: dict[int, Service] = {}
        self._matcher = CapabilityMatcher()
        # A robust z-score of one outlier among n services is at most n / 1.2533 (MAD 0,
        # mean absolute deviation used): 3.19 for four services. A threshold of 3 lets a
        # service set as small as seed 002's be judged.
        self._anomalies = AnomalyDetector(clock=clock, min_samples=10, threshold=3.0)
        self._encoder = HashingEncoder(dimension=64)
        self._gate = NeuralGate(64 + 1, self.max_services, seed=seed)
        # One arm per learned strategy; the context is the request type, one-hot.
        self._chooser = EpsilonGreedy(
            list(_LEARNED), len(self.request_types) + 1, epsilon=exploration, rng=seed
        )
        self._open: dict[int, _Decision] = {}
        self._next_decision = 0
        self._ring_cache: list[Service] | None = None
        self._clock = clock
        #: How often ``tda_aware`` re-reads the anomaly detector, in seconds.
        self.tda_refresh_s = 0.1
        self._tda_cache: tuple[float, CandidateSet] | None = None
        self._semantic_cache: dict[frozenset[str], list[CandidateSet]] = {}

    @staticmethod
    def _check_strategy(strategy: str) -> str:
        if strategy not in MOE_STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(MOE_STRATEGIES)}")
        return strategy

    # Services ---------------------------------------------------------------------------

    def register_service(self, spec: Mapping[str, Any]) -> Service:
        """Registers a service from seed 002's registration body."""
        unknown = set(spec) - _SERVICE_KEYS
        if unknown:
            raise ValueError(
                f"unknown service field(s) {sorted(unknown)}; known: {sorted(_SERVICE_KEYS)}"
            )
        service_id = spec.get("service_id")
        if not isinstance(service_id, str) or not service_id:
            raise ValueError(f"service_id must be a non-empty string (got {service_id!r})")
        if service_id in self._services:
            raise ValueError(f"service {service_id!r} is already registered")
        free = [s for s in range(self.max_services) if s not in self._by_slot]
        if not free:
            raise ValueError(f"max_services ({self.max_services}) services are registered")
        capabilities = spec.get("capabilities", ())
        if isinstance(capabilities, str):
            raise ValueError("capabilities must be a list of names, not one string")
        service = Service(
            service_id,
            str(spec.get("service_type", "generic")),
            spec.get("endpoint"),
            frozenset(str(c).casefold() for c in capabilities),
            positive_int(f"service {service_id!r} max_capacity", spec.get("max_capacity", 100)),
            free[0],
        )
        self.registry.add_accelerator(Accelerator(service.slot, service.max_capacity))
        self._matcher.register(service_id, service.capabilities or {service.service_type})
        self._services[service_id] = service
        self._by_slot[service.slot] = service
        self._ring_cache = None
        self._tda_cache = None
        self._semantic_cache.clear()
        return service

    def unregister_service(self, service_id: str) -> Service:
        """Seed 002's ``DELETE /api/v1/services/{id}``: its load in flight is forgotten
        and what the gate learned about its slot is reset."""
        service = self._services.pop(service_id, None)
        if service is None:
            raise KeyError(f"unknown service {service_id!r}")
        del self._by_slot[service.slot]
        self._ring_cache = None
        self._tda_cache = None
        self._semantic_cache.clear()
        self.registry.remove_accelerator(service.slot)
        self._matcher.unregister(service_id)
        if self._anomalies.sample_count(service_id):
            self._anomalies.forget(service_id)
        self._gate.reset_expert(service.slot)
        return service

    def services(self) -> list[Service]:
        return list(self._services.values())

    @property
    def service_count(self) -> int:
        return len(self._services)

    def has_service(self, service_id: str) -> bool:
        return service_id in self._services

    def services_by_id(self, service_ids: Iterable[str]) -> list[Service]:
        """The registered services with these ids, in order (KeyError for an unknown one)."""
        return [self._services[service_id] for service_id in service_ids]

    # Routing ----------------------------------------------------------------------------

    def override_strategy(self, strategy: str) -> None:
        """Seed 002's ``/api/v1/strategy/override``: the default strategy from now on."""
        self.strategy = self._check_strategy(strategy)

    def route(
        self, request: Mapping[str, Any], strategy: str | None = None, top_k: int | None = None
    ) -> dict[str, Any]:
        """Routes one request; the response is seed 002's shape plus a
        ``decision_id`` to pass to ``observe``."""
        self.check_request(request)
        if not self._services:
            raise ValueError("no services are registered")
        chosen = self._check_strategy(strategy or self.strategy)
        k = self.top_k if top_k is None else positive_int("top_k", top_k)
        context = None
        used = chosen
        if chosen == "adaptive":
            context = self._context(request)
            used = self._chooser.select(context)
        # Only the gate's strategies need the request's embedding (the costly part).
        features = self._features(request) if used in ("switch", "top_k") else None
        services = self._pick(used, request, features, k)
        decision_id = self._next_decision
        self._next_decision += 1
        self._open[decision_id] = _Decision(services, used, chosen, features, context)
        return {
            "selected_services": [s.service_id for s in services],
            "routing_strategy": used if chosen != "adaptive" else f"adaptive:{used}",
            "decision_id": decision_id,
        }

    @staticmethod
    def check_request(request: object) -> None:
        """Raises ValueError naming the field when ``request`` cannot be routed: it must
        be a mapping, with ``capabilities`` (if given) a list of strings."""
        if not isinstance(request, Mapping):
            raise ValueError(f"request must be a mapping (got {type(request).__name__})")
        capabilities = request.get("capabilities", ())
        if not isinstance(capabilities, list | tuple) or not all(
            isinstance(c, str) for c in capabilities
        ):
            raise ValueError(
                f"capabilities must be a list of strings (got {str(capabilities)[:80]!r})"
            )

    def route_batch(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Seed 002's ``/api/v1/route/batch``."""
        return [self.route(r) for r in requests]

    def _context(self, request: Mapping[str, Any]) -> npt.NDArray[np.float64]:
        x = np.zeros(len(self.request_types) + 1)
        kind = request.get("type")
        if kind in self.request_types:
            x[self.request_types.index(kind)] = 1.0
        x[-1] = 1.0
        return x

    def _features(self, request: Mapping[str, Any]) -> npt.NDArray[np.float32]:
        text = f"{request.get('type', '')} {json.dumps(request.get('data'), default=str)}"
        text += " " + " ".join(sorted(map(str, request.get("capabilities", ()))))
        return np.concatenate([self._encoder.encode([text])[0], np.ones(1, np.float32)])

    def _take(self, service: Service) -> bool:
        return self.registry.route(1, 1, candidates=[service.slot]) is not None

    def _pick(
        self,
        strategy: str,
        request: Mapping[str, Any],
        features: npt.NDArray[np.float32] | None,
        k: int,
    ) -> list[Service]:
        count = len(self._services)
        if strategy in ("switch", "top_k"):
            want = 1 if strategy == "switch" else min(k, count)
            # Gate score less the squared utilisation, one array over the slots; slots
            # without a service rank last and are never taken.
            score = np.full(self.max_services, -np.inf)
            slots = self.registry.ids()
            utilisation = self.registry.loads() / self.registry.capacities()
            assert features is not None
            score[slots] = np.asarray(self._gate.scores(features), np.float64)[slots]
            score[slots] -= utilisation**2
            order = np.argsort(-score)[:count]
            return self._take_first((self._by_slot[int(slot)] for slot in order), want)
        if strategy == "semantic":
            needs = [n for n in request.get("capabilities") or [request.get("type")] if n]
            if not needs:
                return []  # nothing to match: neither capabilities nor a type
            for group in self._semantic_groups(frozenset(map(str, needs))):
                picked = self.registry.route(1, 1, candidates=group)
                if picked is not None:
                    return [self._by_slot[picked]]
            return []
        if strategy == "tda_aware":
            picked = self.registry.route(1, 1, candidates=self._tda_candidates())
            return [] if picked is None else [self._by_slot[picked]]
        if strategy == "consistent_hash":
            key = request.get(
                "key", request.get("id", json.dumps(request, sort_keys=True, default=str))
            )
            ring = self._ring()
            start = jump_hash(hash_key(str(key)), len(ring))
            return self._take_first((ring[(start + i) % len(ring)] for i in range(len(ring))), 1)
        picked = self.registry.route(1, 1)  # power_of_two
        return [] if picked is None else [self._by_slot[picked]]

    def _tda_candidates(self) -> CandidateSet:
        """The slots of the services that are not anomalous (all of them when every
        one is), re-evaluated at most every ``tda_refresh_s``: judging every service's
        latency and error statistics on each request would loop over the fleet."""
        now = self._clock()
        if self._tda_cache is None or now - self._tda_cache[0] >= self.tda_refresh_s:
            self._anomalies.evaluate()
            services = list(self._services.values())
            healthy = [s for s in services if not self._anomalies.is_anomalous(s.service_id)]
            pool = healthy or services
            self._tda_cache = (now, self.registry.candidate_set([s.slot for s in pool]))
        return self._tda_cache[1]

    def _semantic_groups(self, needs: frozenset[str]) -> list[CandidateSet]:
        """The services matching ``needs``, best match first, in groups of equal match:
        the core picks by load (P2C) within a group and falls to the next group only
        when the whole group is full. Cached per set of needs until the services
        change, so a request costs a lookup, not a ranking of the fleet."""
        groups = self._semantic_cache.get(needs)
        if groups is None:
            # The matcher ranks by (full cover, coverage, Jaccard); equal on all three is
            # one group.
            wanted = frozenset(n.strip().casefold() for n in needs)
            ranked: dict[tuple[bool, float, float], list[int]] = {}
            for name, _ in self._matcher.match(needs):
                caps = self._matcher.capabilities_of(name)
                shared = len(wanted & caps)
                rank = (shared == len(wanted), shared / len(wanted), shared / len(wanted | caps))
                ranked.setdefault(rank, []).append(self._services[name].slot)
            groups = [self.registry.candidate_set(slots) for slots in ranked.values()]
            if len(self._semantic_cache) >= 4096:
                self._semantic_cache.clear()
            self._semantic_cache[needs] = groups
        return groups

    def _ring(self) -> list[Service]:
        """The services in slot order, rebuilt only after registrations change."""
        if self._ring_cache is None:
            self._ring_cache = sorted(self._services.values(), key=lambda s: s.slot)
        return self._ring_cache

    def _take_first(self, ranked: Iterable[Service], want: int) -> list[Service]:
        taken: list[Service] = []
        for service in ranked:
            if len(taken) == want:
                break
            if self._take(service):
                taken.append(service)
        return taken

    # Observe ----------------------------------------------------------------------------

    def observe(
        self, decision_id: int, latency_ms: float, success: bool, reward: float | None = None
    ) -> None:
        """Ends a routed request: returns its load and teaches the gate, the anomaly
        detector and the adaptive chooser. ``reward`` defaults to 1 for a success and 0
        for a failure, less a latency term (``latency_ms / 10,000``)."""
        decision = self._open.pop(decision_id, None)
        if decision is None:
            raise KeyError(f"unknown or already observed decision {decision_id}")
        if not (math.isfinite(latency_ms) and latency_ms >= 0):
            raise ValueError(f"latency_ms must be finite and >= 0 (got {latency_ms!r})")
        value = (1.0 if success else 0.0) - latency_ms / 10_000 if reward is None else reward
        for service in decision.services:
            if self._services.get(service.service_id) is not service:
                continue  # unregistered meanwhile: its load is gone
            self.registry.release(service.slot, 1)
            self._anomalies.observe(service.service_id, latency_ms / 1000.0, success)
        if decision.services and decision.features is not None:
            self._gate.update(
                decision.features,
                [s.slot for s in decision.services],
                [value] * len(decision.services),
            )
        if decision.context is not None:
            self._chooser.update(decision.strategy, decision.context, value)

    def abandon(self, decision_id: int) -> bool:
        """Returns a decision's load without teaching anything (its outcome is unknown,
        e.g. its lease ran out); False when it was already observed or abandoned."""
        decision = self._open.pop(decision_id, None)
        if decision is None:
            return False
        for service in decision.services:
            if self._services.get(service.service_id) is service:
                self.registry.release(service.slot, 1)
        return True

    def metrics(self) -> dict[str, Any]:
        """Seed 002's ``/api/v1/metrics``: loads and the adaptive chooser's counts."""
        return {
            "services": {
                self._by_slot[a.id].service_id: {"load": a.current_load, "capacity": a.capacity}
                for a in self.registry.accelerators()
            },
            "strategy_choices": self._chooser.pulls(),
        }
