"""Leases: the load a routing decision holds until its request ends.

A decision service does not see its requests finish unless the client says so
(``/api/v1/route/complete``, ``/routing/complete``) or the request went through the
proxy. Every decision therefore takes its load under a lease with a deadline; a lease
nobody completes returns its load when the deadline passes, so a silent client cannot
leak the fleet's capacity. Deadlines sit in a heap: sweeping is O(log n) per expired
lease and O(1) when none has expired.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Lease", "LeaseBook"]


@dataclass(slots=True)
class Lease:
    """One open decision."""

    request_id: str
    api: str
    client_id: str | None
    strategy: str | None
    model: str | None
    target: str | None
    cost_estimate: float
    decision_latency_ms: float
    started_at: float
    expires_at: float
    #: What releasing needs (a MoERouter decision id, a fleet instance, ...).
    handle: Any = field(default=None, repr=False)


class LeaseBook:
    """Open leases by request id, with expiry."""

    def __init__(self) -> None:
        self._open: dict[str, Lease] = {}
        self._deadlines: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._open

    def add(self, lease: Lease) -> None:
        if lease.request_id in self._open:
            raise ValueError(f"request {lease.request_id!r} already holds a lease")
        self._open[lease.request_id] = lease
        heapq.heappush(self._deadlines, (lease.expires_at, lease.request_id))

    def get(self, request_id: str) -> Lease | None:
        return self._open.get(request_id)

    def pop(self, request_id: str) -> Lease | None:
        """Closes a lease (its heap entry is dropped lazily by ``expire``)."""
        return self._open.pop(request_id, None)

    def expire(self, now: float, on_expiry: Callable[[Lease], None]) -> int:
        """Closes every lease whose deadline has passed, calling ``on_expiry`` on each;
        returns how many."""
        expired = 0
        while self._deadlines and self._deadlines[0][0] <= now:
            _, request_id = heapq.heappop(self._deadlines)
            lease = self._open.get(request_id)
            if lease is None or lease.expires_at > now:
                continue  # completed already, or the id was reused with a later deadline
            del self._open[request_id]
            on_expiry(lease)
            expired += 1
        return expired

    def drain(self) -> list[Lease]:
        """Closes and returns every open lease (shutdown)."""
        leases = list(self._open.values())
        self._open.clear()
        self._deadlines.clear()
        return leases
