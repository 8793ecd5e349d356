"""Tiered rate limits on the Rust token buckets (seed 000's ``rate_limiting``).

Two limits apply to every request:

- a global one, ``requests_per_minute`` with bursts of ``burst_capacity``;
- a per-user one, ``per_user_limit`` requests per minute scaled by the user's tier
  (``priority_multipliers``: premium 2.0, standard 1.0, free 0.5), with a burst of
  one minute's allowance.

Both are GCRA buckets in Rust (one atomic each, keyed per user). A request takes a
token from its user's bucket first, then from the global one; if the global bucket
refuses, the user's token is refunded, so a refused request costs its user nothing.
A refusal carries ``retry_after``: the seconds until the refusing bucket would admit
it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetroute._native import KeyedTokenBucket, TokenBucket
from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import positive_number

__all__ = ["DEFAULT_TIER_MULTIPLIERS", "RateLimitDecision", "TieredRateLimiter"]

#: Seed 000's tiers.
DEFAULT_TIER_MULTIPLIERS: Mapping[str, float] = {"premium": 2.0, "standard": 1.0, "free": 0.5}

_CONFIG_KEYS = frozenset(
    {
        "requests_per_minute",
        "burst_capacity",
        "per_user_limit",
        "priority_multipliers",
        "default_tier",
    }
)


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """Whether a request may proceed; when not, which limit refused it and when to retry."""

    allowed: bool
    retry_after: float = 0.0
    limit: str | None = None  # "user" or "global" when refused


_ALLOWED = RateLimitDecision(True)


class TieredRateLimiter:
    """Global and per-user, per-tier request limits."""

    def __init__(
        self,
        requests_per_minute: float = 1000,
        burst_capacity: float = 100,
        per_user_limit: float = 50,
        priority_multipliers: Mapping[str, float] | None = None,
        *,
        default_tier: str = "standard",
        clock: Clock = monotonic_clock,
    ) -> None:
        self.requests_per_minute = positive_number("requests_per_minute", requests_per_minute)
        self.burst_capacity = positive_number("burst_capacity", burst_capacity)
        if self.burst_capacity < 1:
            raise ValueError(f"burst_capacity must be >= 1 (got {burst_capacity!r})")
        self.per_user_limit = positive_number("per_user_limit", per_user_limit)
        multipliers = dict(
            DEFAULT_TIER_MULTIPLIERS if priority_multipliers is None else priority_multipliers
        )
        if not multipliers:
            raise ValueError("priority_multipliers must name at least one tier")
        for tier, multiplier in multipliers.items():
            if not isinstance(tier, str) or not tier:
                raise ValueError(f"priority_multipliers keys must be tier names (got {tier!r})")
            positive_number(f"priority_multipliers[{tier!r}]", multiplier)
        if default_tier not in multipliers:
            raise ValueError(f"default_tier {default_tier!r} is not one of {sorted(multipliers)}")
        self.priority_multipliers = multipliers
        self.default_tier = default_tier
        self._clock = clock
        self._global = TokenBucket(self.requests_per_minute / 60.0, self.burst_capacity)
        self._users: dict[str, KeyedTokenBucket] = {}
        for tier, multiplier in multipliers.items():
            per_minute = self.per_user_limit * multiplier
            # Burst = one minute's allowance, at least one request.
            self._users[tier] = KeyedTokenBucket(per_minute / 60.0, max(1.0, per_minute))
        self.refused = 0
        self.admitted = 0

    @classmethod
    def from_config(
        cls, config: Mapping[str, object], *, clock: Clock = monotonic_clock
    ) -> TieredRateLimiter:
        """Builds from seed 000's ``rate_limiting`` dict; unknown keys are refused."""
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ValueError(
                f"unknown rate_limiting setting(s) {sorted(unknown)}; known: {sorted(_CONFIG_KEYS)}"
            )
        return cls(**config, clock=clock)  # type: ignore[arg-type]

    def tier_limit(self, tier: str) -> float:
        """Requests per minute one user of ``tier`` may make."""
        return self.per_user_limit * self.priority_multipliers[self._tier(tier)]

    def _tier(self, tier: str | None) -> str:
        if tier is None:
            return self.default_tier
        if tier not in self.priority_multipliers:
            raise ValueError(f"unknown tier {tier!r}; known: {sorted(self.priority_multipliers)}")
        return tier

    def check(
        self, user: str | None, tier: str | None = None, cost: int = 1, now: float | None = None
    ) -> RateLimitDecision:
        """Takes ``cost`` tokens for ``user`` (of ``tier``) and from the global limit,
        or refuses without taking any. ``user=None`` is subject to the global limit only.
        ``now`` is the limiter's clock read by the caller (read here when None)."""
        if cost.__class__ is not int or cost < 1:
            raise ValueError(f"cost must be an integer >= 1 (got {cost!r})")
        bucket = self._users[self.default_tier if tier is None else self._tier(tier)]
        if now is None:
            now = self._clock()
        if user is not None:
            wait = bucket.try_acquire_retry_after(user, cost, now)
            if wait > 0.0:
                self.refused += 1
                return RateLimitDecision(False, wait, "user")
        try:
            wait = self._global.try_acquire_retry_after(cost, now)
        except BaseException:
            # E.g. cost above the global burst: the request never ran, so the
            # user's tokens go back as they do for a refusal.
            if user is not None:
                bucket.refund(user, cost)
            raise
        if wait > 0.0:
            if user is not None:
                bucket.refund(user, cost)
            self.refused += 1
            return RateLimitDecision(False, wait, "global")
        self.admitted += 1
        return _ALLOWED
