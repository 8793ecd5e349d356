"""jump_hash against the published algorithm, and the GCRA token buckets."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetroute import KeyedTokenBucket, TokenBucket, hash_key, jump_hash


def reference_jump_hash(key: int, buckets: int) -> int:
    """Lamping & Veach (2014), transcribed from the paper's C++."""
    b, j = -1, 0
    key &= (1 << 64) - 1
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & ((1 << 64) - 1)
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=1, max_value=10_000))
def test_jump_hash_equals_the_published_algorithm(key: int, buckets: int) -> None:
    assert jump_hash(key, buckets) == reference_jump_hash(key, buckets)


def test_jump_hash_known_values_and_errors() -> None:
    # Guava's test vectors for consistentHash(long, int).
    assert jump_hash(1, 1) == 0
    assert [jump_hash(k, 100) for k in range(3)] == [reference_jump_hash(k, 100) for k in range(3)]
    with pytest.raises(ValueError, match="buckets"):
        jump_hash(1, 0)
    with pytest.raises(ValueError, match="buckets"):
        jump_hash(1, -3)
    assert jump_hash("user", 10) == jump_hash(hash_key("user"), 10)


def test_token_bucket_with_an_injected_clock() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3)
    assert [bucket.try_acquire(now=10.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.try_acquire_retry_after(now=10.0) == pytest.approx(0.5)
    assert not bucket.try_acquire(now=10.49)
    assert bucket.try_acquire(now=10.5)
    assert bucket.try_acquire(n=2, now=11.5)
    assert (bucket.rate_per_s, bucket.burst) == (2.0, 3.0)


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0.0, 1.0, "rate_per_s"),
        (-1.0, 1.0, "rate_per_s"),
        (math.nan, 1.0, "rate_per_s"),
        (1.0, 0.5, "burst"),
        (1.0, math.inf, "burst"),
    ],
)
def test_token_bucket_bad_configuration(rate: float, burst: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TokenBucket(rate, burst)


def test_token_bucket_bad_calls_change_nothing() -> None:
    bucket = TokenBucket(1.0, 2)
    with pytest.raises(ValueError, match="exceeds burst"):
        bucket.try_acquire(n=3, now=0.0)
    with pytest.raises(ValueError, match="now"):
        bucket.try_acquire(now=-1.0)
    with pytest.raises(ValueError, match="n"):
        bucket.try_acquire(n=-1, now=0.0)
    assert bucket.try_acquire(n=2, now=0.0)


def test_keyed_buckets_are_independent_and_prunable() -> None:
    limits = KeyedTokenBucket(rate_per_s=1.0, burst=1)
    assert limits.try_acquire("alice", now=0.0)
    assert not limits.try_acquire("alice", now=0.5)
    assert limits.try_acquire("bob", now=0.5)
    assert limits.try_acquire(17, now=0.5)
    assert len(limits) == 3
    assert limits.try_acquire_retry_after("alice", now=0.5) == pytest.approx(0.5)
    assert limits.retain_active(now=5.0) == 3
    assert len(limits) == 0
    assert limits.try_acquire("alice", now=5.0)


def test_limiter_reprs_show_configuration() -> None:
    assert repr(TokenBucket(2.0, 3)) == "TokenBucket(rate_per_s=2.0, burst=3.0)"
    limits = KeyedTokenBucket(1.0, 1)
    limits.try_acquire("a", now=0.0)
    assert repr(limits) == "KeyedTokenBucket(rate_per_s=1.0, burst=1.0, keys=1)"
