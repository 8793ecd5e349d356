"""Passive outlier detection, in Envoy's manner.

Every finished call is recorded. An endpoint is ejected (taken out of the candidates)

- at once, after ``consecutive_errors`` failures in a row (Envoy's consecutive_5xx);
- at the end of an ``interval``, when its success rate over that interval is below
  ``mean - success_rate_stdev_factor * stdev`` of the endpoints that served at least
  ``success_rate_request_volume`` calls, provided at least
  ``success_rate_minimum_hosts`` endpoints did (Envoy's success-rate ejection).

An ejection lasts ``base_ejection_time * n`` seconds, where ``n`` counts this
endpoint's ejections, capped at ``max_ejection_time``; ``n`` decays by one for each
interval the endpoint spends in service. At most ``max_ejection_percent`` of the
fleet is ejected at once, but one endpoint always may be, as in Envoy, so a small
fleet still sheds a bad host.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import positive_int, positive_number

__all__ = ["Ejection", "OutlierDetector"]

_log = logging.getLogger("fleetroute.outlier_detection")


@dataclass(frozen=True, slots=True)
class Ejection:
    """One ejection: who, why, from when until when."""

    endpoint_id: str
    reason: str  # "consecutive_errors", "success_rate" or "manual"
    ejected_at: float
    until: float


class _Host:
    __slots__ = (
        "consecutive_errors",
        "ejected_until",
        "ejections",
        "generation",
        "requests",
        "successes",
    )

    def __init__(self) -> None:
        self.consecutive_errors = 0
        self.requests = 0
        self.successes = 0
        self.ejections = 0
        self.ejected_until: float | None = None
        self.generation = 0


class OutlierDetector:
    """Ejects endpoints whose calls fail, with Envoy's defaults.

    ``on_eject(endpoint, ejection)`` and ``on_restore(endpoint)`` are called on
    transitions; routers use them to take the endpoint out of the Rust picker's
    candidates and put it back.
    """

    def __init__(
        self,
        *,
        consecutive_errors: int = 5,
        interval: float = 10.0,
        base_ejection_time: float = 30.0,
        max_ejection_time: float = 300.0,
        max_ejection_percent: float = 10.0,
        success_rate_minimum_hosts: int = 5,
        success_rate_request_volume: int = 100,
        success_rate_stdev_factor: float = 1.9,
        clock: Clock = monotonic_clock,
        on_eject: Callable[[str, Ejection], None] | None = None,
        on_restore: Callable[[str], None] | None = None,
    ) -> None:
        self.consecutive_errors = positive_int("consecutive_errors", consecutive_errors)
        self.interval = positive_number("interval", interval)
        self.base_ejection_time = positive_number("base_ejection_time", base_ejection_time)
        self.max_ejection_time = positive_number("max_ejection_time", max_ejection_time)
        if not (
            isinstance(max_ejection_percent, int | float)
            and not isinstance(max_ejection_percent, bool)
            and 0 <= max_ejection_percent <= 100
        ):
            raise ValueError(
                f"max_ejection_percent must be in [0, 100] (got {max_ejection_percent!r})"
            )
        self.max_ejection_percent = float(max_ejection_percent)
        self.success_rate_minimum_hosts = positive_int(
            "success_rate_minimum_hosts", success_rate_minimum_hosts
        )
        self.success_rate_request_volume = positive_int(
            "success_rate_request_volume", success_rate_request_volume
        )
        if not (
            isinstance(success_rate_stdev_factor, int | float)
            and math.isfinite(success_rate_stdev_factor)
            and success_rate_stdev_factor > 0
        ):
            raise ValueError(
                "success_rate_stdev_factor must be finite and > 0 "
                f"(got {success_rate_stdev_factor!r})"
            )
        self.success_rate_stdev_factor = float(success_rate_stdev_factor)
        self._clock = clock
        self._on_eject = on_eject
        self._on_restore = on_restore
        self._hosts: dict[str, _Host] = {}
        self._ejected: dict[str, Ejection] = {}
        self._restores: list[tuple[float, int, str]] = []
        self._next_interval = clock() + self.interval
        #: When ``poll`` next has work: an ejection expiring or an interval ending.
        self.next_event = self._next_interval
        # Ejections across all endpoints: a host's generation comes from here, so an
        # endpoint removed and added again never matches the stale restore deadline
        # its predecessor left in the heap.
        self._generations = 0
        self.total_ejections = 0

    # Membership -------------------------------------------------------------------------

    def add_endpoint(self, endpoint_id: str) -> None:
        if endpoint_id in self._hosts:
            raise ValueError(f"endpoint {endpoint_id!r} is already tracked")
        self._hosts[endpoint_id] = _Host()

    def remove_endpoint(self, endpoint_id: str) -> None:
        if endpoint_id not in self._hosts:
            raise KeyError(f"unknown endpoint {endpoint_id!r}")
        del self._hosts[endpoint_id]
        self._ejected.pop(endpoint_id, None)

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self._hosts

    # Observations -----------------------------------------------------------------------

    def record(self, endpoint_id: str, success: bool, now: float | None = None) -> None:
        """Records one finished call; may eject ``endpoint_id`` at once. ``now`` is
        the detector's clock read by the caller (read here when None)."""
        if (self._clock() if now is None else now) >= self.next_event:
            self.poll()
        host = self._hosts.get(endpoint_id)
        if host is None:
            raise KeyError(f"unknown endpoint {endpoint_id!r}")
        host.requests += 1
        if success:
            host.successes += 1
            host.consecutive_errors = 0
            return
        host.consecutive_errors += 1
        if host.consecutive_errors >= self.consecutive_errors and host.ejected_until is None:
            self._eject(endpoint_id, host, "consecutive_errors")

    def poll(self) -> None:
        """Restores ejections that have run out and closes finished intervals. O(1)
        when nothing is due, so routers call it on every request."""
        now = self._clock()
        if now < self.next_event:
            return
        # Due events in time order (a restore before an interval ending at the same
        # instant), so an interval an endpoint spent ejected never decays its
        # multiplier, however long since the last poll.
        while True:
            restore_at = self._restores[0][0] if self._restores else math.inf
            if restore_at <= now and restore_at <= self._next_interval:
                _, generation, endpoint_id = heapq.heappop(self._restores)
                host = self._hosts.get(endpoint_id)
                if (
                    host is not None
                    and host.generation == generation
                    and host.ejected_until is not None
                ):
                    self._restore(endpoint_id, host)
            elif self._next_interval <= now:
                self._close_interval()
                self._next_interval += self.interval
                if not (self._restores and self._restores[0][0] <= now):
                    # Only empty intervals are left before now (their calls would
                    # have polled): they just decay multipliers, all in one step.
                    idle = math.floor((now - self._next_interval) / self.interval) + 1
                    if idle > 0:
                        self._decay(idle)
                        self._next_interval += idle * self.interval
            else:
                break
        self.next_event = min(
            self._next_interval, self._restores[0][0] if self._restores else math.inf
        )

    def eject(self, endpoint_id: str) -> bool:
        """Ejects ``endpoint_id`` now (a monitor's mitigation); False if the ejection
        cap forbids it or it is already ejected."""
        host = self._hosts.get(endpoint_id)
        if host is None:
            raise KeyError(f"unknown endpoint {endpoint_id!r}")
        if host.ejected_until is not None:
            return False
        return self._eject(endpoint_id, host, "manual")

    # Reading ----------------------------------------------------------------------------

    def is_ejected(self, endpoint_id: str) -> bool:
        self.poll()
        return endpoint_id in self._ejected

    def ejected(self) -> dict[str, Ejection]:
        """Current ejections by endpoint."""
        self.poll()
        return dict(self._ejected)

    def ejection_count(self, endpoint_id: str) -> int:
        """The ejection multiplier ``n`` of ``endpoint_id`` (decays while in service)."""
        host = self._hosts.get(endpoint_id)
        if host is None:
            raise KeyError(f"unknown endpoint {endpoint_id!r}")
        return host.ejections

    # Internals --------------------------------------------------------------------------

    def _may_eject(self) -> bool:
        ejected = len(self._ejected)
        if ejected == 0:
            return bool(self._hosts)
        return (ejected + 1) * 100 <= self.max_ejection_percent * len(self._hosts)

    def _eject(self, endpoint_id: str, host: _Host, reason: str) -> bool:
        if not self._may_eject():
            _log.info("not ejecting %s (%s): ejection cap reached", endpoint_id, reason)
            return False
        now = self._clock()
        host.ejections += 1
        duration = min(
            self.base_ejection_time * host.ejections,
            max(self.base_ejection_time, self.max_ejection_time),
        )
        host.ejected_until = now + duration
        self._generations += 1
        host.generation = self._generations
        host.consecutive_errors = 0
        ejection = Ejection(endpoint_id, reason, now, host.ejected_until)
        self._ejected[endpoint_id] = ejection
        self.total_ejections += 1
        heapq.heappush(self._restores, (host.ejected_until, host.generation, endpoint_id))
        self.next_event = min(self.next_event, host.ejected_until)
        _log.warning("ejected %s for %.1f s (%s)", endpoint_id, duration, reason)
        if self._on_eject is not None:
            self._on_eject(endpoint_id, ejection)
        return True

    def _restore(self, endpoint_id: str, host: _Host) -> None:
        host.ejected_until = None
        # Failures of calls that were in flight during the ejection are old news.
        host.consecutive_errors = 0
        self._ejected.pop(endpoint_id, None)
        _log.info("restored %s", endpoint_id)
        if self._on_restore is not None:
            self._on_restore(endpoint_id)

    def _close_interval(self) -> None:
        volume = self.success_rate_request_volume
        rates = {
            endpoint_id: host.successes / host.requests
            for endpoint_id, host in self._hosts.items()
            if host.requests >= volume and host.ejected_until is None
        }
        if len(rates) >= self.success_rate_minimum_hosts:
            values = list(rates.values())
            mean = sum(values) / len(values)
            stdev = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
            threshold = mean - self.success_rate_stdev_factor * stdev
            # Worst first, so the ejection cap keeps the most deserving ejections.
            for endpoint_id, rate in sorted(rates.items(), key=lambda item: item[1]):
                if rate >= threshold:
                    break
                self._eject(endpoint_id, self._hosts[endpoint_id], "success_rate")
        for host in self._hosts.values():
            host.requests = host.successes = 0
        self._decay(1)

    def _decay(self, intervals: int) -> None:
        """Endpoints in service through ``intervals`` more intervals: their
        multipliers decay by one each."""
        for host in self._hosts.values():
            if host.ejected_until is None and host.ejections:
                host.ejections = max(0, host.ejections - intervals)
