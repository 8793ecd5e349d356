"""Priority classes and load shedding.

Requests come in four classes. Under overload the lowest class is refused first:
each class may be admitted only while the fleet's utilisation (load in flight over
total capacity) is below its shedding threshold. On top of that the Rust core keeps
``priority_reserve`` of every accelerator's capacity for high and critical requests,
per accelerator and atomically, so they always find headroom that low and normal
requests cannot take.

``priority_boost`` (seed 000) raises a request one class, never above high: critical
is for the operator's own traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum

__all__ = [
    "DEFAULT_SHED_THRESHOLDS",
    "NATIVE_PRIORITY",
    "PRIORITY_BY_VALUE",
    "LoadShedder",
    "Priority",
    "parse_priority",
]


class Priority(IntEnum):
    """Request classes, lowest first."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @property
    def native(self) -> int:
        """The Rust core's class: 1 may use the reserved headroom, 0 may not."""
        return 1 if self >= Priority.HIGH else 0

    def boosted(self) -> Priority:
        """One class up, capped at HIGH (a critical request stays critical)."""
        return self if self >= Priority.HIGH else Priority(self + 1)


_NAMES = {
    "low": Priority.LOW,
    "normal": Priority.NORMAL,
    "medium": Priority.NORMAL,
    "standard": Priority.NORMAL,
    "high": Priority.HIGH,
    "critical": Priority.CRITICAL,
}


#: The core's class of each Priority, by value (a tuple index is cheaper than a property).
NATIVE_PRIORITY = (0, 0, 1, 1)

#: Priorities by the values requests usually carry, for a lookup without parsing.
PRIORITY_BY_VALUE: dict[object, Priority] = {None: Priority.NORMAL}
PRIORITY_BY_VALUE.update(_NAMES)


def parse_priority(value: object) -> Priority:
    """A :class:`Priority` from a name ("low", "normal"/"medium", "high",
    "critical"), an int 0-3, a Priority, or None (normal)."""
    if value is None:
        return Priority.NORMAL
    if isinstance(value, Priority):
        return value
    if isinstance(value, str):
        found = _NAMES.get(value) or _NAMES.get(value.strip().lower())
        if found is None:
            raise ValueError(f"unknown priority {value!r}; known: {sorted(_NAMES)}")
        return found
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3:
        return Priority(value)
    raise ValueError(f"priority must be a name or an int in 0..3 (got {value!r})")


#: Utilisation at and above which each class is refused; 1.0 means never (the
#: capacity check in the core alone decides).
DEFAULT_SHED_THRESHOLDS: Mapping[Priority, float] = {
    Priority.LOW: 0.8,
    Priority.NORMAL: 0.95,
    Priority.HIGH: 1.0,
    Priority.CRITICAL: 1.0,
}


class LoadShedder:
    """Refuses the lower classes first as the fleet fills up."""

    def __init__(self, thresholds: Mapping[Priority | str, float] | None = None) -> None:
        merged = dict(DEFAULT_SHED_THRESHOLDS)
        for key, value in (thresholds or {}).items():
            priority = parse_priority(key)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= 1):
                raise ValueError(
                    f"shed threshold for {priority.name.lower()} must be in (0, 1] (got {value!r})"
                )
            merged[priority] = float(value)
        order = [merged[p] for p in Priority]
        if order != sorted(order):
            raise ValueError(
                "shed thresholds must not decrease with priority "
                f"(got {', '.join(f'{p.name.lower()}={merged[p]}' for p in Priority)})"
            )
        self.thresholds = merged
        #: Below this utilisation no class is shed (lets callers skip ``admit``).
        self.lowest_threshold = min(merged.values())
        self.shed = dict.fromkeys(Priority, 0)

    def admit(self, priority: Priority, utilisation: float) -> bool:
        """True if a request of ``priority`` may enter at this fleet ``utilisation``."""
        if utilisation < self.thresholds[priority] or self.thresholds[priority] >= 1.0:
            return True
        self.shed[priority] += 1
        return False
