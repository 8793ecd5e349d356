"""Which endpoints the Rust picker may see: the candidates stage.

Several policies can take an endpoint out of service at once: an open circuit, an
outlier ejection, a failed active health check, an operator's drain. Each holds its
own reason; the endpoint is routable only while it has none. The combined flag is
pushed into the Rust registry (``Router.set_healthy``) on the transition, so a
request pays nothing for it: the picker skips unroutable accelerators itself, and no
per-request mask is built.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntFlag

__all__ = ["Availability", "Unavailable"]


class Unavailable(IntFlag):
    """Why an endpoint is out of service (several may hold at once)."""

    CIRCUIT_OPEN = 1
    EJECTED = 2
    HEALTH_CHECK_FAILED = 4
    DRAINED = 8


class Availability:
    """Per-endpoint reasons for being out of service, and the sink that applies the
    combined state (``set_routable(endpoint, routable)``), called only on change."""

    def __init__(self, set_routable: Callable[[str, bool], None]) -> None:
        self._set_routable = set_routable
        self._reasons: dict[str, Unavailable] = {}

    def exclude(self, endpoint_id: str, reason: Unavailable) -> None:
        """Adds ``reason``; the endpoint leaves the candidates if it had none."""
        old = self._reasons.get(endpoint_id, Unavailable(0))
        new = old | reason
        if new != old:
            self._reasons[endpoint_id] = new
            if not old:
                self._set_routable(endpoint_id, False)

    def include(self, endpoint_id: str, reason: Unavailable) -> None:
        """Clears ``reason``; the endpoint returns once no reason is left."""
        old = self._reasons.get(endpoint_id)
        if old is None or not old & reason:
            return
        new = old & ~reason
        if new:
            self._reasons[endpoint_id] = new
        else:
            del self._reasons[endpoint_id]
            self._set_routable(endpoint_id, True)

    def set(self, endpoint_id: str, reason: Unavailable, present: bool) -> None:
        """``exclude`` when ``present``, else ``include``."""
        if present:
            self.exclude(endpoint_id, reason)
        else:
            self.include(endpoint_id, reason)

    def reasons(self, endpoint_id: str) -> Unavailable:
        """The reasons that hold now (empty when routable)."""
        return self._reasons.get(endpoint_id, Unavailable(0))

    def is_routable(self, endpoint_id: str) -> bool:
        return endpoint_id not in self._reasons

    def forget(self, endpoint_id: str) -> None:
        """Drops every reason without calling the sink (the endpoint was removed)."""
        self._reasons.pop(endpoint_id, None)

    def unavailable(self) -> dict[str, Unavailable]:
        """Every endpoint out of service, with its reasons."""
        return dict(self._reasons)
