"""The endpoints a router serves, over one Rust registry: the candidates and pick
stages.

Each endpoint gets a native accelerator id (its registration index). Endpoints are
grouped in fallback tiers by ``priority``; each tier is resolved once into a native
``CandidateSet``, so routing within a tier costs the Rust pick and nothing per
endpoint. Out-of-service endpoints (open circuit, ejection, failed health check) are
marked unroutable in the Rust registry, which the picker skips by itself.
Deprioritised endpoints (anomalous ones) stay routable but are tried only after the
rest of their tier.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from fleetroute._native import Accelerator, CandidateSet, Router
from fleetroute.resilience.availability import Availability, Unavailable
from fleetroute.routers.endpoint import Endpoint

__all__ = ["EndpointPool", "Placement"]


#: Where the pool put one request's load: the endpoint, its native id and the index
#: of its tier. A plain tuple: it is built on every request, and a NamedTuple's
#: constructor costs several times more.
Placement = tuple[Endpoint, int, int]


class _Tier:
    """One fallback tier: its endpoints' native ids and the resolved candidate sets."""

    __slots__ = ("all", "ids", "preferred", "priority")

    def __init__(self, priority: int, ids: list[int]) -> None:
        self.priority = priority
        self.ids = ids
        self.all: CandidateSet | None = None
        # The tier minus deprioritised endpoints; None when nothing is deprioritised.
        self.preferred: CandidateSet | None = None


