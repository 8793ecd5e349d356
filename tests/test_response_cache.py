"""ResponseCache: canonical keys, hit/miss accounting, TTL expiry and LRU eviction."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from types import MappingProxyType

import pytest

from fleetroute.admission.response_cache import (
    DEFAULT_IGNORED_FIELDS,
    CacheStats,
    ResponseCache,
)
from fleetroute.clock import ManualClock


def request(prompt: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": "m", "prompt": prompt, "temperature": 0, **extra}


def make(max_entries: int = 100, ttl: float = 60.0) -> tuple[ResponseCache, ManualClock]:
    clock = ManualClock()
    return ResponseCache(max_entries, ttl, clock=clock), clock


def test_hit_miss_counting_and_hit_rate() -> None:
    cache, _ = make()
    assert cache.hit_rate == 0.0
    assert cache.stats == CacheStats(0, 0, 0, 0, 0, 100)
    assert cache.get(request()) is None
    cache.put(request(), "world")
    assert cache.get(request()) == "world"
    assert cache.get(request()) == "world"
    assert cache.get(request("other")) is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.size) == (2, 2, 1)
    assert stats.hit_rate == 0.5
    assert cache.hit_rate == 0.5
    assert len(cache) == 1


def test_response_is_returned_as_the_same_object() -> None:
    cache, _ = make()
    response = {"choices": [{"text": "x"}]}
    cache.put(request(), response)
    assert cache.get(request()) is response


def test_put_replaces_an_existing_entry_and_restarts_its_ttl() -> None:
    cache, clock = make(ttl=10.0)
    cache.put(request(), "first")
    clock.advance(8.0)
    cache.put(request(), "second")
    clock.advance(8.0)
    assert cache.get(request()) == "second"
    assert len(cache) == 1


def test_ttl_expiry_counts_an_expiration_and_a_miss() -> None:
    cache, clock = make(ttl=60.0)
    cache.put(request(), "r")
    clock.advance(59.9)
    assert cache.get(request()) == "r"
    assert request() in cache
    clock.advance(0.2)
    assert request() not in cache
    assert len(cache) == 1  # membership tests do not remove anything
    assert cache.get(request()) is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.expirations, stats.size) == (1, 1, 1, 0)


def test_a_hit_does_not_extend_the_ttl() -> None:
    cache, clock = make(ttl=10.0)
    cache.put(request(), "r")
    for _ in range(9):
        clock.advance(1.0)
        assert cache.get(request()) == "r"
    clock.advance(1.0)
    assert cache.get(request()) is None


def test_per_entry_ttl_override() -> None:
    cache, clock = make(ttl=60.0)
    cache.put(request("short"), "s", ttl=5.0)
    cache.put(request("long"), "l", ttl=120.0)
    cache.put(request("default"), "d")
    clock.advance(6.0)
    assert cache.get(request("short")) is None
    assert cache.get(request("default")) == "d"
    clock.advance(60.0)
    assert cache.get(request("default")) is None
    assert cache.get(request("long")) == "l"
    key = cache.key_for(request("by key"))
    cache.put_by_key(key, "k", ttl=1.0)
    assert cache.get_by_key(key) == "k"
    clock.advance(1.0)
    assert cache.get_by_key(key) is None


def test_lru_eviction_order_and_get_refreshes_recency() -> None:
    cache, _ = make(max_entries=3)
    for name in "abc":
        cache.put(request(name), name)
    assert cache.get(request("a")) == "a"  # a is now the most recently used
    cache.put(request("d"), "d")  # evicts b, the least recently used
    assert request("b") not in cache
    assert all(request(name) in cache for name in "acd")
    cache.put(request("c"), "c2")  # a put refreshes recency too
    cache.put(request("e"), "e")  # evicts a
    assert request("a") not in cache
    assert all(request(name) in cache for name in "cde")
    stats = cache.stats
    assert (stats.evictions, stats.size, stats.max_entries) == (2, 3, 3)


def test_contains_changes_neither_stats_nor_recency() -> None:
    cache, _ = make(max_entries=2)
    cache.put(request("a"), "a")
    cache.put(request("b"), "b")
    before = cache.stats
    assert request("a") in cache
    assert request("z") not in cache
    assert "not a mapping" not in cache
    assert cache.stats == before
    cache.put(request("c"), "c")  # a is still the least recently used
    assert request("a") not in cache


def test_evicting_an_expired_entry_counts_as_expiration() -> None:
    cache, clock = make(max_entries=1, ttl=1.0)
    cache.put(request("a"), "a")
    clock.advance(2.0)
    cache.put(request("b"), "b")
    assert (cache.stats.evictions, cache.stats.expirations) == (0, 1)


def test_canonical_key_ignores_key_order_and_ignored_fields() -> None:
    cache, _ = make()
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    reordered = {"max_tokens": 8, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    decorated = {
        **base,
        "priority": 3,
        "user": "alice",
        "user_id": 7,
        "request_id": "r-1",
        "stream": True,
        "metadata": {"trace": object()},  # ignored fields are not even validated
    }
    key = cache.key_for(base)
    assert len(key) == 16
    assert cache.key_for(reordered) == key
    assert cache.key_for(decorated) == key
    assert cache.key_for(MappingProxyType(base)) == key
    cache.put(base, "answer")
    assert cache.get(decorated) == "answer"


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "m2"},
        {"max_tokens": 9},
        {"max_tokens": 8.0},  # int and float are different JSON
        {"max_tokens": True},
        {"max_tokens": None},
        {"max_tokens": "8"},
        {"messages": [{"role": "user", "content": "hi "}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi", "name": "x"}]},
        {"temperature": 0},  # an extra field
        {"Priority": 1},  # ignoring is exact and top-level only
    ],
)
def test_any_other_difference_changes_the_key(changed: dict[str, object]) -> None:
    cache, _ = make()
    base: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 8,
    }
    assert cache.key_for({**base, **changed}) != cache.key_for(base)


def test_ignored_fields_are_top_level_only() -> None:
    cache, _ = make()
    assert cache.key_for({"a": {"user": 1}}) != cache.key_for({"a": {"user": 2}})


def test_custom_ignored_fields() -> None:
    clock = ManualClock()
    cache = ResponseCache(clock=clock, ignored_fields=["seed_hint"])
    assert cache.ignored_fields == frozenset({"seed_hint"})
    assert cache.key_for({"p": 1, "seed_hint": 1}) == cache.key_for({"p": 1})
    assert cache.key_for({"p": 1, "user": 1}) != cache.key_for({"p": 1})
    assert "priority" in DEFAULT_IGNORED_FIELDS


def test_random_key_orders_agree() -> None:
    rng = random.Random(4)
    cache, _ = make()
    fields = [(f"f{i}", rng.randint(0, 1000)) for i in range(20)]
    key = cache.key_for(dict(fields))
    for _ in range(20):
        rng.shuffle(fields)
        assert cache.key_for(dict(fields)) == key


@pytest.mark.parametrize(
    ("bad", "path"),
    [
        ({"tags": {"a", "b"}}, "tags"),
        ({"params": {"temperature": math.nan}}, "params.temperature"),
        ({"params": {"top_p": math.inf}}, "params.top_p"),
        ({"messages": [{"role": "user"}, {"content": object()}]}, "messages[1].content"),
        ({"params": {1: "x"}}, "params"),
        ({"blob": b"bytes"}, "blob"),
    ],
)
def test_non_json_values_are_rejected_naming_the_field(
    bad: Mapping[str, object], path: str
) -> None:
    cache, _ = make()
    with pytest.raises(ValueError, match=re.escape(f"request field '{path}'")):
        cache.key_for(bad)
    with pytest.raises(ValueError):
        cache.put(bad, "r")
    with pytest.raises(ValueError):
        cache.get(bad)
    assert cache.stats == CacheStats(0, 0, 0, 0, 0, 100)


def test_non_str_keys_and_cycles_are_rejected() -> None:
    cache, _ = make()
    with pytest.raises(ValueError, match="non-str top-level key"):
        cache.key_for({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="request must be a mapping"):
        cache.key_for(["x"])  # type: ignore[arg-type]
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="nested too deeply"):
        cache.key_for(cyclic)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_entries": 1.5}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"ttl": 0.0}, "ttl"),
        ({"ttl": -1.0}, "ttl"),
        ({"ttl": math.inf}, "ttl"),
        ({"ttl": math.nan}, "ttl"),
        ({"ignored_fields": "user"}, "ignored_fields"),
        ({"ignored_fields": ["user", 3]}, "ignored_fields"),
    ],
)
def test_constructor_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResponseCache(**kwargs)  # type: ignore[arg-type]


def test_put_validation_leaves_the_cache_unchanged() -> None:
    cache, _ = make()
    cache.put(request(), "r")
    before = cache.stats
    with pytest.raises(ValueError, match="response"):
        cache.put(request(), None)
    for ttl in (0.0, -5.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="ttl"):
            cache.put(request(), "new", ttl=ttl)
    with pytest.raises(ValueError, match="key"):
        cache.put_by_key("not bytes", "r")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        cache.get_by_key(bytearray(16))  # type: ignore[arg-type]
    assert cache.stats == before
    assert cache.get(request()) == "r"


def test_purge_expired() -> None:
    cache, clock = make(ttl=10.0)
    cache.put(request("a"), "a", ttl=1.0)
    cache.put(request("b"), "b", ttl=2.0)
    cache.put(request("c"), "c")
    assert cache.purge_expired() == 0
    clock.advance(2.0)
    assert len(cache) == 3
    assert cache.purge_expired() == 2
    assert len(cache) == 1
    assert cache.stats.expirations == 2
    assert cache.get(request("c")) == "c"


def test_invalidate_and_clear() -> None:
    cache, _ = make()
    cache.put(request("a"), "a")
    cache.put(request("b"), "b")
    assert cache.invalidate(request("a", user="someone else"))
    assert not cache.invalidate(request("a"))
    assert request("a") not in cache
    cache.get(request("b"))
    cache.clear()
    assert len(cache) == 0
    assert request("b") not in cache
    stats = cache.stats
    assert (stats.hits, stats.size) == (1, 0)  # counters survive clear()
