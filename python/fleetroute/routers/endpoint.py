"""An endpoint: one routable target (a replica, a model server, a provider)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Endpoint"]

_KNOWN_FIELDS = frozenset({"id", "capacity", "priority", "device", "weight", "url", "latency_ms"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A target as seed 000 registers it: ``{"id", "device", "capacity", "priority"}``.

    ``priority`` is the fallback tier: 1 is tried first, then 2, and so on.
    ``capacity`` is the number of load units (concurrent requests, by default) it
    takes at once. ``url`` is where the dispatcher and the health checker reach it;
    ``latency_ms`` is the latency expected before any has been observed. Any other
    key of the registration mapping is kept in ``metadata``.
    """

    id: str
    capacity: int
    priority: int = 1
    device: str = "gpu"
    weight: float = 1.0
    url: str | None = None
    latency_ms: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"endpoint id must be a non-empty string (got {self.id!r})")
        where = f"endpoint {self.id!r}"
        if (
            isinstance(self.capacity, bool)
            or not isinstance(self.capacity, int)
            or not 1 <= self.capacity <= 4_294_967_295
        ):
            raise ValueError(
                f"{where}: capacity must be an integer in [1, 2**32) (got {self.capacity!r})"
            )
        if (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or self.priority < 0
        ):
            raise ValueError(f"{where}: priority must be an integer >= 0 (got {self.priority!r})")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"{where}: device must be a non-empty string (got {self.device!r})")
        if not (
            isinstance(self.weight, int | float)
            and not isinstance(self.weight, bool)
            and math.isfinite(self.weight)
            and self.weight > 0
        ):
            raise ValueError(f"{where}: weight must be finite and > 0 (got {self.weight!r})")
        if self.url is not None and not (
            isinstance(self.url, str) and self.url.startswith(("http://", "https://"))
        ):
            raise ValueError(f"{where}: url must be an http(s) URL (got {self.url!r})")
        if self.latency_ms is not None and not (
            isinstance(self.latency_ms, int | float)
            and math.isfinite(self.latency_ms)
            and self.latency_ms > 0
        ):
            raise ValueError(
                f"{where}: latency_ms must be finite and > 0 (got {self.latency_ms!r})"
            )

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> Endpoint:
        """An endpoint from a registration dict; keys other than the fields go to
        ``metadata``."""
        if not isinstance(spec, Mapping):
            raise ValueError(f"an endpoint must be a mapping (got {spec!r})")
        for required in ("id", "capacity"):
            if required not in spec:
                raise ValueError(f"endpoint {spec.get('id', '?')!r} lacks {required!r}")
        known = {k: v for k, v in spec.items() if k in _KNOWN_FIELDS}
        extra = {k: v for k, v in spec.items() if k not in _KNOWN_FIELDS}
        return cls(**known, metadata=extra)
