"""Resolved candidate sets, strict-order routing and token refunds (the native pieces
the Python policies build on)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import fleetroute
from fleetroute import Accelerator, CandidateSet, KeyedTokenBucket, Router, TokenBucket


def _router(strategy: str = "p2c", ids: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> Router:
    router = Router(strategy, seed=11, priority_reserve=0.1)
    router.add_accelerators([Accelerator(i, 10) for i in ids])
    return router


# CandidateSet ---------------------------------------------------------------------------


def test_candidate_set_from_ids_keeps_order() -> None:
    router = _router(ids=(10, 20, 30, 40))
    cs = router.candidate_set([30, 10])
    assert isinstance(cs, CandidateSet)
    assert len(cs) == 2
    assert cs.ids() == [30, 10]
    assert 30 in cs
    assert 10 in cs
    assert 20 not in cs
    assert 99 not in cs  # not registered at all
    assert -1 not in cs
    assert repr(cs) == "CandidateSet(len=2)"


def test_candidate_set_from_a_mask_in_registration_order() -> None:
    router = _router(ids=(7, 3, 9, 1))
    cs = router.candidate_set(np.array([True, False, True, True]))
    assert cs.ids() == [7, 9, 1]
    assert 3 not in cs
    assert router.candidate_set(np.zeros(4, dtype=bool)).ids() == []


def test_candidate_set_duplicates_collapse() -> None:
    router = _router()
    cs = router.candidate_set([2, 2, 4, 2])
    assert cs.ids() == [2, 4]
    assert len(cs) == 2


def test_candidate_set_of_a_candidate_set_is_an_equal_copy() -> None:
    router = _router()
    cs = router.candidate_set([5, 1])
    copy = router.candidate_set(cs)
    assert copy.ids() == [5, 1]
    assert copy is not cs


def test_candidate_set_errors() -> None:
    router = _router(ids=(0, 1, 2))
    with pytest.raises(KeyError, match="7"):
        router.candidate_set([7])
    with pytest.raises(ValueError, match="one entry per registered accelerator"):
        router.candidate_set(np.array([True, False]))
    with pytest.raises(ValueError, match="must be >= 0"):
        router.candidate_set([-1])
    with pytest.raises(ValueError, match="candidates"):
        router.candidate_set("01")  # type: ignore[arg-type]


def test_a_set_from_another_router_is_refused() -> None:
    mine, other = _router(), _router()
    foreign = other.candidate_set([0, 1])
    with pytest.raises(ValueError, match="another Router"):
        mine.route(candidates=foreign)
    with pytest.raises(ValueError, match="another Router"):
        mine.route_in_order(foreign)
    with pytest.raises(ValueError, match="another Router"):
        mine.candidate_set(foreign)
    assert mine.loads().tolist() == [0] * 6
    assert other.loads().tolist() == [0] * 6


@pytest.mark.parametrize("strategy", fleetroute.STRATEGIES)
def test_routing_with_a_candidate_set_only_picks_members(strategy: str) -> None:
    router = _router(strategy)
    members = [1, 4, 5]
    cs = router.candidate_set(members)
    rng = random.Random(strategy)
    picks = []
    while (pick := router.route(candidates=cs, key=rng.getrandbits(64))) is not None:
        picks.append(pick)
        if rng.random() < 0.3:  # some releases on the way
            router.release(pick)
            picks.pop()
        assert len(picks) <= 27
    assert set(picks) <= set(members)
    # Every member filled to its normal-priority share (9 of 10), nothing else.
    loads = dict(zip(router.ids().tolist(), router.loads().tolist(), strict=True))
    assert loads == {0: 0, 1: 9, 2: 0, 3: 0, 4: 9, 5: 9}
    assert router.route(key=1) is not None  # non-members still have room


@pytest.mark.parametrize("strategy", fleetroute.STRATEGIES)
def test_a_candidate_set_skips_unhealthy_members(strategy: str) -> None:
    router = _router(strategy)
    cs = router.candidate_set([2, 3])
    router.set_healthy(2, False)
    assert {router.route(candidates=cs, key=k) for k in range(9)} == {3}
    assert router.route(candidates=cs, key=99) is None
    router.set_healthy(2, True)
    assert router.route(candidates=cs, key=100) == 2


def test_an_empty_candidate_set_routes_nowhere() -> None:
    router = _router()
    assert router.route(candidates=router.candidate_set([])) is None
    assert router.route_in_order(router.candidate_set([])) is None
    assert router.route_in_order([]) is None
    assert router.loads().sum() == 0


def test_a_removed_member_is_never_picked() -> None:
    router = _router("round_robin")
    cs = router.candidate_set([1, 2])
    router.remove_accelerator(1)
    assert 1 not in cs
    router.add_accelerator(Accelerator(7, 10))
    assert 7 not in cs
    assert {router.route(candidates=cs) for _ in range(9)} == {2}
    assert router.route(candidates=cs) is None
    assert router.route_in_order(cs) is None


def test_a_candidate_set_may_carry_high_priority_into_the_reserve() -> None:
    router = _router()
    cs = router.candidate_set([3])
    assert [router.route(candidates=cs) for _ in range(10)] == [3] * 9 + [None]
    assert router.route(candidates=cs, priority=1) == 3
    assert router.route(candidates=cs, priority=1) is None


# route_in_order -----------------------------------------------------------------------------


def test_route_in_order_prefers_the_first_with_room() -> None:
    router = _router(ids=(0, 1, 2))
    placed = [router.route_in_order([2, 0, 1]) for _ in range(30)]
    # Normal priority: 9 of each 10 units, strictly in the given order, then None.
    assert placed == [2] * 9 + [0] * 9 + [1] * 9 + [None] * 3
    assert router.loads().tolist() == [9, 9, 9]


def test_route_in_order_with_a_candidate_set_and_a_mask() -> None:
    router = _router(ids=(0, 1, 2))
    cs = router.candidate_set([1, 0])
    assert [router.route_in_order(cs) for _ in range(10)] == [1] * 9 + [0]
    mask = np.array([False, True, True])  # registration order: 1 before 2
    assert [router.route_in_order(mask) for _ in range(10)] == [2] * 9 + [None]


def test_route_in_order_goes_back_to_the_first_once_it_has_room() -> None:
    router = _router(ids=(0, 1))
    for _ in range(9):
        assert router.route_in_order([0, 1]) == 0
    assert router.route_in_order([0, 1]) == 1
    router.release(0)
    assert router.route_in_order([0, 1]) == 0
    assert router.route_in_order([0, 1]) == 1


def test_route_in_order_honours_cost() -> None:
    router = _router(ids=(0, 1, 2))
    assert router.route_in_order([0, 1], cost=6) == 0
    assert router.route_in_order([0, 1], cost=6) == 1  # 0 has only 3 normal units left
    assert router.route_in_order([0, 1], cost=3) == 0
    assert router.route_in_order([0, 1], cost=4) is None
    assert router.route_in_order([0, 1, 2], cost=11) is None  # fits nowhere
    assert router.loads().tolist() == [9, 6, 0]
    with pytest.raises(ValueError, match="cost"):
        router.route_in_order([0], cost=0)


def test_route_in_order_skips_unhealthy() -> None:
    router = _router(ids=(0, 1, 2))
    router.set_healthy(0, False)
    assert router.route_in_order([0, 2, 1]) == 2
    router.set_healthy(2, False)
    assert router.route_in_order([0, 2, 1]) == 1
    router.set_healthy(1, False)
    assert router.route_in_order([0, 2, 1]) is None
    router.set_healthy(0, True)
    assert router.route_in_order([0, 2, 1]) == 0


def test_route_in_order_honours_the_priority_reserve() -> None:
    router = _router(ids=(0, 1))
    for _ in range(9):
        router.route_in_order([0, 1])
    # Normal priority cannot take 0's reserved last unit: it goes on to 1.
    assert router.route_in_order([0, 1]) == 1
    # High priority may: the strict order gives it to 0.
    assert router.route_in_order([0, 1], priority=1) == 0
    assert router.route_in_order([0, 1], priority=1) == 1
    assert router.loads().tolist() == [10, 2]


def test_route_in_order_unknown_id() -> None:
    router = _router(ids=(0, 1))
    with pytest.raises(KeyError):
        router.route_in_order([0, 8])
    assert router.loads().tolist() == [0, 0]


# Refunds --------------------------------------------------------------------------------------


def test_token_bucket_refund_gives_tokens_back() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=3)
    assert [bucket.try_acquire(now=0.0) for _ in range(4)] == [True, True, True, False]
    bucket.refund()
    assert bucket.try_acquire(now=0.0)
    assert not bucket.try_acquire(now=0.0)
    bucket.refund(2)
    assert bucket.try_acquire(n=2, now=0.0)
    assert not bucket.try_acquire(now=0.0)
    assert bucket.try_acquire_retry_after(now=0.0) == pytest.approx(1.0)


def test_token_bucket_refund_never_beyond_burst() -> None:
    full = TokenBucket(rate_per_s=1.0, burst=3)
    full.refund(3)
    full.refund(3)
    assert [full.try_acquire(now=0.0) for _ in range(4)] == [True, True, True, False]
    # Partly refilled: two of three back by t = 2; a refund of three tops it up to 3.
    partly = TokenBucket(rate_per_s=1.0, burst=3)
    assert partly.try_acquire(n=3, now=0.0)
    partly.refund(3)
    assert partly.try_acquire(n=3, now=2.0)
    assert partly.try_acquire_retry_after(now=2.0) == pytest.approx(1.0)


def test_token_bucket_refund_validation() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=3)
    with pytest.raises(ValueError, match="exceeds burst"):
        bucket.refund(4)
    with pytest.raises(ValueError, match="n must be >= 0"):
        bucket.refund(-1)
    bucket.refund(0)
    assert [bucket.try_acquire(now=0.0) for _ in range(4)] == [True, True, True, False]


def test_keyed_refund_is_per_key_and_never_beyond_burst() -> None:
    buckets = KeyedTokenBucket(rate_per_s=1.0, burst=3)
    buckets.refund("nobody")  # already full: nothing to give back, nothing stored
    assert len(buckets) == 0
    assert [buckets.try_acquire("a", now=0.0) for _ in range(4)] == [True, True, True, False]
    buckets.refund("a", 2)
    buckets.refund("b", 3)  # b never took anything: stays at burst
    assert [buckets.try_acquire("a", now=0.0) for _ in range(3)] == [True, True, False]
    assert [buckets.try_acquire("b", now=0.0) for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError, match="exceeds burst"):
        buckets.refund("a", 4)
    with pytest.raises(ValueError, match="n must be >= 0"):
        buckets.refund("a", -1)
    buckets.refund(42, 1)  # int and bytes keys too
    buckets.refund(b"k", 1)


def test_membership_of_any_value_and_removed_members() -> None:
    router = Router("p2c", seed=1)
    router.add_fleet(np.arange(4), np.full(4, 10))
    cs = router.candidate_set([0, 2, 3])
    assert 2**70 not in cs and -1 not in cs and "2" not in cs
    router.remove_accelerator(2)
    assert 2 not in cs and cs.ids() == [0, 3]
