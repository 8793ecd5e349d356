"""Active health checks: probe each endpoint over HTTP and track whether it is healthy.

Modelled on Envoy's active health checking. Every ``interval`` seconds each target is
probed with ``GET base_url + path``; a probe succeeds iff a response with a 2xx status
arrives within ``timeout`` seconds. A healthy endpoint is marked unhealthy after
``unhealthy_threshold`` consecutive failures, and an unhealthy one is marked healthy
again after ``healthy_threshold`` consecutive successes, so one lost probe does not
flap an endpoint in or out of rotation. The defaults follow the router's config
(``health_check_interval`` 30 s, ``health_check_timeout`` 10 s, ``health_check_path``
``"/health"``, ``failure_threshold`` 3).

Example::

    async with HealthChecker({"gpu-0": "http://10.0.0.5:8000"}, on_change=notify) as hc:
        await hc.run(stop_event)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import positive_int, positive_number

__all__ = ["HealthChecker", "HealthStatus"]

logger = logging.getLogger("fleetroute.health")


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """A snapshot of one endpoint's health-check state."""

    endpoint_id: str
    healthy: bool
    consecutive_failures: int
    consecutive_successes: int
    #: Clock time at which the last probe completed; None before the first probe.
    last_checked: float | None
    #: Seconds the last probe took; None if it failed before any response arrived.
    last_latency: float | None
    #: Why the last probe failed ("HTTP 503", "timeout after 0.2 s", ...); None on success.
    last_error: str | None


class _Target:
    """Mutable per-endpoint state; never handed out (callers get HealthStatus copies)."""

    __slots__ = (
        "base_url",
        "failures",
        "healthy",
        "last_checked",
        "last_error",
        "last_latency",
        "successes",
        "url",
    )

    def __init__(self, base_url: str, url: str, healthy: bool) -> None:
        self.base_url = base_url
        self.url = url
        self.healthy = healthy
        self.failures = 0
        self.successes = 0
        self.last_checked: float | None = None
        self.last_latency: float | None = None
        self.last_error: str | None = None


def _normalise_base_url(endpoint_id: object, base_url: object) -> str:
    """Returns ``base_url`` without a trailing slash, or raises ValueError."""
    if not isinstance(endpoint_id, str) or not endpoint_id:
        raise ValueError(f"endpoint_id must be a non-empty str (got {endpoint_id!r})")
    bad = ValueError(
        f"base_url for {endpoint_id!r} must be http(s)://host[:port] (got {base_url!r})"
    )
    if not isinstance(base_url, str):
        raise bad
    try:
        parts = urlsplit(base_url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise bad from None
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
        or port == 0
    ):
        raise bad
    return base_url.rstrip("/")


def _describe_error(exc: BaseException, timeout: float) -> str:
    """A short, human-readable reason for a failed probe."""
    if isinstance(exc, (asyncio.TimeoutError, httpx.TimeoutException)):
        return f"timeout after {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        # httpx wraps the OS error (often twice); find it so "refused" is reported as such.
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConnectionRefusedError):
                return f"connection refused: {cause}"
            cause = cause.__cause__ or cause.__context__
        return f"connection failed: {exc}"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return f"probe error: {type(exc).__name__}: {exc}"


