"""Retries: which failures are worth another attempt, and how long to wait first.

Retryable are the failures another endpoint (or the same one, later) may not repeat:
timeouts, connection errors, HTTP 429 and 5xx. A 4xx other than 429 says the request
itself is wrong, so it is returned to the caller at once. Waits follow exponential
backoff with full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"):
attempt ``k`` waits ``uniform(0, min(max_delay, base_delay * multiplier**k))``, which
spreads a burst of retries instead of synchronising them.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field

import httpx

__all__ = ["RetryPolicy", "UpstreamError", "is_retryable", "status_of"]


class UpstreamError(Exception):
    """A call to an endpoint failed with an HTTP status (raise it from a call
    function to let the retry policy see the status)."""

    def __init__(self, status_code: int, message: str = "") -> None:
        super().__init__(message or f"upstream answered HTTP {status_code}")
        self.status_code = status_code


def status_of(error: BaseException) -> int | None:
    """The HTTP status an error carries, if any."""
    if isinstance(error, UpstreamError):
        return error.status_code
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def is_retryable(error: BaseException) -> bool:
    """True for timeouts, connection failures, a peer breaking the protocol, HTTP 429
    and 5xx; not for errors of the request itself (4xx, an unsupported URL scheme)."""
    status = status_of(error)
    if status is not None:
        return status == 429 or 500 <= status <= 599
    return isinstance(
        error,
        TimeoutError
        | asyncio.TimeoutError
        | ConnectionError
        | httpx.TimeoutException
        | httpx.NetworkError
        | httpx.RemoteProtocolError,
    )


@dataclass
class RetryPolicy:
    """``max_retries`` further attempts after the first, with jittered backoff."""

    max_retries: int = 3
    base_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be an integer >= 0 (got {self.max_retries!r})")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0 (got {self.max_retries})")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number of seconds >= 0 (got {value!r})")
        if not (
            isinstance(self.multiplier, int | float)
            and not isinstance(self.multiplier, bool)
            and math.isfinite(self.multiplier)
            and self.multiplier >= 1
        ):
            raise ValueError(f"multiplier must be finite and >= 1 (got {self.multiplier!r})")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        if retry < 0:
            raise ValueError(f"retry must be >= 0 (got {retry})")
        try:
            ceiling = self.base_delay * self.multiplier**retry
        except OverflowError:  # past any float, so past max_delay (unless base is 0)
            ceiling = math.inf if self.base_delay > 0 else 0.0
        return self.rng.uniform(0.0, min(self.max_delay, ceiling))
