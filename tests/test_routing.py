"""Routing decisions: capacity, health, priority, candidates, keys, release, batches."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from fleetroute import Accelerator, Request, Router

ALL = [
    "round_robin",
    "least_connections",
    "p2c",
    "random",
    "weighted_round_robin",
    "peak_ewma",
    "cache_aware",
    "endpoint_picker",
]


def fleet(strategy: str, n: int = 4, capacity: int = 10, **kwargs: object) -> Router:
    router = Router(strategy, seed=1, priority_reserve=0.0, **kwargs)  # type: ignore[arg-type]
    router.add_accelerators([Accelerator(i, capacity) for i in range(n)])
    return router


@pytest.mark.parametrize("strategy", ALL)
def test_fills_exactly_to_capacity_then_refuses(strategy: str) -> None:
    router = fleet(strategy, n=3, capacity=4)
    placed = [router.route(cost=1) for _ in range(12)]
    assert None not in placed
    assert router.route(cost=1) is None
    assert router.loads().tolist() == [4, 4, 4]


@pytest.mark.parametrize("strategy", ALL)
def test_skips_unhealthy_and_honours_candidates(strategy: str) -> None:
    router = fleet(strategy, n=4, capacity=100)
    router.set_healthy(0, False)
    assert 0 not in {router.route() for _ in range(20)}
    picks = {router.route(candidates=[2, 3]) for _ in range(10)}
    assert picks <= {2, 3}
    with pytest.raises(KeyError, match="99"):
        router.route(candidates=[1, 99])


def test_round_robin_order_and_failover() -> None:
    router = fleet("round_robin", n=3, capacity=1)
    router.set_healthy(1, False)
    assert [router.route(), router.route(), router.route()] == [0, 2, None]


def test_least_connections_is_exact() -> None:
    router = fleet("least_connections", n=3, capacity=100)
    assert [router.route(cost=c) for c in (5, 3, 1, 1)] == [0, 1, 2, 2]
    router.release(0, 5)
    assert router.route() == 0


def test_least_connections_relative_to_capacity() -> None:
    router = Router("least_connections", priority_reserve=0.0)
    router.add_accelerators([Accelerator(1, 10), Accelerator(2, 100)])
    picks = collections.Counter(router.route() for _ in range(110))
    assert picks == {1: 10, 2: 100}


def test_weighted_round_robin_is_smooth() -> None:
    router = Router("weighted_round_robin", priority_reserve=0.0)
    for acc_id, weight in (("a", 5.0), ("b", 1.0), ("c", 1.0)):
        router.add_accelerator(Accelerator(ord(acc_id), 100, weight=weight))
    picks = "".join(chr(router.route()) for _ in range(7))  # type: ignore[arg-type]
    assert picks == "aabacaa"


def test_p2c_balances_better_than_random() -> None:
    def spread(strategy: str) -> int:
        router = fleet(strategy, n=1000, capacity=1000)
        router.route_batch(np.ones(1000, dtype=np.int64))
        return int(router.loads().max())

    assert spread("p2c") < spread("random")


def test_seeded_routers_are_deterministic() -> None:
    a, b = fleet("p2c", n=50), fleet("p2c", n=50)
    assert [a.route() for _ in range(100)] == [b.route() for _ in range(100)]


def test_priority_keeps_headroom_for_high_priority() -> None:
    router = Router("round_robin", priority_reserve=0.2)
    router.add_accelerator(Accelerator(1, 10))
    normal = [router.route(priority=0) for _ in range(10)]
    assert normal.count(1) == 8 and normal[8:] == [None, None]
    assert router.route(priority=1) == 1
    assert router.route(priority=5) == 1
    assert router.route(priority=1) is None
    # The seed's Request(id, cost, priority) with priority 1 may fill to capacity.
    other = Router("p2c")
    other.add_accelerator(Accelerator(1, 100))
    assert other.route_request(Request(1, 100, 1)) == 1


def test_consistent_hash_affinity_for_every_table() -> None:
    for kind in ("ring", "jump", "maglev"):
        router = fleet("consistent_hash", n=20, capacity=1000, hash=kind)
        homes = {key: router.route(key=key) for key in ("user-1", "user-2", 7, b"raw")}
        for key, home in homes.items():
            assert all(router.route(key=key) == home for _ in range(5)), kind
        with pytest.raises(ValueError, match="key"):
            router.route()
        with pytest.raises(ValueError, match="key"):
            router.route(key=1.5)  # type: ignore[arg-type]


def test_bounded_load_spills_hot_key() -> None:
    router = fleet("consistent_hash", n=10, capacity=1000, load_bound=1.25)
    counts = collections.Counter(router.route(key="hot") for _ in range(1000))
    assert max(counts.values()) <= 125
    assert sum(counts.values()) == 1000


def test_route_request_uses_request_id_as_key() -> None:
    router = fleet("consistent_hash", n=20, capacity=1000)
    home = router.route_request(Request(42, 1, 1))
    assert router.route(key=42) == home


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"cost": 0}, "cost"), ({"cost": -1}, "cost"), ({"priority": -1}, "priority")],
)
def test_bad_route_arguments(kwargs: dict[str, int], message: str) -> None:
    router = fleet("p2c")
    with pytest.raises(ValueError, match=message):
        router.route(**kwargs)  # type: ignore[arg-type]
    assert router.loads().sum() == 0


def test_bad_request_arguments() -> None:
    with pytest.raises(ValueError, match="cost"):
        Request(1, 0, 1)
    with pytest.raises(ValueError, match="priority"):
        Request(1, 1, -2)
    req = Request(9, 3)
    assert (req.id, req.cost, req.priority) == (9, 3, 0)


def test_release_returns_load_and_refuses_underflow() -> None:
    router = fleet("round_robin", n=1)
    assert router.route(cost=3) == 0
    router.release(0, 2)
    with pytest.raises(ValueError, match="below zero"):
        router.release(0, 2)
    assert router.loads().tolist() == [1]
    with pytest.raises(ValueError, match="cost"):
        router.release(0, 0)
    router.release(0)
    assert router.loads().tolist() == [0]


def test_route_batch_and_release_batch() -> None:
    router = fleet("p2c", n=100, capacity=10)
    ids = router.route_batch(np.full(1200, 1))
    assert ids.dtype == np.int64 and ids.shape == (1200,)
    assert (ids == -1).sum() == 200
    assert router.loads().sum() == 1000
    router.release_batch(ids, np.ones(1200, dtype=np.int64))
    assert router.loads().sum() == 0


def test_batch_errors_change_nothing() -> None:
    router = fleet("p2c", n=4, capacity=10)
    with pytest.raises(ValueError, match=r"costs\[2\]"):
        router.route_batch([1, 1, 0, 1])
    with pytest.raises(ValueError, match=r"costs\[1\]"):
        router.route_batch([1, -3])
    assert router.loads().sum() == 0
    ids = router.route_batch([2, 2])
    with pytest.raises(KeyError):
        router.release_batch([int(ids[0]), 77], [2, 2])
    with pytest.raises(ValueError, match="below zero"):
        router.release_batch(ids, [2, 3])
    with pytest.raises(ValueError, match="costs"):
        router.release_batch(ids, [2])
    assert router.loads().sum() == 4
    router.release_batch(ids, [2, 2])
    assert router.loads().sum() == 0


def test_route_batch_with_keys() -> None:
    router = fleet("consistent_hash", n=16, capacity=1000, hash="maglev")
    keys = [f"tenant-{i % 5}" for i in range(50)]
    ids = router.route_batch(np.ones(50, dtype=np.int64), keys=keys)
    for i in range(5):
        assert len(set(ids[i::5].tolist())) == 1
    with pytest.raises(ValueError, match="keys"):
        router.route_batch([1, 1])
    with pytest.raises(ValueError, match="keys"):
        router.route_batch([1, 1], keys=["a"])


def test_empty_router_routes_nothing() -> None:
    for strategy in ALL:
        router = Router(strategy)
        assert router.route() is None
        assert router.route_batch([1, 1]).tolist() == [-1, -1]


def test_float_arrays_are_refused_not_truncated() -> None:
    router = fleet("p2c", n=4, capacity=10)
    with pytest.raises(ValueError, match="costs must hold integers"):
        router.route_batch(np.array([1.5, 1.0]))
    with pytest.raises(ValueError, match="costs must hold integers"):
        router.route_batch([1, 2.5])
    with pytest.raises(ValueError, match="capacities must hold integers"):
        router.add_fleet([100], np.array([2.5]))
    assert router.loads().sum() == 0 and len(router) == 4
    assert router.route_batch(np.array([1, 1], dtype=np.int32)).tolist() != [-1, -1]


def test_bad_seed_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="seed"):
        Router("p2c", seed=-1)
    with pytest.raises(ValueError, match="seed"):
        Router("p2c", seed=2**64)
    assert Router("p2c", seed=2**64 - 1).strategy == "p2c"


def test_removed_accelerator_releases_are_refused_and_bound_recovers() -> None:
    router = fleet("consistent_hash", n=4, capacity=1000, load_bound=1.25)
    home = router.route(key="k", cost=10)
    assert home is not None
    router.remove_accelerator(home)
    with pytest.raises(KeyError, match=str(home)):
        router.release(home, 10)
    # The forgotten load no longer counts toward the bound: 12 units over 3 equal
    # accelerators may put at most ceil(1.25 * 12 / 3) = 5 on any one.
    placed = [router.route(key="hot") for _ in range(12)]
    assert max(placed.count(a) for a in set(placed)) <= 5


def test_boolean_candidate_mask_in_registration_order() -> None:
    router = fleet("least_connections", n=5, capacity=100)
    router.remove_accelerator(1)
    mask = router.ids() % 2 == 0  # ids 0, 2, 3, 4 -> allows 0, 2, 4
    picks = {router.route(candidates=mask) for _ in range(30)}
    assert picks == {0, 2, 4}
    with pytest.raises(ValueError, match="one entry per registered accelerator"):
        router.route(candidates=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="candidates must hold integers"):
        router.route(candidates=np.array([0.5]))
    assert router.route(candidates=np.zeros(4, dtype=bool)) is None
