"""The admit stage: whether a request may proceed at all (rate limits, priority
classes and load shedding, the response cache)."""

from fleetroute.admission.priority import LoadShedder, Priority, parse_priority
from fleetroute.admission.rate_limit import RateLimitDecision, TieredRateLimiter
from fleetroute.admission.response_cache import CacheStats, ResponseCache

__all__ = [
    "CacheStats",
    "LoadShedder",
    "Priority",
    "RateLimitDecision",
    "ResponseCache",
    "TieredRateLimiter",
    "parse_priority",
]
