"""The outcome of one routing decision, as the seed routers return it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetroute.admission.priority import Priority
from fleetroute.routers.endpoint import Endpoint

__all__ = ["RoutingResult"]


@dataclass(slots=True, eq=False)
class RoutingResult:
    """Where a request went, or why it went nowhere.

    ``endpoint_id`` is None when the request was not placed; then exactly one of
    ``rate_limited``, ``shed``, ``cached_response is not None`` or ``no_capacity``
    says why (``circuit_breaker_open`` may accompany ``no_capacity``).
    ``load_score`` is the chosen endpoint's headroom after placing the request, in
    [0, 1]: 1 - load / capacity. ``estimated_latency_ms`` is the endpoint's latency
    EWMA (its configured prior until a request has completed there). A placed
    request holds load until ``complete(result, ...)`` is called on its router.
    """

    endpoint_id: str | None
    endpoint: Endpoint | None = None
    estimated_latency_ms: float | None = None
    load_score: float = 0.0
    tier: int | None = None
    fallback_used: bool = False
    priority: Priority = Priority.NORMAL
    cost: int = 1
    started_at: float = 0.0
    native_id: int = field(default=-1, repr=False)
    # How the request was routed, so a retry follows the same rules.
    consider_load: bool = field(default=True, repr=False)
    fallback: bool = field(default=True, repr=False)
    user_tier: str | None = None
    cache_key: bytes | None = field(default=None, repr=False)
    circuit_breaker_open: bool = False
    rate_limited: bool = False
    retry_after: float | None = None
    shed: bool = False
    no_capacity: bool = False
    cached_response: Any = None
    metrics: dict[str, Any] | None = None
    completed: bool = field(default=False, repr=False)

    @property
    def routed(self) -> bool:
        """True when the request holds load on an endpoint."""
        return self.endpoint_id is not None

    @property
    def device(self) -> str | None:
        return None if self.endpoint is None else self.endpoint.device
