"""Time as the policies see it: an injectable clock.

Every time-driven policy (breakers, limiters, caches, ejection, health checks) takes a
``clock``: a callable returning seconds on a monotonic scale. Production code uses
``time.monotonic``; tests pass a :class:`ManualClock` and move time by hand, so a
60-second recovery timeout is tested without waiting 60 seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "monotonic_clock"]

#: A clock: returns the current time in seconds (monotonic, any origin).
Clock = Callable[[], float]

#: The production clock.
monotonic_clock: Clock = time.monotonic


class ManualClock:
    """A clock that only moves when told to: ``clock()`` reads it, ``advance`` moves it."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        if not math.isfinite(start):
            raise ValueError(f"start must be a finite number of seconds (got {start!r})")
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Moves the clock forward by ``seconds`` (>= 0) and returns the new time."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be finite and >= 0 (got {seconds!r})")
        self._now += seconds
        return self._now

    async def sleep(self, seconds: float) -> None:
        """An ``asyncio.sleep`` stand-in that advances the clock instead of waiting."""
        self.advance(seconds)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"
