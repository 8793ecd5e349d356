"""An opt-in response cache for identical inference requests, bounded by LRU and TTL.

A caller that knows a request is deterministic (temperature 0, no tools with side
effects) can ask for its response to be cached; a later identical request is then
answered without touching the fleet. "Identical" is decided on a canonical form of
the request: top-level bookkeeping fields that do not change the answer (``priority``,
``user``, ``request_id``, ...) are dropped, and the rest is serialised as JSON with
sorted keys and compact separators, then hashed with BLAKE2b. Two requests that differ
only in key order or in ignored fields share a key; any other difference (including
``1`` versus ``1.0``) gives a different key.

Entries live for ``ttl`` seconds (60 by default, the routing-cache TTL) and the cache
holds at most ``max_entries``; when full, the least recently used entry goes. Responses
are stored and returned as the same object, not copied: callers must not mutate them.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleetroute.clock import Clock, monotonic_clock
from fleetroute.validation import positive_number

__all__ = ["DEFAULT_IGNORED_FIELDS", "CacheStats", "ResponseCache"]

#: Top-level request fields that identify or schedule a request but do not change its answer.
DEFAULT_IGNORED_FIELDS: frozenset[str] = frozenset(
    {"priority", "user", "user_id", "request_id", "stream", "metadata"}
)

_DIGEST_SIZE = 16


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of a cache's counters.

    ``size`` counts stored entries, including expired ones not yet removed (removal is
    lazy: on lookup, on eviction, or by :meth:`ResponseCache.purge_expired`).
    """

    hits: int
    misses: int
    evictions: int
    expirations: int
    size: int
    max_entries: int

    @property
    def hit_rate(self) -> float:
        """Hits over lookups; 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


def _validate_key(key: object) -> bytes:
    if not isinstance(key, bytes):
        raise ValueError(f"key must be bytes (got {type(key).__name__}: {key!r})")
    return key


def _canonical(value: object, path: str) -> object:
    """Returns ``value`` as plain JSON types, or raises ValueError naming ``path``."""
    # bool before int: bool is an int subclass but serialises differently.
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"request field {path!r} is not finite (got {value!r})")
        return value
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"request field {path!r} has a non-str key (got {type(key).__name__}: {key!r})"
                )
            out[key] = _canonical(item, f"{path}.{key}")
        return out
    # Tuples are accepted as JSON arrays, so (1, 2) and [1, 2] share a key.
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise ValueError(
        f"request field {path!r} is not a JSON value (got {type(value).__name__}: {value!r})"
    )


class ResponseCache:
    """A bounded, TTL'd, LRU cache of responses keyed by canonicalised requests.

    Lookups count a hit or a miss; an expired entry found by a lookup is removed and
    counted as an expiration and a miss. A hit refreshes the entry's LRU recency but not
    its expiry time. An entry expires once ``clock()`` reaches its insertion time plus
    its TTL. Safe to share between threads.
    """

    __slots__ = (
        "_clock",
        "_entries",
        "_evictions",
        "_expirations",
        "_hits",
        "_ignored",
        "_lock",
        "_max_entries",
        "_misses",
        "_ttl",
    )

    def __init__(
        self,
        max_entries: int = 10_000,
        ttl: float = 60.0,
        *,
        clock: Clock = monotonic_clock,
        ignored_fields: Iterable[str] = DEFAULT_IGNORED_FIELDS,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be an int >= 1 (got {max_entries!r})")
        ttl_value = positive_number("ttl", ttl, "a number of seconds")
        if not callable(clock):
            raise ValueError(f"clock must be callable (got {clock!r})")
        # A bare str is an Iterable[str] of its characters, which is never what was meant.
        if isinstance(ignored_fields, str):
            raise ValueError(
                f"ignored_fields must be a collection of field names, not a str "
                f"(got {ignored_fields!r})"
            )
        ignored = frozenset(ignored_fields)
        for field in ignored:
            if not isinstance(field, str):
                raise ValueError(
                    f"ignored_fields must contain only str (got {type(field).__name__}: {field!r})"
                )
        self._max_entries = max_entries
        self._ttl = ttl_value
        self._clock = clock
        self._ignored = ignored
        # key -> (expires_at, response); order is LRU first, MRU last.
        self._entries: OrderedDict[bytes, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0

    @property
    def max_entries(self) -> int:
        """The most entries the cache holds."""
        return self._max_entries

    @property
    def ttl(self) -> float:
        """The default entry lifetime in seconds."""
        return self._ttl

    @property
    def ignored_fields(self) -> frozenset[str]:
        """Top-level request fields left out of the key."""
        return self._ignored

    def key_for(self, request: Mapping[str, object]) -> bytes:
        """Returns the 16-byte cache key of ``request``.

        Raises ValueError, naming the field path, for values JSON cannot represent
        exactly: non-finite floats, non-str dict keys, sets, arbitrary objects.
        """
        if not isinstance(request, Mapping):
            raise ValueError(f"request must be a mapping (got {type(request).__name__})")
        canonical: dict[str, object] = {}
        try:
            for field, value in request.items():
                if not isinstance(field, str):
                    raise ValueError(
                        f"request has a non-str top-level key (got {type(field).__name__}: "
                        f"{field!r})"
                    )
                if field not in self._ignored:
                    canonical[field] = _canonical(value, field)
            encoded = json.dumps(
                canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
            ).encode("ascii")
        except RecursionError:
            # Self-referencing or absurdly deep requests: refuse rather than crash.
            raise ValueError("request is nested too deeply (or contains a cycle)") from None
        return hashlib.blake2b(encoded, digest_size=_DIGEST_SIZE).digest()

    def get(self, request: Mapping[str, object]) -> object | None:
        """Returns the cached response for ``request``, or None; counts a hit or a miss."""
        return self.get_by_key(self.key_for(request))

    def put(
        self, request: Mapping[str, object], response: object, ttl: float | None = None
    ) -> None:
        """Caches ``response`` for ``request`` for ``ttl`` seconds (default: the cache's)."""
        if response is None:
            # None is the miss sentinel of get(), so it cannot be a cached value.
            raise ValueError("response must not be None")
        if ttl is not None:
            positive_number("ttl", ttl, "a number of seconds")
        self.put_by_key(self.key_for(request), response, ttl)

    def get_by_key(self, key: bytes) -> object | None:
        """Like :meth:`get`, for a key from :meth:`key_for`."""
        _validate_key(key)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            expires_at, response = entry
            if now >= expires_at:
                del self._entries[key]
                self._expirations += 1
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return response

    def put_by_key(self, key: bytes, response: object, ttl: float | None = None) -> None:
        """Like :meth:`put`, for a key from :meth:`key_for`."""
        _validate_key(key)
        if response is None:
            raise ValueError("response must not be None")
        lifetime = self._ttl if ttl is None else positive_number("ttl", ttl, "a number of seconds")
        now = self._clock()
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
            elif len(self._entries) >= self._max_entries:
                _, (expires_at, _) = self._entries.popitem(last=False)
                if now >= expires_at:
                    self._expirations += 1
                else:
                    self._evictions += 1
            self._entries[key] = (now + lifetime, response)

    def invalidate(self, request: Mapping[str, object]) -> bool:
        """Drops the entry for ``request``; True if there was one (expired or not)."""
        key = self.key_for(request)
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self) -> None:
        """Drops every entry; the counters are kept."""
        with self._lock:
            self._entries.clear()

    def purge_expired(self) -> int:
        """Removes every expired entry and returns how many there were."""
        now = self._clock()
        with self._lock:
            expired = [key for key, (expires_at, _) in self._entries.items() if now >= expires_at]
            for key in expired:
                del self._entries[key]
            self._expirations += len(expired)
            return len(expired)

    @property
    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                expirations=self._expirations,
                size=len(self._entries),
                max_entries=self._max_entries,
            )

    @property
    def hit_rate(self) -> float:
        """Hits over lookups so far; 0.0 before the first lookup."""
        return self.stats.hit_rate

    def __len__(self) -> int:
        """Stored entries, including expired ones not yet removed."""
        return len(self._entries)

    def __contains__(self, request: object) -> bool:
        """Whether ``request`` has a live entry; changes neither counters nor recency."""
        if not isinstance(request, Mapping):
            return False
        key = self.key_for(request)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and now < entry[0]

    def __repr__(self) -> str:
        return (
            f"ResponseCache(size={len(self._entries)}, max_entries={self._max_entries}, "
            f"ttl={self._ttl!r})"
        )
