"""Circuit breakers: stop sending requests to an endpoint that keeps failing.

One :class:`CircuitBreaker` holds a breaker per endpoint (seed 001's API:
``is_available``, ``record_failure``, ``record_success``). Each breaker is

- **closed**: requests flow; it opens after ``failure_threshold`` consecutive
  failures, or, with ``failure_rate_threshold`` set, when the failure rate over the
  last ``window_size`` calls (at least ``minimum_calls`` of them) reaches it;
- **open**: the endpoint gets nothing until ``recovery_timeout`` seconds have passed
  (or, with ``automatic_recovery=False``, until ``reset``);
- **half-open**: at most ``half_open_max_calls`` trial calls are admitted; a trial
  success closes the breaker, a trial failure re-opens it for another timeout.

A call slower than ``timeout_threshold`` seconds counts as a failure even when it
succeeded. Time comes from the injected ``clock``, so the seed's 60-second test runs
without waiting. Routers subscribe with ``on_availability_change`` and take an open
endpoint out of the Rust picker's candidates; they never ask per request.

A success reported while a breaker is open comes from a call dispatched before it
opened; it does not close the breaker (seed 001's code would), because the opening
failures are newer evidence than that call.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import non_negative_number, positive_int, positive_number

__all__ = ["BreakerSnapshot", "BreakerState", "CircuitBreaker"]

_log = logging.getLogger("fleetroute.circuit_breaker")


class BreakerState(str, Enum):
    """The three states of a breaker (values as in seed 004's routing schema)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One endpoint's breaker, read at one instant."""

    endpoint_id: str
    state: BreakerState
    failure_count: int
    opened_at: float | None
    last_failure_time: float | None
    trials_in_flight: int
    activations: int


class _Breaker:
    """Mutable per-endpoint state; only :class:`CircuitBreaker` touches it."""

    __slots__ = (
        "activations",
        "available",
        "consecutive_failures",
        "generation",
        "last_failure_time",
        "opened_at",
        "outcomes",
        "state",
        "trials",
        "window_failures",
    )

    def __init__(self, window_size: int) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.outcomes: deque[bool] = deque(maxlen=window_size)
        self.window_failures = 0
        self.opened_at: float | None = None
        self.last_failure_time: float | None = None
        self.trials = 0
        self.activations = 0
        # Availability as last reported to listeners.
        self.available = True
        # Renewed on every opening (unique per CircuitBreaker) so a stale recovery
        # deadline in the heap is ignored.
        self.generation = 0


class CircuitBreaker:
    """Per-endpoint circuit breakers with an injectable clock.

    ``timeout`` is seed 001's name for ``recovery_timeout`` (seconds); give one or the
    other. ``on_state_change(endpoint, old, new)`` and
    ``on_availability_change(endpoint, available)`` are called on transitions.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        timeout: float | None = None,
        *,
        recovery_timeout: float | None = None,
        half_open_max_calls: int = 1,
        timeout_threshold: float | None = None,
        failure_rate_threshold: float | None = None,
        window_size: int = 20,
        minimum_calls: int = 10,
        automatic_recovery: bool = True,
        clock: Clock = monotonic_clock,
        on_state_change: Callable[[str, BreakerState, BreakerState], None] | None = None,
        on_availability_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        if timeout is not None and recovery_timeout is not None and timeout != recovery_timeout:
            raise ValueError(
                "timeout and recovery_timeout name the same setting; give one "
                f"(got timeout={timeout!r}, recovery_timeout={recovery_timeout!r})"
            )
        recovery = recovery_timeout if recovery_timeout is not None else timeout
        self.failure_threshold = positive_int("failure_threshold", failure_threshold)
        # A bad value is reported under the name the caller used for it.
        self.recovery_timeout = positive_number(
            "recovery_timeout" if recovery_timeout is not None or timeout is None else "timeout",
            60.0 if recovery is None else recovery,
        )
        self.half_open_max_calls = positive_int("half_open_max_calls", half_open_max_calls)
        self.timeout_threshold = (
            None
            if timeout_threshold is None
            else positive_number("timeout_threshold", timeout_threshold)
        )
        if failure_rate_threshold is not None and not (
            isinstance(failure_rate_threshold, int | float)
            and not isinstance(failure_rate_threshold, bool)
            and 0 < failure_rate_threshold <= 1
        ):
            raise ValueError(
                f"failure_rate_threshold must be in (0, 1] (got {failure_rate_threshold!r})"
            )
        self.failure_rate_threshold = failure_rate_threshold
        self.window_size = positive_int("window_size", window_size)
        self.minimum_calls = positive_int("minimum_calls", minimum_calls)
        if failure_rate_threshold is not None and self.minimum_calls > self.window_size:
            raise ValueError(
                f"minimum_calls ({minimum_calls}) must not exceed window_size ({window_size})"
            )
        if not isinstance(automatic_recovery, bool):
            raise ValueError(f"automatic_recovery must be a bool (got {automatic_recovery!r})")
        self.automatic_recovery = automatic_recovery
        self._clock = clock
        self._state_listeners: list[Callable[[str, BreakerState, BreakerState], None]] = []
        self._availability_listeners: list[Callable[[str, bool], None]] = []
        if on_state_change is not None:
            self._state_listeners.append(on_state_change)
        if on_availability_change is not None:
            self._availability_listeners.append(on_availability_change)
        self._breakers: dict[str, _Breaker] = {}
        # (deadline, generation, endpoint): open breakers waiting for recovery.
        self._recoveries: list[tuple[float, int, str]] = []
        #: When ``poll`` next has work: the earliest recovery deadline (inf if none).
        self.next_recovery = math.inf
        # Openings across all endpoints: a breaker's generation comes from here, so a
        # breaker dropped by ``forget`` and created again never matches the stale
        # recovery deadline its predecessor left in the heap.
        self._openings = 0
        #: Endpoints in HALF_OPEN; routers check membership only while it is non-empty.
        self.half_open: set[str] = set()
        self.activations = 0

    # Subscriptions -----------------------------------------------------------------

    def add_state_listener(
        self, listener: Callable[[str, BreakerState, BreakerState], None]
    ) -> None:
        """Calls ``listener(endpoint, old, new)`` on every state transition."""
        self._state_listeners.append(listener)

    def add_availability_listener(self, listener: Callable[[str, bool], None]) -> None:
        """Calls ``listener(endpoint, available)`` when an endpoint starts or stops
        admitting calls (opening, recovery, half-open trial slots filling up)."""
        self._availability_listeners.append(listener)

    # Seed 001 API ---------------------------------------------------------------------

    def is_available(self, provider: str) -> bool:
        """True if a call to ``provider`` would be admitted now (no trial is taken)."""
        self.poll()
        breaker = self._breakers.get(provider)
        if breaker is None or breaker.state is BreakerState.CLOSED:
            return True
        if breaker.state is BreakerState.OPEN:
            return False
        return breaker.trials < self.half_open_max_calls

    def record_failure(self, provider: str) -> None:
        """Records a failed call to ``provider``."""
        self._record(provider, success=False)

    def record_success(self, provider: str, latency: float | None = None) -> None:
        """Records a successful call; one slower than ``timeout_threshold`` seconds
        counts as a failure."""
        self.record_result(provider, success=True, latency=latency)

    # Router API -------------------------------------------------------------------------

    def record_result(self, provider: str, success: bool, latency: float | None = None) -> None:
        """Records one finished call: its outcome and, optionally, its latency (s)."""
        if latency is not None and not (latency.__class__ is float and 0.0 <= latency < math.inf):
            latency = non_negative_number("latency", latency, "a number of seconds")
        threshold = self.timeout_threshold
        if success and threshold is not None and latency is not None and latency > threshold:
            success = False
        breaker = self._breakers.get(provider)
        if (
            success
            and breaker is not None
            and breaker.state is BreakerState.CLOSED
            and self.failure_rate_threshold is None
        ):
            # The common case, a success on a closed breaker without a rate window.
            breaker.consecutive_failures = 0
            return
        self._record(provider, success)

    def try_acquire(self, provider: str) -> bool:
        """Admits one call to ``provider``: always when closed, never when open, and
        while half-open only up to ``half_open_max_calls`` trials in flight."""
        self.poll()
        breaker = self._breakers.get(provider)
        if breaker is None or breaker.state is BreakerState.CLOSED:
            return True
        if breaker.state is BreakerState.OPEN or breaker.trials >= self.half_open_max_calls:
            return False
        breaker.trials += 1
        self._sync(provider, breaker)
        return True

    def cancel(self, provider: str) -> None:
        """Returns a trial slot taken by :meth:`try_acquire` for a call that never ran
        (cancelled before dispatch): neither a success nor a failure."""
        breaker = self._breakers.get(provider)
        if breaker is not None and breaker.state is BreakerState.HALF_OPEN and breaker.trials:
            breaker.trials -= 1
            self._sync(provider, breaker)

    def poll(self) -> None:
        """Moves open breakers whose recovery timeout has passed to half-open. O(1)
        when none is due, so routers call it on every request."""
        if self._clock() < self.next_recovery:
            return
        now = self._clock()
        while self._recoveries and self._recoveries[0][0] <= now:
            _, generation, provider = heapq.heappop(self._recoveries)
            breaker = self._breakers.get(provider)
            if (
                breaker is not None
                and breaker.state is BreakerState.OPEN
                and breaker.generation == generation
            ):
                breaker.trials = 0
                self._transition(provider, breaker, BreakerState.HALF_OPEN)
                self._sync(provider, breaker)
        self.next_recovery = self._recoveries[0][0] if self._recoveries else math.inf

    def force_open(self, provider: str) -> None:
        """Opens ``provider``'s breaker now (a monitor's mitigation), for one
        recovery timeout."""
        breaker = self._breaker(provider)
        if breaker.state is not BreakerState.OPEN:
            self._open(provider, breaker, self._clock())

    def reset(self, provider: str) -> None:
        """Closes ``provider``'s breaker and forgets its failures."""
        breaker = self._breakers.get(provider)
        if breaker is not None and breaker.state is not BreakerState.CLOSED:
            self._close(provider, breaker)
            self._sync(provider, breaker)
        elif breaker is not None:
            breaker.consecutive_failures = 0
            breaker.outcomes.clear()
            breaker.window_failures = 0

    def forget(self, provider: str) -> None:
        """Drops ``provider``'s breaker (the endpoint was removed)."""
        self._breakers.pop(provider, None)
        self.half_open.discard(provider)

    def state(self, provider: str) -> BreakerState:
        """The breaker's state now (closed for an endpoint never seen)."""
        self.poll()
        breaker = self._breakers.get(provider)
        return BreakerState.CLOSED if breaker is None else breaker.state

    def snapshot(self, provider: str) -> BreakerSnapshot:
        """The breaker of ``provider`` as a record."""
        self.poll()
        breaker = self._breakers.get(provider) or _Breaker(self.window_size)
        return BreakerSnapshot(
            endpoint_id=provider,
            state=breaker.state,
            failure_count=breaker.consecutive_failures,
            opened_at=breaker.opened_at,
            last_failure_time=breaker.last_failure_time,
            trials_in_flight=breaker.trials,
            activations=breaker.activations,
        )

    def snapshots(self, providers: Iterable[str] | None = None) -> list[BreakerSnapshot]:
        """Snapshots of the given endpoints, or of every endpoint seen."""
        return [self.snapshot(p) for p in (self._breakers if providers is None else providers)]

    def open_endpoints(self) -> frozenset[str]:
        """Endpoints whose breaker is open now."""
        self.poll()
        return frozenset(p for p, b in self._breakers.items() if b.state is BreakerState.OPEN)

    # Internals --------------------------------------------------------------------------

    def _breaker(self, provider: str) -> _Breaker:
        breaker = self._breakers.get(provider)
        if breaker is None:
            breaker = self._breakers[provider] = _Breaker(self.window_size)
        return breaker

    def _record(self, provider: str, success: bool) -> None:
        self.poll()
        breaker = self._breaker(provider)
        now = self._clock()
        if not success:
            breaker.last_failure_time = now
        if breaker.state is BreakerState.HALF_OPEN:
            if breaker.trials:
                breaker.trials -= 1
            if success:
                self._close(provider, breaker)
                self._sync(provider, breaker)
            else:
                self._open(provider, breaker, now)
            return
        if breaker.state is BreakerState.OPEN:
            return
        if len(breaker.outcomes) == breaker.outcomes.maxlen and not breaker.outcomes[0]:
            breaker.window_failures -= 1
        breaker.outcomes.append(success)
        if success:
            breaker.consecutive_failures = 0
            return
        breaker.window_failures += 1
        breaker.consecutive_failures += 1
        if breaker.consecutive_failures >= self.failure_threshold or self._rate_tripped(breaker):
            self._open(provider, breaker, now)

    def _rate_tripped(self, breaker: _Breaker) -> bool:
        if self.failure_rate_threshold is None or len(breaker.outcomes) < self.minimum_calls:
            return False
        return breaker.window_failures >= self.failure_rate_threshold * len(breaker.outcomes)

    def _open(self, provider: str, breaker: _Breaker, now: float) -> None:
        breaker.opened_at = now
        breaker.trials = 0
        self._openings += 1
        breaker.generation = self._openings
        breaker.activations += 1
        self.activations += 1
        if self.automatic_recovery:
            deadline = now + self.recovery_timeout
            heapq.heappush(self._recoveries, (deadline, breaker.generation, provider))
            self.next_recovery = min(self.next_recovery, deadline)
        self._transition(provider, breaker, BreakerState.OPEN)
        _log.warning(
            "circuit opened for %s (%d consecutive failures, %d of the last %d calls failed)",
            provider,
            breaker.consecutive_failures,
            breaker.window_failures,
            len(breaker.outcomes),
        )
        self._sync(provider, breaker)

    def _close(self, provider: str, breaker: _Breaker) -> None:
        breaker.consecutive_failures = 0
        breaker.outcomes.clear()
        breaker.window_failures = 0
        breaker.opened_at = None
        breaker.trials = 0
        self._transition(provider, breaker, BreakerState.CLOSED)

    def _transition(self, provider: str, breaker: _Breaker, new: BreakerState) -> None:
        old = breaker.state
        breaker.state = new
        if new is BreakerState.HALF_OPEN:
            self.half_open.add(provider)
        else:
            self.half_open.discard(provider)
        for listener in self._state_listeners:
            listener(provider, old, new)

    def _sync(self, provider: str, breaker: _Breaker) -> None:
        """Tells availability listeners when ``provider`` starts or stops admitting."""
        available = breaker.state is BreakerState.CLOSED or (
            breaker.state is BreakerState.HALF_OPEN and breaker.trials < self.half_open_max_calls
        )
        if available != breaker.available:
            breaker.available = available
            for listener in self._availability_listeners:
                listener(provider, available)