class HealthChecker:
    """Probes a set of HTTP endpoints and tracks their health with thresholds.

    ``targets`` maps endpoint ids to base URLs (``"http://127.0.0.1:8001"``); the probe
    is ``GET base_url + path``. ``on_change(endpoint_id, healthy)`` is called once per
    transition; an exception it raises is logged and does not stop checking. ``clock``
    stamps ``last_checked`` and measures latency; ``sleep`` waits between rounds in
    :meth:`run`. If ``client`` is given it is used as is and left open by
    :meth:`aclose`; otherwise the checker creates (on first probe) and closes its own.
    """

    def __init__(
        self,
        targets: Mapping[str, str] | None = None,
        *,
        path: str = "/health",
        interval: float = 30.0,
        timeout: float = 10.0,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 2,
        initially_healthy: bool = True,
        on_change: Callable[[str, bool], None] | None = None,
        clock: Clock = monotonic_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        # Validate everything before storing anything, so a bad argument leaves no object.
        self._interval = positive_number("interval", interval, "a number of seconds")
        self._timeout = positive_number("timeout", timeout, "a number of seconds")
        self._unhealthy_threshold = positive_int("unhealthy_threshold", unhealthy_threshold)
        self._healthy_threshold = positive_int("healthy_threshold", healthy_threshold)
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path must be a str starting with '/' (got {path!r})")
        self._path = path
        self._initially_healthy = bool(initially_healthy)
        self._on_change = on_change
        self._clock = clock
        self._sleep = sleep
        self._client = client
        self._owns_client = client is None
        self._targets: dict[str, _Target] = {}
        if targets is not None:
            staged: dict[str, _Target] = {}
            for endpoint_id, base_url in targets.items():
                staged[endpoint_id] = self._new_target(endpoint_id, base_url)
            self._targets = staged

    # -- targets ---------------------------------------------------------------------

    def _new_target(self, endpoint_id: str, base_url: str) -> _Target:
        base = _normalise_base_url(endpoint_id, base_url)
        return _Target(base, base + self._path, self._initially_healthy)

    def add_target(self, endpoint_id: str, base_url: str) -> None:
        """Adds an endpoint to check; it starts with ``initially_healthy`` and no history."""
        target = self._new_target(endpoint_id, base_url)
        if endpoint_id in self._targets:
            raise ValueError(f"endpoint {endpoint_id!r} is already a health-check target")
        self._targets[endpoint_id] = target

    def remove_target(self, endpoint_id: str) -> None:
        """Stops checking an endpoint; a probe already in flight for it is discarded."""
        try:
            del self._targets[endpoint_id]
        except KeyError:
            raise KeyError(f"unknown health-check target {endpoint_id!r}") from None

    def _get(self, endpoint_id: str) -> _Target:
        try:
            return self._targets[endpoint_id]
        except KeyError:
            raise KeyError(f"unknown health-check target {endpoint_id!r}") from None

    # -- probing ---------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        # Created lazily so that constructing a checker needs no event loop and
        # a checker that is never used holds no connection pool to close. Proxy
        # environment variables are ignored: the probe must reach the endpoint itself,
        # not a proxy answering in its place. Redirects are not followed (3xx fails).
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    async def _probe(self, url: str) -> tuple[str | None, float | None]:
        """One GET; returns (error or None, latency or None if no response arrived)."""
        client = self._http()
        started = self._clock()
        try:
            # httpx's timeout applies per phase (connect, read, ...); wait_for bounds the
            # whole exchange, which is what "a response within timeout" means.
            response = await asyncio.wait_for(
                client.get(url, timeout=self._timeout), timeout=self._timeout
            )
        except Exception as exc:
            # Any failure to get a response is a failed probe, never a crashed loop.
            return _describe_error(exc, self._timeout), None
        latency = self._clock() - started
        if 200 <= response.status_code <= 299:
            return None, latency
        return f"HTTP {response.status_code}", latency

    def _record(
        self, endpoint_id: str, target: _Target, error: str | None, latency: float | None
    ) -> None:
        target.last_checked = self._clock()
        target.last_latency = latency
        target.last_error = error
        changed = False
        if error is None:
            target.successes += 1
            target.failures = 0
            if not target.healthy and target.successes >= self._healthy_threshold:
                target.healthy = True
                changed = True
                logger.info(
                    "endpoint %r marked healthy after %d consecutive successful checks",
                    endpoint_id,
                    target.successes,
                )
        else:
            target.failures += 1
            target.successes = 0
            logger.debug("health check of %r failed: %s", endpoint_id, error)
            if target.healthy and target.failures >= self._unhealthy_threshold:
                target.healthy = False
                changed = True
                logger.warning(
                    "endpoint %r marked unhealthy after %d consecutive failed checks "
                    "(last error: %s)",
                    endpoint_id,
                    target.failures,
                    error,
                )
        if changed and self._on_change is not None:
            try:
                self._on_change(endpoint_id, target.healthy)
            except Exception:
                # A faulty listener must not stop health checking for every endpoint.
                logger.exception("on_change callback failed for endpoint %r", endpoint_id)

    async def _check_target(self, endpoint_id: str, target: _Target) -> bool:
        error, latency = await self._probe(target.url)
        # The target may have been removed (or removed and re-added) while the probe was
        # in flight; applying a stale result would resurrect or corrupt its state.
        if self._targets.get(endpoint_id) is not target:
            return False
        self._record(endpoint_id, target, error, latency)
        return target.healthy

    async def check(self, endpoint_id: str) -> bool:
        """Probes one endpoint once, updates its counters, and returns its health.

        Raises KeyError if the endpoint is unknown. If it is removed while the probe is
        in flight, the result is discarded and False is returned.
        """
        return await self._check_target(endpoint_id, self._get(endpoint_id))

    async def check_once(self) -> dict[str, bool]:
        """Probes every endpoint concurrently; returns ``{endpoint_id: healthy}``.

        Endpoints removed during the round are left out of the result.
        """
        snapshot = list(self._targets.items())
        results = await asyncio.gather(
            *(self._check_target(endpoint_id, target) for endpoint_id, target in snapshot)
        )
        return {
            endpoint_id: healthy
            for (endpoint_id, target), healthy in zip(snapshot, results, strict=True)
            if self._targets.get(endpoint_id) is target
        }

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Checks all endpoints, waits ``interval`` with ``sleep``, and repeats.

        Returns once ``stop`` is set (at once, even mid-wait); runs until cancelled if
        ``stop`` is None.
        """
        while stop is None or not stop.is_set():
            await self.check_once()
            if stop is None:
                await self._sleep(self._interval)
            elif not stop.is_set():
                await self._sleep_unless_stopped(stop)

    async def _sleep_unless_stopped(self, stop: asyncio.Event) -> None:
        # Race the interval against the stop event so shutdown does not wait out a
        # 30-second interval.
        sleeper = asyncio.ensure_future(self._sleep(self._interval))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        if sleeper.done() and not sleeper.cancelled():
            sleeper.result()  # surface an error raised by the injected sleep

    # -- queries ---------------------------------------------------------------------

    def is_healthy(self, endpoint_id: str) -> bool:
        """Whether the endpoint is currently considered healthy; KeyError if unknown."""
        return self._get(endpoint_id).healthy

    def status(self, endpoint_id: str) -> HealthStatus:
        """A snapshot of one endpoint's state; KeyError if unknown."""
        return self._snapshot(endpoint_id, self._get(endpoint_id))

    def statuses(self) -> list[HealthStatus]:
        """Snapshots of every endpoint, in the order they were added."""
        return [self._snapshot(eid, target) for eid, target in self._targets.items()]

    @staticmethod
    def _snapshot(endpoint_id: str, target: _Target) -> HealthStatus:
        return HealthStatus(
            endpoint_id=endpoint_id,
            healthy=target.healthy,
            consecutive_failures=target.failures,
            consecutive_successes=target.successes,
            last_checked=target.last_checked,
            last_latency=target.last_latency,
            last_error=target.last_error,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def aclose(self) -> None:
        """Closes the HTTP client if this checker created it (a later probe makes anew)."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> HealthChecker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        healthy = sum(target.healthy for target in self._targets.values())
        return (
            f"HealthChecker(targets={len(self._targets)}, healthy={healthy}, "
            f"interval={self._interval:g}, timeout={self._timeout:g}, path={self._path!r})"
        )
