"""An alert raised by a router's policies or by ``RouterMonitor``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MITIGATIONS", "Alert"]

#: The automatic mitigations ``RouterMonitor.apply_auto_mitigation`` knows.
MITIGATIONS = frozenset({"eject", "reweigh", "open_breaker"})


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator should know; ``mitigation_action`` names what
    ``apply_auto_mitigation`` would do about it ("eject", "reweigh",
    "open_breaker"), or None."""

    severity: str  # "critical", "warning" or "info"
    message: str
    metric: str
    value: float
    threshold: float
    router: str
    endpoint_id: str | None = None
    mitigation_action: str | None = None
    raised_at: float = 0.0

    @property
    def auto_mitigation_available(self) -> bool:
        return self.mitigation_action is not None