class EndpointPool:
    """Registered endpoints, their load in the Rust core, and their tiers."""

    def __init__(
        self,
        *,
        strategy: str = "p2c",
        priority_reserve: float = 0.1,
        seed: int | None = None,
        default_latency_ms: float = 100.0,
        latency_alpha: float = 0.1,
    ) -> None:
        if not (math.isfinite(default_latency_ms) and default_latency_ms > 0):
            raise ValueError(
                f"default_latency_ms must be finite and > 0 (got {default_latency_ms!r})"
            )
        if not (0 < latency_alpha <= 1):
            raise ValueError(f"latency_alpha must be in (0, 1] (got {latency_alpha!r})")
        self.native = Router(strategy, seed=seed, priority_reserve=priority_reserve)
        self._seed = seed
        self.default_latency_ms = float(default_latency_ms)
        self.latency_alpha = float(latency_alpha)
        self._by_id: dict[str, Endpoint] = {}
        self._native_of: dict[str, int] = {}
        #: Endpoints by native id (None once removed), and their latency EWMAs (ms):
        #: read on every request, so exposed as lists rather than behind calls.
        self.by_native: list[Endpoint | None] = []
        self.latency_by_native: list[float] = []
        self._tiers: list[_Tier] = []
        self._deprioritised: set[str] = set()
        self._deprioritised_native: set[int] = set()
        self.single_tier = False
        self.in_flight = 0
        self.total_capacity = 0
        self.availability = Availability(self._set_routable)

    # Registration -----------------------------------------------------------------------

    def add(self, endpoints: Iterable[Endpoint]) -> None:
        """Registers endpoints: all of them, or none when any is invalid or taken."""
        batch = list(endpoints)
        seen: set[str] = set()
        for endpoint in batch:
            if not isinstance(endpoint, Endpoint):
                raise ValueError(f"expected an Endpoint (got {endpoint!r})")
            if endpoint.id in self._by_id or endpoint.id in seen:
                raise ValueError(f"endpoint {endpoint.id!r} is already registered")
            seen.add(endpoint.id)
        first = len(self.by_native)
        self.native.add_accelerators(
            [
                Accelerator(first + i, endpoint.capacity, endpoint.weight)
                for i, endpoint in enumerate(batch)
            ]
        )
        for i, endpoint in enumerate(batch):
            self._by_id[endpoint.id] = endpoint
            self._native_of[endpoint.id] = first + i
            self.by_native.append(endpoint)
            self.latency_by_native.append(endpoint.latency_ms or self.default_latency_ms)
            self.total_capacity += endpoint.capacity
        self._rebuild_tiers()

    def remove(self, endpoint_id: str) -> Endpoint:
        """Unregisters an endpoint; load still in flight on it is forgotten."""
        endpoint = self.get(endpoint_id)
        native_id = self._native_of.pop(endpoint_id)
        load = self.native.accelerator(native_id).current_load
        self.native.remove_accelerator(native_id)
        del self._by_id[endpoint_id]
        self.by_native[native_id] = None
        self.in_flight -= load
        self.total_capacity -= endpoint.capacity
        self.availability.forget(endpoint_id)
        self._deprioritised.discard(endpoint_id)
        self._rebuild_tiers()
        return endpoint

    def set_strategy(self, strategy: str) -> None:
        """Moves the endpoints to a registry picking with ``strategy``: same ids,
        capacities, weights and health. Refused while requests are in flight, whose
        load the new registry could not hold."""
        if strategy == self.native.strategy:
            return
        if self.in_flight:
            raise ValueError(
                f"cannot change the strategy to {strategy!r} with {self.in_flight} load "
                "units in flight; change it before serving or once drained"
            )
        native = Router(strategy, seed=self._seed, priority_reserve=self.native.priority_reserve)
        views = self.native.accelerators()
        native.add_accelerators([Accelerator(v.id, v.capacity, v.weight, v.healthy) for v in views])
        self.native = native
        self._rebuild_tiers()

    def get(self, endpoint_id: str) -> Endpoint:
        try:
            return self._by_id[endpoint_id]
        except KeyError:
            raise KeyError(f"unknown endpoint {endpoint_id!r}") from None

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def endpoints(self) -> list[Endpoint]:
        return list(self._by_id.values())

    def native_id(self, endpoint_id: str) -> int:
        self.get(endpoint_id)
        return self._native_of[endpoint_id]

    @property
    def tier_priorities(self) -> list[int]:
        return [tier.priority for tier in self._tiers]

    # Candidates -------------------------------------------------------------------------

    def _set_routable(self, endpoint_id: str, routable: bool) -> None:
        native_id = self._native_of.get(endpoint_id)
        if native_id is not None:
            self.native.set_healthy(native_id, routable)

    def set_deprioritised(self, endpoint_ids: Iterable[str]) -> None:
        """Endpoints to try only after the rest of their tier (anomalous ones)."""
        wanted = {e for e in endpoint_ids if e in self._by_id}
        if wanted != self._deprioritised:
            self._deprioritised = wanted
            self._rebuild_tiers()

    @property
    def deprioritised(self) -> frozenset[str]:
        return frozenset(self._deprioritised)

    def _rebuild_tiers(self) -> None:
        by_priority: dict[int, list[int]] = {}
        for endpoint_id, native_id in self._native_of.items():
            by_priority.setdefault(self._by_id[endpoint_id].priority, []).append(native_id)
        tiers = [_Tier(p, sorted(ids)) for p, ids in sorted(by_priority.items())]
        deprioritised = {self._native_of[e] for e in self._deprioritised}
        self._deprioritised_native = deprioritised
        for tier in tiers:
            tier.all = self.native.candidate_set(tier.ids)
            preferred = [i for i in tier.ids if i not in deprioritised]
            if len(preferred) < len(tier.ids):
                tier.preferred = self.native.candidate_set(preferred) if preferred else None
        self._tiers = tiers
        # One tier, nothing deprioritised: route over the whole fleet, no candidates.
        self.single_tier = len(tiers) == 1 and not deprioritised

    def _sets(self, tier: _Tier, exclude: Sequence[int]) -> list[CandidateSet | None]:
        if exclude:
            allowed = [i for i in tier.ids if i not in exclude]
            if not allowed:
                return []
            preferred = [i for i in allowed if i not in self._deprioritised_native]
            sets: list[CandidateSet | None] = []
            if preferred and len(preferred) < len(allowed):
                sets.append(self.native.candidate_set(preferred))
            sets.append(self.native.candidate_set(allowed))
            return sets
        if tier.preferred is not None:
            return [tier.preferred, tier.all]
        return [tier.all]

    # Pick -------------------------------------------------------------------------------

    def place(
        self,
        cost: int,
        native_priority: int,
        consider_load: bool = True,
        fallback: bool = True,
        exclude: Sequence[int] = (),
    ) -> Placement | None:
        """Takes ``cost`` units on the first tier that has room: by the strategy
        among the tier when ``consider_load``, else in registration order. ``exclude``
        names native ids this request must not use (endpoints that already failed it)."""
        native = self.native
        if self.single_tier and consider_load and not exclude:
            # One tier, nothing deprioritised: the whole fleet is the candidate set.
            picked = native.route(cost, native_priority)
            if picked is None:
                return None
            self.in_flight += cost
            return self.by_native[picked], picked, 0  # type: ignore[return-value]
        for index, tier in enumerate(self._tiers):
            for candidates in self._sets(tier, exclude):
                if candidates is None:
                    continue
                if consider_load:
                    picked = native.route(cost, native_priority, candidates=candidates)
                else:
                    picked = native.route_in_order(candidates, cost, native_priority)
                if picked is not None:
                    self.in_flight += cost
                    return self.by_native[picked], picked, index  # type: ignore[return-value]
            if not fallback:
                break
        return None

    def release(self, native_id: int, cost: int) -> None:
        """Returns the load of a finished request (a no-op for a removed endpoint)."""
        if self.by_native[native_id] is None:
            return
        self.native.release(native_id, cost)
        self.in_flight -= cost

    # Observations -----------------------------------------------------------------------

    def observe_latency(self, native_id: int, latency_ms: float) -> None:
        """Feeds one finished request's latency into its endpoint's EWMA."""
        old = self.latency_by_native[native_id]
        self.latency_by_native[native_id] = old + self.latency_alpha * (latency_ms - old)

    def latency_ms(self, endpoint_id: str) -> float:
        """The endpoint's latency estimate (EWMA of observations, else its prior)."""
        return self.latency_by_native[self.native_id(endpoint_id)]

    def load(self, endpoint_id: str) -> int:
        return self.native.load(self.native_id(endpoint_id))

    @property
    def utilisation(self) -> float:
        """Load in flight over the capacity of every registered endpoint."""
        return self.in_flight / self.total_capacity if self.total_capacity else 1.0

    def reweigh(self, endpoint_id: str, weight: float) -> None:
        """Sets the endpoint's weight in the Rust registry (weighted strategies)."""
        self.native.set_weight(self.native_id(endpoint_id), weight)

    def status(self, endpoint_id: str) -> tuple[Unavailable, bool]:
        """The endpoint's out-of-service reasons and whether it is deprioritised."""
        self.get(endpoint_id)
        return self.availability.reasons(endpoint_id), endpoint_id in self._deprioritised
