"""Registering, changing and removing accelerators, and the errors bad input gets."""

from __future__ import annotations

import math

import numpy as np
import pytest

import fleetroute
from fleetroute import Accelerator, Router


def test_accelerator_fields_and_repr() -> None:
    acc = Accelerator(3, 50, weight=2.5, healthy=False)
    assert (acc.id, acc.capacity, acc.weight, acc.healthy, acc.current_load) == (
        3,
        50,
        2.5,
        False,
        0,
    )
    assert repr(acc) == (
        "Accelerator(id=3, capacity=50, weight=2.5, healthy=False, current_load=0)"
    )
    assert "weight=1.0," in repr(Accelerator(1, 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": 1, "capacity": 0}, "capacity"),
        ({"id": 1, "capacity": -5}, "capacity"),
        ({"id": -1, "capacity": 5}, "id"),
        ({"id": 1, "capacity": 5, "weight": -1.0}, "weight"),
        ({"id": 1, "capacity": 5, "weight": math.nan}, "weight"),
        ({"id": 1, "capacity": 5, "weight": math.inf}, "weight"),
    ],
)
def test_bad_accelerator_is_a_value_error_naming_the_field(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Accelerator(**kwargs)  # type: ignore[arg-type]


def test_duplicate_id_leaves_registry_unchanged() -> None:
    router = Router("round_robin")
    router.add_accelerator(Accelerator(1, 10))
    with pytest.raises(ValueError, match="already registered"):
        router.add_accelerator(Accelerator(1, 99))
    assert len(router) == 1
    assert router.accelerator(1).capacity == 10


def test_bulk_registration_is_all_or_nothing() -> None:
    router = Router("p2c")
    router.add_accelerator(Accelerator(5, 10))
    with pytest.raises(ValueError, match="5"):
        router.add_accelerators([Accelerator(i, 10) for i in range(10)])
    assert len(router) == 1
    with pytest.raises(ValueError, match="7"):
        router.add_accelerators([Accelerator(7, 1), Accelerator(7, 1)])
    assert len(router) == 1
    router.add_accelerators([Accelerator(i, 10) for i in range(100, 200)])
    assert len(router) == 101


def test_add_fleet_from_arrays() -> None:
    router = Router("p2c")
    router.add_fleet(np.arange(1000), np.full(1000, 8), weights=np.ones(1000))
    assert len(router) == 1000
    assert router.capacities().tolist() == [8] * 1000
    with pytest.raises(ValueError, match="capacity"):
        router.add_fleet([2000, 2001], [4, 0])
    with pytest.raises(ValueError, match="length"):
        router.add_fleet([3000, 3001], [4])
    with pytest.raises(ValueError, match="ids"):
        router.add_fleet([-4], [4])
    assert len(router) == 1000


def test_unknown_id_is_a_key_error() -> None:
    router = Router("p2c")
    router.add_accelerator(Accelerator(1, 10))
    for call in (
        lambda: router.remove_accelerator(2),
        lambda: router.set_healthy(2, False),
        lambda: router.set_capacity(2, 5),
        lambda: router.set_weight(2, 1.0),
        lambda: router.release(2),
        lambda: router.accelerator(2),
    ):
        with pytest.raises(KeyError, match="unknown accelerator id 2"):
            call()


def test_setters_validate_and_take_effect() -> None:
    router = Router("round_robin", priority_reserve=0.0)
    acc = Accelerator(1, 2)
    router.add_accelerator(acc)
    with pytest.raises(ValueError, match="capacity"):
        router.set_capacity(1, 0)
    with pytest.raises(ValueError, match="weight"):
        router.set_weight(1, math.nan)
    assert (acc.capacity, acc.weight) == (2, 1.0)
    router.set_capacity(1, 3)
    router.set_weight(1, 4.0)
    assert (acc.capacity, acc.weight) == (3, 4.0)
    assert [router.route() for _ in range(4)] == [1, 1, 1, None]
    router.set_healthy(1, False)
    assert not acc.healthy
    router.release(1, 3)
    assert router.route() is None
    router.set_healthy(1, True)
    assert router.route() == 1


def test_remove_stops_routing_and_id_can_return() -> None:
    router = Router("round_robin")
    router.add_accelerators([Accelerator(1, 10), Accelerator(2, 10)])
    router.remove_accelerator(1)
    assert 1 not in router
    assert {router.route() for _ in range(5)} == {2}
    router.add_accelerator(Accelerator(1, 10))
    assert 1 in router
    assert {router.route() for _ in range(4)} == {1, 2}


def test_one_at_a_time_registration_of_a_large_fleet() -> None:
    router = Router("least_connections")
    for i in range(100_000):
        router.add_accelerator(Accelerator(i, 4))
    assert len(router) == 100_000
    assert router.route(priority=1) == 0
    assert router.memory_bytes() / 100_000 < 256


def test_live_views_and_snapshots() -> None:
    router = Router("round_robin", priority_reserve=0.0)
    router.add_accelerators([Accelerator(i, 5) for i in (10, 20, 30)])
    router.route(cost=2)
    router.route(cost=3)
    assert router.ids().tolist() == [10, 20, 30]
    assert router.loads().tolist() == [2, 3, 0]
    assert router.loads().dtype == np.int64
    assert [a.current_load for a in router.accelerators()] == [2, 3, 0]
    assert router.accelerator(20).current_load == 3


def test_unknown_strategy_names_the_name_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy \"fastest\".*p2c"):
        Router("fastest")
    with pytest.raises(ValueError, match="consistent_hash only"):
        Router("p2c", load_bound=1.25)
    with pytest.raises(ValueError, match="hash kind"):
        Router("consistent_hash", hash="rendezvous")
    with pytest.raises(ValueError, match="load_bound"):
        Router("consistent_hash", load_bound=0.9)
    with pytest.raises(ValueError, match="priority_reserve"):
        Router("p2c", priority_reserve=1.0)
    assert set(fleetroute.STRATEGIES) >= {"p2c", "round_robin", "least_connections"}


@pytest.mark.parametrize(
    ("strategy", "options"),
    [("p2c", {}), ("weighted_round_robin", {}), ("consistent_hash", {"hash": "ring"})],
)
def test_registering_while_routing_stays_linear(strategy: str, options: dict[str, str]) -> None:
    # Derived tables (alias table, WRR cycle, hash ring) are rebuilt amortised over
    # decisions; rebuilding on every change would make this loop quadratic.
    router = Router(strategy, priority_reserve=0.0, **options)  # type: ignore[arg-type]
    for i in range(20_000):
        router.add_accelerator(Accelerator(i, 2 + i % 3))
        assert router.route(key=i) is not None
    assert len(router) == 20_000


def test_capacity_upper_bound() -> None:
    assert Accelerator(1, 2**32 - 1).capacity == 2**32 - 1
    with pytest.raises(ValueError, match=r"capacity must be in \[1, 4294967295\]"):
        Accelerator(1, 2**32)
    router = Router("p2c")
    router.add_accelerator(Accelerator(1, 5))
    with pytest.raises(ValueError, match="capacity"):
        router.set_capacity(1, 2**32)
    assert router.accelerator(1).capacity == 5
