"""What a router observed: the observe stage's record, read by ``RouterMonitor``.

Counters are cumulative; completed requests are also kept, with their time, in a
bounded history (``history_seconds``, at most ``max_records``) so a monitor can
compute throughput, latency percentiles and error rates over any recent window.
Recording runs once per request, so it stores plain tuples and does no lookups;
readers turn them into :class:`Completion` records.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from fleetroute.clock import Clock, monotonic_clock

__all__ = ["Completion", "RouterMetrics"]


class Completion(NamedTuple):
    """One finished request."""

    at: float
    endpoint_id: str
    latency_ms: float
    success: bool
    cost: int


class RouterMetrics:
    """Counters and recent completions of one router."""

    def __init__(
        self,
        *,
        clock: Clock = monotonic_clock,
        history_seconds: float = 3600.0,
        max_records: int = 200_000,
    ) -> None:
        if not history_seconds > 0:
            raise ValueError(f"history_seconds must be > 0 (got {history_seconds!r})")
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1 (got {max_records!r})")
        self._clock = clock
        self.history_seconds = float(history_seconds)
        self.started_at = clock()
        self.requests = 0
        self.routed = 0
        self.completed = 0
        self.failures = 0
        self.rate_limited = 0
        self.shed = 0
        self.no_capacity = 0
        self.cache_hits = 0
        self.fallbacks = 0
        self.retries = 0
        self._history: deque[tuple[float, str, float, bool, int]] = deque(maxlen=max_records)

    def record_routed(self, fallback: bool) -> None:
        self.requests += 1
        self.routed += 1
        if fallback:
            self.fallbacks += 1

    def record_refused(self, reason: str) -> None:
        """A request that got no endpoint: "rate_limited", "shed", "no_capacity"
        or "cache_hit" (served without one)."""
        if reason == "rate_limited":
            self.rate_limited += 1
        elif reason == "shed":
            self.shed += 1
        elif reason == "cache_hit":
            self.cache_hits += 1
        elif reason == "no_capacity":
            self.no_capacity += 1
        else:
            raise ValueError(f"unknown refusal reason {reason!r}")
        self.requests += 1

    def record_completion(
        self, endpoint_id: str, latency_ms: float, success: bool, cost: int, now: float
    ) -> None:
        """Records one finished request at ``now`` (the router's clock)."""
        self.completed += 1
        if not success:
            self.failures += 1
        history = self._history
        history.append((now, endpoint_id, latency_ms, success, cost))
        if history[0][0] < now - self.history_seconds:
            horizon = now - self.history_seconds
            while history[0][0] < horizon:
                history.popleft()

    def recent(self, seconds: float) -> list[Completion]:
        """Completions of the last ``seconds`` (oldest first)."""
        since = self._clock() - seconds
        out: list[Completion] = []
        for record in reversed(self._history):
            if record[0] < since:
                break
            out.append(Completion._make(record))
        out.reverse()
        return out

    def endpoint_totals(self, endpoint_id: str) -> tuple[int, int]:
        """(completed, failed) requests of ``endpoint_id`` still in the history."""
        completed = failed = 0
        for record in self._history:
            if record[1] == endpoint_id:
                completed += 1
                failed += not record[3]
        return completed, failed

    def forget(self, endpoint_id: str) -> None:
        """Drops a removed endpoint's completions from the history."""
        kept = [record for record in self._history if record[1] != endpoint_id]
        self._history.clear()
        self._history.extend(kept)
