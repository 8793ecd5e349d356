"""What a router observed: the observe stage's record, read by ``RouterMonitor``.

Counters are cumulative; completed requests are also kept, with their time, in a
bounded history (``history_seconds``, at most ``max_records``) so a monitor can
compute throughput, latency percentiles and error rates over any recent window.
Recording is O(1) and allocation-light: it runs once per request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from fleetroute.clock import Clock, monotonic_clock

__all__ = ["Completion", "EndpointCounters", "RouterMetrics"]


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished request."""

    at: float
    endpoint_id: str
    latency_ms: float
    success: bool
    cost: int


class EndpointCounters:
    """Cumulative per-endpoint counts."""

    __slots__ = ("completed", "failures", "latency_ms_sum", "routed")

    def __init__(self) -> None:
        self.routed = 0
        self.completed = 0
        self.failures = 0
        self.latency_ms_sum = 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.completed if self.completed else 0.0

    @property
    def avg_latency_ms(self) -> float:
        return self.latency_ms_sum / self.completed if self.completed else 0.0


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
        self.endpoints: dict[str, EndpointCounters] = {}
        self.history: deque[Completion] = deque(maxlen=max_records)

    def counters(self, endpoint_id: str) -> EndpointCounters:
        counters = self.endpoints.get(endpoint_id)
        if counters is None:
            counters = self.endpoints[endpoint_id] = EndpointCounters()
        return counters

    def record_routed(self, endpoint_id: str, fallback: bool) -> None:
        self.requests += 1
        self.routed += 1
        self.fallbacks += fallback
        self.counters(endpoint_id).routed += 1

    def record_refused(self, reason: str) -> None:
        """A request that got no endpoint: "rate_limited", "shed", "no_capacity"
        or "cache_hit" (served without one)."""
        self.requests += 1
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

    def record_completion(
        self, endpoint_id: str, latency_ms: float, success: bool, cost: int = 1
    ) -> None:
        now = self._clock()
        self.completed += 1
        counters = self.counters(endpoint_id)
        counters.completed += 1
        counters.latency_ms_sum += latency_ms
        if not success:
            self.failures += 1
            counters.failures += 1
        history = self.history
        history.append(Completion(now, endpoint_id, latency_ms, success, cost))
        horizon = now - self.history_seconds
        while history[0].at < horizon:
            history.popleft()

    def recent(self, seconds: float) -> list[Completion]:
        """Completions of the last ``seconds`` (oldest first)."""
        since = self._clock() - seconds
        out: list[Completion] = []
        for completion in reversed(self.history):
            if completion.at < since:
                break
            out.append(completion)
        out.reverse()
        return out

    def forget(self, endpoint_id: str) -> None:
        self.endpoints.pop(endpoint_id, None)
